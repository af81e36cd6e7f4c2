#!/bin/sh
# A template directory on a tmpfs does not outlive a reboot: the daemon's
# record of the template, kept where no QEMU can write, does, and the next
# daemon start gives the disk image that was the template's base its owner
# and mode back, so that the domain starts again. A template directory on
# a filesystem not mounted yet is no template lost, and a record left
# without a template is given back by template-remove.
set -eu
. "$(dirname "$0")/lib.sh"

tmpl=e2e-reboot
dir="$(template_dir $tmpl)"
record="$(template_record $tmpl)"
base="$E2E_DIR/$tmpl-base.img"
root="$(dirname "$dir")"
cleanup() {
    if mountpoint -q "$root"; then
        umount "$root"
    fi
    cleanup_template $tmpl
    rm -f "$base" "$E2E_DIR/$tmpl-record.xml"
}
trap cleanup EXIT
cleanup

truncate -s 16M "$base"
chmod 0640 "$base"
boot_guest $tmpl --memory 256 --disk "$base" --template
virsh template-create $tmpl >/dev/null || fail "template-create failed"
[ "$(stat -c %U:%a "$record")" = root:600 ] && [ "$(stat -c %U:%a "$(dirname "$record")")" = root:700 ] ||
    fail "the record is not root's alone: $(stat -c %U:%a "$record" "$(dirname "$record")" | tr '\n' ' ')"
[ "$(stat -c %a "$base")" = 440 ] && lsattr "$base" | cut -d' ' -f1 | grep -q i ||
    fail "the base is not protected: mode $(stat -c %a "$base"), $(lsattr "$base")"
echo "template: base protected (440, immutable), record $(stat -c %U:%a "$record") in $(dirname "$record")"

# A filesystem not mounted yet when the daemon starts (here an empty tmpfs
# over the directory holding the template directories) does not make the
# template gone: it is kept, its base stays protected, clones are refused
# until the filesystem is back.
stop_daemon
mount -t tmpfs -o mode=0711 tmpfs "$root"
virsh dominfo $tmpl | grep -qE '^Template: +yes' ||
    fail "$tmpl lost its template while its filesystem was not mounted: $(virsh dominfo $tmpl | grep Template)"
[ "$(stat -c %a "$base")" = 440 ] && [ -f "$record" ] ||
    fail "the template's base or record was given back while its filesystem was not mounted"
expect_error "clone of a template whose filesystem is not mounted" \
    "template directory '$dir' is not usable" virsh clone-from-template $tmpl $tmpl-clone-1
stop_daemon
umount "$root"
virsh clone-from-template $tmpl $tmpl-clone-1 >/dev/null ||
    fail "no clone once the template's filesystem is mounted again"
virsh destroy $tmpl-clone-1 >/dev/null
echo "template kept while its filesystem was not mounted, cloned once it was"

# The host reboots: the daemon stops, the tmpfs and all in it are gone.
stop_daemon
chattr -i "$dir"/* 2>/dev/null || true
rm -rf "$dir"
virsh dominfo $tmpl | grep -qE '^Template: +no' ||
    fail "$tmpl holds a template without its directory: $(virsh dominfo $tmpl | grep Template)"
[ "$(stat -c %U:%G:%a "$base")" = root:root:640 ] ||
    fail "the base was not given back: $(stat -c %U:%G:%a "$base"), was root:root:640"
lsattr "$base" | cut -d' ' -f1 | grep -q i && fail "the base stays immutable: $(lsattr "$base")"
[ ! -e "$record" ] || fail "the record of a template that is gone stays: $record"
echo "after the template directory was lost: base $(stat -c %U:%G:%a "$base") again, record removed"

rm -f "$E2E_DIR/$tmpl.console"
virsh start $tmpl >/dev/null || fail "$tmpl does not start again"
wait_for_line "$E2E_DIR/$tmpl.console" '^HEARTBEAT n=2 .* disk=' 120 >/dev/null ||
    fail "$tmpl does not write its disk again"

# A record left with the disk images it took (giving them back failed) and
# no template: template-create does not forget the owners it keeps, and
# template-remove of the stopped domain gives them back.
virsh template-create $tmpl >/dev/null || fail "template-create failed"
cp -p "$record" "$E2E_DIR/$tmpl-record.xml"
virsh template-remove $tmpl >/dev/null || fail "template-remove failed"
rm -f "$E2E_DIR/$tmpl.console"
virsh start $tmpl >/dev/null || fail "$tmpl does not start after template-remove"
wait_for_line "$E2E_DIR/$tmpl.console" '^HEARTBEAT n=1 ' 120 >/dev/null ||
    fail "$tmpl did not come up after template-remove"
stop_daemon
cp -p "$E2E_DIR/$tmpl-record.xml" "$record"
rm -f "$E2E_DIR/$tmpl-record.xml"
expect_error "template-create over a record left with disk images taken" \
    "were not all given back: run template-remove once the domain is stopped" \
    virsh template-create $tmpl
[ "$(virsh domstate $tmpl)" = running ] || fail "a refused template-create left $tmpl $(virsh domstate $tmpl)"
virsh destroy $tmpl >/dev/null
# the base as the record has it: one not given back was not written since
touch -d "@$(sed -n "s|.*<base [^>]* mtime=.\([0-9.]*\). .*|\1|p" "$record")" "$base"
virsh template-remove $tmpl >/dev/null || fail "template-remove did not give back what the record left"
[ ! -e "$record" ] || fail "the record left stays after template-remove"
[ "$(stat -c %U:%G:%a "$base")" = root:root:640 ] ||
    fail "the base is $(stat -c %U:%G:%a "$base") after template-remove, was root:root:640"
echo "record left with disk images taken: template-create refused, template-remove gave them back"
echo "PASS: a template lost with its directory gives its disk image back at the next daemon start"
