#!/bin/sh
# The virt-manager series, as scripts/assemble.sh and export-patches.sh do
# libvirt's: Debian's orig tarball of virt-manager 5.0.0 (checksum pinned,
# never committed) unpacked into build/virt-manager as a git repository
# (tag pristine), the new files under virt-manager/ copied in as one commit,
# then virt-manager/patches/ applied with git am.
#
#   virt-manager.sh assemble        (re)assemble build/virt-manager
#   virt-manager.sh export [DIR]    virt-manager/patches/ (or DIR) from its history
#   virt-manager.sh pytest [ARGS]   its test suite against the built libvirt
#   virt-manager.sh uitests [ARGS]  its UI tests (dogtail) under Xvfb
set -eu
. "$(dirname "$0")/lib.sh"

VMM_VERSION=5.0.0
VMM_TARBALL="virt-manager_${VMM_VERSION}.orig.tar.xz"
VMM_SHA256=bc89ae46e0c997bd754ed62a419ca39c6aadec27e3d8b850cea5282f0083f84a
VMM_REPO="$ROOT/virt-manager"
VMM_DIR="$BUILD_DIR/virt-manager"

git_vmm() {
    git -C "$VMM_DIR" -c user.name=assemble -c user.email=assemble@localhost \
        -c commit.gpgsign=false -c core.hooksPath=/dev/null "$@"
}

# The files the series adds, relative to virt-manager/.
new_files() {
    (cd "$VMM_REPO" && git ls-files --cached --others --exclude-standard -- . ':!patches' |
        while read -r f; do [ -f "$f" ] && echo "$f"; done)
}

