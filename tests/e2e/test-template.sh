#!/bin/sh
# The template contract through ./run virsh with real QEMU: template-create,
# clones that continue from the template point, RAM files untouched by
# clones, lifecycle rules, bad input, and a daemon restart.
set -eu
. "$(dirname "$0")/lib.sh"

tmpl=e2e-tmpl
dir="$(template_dir $tmpl)"
console="$E2E_DIR/$tmpl.console"
clones="$tmpl-clone-1 $tmpl-clone-2 e2e-named-clone"
all_clones="$clones e2e-xml-clone e2e-race-clone"
cleanup() {
    for c in $all_clones; do
        virsh destroy "$c" >/dev/null 2>&1 || true
    done
    virsh destroy $tmpl >/dev/null 2>&1 || true
    virsh undefine --remove-template $tmpl >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup

xml=$(domxml $tmpl --memory 256 --fill 32 --template)
virsh define "$xml" >/dev/null

expect_error "template-create of a shut-off domain" "domain is not running" \
    virsh template-create $tmpl
expect_error "clone of a domain that is not a template" "is not a template" \
    virsh clone-from-template $tmpl

virsh start $tmpl >/dev/null
wait_for_line "$console" '^HEARTBEAT n=2 ' 120 >/dev/null || fail "the template did not come up"
# The template-to-be is reconnected: what verified its guest CPU comes
# back from its status XML (see the CPU check below).
restart_daemon
# Two template-create at once: one makes the template, the other is refused.
virsh template-create $tmpl >"$E2E_DIR/create1.out" 2>&1 &
virsh template-create $tmpl >"$E2E_DIR/create2.out" 2>&1 &
wait
ok=$(grep -l "is now a template" "$E2E_DIR"/create[12].out | wc -l)
[ "$ok" = 1 ] || fail "$ok of two concurrent template-create succeeded: $(cat "$E2E_DIR"/create[12].out)"
grep -hE "domain is not running|already holds a template|cannot acquire state change lock" \
    "$E2E_DIR"/create[12].out >/dev/null || fail "unexpected refusal: $(cat "$E2E_DIR"/create[12].out)"
echo "concurrent template-create: one template, $(grep -h 'error:' "$E2E_DIR"/create[12].out | tail -n 1)"
last=$(tr -d '\r' <"$console" | grep '^HEARTBEAT' | tail -n 1)
tn=$(field n "$last")
tsum=$(field sum "$last")
echo "template stopped after: $last"

[ -f "$dir/template.save" ] || fail "no template image in $dir"
[ ! -e "$dir/template.save.partial" ] || fail "a partial image is left"
[ -z "$(qemu_pids $tmpl)" ] || fail "the template's QEMU still runs"
virsh list --all --template --name | grep -qx $tmpl || fail "list --template does not show $tmpl"
virsh dominfo $tmpl | grep -Eq '^Template: +yes' || fail "dominfo does not say Template: yes"
ram_sum=$(sha256sum "$dir/pc.ram" | cut -d' ' -f1)
image_kib=$(du -k "$dir/template.save" | cut -f1)
echo "template image: $image_kib KiB for 256 MiB of RAM"

expect_error "a second template-create" "domain is not running" virsh template-create $tmpl
expect_error "start of a template" "holds a template" virsh start $tmpl
expect_error "undefine of a template" "--remove-template" virsh undefine $tmpl
expect_error "rename of a template" "can't be renamed" virsh domrename $tmpl e2e-renamed
expect_error "restore of a template image" "is a template image" virsh restore "$dir/template.save"
expect_error "--count 0" "--count must be between 1 and 1024" virsh clone-from-template $tmpl --count 0
expect_error "huge --count" "--count must be between 1 and 1024" virsh clone-from-template $tmpl --count 100000

# Broken template files: refused before QEMU starts, template intact.
# (The RAM file is immutable: only an administrator clearing the flag can
# move it aside.)
chattr -i "$dir/pc.ram"
mv "$dir/pc.ram" "$dir/pc.ram.keep"
expect_error "missing RAM file" "template RAM file '$dir/pc.ram' is not usable" \
    virsh clone-from-template $tmpl
truncate -s 1M "$dir/pc.ram"
expect_error "RAM file of the wrong size" "has 1048576 bytes, the template needs 268435456" \
    virsh clone-from-template $tmpl
mv "$dir/pc.ram.keep" "$dir/pc.ram"
chattr +i "$dir/pc.ram"
# Aside by rename: the template's record holds the image's inode and mtime.
mv "$dir/template.save" "$E2E_DIR/template.save.keep"
head -c 4096 /dev/urandom >"$dir/template.save"
expect_error "corrupt template image" "image magic is incorrect" virsh clone-from-template $tmpl
head -c 100 "$E2E_DIR/template.save.keep" >"$dir/template.save"
expect_error "truncated template image" "failed to read" virsh clone-from-template $tmpl
mv "$E2E_DIR/template.save.keep" "$dir/template.save"
if virsh list --name | grep -q "^e2e-"; then
    fail "a domain runs after refused clones: $(virsh list --name)"
fi

# Two clones with default names, and one named.
names=$(virsh clone-from-template $tmpl --count 2) || fail "clone-from-template --count 2 failed"
[ "$(echo $names)" = "$tmpl-clone-1 $tmpl-clone-2" ] || fail "unexpected clone names: $names"
virsh clone-from-template $tmpl --name e2e-named-clone >/dev/null || fail "named clone failed"
expect_error "a name in use" "already exists" virsh clone-from-template $tmpl --name e2e-named-clone

rands=""
genids=""
tmpl_genid=$(virsh dumpxml $tmpl | sed -n 's|.*<genid>\(.*\)</genid>.*|\1|p')
for c in $clones; do
    cc="$E2E_DIR/$c.console"
    [ -f "$cc" ] || fail "$c has no console file of its own ($cc)"
    # A heartbeat after a full re-read of the data in the clone.
    beat=$(wait_for_line "$cc" '^HEARTBEAT .* checks=[1-9][0-9]* rand=[0-9a-f]{16}$' 60) || fail "$c: no verified heartbeat"
    n=$(field n "$beat")
    [ "$n" -gt "$tn" ] || fail "$c: counter $n does not continue the template's $tn"
    [ "$(field sum "$beat")" = "$tsum" ] || fail "$c: checksum $(field sum "$beat") differs from the template's $tsum"
    first=$(tr -d '\r' <"$cc" | grep -m 1 '^HEARTBEAT')
    [ "$(field n "$first")" = $((tn + 1)) ] || fail "$c: first heartbeat is '$first', expected n=$((tn + 1))"
    if tr -d '\r' <"$cc" | grep -q '^GUEST-READY'; then
        fail "$c booted instead of resuming"
    fi
    rands="$rands $(field rand "$beat")"
    virsh dominfo $c | grep -Eq '^Persistent: +no' || fail "$c is not transient"
    virsh domuuid $c | grep -qv "$(virsh domuuid $tmpl)" || fail "$c has the template's UUID"
    genid=$(virsh dumpxml $c | sed -n 's|.*<genid>\(.*\)</genid>.*|\1|p')
    [ -n "$genid" ] && [ "$genid" != "$tmpl_genid" ] || fail "$c has genid '$genid', the template '$tmpl_genid'"
    genids="$genids $genid"
    echo "$c: $beat"
done
[ "$(echo $rands | tr ' ' '\n' | sort -u | wc -l)" = 3 ] || fail "clones' random bytes repeat: $rands"

# No other host has the template's RAM files: migration is refused
# (ballooning a clone is allowed: test-template-balloon.sh).
expect_error "migration of a clone" "cannot be migrated" virsh migrate e2e-named-clone qemu:///system
# A clone's own save image holds its RAM; it restores and runs on.
virsh save e2e-named-clone "$E2E_DIR/clone.save" >/dev/null || fail "save of a clone failed"
saved_n=$(field n "$(tr -d '\r' <"$E2E_DIR/e2e-named-clone.console" | grep '^HEARTBEAT' | tail -n 1)")
virsh restore "$E2E_DIR/clone.save" >/dev/null || fail "restore of a saved clone failed"
rm -f "$E2E_DIR/clone.save"
beat=""
for _ in $(seq 1 300); do
    beat=$(tr -d '\r' <"$E2E_DIR/e2e-named-clone.console" | grep '^HEARTBEAT .* rand=[0-9a-f]\{16\}$' | tail -n 1)
    [ -n "$beat" ] && [ "$(field n "$beat")" -gt "$saved_n" ] && break
    sleep 0.1
done
[ -n "$beat" ] && [ "$(field n "$beat")" -gt "$saved_n" ] || fail "the restored clone does not run on from n=$saved_n"
[ "$(field sum "$beat")" = "$tsum" ] || fail "the restored clone's data changed: $beat"
echo "saved and restored clone: $beat"
[ "$(echo $genids | tr ' ' '\n' | sort -u | wc -l)" = 3 ] || fail "clones share a genid: $genids"

# A clone from full XML: the template's own XML with another name is taken
# as a clone (private memory) even though it says 'shared'; changing the
# guest ABI is refused.
virsh dumpxml --inactive $tmpl | sed -e "s|<name>$tmpl</name>|<name>e2e-xml-clone</name>|" \
    -e '/<uuid>/d' -e "s|$tmpl.console|e2e-xml-clone.console|g" >"$E2E_DIR/xml-clone.xml"
sed 's|<memory unit=.KiB.>262144</memory>|<memory unit="KiB">524288</memory>|;
     s|<currentMemory unit=.KiB.>262144</currentMemory>|<currentMemory unit="KiB">524288</currentMemory>|' \
    "$E2E_DIR/xml-clone.xml" >"$E2E_DIR/xml-clone-bigger.xml"
grep -q 524288 "$E2E_DIR/xml-clone-bigger.xml" || fail "could not make a bigger clone XML"
expect_error "--xml changing the memory size" "does not match source" \
    virsh clone-from-template $tmpl --xml "$E2E_DIR/xml-clone-bigger.xml"
sed 's|<vcpu placement=.static.>1</vcpu>|<vcpu placement="static">2</vcpu>|' \
    "$E2E_DIR/xml-clone.xml" >"$E2E_DIR/xml-clone-vcpus.xml"
expect_error "--xml changing the vCPUs" "does not match source" \
    virsh clone-from-template $tmpl --xml "$E2E_DIR/xml-clone-vcpus.xml"
virsh clone-from-template $tmpl --xml "$E2E_DIR/xml-clone.xml" >/dev/null || fail "clone from XML failed"
virsh dumpxml e2e-xml-clone | grep -q "<access mode='private'/>" || fail "the XML clone's memory is not private"
wait_for_line "$E2E_DIR/e2e-xml-clone.console" '^HEARTBEAT' 60 >/dev/null || fail "the XML clone does not run"
virsh destroy e2e-xml-clone >/dev/null
echo "clone from XML: private memory, running; ABI changes refused"

# Daemon restart: clones reconnected, template still a template.
restart_daemon
for c in $clones; do
    [ "$(virsh domstate $c)" = running ] || fail "$c is not running after a daemon restart"
done
virsh list --all --template --name | grep -qx $tmpl || fail "$tmpl is no template after a daemon restart"
echo "daemon restarted: clones running, template kept"

for c in $clones; do
    virsh destroy $c >/dev/null || fail "destroy of $c failed"
done
[ "$(sha256sum "$dir/pc.ram" | cut -d' ' -f1)" = "$ram_sum" ] ||
    fail "the template's RAM file changed while clones ran"
virsh clone-from-template $tmpl --paused --name e2e-named-clone >/dev/null || fail "clone after restart failed"
[ "$(virsh domstate e2e-named-clone)" = paused ] || fail "--paused clone is not paused"
virsh destroy e2e-named-clone >/dev/null

# A clone started while the template is undefined: either the clone comes
# first and runs (undefine is refused while it starts, or comes after it),
# or the clone is refused; never a half-started clone.
virsh clone-from-template $tmpl --name e2e-race-clone >"$E2E_DIR/race.out" 2>&1 &
undefined=1
virsh undefine --remove-template $tmpl >/dev/null 2>"$E2E_DIR/race-undefine.err" || undefined=0
wait
if [ $undefined = 0 ]; then
    grep -q "clones of template '$tmpl' are being started" "$E2E_DIR/race-undefine.err" ||
        fail "undefine --remove-template failed: $(cat "$E2E_DIR/race-undefine.err")"
    grep -q e2e-race-clone "$E2E_DIR/race.out" ||
        fail "undefine was refused for a starting clone that did not start: $(cat "$E2E_DIR/race.out")"
    echo "clone during undefine: undefine refused while the clone started"
    virsh undefine --remove-template $tmpl >/dev/null || fail "undefine --remove-template failed"
fi
if grep -q e2e-race-clone "$E2E_DIR/race.out"; then
    [ "$(virsh domstate e2e-race-clone)" = running ] || fail "the racing clone is not running"
    virsh destroy e2e-race-clone >/dev/null
    echo "clone during undefine: the clone came first and ran"
else
    grep -qE "is not a template|failed to get domain|Domain not found" "$E2E_DIR/race.out" ||
        fail "unexpected error of the racing clone: $(cat "$E2E_DIR/race.out")"
    echo "clone during undefine: refused, $(grep error: "$E2E_DIR/race.out" | tail -n 1)"
fi
[ ! -e "$dir/pc.ram" ] && [ ! -e "$dir/template.save" ] || fail "template files left after undefine"
for c in $tmpl $all_clones; do
    [ -z "$(qemu_pids $c)" ] || fail "QEMU of $c still runs"
done
echo "PASS: template created, 3 clones resumed from it, lifecycle and bad input refused"
