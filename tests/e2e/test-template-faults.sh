#!/bin/sh
# Faults injected into real template operations: the daemon killed with
# SIGKILL during template-create, during clone starts and with 8 clones
# running; the disk filling up while the device state is saved. After each,
# no half template is visible, clones are reconnected, nothing the guests
# hold is lost and the template still clones. Prints a FAULT row per kind.
set -eu
. "$(dirname "$0")/lib.sh"

tmpl=e2e-fault
dir="$(template_dir $tmpl)"
record="$(template_record $tmpl)"
base="$E2E_DIR/$tmpl-base.img"
# the full disk of part 4: a small tmpfs on the template directory
mnt="$dir"
cleanup() {
    cleanup_template $tmpl
    rm -f "$base"
    if mountpoint -q "$mnt"; then
        umount "$mnt"
    fi
}
trap cleanup EXIT
cleanup

# Every FAULT row also goes to a file, to be checked at the end.
faults="$E2E_DIR/faults"
: >"$faults"
row() {
    fault "$@" | tee -a "$faults"
}

# wait_gone NAME: the QEMU of NAME is gone within 20 s (a reconnect that
# gives up on a domain stops it in the background).
wait_gone() {
    for _ in $(seq 1 200); do
        [ -n "$(qemu_pids "$1")" ] || return 0
        sleep 0.1
    done
    return 1
}

# start_producer [domxml.sh options]: a running template-to-be with a disk.
start_producer() {
    rm -f "$base"
    truncate -s 8M "$base"
    chmod 0640 "$base"
    virsh define "$(domxml $tmpl --memory 256 --fill 16 --disk "$base" --template "$@")" >/dev/null
    virsh start $tmpl >/dev/null
    wait_for_line "$E2E_DIR/$tmpl.console" '^HEARTBEAT .* checks=[1-9]' 120 >/dev/null ||
        fail "the producer did not come up"
}

# check_clone NAME N SUM: NAME runs on from heartbeat N with data SUM;
# prints 1 if its data was lost.
check_clone() {
    _beat=$(heartbeat_after "$E2E_DIR/$1.console" "$2" 60) || fail "$1 does not run on from n=$2"
    if [ "$(field sum "$_beat")" = "$3" ]; then
        echo 0
    else
        echo "$1: data lost: sum=$3 before, '$_beat' after" >&2
        echo 1
    fi
}

# ignore_shared NAME: the state of x-ignore-shared in the QEMU of NAME.
ignore_shared() {
    virsh qemu-monitor-command "$1" '{"execute":"query-migrate-capabilities"}' |
        python3 -c 'import json, sys; print([c["state"] for c in json.load(sys.stdin)["return"] if c["capability"] == "x-ignore-shared"])'
}

