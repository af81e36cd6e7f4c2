#!/bin/sh
# virt-manager 5.0.0 with the project's series (virt-manager/): its own
# test suite, UI tests aside, against the test driver of the built libvirt.
set -eu
. "$(dirname "$0")/../../scripts/lib.sh"

[ -f "$MESON_DIR/.built" ] || die "libvirt is not built: run make demo or ./scripts/build.sh"
exec "$ROOT/scripts/virt-manager.sh" pytest -q
