#!/bin/sh
# Boot the test guest with 'virsh create', see it ready and alive, destroy
# it, and check that neither the domain nor its QEMU process is left.
set -eu
. "$(dirname "$0")/lib.sh"

name=e2e-boot
trap 'cleanup_domain $name' EXIT
cleanup_domain $name

xml=$(domxml $name --memory 256 --fill 16)
virsh create "$xml" >/dev/null || fail "virsh create failed"

[ -n "$(qemu_pids $name)" ] || fail "no QEMU process runs $name"
ready=$(wait_for_line "$E2E_DIR/$name.console" '^GUEST-READY' 120) || fail "no ready marker"
echo "ready: $ready"
beat=$(wait_for_line "$E2E_DIR/$name.console" '^HEARTBEAT n=1 ' 30) || fail "no heartbeat"
echo "heartbeat: $beat"
sum=$(echo "$ready" | sed -n 's/.* sum=\([0-9a-f]*\).*/\1/p')
echo "$beat" | grep -q "sum=$sum " || fail "heartbeat checksum differs from the ready marker's"

state=$(virsh domstate $name)
[ "$state" = running ] || fail "domstate says '$state', expected 'running'"

virsh destroy $name >/dev/null || fail "virsh destroy failed"
if virsh list --all --name | grep -qx "$name"; then
    fail "$name is still listed after destroy"
fi
for _ in $(seq 1 50); do
    [ -z "$(qemu_pids $name)" ] && break
    sleep 0.1
done
[ -z "$(qemu_pids $name)" ] || fail "QEMU of $name still runs after destroy"
echo "PASS: boot, ready marker, heartbeat, destroy, nothing left"
