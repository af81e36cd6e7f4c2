#!/bin/sh
# Clones of a template with a writable virtio disk: the disk image becomes
# the read-only base of one qcow2 overlay per clone, each clone reads back
# what it wrote itself, the base stays byte-identical; each clone has its
# own generation ID and, with --nic, its own MAC address, as QEMU reports.
set -eu
. "$(dirname "$0")/lib.sh"

tmpl=e2e-disk
dir="$(template_dir $tmpl)"
tmpl_record="$(template_record $tmpl)"
base="$E2E_DIR/$tmpl-base.img"
xml_overlay="$E2E_DIR/$tmpl-xml-clone.qcow2"
clones="$tmpl-clone-1 $tmpl-clone-2 $tmpl-xml-clone"
cleanup() {
    cleanup_template $tmpl
    rm -f "$base" "$xml_overlay"
}
trap cleanup EXIT
cleanup

truncate -s 16M "$base"
chmod 0640 "$base"
virsh define "$(domxml $tmpl --memory 256 --fill 16 --disk "$base" --template)" >/dev/null
virsh start $tmpl >/dev/null
wait_for_line "$E2E_DIR/$tmpl.console" '^HEARTBEAT n=2 .* disk=' 120 >/dev/null ||
    fail "the template does not write its disk"
virsh template-create $tmpl >/dev/null || fail "template-create with a writable disk failed"
last=$(tr -d '\r' <"$E2E_DIR/$tmpl.console" | grep '^HEARTBEAT' | tail -n 1)
tn=$(field n "$last")
[ "$(head -c 16 "$base")" = "$(field disk "$last")" ] ||
    fail "the base does not hold the template's last record: $(head -c 16 "$base")"
[ "$(stat -c %a "$base")" = 440 ] || fail "the base is not read-only: mode $(stat -c %a "$base")"
# Owner and mode as the stopped producer left them: its security driver
# gave the image back to root before the daemon took it.
grep -Eq "<base .*mode=.0640. owner=.0. group=.0. .*path=.$base. taken=.yes. protected=.yes./>" "$tmpl_record" ||
    fail "the template record does not list the base: $(cat "$tmpl_record")"
[ "$(stat -c %U:%G:%a "$dir/pc.ram")" = "root:$QEMU_GROUP:440" ] ||
    fail "the RAM file is $(stat -c %U:%G:%a "$dir/pc.ram"), not root:$QEMU_GROUP:440"
[ "$(stat -c %a:%u "$dir")" = "711:$(id -u)" ] ||
    fail "the template directory is not the daemon's: mode:owner $(stat -c %a:%u "$dir")"
# Immutable: no domain naming them as its disk could chown or write them.
for f in "$base" "$dir/pc.ram"; do
    lsattr "$f" | cut -d' ' -f1 | grep -q i || fail "$f is not immutable: $(lsattr "$f")"
done
base_sum=$(sha256sum "$base" | cut -d' ' -f1)
echo "template: base read-only (440, was 640), holding the template's record $(field disk "$last"); directory the daemon's (711)"

# Two clones with overlays in the clone area, one where its XML puts the disk.
virsh clone-from-template $tmpl --count 2 --nic user >/dev/null || fail "clone --count 2 --nic user failed"
# The daemon plugs the NIC before the guest runs; a clone without it is not kept.
expect_error "--nic on a network that does not exist" "Failed to clone domain from template" \
    virsh clone-from-template $tmpl --name $tmpl-nonet --nic network=e2e-no-such-net
virsh domstate $tmpl-nonet >/dev/null 2>&1 && fail "a clone whose NIC could not be plugged was kept"
[ ! -e "$dir/clones/$tmpl-nonet" ] || fail "a clone whose NIC could not be plugged left $dir/clones/$tmpl-nonet"
[ -z "$(qemu_pids $tmpl-nonet)" ] || fail "a clone whose NIC could not be plugged left its QEMU running"
virsh dumpxml --inactive $tmpl | sed -e "s|<name>$tmpl</name>|<name>$tmpl-xml-clone</name>|" \
    -e '/<uuid>/d' -e "s|$tmpl.console|$tmpl-xml-clone.console|g" \
    -e "s|<source file='$base'/>|<source file='$xml_overlay'/>|" >"$E2E_DIR/$tmpl-xml-clone.xml"
grep -q "$xml_overlay" "$E2E_DIR/$tmpl-xml-clone.xml" || fail "could not point the XML clone's disk elsewhere"
touch "$xml_overlay"
expect_error "an overlay path that exists" "already exists" \
    virsh clone-from-template $tmpl --xml "$E2E_DIR/$tmpl-xml-clone.xml"
rm -f "$xml_overlay"
virsh clone-from-template $tmpl --xml "$E2E_DIR/$tmpl-xml-clone.xml" >/dev/null || fail "clone from XML failed"

