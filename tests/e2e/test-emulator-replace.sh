#!/bin/sh
# virsh emulator-replace: a running guest with a qcow2 disk moves to a new
# QEMU process started from its emulator binary as installed now, with its
# RAM where it is: the heartbeat, the data checksum and the disk's writes
# go on, no reboot, and the new process runs the new file. A paused guest
# stays paused; a template producer (template memory) moves as well.
# Refusals come first and change nothing; a new process that fails to
# start or to load the state leaves the guest running on the old one.
set -eu
. "$(dirname "$0")/lib.sh"

dom=e2e-replace
plain=e2e-replace-plain
disk="$E2E_DIR/$dom.qcow2"
emudir="$E2E_DIR/emulator"
emu="$emudir/qemu-system-x86_64"
stamped="$E2E_DIR/$dom.stamped"
cleanup() {
    [ -z "${stamper:-}" ] || kill "$stamper" 2>/dev/null || true
    cleanup_domain $dom
    cleanup_domain $plain
    cleanup_template e2e-replace-tmpl
    rm -rf "$emudir" "$stamped" "$disk"
}
trap cleanup EXIT
cleanup

# "install" QEMU at $emu as a package update does: a new file renamed over
# the old one, so that the running process keeps the old, deleted, inode
install_emulator() {
    cp /usr/bin/qemu-system-x86_64 "$emu.new"
    chmod 0755 "$emu.new"
    mv -f "$emu.new" "$emu"
}

# wrapper NAME PYTHON: an emulator that runs PYTHON with the arguments in
# 'args' and then QEMU with them; capabilities are probed through it too
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

mkdir -p "$emudir"
chmod 0755 "$emudir"
install_emulator

qemu-img create -q -f qcow2 "$disk" 16M
boot_guest $dom --file-memory --fill 32 --period 0.2 --emulator "$emu" --disk "$disk"
sum=$(heartbeat_after "$E2E_DIR/$dom.console" 1 60 | sed 's/.* sum=\([^ ]*\) .*/\1/')
[ "$sum" != none ] || fail "no data checksum"

# each console line with the time it appeared
tail -n 0 -F "$E2E_DIR/$dom.console" 2>/dev/null | while IFS= read -r line; do
    echo "$(date +%s.%N) $line"
done >"$stamped" &
stamper=$!

old=$(qemu_pid $dom)
install_emulator
inode=$(stat -c %i "$emu")
sleep 2
before=$(last_heartbeat "$E2E_DIR/$dom.console" | sed 's/^HEARTBEAT n=\([0-9]*\) .*/\1/')
virsh emulator-replace $dom >/dev/null || fail "emulator-replace failed"
new=$(qemu_pid $dom)
[ "$new" != "$old" ] || fail "still the old process $old"
kill -0 "$old" 2>/dev/null && fail "the old process $old still runs"
[ "$(stat -L -c %i "/proc/$new/exe")" = "$inode" ] ||
    fail "the new process does not run the new file: $(ls -l "/proc/$new/exe")"
[ "$(virsh domstate $dom)" = running ] || fail "not running: $(virsh domstate $dom)"
downtime=$(virsh domjobinfo $dom --completed | awk '/^Total downtime:/ { print $3 }')
[ -n "$downtime" ] || fail "no downtime in the completed job: $(virsh domjobinfo $dom --completed)"

after=$(heartbeat_after "$E2E_DIR/$dom.console" $((before + 10)) 60) ||
    fail "the guest stopped after the replacement"
[ "$(ready_count $dom)" = 1 ] || fail "the guest rebooted"
echo "$after" | grep -q " sum=$sum " || fail "the data changed: $after (was sum=$sum)"
# each heartbeat writes its rand to the disk and reads it back
echo "$after" | awk '{ for (i = 1; i <= NF; i++) { if ($i ~ /^disk=/) d = substr($i, 6); if ($i ~ /^rand=/) r = substr($i, 6) } }
                     END { exit !(d == r) }' || fail "the disk did not read back its write: $after"
