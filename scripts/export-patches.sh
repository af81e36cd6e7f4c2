#!/bin/sh
# Regenerate libvirt/patches/ from the commits in build/libvirt on top of pristine
# libvirt, leaving out the new files (they live in this repository).
#   export-patches.sh [DIR]   write the series to DIR instead (for checks)
set -eu
. "$(dirname "$0")/lib.sh"

out=${1:-}

[ -d "$SRC_DIR/.git" ] || die "no assembled tree in build/libvirt; run 'make build' first"
git -C "$SRC_DIR" diff --quiet HEAD -- . ||
    die "build/libvirt has uncommitted changes; commit them there first"

# The new files, and those the repository no longer has, which the
# "project: new files" commits still add and then remove.
excludes=$({
    cat "$SRC_DIR/.git/project-new-files"
    git -C "$SRC_DIR" log --format= --name-only \
        --grep='^project: new files of the series$' pristine..HEAD
} | sort -u | sed -e '/^$/d' -e 's|^|:(exclude)|')
tmp=$(mktemp -d)
git -C "$SRC_DIR" format-patch -q --no-signature --zero-commit --no-numbered \
    -o "$tmp" pristine..HEAD -- . $excludes
if [ -n "$out" ]; then
    mkdir -p "$out"
    mv "$tmp"/*.patch "$out/" 2>/dev/null || true
    rm -rf "$tmp"
    exit 0
fi
mkdir -p "$LIBVIRT_REPO/patches"
rm -f "$LIBVIRT_REPO"/patches/*.patch
mv "$tmp"/*.patch "$LIBVIRT_REPO/patches/" 2>/dev/null || true
rm -rf "$tmp"

git -C "$SRC_DIR" update-ref refs/project/applied HEAD
cat "$LIBVIRT_REPO"/patches/*.patch 2>/dev/null | sha256sum | cut -d' ' -f1 >"$SRC_DIR/.git/project-patches.sha"
ls "$LIBVIRT_REPO/patches"
