# Shared settings of the project's scripts.  Sourced, never run.

ROOT=$(cd "$(dirname "$0")" && pwd)
while [ ! -f "$ROOT/scripts/lib.sh" ]; do
    ROOT=$(dirname "$ROOT")
done
BUILD_DIR="$ROOT/build"
SRC_DIR="$BUILD_DIR/libvirt"          # assembled tree (git: pristine + series)
MESON_DIR="$BUILD_DIR/meson"          # meson/ninja build directory
# LIBVIRT_ASAN=1: the same, built with AddressSanitizer, for the daemons
# (tests/run-all.sh runs the fuzz test on it).
if [ "${LIBVIRT_ASAN:-0}" = 1 ]; then
    MESON_DIR="$BUILD_DIR/meson-asan"
fi
CACHE_DIR=${CACHE_DIR:-/var/cache/libvirt-templates}
# What QEMU opens (RAM files, disks, sockets) must be reachable by the
# unprivileged user QEMU runs as, also when the checkout is in a directory
# only root can enter (as /root is): the private prefix and the files of
# the tests live outside the checkout, one directory per checkout.  Short:
# QEMU's monitor socket path in it must fit in 108 bytes.
STATE_DIR="/var/lib/vmtpl/$(printf %s "$ROOT" | sha256sum | cut -c1-8)"
PREFIX="$STATE_DIR/root"              # private prefix: config, state, sockets

LIBVIRT_VERSION=11.3.0
LIBVIRT_TARBALL="libvirt_${LIBVIRT_VERSION}.orig.tar.xz"
LIBVIRT_SHA256=6bcb0c42c4580436fea262ced56f68a6afe20f7390b1bea2116718cc034a0283
# Debian's default user and group for QEMU (libvirt-daemon-system).
QEMU_USER=libvirt-qemu
QEMU_GROUP=libvirt-qemu

# The libvirt series: libvirt/patches/ edits existing files, and the files
# it adds are at their libvirt paths under libvirt/, in these folders.
LIBVIRT_REPO="$ROOT/libvirt"
NEW_FILES_DIRS="src docs tests po include tools"

die() {
    echo "$(basename "$0"): $*" >&2
    exit 1
}

# am_series GIT PROJECT UPSTREAM: apply $ROOT/PROJECT/patches/*.patch in
# order with GIT (a git command for the assembled tree) am; dies naming the
# first one that does not apply to UPSTREAM.
am_series() {
    for _p in "$ROOT/$2"/patches/*.patch; do
        [ -e "$_p" ] || continue
        if ! $1 am -q --committer-date-is-author-date "$_p" >/dev/null 2>&1; then
            $1 am --abort >/dev/null 2>&1 || true
            die "$2/patches/$(basename "$_p") no longer applies to $3"
        fi
    done
}

need_root() {
    [ "$(id -u)" = 0 ] || die "must run as root (the daemon runs QEMU and needs /var/cache)"
}

# List the repository's new libvirt files, relative to $ROOT.  The project's
# own tests (e2e, guest, unit) are not libvirt files.
list_new_files() {
    (cd "$LIBVIRT_REPO" && git ls-files --cached --others --exclude-standard -- $NEW_FILES_DIRS |
        while read -r f; do [ -f "$f" ] && echo "$f"; done)
}

# wait_for_line FILE REGEX SECONDS: print the first line of a guest console
# FILE matching REGEX (extended); fail, showing the file's end, when none
# shows up in time.
wait_for_line() {
    _deadline=$(( $(date +%s) + $3 ))
    while [ "$(date +%s)" -le "$_deadline" ]; do
        if _line=$(tr -d '\r' <"$1" 2>/dev/null | grep -E -m 1 -- "$2"); then
            echo "$_line"
            return 0
        fi
        sleep 0.02
    done
    echo "timed out after $3 s waiting for /$2/ in $1; it ends with:" >&2
    tail -n 5 "$1" >&2 2>/dev/null || true
    return 1
}

# open_flags PID FILE: the open flags (octal, as in fdinfo) of each file
# descriptor of process PID on FILE, one a line; nothing if it holds none.
# $(( 0FLAGS & 3 )) is the access mode: 0 read-only, 2 read-write.
open_flags() {
    for _fd in /proc/"$1"/fd/*; do
        [ "$(readlink "$_fd")" = "$2" ] &&
            sed -n 's/^flags:[[:space:]]*//p' "/proc/$1/fdinfo/${_fd##*/}"
    done
    return 0
}

# field NAME LINE: the value of NAME=... in a guest's heartbeat LINE
field() {
    echo "$2" | sed -n "s/.* $1=\([^ ]*\).*/\1/p"
}

# domain_uuid NAME: the UUID of the test guest NAME (tests/guest/domxml.sh),
# derived from its name so that scripts know where its template lives.
domain_uuid() {
    printf 'vmtpl:%s' "$1" | md5sum |
        sed -E 's/^(.{8})(.{4})(.{4})(.{4})(.{12}).*/\1-\2-\3-\4-\5/'
}

# template_dir NAME: the template directory of the test guest NAME, which
# the daemon derives from its UUID.
template_dir() {
    echo "$PREFIX/var/lib/libvirt/template/$(domain_uuid "$1")"
}

# template_record NAME: the daemon's record of the files of the template of
# the test guest NAME, kept where no QEMU can write it.
template_record() {
    echo "$PREFIX/var/lib/libvirt/template-records/$(domain_uuid "$1").xml"
}
