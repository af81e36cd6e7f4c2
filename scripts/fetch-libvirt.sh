#!/bin/sh
# Fetch the pristine libvirt tarball of Debian's libvirt source package
# (bookworm-backports and trixie share it) into the cache and verify it.
# Prints the tarball's path.
set -eu
. "$(dirname "$0")/lib.sh"

tarball="$CACHE_DIR/$LIBVIRT_TARBALL"
# Debian's registry serves the orig tarball but not always the .dsc that
# 'apt-get source' wants first: fetch the file from the pool directly.
url="http://deb.debian.org/debian/pool/main/libv/libvirt/$LIBVIRT_TARBALL"

verify() {
    echo "$LIBVIRT_SHA256  $1" | sha256sum --quiet -c - >/dev/null 2>&1
}

if [ -f "$tarball" ] && verify "$tarball"; then
    echo "$tarball"
    exit 0
fi

mkdir -p "$CACHE_DIR/download" || die "cannot create $CACHE_DIR (run as root)"
partial="$CACHE_DIR/download/$LIBVIRT_TARBALL"
rm -f "$partial"
if ! curl -fsS -o "$partial" "$url" 2>"$CACHE_DIR/download/download.log"; then
    die "could not download $url (no network to Debian's registry?); see $CACHE_DIR/download/download.log"
fi
verify "$partial" || die "$LIBVIRT_TARBALL has the wrong sha256 (expected $LIBVIRT_SHA256); refusing to build from it"
mv "$partial" "$tarball"
echo "$tarball"
