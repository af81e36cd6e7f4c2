#!/bin/sh
# Install dependencies, assemble the tree and build it with meson/ninja.
# Incremental: a second run only rebuilds what changed.
set -eu
. "$(dirname "$0")/lib.sh"

need_root
mkdir -p "$BUILD_DIR"
# One build at a time: ./run may be called from several shells at once.
exec 8>"$BUILD_DIR/.build.lock"
flock 8
"$ROOT/scripts/install-deps.sh"
"$ROOT/scripts/assemble.sh"

log="$MESON_DIR.log"

# QEMU runs as Debian's unprivileged user, which install-deps.sh creates as
# the libvirt-daemon-system package does.  The LXC driver is built only for
# libvirt's check-driverimpls and check-aclrules tests, which expect it.
set -- --prefix="$PREFIX" \
    -Drunstatedir="$PREFIX/var/run" \
    -Dsystem=false -Dinit_script=none \
    -Ddocs=disabled \
    -Dqemu_user="$QEMU_USER" -Dqemu_group="$QEMU_GROUP" \
    -Ddriver_qemu=enabled -Ddriver_remote=enabled \
    -Ddriver_libvirtd=enabled -Ddriver_network=enabled \
    -Ddriver_test=enabled \
    -Ddriver_lxc=enabled -Ddriver_libxl=disabled \
    -Ddriver_ch=disabled -Ddriver_vbox=disabled \
    -Ddriver_esx=disabled -Ddriver_hyperv=disabled \
    -Ddriver_openvz=disabled -Ddriver_vz=disabled \
    -Ddriver_bhyve=disabled
tests=enabled
if [ "${LIBVIRT_ASAN:-0}" = 1 ]; then
    # Only the daemons and virsh are run from this build, not the unit
    # tests. Driver modules leave libvirt's symbols undefined: b_lundef.
    # With the sanitizer gcc 12 warns about libvirt 11.3's own code
    # (virsocketaddr.c: 'ip' may be used uninitialized): not -Werror here.
    set -- "$@" -Db_sanitize=address -Db_lundef=false -Dgit_werror=disabled
    tests=disabled
fi
set -- "$@" -Dtests=$tests
# Debian's python3 for libvirt's Python scripts and tests (rpcgen-pytest
# runs once python3-pytest is there), not the one first on PATH.
native="$BUILD_DIR/native.ini"
# rewritten only when it changes: meson reconfigures when it is newer
nativeini=$(printf "[binaries]\npython3 = '/usr/bin/python3'")
[ "$(cat "$native" 2>/dev/null)" = "$nativeini" ] || echo "$nativeini" >"$native"
set -- "$@" --native-file "$native"
options_stamp="$MESON_DIR/.project-options"
if [ ! -f "$MESON_DIR/build.ninja" ] || [ "$(cat "$options_stamp" 2>/dev/null)" != "$*" ]; then
    echo "build: configuring libvirt in $MESON_DIR"
    reconfigure=""
    # --wipe: a reconfigure keeps the native file of the first setup
    [ -f "$MESON_DIR/build.ninja" ] && reconfigure=--wipe
    if ! meson setup $reconfigure "$MESON_DIR" "$SRC_DIR" "$@" >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        die "meson setup failed; see $log"
    fi
    echo "$*" >"$options_stamp"
fi

echo "build: ninja (log in $log)"
if ! ninja -C "$MESON_DIR" >"$log" 2>&1; then
    grep -E -m 20 'error|Error|FAILED' "$log" >&2 || tail -n 20 "$log" >&2
    die "build failed; see $log"
fi
touch "$MESON_DIR/.built"
