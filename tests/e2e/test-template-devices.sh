#!/bin/sh
# Until disks become linked clones and NICs are hot-plugged into clones,
# template-create refuses a network interface and a writable disk, and the
# refused domain keeps running.
set -eu
. "$(dirname "$0")/lib.sh"

name=e2e-tmpl-dev
trap 'cleanup_domain $name; rm -f "$E2E_DIR/$name.img"' EXIT
cleanup_domain $name

xml=$(domxml $name --memory 256 --template)
sed -i "s|<memballoon model='none'/>|<interface type='user'><model type='virtio'/></interface>\n    &|" "$xml"
virsh define "$xml" >/dev/null
virsh start $name >/dev/null
wait_for_line "$E2E_DIR/$name.console" '^HEARTBEAT n=1 ' 120 >/dev/null || fail "the guest did not come up"

expect_refusal() {
    if out=$(virsh template-create $name 2>&1); then
        fail "template-create succeeded with $1"
    fi
    echo "$out" | grep -qF -- "$2" || fail "unexpected message for $1: $out"
    [ "$(virsh domstate $name)" = running ] || fail "$name is not running after a refused template-create"
    [ ! -e "$PREFIX/var/lib/libvirt/qemu/template/$name/template.save" ] || fail "a template image was left"
    echo "refused ($1): $(echo "$out" | tail -n 1)"
}
expect_refusal "a NIC" "every clone would have the same MAC address"

truncate -s 16M "$E2E_DIR/$name.img"
virsh attach-disk $name "$E2E_DIR/$name.img" vdb --live >/dev/null || fail "attach-disk failed"
expect_refusal "a writable disk" "disk 'vdb' is writable"
echo "PASS: NIC and writable disk refused, domain left running"
