#!/bin/sh
# Malformed input to the template code of the real daemon: a generated
# corpus of domain XML around <template> (truncated, huge, wrong types,
# path traversal, symbolic links) and of template images (see
# saveimage-mutations.py). Each must end in a clean error or a working
# domain; the daemon must not crash and nothing may be left behind.
set -eu
. "$(dirname "$0")/lib.sh"

name=e2e-fuzz
dir="$(template_dir $name)"
corpus="$E2E_DIR/fuzz"
link="$dir"
cleanup() {
    virsh destroy $name-c >/dev/null 2>&1 || true
    cleanup_domain $name
    virsh undefine --remove-template $name >/dev/null 2>&1 || true
    rm -rf "$corpus" "$link" "$E2E_DIR/fuzz-target"
}
trap cleanup EXIT
cleanup

daemon_pid() {
    cat "$PREFIX/var/run/virtqemud.pid"
}

virsh list >/dev/null
pid=$(daemon_pid)
crashes=0
check_daemon() {
    if [ "$(daemon_pid)" != "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
        fail "the daemon died on $1"
    fi
}

xml=$(domxml $name --memory 256 --fill 8 --template)
mkdir -p "$corpus"

# 1. Domain XML: the template element with bad values, and the whole
#    document truncated and with random bytes.
i=0
add() {
    i=$((i + 1))
    sed "$1" "$xml" >"$corpus/xml-$i.xml"
}
huge=$(head -c 6000 /dev/zero | tr '\0' 'a')
for path in "" "relative/dir" "/a/../b" "/a/.." "/$huge" "/proc/self" \
            "/dev/null" "&#10;" "/tmp/x&#10;y" "/tmp/'q'" "//" "/" "\\"; do
    add "s|<template/>|<template path='$path'/>|"
done
add "s|<template/>|<template path='/tmp/a' path='/tmp/b'/>|"
add "s|<template/>|<template foo='bar'/>|"
add "s|<template/>|<template>text</template>|"
add "s|<template/>|<template><template/></template>|"
add "s|<template/>|<template/><template/>|"
add "s|<source type='file'/>|<source type='memfd'/>|"
add "s|<source type='file'/>||"
add "s|<access mode='shared'/>||"
add "s|<access mode='shared'/>|<access mode='nonsense'/>|"
add "s|<template/>|<template/><hugepages/>|"
add "s|<template/>|<template/><discard/>|"
add "s|<memory unit='MiB'>256</memory>|<memory unit='MiB'>-1</memory>|"
add "s|<memory unit='MiB'>256</memory>|<memory unit='MiB'>99999999999999999999</memory>|"
size=$(wc -c <"$xml")
for at in $(seq 1 97 "$size"); do
    i=$((i + 1))
    head -c "$at" "$xml" >"$corpus/xml-$i.xml"
done
for n in $(seq 1 40); do
    i=$((i + 1))
    python3 - "$xml" "$corpus/xml-$i.xml" "$n" <<'EOF'
import random, sys
data = bytearray(open(sys.argv[1], "rb").read())
rng = random.Random(int(sys.argv[3]))
start = data.index(b"<memoryBacking>")
for _ in range(rng.choice((1, 3, 10))):
    data[rng.randrange(start, start + 120)] = rng.randrange(32, 127)
open(sys.argv[2], "wb").write(data)
EOF
done

refused=0 defined=0
for f in "$corpus"/xml-*.xml; do
    if out=$(virsh define "$f" 2>&1); then
        defined=$((defined + 1))
        # Whatever it defined, it goes again; a template path it accepted
        # is absolute and has no '..'.
        path=$(virsh dumpxml --inactive $name 2>/dev/null | sed -n "s|.*<template path='\([^']*\)'/>.*|\1|p")
        case "$path" in
            ""|/*) ;;
            *) fail "$(basename "$f"): accepted a relative template path '$path'" ;;
        esac
        case "$path" in
            */../*|*/..) fail "$(basename "$f"): accepted template path '$path'" ;;
        esac
        virsh undefine $name >/dev/null 2>&1 || true
    else
        echo "$out" | grep -q '^error: ' || fail "$(basename "$f"): no libvirt error: $out"
        refused=$((refused + 1))
    fi
    check_daemon "$(basename "$f")"
