#!/bin/sh
# The main job: boot the test guest through the private libvirt daemon and
# report how long it takes, then stop everything it started.
set -eu
. "$(dirname "$0")/lib.sh"

name=demo-guest
fill=${DEMO_FILL_MIB:-128}
memory=${DEMO_MEMORY_MIB:-512}
work="$BUILD_DIR/demo"
mkdir -p "$work"
console="$work/$name.console"

virsh() {
    "$ROOT/run" virsh "$@"
}
cleanup() {
    virsh destroy "$name" >/dev/null 2>&1 || true
    "$ROOT/run" --stop
}
trap cleanup EXIT

ms() {
    date +%s%3N
}

"$ROOT/tests/guest/domxml.sh" "$name" "$console" --memory "$memory" --fill "$fill" >"$work/$name.xml"
virsh destroy "$name" >/dev/null 2>&1 || true
rm -f "$console"
virsh version | sed -n 's/^\(Using library\|Running hypervisor\)/  &/p'

echo "demo: booting $name ($memory MiB RAM, $fill MiB filled at boot) under TCG"
t0=$(ms)
virsh create "$work/$name.xml" >/dev/null
t1=$(ms)
until tr -d '\r' <"$console" 2>/dev/null | grep -q '^GUEST-READY'; do
    [ $(( $(ms) - t0 )) -lt 300000 ] || die "the guest printed no ready marker in 300 s; see $console"
    sleep 0.05
done
t2=$(ms)
until tr -d '\r' <"$console" | grep -q '^HEARTBEAT n=1 '; do
    [ $(( $(ms) - t0 )) -lt 330000 ] || die "the guest printed no heartbeat; see $console"
    sleep 0.05
done
t3=$(ms)
ready=$(tr -d '\r' <"$console" | grep -m 1 '^GUEST-READY')
beat=$(tr -d '\r' <"$console" | grep -m 1 '^HEARTBEAT n=1 ')

echo "  $ready"
echo "  $beat"
printf '\n| step                                  | time       |\n'
printf '|---------------------------------------|------------|\n'
printf '| virsh create returns                  | %7d ms |\n' $((t1 - t0))
printf '| boot to ready marker (%d MiB filled)  | %7d ms |\n' "$fill" $((t2 - t0))
printf '| boot to first heartbeat               | %7d ms |\n' $((t3 - t0))
echo
echo "demo: destroying $name and stopping the daemon"