kill "$stamper"
stamper=
# the longest pause between heartbeats around the replacement: the
# heartbeat period, the downtime, and a margin for the host
gap=$(awk '/ HEARTBEAT / { if (last) { d = $1 - last; if (d > max) max = d } last = $1 }
           END { printf "%d", max * 1000 }' "$stamped")
[ "$gap" -le $((200 + downtime + 1000)) ] ||
    fail "the heartbeat paused $gap ms, downtime $downtime ms"
echo "replaced: pid $old -> $new (runs inode $inode), downtime $downtime ms, longest heartbeat gap $gap ms, heartbeat n=$before -> $(echo "$after" | cut -d' ' -f2), sum=$sum"

# the daemon finds the new process again after a restart
restart_daemon
[ "$(virsh domstate $dom)" = running ] || fail "after a daemon restart: $(virsh domstate $dom)"
[ "$(qemu_pid $dom)" = "$new" ] || fail "after a daemon restart: another process"
echo "daemon restart: reconnected to pid $new"

# a paused guest stays paused and runs on when resumed
virsh suspend $dom >/dev/null
old=$new
virsh emulator-replace $dom >/dev/null || fail "emulator-replace of a paused guest failed"
new=$(qemu_pid $dom)
[ "$new" != "$old" ] || fail "paused: still the old process"
[ "$(virsh domstate $dom)" = paused ] || fail "not paused: $(virsh domstate $dom)"
virsh resume $dom >/dev/null
last=$(last_heartbeat "$E2E_DIR/$dom.console" | sed 's/^HEARTBEAT n=\([0-9]*\) .*/\1/')
heartbeat_after "$E2E_DIR/$dom.console" "$last" 30 >/dev/null || fail "paused: no heartbeat after resume"
echo "paused: replaced ($old -> $new) and stayed paused, runs on after resume"

# failures: each leaves the guest running on the process it had
check_kept() {
    [ "$(qemu_pid $dom)" = "$new" ] || fail "$1: the process changed"
    [ "$(virsh domstate $dom)" = running ] || fail "$1: $(virsh domstate $dom)"
    _n=$(last_heartbeat "$E2E_DIR/$dom.console" | sed 's/^HEARTBEAT n=\([0-9]*\) .*/\1/')
    heartbeat_after "$E2E_DIR/$dom.console" "$_n" 30 >/dev/null || fail "$1: the guest stopped"
    [ "$(ready_count $dom)" = 1 ] || fail "$1: the guest rebooted"
}
expect_error "missing binary" "is not an executable file" \
    virsh emulator-replace $dom --emulator "$emudir/missing"
check_kept "missing binary"
# a real QEMU build whose only machine type is microvm
expect_error "incompatible machine type" "does not support machine type '$(virsh dumpxml $dom | sed -n "s/.*machine='\([^']*\)'.*/\1/p")'" \
    virsh emulator-replace $dom --emulator /usr/bin/qemu-system-x86_64-microvm
check_kept "incompatible machine type"
wrapper fails-to-start 'if incoming: sys.exit("refusing to start")'
expect_error "binary failing to start" "refusing to start" \
    virsh emulator-replace $dom --emulator "$emudir/fails-to-start"
check_kept "binary failing to start"
# without the serial port the new process cannot load the old one's state
wrapper loses-state '
if incoming:
    i = next(i for i, a in enumerate(args) if "isa-serial" in a)
    del args[i - 1:i + 1]'
expect_error "migration failure" "load of migration failed" \
    virsh emulator-replace $dom --emulator "$emudir/loses-state"
check_kept "migration failure"
echo "failures (missing binary, incompatible machine type, failing to start, migration failure): the guest kept running on pid $new"

# refusals
boot_guest $plain
expect_error "RAM not shared" "it needs <memoryBacking> with <source type='file'/> or <source type='memfd'/>, and <access mode='shared'/>" \
    virsh emulator-replace $plain
virsh destroy $plain >/dev/null
expect_error "not running" "domain is not running" virsh emulator-replace $plain
# a template producer moves too, and can become a template afterwards
boot_guest e2e-replace-tmpl --template
virsh emulator-replace e2e-replace-tmpl >/dev/null || fail "emulator-replace of a template producer failed"
last=$(last_heartbeat "$E2E_DIR/e2e-replace-tmpl.console" | sed 's/^HEARTBEAT n=\([0-9]*\) .*/\1/')
heartbeat_after "$E2E_DIR/e2e-replace-tmpl.console" "$last" 30 >/dev/null || fail "template producer: no heartbeat after"
virsh template-create e2e-replace-tmpl >/dev/null
clone=$(virsh clone-from-template e2e-replace-tmpl | head -n 1)
expect_error "clone of a template" "is a clone of a VM template: its RAM is private" \
    virsh emulator-replace "$clone"
echo "PASS: a running and a paused guest moved to a new QEMU with their RAM in place; failures and refusals kept the old one"
