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
work="$BUILD_DIR/demo"
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
# wait_line FILE REGEX: wait up to 300 s for a line, print it
wait_line() {
    _end=$(( $(date +%s) + 300 ))
    until _l=$(tr -d '\r' <"$1" 2>/dev/null | grep -E -m 1 "$2"); do
        [ "$(date +%s)" -lt "$_end" ] || die "no line matching '$2' in $1"
        sleep 0.02
    done
    echo "$_l"
}
field() {
    echo "$2" | sed -n "s/.* $1=\([^ ]*\).*/\1/p"
}
# smaps KEY PID: sum of KEY over the process's mappings, in MiB
smaps() {
    awk -v k="$1:" '$1 == k { s += $2 } END { printf "%.1f", s / 1024 }' "/proc/$2/smaps_rollup"
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
wait_line "$work/$tmpl.console" '^GUEST-READY' >/dev/null
boot=$(( $(ms) - t0 ))
wait_line "$work/$tmpl.console" '^HEARTBEAT n=2 ' >/dev/null

t0=$(ms)
virsh template-create "$tmpl" >/dev/null
create=$(( $(ms) - t0 ))
last=$(tr -d '\r' <"$work/$tmpl.console" | grep '^HEARTBEAT' | tail -n 1)
echo "  template point: $last"
ls -l "$PREFIX/var/lib/libvirt/qemu/template/$tmpl" | sed 's/^/  /'

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
    first=$(wait_line "$work/$c.console" '^HEARTBEAT')
    checked=$(wait_line "$work/$c.console" '^HEARTBEAT .* checks=[1-9][0-9]* rand=[0-9a-f]{16}$')
    [ "$(field n "$first")" = $((tn + 1)) ] || die "$c did not continue the template's counter: $first"
    [ "$(field sum "$checked")" = "$tsum" ] || die "$c's data differs from the template's: $checked"
    echo "  $c: $checked"
done

printf '\n| step                                  | time (ms) | PSS (MiB) | USS (MiB) | shared (MiB) |\n'
printf '|---------------------------------------|-----------|-----------|-----------|--------------|\n'
printf '| cold boot to ready (%4d MiB filled)  | %9d |           |           |              |\n' "$fill" "$boot"
printf '| template-create                       | %9d |           |           |              |\n' "$create"
for i in $(seq 1 "$nclones"); do
    c="$tmpl-clone-$i"
    pid=$(cat "$PREFIX/var/run/libvirt/qemu/$c.pid")
    uss=$(awk '$1 == "Private_Clean:" || $1 == "Private_Dirty:" { s += $2 } END { printf "%.1f", s / 1024 }' "/proc/$pid/smaps_rollup")
    shared=$(awk '$1 == "Shared_Clean:" || $1 == "Shared_Dirty:" { s += $2 } END { printf "%.1f", s / 1024 }' "/proc/$pid/smaps_rollup")
    eval "t=\$start_$i"
    printf '| %-37s | %9d | %9s | %9s | %12s |\n' "clone $c" "$t" "$(smaps Pss "$pid")" "$uss" "$shared"
done
echo
echo "Every clone resumed at heartbeat n=$((tn + 1)) with the template's data checksum $tsum;"
echo "their random bytes differ (fresh genid each). Clone start time is 'virsh clone-from-template'"
echo "wall time, including virsh itself."
echo "demo: destroying the clones, removing the template, stopping the daemon"
