#!/bin/sh
# A template's life through the API a client uses on one domain:
# virDomainHasTemplate (dominfo), virDomainTemplateRemove (template-remove)
# and clones that end with the connection that started them
# (clone-from-template --autodestroy).
set -eu
. "$(dirname "$0")/lib.sh"

tmpl=e2e-remove
dir="$(template_dir $tmpl)"
cleanup() {
    for c in $(virsh list --name | grep "^$tmpl-" || true); do
        virsh destroy "$c" >/dev/null 2>&1 || true
    done
    virsh destroy $tmpl >/dev/null 2>&1 || true
    virsh undefine --remove-template $tmpl >/dev/null 2>&1 ||
        virsh undefine $tmpl >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup

template_line() {
    virsh dominfo "$1" | sed -n 's/^Template: *//p'
}

virsh define "$(domxml $tmpl --memory 256 --fill 8 --template)" >/dev/null
[ "$(template_line $tmpl)" = no ] || fail "dominfo of a plain domain: Template: $(template_line $tmpl)"
expect_error "template-remove without a template" "holds no template" virsh template-remove $tmpl

virsh start $tmpl >/dev/null
wait_for_line "$E2E_DIR/$tmpl.console" '^HEARTBEAT n=1 ' 120 >/dev/null || fail "the template did not come up"
virsh template-create $tmpl >/dev/null || fail "template-create failed"
[ "$(template_line $tmpl)" = yes ] || fail "dominfo of a template: Template: $(template_line $tmpl)"
echo "dominfo: Template: no before template-create, yes after"
# template-create is a job of its own, with the statistics of a save.
jobinfo=$(virsh domjobinfo --completed $tmpl) || fail "domjobinfo --completed failed"
echo "$jobinfo" | grep -qE '^Operation: +Template create *$' || fail "template-create's job: $jobinfo"
echo "$jobinfo" | grep -qE '^Job type: +Completed *$' || fail "template-create's job: $jobinfo"
echo "domjobinfo --completed: $(echo "$jobinfo" | grep -E '^(Job type|Operation|Memory total):' | tr -s ' ' | paste -sd ';' -)"

# A clone that ends with its connection: virsh exits, the clone is gone.
clone=$(virsh clone-from-template $tmpl --autodestroy | head -n 1) || fail "clone --autodestroy failed"
[ -n "$clone" ] || fail "clone --autodestroy printed no name"
for _ in $(seq 1 50); do
    virsh list --all --name | grep -qx "$clone" || break
    sleep 0.1
done
virsh list --all --name | grep -qx "$clone" && fail "$clone outlived the connection that started it"
[ -z "$(qemu_pids "$clone")" ] || fail "the QEMU of $clone still runs"
echo "clone --autodestroy: $clone gone with its connection"

# A saved clone is restored on its template's files only.
clone=$(virsh clone-from-template $tmpl | head -n 1) || fail "clone failed"
virsh save "$clone" "$E2E_DIR/$tmpl-clone.save" >/dev/null || fail "save of $clone failed"
virsh save-image-dumpxml "$E2E_DIR/$tmpl-clone.save" |
    sed "s|<template path='[^']*'/>|<template path='$(template_dir e2e-remove-other)'/>|" \
    >"$E2E_DIR/$tmpl-clone-moved.xml"
expect_error "restore of a clone on another template's directory" "is a clone of no template that exists" \
    virsh restore "$E2E_DIR/$tmpl-clone.save" --xml "$E2E_DIR/$tmpl-clone-moved.xml"

# Removing the template: its files go, and the domain boots again.
virsh template-remove $tmpl >/dev/null || fail "template-remove failed"
expect_error "restore of a clone of a removed template" "is a clone of no template that exists" \
    virsh restore "$E2E_DIR/$tmpl-clone.save"
[ -z "$(qemu_pids "$clone")" ] || fail "a refused restore left QEMU running"
rm -f "$E2E_DIR/$tmpl-clone.save"
[ "$(template_line $tmpl)" = no ] || fail "dominfo after template-remove: Template: $(template_line $tmpl)"
[ ! -e "$dir/template.save" ] || fail "the template image is left"
[ ! -e "$dir/pc.ram" ] || fail "the RAM file is left"
virsh list --all --template --name | grep -qx $tmpl && fail "$tmpl is still listed as a template"
expect_error "clone after template-remove" "is not a template" virsh clone-from-template $tmpl
rm -f "$E2E_DIR/$tmpl.console"
virsh start $tmpl >/dev/null || fail "start after template-remove failed"
wait_for_line "$E2E_DIR/$tmpl.console" '^HEARTBEAT n=1 ' 120 >/dev/null || fail "$tmpl did not boot after template-remove"
echo "template-remove: files removed, $tmpl boots again"
echo "PASS: dominfo, template-remove and clone --autodestroy"
