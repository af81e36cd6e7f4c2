#!/bin/sh
# virt-manager against the project's daemon and the real guest, driven as
# a user would (dogtail under Xvfb, testTemplateLive of the virt-manager
# series): Create Template on the running guest, New VM from Template with
# 2 clones. Then virsh sees the template and the clones running, running
# on from the template's heartbeat.
set -eu
. "$(dirname "$0")/lib.sh"

tmpl=e2e-vmm
cleanup() {
    cleanup_template $tmpl
}
trap cleanup EXIT
cleanup

boot_guest $tmpl --memory 256 --template

shots="$BUILD_DIR/screenshots"
mkdir -p "$shots"
VMM_TEMPLATE_LIVE_VM=$tmpl VMM_UITESTS_SCREENSHOTS="$shots" \
    "$ROOT/run" "$ROOT/scripts/virt-manager.sh" uitests \
    tests/uitests/test_template.py::testTemplateLive ||
    fail "virt-manager's live template test failed"

virsh dominfo $tmpl | grep -qE '^Template: +yes' || fail "$tmpl holds no template"
tn=$(field n "$(last_heartbeat "$E2E_DIR/$tmpl.console")")
virsh list --name
for i in 1 2; do
    c=$tmpl-clone-$i
    [ "$(virsh domstate $c)" = running ] || fail "$c is $(virsh domstate $c) in virsh"
    beat=$(heartbeat_after "$E2E_DIR/$c.console" "$tn" 60) || fail "$c does not run on"
    echo "$c: $beat"
done
[ -s "$shots/live-manager.png" ] || fail "no screenshot of the manager"
echo "PASS: virt-manager made a template of the running guest and started 2 clones, which run on"
