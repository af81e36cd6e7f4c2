#!/bin/sh
# libvirt/patches/ must be exactly what scripts/export-patches.sh makes of the
# assembled tree: the series is reproducible from its source of truth.
set -eu
. "$(dirname "$0")/../../scripts/lib.sh"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$ROOT/scripts/export-patches.sh" "$out"
if ! diff -r "$LIBVIRT_REPO/patches" "$out" >"$out.diff" 2>&1; then
    head -n 30 "$out.diff"
    rm -f "$out.diff"
    echo "FAIL: libvirt/patches/ differs from the export of build/libvirt"
    exit 1
fi
rm -f "$out.diff"
n=$(ls "$LIBVIRT_REPO"/patches/*.patch | wc -l)
[ "$n" -ge 1 ] || { echo "FAIL: libvirt/patches/ is empty"; exit 1; }
echo "PASS: $n patches reproduced byte for byte"
