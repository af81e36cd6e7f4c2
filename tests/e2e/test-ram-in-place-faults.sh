#!/bin/sh
# The daemon killed with SIGKILL at several points of virsh save and virsh
# restore of a guest whose RAM stays in place: after it starts again, the
# guest either runs on (the save undone, or the restore done) or is saved
# with its RAM kept, and then restores; always with the data it had, never
# rebooted (the guest fills its RAM with random data at each boot, so the
# checksum tells a boot apart). Prints a FAULT row.
set -eu
. "$(dirname "$0")/lib.sh"

dom=e2e-ram-in-place-fault
image="$E2E_DIR/$dom.save"
cleanup() {
    cleanup_template $dom
    rm -f "$image" "$E2E_DIR/$dom.out" "$E2E_DIR/$dom.restore"
}
trap cleanup EXIT
cleanup

boot_guest $dom --template --fill 16 --period 0.2
sum=$(heartbeat_after "$E2E_DIR/$dom.console" 1 60 | sed 's/.* sum=\([^ ]*\) .*/\1/')
[ "$sum" != none ] || fail "no data checksum"

last_n() {
    last_heartbeat "$E2E_DIR/$dom.console" | sed 's/^HEARTBEAT n=\([0-9]*\) .*/\1/'
}

# settled: the state once the restarted daemon has recovered the job
settled() {
    virsh list >/dev/null
    for _ in $(seq 1 100); do
        _state=$(virsh domstate $dom)
        case "$_state" in
            running|"shut off") break ;;
        esac
        # restored but not resumed when the daemon died: the guest's to run
        if [ "$(virsh domstate --reason $dom)" = "paused (user)" ]; then
            virsh resume $dom >/dev/null
            continue
        fi
        sleep 0.1
    done
    echo "$_state"
}

# runs_on N: the guest runs on past heartbeat N, on the data it booted with
runs_on() {
    _after=$(heartbeat_after "$E2E_DIR/$dom.console" "$1" 30) &&
        echo "$_after" | grep -q " sum=$sum "
}

# killed_during LABEL N CMD...: CMD in the background, the daemon killed
# $delay s into it. Prints 'ran' if the guest then runs on past heartbeat N,
# 'saved' if it is shut off and its image restores it to run on; fails,
# saying why, if neither.
killed_during() {
    _label=$1 _n=$2
    shift 2
    "$@" >"$E2E_DIR/$dom.out" 2>&1 &
    sleep $delay
    kill_daemon
    wait || true
    _state=$(settled)
    if [ "$_state" = running ] && runs_on "$_n"; then
        echo ran
    elif [ "$_state" = "shut off" ] &&
         virsh restore "$image" >"$E2E_DIR/$dom.restore" 2>&1 && runs_on "$_n"; then
        echo saved
    else
        echo "$_label, delay $delay: state '$(virsh domstate --reason $dom)', last heartbeat n=$(last_n)" >&2
        echo "the command killed with the daemon said:" >&2
        cat "$E2E_DIR/$dom.out" >&2
        if [ "$_state" = "shut off" ]; then
            echo "the restore after it said:" >&2
            cat "$E2E_DIR/$dom.restore" >&2
        fi
        return 1
    fi
}

injected=0 survived=0 lost=0 resumed=0 kept=0 restored=0 again=0
# the whole save takes about 0.3 s here, the restore about 0.6 s
for delay in 0.02 0.05 0.08 0.12 0.16 0.2 0.3 0.45 0.6; do
    # during the save
    n=$(last_n)
    rm -f "$image"
    injected=$((injected + 1))
    case "$(killed_during save "$n" virsh save $dom "$image")" in
        ran) survived=$((survived + 1)) resumed=$((resumed + 1)) ;;
        saved) survived=$((survived + 1)) kept=$((kept + 1)) ;;
        *) lost=$((lost + 1)); break ;;
    esac

    # during the restore
    n=$(last_n)
    virsh save $dom "$image" >/dev/null || fail "save before the restore fault failed"
    injected=$((injected + 1))
    case "$(killed_during restore "$n" virsh restore "$image")" in
        ran) survived=$((survived + 1)) restored=$((restored + 1)) ;;
        saved) survived=$((survived + 1)) again=$((again + 1)) ;;
        *) lost=$((lost + 1)); break ;;
    esac
done
fault ram-in-place-daemon-killed $injected $survived $lost
echo "daemon killed $injected times: during the save, the guest ran on $resumed times and was saved $kept times (then restored); during the restore, it was restored $restored times and restored again $again times"
[ "$lost" = 0 ] || fail "$lost guests lost"
echo "PASS: no guest lost when the daemon died during save or restore with RAM in place"
