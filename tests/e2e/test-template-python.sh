#!/bin/sh
# The project's Python module with Debian's python3-libvirt on the real
# daemon: a Python session makes a template of the running guest and starts
# 3 clones, which run on from the template's heartbeat; the clones are
# libvirt-python domains; errors are libvirt.libvirtError.
set -eu
. "$(dirname "$0")/lib.sh"

tmpl=e2e-python
cleanup() {
    cleanup_template $tmpl
}
trap cleanup EXIT
cleanup

boot_guest $tmpl --memory 256 --template

"$ROOT/run" /usr/bin/python3 - "$tmpl" <<'PY' || fail "the Python session failed"
import sys
import libvirt
import libvirt_template as t

name = sys.argv[1]
conn = libvirt.open()
dom = conn.lookupByName(name)
t.templateCreate(dom)
assert t.hasTemplate(dom) == 1, "no template after templateCreate()"
clones = [t.cloneFromTemplate(dom) for _ in range(3)]
for c in clones:
    assert isinstance(c, libvirt.virDomain)
    assert c.state()[0] == libvirt.VIR_DOMAIN_RUNNING, "%s is not running" % c.name()
print("templates:", [d.name() for d in conn.listAllDomains(t.VIR_CONNECT_LIST_DOMAINS_HAS_TEMPLATE)])
print("clones:", [(c.name(), c.ID()) for c in clones])
try:
    t.cloneFromTemplate(dom, {t.VIR_DOMAIN_TEMPLATE_PARAM_NAME: clones[0].name()})
    sys.exit("a clone with the name of a running one was started")
except libvirt.libvirtError as e:
    assert e.get_error_code() == libvirt.VIR_ERR_OPERATION_FAILED, e.get_error_code()
    print("refused:", e)
PY

tn=$(field n "$(last_heartbeat "$E2E_DIR/$tmpl.console")")
for i in 1 2 3; do
    c=$tmpl-clone-$i
    [ "$(virsh domstate $c)" = running ] || fail "$c is $(virsh domstate $c) in virsh"
    beat=$(heartbeat_after "$E2E_DIR/$c.console" "$tn" 60) || fail "$c does not run on"
    echo "$c: $beat"
done
for i in 1 2 3; do
    virsh destroy $tmpl-clone-$i >/dev/null
done
"$ROOT/run" /usr/bin/python3 -c '
import sys, libvirt, libvirt_template as t
dom = libvirt.open().lookupByName(sys.argv[1])
t.templateRemove(dom)
assert t.hasTemplate(dom) == 0
' $tmpl || fail "templateRemove() failed"
virsh dominfo $tmpl | grep -qE '^Template: +no' || fail "$tmpl holds a template after templateRemove()"
echo "PASS: a Python session made a template and 3 clones, which run on; templateRemove() removed it"
