#!/bin/sh
# Build the project's Python module (python/) against the built libvirt:
# build/python/libvirtmod_template*.so beside a copy of libvirt_template.py.
# Prints the directory to put on PYTHONPATH.
set -eu
. "$(dirname "$0")/lib.sh"

out="$BUILD_DIR/python"
py=/usr/bin/python3
suffix=$($py -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
so="$out/libvirtmod_template$suffix"
mkdir -p "$out"
if [ ! -f "$so" ] || [ "$ROOT/python/libvirtmod_template.c" -nt "$so" ] ||
   [ "$MESON_DIR/src/libvirt.so" -nt "$so" ]; then
    # shellcheck disable=SC2046 # word splitting of the flags is meant
    cc -shared -fPIC -O2 -g -Wall -Wextra -Werror \
        $($py-config --includes) -I"$SRC_DIR/include" -I"$MESON_DIR/include" \
        -o "$so" "$ROOT/python/libvirtmod_template.c" \
        -L"$MESON_DIR/src" -lvirt
fi
cp "$ROOT/python/libvirt_template.py" "$out/"
echo "$out"
