#!/bin/sh
# template-create failing after the producer stopped, when the guest's
# state is in the template alone: here its disk image is swapped for a
# copy while the daemon stops the producer (a debugger holds the daemon
# there). The template stays, clones are refused while the image is not
# the one recorded, and once it is again a clone goes on where the guest
# stopped. Before, the template and with it the guest were removed.
set -eu
. "$(dirname "$0")/lib.sh"

tmpl=e2e-late
base="$E2E_DIR/$tmpl-base.img"
ready="$E2E_DIR/$tmpl.gdb-ready"
gdbpid=
cleanup() {
    [ -z "$gdbpid" ] || kill "$gdbpid" 2>/dev/null || true
    cleanup_template $tmpl
    rm -f "$base" "$base.recorded" "$ready" "$E2E_DIR/$tmpl.gdb"
}
trap cleanup EXIT
cleanup

# gdb_at FUNCTION -ex CMD...: a debugger on the daemon in the background
# ($gdbpid), running CMDs once the daemon reaches FUNCTION; returns once
# it is attached.
gdb_at() {
    _func=$1
    shift
    rm -f "$ready"
    gdb -q -batch -p "$(cat "$PREFIX/var/run/virtqemud.pid")" \
        -ex "break $_func" \
        -ex "shell touch '$ready'" \
        -ex 'continue' "$@" >"$E2E_DIR/$tmpl.gdb" 2>&1 &
    gdbpid=$!
    _i=0
    while [ ! -e "$ready" ]; do
        _i=$((_i + 1))
        [ $_i -lt 600 ] || fail "gdb did not attach to the daemon: $(cat "$E2E_DIR/$tmpl.gdb")"
        sleep 0.1
    done
}

truncate -s 16M "$base"
chmod 0640 "$base"
virsh define "$(domxml $tmpl --memory 256 --disk "$base" --template)" >/dev/null
virsh start $tmpl >/dev/null
wait_for_line "$E2E_DIR/$tmpl.console" '^HEARTBEAT n=2 .* disk=' 120 >/dev/null ||
    fail "the producer does not write its disk"

# The first protection of the disk images runs as the producer stops.
gdb_at qemuTemplateBasesProtect \
    -ex "shell mv '$base' '$base.recorded' && cp '$base.recorded' '$base'" \
    -ex 'delete' \
    -ex 'detach'

expect_error "template-create whose disk image is swapped as the producer stops" \
    "the template of domain '$tmpl' was made, but it can't be cloned until its disk images are protected" \
    virsh template-create $tmpl
wait "$gdbpid" || fail "gdb: $(cat "$E2E_DIR/$tmpl.gdb")"
gdbpid=
[ -e "$base.recorded" ] || fail "the breakpoint was not reached: $(cat "$E2E_DIR/$tmpl.gdb")"
tn=$(field n "$(last_heartbeat "$E2E_DIR/$tmpl.console")")

[ "$(virsh domstate $tmpl)" = "shut off" ] || fail "$tmpl is $(virsh domstate $tmpl)"
virsh dominfo $tmpl | grep -qE '^Template: +yes' ||
    fail "the template, the guest's only state, was removed: $(virsh dominfo $tmpl | grep Template)"
expect_error "clone of a template whose disk image is not the one recorded" \
    "template file '$base' was changed after the template was created" virsh clone-from-template $tmpl $tmpl-clone-1

mv "$base.recorded" "$base"
c=$tmpl-clone-1
virsh clone-from-template $tmpl $c >/dev/null ||
    fail "no clone once the disk image is the recorded one again"
beat=$(heartbeat_after "$E2E_DIR/$c.console" "$tn" 60) || fail "$c does not go on from heartbeat $tn"
[ "$(field disk "$beat")" = "$(field rand "$beat")" ] || fail "$c read back another record: $beat"
[ "$(stat -c %a "$base")" = 440 ] || fail "the base is not protected: $(stat -c %a "$base")"
echo "$c: $beat"
virsh destroy $c >/dev/null

# The daemon killed once template-create published the image, before it
# stopped the producer: the next daemon start finishes template-create,
# and has no running domain left to reconnect to.
virsh template-remove $tmpl >/dev/null
rm -f "$E2E_DIR/$tmpl.console"
virsh start $tmpl >/dev/null
wait_for_line "$E2E_DIR/$tmpl.console" '^HEARTBEAT n=2 .* disk=' 120 >/dev/null ||
    fail "$tmpl does not run again after template-remove"
log="$PREFIX/var/log/libvirt/virtqemud.log"
lines=$(wc -l <"$log")
gdb_at qemuProcessStop -ex 'kill'
virsh template-create $tmpl >/dev/null 2>&1 && fail "template-create returned although its daemon was killed"
wait "$gdbpid" || true
gdbpid=
grep -q 'Breakpoint 1, qemuProcessStop' "$E2E_DIR/$tmpl.gdb" ||
    fail "the daemon was not stopped as it stops the producer: $(cat "$E2E_DIR/$tmpl.gdb")"
# the reconnect runs in the background
for _ in $(seq 1 100); do
    [ "$(virsh domstate --reason $tmpl)" != "shut off (saved)" ] || break
    sleep 0.1
done
[ "$(virsh domstate --reason $tmpl)" = "shut off (saved)" ] ||
    fail "after the daemon start, $tmpl is $(virsh domstate --reason $tmpl)"
virsh dominfo $tmpl | grep -qE '^Template: +yes' || fail "the published template was lost"
errors=$(tail -n +"$((lines + 1))" "$log" | grep -E 'must not be NULL|cannot be NULL' || true)
[ -z "$errors" ] || fail "the daemon start that finished template-create went on as if it ran: $errors"
echo "daemon killed as template-create stopped the producer: finished at the next start"
echo "PASS: a template whose disk images could not be protected as its producer stopped is kept"