# 1. SIGKILL during template-create, at several points of it.
injected=0 survived=0 lost=0 done_=0 undone=0
# 'taken': as soon as the daemon has taken the RAM files (immutable).
for delay in 0.01 0.03 0.06 0.1 0.2 taken; do
    start_producer
    virsh template-create $tmpl >"$E2E_DIR/fault-create.out" 2>&1 &
    if [ $delay = taken ]; then
        for _ in $(seq 1 500); do
            ! lsattr "$dir/pc.ram" 2>/dev/null | cut -d' ' -f1 | grep -q i || break
            sleep 0.01
        done
    else
        sleep $delay
    fi
    kill_daemon
    wait || true
    injected=$((injected + 1))
    virsh list >/dev/null
    if virsh list --all --template --name | grep -qx $tmpl; then
        # Made it: a whole template whose producer does not run on.
        wait_gone $tmpl || fail "delay $delay: the producer of a complete template still runs"
        [ -f "$dir/template.save" ] && [ -f "$record" ] || fail "delay $delay: half a template"
        # protected once the reconnect has stopped the producer, in the background
        for _ in $(seq 1 100); do
            [ "$(stat -c %a "$base")" != 440 ] || break
            sleep 0.1
        done
        [ "$(stat -c %a "$base")" = 440 ] || fail "delay $delay: the base of a template is writable"
        beat=$(last_heartbeat "$E2E_DIR/$tmpl.console")
        virsh clone-from-template $tmpl --name $tmpl-c >/dev/null || fail "delay $delay: the template does not clone"
        lost=$((lost + $(check_clone $tmpl-c "$(field n "$beat")" "$(field sum "$beat")")))
        virsh destroy $tmpl-c >/dev/null
        virsh undefine --remove-template $tmpl >/dev/null
        done_=$((done_ + 1))
    else
        # Rolled back: the domain runs on, with nothing of a template left.
        [ "$(virsh domstate $tmpl)" = running ] || fail "delay $delay: the producer is $(virsh domstate $tmpl)"
        for f in "$dir/template.save" "$dir/template.save.partial" "$record"; do
            [ ! -e "$f" ] || fail "delay $delay: $f left"
        done
        [ "$(stat -c %a "$base")" = 640 ] || fail "delay $delay: the base is still read-only"
        # the RAM file is the producer's again, as a start makes it
        lsattr "$dir/pc.ram" | cut -d' ' -f1 | grep -q i && fail "delay $delay: the RAM file stays immutable"
        [ "$(stat -c %U "$dir/pc.ram")" = "$QEMU_USER" ] && [ -n "$(find "$dir/pc.ram" -perm -u=w)" ] ||
            fail "delay $delay: the RAM file stays the daemon's: $(stat -c '%U:%G %a' "$dir/pc.ram")"
        # x-ignore-shared left on would leave the RAM out of internal snapshots
        [ "$(ignore_shared $tmpl)" = "[False]" ] ||
            fail "delay $delay: x-ignore-shared is $(ignore_shared $tmpl) after the crash"
        beat=$(last_heartbeat "$E2E_DIR/$tmpl.console")
        lost=$((lost + $(check_clone $tmpl "$(field n "$beat")" "$(field sum "$beat")")))
        virsh template-create $tmpl >/dev/null || fail "delay $delay: template-create after the crash failed"
        virsh undefine --remove-template $tmpl >/dev/null
        undone=$((undone + 1))
    fi
    survived=$((survived + 1))
done
echo "daemon killed during template-create: $done_ completed, $undone rolled back"
row "SIGKILL during template-create" $injected $survived $lost

# 2. SIGKILL during clone starts.
start_producer
virsh template-create $tmpl >/dev/null
tbeat=$(last_heartbeat "$E2E_DIR/$tmpl.console")
tn=$(field n "$tbeat")
tsum=$(field sum "$tbeat")
injected=0 survived=0 lost=0 running=0 gone=0
for delay in 0.02 0.08 0.15 0.3; do
    c=$tmpl-k$injected
    virsh clone-from-template $tmpl --name $c >/dev/null 2>&1 &
    sleep $delay
    kill_daemon
    wait || true
    injected=$((injected + 1))
    virsh list >/dev/null
    if virsh domstate $c >/dev/null 2>&1 && [ -n "$(qemu_pids $c)" ]; then
        [ "$(virsh domstate $c)" = running ] || fail "$c is $(virsh domstate $c) after the crash"
        lost=$((lost + $(check_clone $c "$tn" "$tsum")))
        virsh destroy $c >/dev/null
        running=$((running + 1))
    else
        wait_gone $c || fail "a QEMU of $c is left"
        gone=$((gone + 1))
    fi
    # A clone the reconnect gives up on is stopped, overlays and all, in
    # the background.
    for _ in $(seq 1 100); do
        [ -e "$dir/clones/$c" ] || break
        sleep 0.1
    done
    [ ! -e "$dir/clones/$c" ] || fail "overlays of $c are left"
    survived=$((survived + 1))
done
virsh clone-from-template $tmpl --name $tmpl-after >/dev/null || fail "the template does not clone after the crashes"
lost=$((lost + $(check_clone $tmpl-after "$tn" "$tsum")))
virsh destroy $tmpl-after >/dev/null
echo "daemon killed during clone starts: $running clones running, $gone never started"
row "SIGKILL during clone start" $injected $survived $lost

