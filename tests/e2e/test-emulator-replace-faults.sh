#!/bin/sh
# The daemon killed with SIGKILL at several points of virsh
# emulator-replace, of a guest with its RAM in a shared file
# (x-ignore-shared) and of one with its RAM in a shared memfd
# (cpr-transfer): after it starts again, the guest runs on in exactly one
# QEMU process (the old or the new one, whichever had it), with its data,
# without a reboot, and the next replacement works; the memfd guest also
# saves and restores (its migration mode is normal again). Prints a FAULT
# row for each.
set -eu
. "$(dirname "$0")/lib.sh"

dom=e2e-replace-fault
image="$E2E_DIR/$dom.save"
cleanup() {
    cleanup_domain $dom
    rm -f "$image"
}
trap cleanup EXIT

# killed_during ROW MEMORY-OPTION DELAYS...
killed_during() {
    _row=$1 _memory=$2
    shift 2
    cleanup
    boot_guest $dom "$_memory" --fill 16 --period 0.2
    sum=$(heartbeat_after "$E2E_DIR/$dom.console" 1 60 | sed 's/.* sum=\([^ ]*\) .*/\1/')

    injected=0 survived=0 lost=0 old=0 new=0
    for delay in "$@"; do
        before=$(qemu_pids $dom)
        virsh emulator-replace $dom >"$E2E_DIR/$dom.out" 2>&1 &
        sleep $delay
        kill_daemon
        wait || true
        injected=$((injected + 1))
        # the restarted daemon reconnects and finishes or undoes the job
        virsh list >/dev/null
        for _ in $(seq 1 100); do
            [ "$(echo $(qemu_pids $dom) | wc -w)" != 1 ] || break
            sleep 0.1
        done
        pids=$(qemu_pids $dom)
        state=$(virsh domstate $dom)
        n=$(last_heartbeat "$E2E_DIR/$dom.console" | sed 's/^HEARTBEAT n=\([0-9]*\) .*/\1/')
        if [ "$(echo $pids | wc -w)" = 1 ] && [ "$state" = running ] &&
           after=$(heartbeat_after "$E2E_DIR/$dom.console" "$n" 30) &&
           echo "$after" | grep -q " sum=$sum " &&
           [ "$(tr -d '\r' <"$E2E_DIR/$dom.console" | grep -c '^GUEST-READY')" = 1 ]; then
            survived=$((survived + 1))
            if [ "$pids" = "$before" ]; then old=$((old + 1)); else new=$((new + 1)); fi
        else
            lost=$((lost + 1))
            echo "delay $delay: QEMU processes '$pids' (before '$before'), state '$(virsh domstate --reason $dom)', last heartbeat n=$n" >&2
            cat "$E2E_DIR/$dom.out" >&2
        fi
    done
    fault $_row $injected $survived $lost
    echo "$_memory: daemon killed $injected times during emulator-replace: the guest ran on in the old process $old times, in the new one $new times"
    [ "$lost" = 0 ] || fail "$_memory: $lost guests lost"
    virsh emulator-replace $dom >/dev/null || fail "$_memory: emulator-replace after the faults failed"
    virsh save $dom "$image" >/dev/null || fail "$_memory: save after the faults failed"
    virsh restore "$image" >/dev/null || fail "$_memory: restore after the faults failed"
}

killed_during emulator-replace-daemon-killed --file-memory 0.05 0.15 0.3 0.45 0.6 0.8 1.2
killed_during emulator-replace-memfd-daemon-killed --memfd-memory 0.05 0.15 0.3 0.45 0.6 0.8 1.0 1.2 1.5
echo "PASS: no guest lost when the daemon died during emulator-replace"
