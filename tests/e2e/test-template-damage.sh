#!/bin/sh
# A template no clone can damage: clones that overwrite all of their RAM
# leave the template's files byte-identical; RAM files are immutable, and
# replaced or written behind libvirt's back (once an administrator cleared
# the flag) are refused before any clone starts.
set -eu
. "$(dirname "$0")/lib.sh"

tmpl=e2e-churn
dir="$(template_dir $tmpl)"
trap 'cleanup_template $tmpl' EXIT
cleanup_template $tmpl

virsh define "$(domxml $tmpl --memory 256 --fill 32 --no-verify --churn --template)" >/dev/null
virsh start $tmpl >/dev/null
wait_for_line "$E2E_DIR/$tmpl.console" '^HEARTBEAT .* churn=[1-9][0-9]* ' 180 >/dev/null ||
    fail "the template does not overwrite its RAM"
virsh template-create $tmpl >/dev/null || fail "template-create failed"
last=$(tr -d '\r' <"$E2E_DIR/$tmpl.console" | grep '^HEARTBEAT' | tail -n 1)
tn=$(field n "$last")
tchurn=$(field churn "$last")
ram_sum=$(sha256sum "$dir/pc.ram" | cut -d' ' -f1)
image_sum=$(sha256sum "$dir/template.save" | cut -d' ' -f1)

virsh clone-from-template $tmpl --count 2 >/dev/null || fail "clone-from-template failed"
for c in $tmpl-clone-1 $tmpl-clone-2; do
    # Two more passes: at least one whole pass over the RAM after the start.
    beat=""
    for _ in $(seq 1 3000); do
        beat=$(last_heartbeat "$E2E_DIR/$c.console")
        [ -n "$beat" ] && [ "$(field churn "$beat")" -ge $((tchurn + 2)) ] && break
        sleep 0.1
    done
    [ -n "$beat" ] && [ "$(field churn "$beat")" -ge $((tchurn + 2)) ] ||
        fail "$c does not overwrite its RAM: $beat"
    [ "$(field n "$beat")" -gt "$tn" ] || fail "$c did not continue from the template: $beat"
    # The pages it wrote are its own copies: most of its 256 MiB, after
    # enough passes (what the guest kernel keeps for itself is never free).
    pid=$(qemu_pids $c)
    for _ in $(seq 1 600); do
        dirty=$(awk '/^Private_Dirty:/ { print int($2 / 1024) }' "/proc/$pid/smaps_rollup")
        [ "$dirty" -ge 160 ] && break
        sleep 0.1
    done
    [ "$dirty" -ge 160 ] || fail "$c has only $dirty MiB of private RAM: it did not write it all"
    echo "$c: $beat; $dirty MiB of its own RAM"
done
for c in $tmpl-clone-1 $tmpl-clone-2; do
    virsh destroy $c >/dev/null
done
[ "$(sha256sum "$dir/pc.ram" | cut -d' ' -f1)" = "$ram_sum" ] || fail "the clones changed the template's RAM file"
[ "$(sha256sum "$dir/template.save" | cut -d' ' -f1)" = "$image_sum" ] || fail "the template image changed"
echo "template RAM file and image byte-identical after 2 clones overwrote all their RAM"
fault "clones overwriting all their RAM" 2 2 0

# The RAM file is immutable: not even root writes, renames or chowns it,
# so no other domain naming it as a disk or memory device can.
lsattr "$dir/pc.ram" | cut -d' ' -f1 | grep -q i || fail "the RAM file is not immutable: $(lsattr "$dir/pc.ram")"
if printf '\377' | dd of="$dir/pc.ram" bs=1 seek=4096 conv=notrunc 2>/dev/null ||
   chown "$QEMU_USER" "$dir/pc.ram" 2>/dev/null || mv "$dir/pc.ram" "$dir/pc.ram.orig" 2>/dev/null; then
    fail "root could change the immutable RAM file"
fi
echo "the RAM file is immutable: write, chown and rename refused to root"

# What an administrator can still do: clear the flag, then replace the
# RAM file by a copy (another inode), or write to it.
chattr -i "$dir/pc.ram"
mv "$dir/pc.ram" "$dir/pc.ram.orig"
cp "$dir/pc.ram.orig" "$dir/pc.ram"
expect_error "RAM file replaced by a copy" "was changed after the template was created" \
    virsh clone-from-template $tmpl
mv "$dir/pc.ram.orig" "$dir/pc.ram"
mtime=$(stat -c %y "$dir/pc.ram")
byte=$(od -An -tx1 -j 4096 -N 1 "$dir/pc.ram" | tr -d ' ')
printf '\377' | dd of="$dir/pc.ram" bs=1 seek=4096 conv=notrunc 2>/dev/null
expect_error "RAM file written" "was changed after the template was created" \
    virsh clone-from-template $tmpl
printf "\\$(printf %o 0x$byte)" | dd of="$dir/pc.ram" bs=1 seek=4096 conv=notrunc 2>/dev/null
touch -d "$mtime" "$dir/pc.ram"
[ "$(sha256sum "$dir/pc.ram" | cut -d' ' -f1)" = "$ram_sum" ] || fail "could not restore the RAM file"
chattr +i "$dir/pc.ram"
if virsh list --name | grep -q "^$tmpl-clone"; then
    fail "a refused clone runs"
fi

fault "template RAM file changed behind libvirt" 2 2 0

# The original, as created, clones again.
virsh clone-from-template $tmpl --name $tmpl-clone-3 >/dev/null || fail "clone of the restored template failed"
heartbeat_after "$E2E_DIR/$tmpl-clone-3.console" "$tn" 60 >/dev/null || fail "$tmpl-clone-3 does not run"
virsh destroy $tmpl-clone-3 >/dev/null
# Removing the template clears the flag it set.
virsh undefine --remove-template $tmpl >/dev/null || fail "undefine --remove-template failed"
[ ! -e "$dir" ] || fail "template directory left: $(ls -A "$dir")"
echo "PASS: template files untouched by clones; changed files refused"
