#!/bin/sh
# Save and restore with RAM in place: a running template producer (template
# memory) with a qcow2 disk is saved; the image holds only its device state,
# its RAM file stays, the daemon's, immutable and recorded. The restore maps
# the same file again: the heartbeat counter and the data checksum go on,
# no reboot, the disk reads back what it wrote. An image is restored once;
# booting, redefining, undefining, a daemon restart, a restore that fails
# and a RAM file changed behind libvirt's back each do what they say, and
# leave nothing behind. A transient domain saves its RAM in the image. QEMU
# runs as its own user, and as root for one round trip; two domains are
# saved and restored at once.
set -eu
. "$(dirname "$0")/lib.sh"

dom=e2e-ram-in-place
disk="$E2E_DIR/$dom.qcow2"
image="$E2E_DIR/$dom.save"
two=$dom-2
image2="$E2E_DIR/$two.save"
emudir="$E2E_DIR/ram-in-place-emulator"
records="$PREFIX/var/lib/libvirt/template-records"
cleanup() {
    for _d in $dom $two; do
        # RAM kept for an image refuses undefine: a boot discards it
        virsh destroy $_d >/dev/null 2>&1 || true
        if virsh start --force-boot $_d >/dev/null 2>&1; then
            virsh destroy $_d >/dev/null 2>&1 || true
        fi
        cleanup_template $_d
    done
    rm -rf "$emudir" "$image" "$image2" "$disk" "$E2E_DIR/$dom-failing.xml" "$E2E_DIR/$dom-plain.xml" \
        "$E2E_DIR/$dom-root.xml"
}
trap cleanup EXIT
cleanup

ready_count() {
    tr -d '\r' <"$E2E_DIR/$dom.console" | grep -c '^GUEST-READY' || true
}

# fresh_boot: boot the stopped domain, and take the checksum of the data
# it filled its RAM with
fresh_boot() {
    virsh start $dom >/dev/null
    sum=$(heartbeat_after "$E2E_DIR/$dom.console" 2 120 | sed 's/.* sum=\([^ ]*\) .*/\1/')
    [ -n "$sum" ] && [ "$sum" != none ] || fail "no data checksum after a boot"
}

last_n() {
    last_heartbeat "$E2E_DIR/$dom.console" | sed 's/^HEARTBEAT n=\([0-9]*\) .*/\1/'
}

# runs_on LABEL: the guest runs on from where it was saved, on its data.
# A start begins the console log afresh: a boot would print GUEST-READY.
runs_on() {
    _after=$(heartbeat_after "$E2E_DIR/$dom.console" "$saved_n" 60) ||
        fail "$1: no heartbeat after n=$saved_n"
    [ "$(ready_count)" = 0 ] || fail "$1: the guest rebooted"
    # the guest re-read its data since: a pass that began after the restore
    _deadline=$(( $(date +%s) + 120 ))
    while :; do
        _verified=$(tr -d '\r' <"$E2E_DIR/$dom.console" | grep -E '^HEARTBEAT .* rand=[0-9a-f]{16}$' |
                    awk -v c="$((saved_checks + 1))" '{ split($4, a, "="); if (a[2] > c) { print; exit } }')
        [ -z "$_verified" ] || break
        [ "$(date +%s)" -le "$_deadline" ] || fail "$1: the guest did not check its data again"
        sleep 0.5
    done
    echo "$_verified" | grep -q " sum=$sum " || fail "$1: the data changed: $_verified (was sum=$sum)"
    echo "$_after" | awk '{ for (i = 1; i <= NF; i++) { if ($i ~ /^disk=/) d = substr($i, 6); if ($i ~ /^rand=/) r = substr($i, 6) } }
                          END { exit !(d == r) }' || fail "$1: the disk did not read back its write: $_after"
    echo "$1: runs on from n=$saved_n: $_after; data checked again: $_verified"
}

# saved LABEL: the domain is shut off, saved; its RAM file is kept, the
# daemon's, read-only and immutable, and recorded
saved() {
    [ "$(virsh domstate $dom)" = "shut off" ] || fail "$1: $(virsh domstate $dom)"
    [ -z "$(qemu_pids $dom)" ] || fail "$1: QEMU still runs"
    case "$(stat -c %U:%a "$ram")" in
        root:400|root:440) ;;
        *) fail "$1: RAM file is $(stat -c %U:%a "$ram")" ;;
    esac
    lsattr "$ram" | cut -d' ' -f1 | grep -q i || fail "$1: RAM file not immutable: $(lsattr "$ram")"
    [ -f "$record" ] || fail "$1: no record"
    # a start that failed began the console log afresh
    [ -n "$(last_n)" ] || return 0
    saved_n=$(last_n)
    saved_checks=$(last_heartbeat "$E2E_DIR/$dom.console" | sed 's/.* checks=\([0-9]*\) .*/\1/')
}

# gone LABEL: nothing of the kept RAM is left
gone() {
    [ ! -e "$ramdir" ] || fail "$1: the RAM directory is left: $(ls -la "$ramdir")"
    [ ! -e "$record" ] || fail "$1: the record is left"
}

