#!/bin/sh
# A template whose disk is a qcow2 image on a backing file: its clones read
# that file too, so the template's record lists it, one they could not
# read is refused, and a backing file written behind libvirt's back stops
# clones as a written base does.
set -eu
. "$(dirname "$0")/lib.sh"

tmpl=e2e-chain
dir="$(template_dir $tmpl)"
record="$(template_record $tmpl)"
backing="$E2E_DIR/$tmpl-golden.img"
top="$E2E_DIR/$tmpl-top.qcow2"
cleanup() {
    cleanup_template $tmpl
    rm -f "$backing" "$backing.copy" "$backing.recorded" "$top"
}
trap cleanup EXIT
cleanup

truncate -s 16M "$backing"
qemu-img create -q -f qcow2 -b "$backing" -F raw "$top"
backing_sum=$(sha256sum "$backing" | cut -d' ' -f1)
virsh define "$(domxml $tmpl --memory 256 --disk "$top" --template)" >/dev/null
virsh start $tmpl >/dev/null
wait_for_line "$E2E_DIR/$tmpl.console" '^HEARTBEAT n=2 .* disk=' 120 >/dev/null ||
    fail "the template does not write its disk"
# Clones read the backing file as the group QEMU runs as: one only its
# owner may read (as vol-create-as makes them) is refused, not left for
# every clone to fail on.
chmod 0600 "$backing"
expect_error "template-create with a backing file of mode 0600" \
    "backing file '$backing' of disk 'vda' has mode 0600" virsh template-create $tmpl
[ "$(virsh domstate $tmpl)" = running ] || fail "a refused template-create left $tmpl $(virsh domstate $tmpl)"
chmod 0644 "$backing"
virsh template-create $tmpl >/dev/null || fail "template-create of a disk on a backing file failed"
tn=$(field n "$(last_heartbeat "$E2E_DIR/$tmpl.console")")
grep -Eq "<backing .* path=.$backing." "$record" ||
    fail "the template record does not list the backing file: $(cat "$record")"
echo "template record: $(grep -o "<backing .*/>" "$record")"

c=$tmpl-clone-1
virsh clone-from-template $tmpl $c >/dev/null || fail "clone-from-template failed"
beat=$(heartbeat_after "$E2E_DIR/$c.console" "$tn" 60) || fail "$c does not run on"
[ "$(field disk "$beat")" = "$(field rand "$beat")" ] || fail "$c read back another record: $beat"
echo "$c: $beat"
virsh destroy $c >/dev/null

refused_if_touched $tmpl "$backing" "template backing file written behind libvirt"
virsh clone-from-template $tmpl $tmpl-clone-2 >/dev/null ||
    fail "no clone once the backing file was as recorded again"
virsh destroy $tmpl-clone-2 >/dev/null
[ "$(sha256sum "$backing" | cut -d' ' -f1)" = "$backing_sum" ] || fail "the backing file changed"

# Replaced under its name by a copy: not the file recorded.
cp "$backing" "$backing.copy"
mv "$backing" "$backing.recorded"
mv "$backing.copy" "$backing"
expect_error "clone of a template whose backing file was replaced" \
    "template file '$backing' was changed after the template was created" \
    virsh clone-from-template $tmpl $tmpl-clone-3
mv "$backing.recorded" "$backing"

# Owned by a user who could write it and set its mtime back.
owner=$(stat -c %u:%g "$backing")
chown nobody "$backing"
expect_error "clone of a template whose backing file a user owns" \
    "backing file '$backing' of template disk image '$top' is owned by user $(id -u nobody), who could change it unnoticed" \
    virsh clone-from-template $tmpl $tmpl-clone-4
chown "$owner" "$backing"
echo "PASS: the backing file is recorded, unchanged by clones, and a written, replaced or user-owned one is refused"
