#!/bin/sh
# While a producer runs, its template directory is its QEMU's: a QEMU a
# guest took over can write a template image, a record of disk images to
# give back and links there.  None of it is the daemon's until
# template-create takes the directory: a daemon start must neither give a
# file named by a planted record to QEMU's user, nor write through a
# planted link, nor take a planted image for a template whose files the
# producer's stop then protects.
set -eu
. "$(dirname "$0")/lib.sh"

prod=e2e-plant
dir="$(template_dir $prod)"
victim="$E2E_DIR/$prod-victim"
victim2="$E2E_DIR/$prod-victim2"
cleanup() {
    cleanup_template $prod
    chattr -i "$victim" 2>/dev/null || true
    rm -f "$victim" "$victim2"
}
trap cleanup EXIT
cleanup

# what a user would look at: owner, mode, immutable flag, content
state() {
    printf '%s %s %s\n' "$(stat -c '%U:%G %a' "$1")" \
        "$(lsattr -d "$1" 2>/dev/null | cut -c5)" "$(sha256sum <"$1" | cut -c1-16)"
}

printf 'victim\n' >"$victim"
printf 'victim2\n' >"$victim2"
chmod 0600 "$victim" "$victim2"
before=$(state "$victim")
before2=$(state "$victim2")

virsh define "$(domxml $prod --memory 256 --template)" >/dev/null
virsh start $prod >/dev/null
wait_for_line "$E2E_DIR/$prod.console" '^HEARTBEAT n=1 ' 120 >/dev/null ||
    fail "the producer did not come up"
owner=$(stat -c %U "$dir")
[ "$owner" = "$QEMU_USER" ] ||
    fail "test setup: the running producer's directory is $owner's, not $QEMU_USER's"

# A record in the directory, where the daemon keeps none, naming a file the
# QEMU cannot touch, as template-create writes one, asking for it back as
# QEMU's user with every write bit.
qemu_uid=$(id -u "$QEMU_USER")
qemu_gid=$(getent group "$QEMU_GROUP" | cut -d: -f3)
record="<templateFiles>
  <base path='$victim' $(file_identity "$victim") owner='$qemu_uid' group='$qemu_gid' mode='0666' taken='yes'/>
</templateFiles>"
as_qemu sh -c 'printf "%s\n" "$1" >"$2/template.files" && ln -s "$3" "$2/template.files.new"' \
    planted "$record" "$dir" "$victim2" || fail "test setup: $QEMU_USER cannot write its directory"
restart_daemon
[ "$(state "$victim")" = "$before" ] ||
    fail "a daemon start followed a planted record: $victim is now $(state "$victim"), was $before"
[ "$(state "$victim2")" = "$before2" ] ||
    fail "a daemon start wrote through a planted link: $victim2 is now $(state "$victim2")"
echo "planted record and link: $victim and $victim2 untouched by a daemon start ($before)"

# A planted template image on top: the running producer must not become
# a template, whose stop would protect the recorded files.
as_qemu sh -c ': >"$1/template.save"' planted "$dir" ||
    fail "test setup: $QEMU_USER cannot write its directory"
restart_daemon
virsh dominfo $prod | grep -qE '^Template: +no' ||
    fail "a planted template image made $prod a template: $(virsh dominfo $prod | grep Template)"
virsh destroy $prod >/dev/null
[ "$(state "$victim")" = "$before" ] ||
    fail "the producer's stop protected a file of a planted record: $victim is now $(state "$victim")"
virsh dominfo $prod | grep -qE '^Template: +no' || fail "$prod holds a template after its stop"
echo "planted image: $prod holds no template, its stop leaves $victim as it was"

# The producer starts again and makes a real template.
virsh start $prod >/dev/null || fail "the producer does not start again"
wait_for_line "$E2E_DIR/$prod.console" '^HEARTBEAT n=1 ' 120 >/dev/null ||
    fail "the producer did not come up again"
rm -f "$dir/template.files" "$dir/template.files.new" "$dir/template.save"
virsh template-create $prod >/dev/null || fail "template-create after the planting failed"
virsh dominfo $prod | grep -qE '^Template: +yes' || fail "$prod is no template"

# The daemon's record is out of every QEMU's reach: not in a directory the
# QEMU user owns (libDir is), so it can neither be replaced nor renamed.
record="$(template_record $prod)"
records="$(dirname "$record")"
[ -f "$record" ] || fail "no record of the template at $record"
for d in "$records" "$(dirname "$records")"; do
    [ "$(stat -c %u "$d")" = 0 ] || fail "$d is not root's: $(stat -c %U:%G:%a "$d")"
done
as_qemu mv "$records" "$records.planted" 2>/dev/null &&
    fail "$QEMU_USER could rename the record directory $records"
as_qemu sh -c ': >"$1"' planted "$records/planted.xml" 2>/dev/null &&
    fail "$QEMU_USER could write into the record directory $records"
echo "record $record: $QEMU_USER can neither rename its directory nor write in it"

# The template directory too: no QEMU may rename it, or the directory
# holding it, for a daemon start to take the template for gone.
root="$(dirname "$dir")"
for d in "$root" "$(dirname "$root")"; do
    [ "$(stat -c %u "$d")" = 0 ] || fail "$d is not root's: $(stat -c %U:%G:%a "$d")"
done
as_qemu mv "$dir" "$dir.planted" 2>/dev/null &&
    fail "$QEMU_USER could rename the template directory $dir"
as_qemu mv "$root" "$root.planted" 2>/dev/null &&
    fail "$QEMU_USER could rename $root, which holds the template directories"
echo "template directory $dir: $QEMU_USER can rename neither it nor $root"
echo "PASS: nothing planted in a producer's directory is taken for the daemon's"
