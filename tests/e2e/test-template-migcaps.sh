#!/bin/sh
# QEMU marks x-ignore-shared unstable: the daemon sends it only in the jobs
# that need it (template-create, clones' incoming migration), and once
# more to turn it off; never in the save and restore of other domains.
# Read from the QMP commands in the daemon's debug log.
set -eu
. "$(dirname "$0")/lib.sh"

plain=e2e-migcaps
tmpl=e2e-migcaps-tmpl
log="$PREFIX/var/log/libvirt/virtqemud.log"
cleanup() {
    for c in $(virsh list --name | grep "^$tmpl-" || true); do
        virsh destroy "$c" >/dev/null 2>&1 || true
    done
    cleanup_domain $plain
    virsh destroy $tmpl >/dev/null 2>&1 || true
    virsh undefine --remove-template $tmpl >/dev/null 2>&1 || true
    rm -f "$E2E_DIR/$plain.save"
    # back to the usual log level
    unset VIRTQEMUD_LOG_LEVEL VIRTQEMUD_LOG_FILTERS
    restart_daemon
}
trap cleanup EXIT
cleanup
export VIRTQEMUD_LOG_LEVEL=1 VIRTQEMUD_LOG_FILTERS="1:qemu.qemu_monitor"
restart_daemon
virsh list >/dev/null

# caps_sent FROM: the migrate-set-capabilities commands sent since line FROM
# of the log, one per line.
caps_sent() {
    tail -n +"$1" "$log" | grep -o '"execute":"migrate-set-capabilities"[^}]*}[^]]*]' || true
}

virsh define "$(domxml $plain --memory 256 --fill 8)" >/dev/null
virsh start $plain >/dev/null
wait_for_line "$E2E_DIR/$plain.console" '^HEARTBEAT n=1 ' 120 >/dev/null || fail "$plain did not come up"
from=$(($(wc -l <"$log") + 1))
virsh save $plain "$E2E_DIR/$plain.save" >/dev/null || fail "save failed"
virsh restore "$E2E_DIR/$plain.save" >/dev/null || fail "restore failed"
sent=$(caps_sent "$from")
[ -n "$sent" ] || fail "no migrate-set-capabilities seen in $log: is QMP logged?"
if echo "$sent" | grep -q x-ignore-shared; then
    fail "save and restore of a plain domain sent x-ignore-shared: $sent"
fi
echo "plain save/restore: $(echo "$sent" | wc -l) capability sets, none with x-ignore-shared"

boot_guest $tmpl --memory 256 --fill 8 --template
from=$(($(wc -l <"$log") + 1))
virsh template-create $tmpl >/dev/null || fail "template-create failed"
caps_sent "$from" | grep -qF '{"capability":"x-ignore-shared","state":true}' ||
    fail "template-create did not turn x-ignore-shared on: $(caps_sent "$from")"
from=$(($(wc -l <"$log") + 1))
clone=$(virsh clone-from-template $tmpl | head -n 1) || fail "clone failed"
caps_sent "$from" | grep -qF '{"capability":"x-ignore-shared","state":true}' ||
    fail "the clone's start did not turn x-ignore-shared on: $(caps_sent "$from")"
[ "$(virsh domstate "$clone")" = running ] || fail "$clone is not running"
echo "template-create and clone: x-ignore-shared on"
echo "PASS: x-ignore-shared sent only by the template jobs"
