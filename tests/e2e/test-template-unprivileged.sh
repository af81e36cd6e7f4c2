#!/bin/sh
# QEMU as Debian's unprivileged user: after template-create that user can
# read what clones need and open none of the template's files for writing
# (RAM file, template image, frozen disk base, template directory), and a
# clone's QEMU holds the RAM file read-only. A link the producer's QEMU
# planted in the template directory stops template-create.
set -eu
. "$(dirname "$0")/lib.sh"

tmpl=e2e-unpriv
dir="$(template_dir $tmpl)"
base="$E2E_DIR/$tmpl-base.qcow2"
cleanup() {
    cleanup_template $tmpl
    rm -f "$base"
}
trap cleanup EXIT
cleanup

# open_for_write FILE: what opening FILE for writing as QEMU's user gives
open_for_write() {
    as_qemu sh -c 'exec 3<>"$1" && echo opened' sh "$1" 2>&1 | sed 's/.*: //'
}

qemu-img create -q -f qcow2 "$base" 16M
virsh define "$(domxml $tmpl --memory 256 --fill 16 --disk "$base" --template)" >/dev/null
virsh start $tmpl >/dev/null
wait_for_line "$E2E_DIR/$tmpl.console" '^HEARTBEAT n=2 .* disk=' 120 >/dev/null ||
    fail "the template does not write its disk"
user=$(ps -o user= -p "$(qemu_pids $tmpl)")
[ "$user" = "$QEMU_USER" ] || fail "the template's QEMU runs as $user, not $QEMU_USER"

# Until template-create the directory is the producer's QEMU's, which could
# leave a link where the daemon writes the image as root.
victim="$E2E_DIR/$tmpl-victim"
echo untouched >"$victim"
as_qemu ln -s "$victim" "$dir/template.save.partial"
expect_error "a link planted in the template directory" "unexpected 'template.save.partial'" \
    virsh template-create $tmpl
[ "$(cat "$victim")" = untouched ] || fail "template-create wrote through a planted link"
[ "$(virsh domstate $tmpl)" = running ] || fail "the producer is $(virsh domstate $tmpl) after the refusal"
rm -f "$dir/template.save.partial" "$victim"

virsh template-create $tmpl >/dev/null || fail "template-create failed"

for f in "$dir/pc.ram" "$dir/template.save" "$base"; do
    out=$(open_for_write "$f")
    # EPERM for the immutable RAM file and base, EACCES for the image
    [ "$out" = "Permission denied" ] || [ "$out" = "Operation not permitted" ] ||
        fail "$QEMU_USER opening $f for writing: '$out', not refused"
    echo "$QEMU_USER opening $(basename "$f") for writing: $out"
done
out=$(as_qemu touch "$dir/planted" 2>&1 | sed 's/.*: //') || true
[ ! -e "$dir/planted" ] || fail "$QEMU_USER can create files in the template directory"
echo "$QEMU_USER creating a file in the template directory: $out"
as_qemu head -c 4096 "$dir/pc.ram" >/dev/null || fail "$QEMU_USER cannot read the RAM file"
as_qemu head -c 4096 "$base" >/dev/null || fail "$QEMU_USER cannot read the frozen base"
echo "owner and mode: $(stat -c '%U:%G %a' "$dir/pc.ram") pc.ram," \
    "$(stat -c '%U:%G %a' "$dir/template.save") template.save, $(stat -c '%U:%G %a' "$base") base"

virsh clone-from-template $tmpl --count 2 >/dev/null || fail "clone-from-template failed"
for c in $tmpl-clone-1 $tmpl-clone-2; do
    pid=$(qemu_pids $c)
    [ "$(ps -o user= -p "$pid")" = "$QEMU_USER" ] || fail "$c's QEMU does not run as $QEMU_USER"
    ram=$(open_flags "$pid" "$dir/pc.ram" | head -n 1)
    [ -n "$ram" ] || fail "$c does not hold the template's RAM file"
    [ $(( 0$ram & 3 )) = 0 ] || fail "$c holds the RAM file with flags $ram, not O_RDONLY"
    heartbeat_after "$E2E_DIR/$c.console" 2 60 >/dev/null || fail "$c does not run on"
    echo "$c: QEMU as $QEMU_USER, RAM file open with flags $ram (O_RDONLY)"
done
# Clones running changed none of it.
for f in "$dir/pc.ram" "$base"; do
    [ "$(stat -c %U "$f")" = root ] || fail "$f was given to $(stat -c %U "$f")"
done
echo "PASS: $QEMU_USER reads the template's files, writes none, and clones hold the RAM file read-only"
