#!/bin/sh
# sVirt labels of a template and its clones.  Each clone runs with MCS
# categories of its own, so the template's directory and RAM files must
# carry labels all domains share, not the producer's, whatever clones
# start and stop: the read-only one, as clones map the RAM files
# read-only.  This kernel has no SELinux: virtqemud runs its SELinux
# driver on libvirt's own test helper, which writes labels as
# user.libvirt.selinux xattrs; nothing enforces them and QEMU runs
# unconfined, so this checks the labels libvirt sets, not their effect.
set -eu
. "$(dirname "$0")/lib.sh"

tmpl=e2e-sel
dir="$(template_dir $tmpl)"
base="$E2E_DIR/$tmpl-base.img"
shared=system_u:object_r:svirt_image_t:s0
readonly_shared=system_u:object_r:virt_content_t:s0

label() {
    python3 -c 'import os, sys; print(os.getxattr(sys.argv[1], "user.libvirt.selinux").decode())' \
        "$1" 2>/dev/null || echo "(none)"
}

imagelabel() {
    virsh dumpxml "$1" | sed -n 's|.*<imagelabel>\(system_u:.*\)</imagelabel>.*|\1|p'
}

expect_label() {
    [ "$(label "$1")" = "$2" ] || fail "$3: $1 is labelled $(label "$1"), not $2"
}

cleanup() {
    cleanup_template $tmpl
    # The next test gets the usual daemon.
    "$ROOT/run" --stop
    rm -f "$base"
}
trap cleanup EXIT

"$ROOT/run" true
"$ROOT/run" --stop
VIRTQEMUD_SELINUX_MOCK=1 "$ROOT/scripts/daemon.sh" start
virsh capabilities | grep -q '<model>selinux</model>' ||
    fail "virtqemud does not run its SELinux driver"
cleanup_template $tmpl

truncate -s 16M "$base"
virsh define "$(domxml $tmpl --memory 256 --fill 16 --disk "$base" --template)" >/dev/null
virsh start $tmpl >/dev/null
wait_for_line "$E2E_DIR/$tmpl.console" '^HEARTBEAT n=2 .* disk=' 120 >/dev/null ||
    fail "the template did not come up"
producer=$(imagelabel $tmpl)
case $producer in
    $shared:c*) ;;
    *) fail "the producer has no image label of its own: '$producer'" ;;
esac
expect_label "$dir" "$producer" "before template-create"
echo "producer: its template directory is labelled $producer"

virsh template-create $tmpl >/dev/null
expect_label "$dir" "$readonly_shared" "after template-create"
expect_label "$dir/pc.ram" "$readonly_shared" "after template-create"
echo "template: pc.ram and its directory labelled $readonly_shared"

virsh clone-from-template $tmpl --count 2 >/dev/null
labels=""
for c in $tmpl-clone-1 $tmpl-clone-2; do
    own=$(imagelabel $c)
    [ -n "$own" ] && [ "$own" != "$producer" ] || fail "$c has the image label '$own'"
    case " $labels " in
        *" $own "*) fail "$c shares the image label $own with another clone" ;;
    esac
    labels="$labels $own"
    expect_label "$dir/clones/$c/vda.qcow2" "$own" "the overlay of running $c"
    echo "$c: image label $own, on its overlay too"
done
expect_label "$dir" "$readonly_shared" "with two clones running"
expect_label "$dir/pc.ram" "$readonly_shared" "with two clones running"
expect_label "$dir/template.save" "$readonly_shared" "with two clones running"
expect_label "$base" "$readonly_shared" "with two clones running"
echo "with two clones running: base, template image and RAM file $readonly_shared"

n=$(field n "$(last_heartbeat "$E2E_DIR/$tmpl-clone-2.console")")
virsh destroy $tmpl-clone-1 >/dev/null
expect_label "$dir" "$readonly_shared" "after a clone stopped"
expect_label "$dir/pc.ram" "$readonly_shared" "after a clone stopped"
expect_label "$dir/template.save" "$readonly_shared" "after a clone stopped"
expect_label "$base" "$readonly_shared" "after a clone stopped"
heartbeat_after "$E2E_DIR/$tmpl-clone-2.console" "$n" 60 >/dev/null ||
    fail "$tmpl-clone-2 stopped beating after its sibling stopped"
virsh clone-from-template $tmpl $tmpl-clone-3 >/dev/null ||
    fail "no clone after a clone stopped"
expect_label "$dir/pc.ram" "$readonly_shared" "with a third clone running"
echo "after a clone stopped: labels unchanged, its sibling runs on, a third clone started"

# Discarded by start --force-boot, the template's directory is the
# producer's again, whatever template-create left in it.
for c in $tmpl-clone-2 $tmpl-clone-3; do
    virsh destroy $c >/dev/null
done
virsh start --force-boot $tmpl >/dev/null || fail "start --force-boot of the template failed"
expect_label "$dir" "$(imagelabel $tmpl)" "after start --force-boot"
echo "start --force-boot: the directory is labelled for the producer again"
