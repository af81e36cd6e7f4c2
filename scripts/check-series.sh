#!/bin/sh
# Check that the series is bisectable: build every patch of the assembled
# tree on its own (with the new files present) and run libvirt's test
# suite on it.  Uses a worktree and build directory of its own.
set -eu
. "$(dirname "$0")/lib.sh"

need_root
"$ROOT/scripts/build.sh"
wt="$BUILD_DIR/series"
bld="$BUILD_DIR/series-meson"
commits=$(git -C "$SRC_DIR" rev-list --reverse pristine..HEAD -- . \
          $(sed 's|^|:(exclude)|' "$SRC_DIR/.git/project-new-files"))
[ -d "$wt" ] || git -C "$SRC_DIR" worktree add -q --detach "$wt" pristine
# Not tracked (a submodule upstream), so a worktree does not get it.
[ -d "$wt/subprojects/keycodemapdb/tools" ] || cp -r "$SRC_DIR/subprojects/keycodemapdb" "$wt/subprojects/"
failed=0
for c in $commits; do
    subject=$(git -C "$SRC_DIR" log -1 --format=%s "$c")
    git -C "$wt" checkout -q --detach "$c"
    [ -f "$bld/build.ninja" ] || meson setup "$bld" "$wt" $(cat "$MESON_DIR/.project-options" | sed "s|--prefix=[^ ]*||") >/dev/null
    if ! ninja -C "$bld" >"$bld.log" 2>&1; then
        echo "FAIL (build) $subject"
        failed=1
        continue
    fi
    if ! meson test -C "$bld" --no-rebuild --num-processes "$(nproc)" >"$bld.test.log" 2>&1; then
        echo "FAIL (tests) $subject: $(grep -E '^ *[0-9]+/[0-9]+ .*FAIL' "$bld.test.log" | head -n 3)"
        failed=1
        continue
    fi
    echo "ok   $subject"
done
[ "$failed" = 0 ]
