#!/bin/sh
# virt-manager 5.0.0 with the project's series (virt-manager/): the series
# is what scripts/virt-manager.sh exports of the assembled tree, and
# virt-manager's own test suite, UI tests aside, passes against the test
# driver of the built libvirt.
set -eu
. "$(dirname "$0")/../../scripts/lib.sh"

[ -f "$MESON_DIR/.built" ] || die "libvirt is not built: run make demo or ./scripts/build.sh"
"$ROOT/scripts/virt-manager.sh" assemble
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$ROOT/scripts/virt-manager.sh" export "$out"
if ! diff -r "$ROOT/virt-manager/patches" "$out"; then
    echo "FAIL: virt-manager/patches/ differs from the export of build/virt-manager"
    exit 1
fi
"$ROOT/scripts/virt-manager.sh" pytest -q
