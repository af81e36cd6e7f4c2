#!/bin/sh
# Start or stop the project's private virtqemud and virtlogd.
#   daemon.sh start   start them unless running (restart when rebuilt)
#   daemon.sh stop    destroy every domain they run and stop them
# VIRTQEMUD_SELINUX_MOCK=1 daemon.sh start: virtqemud labels for SELinux.
# LIBVIRT_ASAN=1: the daemons of the AddressSanitizer build (scripts/lib.sh).
# Everything lives under $PREFIX (scripts/lib.sh): config, state, logs and
# sockets, so a libvirt installed on the machine is neither needed nor
# disturbed.
set -eu
. "$(dirname "$0")/lib.sh"

ETC="$PREFIX/etc/libvirt"
RUN="$PREFIX/var/run"
LOG="$PREFIX/var/log/libvirt"
QEMU_RUN="$RUN/libvirt/qemu"

export LD_LIBRARY_PATH="$MESON_DIR/src${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LIBVIRT_DIR_OVERRIDE=1
export LIBVIRT_DEFAULT_URI=qemu:///system

write_config() {
    mkdir -p "$ETC" "$LOG/qemu" "$RUN/libvirt" \
        "$PREFIX/var/lib/libvirt/qemu" "$PREFIX/var/cache/libvirt/qemu"
    # QEMU, as its own user, must be able to reach the files in here.
    chmod 0755 "$STATE_DIR" "$PREFIX"
    cat >"$ETC/qemu.conf" <<CONF
# Written by scripts/daemon.sh.  QEMU runs as Debian's default user, with
# DAC labelling (dynamic_ownership) on.
user = "$QEMU_USER"
group = "$QEMU_GROUP"
# The per-domain mount namespace fails here ("failed to umount devfs").
namespaces = [ ]
CONF
    if [ -n "${VIRTQEMUD_MEMORY_TEMPLATE_DIR:-}" ]; then
        echo "memory_template_dir = \"$VIRTQEMUD_MEMORY_TEMPLATE_DIR\"" >>"$ETC/qemu.conf"
    fi
    if [ "${VIRTQEMUD_SELINUX_MOCK:-0}" = 1 ]; then
        echo 'security_driver = "selinux"' >>"$ETC/qemu.conf"
    fi
    cat >"$ETC/virtqemud.conf" <<CONF
# Written by scripts/daemon.sh.
log_outputs = "${VIRTQEMUD_LOG_LEVEL:-3}:file:$LOG/virtqemud.log"
log_filters = "${VIRTQEMUD_LOG_FILTERS:-}"
CONF
    cat >"$ETC/virtlogd.conf" <<CONF
log_outputs = "3:file:$LOG/virtlogd.log"
CONF
    cat >"$ETC/libvirt.conf" <<CONF
uri_default = "qemu:///system"
CONF
}

# pid of a running daemon from its pid file, or nothing
daemon_pid() {
    pidfile="$RUN/$1.pid"
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
       grep -q "$1" "/proc/$pid/cmdline" 2>/dev/null; then
        echo "$pid"
    fi
}

wait_gone() {
    for _ in $(seq 1 100); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null || true
}

start_one() {
    name=$1
    pid=$(daemon_pid "$name")
    # The drivers are modules: a rebuilt driver does not relink the daemon.
    if [ -n "$pid" ] &&
       [ -n "$(find "$MESON_DIR/src" -maxdepth 1 \( -name "$name" -o -name '*.so' \) \
               -newer "$RUN/$name.pid" -print -quit)" ]; then
        echo "run: $name was rebuilt, restarting it" >&2
        kill "$pid"
        wait_gone "$pid"
        pid=""
    fi
    [ -z "$pid" ] || return 0
    rm -f "$RUN/$name.pid"
    # QEMU, started by virtqemud as a daemon, is reaped by PID 1, which
    # here takes ~1.5 s; libvirt waits for that on every destroy. tini
    # reaps it at once, as systemd does on a real host.
    set --
    if [ "${LIBVIRT_ASAN:-0}" = 1 ]; then
        # A memory error aborts the daemon and leaves a report next to its
        # log. Leaks are not checked: the daemons are stopped by a signal.
        set -- ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:log_path=$LOG/asan"
    fi
    if [ "$name" = virtqemud ] && [ "${VIRTQEMUD_SELINUX_MOCK:-0}" = 1 ]; then
        # ASan must come first, and its build has no test helpers.
        [ "${LIBVIRT_ASAN:-0}" != 1 ] || die "VIRTQEMUD_SELINUX_MOCK needs the build without ASan"
        # No SELinux kernel here: libvirt's test helper and ours fake it,
        # so labels become user.libvirt.selinux xattrs.
        mock="$BUILD_DIR/selinux-mock.so"
        gcc -shared -fPIC -Wall -Werror -o "$mock" "$ROOT/tests/e2e/selinux-mock.c"
        set -- "$@" LD_PRELOAD="$MESON_DIR/tests/libsecurityselinuxhelper.so $mock" \
            FAKE_SELINUX_CONTEXT=system_u:system_r:virtd_t:s0-s0:c0.c1023
    fi
    setsid tini -s -- env "$@" "$MESON_DIR/src/$name" --config "$ETC/$name.conf" \
        --pid-file "$RUN/$name.pid" </dev/null >/dev/null 2>&1 9>&- &
    reaper=$!
    for _ in $(seq 1 100); do
        [ -S "$RUN/libvirt/$name-sock" ] && [ -n "$(daemon_pid "$name")" ] && return 0
        kill -0 "$reaper" 2>/dev/null || break
        sleep 0.1
    done
    die "$name did not come up; see $LOG/$name.log"
}

start() {
    write_config
    start_one virtlogd
    start_one virtqemud
}

stop() {
    pid=$(daemon_pid virtqemud)
    if [ -n "$pid" ]; then
        for dom in $("$MESON_DIR/tools/virsh" -q list --name 2>/dev/null); do
            "$MESON_DIR/tools/virsh" -q destroy "$dom" >/dev/null 2>&1 || true
        done
        kill "$pid"
        wait_gone "$pid"
    fi
    # QEMU processes left behind by a daemon that died.
    for pidfile in "$QEMU_RUN"/*.pid; do
        [ -f "$pidfile" ] || continue
        qpid=$(cat "$pidfile")
        if [ -n "$qpid" ] && grep -q qemu "/proc/$qpid/cmdline" 2>/dev/null; then
            kill "$qpid" 2>/dev/null || true
            wait_gone "$qpid"
        fi
        rm -f "$pidfile"
    done
    pid=$(daemon_pid virtlogd)
    if [ -n "$pid" ]; then
        kill "$pid"
        wait_gone "$pid"
    fi
}

mkdir -p "$RUN"
exec 9>"$RUN/daemon.lock"
flock 9
case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) die "usage: daemon.sh start|stop" ;;
esac
