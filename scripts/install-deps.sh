#!/bin/sh
# Install what building libvirt, running its tests and booting the test guest
# need on Debian bookworm.  Idempotent: does nothing once everything is there.
set -eu

die() { echo "install-deps: $*" >&2; exit 1; }

stamp_dir=${CACHE_DIR:-/var/cache/libvirt-templates}
stamp="$stamp_dir/deps-installed-v2"
[ -e "$stamp" ] && exit 0

[ "$(id -u)" = 0 ] || die "must run as root (apt-get and the private daemon need it)"
command -v apt-get >/dev/null || die "apt-get not found: this project targets Debian bookworm"

# build-dep needs deb-src entries for the suites the machine already uses.
src_list=/etc/apt/sources.list.d/libvirt-templates-src.sources
if ! grep -rqs '^Types:.*deb-src\|^deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    cat > "$src_list" <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
run() {
    "$@" >"$log" 2>&1 || { tail -n 5 "$log" >&2; die "'$*' failed (no network to Debian's registry?)"; }
}
echo "install-deps: apt-get update"
run apt-get update
echo "install-deps: apt-get build-dep libvirt"
run apt-get -y build-dep libvirt
echo "install-deps: guest, QEMU and test tools"
run apt-get -y install --no-install-recommends \
    qemu-system-x86 qemu-utils busybox-static cpio xz-utils dpkg-dev \
    git meson ninja-build python3-docutils augeas-tools \
    procps psmisc socat gzip file ca-certificates python3-matplotlib tini
rm -f "$log"
mkdir -p "$stamp_dir"
touch "$stamp"
