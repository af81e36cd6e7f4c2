#!/bin/sh
# What clones cannot have one each is refused by template-create, and the
# refused domain keeps running: a network interface (clones get theirs
# plugged in, see test-template-clones.sh) and a writable disk that cannot
# be the read-only base of overlays, such as a shareable one.
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
    [ ! -e "$(template_dir $name)/template.save" ] || fail "a template image was left"
    echo "refused ($1): $(echo "$out" | tail -n 1)"
}
expect_refusal "a NIC" "every clone would have the same MAC address"

truncate -s 16M "$E2E_DIR/$name.img"
virsh attach-disk $name "$E2E_DIR/$name.img" vdb --live --mode shareable >/dev/null ||
    fail "attach-disk failed"
expect_refusal "a shareable disk" "disk 'vdb' is shareable or transient"
echo "PASS: NIC and shareable disk refused, domain left running"
