#!/bin/sh
# What a template is made of is the daemon's record, not whatever names a
# file later: the template image is recorded and cannot be rewritten
# through save-image-define; removing the template gives its permissions
# back only to the disk images it recorded, not to a disk attached to the
# definition since, nor to another file put in place of a base. An
# undefine refused for another reason (NVRAM) keeps the template. Clones
# cannot be defined; a saved clone's overlay keeps the template until
# template-remove --saved-clones drops it.
set -eu
. "$(dirname "$0")/lib.sh"

tmpl=e2e-record
dir="$(template_dir $tmpl)"
record="$(template_record $tmpl)"
base="$E2E_DIR/$tmpl-base.img"
extra="$E2E_DIR/$tmpl-extra.img"
nvram="$E2E_DIR/$tmpl.nvram"
cleanup() {
    virsh destroy $tmpl-saved >/dev/null 2>&1 || true
    virsh undefine --remove-template --nvram $tmpl >/dev/null 2>&1 || true
    virsh template-remove --saved-clones $tmpl >/dev/null 2>&1 || true
    cleanup_template $tmpl
    rm -f "$base" "$extra" "$nvram"
}
trap cleanup EXIT
cleanup

make_template() {
    truncate -s 16M "$base"
    chmod 0640 "$base"
    boot_guest $tmpl --memory 256 --fill 8 --disk "$base" --template
    virsh template-create $tmpl >/dev/null || fail "template-create failed"
    [ "$(stat -c %a "$base")" = 440 ] || fail "the base is not read-only: $(stat -c %a "$base")"
}

# 1. The template image is recorded; its XML cannot be rewritten.
make_template
grep -Eq "<image .* path=.$dir/template.save./>" "$record" ||
    fail "the record does not list the template image: $(cat "$record")"
image_sum=$(sha256sum "$dir/template.save" | cut -d' ' -f1)
virsh save-image-dumpxml "$dir/template.save" |
    sed "s|<name>$tmpl</name>|&<description>changed</description>|" >"$E2E_DIR/$tmpl-image.xml"
expect_error "save-image-define of the template image" "is a template image" \
    virsh save-image-define "$dir/template.save" "$E2E_DIR/$tmpl-image.xml"
[ "$(sha256sum "$dir/template.save" | cut -d' ' -f1)" = "$image_sum" ] ||
    fail "a refused save-image-define changed the template image"
# Written behind libvirt's back, the image is refused as any recorded file.
refused_if_touched $tmpl "$dir/template.save" "template image written behind libvirt"

# 2. A disk attached to the definition after template-create is not the
# template's: removing the template leaves its mode alone.
truncate -s 4M "$extra"
chmod 0640 "$extra"
virsh attach-disk $tmpl "$extra" vdb --config >/dev/null || fail "attach-disk --config failed"
virsh template-remove $tmpl >/dev/null || fail "template-remove failed"
[ "$(stat -c %a "$extra")" = 640 ] || fail "template-remove changed a disk it never protected: $(stat -c %a "$extra")"
[ "$(stat -c %a "$base")" = 640 ] || fail "the base did not get its mode back: $(stat -c %a "$base")"
echo "a disk attached after template-create: left 640; the base: back to 640"
virsh undefine $tmpl >/dev/null

# 3. Another file put in place of the base: not the daemon's to change,
# nor is the template removed without being told to forget the base.
# (The base is immutable: only an administrator clearing the flag can.)
make_template
chattr -i "$base"
cp --preserve=mode "$base" "$base.new"
mv "$base.new" "$base"
expect_error "undefine --remove-template of a template whose base was replaced" \
    "template file '$base' was changed after the template was created" virsh undefine --remove-template $tmpl
virsh dominfo $tmpl | grep -qE '^Template: +yes' || fail "a refused undefine lost the template"
virsh template-remove --forget-missing-disks $tmpl >/dev/null ||
    fail "template-remove --forget-missing-disks failed"
virsh undefine $tmpl >/dev/null || fail "undefine failed"
[ "$(stat -c %a "$base")" = 440 ] || fail "template removal changed a file it never protected: $(stat -c %a "$base")"
[ ! -e "$dir" ] || fail "template directory left: $(ls -A "$dir")"
echo "a base replaced behind libvirt: undefine refused; template-remove --forget-missing-disks left the file as it was"

