#!/bin/sh
# virsh emulator-replace of a guest whose RAM is in a shared memfd
# (<source type='memfd'/>, <access mode='shared'/>): QEMU's cpr-transfer
# hands the RAM over by its descriptors. The guest, under load, runs on in
# the new file's process with its data and disk, none of its RAM copied;
# a paused guest stays paused. A new process that fails to start, or to
# load the state after it got the RAM, leaves the guest running on the old
# one, which saves and restores as before. A domain started without
# aux-ram-share is refused.
set -eu
. "$(dirname "$0")/lib.sh"

dom=e2e-replace-memfd
noaux=e2e-replace-memfd-noaux
disk="$E2E_DIR/$dom.qcow2"
image="$E2E_DIR/$dom.save"
emudir="$E2E_DIR/emulator-memfd"
emu="$emudir/qemu-system-x86_64"
stamped="$E2E_DIR/$dom.stamped"
cleanup() {
    [ -z "${stamper:-}" ] || kill "$stamper" 2>/dev/null || true
    cleanup_domain $dom
    cleanup_domain $noaux
    rm -rf "$emudir" "$stamped" "$disk" "$image"
}
trap cleanup EXIT
cleanup

# a package update: a new file renamed over the old one
install_emulator() {
    cp /usr/bin/qemu-system-x86_64 "$emu.new"
    chmod 0755 "$emu.new"
    mv -f "$emu.new" "$emu"
}

# wrapper NAME PYTHON: runs PYTHON on 'args', then QEMU with them
wrapper() {
    cat >"$emudir/$1" <<EOF
#!/usr/bin/python3
import os, sys
args = sys.argv[1:]
incoming = "-incoming" in args
$2
os.execv("/usr/bin/qemu-system-x86_64", ["qemu-system-x86_64"] + args)
EOF
    chmod 0755 "$emudir/$1"
}

qemu_pid() {
    pids=$(qemu_pids "$1")
    [ "$(echo "$pids" | wc -w)" = 1 ] || fail "$1: QEMU processes: '$pids'"
    echo "$pids"
}

ready_count() {
    tr -d '\r' <"$E2E_DIR/$1.console" | grep -c '^GUEST-READY' || true
}

last_n() {
    last_heartbeat "$E2E_DIR/$1.console" | sed 's/^HEARTBEAT n=\([0-9]*\) .*/\1/'
}

