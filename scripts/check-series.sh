#!/bin/sh
# Check that the series is bisectable: build every patch of the assembled
# tree on its own and run libvirt's test suite on it.  The new files are
# there from the first commit; each patch gets those it refers to (see
# new_file_used).  Uses a worktree and build directory of its own.
#   check-series.sh [COMMIT]   only the patches after COMMIT of build/libvirt
set -eu
. "$(dirname "$0")/lib.sh"

need_root
"$ROOT/scripts/build.sh"
wt="$BUILD_DIR/series"
bld="$BUILD_DIR/series-meson"
commits=$(git -C "$SRC_DIR" rev-list --reverse "${1:-pristine}"..HEAD -- . \
          $(sed 's|^|:(exclude)|' "$SRC_DIR/.git/project-new-files"))
[ -d "$wt" ] || git -C "$SRC_DIR" worktree add -q --detach "$wt" pristine
# Not tracked (a submodule upstream), so a worktree does not get it.
if [ ! -d "$wt/subprojects/keycodemapdb/tools" ]; then
    mkdir -p "$wt/subprojects"
    cp -r "$SRC_DIR/subprojects/keycodemapdb" "$wt/subprojects/"
fi
# new_file_used FILE: whether the tree in the worktree refers to the new
# FILE: a source file (and its headers) once a meson.build lists it, a test
# program once tests/meson.build names it, a test data file once a test
# names it (libvirt's tests refuse data files no test uses).
new_file_used() {
    _base=$(basename "$1")
    _stem=${_base%%.*}
    _stem=${_stem%-in}
    _stem=${_stem%-out}
    case $1 in
        tests/qemuxmlconfdata/*)
            # qemuxmlconftest refuses the files of its directory it does not
            # use, whatever other tests name
            git -C "$wt" grep -q -F "\"$_stem\"" -- tests/qemuxmlconftest.c ;;
        tests/*.c)
            # a test program once tests/meson.build names it
            git -C "$wt" grep -q -F "'name': '$_stem'" -- tests/meson.build ;;
        tests/*)
            git -C "$wt" grep -q -F "\"$_stem\"" -- 'tests/*.c' ;;
        *priv.h)
            # a private header comes with its source file
            git -C "$wt" grep -q -F "'${_base%priv.h}.c'" -- '*meson.build' ;;
        *)
            # a header comes with its source file
            git -C "$wt" grep -q -F "'${_base%.[ch]}.c'" -- '*meson.build' ;;
    esac
}

head=$(git -C "$SRC_DIR" rev-parse HEAD)
failed=0
for c in $commits; do
    subject=$(git -C "$SRC_DIR" log -1 --format=%s "$c")
    git -C "$wt" checkout -q -f --detach "$c"
    # the new files as the series ends, whatever version commit c has
    # all of them first: a test's data is kept once the test is there
    while read -r f; do
        git -C "$wt" checkout -q "$head" -- "$f"
    done <"$SRC_DIR/.git/project-new-files"
    while read -r f; do
        new_file_used "$f" || rm -f "$wt/$f"
    done <"$SRC_DIR/.git/project-new-files"
    # syntax-check reads the file list of HEAD: commit the removals.
    if ! git -C "$wt" diff --quiet HEAD; then
        git -C "$wt" -c user.name=check-series -c user.email=check-series@localhost \
            -c commit.gpgsign=false -c core.hooksPath=/dev/null \
            commit -q -a -m "check-series: the new files this patch uses"
    fi
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
