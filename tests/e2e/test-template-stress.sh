#!/bin/sh
# 32 clones of a template with a disk, started and destroyed in parallel,
# round after round for STRESS_SECONDS (default 300): every clone starts,
# and afterwards no QEMU, file descriptor, file or domain is left over.
set -eu
. "$(dirname "$0")/lib.sh"

tmpl=e2e-stress
dir="$(template_dir $tmpl)"
base="$E2E_DIR/$tmpl-base.img"
seconds=${STRESS_SECONDS:-300}
width=32
cleanup() {
    cleanup_template $tmpl
    rm -f "$base"
}
trap cleanup EXIT
cleanup

truncate -s 8M "$base"
virsh define "$(domxml $tmpl --memory 128 --period 5 --no-verify --disk "$base" --template)" >/dev/null
virsh start $tmpl >/dev/null
wait_for_line "$E2E_DIR/$tmpl.console" '^HEARTBEAT' 120 >/dev/null || fail "the template did not come up"
virsh template-create $tmpl >/dev/null
base_sum=$(sha256sum "$base" | cut -d' ' -f1)

daemon_fds() {
    ls "/proc/$(cat "$PREFIX/var/run/virtqemud.pid")/fd" | wc -l
}
state() {
    echo "domains=$(virsh list --all --name | grep -c .)" \
         "qemus=$(pgrep -fc "qemu-system-.* -name guest=.*$PREFIX/" || true)" \
         "files=$(find "$dir" "$PREFIX/var/run/libvirt/qemu" "$PREFIX/var/lib/libvirt/qemu" | wc -l)" \
         "fds=$(daemon_fds)"
}

round() {
    for i in $(seq 1 $width); do
        virsh clone-from-template $tmpl --name $tmpl-s$i >"$E2E_DIR/stress-$i.out" 2>&1 &
    done
    wait
    started=$(virsh list --name | grep -c "^$tmpl-s" || true)
    [ "$started" = $width ] || fail "round $rounds: $started of $width clones started: $(cat "$E2E_DIR"/stress-*.out | grep error | sort | uniq -c)"
    for i in $(seq 1 $width); do
        virsh destroy $tmpl-s$i >/dev/null 2>&1 &
    done
    wait
    [ -z "$(virsh list --name | grep "^$tmpl-s")" ] || fail "round $rounds: clones survived destroy"
}

# One round first: what the daemon opens once and keeps is no leak.
rounds=0
round
before=$(state)
end=$(( $(date +%s) + seconds ))
while [ "$(date +%s)" -lt "$end" ]; do
    rounds=$((rounds + 1))
    round
done
sleep 1
after=$(state)
echo "after 1 warm-up round: $before"
echo "after $rounds rounds of $width clones: $after"
[ "$after" = "$before" ] || fail "something leaked: before $before, after $after"
[ ! -e "$dir/clones" ] || [ -z "$(ls -A "$dir/clones")" ] || fail "overlays left: $(ls "$dir/clones")"
[ "$(sha256sum "$base" | cut -d' ' -f1)" = "$base_sum" ] || fail "the base changed"
virsh clone-from-template $tmpl --name $tmpl-s1 >/dev/null || fail "the template does not clone any more"
virsh destroy $tmpl-s1 >/dev/null
echo "PASS: $((rounds * width)) clones started and destroyed in $rounds parallel rounds; nothing leaked"