# 3. SIGKILL with 8 clones running.
virsh clone-from-template $tmpl --count 8 >"$E2E_DIR/fault-clones" || fail "8 clones failed"
for c in $(cat "$E2E_DIR/fault-clones"); do
    heartbeat_after "$E2E_DIR/$c.console" "$tn" 60 >/dev/null || fail "$c does not run"
done
kill_daemon
virsh list >/dev/null
lost=0
for c in $(cat "$E2E_DIR/fault-clones"); do
    [ "$(virsh domstate $c)" = running ] || fail "$c is not running after the crash"
    lost=$((lost + $(check_clone $c "$(field n "$(last_heartbeat "$E2E_DIR/$c.console")")" "$tsum")))
done
virsh clone-from-template $tmpl --name $tmpl-after >/dev/null || fail "the template does not clone after the crash"
lost=$((lost + $(check_clone $tmpl-after "$tn" "$tsum")))
for c in $(cat "$E2E_DIR/fault-clones") $tmpl-after; do
    virsh destroy $c >/dev/null
    [ ! -e "$dir/clones/$c" ] || fail "overlays of $c are left"
done
echo "daemon killed with 8 clones running: all 8 reconnected and running on"
row "SIGKILL with 8 clones running" 1 1 $lost
virsh undefine --remove-template $tmpl >/dev/null

# 4. The disk fills up while the device state is saved.
start_producer
virsh destroy $tmpl >/dev/null
mkdir -p "$mnt"
# room for the RAM file and 64 KiB, less than the device state needs
mount -t tmpfs -o size=$((256 * 1024 * 1024 + 65536)) tmpfs "$mnt"
# Every page of guest RAM has its place in the file, so that the guest
# cannot be the one to hit the full disk.
fallocate -l 256M "$mnt/pc.ram"
chown "$QEMU_USER:$QEMU_GROUP" "$mnt/pc.ram"
rm -f "$E2E_DIR/$tmpl.console"
virsh start $tmpl >/dev/null
wait_for_line "$E2E_DIR/$tmpl.console" '^HEARTBEAT .* checks=[1-9]' 120 >/dev/null || fail "the producer on tmpfs did not come up"
owners=$(stat -c '%n %U:%G %a' "$mnt" "$mnt/pc.ram")
expect_error "template-create on a full disk" "No space left on device" virsh template-create $tmpl
# template-create took the directory and the RAM file: given back
[ "$(stat -c '%n %U:%G %a' "$mnt" "$mnt/pc.ram")" = "$owners" ] ||
    fail "not given back after a failed template-create: $(stat -c '%n %U:%G %a' "$mnt" "$mnt/pc.ram"), was $owners"
lsattr "$mnt/pc.ram" | cut -d' ' -f1 | grep -q i && fail "the RAM file stays immutable after a failed template-create"
[ "$(virsh domstate $tmpl)" = running ] || fail "the producer is $(virsh domstate $tmpl) after a failed template-create"
# x-ignore-shared left on would leave the RAM out of internal snapshots
[ "$(ignore_shared $tmpl)" = "[False]" ] ||
    fail "x-ignore-shared is $(ignore_shared $tmpl) after a failed template-create"
[ -z "$(ls "$mnt" | grep -v '^pc.ram$')" ] || fail "files left after a failed template-create: $(ls "$mnt")"
virsh list --all --template --name | grep -qx $tmpl && fail "a template is listed"
[ "$(stat -c %a "$base")" = 640 ] || fail "the base is read-only after a failed template-create"
beat=$(last_heartbeat "$E2E_DIR/$tmpl.console")
lost=$(check_clone $tmpl "$(field n "$beat")" "$(field sum "$beat")")
mount -o remount,size=300M "$mnt"
virsh template-create $tmpl >/dev/null || fail "template-create with room failed"
virsh undefine --remove-template $tmpl >/dev/null
row "disk full during template-create" 1 1 "$lost"

[ "$(grep -c "^FAULT .* lost=[1-9]" "$faults")" = 0 ] || fail "data was lost: $(grep lost=[1-9] "$faults")"
echo "PASS: daemon crashes and a full disk survived, no data lost"
