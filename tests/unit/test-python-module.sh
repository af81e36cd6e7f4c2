#!/bin/sh
# The project's Python module (python/) with Debian's python3-libvirt,
# against libvirt's test driver (tests/python).
set -eu
. "$(dirname "$0")/../../scripts/lib.sh"

[ -f "$MESON_DIR/.built" ] || die "libvirt is not built: run make demo or ./scripts/build.sh"
pydir=$("$ROOT/scripts/build-python.sh")
LD_LIBRARY_PATH="$MESON_DIR/src" PYTHONPATH="$pydir" \
    /usr/bin/python3 -m unittest discover -v -s "$ROOT/tests/python"
