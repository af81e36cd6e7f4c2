#!/bin/sh
# Bad setup stops with a one-line reason: not root, no network to Debian's
# registry, a tarball with the wrong checksum, a patch that no longer applies.
set -eu
. "$(dirname "$0")/../../scripts/lib.sh"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

# expect_error NAME PATTERN CMD...: CMD must fail with exactly one line on
# stderr that matches PATTERN.
expect_error() {
    name=$1 pattern=$2
    shift 2
    if "$@" >"$tmp/out" 2>"$tmp/err"; then
        echo "FAIL: $name: succeeded"
        failures=$((failures + 1))
        return
    fi
    lines=$(wc -l <"$tmp/err")
    if [ "$lines" != 1 ] || ! grep -q -- "$pattern" "$tmp/err"; then
        echo "FAIL: $name: expected one line matching '$pattern', got:"
        cat "$tmp/err"
        failures=$((failures + 1))
        return
    fi
    echo "PASS: $name: $(cat "$tmp/err")"
}

# A fake curl on PATH stands for Debian's registry.
mkdir -p "$tmp/bin"
cat >"$tmp/bin/curl" <<'FAKE'
#!/bin/sh
while [ $# -gt 0 ]; do
    [ "$1" = -o ] && out=$2
    shift
done
case "$FAKE_CURL" in
    offline) echo "curl: (6) Could not resolve host: deb.debian.org" >&2; exit 6 ;;
    corrupt) echo "not a tarball" >"$out" ;;
esac
FAKE
chmod +x "$tmp/bin/curl"

# The script is read from standard input: nobody may not be able to enter
# the checkout (a clone in /root or in a 0700 directory).
expect_error "not root" "must run as root" \
    setpriv --reuid=nobody --regid=nogroup --clear-groups \
    env CACHE_DIR="$tmp/nobody-cache" sh -s <"$ROOT/scripts/install-deps.sh"

expect_error "no network" "could not download" \
    env PATH="$tmp/bin:$PATH" FAKE_CURL=offline CACHE_DIR="$tmp/cache1" \
    "$ROOT/scripts/fetch-libvirt.sh"

expect_error "wrong checksum" "wrong sha256" \
    env PATH="$tmp/bin:$PATH" FAKE_CURL=corrupt CACHE_DIR="$tmp/cache2" \
    "$ROOT/scripts/fetch-libvirt.sh"

# A copy of the project's scripts with a patch whose context is wrong,
# assembled against the real cached tarball.
mkdir -p "$tmp/proj/libvirt/patches"
cp -r "$ROOT/scripts" "$tmp/proj/"
git -C "$tmp/proj" init -q
cat >"$tmp/proj/libvirt/patches/0001-stale.patch" <<'PATCH'
From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
From: Nobody <nobody@example.org>
Date: Mon, 1 Jan 2024 00:00:00 +0000
Subject: [PATCH] stale context

---
 README.rst | 2 +-
 1 file changed, 1 insertion(+), 1 deletion(-)

diff --git a/README.rst b/README.rst
--- a/README.rst
+++ b/README.rst
@@ -1,3 +1,3 @@
-This line is not in libvirt's README
+Neither is this one
 nor this
 nor that
PATCH
expect_error "stale patch" "0001-stale.patch no longer applies" \
    "$tmp/proj/scripts/assemble.sh"

[ "$failures" = 0 ]