# ram_inode PID: the inode of the memfd with the guest's RAM in process PID
ram_inode() {
    for _fd in /proc/"$1"/fd/*; do
        case "$(readlink "$_fd")" in
            /memfd:memory-backend-memfd*) stat -L -c %i "$_fd"; return ;;
        esac
    done
}

# runs_on LABEL: the guest runs on, on the data it booted with
runs_on() {
    _after=$(heartbeat_after "$E2E_DIR/$dom.console" "$(($(last_n $dom) + 2))" 60) ||
        fail "$1: the guest stopped"
    [ "$(ready_count $dom)" = 1 ] || fail "$1: the guest rebooted"
    echo "$_after" | grep -q " sum=$sum " || fail "$1: the data changed: $_after (was sum=$sum)"
    echo "$_after"
}

mkdir -p "$emudir"
chmod 0755 "$emudir"
install_emulator

qemu-img create -q -f qcow2 "$disk" 16M
boot_guest $dom --memfd-memory --fill 32 --period 0.2 --emulator "$emu" --disk "$disk"
sum=$(heartbeat_after "$E2E_DIR/$dom.console" 1 60 | sed 's/.* sum=\([^ ]*\) .*/\1/')
[ "$sum" != none ] || fail "no data checksum"
old=$(qemu_pid $dom)
tr '\0' '\n' <"/proc/$old/cmdline" | grep -q 'aux-ram-share=on' ||
    fail "started without aux-ram-share: $(tr '\0' ' ' <"/proc/$old/cmdline")"

ram=$(ram_inode "$old")
[ -n "$ram" ] || fail "no RAM memfd in process $old: $(ls -l /proc/$old/fd)"

tail -n 0 -F "$E2E_DIR/$dom.console" 2>/dev/null | while IFS= read -r line; do
    echo "$(date +%s.%N) $line"
done >"$stamped" &
stamper=$!

install_emulator
inode=$(stat -c %i "$emu")
sleep 2
before=$(last_n $dom)
virsh emulator-replace $dom >/dev/null || fail "emulator-replace failed"
new=$(qemu_pid $dom)
[ "$new" != "$old" ] || fail "still the old process $old"
kill -0 "$old" 2>/dev/null && fail "the old process $old still runs"
[ "$(stat -L -c %i "/proc/$new/exe")" = "$inode" ] ||
    fail "the new process does not run the new file: $(ls -l "/proc/$new/exe")"
[ "$(virsh domstate $dom)" = running ] || fail "not running: $(virsh domstate $dom)"
jobinfo=$(virsh domjobinfo $dom --completed)
downtime=$(echo "$jobinfo" | awk '/^Total downtime:/ { print $3 }')
[ -n "$downtime" ] || fail "no downtime in the completed job: $jobinfo"
# the new process maps the very memfd the old one had: no copy of the RAM
[ "$(ram_inode "$new")" = "$ram" ] ||
    fail "the new process has another RAM memfd: inode $(ram_inode "$new"), was $ram"

after=$(runs_on "replaced")
echo "$after" | awk '{ for (i = 1; i <= NF; i++) { if ($i ~ /^disk=/) d = substr($i, 6); if ($i ~ /^rand=/) r = substr($i, 6) } }
                     END { exit !(d == r) }' || fail "the disk did not read back its write: $after"
kill "$stamper"
stamper=
gap=$(awk '/ HEARTBEAT / { if (last) { d = $1 - last; if (d > max) max = d } last = $1 }
           END { printf "%d", max * 1000 }' "$stamped")
[ "$gap" -le $((200 + downtime + 1000)) ] ||
    fail "the heartbeat paused $gap ms, downtime $downtime ms"
echo "replaced: pid $old -> $new (runs inode $inode, maps RAM memfd inode $ram), downtime $downtime ms, longest heartbeat gap $gap ms, heartbeat n=$before -> $(echo "$after" | cut -d' ' -f2), sum=$sum"

restart_daemon
[ "$(qemu_pid $dom)" = "$new" ] || fail "after a daemon restart: another process"
[ "$(virsh domstate $dom)" = running ] || fail "after a daemon restart: $(virsh domstate $dom)"

virsh suspend $dom >/dev/null
old=$new
virsh emulator-replace $dom >/dev/null || fail "emulator-replace of a paused guest failed"
new=$(qemu_pid $dom)
[ "$new" != "$old" ] || fail "paused: still the old process"
[ "$(virsh domstate $dom)" = paused ] || fail "not paused: $(virsh domstate $dom)"
virsh resume $dom >/dev/null
runs_on "paused" >/dev/null
echo "paused: replaced ($old -> $new) and stayed paused, runs on after resume"

# failures: the guest runs on in the process it had, which still saves
check_kept() {
    [ "$(qemu_pid $dom)" = "$new" ] || fail "$1: the process changed"
    [ "$(virsh domstate $dom)" = running ] || fail "$1: $(virsh domstate $dom)"
    runs_on "$1" >/dev/null
}
wrapper fails-to-start 'if incoming: sys.exit("refusing to start")'
expect_error "binary failing to start" "refusing to start" \
    virsh emulator-replace $dom --emulator "$emudir/fails-to-start"
check_kept "binary failing to start"
# without the serial port the new process gets the RAM, then cannot load
# the old one's state
wrapper loses-state '
if incoming:
    i = next(i for i, a in enumerate(args) if "isa-serial" in a)
    del args[i - 1:i + 1]'
expect_error "migration failure after the RAM was sent" "load of migration failed" \
    virsh emulator-replace $dom --emulator "$emudir/loses-state"
check_kept "migration failure after the RAM was sent"
# the migration mode is back to normal: a save holds the RAM and restores
saved_n=$(last_n $dom)
virsh save $dom "$image" >/dev/null || fail "save after a failed replacement failed"
virsh restore "$image" >/dev/null || fail "restore after a failed replacement failed"
# the restore starts the console file again: the counter goes on, no boot
after=$(heartbeat_after "$E2E_DIR/$dom.console" "$saved_n" 60) ||
    fail "restore after a failed replacement: no heartbeat after n=$saved_n"
[ "$(ready_count $dom)" = 0 ] || fail "restore after a failed replacement: the guest booted"
echo "$after" | grep -q " sum=$sum " || fail "restore after a failed replacement: the data changed: $after"
echo "failures (failing to start, failing to load after the RAM was sent): the guest kept running; it saves and restores"

# started without QEMU's own RAM in memfds
wrapper no-aux 'args = [a.replace(",aux-ram-share=on", "") for a in args]'
boot_guest $noaux --memfd-memory --emulator "$emudir/no-aux"
noauxpid=$(qemu_pid $noaux)
expect_error "started without aux-ram-share" "was started without its emulator's own RAM in memfds" \
    virsh emulator-replace $noaux --emulator "$emu"
[ "$(qemu_pid $noaux)" = "$noauxpid" ] || fail "started without aux-ram-share: the process changed"
echo "PASS: a guest with shared memfd RAM moved to a new QEMU by cpr-transfer, running and paused; failures kept the old one"
