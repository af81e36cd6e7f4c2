#!/bin/sh
# Install what building libvirt 11.3.0, running its tests and
# virt-manager's, and booting the test guest need on Debian bookworm:
# libvirt's build dependencies and QEMU 10.0 come from bookworm-backports,
# as on a Debian 12 host that runs Debian 13's virtualization stack.
# Creates Debian's unprivileged QEMU user.  Idempotent: does nothing once
# everything is there.
set -eu

die() { echo "install-deps: $*" >&2; exit 1; }

stamp_dir=${CACHE_DIR:-/var/cache/libvirt-templates}
stamp="$stamp_dir/deps-installed-v6"
[ -e "$stamp" ] && exit 0

[ "$(id -u)" = 0 ] || die "must run as root (apt-get and the private daemon need it)"
command -v apt-get >/dev/null || die "apt-get not found: this project targets Debian bookworm"
. /etc/os-release
[ "${VERSION_CODENAME:-}" = bookworm ] ||
    die "this project targets Debian 12 (bookworm), not '${VERSION_CODENAME:-unknown}'"

# bookworm-backports for QEMU 10.0 and libvirt 11.3's build dependencies;
# deb-src entries for build-dep.
cat >/etc/apt/sources.list.d/libvirt-templates.sources <<'SRC'
# Written by libvirt-templates' scripts/install-deps.sh.
Types: deb deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
rm -f /etc/apt/sources.list.d/libvirt-templates-src.sources

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
run() {
    "$@" >"$log" 2>&1 || { tail -n 5 "$log" >&2; die "'$*' failed (no network to Debian's registry?)"; }
}
echo "install-deps: apt-get update"
run apt-get update
echo "install-deps: apt-get build-dep libvirt (11.3.0, bookworm-backports)"
run apt-get -y -t bookworm-backports build-dep libvirt
echo "install-deps: QEMU 10.0 (bookworm-backports), guest and test tools"
run apt-get -y -t bookworm-backports install --no-install-recommends \
    qemu-system-x86 qemu-utils
run apt-get -y install --no-install-recommends \
    busybox-static cpio xz-utils dpkg-dev curl \
    git meson ninja-build python3-docutils augeas-tools \
    procps psmisc socat gzip file ca-certificates python3-matplotlib tini gdb \
    python3-libvirt python3-dev
echo "install-deps: virt-manager's runtime and test dependencies"
run apt-get -y install --no-install-recommends \
    python3-gi python3-gi-cairo gir1.2-gtk-3.0 gir1.2-libvirt-glib-1.0 \
    gir1.2-gtksource-4 gir1.2-vte-2.91 gir1.2-gtk-vnc-2.0 \
    gir1.2-spiceclientgtk-3.0 gir1.2-libosinfo-1.0 python3-libxml2 \
    python3-requests python3-argcomplete libglib2.0-bin xorriso \
    python3-pytest python3-dogtail at-spi2-core dbus-x11 xvfb xauth openbox
rm -f "$log"

# Debian's QEMU user and group, as libvirt-daemon-system creates them.
getent group libvirt-qemu >/dev/null || addgroup --quiet --system libvirt-qemu
if ! getent passwd libvirt-qemu >/dev/null; then
    adduser --quiet --system --ingroup libvirt-qemu --home /var/lib/libvirt \
        --no-create-home --disabled-password --shell /usr/sbin/nologin libvirt-qemu
fi
if getent group kvm >/dev/null; then
    adduser --quiet libvirt-qemu kvm
fi

mkdir -p "$stamp_dir"
touch "$stamp"
