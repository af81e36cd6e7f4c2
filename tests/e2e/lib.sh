# Helpers of the end-to-end tests.  Sourced by tests/e2e/*.sh.

. "$(dirname "$0")/../../scripts/lib.sh"

E2E_DIR="$BUILD_DIR/e2e"
mkdir -p "$E2E_DIR"

virsh() {
    "$ROOT/run" virsh "$@"
}

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# PIDs of QEMU processes running the domain NAME.
qemu_pids() {
    pgrep -f -- "qemu-system-.* -name guest=$1," || true
}

# domxml NAME [domxml.sh options]: write the guest's XML, its console log
# in $E2E_DIR/NAME.console; prints the XML file's path.
domxml() {
    _name=$1
    shift
    rm -f "$E2E_DIR/$_name.console"
    "$ROOT/tests/guest/domxml.sh" "$_name" "$E2E_DIR/$_name.console" "$@" >"$E2E_DIR/$_name.xml"
    echo "$E2E_DIR/$_name.xml"
}

# Stop virtqemud; the next virsh starts it again.
restart_daemon() {
    kill "$(cat "$PREFIX/var/run/virtqemud.pid")"
    while [ -S "$PREFIX/var/run/libvirt/virtqemud-sock" ] && pgrep -f "$MESON_DIR/src/virtqemud" >/dev/null; do
        sleep 0.1
    done
}

# Destroy and undefine whatever the test left behind.
cleanup_domain() {
    virsh destroy "$1" >/dev/null 2>&1 || true
    virsh undefine "$1" >/dev/null 2>&1 || true
}