overlay_of() {
    case $1 in
        $tmpl-xml-clone) echo "$xml_overlay" ;;
        *) echo "$dir/clones/$1/vda.qcow2" ;;
    esac
}

tmpl_genid=$(virsh dumpxml $tmpl | sed -n 's|.*<genid>\(.*\)</genid>.*|\1|p')
genids=$tmpl_genid
macs=""
for c in $clones; do
    overlay=$(overlay_of $c)
    virsh domblklist $c | grep -Eq "^ *vda +$overlay\$" || fail "$c: domblklist does not show $overlay: $(virsh domblklist $c)"
    pid=$(qemu_pids $c)
    [ -n "$pid" ] || fail "$c: no QEMU"
    # How QEMU opened each image: the base read-only, the overlay read-write.
    for flags in $(open_flags "$pid" "$base"); do
        [ $(( 0$flags & 3 )) = 0 ] || fail "$c opened the base with flags $flags"
    done
    for flags in $(open_flags "$pid" "$overlay"); do
        [ $(( 0$flags & 3 )) = 2 ] || fail "$c opened its overlay with flags $flags"
    done
    beat=$(heartbeat_after "$E2E_DIR/$c.console" $((tn + 2)) 60) || fail "$c does not run on"
    [ "$(field disk "$beat")" = "$(field rand "$beat")" ] || fail "$c read back another record: $beat"
    echo "$c: $beat"

    # QEMU's generation ID is the one in the clone's XML, and nobody else's.
    genid=$(virsh dumpxml $c | sed -n 's|.*<genid>\(.*\)</genid>.*|\1|p')
    qemu_genid=$(virsh qemu-monitor-command $c '{"execute":"query-vm-generation-id"}' |
                 sed -n 's/.*"guid": *"\([^"]*\)".*/\1/p')
    [ -n "$genid" ] && [ "$qemu_genid" = "$genid" ] || fail "$c: genid '$genid' in XML, '$qemu_genid' in QEMU"
    echo "$genids" | grep -qx "$genid" && fail "$c: genid $genid is not unique"
    genids=$(printf '%s\n%s' "$genids" "$genid")
done

for c in $tmpl-clone-1 $tmpl-clone-2; do
    mac=$(virsh domiflist $c | awk '$2 == "user" { print $5 }')
    qemu_mac=$(virsh qemu-monitor-command $c '{"execute":"query-rx-filter"}' |
               sed -n 's/.*"main-mac": *"\([^"]*\)".*/\1/p')
    [ -n "$mac" ] && [ "$qemu_mac" = "$mac" ] || fail "$c: MAC '$mac' in XML, '$qemu_mac' in QEMU"
    echo "$macs" | grep -qx "$mac" && fail "$c: MAC $mac is not unique"
    macs=$(printf '%s\n%s' "$macs" "$mac")
done
echo "genids and MACs: unique and as QEMU reports them"

# What each overlay holds: its own clone's last record.
for c in $clones; do
    qemu-img convert -U -f qcow2 -O raw "$(overlay_of $c)" "$E2E_DIR/$c-disk.raw"
    record=$(head -c 16 "$E2E_DIR/$c-disk.raw")
    rm -f "$E2E_DIR/$c-disk.raw"
    # The guest writes its record before it prints it: wait for the line.
    wrote=""
    for _ in $(seq 1 50); do
        if tr -d '\r' <"$E2E_DIR/$c.console" | grep '^HEARTBEAT' |
           awk -v n="$tn" '{ split($2, a, "="); if (a[2] > n) print }' | grep -q " rand=$record\$"; then
            wrote=yes
            break
        fi
        sleep 0.2
    done
    [ -n "$wrote" ] || fail "$c's overlay holds $record, which $c never wrote"
done
[ "$(sha256sum "$base" | cut -d' ' -f1)" = "$base_sum" ] || fail "the base changed while clones ran"
echo "overlays: each holds its clone's own record; base unchanged"

# Committing a clone's overlay into the base would change every clone's disk.
c=$(echo $clones | cut -d' ' -f1)
expect_error "blockcommit into the template's base" "can't be committed into its template's image" \
    virsh blockcommit $c vda --active --pivot
[ "$(sha256sum "$base" | cut -d' ' -f1)" = "$base_sum" ] || fail "a refused blockcommit changed the base"
[ "$(stat -c %U "$base")" = root ] || fail "a refused blockcommit gave the base to $(stat -c %U "$base")"

# A snapshot would go with the overlays, or sit on them.
expect_error "external snapshot of a clone" "snapshots of it are not supported" \
    virsh snapshot-create-as $c --disk-only --no-metadata --diskspec "vda,file=$E2E_DIR/$c-snap.qcow2"
