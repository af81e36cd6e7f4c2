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
    rm -f "$backing" "$top"
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
# The producer's QEMU owned the backing file (the DAC driver does not give
# backing files back): it is taken as the base is, or any QEMU of the user
# could write it under every clone.
[ "$(stat -c %U:%a "$backing")" = root:444 ] ||
    fail "the backing file is not taken: $(stat -c %U:%G:%a "$backing")"
lsattr "$backing" | cut -d' ' -f1 | grep -q i &&
    fail "the backing file, which other domains may share, is immutable"
was=$(sed -n "s|.*<backing .*mode=.0*\([0-7]*\). owner=.\([0-9]*\). group=.\([0-9]*\). path=.$backing.*|\2:\3:\1|p" "$record")
[ -n "$was" ] || fail "no owner of the backing file in the record: $(cat "$record")"
as_qemu sh -c ': >>"$1"' w "$backing" 2>/dev/null && fail "$QEMU_USER can write the backing file of a template"
echo "backing file taken: $(stat -c %U:%G:%a "$backing"), $QEMU_USER cannot write it"

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
virsh template-remove $tmpl >/dev/null || fail "template-remove failed"
[ "$(stat -c %u:%g:%a "$backing")" = "$was" ] ||
    fail "the backing file was not given back: $(stat -c %u:%g:%a "$backing"), recorded $was"
echo "template removed: backing file $(stat -c %U:%G:%a "$backing") again"
echo "PASS: the backing file is recorded, taken from the QEMU user, unchanged by clones, given back, and a written one is refused"
