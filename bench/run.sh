#!/bin/sh
# Start-to-running benchmark of the small guest, one session, methods side
# by side (see bench/README.md).  Not a test: it never fails on a number.
#   bench/run.sh [RUNS]        default 5 runs per method
set -eu
. "$(dirname "$0")/../scripts/lib.sh"

runs=${1:-5}
memory=${BENCH_MEMORY_MIB:-256}
fill=$((memory / 2))
period=0.02
out="$ROOT/bench/results"
work="$BUILD_DIR/bench"
mkdir -p "$out" "$work"
tmpl=bench-template

virsh() {
    "$ROOT/run" virsh "$@"
}
cleanup() {
    for d in $(virsh list --all --name 2>/dev/null | grep '^bench-'); do
        virsh destroy "$d" >/dev/null 2>&1 || true
        virsh undefine --remove-template "$d" >/dev/null 2>&1 || true
    done
    rm -f "$work/bench.save"
}
trap cleanup EXIT

ms() {
    date +%s%3N
}
# beat_after FILE N: wait for a complete heartbeat line after the first N lines
beat_after() {
    until tail -n +"$(($2 + 1))" "$1" 2>/dev/null | tr -d '\r' | grep -qE '^HEARTBEAT .* rand=[0-9a-f]{16}$'; do
        sleep 0.002
    done
}
lines() {
    wc -l <"$1" 2>/dev/null || echo 0
}
median() {
    sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
guestxml() {
    "$ROOT/tests/guest/domxml.sh" "$1" "$work/$1.console" --memory "$memory" \
        --fill "$fill" --period "$period" --no-verify $2 >"$work/$1.xml"
    rm -f "$work/$1.console"
}

cleanup
echo "bench: $memory MiB guest, $fill MiB filled, $runs runs per method" >&2

# Producer and template.
guestxml $tmpl --template
virsh define "$work/$tmpl.xml" >/dev/null
virsh start $tmpl >/dev/null
beat_after "$work/$tmpl.console" 0
: >"$work/create.ms"
t0=$(ms); virsh template-create $tmpl >/dev/null; echo $(( $(ms) - t0 )) >>"$work/create.ms"

# A plain guest for cold boot, create --paused and save/restore.
guestxml bench-plain ""
: >"$work/boot.ms"; : >"$work/paused.ms"; : >"$work/restore.ms"; : >"$work/clone.ms"
: >"$work/clone-virsh.ms"; : >"$work/save.ms"
for i in $(seq 1 "$runs"); do
    echo "bench: run $i/$runs" >&2
    # libvirt's own paused start of the same guest, then kill it
    t0=$(ms); virsh create --paused "$work/bench-plain.xml" >/dev/null; echo $(( $(ms) - t0 )) >>"$work/paused.ms"
    virsh destroy bench-plain >/dev/null
    # clone from the template to its next heartbeat
    t0=$(ms); c=$(virsh clone-from-template $tmpl); t1=$(ms)
    beat_after "$work/$c.console" 0
    echo $(( $(ms) - t0 )) >>"$work/clone.ms"; echo $(( t1 - t0 )) >>"$work/clone-virsh.ms"
    virsh destroy $c >/dev/null
done
# Cold boot and save/restore are slow: fewer pairs would not be fair, so
# do them last with the same number of runs.
for i in $(seq 1 "$runs"); do
    rm -f "$work/bench-plain.console"
    t0=$(ms); virsh create "$work/bench-plain.xml" >/dev/null
    beat_after "$work/bench-plain.console" 0
    echo $(( $(ms) - t0 )) >>"$work/boot.ms"
    t0=$(ms); virsh save bench-plain "$work/bench.save" >/dev/null; echo $(( $(ms) - t0 )) >>"$work/save.ms"
    n=$(lines "$work/bench-plain.console")
    t0=$(ms); virsh restore "$work/bench.save" >/dev/null
    beat_after "$work/bench-plain.console" "$n"
    echo $(( $(ms) - t0 )) >>"$work/restore.ms"
    virsh destroy bench-plain >/dev/null
    rm -f "$work/bench.save"
done
g=$("$ROOT/tests/guest/build.sh")
"$ROOT/bench/raw-qemu-clone.py" "$g/vmlinuz" "$g/initrd.img" "$memory" "$fill" "$period" "$runs" >"$work/raw.ms"

m() {
    median <"$work/$1.ms"
}
clone=$(m clone)
{
    echo "# Start to running, $memory MiB guest ($fill MiB filled), median of $runs"
    echo
    echo "Machine: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1), $(nproc) cores," \
         "kernel $(uname -r), $(/usr/bin/qemu-system-x86_64 --version | head -n 1), libvirt $LIBVIRT_VERSION + series, TCG"
    echo
    echo "| method | median (ms) | clone / method |"
    echo "|---|---|---|"
    for k in boot:"cold boot (virsh create to first heartbeat)" \
             paused:"virsh create --paused (returns; guest not running)" \
             restore:"virsh restore to next heartbeat" \
             clone:"virsh clone-from-template to next heartbeat" \
             clone-virsh:"virsh clone-from-template (returns)" \
             raw:"raw QEMU templating to next heartbeat (no libvirt)" \
             save:"virsh save" create:"virsh template-create (1 run)"; do
        v=$(m "${k%%:*}")
        printf '| %s | %s | %s |\n' "${k#*:}" "$v" "$(awk -v a="$clone" -v b="$v" 'BEGIN { printf "%.2f", a / b }')"
    done
} | tee "$out/start-$memory.md"
