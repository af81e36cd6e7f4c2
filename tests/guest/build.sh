#!/bin/sh
# Build the small test guest: the kernel of Debian's linux-image-amd64
# package (extracted, not installed) and a busybox-static initramfs running
# ./init.  Cached in $CACHE_DIR/guest; prints the folder holding
# vmlinuz and initrd.img.
set -eu
. "$(dirname "$0")/../../scripts/lib.sh"

here=$(cd "$(dirname "$0")" && pwd)
busybox=/bin/busybox
file -L "$busybox" 2>/dev/null | grep -q 'statically linked' ||
    die "$busybox is missing or not statically linked: install busybox-static"

kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
       sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n 1)
[ -n "$kpkg" ] || die "cannot resolve linux-image-amd64 to a kernel package (apt-get update?)"

key=$(cat "$here/init" "$here/build.sh" "$busybox" | sha256sum | cut -c1-12)
out="$CACHE_DIR/guest/$kpkg-$key"
if [ -f "$out/vmlinuz" ] && [ -f "$out/initrd.img" ]; then
    echo "$out"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$CACHE_DIR/guest/debs"
if ! ls "$CACHE_DIR/guest/debs/${kpkg}_"*.deb >/dev/null 2>&1; then
    (cd "$CACHE_DIR/guest/debs" && apt-get download "$kpkg" >"$work/download.log" 2>&1) ||
        die "cannot download $kpkg from Debian's registry"
fi
# Debian builds virtio as modules: the guest loads these in this order.
modules="virtio/virtio_ring virtio/virtio virtio/virtio_pci_legacy_dev
virtio/virtio_pci_modern_dev virtio/virtio_pci block/virtio_blk virtio/virtio_balloon"
patterns=""
for m in $modules; do
    patterns="$patterns ./lib/modules/*/kernel/drivers/$m.ko"
done
# shellcheck disable=SC2086
dpkg-deb --fsys-tarfile "$CACHE_DIR/guest/debs/${kpkg}_"*.deb |
    tar -x -C "$work" --wildcards './boot/vmlinuz-*' $patterns ||
    die "cannot extract the kernel and its virtio modules from $kpkg"

rootfs="$work/rootfs"
mkdir -p "$rootfs/bin" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/tmp"
cp "$busybox" "$rootfs/bin/busybox"
cp "$here/init" "$rootfs/init"
mkdir -p "$rootfs/lib/modules"
for m in $modules; do
    cp "$work"/lib/modules/*/kernel/drivers/$m.ko "$rootfs/lib/modules/"
done
printf '%s\n' $modules | sed 's|.*/||' >"$rootfs/lib/modules/order"
chmod 0755 "$rootfs/init"
(cd "$rootfs" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initrd.img"

mkdir -p "$out"
cp "$work"/boot/vmlinuz-* "$out/vmlinuz"
mv "$work/initrd.img" "$out/initrd.img"
echo "$out"