[ ! -e "$E2E_DIR/$c-snap.qcow2" ] || fail "a refused snapshot left its image"
expect_error "disk-only snapshot of a clone" "snapshots of it are not supported" \
    virsh snapshot-create-as $c --disk-only --no-metadata
expect_error "snapshot of a clone" "snapshots of it are not supported" \
    virsh snapshot-create-as $c

# A base written behind libvirt's back (the immutable flag cleared by an
# administrator): clones are refused.
touch "$base" 2>/dev/null && fail "root could touch the immutable base"
chattr -i "$base"
refused_if_touched $tmpl "$base" "template disk image written behind libvirt"
chattr +i "$base"
# A template directory given to another user, who could swap what is in it.
chown nobody "$dir"
expect_error "template directory given away" "is not owned by the daemon" \
    virsh clone-from-template $tmpl
chown "$(id -u)" "$dir"
fault "template directory given away" 1 1 0
[ ! -e "$dir/clones/$tmpl-clone-3" ] || fail "a refused clone left its overlay directory"

# A saved clone keeps its overlay, which holds the template back; restored,
# it runs on with its own disk.
c=$tmpl-clone-1
virsh save $c "$E2E_DIR/$c.save" >/dev/null || fail "save of $c failed"
[ -f "$(overlay_of $c)" ] || fail "the overlay of saved $c is gone"
expect_error "removing a template under a saved clone's overlay" "still has overlays of clones" \
    virsh undefine --remove-template $tmpl
saved_n=$(field n "$(last_heartbeat "$E2E_DIR/$c.console")")
virsh restore "$E2E_DIR/$c.save" >/dev/null || fail "restore of $c failed"
rm -f "$E2E_DIR/$c.save"
beat=$(heartbeat_after "$E2E_DIR/$c.console" "$saved_n" 60) || fail "restored $c does not run on"
[ "$(field disk "$beat")" = "$(field rand "$beat")" ] || fail "restored $c read back another record: $beat"
echo "saved and restored $c: $beat"
# Restored, it knows its template's images from the template's record: the
# base stays the daemon's and read-only, and no commit goes into it.
[ "$(stat -c %U:%a "$base")" = root:440 ] ||
    fail "restoring $c gave the base away: $(stat -c %U:%a "$base")"
expect_error "blockcommit of a restored clone into the base" "can't be committed into its template's image" \
    virsh blockcommit $c vda --active --pivot
virsh destroy $c >/dev/null
[ -f "$(overlay_of $c)" ] || fail "the overlay of the restored $c went with it"
rm -r "$dir/clones/$c"

virsh destroy $tmpl-clone-2 >/dev/null || fail "destroy of $tmpl-clone-2 failed"
[ ! -e "$(overlay_of $tmpl-clone-2)" ] || fail "$tmpl-clone-2's overlay was not removed"
# An overlay where the clone's XML put it holds the template back as well.
[ "$(readlink "$dir/clones/$tmpl-xml-clone/vda.qcow2")" = "$xml_overlay" ] ||
    fail "the clone area does not link to $xml_overlay: $(ls -l "$dir/clones/$tmpl-xml-clone" 2>&1)"
expect_error "removing a template under an overlay outside the clone area" "still has overlays of clones" \
    virsh template-remove $tmpl
virsh destroy $tmpl-xml-clone >/dev/null || fail "destroy of $tmpl-xml-clone failed"
# That overlay is the caller's: the daemon, as root, does not remove files
# by a path others may change; only the link in the clone area goes.
[ -f "$xml_overlay" ] || fail "$tmpl-xml-clone's overlay, the caller's, was removed"
[ ! -e "$dir/clones/$tmpl-xml-clone" ] || fail "the link to $tmpl-xml-clone's overlay was left"
rm -f "$xml_overlay"
[ -z "$(ls -A "$dir/clones" 2>/dev/null)" ] || fail "the clone area is not empty: $(ls "$dir/clones")"
[ "$(sha256sum "$base" | cut -d' ' -f1)" = "$base_sum" ] || fail "the base changed"

virsh undefine --remove-template $tmpl >/dev/null || fail "undefine --remove-template failed"
[ "$(stat -c %a:%U:%G "$base")" = 640:root:root ] ||
    fail "the base did not get its mode and owner back: $(stat -c %a:%U:%G "$base")"
# No label remembered for it is left behind (the drivers restore through
# an immutable file no more than they write it).
[ -z "$(/usr/bin/python3 -c 'import os, sys; print(" ".join(a for a in os.listxattr(sys.argv[1]) if a.startswith("trusted.libvirt.security")))' "$base")" ] ||
    fail "remembered labels left on the base: $(/usr/bin/python3 -c 'import os, sys; print(os.listxattr(sys.argv[1]))' "$base")"
[ ! -e "$dir" ] || fail "template directory left: $(ls -A "$dir")"
echo "PASS: 3 clones wrote their own overlays of a read-only base, which is unchanged and given back"
