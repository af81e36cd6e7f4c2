#!/bin/sh
# Several clones at once of a template whose disk is each kind of base the
# feature accepts: a raw file, a qcow2 image, and a qcow2 image on a raw
# backing file. Each clone writes its own overlay and reads back its own
# record; every QEMU opens the base read-only (a qcow2 base opened for
# writing would be locked by the first clone: "Failed to get "write" lock");
# the base and its backing file stay unchanged and the daemon's. A qcow2
# image with an external data file is refused.
set -eu
. "$(dirname "$0")/lib.sh"

tmpl=e2e-fmt
nclones=3
files=""
cleanup() {
    cleanup_template $tmpl
    rm -f $files
}
trap cleanup EXIT

for kind in raw qcow2 qcow2-on-raw; do
    cleanup
    backing=""
    case $kind in
        raw)
            base="$E2E_DIR/$tmpl-base.img"
            truncate -s 16M "$base" ;;
        qcow2)
            base="$E2E_DIR/$tmpl-base.qcow2"
            qemu-img create -q -f qcow2 "$base" 16M ;;
        qcow2-on-raw)
            backing="$E2E_DIR/$tmpl-golden.img"
            base="$E2E_DIR/$tmpl-top.qcow2"
            truncate -s 16M "$backing"
            qemu-img create -q -f qcow2 -b "$backing" -F raw "$base" ;;
    esac
    files="$base $backing"
    virsh define "$(domxml $tmpl --memory 256 --disk "$base" --template)" >/dev/null
    virsh start $tmpl >/dev/null
    wait_for_line "$E2E_DIR/$tmpl.console" '^HEARTBEAT n=2 .* disk=' 120 >/dev/null ||
        fail "$kind: the template does not write its disk"
    virsh template-create $tmpl >/dev/null || fail "$kind: template-create failed"
    tn=$(field n "$(last_heartbeat "$E2E_DIR/$tmpl.console")")
    sums=$(sha256sum $files)

    virsh clone-from-template $tmpl --count $nclones >/dev/null ||
        fail "$kind: $nclones clones at once failed"
    for i in $(seq 1 $nclones); do
        c=$tmpl-clone-$i
        beat=$(heartbeat_after "$E2E_DIR/$c.console" $((tn + 2)) 60) || fail "$kind: $c does not run on"
        [ "$(field disk "$beat")" = "$(field rand "$beat")" ] ||
            fail "$kind: $c read back another record: $beat"
        pid=$(qemu_pids $c)
        for f in $files; do
            for flags in $(open_flags "$pid" "$f"); do
                [ $(( 0$flags & 3 )) = 0 ] || fail "$kind: $c opened $f with flags $flags"
            done
        done
    done
    [ "$(virsh list --name | grep -c "^$tmpl-clone-")" = $nclones ] ||
        fail "$kind: not all $nclones clones are running: $(virsh list --name)"
    [ "$(sha256sum $files)" = "$sums" ] || fail "$kind: the base changed while clones ran"
    # Not even the backing file of a base may become the QEMU user's, who
    # could make it writable.
    for f in $files; do
        [ "$(stat -c %U "$f")" = root ] || fail "$kind: $f was given to $(stat -c %U "$f")"
    done
    echo "$kind: $nclones clones run at once, each on its own overlay; base opened read-only, unchanged"
done

# A qcow2 image keeping its data in an external file: the record and the
# protection of a base cover image files, each whole, so it is refused
# and the producer runs on.
cleanup
data="$E2E_DIR/$tmpl-data.img"
base="$E2E_DIR/$tmpl-base.qcow2"
files="$base $data"
qemu-img create -q -f qcow2 -o data_file="$data" "$base" 16M
virsh define "$(domxml $tmpl --memory 256 --disk "$base" --template)" >/dev/null
virsh start $tmpl >/dev/null
wait_for_line "$E2E_DIR/$tmpl.console" '^HEARTBEAT n=2 .* disk=' 120 >/dev/null ||
    fail "data file: the producer does not write its disk"
expect_error "template-create of a qcow2 disk with a data file" "external data file" \
    virsh template-create $tmpl
[ "$(virsh domstate $tmpl)" = running ] || fail "data file: the producer is $(virsh domstate $tmpl)"
virsh dominfo $tmpl | grep -qE '^Template: +no' || fail "data file: $tmpl holds a template"
echo "PASS: concurrent clones of raw, qcow2 and qcow2-on-raw bases; a qcow2 data file refused"