# 4. undefine refused for NVRAM it was not told to remove: the check comes
# before the template is discarded, which must survive the refusal.
rm -f "$base"
make_template
: >"$nvram"
virsh dumpxml --inactive $tmpl |
    sed "s|<type arch=[^>]*>hvm</type>|&<loader readonly='yes' type='pflash'>/usr/share/seabios/bios.bin</loader><nvram>$nvram</nvram>|" \
    >"$E2E_DIR/$tmpl-nvram.xml"
grep -q "<nvram>" "$E2E_DIR/$tmpl-nvram.xml" || fail "test setup: no NVRAM in the definition"
virsh define "$E2E_DIR/$tmpl-nvram.xml" >/dev/null || fail "adding NVRAM to the template's definition failed"
expect_error "undefine --remove-template with NVRAM" "cannot undefine domain with nvram" \
    virsh undefine --remove-template $tmpl
virsh list --all --template --name | grep -qx $tmpl || fail "a refused undefine discarded the template"
[ -f "$dir/template.save" ] && [ -f "$dir/pc.ram" ] || fail "a refused undefine removed template files"
[ "$(stat -c %a "$base")" = 440 ] || fail "a refused undefine gave the base back: $(stat -c %a "$base")"
clone=$(virsh clone-from-template $tmpl --paused | head -n 1) || fail "the template does not clone after a refused undefine"
virsh destroy "$clone" >/dev/null
virsh undefine --remove-template --nvram $tmpl >/dev/null || fail "undefine --remove-template --nvram failed"
[ ! -e "$nvram" ] && [ ! -e "$dir" ] || fail "NVRAM or template directory left"
echo "undefine refused for NVRAM: template kept and clonable; with --nvram: all removed"
# 5. Clones stay transient: defining one would keep a mapping of the
# template's memory beyond the access checked when it was cloned.
rm -f "$base"
make_template
clone=$(virsh clone-from-template $tmpl --name $tmpl-saved --paused | head -n 1) ||
    fail "clone-from-template failed"
virsh dumpxml $clone >"$E2E_DIR/$clone.xml"
expect_error "define of a clone" "is transient and cannot be defined" \
    virsh define "$E2E_DIR/$clone.xml"
# Its overlay was made without root's qemu-img opening the base: the size
# comes from the base the daemon probed.
[ "$(qemu-img info -U "$dir/clones/$clone/vda.qcow2" | sed -n 's/^virtual size: .*(\([0-9]*\) bytes)/\1/p' | head -n 1)" = \
  "$(stat -c %s "$base")" ] || fail "the overlay does not have the size of its base"
echo "define of a clone: refused; its overlay has the base's size"

# 6. A saved clone's overlay blocks the template's removal until the
# caller says to drop it; the clone's image then cannot be restored.
virsh save $clone "$E2E_DIR/$clone.save" >/dev/null || fail "save of a clone failed"
[ -f "$dir/clones/$clone/vda.qcow2" ] || fail "the saved clone's overlay is gone"
expect_error "template-remove with a saved clone" "remove the overlays of saved clones first" \
    virsh template-remove $tmpl
# All or nothing: a running clone keeps the template, and the saved one
# its overlay.
running=$(virsh clone-from-template $tmpl --paused | head -n 1) || fail "clone-from-template failed"
expect_error "template-remove --saved-clones with a running clone" "is not saved: destroy it first" \
    virsh template-remove --saved-clones $tmpl
[ -f "$dir/clones/$clone/vda.qcow2" ] || fail "a refused template-remove removed a saved clone's overlay"
virsh destroy "$running" >/dev/null
virsh template-remove --saved-clones $tmpl >/dev/null || fail "template-remove --saved-clones failed"
[ ! -e "$dir" ] || fail "template directory left: $(ls -AR "$dir")"
[ "$(stat -c %a "$base")" = 640 ] || fail "the base did not get its mode back: $(stat -c %a "$base")"
expect_error "restore of a clone of a removed template" "is a clone of no template that exists" \
    virsh restore "$E2E_DIR/$clone.save"
rm -f "$E2E_DIR/$clone.save"
virsh undefine $tmpl >/dev/null
echo "a saved clone's overlay: kept until template-remove --saved-clones, then restore refused"
echo "PASS: the template image is recorded and kept; only recorded files get their permissions back"
