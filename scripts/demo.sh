#!/bin/sh
# The main job: boot the test guest as a template producer with a filled
# working set, turn it into a template, start 4 clones from it and show that
# each continues the template's run with its data and its own randomness,
# with their start times and memory.  Then remove everything it made.
set -eu
. "$(dirname "$0")/lib.sh"

tmpl=demo-template
nclones=${DEMO_CLONES:-4}
fill=${DEMO_FILL_MIB:-128}
memory=${DEMO_MEMORY_MIB:-512}
work="$STATE_DIR/demo"
mkdir -p "$work"

virsh() {
    "$ROOT/run" virsh "$@"
}
cleanup() {
    for i in $(seq 1 "$nclones"); do
        virsh destroy "$tmpl-clone-$i" >/dev/null 2>&1 || true
    done
    virsh destroy "$tmpl" >/dev/null 2>&1 || true
    virsh undefine --remove-template "$tmpl" >/dev/null 2>&1 || true
    "$ROOT/run" --stop
}
trap cleanup EXIT

ms() {
    date +%s%3N
}
# smaps PID KEY...: sum of the KEYs in the process's smaps_rollup, in MiB
smaps() {
    _pid=$1
    shift
    awk -v keys=" $* " 'index(keys, " " substr($1, 1, length($1) - 1) " ") { s += $2 }
        END { printf "%.1f", s / 1024 }' "/proc/$_pid/smaps_rollup"
}

cleanup >/dev/null 2>&1
rm -f "$work"/*.console
"$ROOT/tests/guest/domxml.sh" "$tmpl" "$work/$tmpl.console" --memory "$memory" \
    --fill "$fill" --template >"$work/$tmpl.xml"
virsh version | sed -n 's/^\(Using library\|Running hypervisor\)/  &/p'
virsh define "$work/$tmpl.xml" >/dev/null

echo "demo: cold boot of $tmpl ($memory MiB RAM, $fill MiB filled at boot, TCG)"
t0=$(ms)
virsh start "$tmpl" >/dev/null
wait_for_line "$work/$tmpl.console" '^GUEST-READY' 300 >/dev/null
boot=$(( $(ms) - t0 ))
wait_for_line "$work/$tmpl.console" '^HEARTBEAT n=2 ' 300 >/dev/null

t0=$(ms)
virsh template-create "$tmpl" >/dev/null
create=$(( $(ms) - t0 ))
last=$(tr -d '\r' <"$work/$tmpl.console" | grep '^HEARTBEAT' | tail -n 1)
echo "  template point: $last"
ls -l "$(template_dir $tmpl)" | sed 's/^/  /'

echo "demo: starting $nclones clones"
for i in $(seq 1 "$nclones"); do
    t0=$(ms)
    virsh clone-from-template "$tmpl" >/dev/null
    eval "start_$i=$(( $(ms) - t0 ))"
done
tsum=$(field sum "$last")
tn=$(field n "$last")
for i in $(seq 1 "$nclones"); do
    c="$tmpl-clone-$i"
    first=$(wait_for_line "$work/$c.console" '^HEARTBEAT' 300)
    checked=$(wait_for_line "$work/$c.console" '^HEARTBEAT .* checks=[1-9][0-9]* rand=[0-9a-f]{16}$' 300)
    [ "$(field n "$first")" = $((tn + 1)) ] || die "$c did not continue the template's counter: $first"
    [ "$(field sum "$checked")" = "$tsum" ] || die "$c's data differs from the template's: $checked"
    echo "  $c: $checked"
done

# ram_open PID: how QEMU PID holds the template's RAM file (its open flags)
ram_open() {
    _flags=$(open_flags "$1" "$(template_dir $tmpl)/pc.ram" | head -n 1)
    if [ -z "$_flags" ]; then
        echo "not open"
    elif [ $(( 0$_flags & 3 )) = 0 ]; then
        echo read-only
    else
        echo read-write
    fi
}

printf '\n| step                                  | time (ms) | PSS (MiB) | USS (MiB) | shared (MiB) | QEMU user    | RAM file  |\n'
printf '|---------------------------------------|-----------|-----------|-----------|--------------|--------------|-----------|\n'
printf '| cold boot to ready (%4d MiB filled)  | %9d |           |           |              |              |           |\n' "$fill" "$boot"
printf '| template-create                       | %9d |           |           |              |              |           |\n' "$create"
for i in $(seq 1 "$nclones"); do
    c="$tmpl-clone-$i"
    pid=$(cat "$PREFIX/var/run/libvirt/qemu/$c.pid")
    eval "t=\$start_$i"
    printf '| %-37s | %9d | %9s | %9s | %12s | %-12s | %-9s |\n' "clone $c" "$t" "$(smaps "$pid" Pss)" \
        "$(smaps "$pid" Private_Clean Private_Dirty)" "$(smaps "$pid" Shared_Clean Shared_Dirty)" \
        "$(ps -o user= -p "$pid")" "$(ram_open "$pid")"
done
echo
echo "Every clone resumed at heartbeat n=$((tn + 1)) with the template's data checksum $tsum;"
echo "their random bytes differ (fresh genid each). Clone start time is 'virsh clone-from-template'"
echo "wall time, including virsh itself."
echo "demo: destroying the clones, removing the template, stopping the daemon"
