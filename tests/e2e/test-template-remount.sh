#!/bin/sh
# A template's base on a filesystem that the next boot mounts from another
# device (an LVM volume, a loop device, a USB disk found in another order):
# the record names its files by inode, inode generation and ext4's
# filesystem ID, not by device number, so clones go on. A base whose
# filesystem is not mounted is never forgotten unasked: template-remove fails and keeps the template, a daemon
# start that gives a template up keeps the base taken in its record, and
# template-remove --forget-missing-disks forgets it.
set -eu
. "$(dirname "$0")/lib.sh"

tmpl=e2e-remount
dir="$(template_dir $tmpl)"
record="$(template_record $tmpl)"
fs="$E2E_DIR/$tmpl-fs.img"
spare="$E2E_DIR/$tmpl-spare.img"
mnt="$E2E_DIR/$tmpl-mnt"
base="$mnt/base.img"
second="$E2E_DIR/$tmpl-second.img"
detach() {
    for _l in $(losetup -j "$1" -O NAME -n); do
        losetup -d "$_l"
    done
}
cleanup() {
    _dev=$(losetup -j "$fs" -O NAME -n 2>/dev/null || true)
    if [ -n "$_dev" ] && ! mountpoint -q "$mnt"; then
        mount "$_dev" "$mnt"
    fi
    cleanup_template $tmpl
    if mountpoint -q "$mnt"; then
        chattr -i "$base" 2>/dev/null || true
        umount "$mnt"
    fi
    detach "$fs"
    detach "$spare"
    chattr -i "$second" 2>/dev/null || true
    rm -rf "$fs" "$spare" "$mnt" "$second"
}
trap cleanup EXIT
cleanup

truncate -s 64M "$fs"
truncate -s 1M "$spare"
mkfs.ext4 -q "$fs"
mkdir -p "$mnt"
mount "$(losetup -f --show "$fs")" "$mnt"
truncate -s 4M "$base"
chmod 0640 "$base"
truncate -s 16M "$second"
chmod 0640 "$second"
# The guest's disk first, found; the base on the filesystem mounted later
# second, so that a give-back that fails on it has already seen the first.
virsh define "$(domxml $tmpl --memory 256 --disk "$second" --template)" >/dev/null
virsh attach-disk $tmpl "$base" vdb --config >/dev/null || fail "attach-disk --config failed"
virsh start $tmpl >/dev/null
wait_for_line "$E2E_DIR/$tmpl.console" '^HEARTBEAT n=2 .* disk=' 120 >/dev/null ||
    fail "the producer does not write its disk"
# QEMU and the security drivers open the base by its path after the daemon
# checked it: a directory on the way that others may change is refused.
chmod 0777 "$mnt"
expect_error "template-create with a base in a directory others may change" \
    "disk image '$base' of a template must be in directories only root may change, unlike '$mnt'" \
    virsh template-create $tmpl
chmod 0755 "$mnt"
# refused before the guest was paused to save it
[ "$(virsh domstate --reason $tmpl)" = "running (booted)" ] ||
    fail "a refused template-create left $tmpl $(virsh domstate --reason $tmpl)"
virsh template-create $tmpl >/dev/null || fail "template-create failed"
tn=$(field n "$(last_heartbeat "$E2E_DIR/$tmpl.console")")
grep -Eq "<base [^>]*inode=.$(stat -c %i "$base"). generation=.[0-9]+. fs=.fsid:[0-9a-f]+:[0-9a-f]+. .*location=.$base." "$record" ||
    fail "the record does not name the base by inode, generation and filesystem ID: $(grep '<base' "$record")"
dev_before=$(stat -c %d "$base")

# The next boot: the same filesystem on another loop device.
stop_daemon
umount "$mnt"
detach "$fs"
losetup -f "$spare"
mount "$(losetup -f --show "$fs")" "$mnt"
[ "$(stat -c %d "$base")" != "$dev_before" ] ||
    fail "test setup: the base's device number did not change ($dev_before)"
c=$tmpl-clone-1
virsh clone-from-template $tmpl $c >/dev/null ||
    fail "no clone once the base's filesystem came back on another device"
beat=$(heartbeat_after "$E2E_DIR/$c.console" "$tn" 60) || fail "$c does not run on"
[ "$(field disk "$beat")" = "$(field rand "$beat")" ] || fail "$c read back another record: $beat"
virsh destroy $c >/dev/null
echo "base on device $dev_before, then $(stat -c %d "$base"): $c runs on ($beat)"

# Its filesystem not mounted: template-remove fails, the template stays
# whole: its other disk is not given back either.
umount "$mnt"
expect_error "template-remove of a template whose base is not mounted" \
    "unable to open '$base': No such file or directory; mount their filesystem, or have template-remove --forget-missing-disks forget them" virsh template-remove $tmpl
