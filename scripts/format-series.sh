#!/bin/sh
# Make the posting form of the series: what would be mailed, or applied
# with 'git am' onto libvirt 11.3.0.  libvirt/patches/ edits existing files only,
# and the new files are kept whole, as the series ends; in the posting form
# each patch adds the new files it uses, and the new C files grow patch by
# patch, each patch adding the functions it calls (scripts/posting.py says
# how, scripts/posting.map where that needs telling).
#   format-series.sh [OUTDIR]          write the series to OUTDIR
#                                      (default build/posting)
#   format-series.sh --check [OUTDIR]  also apply it with git am onto
#       pristine in build/posting-wt and build each patch (ninja) in
#       build/posting-meson, running libvirt's tests on the patches that
#       add or change new files; exits non-zero if any patch fails
# Uses build/libvirt (read only) for pristine 11.3.0: run 'make build' first.
set -eu
. "$(dirname "$0")/lib.sh"

check=0
if [ "${1:-}" = --check ]; then
    check=1
    shift
fi
[ $# -le 1 ] || die "usage: format-series.sh [--check] [OUTDIR]"
out=${1:-$BUILD_DIR/posting}
case $out in /*) ;; *) out=$(pwd)/$out ;; esac

gitdir="$BUILD_DIR/posting.git"     # the generated commits, no work tree
wt="$BUILD_DIR/posting-wt"          # where --check applies the series
bld="$BUILD_DIR/posting-meson"
logs="$BUILD_DIR/posting-logs"

[ -d "$SRC_DIR/.git" ] && git -C "$SRC_DIR" rev-parse -q --verify refs/tags/pristine >/dev/null ||
    die "no assembled tree in build/libvirt; run 'make build' first"

# A repository of its own, with pristine from build/libvirt (objects
# hard-linked), so that nothing here writes to build/libvirt.
if [ ! -d "$gitdir" ]; then
    git clone -q --bare --no-tags "$SRC_DIR" "$gitdir"
fi
git -C "$gitdir" fetch -q "$SRC_DIR" "+refs/tags/pristine:refs/tags/pristine"
base=$(git -C "$gitdir" rev-parse "pristine^{commit}")

list=$(mktemp)
trap 'rm -f "$list"' EXIT
list_new_files | sort >"$list"
last=$(/usr/bin/python3 "$ROOT/scripts/posting.py" "$gitdir" "$base" "$LIBVIRT_REPO" \
       "$ROOT/scripts/posting.map" "$list") || die "cannot make the posting form"
git -C "$gitdir" update-ref refs/heads/posting "$last"

mkdir -p "$out"
rm -f "$out"/*.patch
git -C "$gitdir" format-patch -q --no-signature --zero-commit --no-numbered \
    -o "$out" "$base..$last"
n=$(ls "$out"/*.patch | wc -l)
[ "$n" = "$(ls "$LIBVIRT_REPO"/patches/*.patch | wc -l)" ] ||
    die "$n patches in $out, not as many as in libvirt/patches/"
echo "format-series: $n patches in $out"
[ "$check" = 1 ] || exit 0

# --check: the series as it would be applied, patch by patch.
gitwt() {
    git -C "$wt" -c user.name=format-series -c user.email=format-series@localhost \
        -c commit.gpgsign=false -c core.hooksPath=/dev/null "$@"
}
if [ ! -e "$wt/.git" ]; then
    rm -rf "$wt"
    git -C "$gitdir" worktree prune
    git -C "$gitdir" worktree add -q --detach "$wt" "$base"
fi
# Not tracked (a submodule upstream), so a worktree does not get it.
if [ ! -d "$wt/subprojects/keycodemapdb/tools" ]; then
    mkdir -p "$wt/subprojects"
    cp -r "$SRC_DIR/subprojects/keycodemapdb" "$wt/subprojects/"
fi
gitwt am --abort >/dev/null 2>&1 || true
gitwt checkout -q -f --detach "$base"
gitwt clean -q -f -d -e /subprojects/keycodemapdb/
mkdir -p "$logs"
rm -f "$logs"/*.log

failed=0
for p in "$out"/*.patch; do
    num=$(basename "$p" | cut -c1-4)
    subject=$(sed -n 's/^Subject: \[PATCH\] //p' "$p")
    if ! gitwt am -q --committer-date-is-author-date "$p" >"$logs/$num.am.log" 2>&1; then
        echo "FAIL (git am) $num $subject"
        gitwt am --abort >/dev/null 2>&1 || true
        exit 1
    fi
    [ -f "$bld/build.ninja" ] ||
        nice -n 10 meson setup "$bld" "$wt" \
            $(sed "s|--prefix=[^ ]*||" "$MESON_DIR/.project-options") >"$logs/setup.log" 2>&1 ||
        die "meson setup failed: $logs/setup.log"
    if ! nice -n 10 ninja -C "$bld" >"$logs/$num.build.log" 2>&1; then
        echo "FAIL (build) $num $subject: $(grep -m 1 -E 'error:' "$logs/$num.build.log" || true)"
        failed=1
        continue
    fi
    # libvirt's tests where the patch brings new files or changes them
    if gitwt diff --name-only HEAD~1 HEAD | grep -q -x -F -f "$list"; then
        if ! nice -n 10 meson test -C "$bld" --no-rebuild --num-processes "$(nproc)" \
                >"$logs/$num.test.log" 2>&1; then
            echo "FAIL (tests) $num $subject: $(grep -E '^ *[0-9]+/[0-9]+ .*FAIL' "$logs/$num.test.log" | head -n 3)"
            failed=1
            continue
        fi
        echo "ok   $num $subject (built, tested)"
    else
        echo "ok   $num $subject (built)"
    fi
done
[ "$failed" = 0 ]
