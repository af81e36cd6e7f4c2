#!/bin/sh
# What a template's clones start from cannot be changed or escaped through
# other APIs while the template exists: a clone's name goes through the
# parser's checks before it reaches a file name; no other QEMU starts on the
# template's RAM files (create from its XML, snapshot revert); snapshots and
# redefinitions that would change its template memory are refused.
# A clone cannot take the place of a defined domain, nor a managed save
# image be made one. Each refusal leaves the template intact and clonable.
set -eu
. "$(dirname "$0")/lib.sh"

tmpl=e2e-guard
dir="$(template_dir $tmpl)"
escape="$E2E_DIR/guard-escape"
cleanup() {
    for c in $(virsh list --name | grep "^$tmpl" || true); do
        virsh destroy "$c" >/dev/null 2>&1 || true
    done
    virsh undefine --remove-template $tmpl >/dev/null 2>&1 ||
        virsh undefine $tmpl >/dev/null 2>&1 || true
    virsh undefine e2e-guard-defined >/dev/null 2>&1 || true
    rm -rf "$escape"
}
trap cleanup EXIT
cleanup

xml=$(domxml $tmpl --memory 256 --fill 8 --template)
virsh define "$xml" >/dev/null
virsh start $tmpl >/dev/null
wait_for_line "$E2E_DIR/$tmpl.console" '^HEARTBEAT n=1 ' 120 >/dev/null || fail "the template did not come up"
virsh template-create $tmpl >/dev/null || fail "template-create failed"
ram_sum=$(sha256sum "$dir/pc.ram" | cut -d' ' -f1)
virsh dumpxml --inactive $tmpl >"$E2E_DIR/$tmpl-inactive.xml"

# Clone names: a '/' would put the clone's log, status and overlay
# directory anywhere (virtlogd creates the log as root).
mkdir -p "$escape"
rel=$(realpath --relative-to="$PREFIX/var/log/libvirt/qemu" "$escape")
expect_error "clone name with '/'" "cannot contain '/'" \
    virsh clone-from-template $tmpl --name "$rel/evil" --paused
expect_error "clone name with a newline" "invalid char in name" \
    virsh clone-from-template $tmpl --name "$(printf 'a\nb')" --paused
expect_error "clone named .." "can't be the name of a clone" \
    virsh clone-from-template $tmpl --name .. --paused
[ -z "$(ls -A "$escape")" ] || fail "a refused clone name created files: $(ls -A "$escape")"
for d in "$PREFIX/var/run/libvirt/qemu" "$dir/clones"; do
    [ -z "$(find "$d" -name '*evil*' 2>/dev/null)" ] || fail "a refused clone name left files in $d"
done

# Other ways of starting QEMU on the template's definition.
expect_error "create from the template's XML" "holds a template" \
    virsh create "$E2E_DIR/$tmpl-inactive.xml"
[ -z "$(qemu_pids $tmpl)" ] || fail "QEMU runs on the template's definition"
# The refused create must not leave its XML in place of the template's.
sed "s|<name>$tmpl</name>|&<description>created</description>|" \
    "$E2E_DIR/$tmpl-inactive.xml" >"$E2E_DIR/$tmpl-create.xml"
expect_error "create from changed XML" "holds a template" virsh create "$E2E_DIR/$tmpl-create.xml"
virsh dumpxml --inactive $tmpl | cmp -s - "$E2E_DIR/$tmpl-inactive.xml" ||
    fail "a refused create changed the template's definition"
expect_error "snapshot of the template" "holds a template" \
    virsh snapshot-create-as $tmpl guard-snap
[ -z "$(virsh snapshot-list --name $tmpl)" ] || fail "a snapshot of the template exists"

# Redefinitions: dropping <template/> (the daemon used to crash on the next
# clone), moving it, or changing the guest; the template's own XML is fine.
sed '/<template /d' "$E2E_DIR/$tmpl-inactive.xml" >"$E2E_DIR/$tmpl-notmpl.xml"
expect_error "redefinition without template memory" "must keep its template memory" \
    virsh define "$E2E_DIR/$tmpl-notmpl.xml"
sed "s|<template path='[^']*'/>|<template path='$(template_dir e2e-guard-other)'/>|" \
    "$E2E_DIR/$tmpl-inactive.xml" >"$E2E_DIR/$tmpl-moved.xml"
expect_error "redefinition with another template's directory" "is not the directory" \
    virsh define "$E2E_DIR/$tmpl-moved.xml"
sed "s|<vcpu\([^>]*\)>1</vcpu>|<vcpu\1>2</vcpu>|" "$E2E_DIR/$tmpl-inactive.xml" >"$E2E_DIR/$tmpl-vcpus.xml"
grep -q "<vcpu[^>]*>2</vcpu>" "$E2E_DIR/$tmpl-vcpus.xml" || fail "test setup: no vcpu count to change"
# Clones start from the definition saved in the template, as a restore
# from a managed save image does: the domain's own may change.
virsh define "$E2E_DIR/$tmpl-vcpus.xml" >/dev/null || fail "redefinition with another vCPU count refused"
virsh clone-from-template $tmpl $tmpl-vcpus-clone --paused >/dev/null ||
    fail "no clone after a redefinition with another vCPU count"
