#!/bin/sh
# Run every test of the project: libvirt's own suite on the patched tree
# (unit and syntax-check), the project's unit tests (tests/unit), the
# end-to-end tests (tests/e2e) and the fuzz test on an AddressSanitizer
# build.  Ends with "N passed, N failed[, N skipped]"
# and exits non-zero on any failure.
set -u
. "$(dirname "$0")/../scripts/lib.sh"

LOG_DIR="$BUILD_DIR/test-logs"
rm -rf "$LOG_DIR"
mkdir -p "$LOG_DIR"
passed=0
failed=0
skipped=0

echo "== libvirt test suite (meson test)"
meson test -C "$MESON_DIR" --no-rebuild --num-processes "$(nproc)" \
    --print-errorlogs >"$LOG_DIR/meson.log" 2>&1
count() {
    sed -n "s/^$1: *\([0-9]*\).*/\1/p" "$LOG_DIR/meson.log" | tail -n 1
}
ok=$(count Ok)
if [ -z "$ok" ]; then
    tail -n 20 "$LOG_DIR/meson.log"
    echo "meson test did not run; see $LOG_DIR/meson.log"
    failed=$((failed + 1))
else
    mfail=$(( $(count Fail) + $(count 'Unexpected Pass') + $(count Timeout) ))
    mskip=$(count Skipped)
    grep -E '^ *[0-9]+/[0-9]+ .*(FAIL|TIMEOUT|UNEXPECTEDPASS)' "$LOG_DIR/meson.log"
    echo "libvirt: $ok passed, $mfail failed, $mskip skipped (log: build/test-logs/meson.log)"
    passed=$((passed + ok + $(count 'Expected Fail')))
    failed=$((failed + mfail))
    skipped=$((skipped + mskip))
fi

# Each test is a script: exit 0 passes, 77 skips, anything else fails.
for kind in unit e2e; do
    echo "== $kind tests"
    for t in "$ROOT"/tests/$kind/test-*.sh; do
        [ -x "$t" ] || continue
        name="$kind/$(basename "$t" .sh)"
        log="$LOG_DIR/$kind-$(basename "$t" .sh).log"
        start=$(date +%s)
        "$t" >"$log" 2>&1 </dev/null
        rc=$?
        secs=$(( $(date +%s) - start ))
        case $rc in
            0) echo "PASS $name (${secs}s)"; passed=$((passed + 1)) ;;
            77) echo "SKIP $name: $(tail -n 1 "$log")"; skipped=$((skipped + 1)) ;;
            *) echo "FAIL $name (${secs}s), last lines of $log:"
               tail -n 10 "$log" | sed 's/^/    /'
               failed=$((failed + 1)) ;;
        esac
    done
done

# The fuzz test once more, on daemons built with AddressSanitizer: a memory
# error aborts the daemon, which the test notices, and leaves a report.
echo "== AddressSanitizer"
"$ROOT/run" --stop
log="$LOG_DIR/asan-test-template-fuzz.log"
reports="$PREFIX/var/log/libvirt/asan"
rm -f "$reports".*
start=$(date +%s)
if ! LIBVIRT_ASAN=1 "$ROOT/scripts/build.sh" >"$log" 2>&1; then
    echo "FAIL asan/build, last lines of $log:"
    tail -n 10 "$log" | sed 's/^/    /'
    failed=$((failed + 1))
else
    LIBVIRT_ASAN=1 "$ROOT/tests/e2e/test-template-fuzz.sh" >>"$log" 2>&1 </dev/null
    rc=$?
    LIBVIRT_ASAN=1 "$ROOT/run" --stop
    secs=$(( $(date +%s) - start ))
    # Reports may also hold warnings, as on a child's stack switch.
    if [ $rc = 0 ] && ! grep -qs 'ERROR: AddressSanitizer' "$reports".*; then
        echo "PASS asan/test-template-fuzz (${secs}s)"
        passed=$((passed + 1))
    else
        echo "FAIL asan/test-template-fuzz (${secs}s, rc=$rc), last lines of $log and reports:"
        tail -n 10 "$log" | sed 's/^/    /'
        grep -h -A 20 'ERROR: AddressSanitizer' "$reports".* 2>/dev/null | sed 's/^/    /'
        failed=$((failed + 1))
    fi
fi

# The rows the fault tests print (see fault() in tests/e2e/lib.sh).
if grep -qh '^FAULT ' "$LOG_DIR"/e2e-*.log 2>/dev/null; then
    echo "== faults injected"
    grep -h '^FAULT ' "$LOG_DIR"/e2e-*.log | sed 's/^FAULT //' | awk '
        BEGIN { printf "%-44s %9s %9s %10s\n", "fault", "injected", "survived", "data lost" }
        {
            split($(NF - 2), i, "="); split($(NF - 1), s, "="); split($NF, l, "=")
            NF -= 3
            printf "%-44s %9d %9d %10d\n", $0, i[2], s[2], l[2]
            ti += i[2]; ts += s[2]; tl += l[2]
        }
        END { printf "%-44s %9d %9d %10d\n", "total", ti, ts, tl }'
fi

"$ROOT/run" --stop

summary="$passed passed, $failed failed"
[ "$skipped" = 0 ] || summary="$summary, $skipped skipped"
echo "$summary"
[ "$failed" = 0 ]