done
virsh list --all --name | grep -qx $name && fail "a domain was left defined"
echo "domain XML: $((refused + defined)) inputs, $refused refused with an error, $defined defined and undefined"
fault "malformed domain XML" $((refused + defined)) $((refused + defined)) 0

# 2. A template directory replaced by a symbolic link is refused.
mkdir -p "$E2E_DIR/fuzz-target"
ln -sfn "$E2E_DIR/fuzz-target" "$link"
virsh define "$xml" >/dev/null
virsh start $name >/dev/null
wait_for_line "$E2E_DIR/$name.console" '^HEARTBEAT' 120 >/dev/null || fail "the guest did not come up"
expect_error "template directory is a symbolic link" "is a symbolic link" \
    virsh template-create $name
[ "$(virsh domstate $name)" = running ] || fail "the guest is $(virsh domstate $name) after a refused template-create"
virsh destroy $name >/dev/null
virsh undefine $name >/dev/null
rm -rf "$link" "$E2E_DIR/fuzz-target"

# 3. Template images: a real one, then each of its malformed copies.
virsh define "$xml" >/dev/null
virsh start $name >/dev/null
wait_for_line "$E2E_DIR/$name.console" '^HEARTBEAT' 120 >/dev/null || fail "the guest did not come up"
virsh template-create $name >/dev/null
cp "$dir/template.save" "$E2E_DIR/fuzz.save"
# The template's record holds its image's inode and mtime: the real image
# goes aside by rename and comes back the same way.
mv "$dir/template.save" "$E2E_DIR/fuzz.orig"
"$(dirname "$0")/saveimage-mutations.py" "$E2E_DIR/fuzz.save" "$corpus/images"
refused=0 cloned=0 total=0 harmless=""
for f in "$corpus"/images/*; do
    total=$((total + 1))
    cp "$f" "$dir/template.save"
    if out=$(virsh clone-from-template $name --name $name-c 2>&1); then
        cloned=$((cloned + 1))
        harmless="$harmless $(basename "$f")"
        virsh destroy $name-c >/dev/null
    else
        echo "$out" | grep -q '^error: ' || fail "$(basename "$f"): no libvirt error: $out"
        echo "$(basename "$f"): $(echo "$out" | grep '^error: ' | tail -n 1)"
        refused=$((refused + 1))
    fi
    check_daemon "image $(basename "$f")"
    virsh dominfo $name-c >/dev/null 2>&1 && fail "$(basename "$f"): clone $name-c left"
    [ -z "$(qemu_pids $name-c)" ] || fail "$(basename "$f"): a QEMU of the clone is left"
    [ ! -e "$dir/clones/$name-c" ] || fail "$(basename "$f"): clone files left"
done
# Links to files of our own only: writing through a link would change them.
head -c 4096 /dev/urandom >"$E2E_DIR/fuzz-other"
rm -f "$dir/template.save"
ln -s "$E2E_DIR/fuzz-other" "$dir/template.save"
expect_error "template image is a link to another file" "image magic is incorrect" \
    virsh clone-from-template $name --name $name-c
rm -f "$dir/template.save" "$E2E_DIR/fuzz-other"
# Another template's image: here, this one's with another UUID.
perl -0777 -pe 's/<uuid>(.)/"<uuid>" . ($1 eq "0" ? "1" : "0")/e' "$E2E_DIR/fuzz.save" >"$dir/template.save"
cmp -s "$E2E_DIR/fuzz.save" "$dir/template.save" && fail "could not change the image's UUID"
expect_error "template image of another domain" "belongs to another domain" \
    virsh clone-from-template $name --name $name-c
# A copy of the real image is a file the template was not made of.
cp "$E2E_DIR/fuzz.save" "$dir/template.save"
expect_error "a copy of the template image" "was changed after the template was created" \
    virsh clone-from-template $name --name $name-c
mv "$E2E_DIR/fuzz.orig" "$dir/template.save"
virsh clone-from-template $name --name $name-c >/dev/null || fail "the restored template does not clone"
virsh destroy $name-c >/dev/null
echo "template images: $total malformed, $refused refused with an error, $cloned cloned and destroyed:$harmless"
fault "malformed template image" $((total + 3)) $((total + 3)) 0
echo "PASS: no input crashed the daemon or left anything behind"