[ "$(virsh vcpucount $tmpl-vcpus-clone --active --live)" = 1 ] ||
    fail "the clone does not have the template's vCPUs: $(virsh vcpucount $tmpl-vcpus-clone --active --live)"
virsh destroy $tmpl-vcpus-clone >/dev/null
echo "redefinition with 2 vCPUs accepted; its clone has the template's 1"
sed "s|<name>$tmpl</name>|&<description>guard</description>|" \
    "$E2E_DIR/$tmpl-inactive.xml" >"$E2E_DIR/$tmpl-desc.xml"
virsh define "$E2E_DIR/$tmpl-desc.xml" >/dev/null || fail "redefinition with a description refused"
virsh dumpxml --inactive $tmpl | grep -qF "<description>guard</description>" ||
    fail "the accepted redefinition did not take"

# A running transient producer keeps its template memory too (the
# daemon used to crash on the template-create that followed).
prod=e2e-guard-transient
virsh create "$(domxml $prod --memory 256 --template)" >/dev/null || fail "create of a transient producer failed"
virsh dumpxml --inactive $prod | sed '/<template /d' >"$E2E_DIR/$prod-notmpl.xml"
expect_error "definition of a running producer without template memory" "must keep its template memory" \
    virsh define "$E2E_DIR/$prod-notmpl.xml"
virsh dominfo $prod | grep -qE '^Persistent: +no' || fail "a refused definition made $prod persistent"
[ "$(virsh domstate $prod)" = running ] || fail "$prod is $(virsh domstate $prod) after a refused definition"
virsh destroy $prod >/dev/null

# A clone's XML naming an inactive defined domain: the clone would take
# its place, persistent.
victim=e2e-guard-defined
virsh define "$(domxml $victim --memory 256)" >/dev/null
virsh dumpxml --inactive $victim >"$E2E_DIR/$victim-before.xml"
sed -e "s|<name>$tmpl</name>|<name>$victim</name>|" \
    -e "s|<uuid>[^<]*</uuid>|<uuid>$(virsh domuuid $victim)</uuid>|" \
    "$E2E_DIR/$tmpl-inactive.xml" >"$E2E_DIR/$victim-clone.xml"
expect_error "clone with a defined domain's name and UUID" "a clone cannot take its name and UUID" \
    virsh clone-from-template $tmpl --xml "$E2E_DIR/$victim-clone.xml" --paused
[ -z "$(qemu_pids $victim)" ] || fail "a clone runs as $victim"
virsh dumpxml --inactive $victim | cmp -s - "$E2E_DIR/$victim-before.xml" ||
    fail "a refused clone changed the definition of $victim"

# Its managed save image rewritten to map the template: restored, the
# persistent domain would run as a clone whose access was never checked.
# Its memory is file-backed and private, as a clone's, so that the ABI
# check lets the template element through.
virsh dumpxml --inactive $victim |
    sed -e "s|</currentMemory>|</currentMemory><memoryBacking><source type='file'/><access mode='private'/></memoryBacking>|" \
    >"$E2E_DIR/$victim-file.xml"
virsh define "$E2E_DIR/$victim-file.xml" >/dev/null
virsh start $victim >/dev/null
wait_for_line "$E2E_DIR/$victim.console" '^HEARTBEAT n=' 120 >/dev/null || fail "$victim did not come up"
virsh managedsave $victim >/dev/null
virsh managedsave-dumpxml --security-info $victim |
    sed -e "s|<access mode='private'/>|<access mode='private'/><template path='$dir'/>|" \
    >"$E2E_DIR/$victim-saved-clone.xml"
grep -q "<template path='$dir'/>" "$E2E_DIR/$victim-saved-clone.xml" || fail "test setup: no template memory in the XML"
expect_error "managed save image made a clone" "maps the memory of a template" \
    virsh managedsave-define $victim "$E2E_DIR/$victim-saved-clone.xml"
virsh managedsave-dumpxml $victim | grep -q "<template" && fail "a refused managedsave-define changed the image"
virsh managedsave-remove $victim >/dev/null
virsh undefine $victim >/dev/null

virsh list --all --template --name | grep -qx $tmpl || fail "$tmpl is no template any more"
[ "$(sha256sum "$dir/pc.ram" | cut -d' ' -f1)" = "$ram_sum" ] || fail "the template's RAM file changed"
clone=$(virsh clone-from-template $tmpl | head -n 1) || fail "clone after the refusals failed"
[ "$(virsh domstate "$clone")" = running ] || fail "$clone is not running"
virsh destroy "$clone" >/dev/null
echo "PASS: clone names checked, no start, snapshot or redefinition past the template"
