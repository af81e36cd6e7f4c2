# Helpers of the end-to-end tests.  Sourced by tests/e2e/*.sh.

. "$(dirname "$0")/../../scripts/lib.sh"

E2E_DIR="$STATE_DIR/e2e"
mkdir -p "$E2E_DIR"

virsh() {
    "$ROOT/run" virsh "$@"
}

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# PIDs of QEMU processes running the domain NAME for this checkout's
# daemon (another checkout's tests may run domains of the same name; each
# QEMU's command line holds paths of its daemon's prefix).
qemu_pids() {
    pgrep -f -- "qemu-system-.* -name guest=$1,.*$PREFIX/" || true
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

# boot_guest NAME [domxml.sh options]: define the guest NAME with
# those options and start it; return once it is up (its first heartbeat).
boot_guest() {
    _name=$1
    shift
    virsh define "$(domxml "$_name" "$@")" >/dev/null
    virsh start "$_name" >/dev/null
    wait_for_line "$E2E_DIR/$_name.console" '^HEARTBEAT n=1 ' 120 >/dev/null ||
        fail "$_name did not come up"
}

# Kill virtqemud with SIGKILL, as a crash would; the next virsh starts it
# again.
kill_daemon() {
    _pid=$(cat "$PREFIX/var/run/virtqemud.pid")
    kill -KILL "$_pid"
    while kill -0 "$_pid" 2>/dev/null; do
        sleep 0.02
    done
}

# Stop virtqemud; the next virsh starts it again.
stop_daemon() {
    kill "$(cat "$PREFIX/var/run/virtqemud.pid")"
    while pgrep -f "$MESON_DIR/src/virtqemud" >/dev/null; do
        sleep 0.1
    done
}

# Stop virtqemud and start it again, returning once it has reconnected
# to every running domain.  A destroy sent while the reconnect still holds
# the domain's job kills QEMU under it and then reports "domain is not
# running" (libvirt 11.3 does so for any domain).
restart_daemon() {
    kill "$(cat "$PREFIX/var/run/virtqemud.pid")"
    while [ -S "$PREFIX/var/run/libvirt/virtqemud-sock" ] && pgrep -f "$MESON_DIR/src/virtqemud" >/dev/null; do
        sleep 0.1
    done
    # dommemstat takes a query job: it waits for the reconnect's job.
    for _dom in $(virsh list --name); do
        virsh dommemstat "$_dom" >/dev/null 2>&1 || true
    done
}

# as_qemu CMD...: CMD as the user and groups QEMU runs as.
as_qemu() {
    setpriv --reuid="$QEMU_USER" --regid="$QEMU_GROUP" --init-groups -- "$@"
}

# expect_error LABEL MESSAGE CMD...: CMD fails with MESSAGE in its output.
expect_error() {
    _label=$1 _msg=$2
    shift 2
    if _out=$("$@" 2>&1); then
        fail "$_label: succeeded"
    fi
    echo "$_out" | grep -qF -- "$_msg" || fail "$_label: unexpected message: $_out"
    echo "refused ($_label): $(echo "$_out" | tail -n 1)"
}

# heartbeat_after FILE N SECS: the first whole heartbeat in FILE with a
# counter above N (a clone's console holds its template's heartbeats too;
# the last line may still be being written).
heartbeat_after() {
    _deadline=$(( $(date +%s) + $3 ))
    while [ "$(date +%s)" -le "$_deadline" ]; do
        _line=$(tr -d '\r' <"$1" 2>/dev/null | grep -E '^HEARTBEAT .* rand=[0-9a-f]{16}$' |
                awk -v n="$2" '{ split($2, a, "="); if (a[2] > n) { print; exit } }')
        if [ -n "$_line" ]; then
            echo "$_line"
            return 0
        fi
        sleep 0.1
    done
    echo "no heartbeat after n=$2 in $1 within $3 s" >&2
    return 1
}

# last_heartbeat FILE: the last whole heartbeat in FILE.
last_heartbeat() {
    tr -d '\r' <"$1" | grep -E '^HEARTBEAT .* rand=[0-9a-f]{16}$' | tail -n 1
}

# fault NAME INJECTED SURVIVED LOST: one row of the fault table that
# tests/run-all.sh prints.
fault() {
    echo "FAULT $1 injected=$2 survived=$3 lost=$4"
}

# refused_if_touched TEMPLATE FILE LABEL: FILE of TEMPLATE written behind
# libvirt's back (only its mtime changes) refuses clones; then its mtime is
# put back. One row of the fault table, LABEL.
refused_if_touched() {
    _mtime=$(stat -c %y "$2")
    touch "$2"
    expect_error "$3" "was changed after the template was created" \
        virsh clone-from-template "$1"
    touch -d "$_mtime" "$2"
    fault "$3" 1 1 0
}

# cleanup_template NAME: destroy the running domains named NAME-* (its
# clones) and NAME, remove its template, or what a record of an earlier one
# keeps, and undefine NAME.
cleanup_template() {
    for _c in $(virsh list --name | grep "^$1-" || true); do
        virsh destroy "$_c" >/dev/null 2>&1 || true
    done
    virsh destroy "$1" >/dev/null 2>&1 || true
    # also what a record of an earlier template keeps, of files now gone
    virsh template-remove --forget-missing-disks "$1" >/dev/null 2>&1 || true
    if virsh dominfo "$1" >/dev/null 2>&1 &&
       ! _out=$(virsh undefine --remove-template "$1" 2>&1); then
        echo "cleanup: $1 stays: $_out" >&2
    fi
}

# Destroy and undefine whatever the test left behind.
cleanup_domain() {
    virsh destroy "$1" >/dev/null 2>&1 || true
    virsh undefine "$1" >/dev/null 2>&1 || true
}

# file_identity PATH: the attributes by which the daemon's template records
# name the file at PATH: size, inode, inode generation where the filesystem
# has one, filesystem (ext4 and btrfs by f_fsid, others by type), mtime,
# location.
file_identity() {
    /usr/bin/python3 -c '
import array, fcntl, os, sys
from xml.sax.saxutils import escape
path, fsid, fstype = sys.argv[1], sys.argv[2].zfill(16), int(sys.argv[3], 16)
st = os.stat(path)
gen = ""
try:
    with open(path, "rb") as f:
        buf = array.array("i", [0])
        fcntl.ioctl(f, 0x80087601, buf)  # FS_IOC_GETVERSION
        gen = " generation=\x27%u\x27" % (buf[0] & 0xffffffff)
except OSError:
    pass
if fstype in (0xef53, 0x9123683e):
    # as stat -f prints it: both words of statfs f_fsid, the first first
    fs = "fsid:%x:%x" % (int(fsid[:8], 16), int(fsid[8:], 16))
else:
    fs = "type:%x" % fstype
print("size=\x27%d\x27 inode=\x27%d\x27%s fs=\x27%s\x27 mtime=\x27%d.%09d\x27 location=\x27%s\x27" %
      (st.st_size, st.st_ino, gen, fs, st.st_mtime_ns // 10**9, st.st_mtime_ns % 10**9,
       escape(os.path.realpath(path), {"\x27": "&apos;"})))
' "$1" $(stat -f -c "%i %t" "$1")
}
