#!/bin/sh
# Ballooning a clone is allowed: its RAM maps the template's RAM file
# read-only (readonly=on,rom=off), so what QEMU does with the pages the
# balloon takes can only drop the clone's private copies, never change the
# file. The template's RAM file stays byte-identical, the clone runs on
# with its data intact, and a new clone still resumes from the template.
set -eu
. "$(dirname "$0")/lib.sh"

tmpl=e2e-balloon
dir="$(template_dir $tmpl)"
trap 'cleanup_template $tmpl' EXIT
cleanup_template $tmpl

virsh define "$(domxml $tmpl --memory 256 --fill 32 --balloon --template)" >/dev/null
virsh start $tmpl >/dev/null
wait_for_line "$E2E_DIR/$tmpl.console" '^HEARTBEAT n=2 ' 180 >/dev/null ||
    fail "the template does not run"
virsh template-create $tmpl >/dev/null || fail "template-create failed"
last=$(last_heartbeat "$E2E_DIR/$tmpl.console")
tn=$(field n "$last")
tsum=$(field sum "$last")
ram_sum=$(sha256sum "$dir/pc.ram" | cut -d' ' -f1)

c=$tmpl-clone-1
virsh clone-from-template $tmpl >/dev/null || fail "clone-from-template failed"
heartbeat_after "$E2E_DIR/$c.console" "$tn" 60 >/dev/null || fail "$c does not run on"
virsh setmem $c 131072 --live || fail "ballooning $c to 128 MiB was refused"
actual=""
for _ in $(seq 1 300); do
    actual=$(virsh dommemstat $c | awk '$1 == "actual" { print $2 }')
    [ "$actual" = 131072 ] && break
    sleep 0.2
done
[ "$actual" = 131072 ] || fail "the balloon of $c did not inflate: actual $actual KiB"
n=$(field n "$(last_heartbeat "$E2E_DIR/$c.console")")
beat=$(heartbeat_after "$E2E_DIR/$c.console" $((n + 1)) 60) || fail "$c stopped after ballooning"
beat=$(heartbeat_after "$E2E_DIR/$c.console" "$(field n "$beat")" 60) || fail "$c stopped after ballooning"
[ "$(field sum "$beat")" = "$tsum" ] || fail "$c's data changed under the balloon: $beat"
[ "$(sha256sum "$dir/pc.ram" | cut -d' ' -f1)" = "$ram_sum" ] ||
    fail "ballooning a clone changed the template's RAM file"
echo "$c: balloon inflated to 128 MiB; $beat; template RAM file unchanged"

virsh clone-from-template $tmpl --name $tmpl-clone-2 >/dev/null || fail "a new clone failed"
first=$(heartbeat_after "$E2E_DIR/$tmpl-clone-2.console" "$tn" 60) || fail "the new clone does not run"
[ "$(field n "$first")" = $((tn + 1)) ] || fail "the new clone did not resume at n=$((tn + 1)): $first"
echo "PASS: a clone balloons, the template's RAM file is unchanged and still clones"