virsh dominfo $tmpl | grep -qE '^Template: +yes' || fail "a failed template-remove lost the template"
[ "$(stat -c %U:%a "$second")" = root:440 ] ||
    fail "a failed template-remove gave the other disk back: $(stat -c %U:%G:%a "$second")"
# undefine checks as much before it removes anything: the NVRAM file of a
# definition given one after template-create stays.
nvram="$E2E_DIR/${tmpl}_VARS.fd"
echo vars >"$nvram"
virsh dumpxml --inactive $tmpl >"$E2E_DIR/$tmpl-def.xml"
sed "s|</os>|<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader><nvram>$nvram</nvram></os>|" \
    "$E2E_DIR/$tmpl-def.xml" >"$E2E_DIR/$tmpl-nvram.xml"
virsh define "$E2E_DIR/$tmpl-nvram.xml" >/dev/null || fail "a redefinition with an NVRAM file was refused"
expect_error "undefine --remove-template --nvram of a template whose base is not mounted" \
    "unable to open '$base': No such file or directory; mount their filesystem" \
    virsh undefine --remove-template --nvram $tmpl
[ -e "$nvram" ] || fail "a refused undefine removed the NVRAM file"
virsh dominfo $tmpl | grep -qE '^Template: +yes' || fail "a refused undefine lost the template"
virsh define "$E2E_DIR/$tmpl-def.xml" >/dev/null
rm -f "$nvram" "$E2E_DIR/$tmpl-def.xml" "$E2E_DIR/$tmpl-nvram.xml"
mount "$(losetup -j "$fs" -O NAME -n)" "$mnt"

# The template directory is lost (a tmpfs at reboot) and the base's
# filesystem is not mounted yet when the daemon starts: the template is
# given up, the base it cannot find stays taken in the record.
stop_daemon
umount "$mnt"
chattr -i "$dir"/* 2>/dev/null || true
rm -rf "$dir"
virsh dominfo $tmpl | grep -qE '^Template: +no' ||
    fail "$tmpl holds a template without its directory: $(virsh dominfo $tmpl | grep Template)"
grep -q '<base .*taken=.yes.' "$record" ||
    fail "the record of a base not found was dropped: $(cat "$record" 2>&1)"
# Nothing could give it back once the domain is gone.
expect_error "undefine of a domain whose earlier template keeps a base taken" \
    "disk images an earlier template of domain '$tmpl' took are still taken: give them back with template-remove first" \
    virsh undefine $tmpl
virsh dumpxml --inactive $tmpl | grep -v '<template ' >"$E2E_DIR/$tmpl-notemplate.xml"
expect_error "redefinition without template memory of a domain whose earlier template keeps a base taken" \
    "disk images an earlier template of domain '$tmpl' took are still taken: its new definition must keep its template memory until template-remove gives them back" \
    virsh define "$E2E_DIR/$tmpl-notemplate.xml"
rm -f "$E2E_DIR/$tmpl-notemplate.xml"
mount "$(losetup -j "$fs" -O NAME -n)" "$mnt"
[ "$(stat -c %U:%a "$base")" = root:440 ] ||
    fail "test setup: the base is $(stat -c %U:%G:%a "$base"), not taken"
virsh template-remove $tmpl >/dev/null || fail "template-remove did not give the base back"
[ "$(stat -c %U:%G:%a "$base")" = root:root:640 ] ||
    fail "the base is $(stat -c %U:%G:%a "$base") after template-remove, was root:root:640"
lsattr "$base" | cut -d' ' -f1 | grep -q i && fail "the base stays immutable: $(lsattr "$base")"
[ ! -e "$record" ] || fail "the record stays after template-remove"
echo "base not mounted at the daemon start: kept taken in the record, given back by template-remove"

# Asked to: --forget-missing-disks removes a template whose base is not
# mounted, which then stays root's.
rm -f "$E2E_DIR/$tmpl.console"
virsh start $tmpl >/dev/null || fail "$tmpl does not start after template-remove"
wait_for_line "$E2E_DIR/$tmpl.console" '^HEARTBEAT n=2 .* disk=' 120 >/dev/null ||
    fail "$tmpl does not write its disk again"
virsh template-create $tmpl >/dev/null || fail "template-create failed"
umount "$mnt"
virsh template-remove --forget-missing-disks $tmpl >/dev/null ||
    fail "template-remove --forget-missing-disks failed"
virsh dominfo $tmpl | grep -qE '^Template: +no' || fail "$tmpl holds a template after template-remove"
[ ! -e "$record" ] || fail "the record stays after template-remove --forget-missing-disks"
mount "$(losetup -j "$fs" -O NAME -n)" "$mnt"
[ "$(stat -c %U:%G:%a "$base")" = root:root:640 ] &&
    fail "a forgotten base was given back: $(stat -c %U:%G:%a "$base")"
chattr -i "$base"
echo "template-remove --forget-missing-disks: template removed, base left $(stat -c %U:%a "$base")"
echo "PASS: template files are known by inode, generation and filesystem ID, whatever device mounts them; a base not found is forgotten only when asked"
