#!/bin/sh
# Assemble the libvirt tree in build/libvirt: pristine 11.3.0 as the first
# commit, the new files of this repository, then libvirt/patches/ as commits.
#
# Re-running is cheap: the tree is re-assembled only when libvirt/patches/ changed,
# and new files are copied in when they differ (ninja then rebuilds them).
set -eu
. "$(dirname "$0")/lib.sh"

git_src() {
    git -C "$SRC_DIR" -c user.name=assemble -c user.email=assemble@localhost \
        -c commit.gpgsign=false -c core.hooksPath=/dev/null "$@"
}

patches_sum() {
    cat "$LIBVIRT_REPO"/patches/*.patch 2>/dev/null | sha256sum | cut -d' ' -f1
}

unpack_pristine() {
    tarball=$("$ROOT/scripts/fetch-libvirt.sh")
    echo "assemble: unpacking $(basename "$tarball")"
    rm -rf "$SRC_DIR" "$BUILD_DIR/libvirt-$LIBVIRT_VERSION"
    mkdir -p "$BUILD_DIR"
    tar --no-same-owner -C "$BUILD_DIR" -xf "$tarball" ||
        die "cannot unpack $tarball"
    mv "$BUILD_DIR/libvirt-$LIBVIRT_VERSION" "$SRC_DIR"
    git_src init -q -b master
    # A git submodule upstream: syntax-check must not see it as our files.
    echo "/subprojects/keycodemapdb/" >>"$SRC_DIR/.git/info/exclude"
    git_src add -A .
    GIT_AUTHOR_DATE="2025-05-02T00:00:00Z" GIT_COMMITTER_DATE="2025-05-02T00:00:00Z" \
        git_src commit -q -m "libvirt $LIBVIRT_VERSION (pristine upstream tarball)"
    git_src tag pristine
}

# Copy new files in when their content differs and drop the ones the
# repository no longer has; commit the result on its own so that
# export-patches.sh can leave it out.
sync_new_files() {
    list="$SRC_DIR/.git/project-new-files"
    new=$(mktemp)
    list_new_files | sort >"$new"
    while read -r f; do
        if ! cmp -s "$LIBVIRT_REPO/$f" "$SRC_DIR/$f"; then
            mkdir -p "$(dirname "$SRC_DIR/$f")"
            cp "$LIBVIRT_REPO/$f" "$SRC_DIR/$f"
        fi
    done <"$new"
    removed=""
    if [ -f "$list" ]; then
        removed=$(comm -23 "$list" "$new")
        for f in $removed; do
            rm -f "$SRC_DIR/$f"
        done
    fi
    mv "$new" "$list"
    # Stage exactly these paths: edits to libvirt files belong to patches.
    paths="$(cat "$list") $removed"
    [ -z "${paths# }" ] || git_src add -A -- $paths
    # Commit only these paths, whatever else is staged in the tree.
    if [ -n "${paths# }" ] && ! git_src diff --cached --quiet -- $paths; then
        git_src commit -q -m "project: new files of the series" \
            -m "Managed by scripts/assemble.sh; not exported to libvirt/patches/." -- $paths
    fi
}

# Refuse to throw away work done in the assembled tree that is not in libvirt/patches/.
check_no_local_work() {
    [ -n "$(git_src rev-parse -q --verify refs/project/applied)" ] || return 0
    excludes=$(sed 's|^|:(exclude)|' "$SRC_DIR/.git/project-new-files" 2>/dev/null || true)
    if [ -n "$(git_src status --porcelain --untracked-files=no -- . $excludes)" ] ||
       [ -n "$(git_src rev-list refs/project/applied..HEAD -- . $excludes)" ]; then
        die "build/libvirt has edits not exported to libvirt/patches/; run scripts/export-patches.sh (or discard them) first"
    fi
}

apply_patches() {
    am_series git_src libvirt "libvirt $LIBVIRT_VERSION"
    git_src update-ref refs/project/applied HEAD
    patches_sum >"$SRC_DIR/.git/project-patches.sha"
}

if [ ! -d "$SRC_DIR/.git" ] || [ -z "$(git_src rev-parse -q --verify refs/tags/pristine)" ]; then
    unpack_pristine
    sync_new_files
    echo "assemble: applying $(ls "$LIBVIRT_REPO"/patches/*.patch 2>/dev/null | wc -l) patches"
    apply_patches
elif [ "$(cat "$SRC_DIR/.git/project-patches.sha" 2>/dev/null)" != "$(patches_sum)" ]; then
    check_no_local_work
    echo "assemble: libvirt/patches/ changed, re-applying the series"
    git_src am --abort >/dev/null 2>&1 || true
    git_src reset -q --hard pristine
    rm -f "$SRC_DIR/.git/project-new-files"
    sync_new_files
    apply_patches
else
    sync_new_files
fi