qemu-img create -q -f qcow2 "$disk" 16M
boot_guest $dom --template --fill 32 --period 0.2 --disk "$disk"
sum=$(heartbeat_after "$E2E_DIR/$dom.console" 1 60 | sed 's/.* sum=\([^ ]*\) .*/\1/')
[ "$sum" != none ] || fail "no data checksum"
ramdir=$(virsh dumpxml $dom | sed -n "s/.*<template path='\([^']*\)'.*/\1/p")
ram="$ramdir/pc.ram"
record="$records/$(basename "$ramdir")-saved.xml"
ramsize=$(stat -c %s "$ram")

live_cpu() {
    virsh dumpxml $dom | sed -n '/<cpu /,/<\/cpu>/p'
}
cpu=$(live_cpu)
[ -n "$cpu" ] || fail "no guest CPU in the live XML"

# same_cpu LABEL: the restored guest has the CPU it was saved with, read
# from the new process or remembered from one started with the same options
same_cpu() {
    [ "$(live_cpu)" = "$cpu" ] || fail "$1: the guest CPU changed: $(live_cpu)"
}

# save: the image holds the device state, the RAM stays in its file
heartbeat_after "$E2E_DIR/$dom.console" 3 60 >/dev/null
virsh save $dom "$image" >/dev/null || fail "save failed"
saved "save"
size=$(stat -c %s "$image")
[ "$size" -lt $((ramsize / 64)) ] || fail "the image holds $size bytes for $ramsize bytes of RAM"
echo "saved: image $size bytes, RAM file $ramsize bytes kept in place"

expect_error "boot on kept RAM" "is kept in place for its save image '$image'" virsh start $dom
# the daemon finds them again when it starts
restart_daemon
saved "daemon restart"
virsh dumpxml --inactive $dom | sed "/<template path=/d" >"$E2E_DIR/$dom-plain.xml"
expect_error "redefine without template memory" "before the template memory changes" \
    virsh define "$E2E_DIR/$dom-plain.xml"
expect_error "write the kept RAM" "Operation not permitted" \
    dd if=/dev/zero of="$ram" bs=4096 count=1 conv=notrunc status=none
virsh restore "$image" >/dev/null || fail "restore failed"
runs_on "restore"
same_cpu "restore"
[ ! -e "$record" ] || fail "restore: the record is left"
[ "$(stat -c %U "$ram")" = "$QEMU_USER" ] || fail "restore: RAM file is $(stat -c %U "$ram")'s"

# an image is restored once: the RAM it was saved with has run on since
virsh destroy $dom >/dev/null
gone "destroy after restore"
expect_error "second restore" "the RAM it was saved with is no longer kept in place" \
    virsh restore "$image"

# the sparse format would need the RAM in the image
fresh_boot
expect_error "sparse image" "which the 'sparse' save image format does not support" \
    virsh save $dom "$image" --image-format sparse
[ "$(virsh domstate $dom)" = running ] || fail "sparse image: $(virsh domstate $dom)"

# managed save: start restores it; managedsave-remove discards the RAM
virsh managedsave $dom >/dev/null || fail "managedsave failed"
saved "managedsave"
virsh start $dom >/dev/null || fail "start from the managed save failed"
runs_on "managed save"
virsh managedsave $dom >/dev/null || fail "managedsave failed"
saved "managedsave again"
virsh managedsave-remove $dom >/dev/null
gone "managedsave-remove"

# RAM lost while kept (a tmpfs after a host reboot): the managed image is
# removed as a corrupt one would be, and start boots the domain
fresh_boot
virsh managedsave $dom >/dev/null
saved "managedsave before the RAM is lost"
stop_daemon
chattr -i "$ram"
rm -rf "$ramdir"
old_sum=$sum
fresh_boot
[ "$sum" != "$old_sum" ] || fail "RAM lost: the guest did not boot"
virsh dominfo $dom | grep -q "^Managed save: *no" || fail "RAM lost: the managed image stays"
[ ! -e "$record" ] || fail "RAM lost: the record stays"
virsh destroy $dom >/dev/null
echo "RAM lost: the managed image went, the domain booted"

# start --force-boot discards RAM kept for an image
fresh_boot
virsh save $dom "$image" >/dev/null
saved "save for --force-boot"
virsh start --force-boot $dom >/dev/null
[ ! -e "$record" ] || fail "--force-boot: the record is left"
virsh destroy $dom >/dev/null
gone "--force-boot"
expect_error "restore after --force-boot" "no longer kept in place" virsh restore "$image"
echo "refusals and discards: boot, second restore, sparse image, managedsave-remove, --force-boot"

# a restore that fails keeps the RAM for the image; a later one works
fresh_boot
virsh save $dom "$image" >/dev/null
saved "save for a failing restore"
mkdir -p "$emudir"
chmod 0755 "$emudir"
cat >"$emudir/fails-incoming" <<'EOF'
#!/usr/bin/python3
import os, sys
if "-incoming" in sys.argv:
    sys.exit("refusing to load the state")
