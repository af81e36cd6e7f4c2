#!/bin/sh
# Fetch the pristine libvirt tarball from Debian's source package into the
# cache and verify it.  Prints the tarball's path.
set -eu
. "$(dirname "$0")/lib.sh"

tarball="$CACHE_DIR/$LIBVIRT_TARBALL"

verify() {
    echo "$LIBVIRT_SHA256  $1" | sha256sum --quiet -c - >/dev/null 2>&1
}

if [ -f "$tarball" ] && verify "$tarball"; then
    echo "$tarball"
    exit 0
fi

mkdir -p "$CACHE_DIR/download" || die "cannot create $CACHE_DIR (run as root)"
cd "$CACHE_DIR/download"
rm -f ./*.orig.tar.xz
if ! apt-get source --download-only libvirt >download.log 2>&1; then
    die "could not download libvirt's Debian source package (no network to Debian's registry, or no deb-src entry: run scripts/install-deps.sh); see $CACHE_DIR/download/download.log"
fi
[ -f "$LIBVIRT_TARBALL" ] || die "Debian's libvirt source package has no $LIBVIRT_TARBALL (not bookworm?)"
verify "$LIBVIRT_TARBALL" || die "$LIBVIRT_TARBALL has the wrong sha256 (expected $LIBVIRT_SHA256); refusing to build from it"
mv "$LIBVIRT_TARBALL" "$tarball"
echo "$tarball"