series_sum() {
    { echo "$VMM_SHA256"
      cat "$VMM_REPO"/patches/*.patch 2>/dev/null
      new_files | sort | while read -r f; do echo "$f"; cat "$VMM_REPO/$f"; done
    } | sha256sum | cut -d' ' -f1
}

fetch() {
    tarball="$CACHE_DIR/$VMM_TARBALL"
    if ! echo "$VMM_SHA256  $tarball" | sha256sum --quiet -c - >/dev/null 2>&1; then
        mkdir -p "$CACHE_DIR/download" || die "cannot create $CACHE_DIR (run as root)"
        partial="$CACHE_DIR/download/$VMM_TARBALL"
        url="http://deb.debian.org/debian/pool/main/v/virt-manager/$VMM_TARBALL"
        curl -fsS -o "$partial" "$url" 2>"$CACHE_DIR/download/download.log" ||
            die "could not download $url (no network to Debian's registry?)"
        echo "$VMM_SHA256  $partial" | sha256sum --quiet -c - >/dev/null 2>&1 ||
            die "$VMM_TARBALL has the wrong sha256 (expected $VMM_SHA256); refusing to use it"
        mv "$partial" "$tarball"
    fi
    echo "$tarball"
}

assemble() {
    sum=$(series_sum)
    [ "$(cat "$VMM_DIR/.git/project-series.sha" 2>/dev/null)" != "$sum" ] || return 0
    if [ -d "$VMM_DIR/.git" ] && git_vmm rev-parse -q --verify refs/project/applied >/dev/null &&
       [ -n "$(git_vmm status --porcelain --untracked-files=no)$(git_vmm rev-list refs/project/applied..HEAD)" ]; then
        die "build/virt-manager has work not exported to virt-manager/; run '$0 export' (or discard it) first"
    fi
    tarball=$(fetch)
    echo "virt-manager: assembling $VMM_VERSION with $(ls "$VMM_REPO"/patches/*.patch 2>/dev/null | wc -l) patches"
    rm -rf "$VMM_DIR" "$BUILD_DIR/virt-manager-$VMM_VERSION"
    mkdir -p "$BUILD_DIR"
    tar --no-same-owner -C "$BUILD_DIR" -xf "$tarball" || die "cannot unpack $tarball"
    mv "$BUILD_DIR/virt-manager-$VMM_VERSION" "$VMM_DIR"
    git_vmm init -q -b master
    git_vmm add -A .
    GIT_AUTHOR_DATE="2025-01-14T00:00:00Z" GIT_COMMITTER_DATE="2025-01-14T00:00:00Z" \
        git_vmm commit -q -m "virt-manager $VMM_VERSION (pristine upstream tarball)"
    git_vmm tag pristine
    files=$(new_files)
    if [ -n "$files" ]; then
        (cd "$VMM_REPO" && tar -cf - $files) | tar -C "$VMM_DIR" -xf -
        git_vmm add -- $files
        git_vmm commit -q -m "project: new files of the series" -- $files
    fi
    am_series git_vmm virt-manager "virt-manager $VMM_VERSION"
    git_vmm update-ref refs/project/applied HEAD
    echo "$sum" >"$VMM_DIR/.git/project-series.sha"
}

export_patches() {
    [ -d "$VMM_DIR/.git" ] || die "no build/virt-manager; run '$0 assemble' first"
    git_vmm diff --quiet HEAD || die "build/virt-manager has uncommitted changes"
    excludes=$(new_files | sed 's|^|:(exclude)|')
    tmp=$(mktemp -d)
    git_vmm format-patch -q --no-signature --zero-commit --no-numbered -o "$tmp" \
        --invert-grep --grep='^project: new files of the series$' \
        pristine..HEAD -- . $excludes
    if [ -n "${1:-}" ]; then
        mkdir -p "$1"
        mv "$tmp"/*.patch "$1/" 2>/dev/null || true
        rmdir "$tmp"
        return 0
    fi
    mkdir -p "$VMM_REPO/patches"
    rm -f "$VMM_REPO"/patches/*.patch
    mv "$tmp"/*.patch "$VMM_REPO/patches/" 2>/dev/null || true
    rmdir "$tmp"
    git_vmm update-ref refs/project/applied HEAD
    series_sum >"$VMM_DIR/.git/project-series.sha"
    ls "$VMM_REPO/patches"
}

# The assembled tree, the built libvirt and the project's Python module, as
# virt-manager's tests run against them; enters the tree.
test_env() {
    assemble
    "$ROOT/scripts/build.sh" >&2
    pydir=$("$ROOT/scripts/build-python.sh")
    cd "$VMM_DIR"
    # Debian's python3 (gi, libvirt); the built libvirt for the test driver
    # and the project's module for the template APIs.
    # LIBVIRT_DIR_OVERRIDE: the test driver reads its CPU map from the
    # source tree, not from the prefix where nothing is installed.
    export HOME="$BUILD_DIR/virt-manager-home" LIBVIRT_DIR_OVERRIDE=1
    export LD_LIBRARY_PATH="$MESON_DIR/src${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export PYTHONPATH="$pydir${PYTHONPATH:+:$PYTHONPATH}"
}

case "${1:-}" in
assemble)
    assemble ;;
export)
    export_patches "${2:-}" ;;
pytest)
    shift
    # Pristine virt-manager 5.0.0 fails these here, for what their golden
    # files assume of the host, not of the series: bookworm's osinfo-db
    # (20221130) has http, not https, Fedora URLs. The last two alone use
    # three --unattended options, which testCheckCLISuboptions then finds
    # untested (testCheckXMLBuilderProps, for every XML property, runs).
    for t in test_checkprops.py::testCheckCLISuboptions \
             test_cli.py::testCLI0059virt_install_osinfo_url \
             test_cli.py::testCLI0085virt_install_osinfo_url_with_disk \
             test_cli.py::testCLI0122virt_install_osinfo_url_unattended \
             test_cli.py::testCLI0123virt_install_osinfo_unattended_treeapis; do
        set -- "$@" --deselect "tests/$t"
    done
    test_env
    exec /usr/bin/python3 -m pytest -p no:cacheprovider "$@" ;;
uitests)
    shift
    # Pristine virt-manager 5.0.0 fails these here too (checked on the
    # tarball's tree): openbox under Xvfb neither maximizes nor moves the
    # manager as they expect (the first three); as root every file is
    # deletable, also those they make read-only to be undeletable (the
    # next three); GtkSourceView's XML editor is never reported on screen
    # when the next reads it. The last one fails now and then on pristine
    # 5.0.0 as well (1 run in 7 here): after the VM stops, the click on
    # "Overview" sometimes never selects it.
    for t in test_clonevm.py::testCloneMulti \
             test_manager.py::testManagerWindowCleanup \
             test_manager.py::testManagerWindowReposition \
             test_delete.py::testDeleteFailure \
             test_delete.py::testDeleteManyDevices \
             test_delete.py::testDeleteNondefaultOverride \
             test_details.py::testDetailsEditDomain1 \
             test_details.py::testDetailsMiscEdits; do
        set -- "$@" --deselect "tests/uitests/$t"
    done
    test_env
    # dogtail drives the windows over AT-SPI, on the session bus of
    # dbus-run-session; without a window manager no window ever becomes
    # active and every find_window() waits forever.
    exec xvfb-run -a -s "-screen 0 1280x1024x24" dbus-run-session -- sh -c '
            openbox >/dev/null 2>&1 &
            sleep 1
            exec /usr/bin/python3 -m pytest --uitests -p no:cacheprovider "$@"' sh "$@" ;;
*)
    die "usage: $0 assemble | export | pytest [ARGS] | uitests [ARGS]" ;;
esac
