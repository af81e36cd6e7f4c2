#!/bin/sh
# A template directory on a tmpfs does not outlive a reboot: the daemon's
# record of the template, kept where no QEMU can write, does, and the next
# daemon start gives the disk image that was the template's base its owner
# and mode back, so that the domain starts again.
set -eu
. "$(dirname "$0")/lib.sh"

tmpl=e2e-reboot
dir="$(template_dir $tmpl)"
record="$(template_record $tmpl)"
base="$E2E_DIR/$tmpl-base.img"
cleanup() {
    cleanup_template $tmpl
    rm -f "$base"
}
trap cleanup EXIT
cleanup

truncate -s 16M "$base"
chmod 0640 "$base"
virsh define "$(domxml $tmpl --memory 256 --disk "$base" --template)" >/dev/null
virsh start $tmpl >/dev/null
wait_for_line "$E2E_DIR/$tmpl.console" '^HEARTBEAT n=1 ' 120 >/dev/null ||
    fail "the producer did not come up"
virsh template-create $tmpl >/dev/null || fail "template-create failed"
[ "$(stat -c %U:%a "$record")" = root:600 ] && [ "$(stat -c %U:%a "$(dirname "$record")")" = root:700 ] ||
    fail "the record is not root's alone: $(stat -c %U:%a "$record" "$(dirname "$record")" | tr '\n' ' ')"
[ "$(stat -c %a "$base")" = 440 ] && lsattr "$base" | cut -d' ' -f1 | grep -q i ||
    fail "the base is not protected: mode $(stat -c %a "$base"), $(lsattr "$base")"
echo "template: base protected (440, immutable), record $(stat -c %U:%a "$record") in $(dirname "$record")"

# The host reboots: the daemon stops, the tmpfs and all in it are gone.
kill "$(cat "$PREFIX/var/run/virtqemud.pid")"
while pgrep -f "$MESON_DIR/src/virtqemud" >/dev/null; do
    sleep 0.1
done
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
echo "PASS: a template lost with its directory gives its disk image back at the next daemon start"