os.execv("/usr/bin/qemu-system-x86_64", ["qemu-system-x86_64"] + sys.argv[1:])
EOF
chmod 0755 "$emudir/fails-incoming"
virsh save-image-dumpxml "$image" --security-info |
    sed "s|<emulator>[^<]*</emulator>|<emulator>$emudir/fails-incoming</emulator>|" >"$E2E_DIR/$dom-failing.xml"
expect_error "restore that fails" "refusing to load the state" \
    virsh restore "$image" --xml "$E2E_DIR/$dom-failing.xml"
saved "after a failed restore"
virsh restore "$image" >/dev/null || fail "restore after a failed one failed"
runs_on "restore after a failed one"
same_cpu "restore after a failed one"

# a RAM file changed behind libvirt's back refuses the restore and goes
virsh save $dom "$image" >/dev/null
saved "save for a changed RAM file"
chattr -i "$ram"
touch "$ram"
expect_error "changed RAM file" "was changed after the domain was saved" virsh restore "$image"
gone "changed RAM file"
[ "$(virsh domstate $dom)" = "shut off" ] || fail "changed RAM file: $(virsh domstate $dom)"

# undefine: no image can be restored on the RAM of a domain that is no
# more: refused for a save image, the managed one goes with --managed-save
fresh_boot
virsh save $dom "$image" >/dev/null
expect_error "undefine" "Refusing to undefine while the domain's RAM is kept in place for save image '$image'" \
    virsh undefine --managed-save $dom
saved "refused undefine"
virsh start --force-boot $dom >/dev/null
virsh managedsave $dom >/dev/null
virsh undefine --managed-save $dom >/dev/null
gone "undefine --managed-save"

# a transient domain saves its RAM in the image: nothing could discard
# RAM kept for an image that is never restored
virsh create "$E2E_DIR/$dom.xml" >/dev/null
sum=$(heartbeat_after "$E2E_DIR/$dom.console" 2 120 | sed 's/.* sum=\([^ ]*\) .*/\1/')
virsh save $dom "$image" >/dev/null
size=$(stat -c %s "$image")
[ "$size" -gt $((16 << 20)) ] || fail "transient: the image holds $size bytes"
gone "transient save"
saved_n=$(last_n) saved_checks=$(last_heartbeat "$E2E_DIR/$dom.console" | sed 's/.* checks=\([0-9]*\) .*/\1/')
virsh restore "$image" >/dev/null
runs_on "transient restore"
virsh destroy $dom >/dev/null

# QEMU as root (a static DAC label): the same round trip
sed "s|</domain>|<seclabel type='static' model='dac' relabel='yes'><label>+0:+0</label></seclabel></domain>|" \
    "$E2E_DIR/$dom.xml" >"$E2E_DIR/$dom-root.xml"
virsh define "$E2E_DIR/$dom-root.xml" >/dev/null
fresh_boot
[ "$(ps -o user= -p "$(qemu_pids $dom)")" = root ] || fail "QEMU does not run as root"
virsh save $dom "$image" >/dev/null
saved "QEMU as root"
virsh restore "$image" >/dev/null || fail "QEMU as root: restore failed"
runs_on "QEMU as root"
virsh destroy $dom >/dev/null
gone "QEMU as root"

# two domains saved at once, and restored at once (QEMU as its own user:
# the guests share their kernel file, which the daemon labels for both)
virsh define "$E2E_DIR/$dom.xml" >/dev/null
boot_guest $two --template --fill 16 --period 0.2
fresh_boot
n1=$(last_n) sum1=$sum
n2=$(last_heartbeat "$E2E_DIR/$two.console" | sed 's/^HEARTBEAT n=\([0-9]*\) .*/\1/')
sum2=$(last_heartbeat "$E2E_DIR/$two.console" | sed 's/.* sum=\([^ ]*\) .*/\1/')
virsh save $dom "$image" >/dev/null & p1=$!
virsh save $two "$image2" >/dev/null & p2=$!
wait $p1 && wait $p2 || fail "saving two domains at once failed"
virsh restore "$image" >/dev/null & p1=$!
virsh restore "$image2" >/dev/null & p2=$!
wait $p1 && wait $p2 || fail "restoring two domains at once failed"
heartbeat_after "$E2E_DIR/$dom.console" "$n1" 60 | grep -q " sum=$sum1 " ||
    fail "$dom: no heartbeat after n=$n1 on its data"
heartbeat_after "$E2E_DIR/$two.console" "$n2" 60 | grep -q " sum=$sum2 " ||
    fail "$two: no heartbeat after n=$n2 on its data"
echo "two at once: both saved with their RAM in place and restored, both run on"
virsh destroy $dom >/dev/null
virsh destroy $two >/dev/null
echo "PASS: save and restore with RAM in place kept the guest's RAM, data and disk; failures kept or removed what they say"
