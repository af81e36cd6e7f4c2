#!/bin/sh
# virt-manager's UI tests (dogtail under Xvfb with openbox) against the
# test driver of the built libvirt: the series' own (test_template.py,
# each template action) and upstream's for the windows the series
# changes (VM menu, details, delete, clone). Pictures of the new dialogs
# go to build/screenshots.
set -eu
. "$(dirname "$0")/../../scripts/lib.sh"

[ -f "$MESON_DIR/.built" ] || die "libvirt is not built: run make demo or ./scripts/build.sh"
shots="$BUILD_DIR/screenshots"
mkdir -p "$shots"
VMM_UITESTS_SCREENSHOTS="$shots" "$ROOT/scripts/virt-manager.sh" uitests \
    tests/uitests/test_template.py tests/uitests/test_manager.py \
    tests/uitests/test_details.py tests/uitests/test_delete.py \
    tests/uitests/test_clonevm.py --durations=0
for f in create-template new-vm-from-template delete-template details-template-memory; do
    [ -s "$shots/$f.png" ] || { echo "FAIL: no screenshot $shots/$f.png"; exit 1; }
done
