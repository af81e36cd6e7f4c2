#!/bin/sh
# Template memory through the real daemon: define fills in the path, bad
# <template> elements are refused with a message naming the problem, a
# running producer keeps its RAM in the template directory, and destroying
# it (with no template image) removes those files.
set -eu
. "$(dirname "$0")/lib.sh"

name=e2e-tmplmem
tmpldir="$(template_dir $name)"
trap 'cleanup_domain $name' EXIT
cleanup_domain $name

xml=$(domxml $name --memory 256 --fill 8 --template)

# expect_refused LABEL MESSAGE SED-EXPRESSION: defining the XML edited by
# the expression fails with MESSAGE and defines nothing.
expect_refused() {
    sed "$3" "$xml" >"$E2E_DIR/$name-bad.xml"
    if out=$(virsh define "$E2E_DIR/$name-bad.xml" 2>&1); then
        virsh undefine $name >/dev/null 2>&1 || true
        fail "$1: define succeeded"
    fi
    echo "$out" | grep -qF -- "$2" || fail "$1: unexpected message: $out"
    if virsh list --all --name | grep -qx "$name"; then
        fail "$1: a domain was defined anyway"
    fi
    echo "refused ($1): $(echo "$out" | tail -n 1)"
}
expect_refused "relative path" "memoryBacking/template path 'tmpl/dir' must be absolute" \
    "s|<template/>|<template path='tmpl/dir'/>|"
expect_refused "unknown attribute" "unknown attribute 'size' of memoryBacking/template" \
    "s|<template/>|<template size='1G'/>|"
expect_refused "memfd" "template memory requires memoryBacking source type 'file'" \
    "s|<source type='file'/>|<source type='memfd'/>|"
expect_refused "path traversal" "must not contain '..'" \
    "s|<template/>|<template path='/var/tmp/../../etc'/>|"
expect_refused "a directory of its own choosing" "is not the directory" \
    "s|<template/>|<template path='/var/tmp/tmpl'/>|"
expect_refused "another domain's directory" "is not the directory" \
    "s|<template/>|<template path='$(template_dir e2e-tmplmem-other)'/>|"

virsh define "$xml" >/dev/null || fail "define of a producer failed"
virsh dumpxml $name | grep -qF "<template path='$tmpldir'/>" ||
    fail "dumpxml does not show the filled in path $tmpldir"
echo "dumpxml: $(virsh dumpxml $name | grep '<template')"

virsh start $name >/dev/null || fail "start of the producer failed"
wait_for_line "$E2E_DIR/$name.console" '^HEARTBEAT n=1 ' 120 >/dev/null ||
    fail "the producer did not come up"
[ -f "$tmpldir/pc.ram" ] || fail "no RAM file $tmpldir/pc.ram"
size=$(stat -c %s "$tmpldir/pc.ram")
[ "$size" = $((256 * 1024 * 1024)) ] || fail "RAM file has $size bytes, expected 256 MiB"
pid=$(qemu_pids $name)
tr '\0' ' ' <"/proc/$pid/cmdline" |
    grep -qF "\"mem-path\":\"$tmpldir/pc.ram\",\"share\":true" ||
    fail "QEMU does not map $tmpldir/pc.ram shared"
# The guest's own data lands in the file: its RAM is really there.
used=$(du -k "$tmpldir/pc.ram" | cut -f1)
[ "$used" -ge 8192 ] || fail "only $used KiB of the RAM file are used"
echo "running: $tmpldir/pc.ram, $size bytes, $used KiB used"

# Reconnected after a daemon restart, the producer still knows its files.
restart_daemon
virsh destroy $name >/dev/null || fail "destroy failed"
[ ! -e "$tmpldir/pc.ram" ] || fail "the RAM file is left after a daemon restart and destroy"
[ ! -e "$tmpldir" ] || fail "the template directory is left after destroy"
[ -z "$(qemu_pids $name)" ] || fail "QEMU still runs"
virsh undefine $name >/dev/null || fail "undefine failed"

# A domain with private template memory is a clone: it names its
# template's directory, is never defined (it maps its template's memory
# with the access checked when cloning) and booting it is refused.
sed "s|<access mode='shared'/>|<access mode='private'/>|" "$xml" >"$E2E_DIR/$name-clone.xml"
expect_error "a clone without its template's directory" "needs the path of its template's directory" \
    virsh define "$E2E_DIR/$name-clone.xml"
sed -i "s|<template/>|<template path='$tmpldir'/>|" "$E2E_DIR/$name-clone.xml"
grep -q "<template path='$tmpldir'/>" "$E2E_DIR/$name-clone.xml" || fail "test setup: no path in the clone's XML"
if out=$(virsh define "$E2E_DIR/$name-clone.xml" 2>&1); then
    fail "a clone XML was defined"
fi
echo "$out" | grep -qF "a clone of a template is transient and cannot be defined" ||
    fail "unexpected message for defining a clone: $out"
echo "refused (clone define): $(echo "$out" | tail -n 1)"
if out=$(virsh create "$E2E_DIR/$name-clone.xml" 2>&1); then
    fail "a clone booted without its template"
fi
echo "$out" | grep -qF "can only be started from its template" ||
    fail "unexpected message for booting a clone: $out"
[ -z "$(qemu_pids $name)" ] || fail "QEMU runs after a refused start"
if virsh dominfo $name >/dev/null 2>&1; then
    fail "a refused clone is left as a domain"
fi
echo "refused (clone boot): $(echo "$out" | tail -n 1)"
echo "PASS: template memory defined, refused when malformed, kept in and removed from $tmpldir"
