#!/bin/sh
# What clones cannot have one each is refused by template-create, and the
# refused domain keeps running: a network interface (clones get theirs
# plugged in, see test-template-clones.sh) and a writable disk that cannot
# be the read-only base of overlays, such as a shareable one, and a
# character device listening on a socket of its XML (each clone would take
# it over). A socket libvirt places, as for the guest agent, is the clone's
# own.
set -eu
. "$(dirname "$0")/lib.sh"

name=e2e-tmpl-dev
chr=e2e-tmpl-chr
trap 'cleanup_domain $name; cleanup_template $chr; rm -f "$E2E_DIR/$name.img" "$E2E_DIR/$chr.sock"' EXIT
cleanup_domain $name
cleanup_template $chr

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
cleanup_domain $name

agent="<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
xml=$(domxml $chr --memory 256 --template)
sed -i "s|<memballoon model='none'/>|$agent\n    <channel type='unix'><source mode='bind' path='$E2E_DIR/$chr.sock'/><target type='virtio' name='org.example.0'/></channel>\n    &|" "$xml"
virsh define "$xml" >/dev/null
virsh start $chr >/dev/null
name=$chr
expect_refusal "a socket of the XML" "a device listens on the socket '$E2E_DIR/$chr.sock'"
cleanup_domain $chr
xml=$(domxml $chr --memory 256 --template)
sed -i "s|<memballoon model='none'/>|$agent\n    &|" "$xml"
virsh define "$xml" >/dev/null
virsh start $chr >/dev/null
virsh template-create $chr >/dev/null || fail "template-create with the guest agent's channel failed"
clone=$(virsh clone-from-template $chr --paused | head -n 1) || fail "clone-from-template failed"
virsh dumpxml "$clone" | grep -q "path='[^']*/[0-9]*-$clone/org.qemu.guest_agent.0'" ||
    fail "the clone's agent socket is not its own: $(virsh dumpxml "$clone" | grep guest_agent)"
virsh destroy "$clone" >/dev/null
echo "the guest agent's channel: libvirt's socket, one per clone"
echo "PASS: NIC, shareable disk and socket of the XML refused, domain left running"
