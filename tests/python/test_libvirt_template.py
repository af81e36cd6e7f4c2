"""libvirt_template against libvirt's test driver (test:///default): a
template made of a running domain with template memory, clones of it as
libvirt-python virDomain objects, the list filter, errors as
libvirt.libvirtError, and removal."""

import libvirt
import pytest

import libvirt_template as t

DOMAIN_XML = """<domain type='test'>
  <name>py-tmpl</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <memoryBacking>
    <source type='file'/>
    <access mode='shared'/>
    <template/>
  </memoryBacking>
  <os><type arch='x86_64'>hvm</type></os>
</domain>"""


@pytest.fixture
def conn():
    c = libvirt.open("test:///default")
    yield c
    c.close()


@pytest.fixture
def producer(conn):
    dom = conn.defineXML(DOMAIN_XML)
    dom.create()
    return dom


def names(conn, flags):
    return sorted(d.name() for d in conn.listAllDomains(flags))


def test_template_and_clones(conn, producer):
    assert t.hasTemplate(producer) == 0
    assert t.templateCreate(producer) == 0
    assert t.hasTemplate(producer) == 1
    assert producer.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF
    assert names(conn, t.VIR_CONNECT_LIST_DOMAINS_HAS_TEMPLATE) == ["py-tmpl"]

    clones = [t.cloneFromTemplate(producer) for _ in range(3)]
    assert all(isinstance(c, libvirt.virDomain) for c in clones)
    assert [c.name() for c in clones] == ["py-tmpl-clone-%d" % i for i in (1, 2, 3)]
    assert all(c.isActive() and not c.isPersistent() for c in clones)
    # the clone is an ordinary virDomain of the same connection
    assert clones[0].connect() is conn
    assert conn.lookupByName("py-tmpl-clone-2").UUIDString() == clones[1].UUIDString()
    assert "py-tmpl-clone-1" in names(conn, t.VIR_CONNECT_LIST_DOMAINS_NO_TEMPLATE)


def test_clone_params_and_flags(conn, producer):
    t.templateCreate(producer, None, 0)
    nic = "<interface type='network'><source network='default'/></interface>"
    clone = t.cloneFromTemplate(producer, {t.VIR_DOMAIN_TEMPLATE_PARAM_NAME: "py-named",
                                           t.VIR_DOMAIN_TEMPLATE_PARAM_NIC: [nic]},
                                t.VIR_DOMAIN_CLONE_FROM_TEMPLATE_PAUSED)
    assert clone.name() == "py-named"
    assert clone.state()[0] == libvirt.VIR_DOMAIN_PAUSED


def test_errors_are_libvirt_errors(conn, producer):
    with pytest.raises(libvirt.libvirtError) as err:
        t.cloneFromTemplate(producer)
    assert err.value.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID
    assert "py-tmpl" in str(err.value)

    t.templateCreate(producer)
    with pytest.raises(libvirt.libvirtError) as err:
        t.cloneFromTemplate(producer, {t.VIR_DOMAIN_TEMPLATE_PARAM_NAME: "../evil"})
    assert "../evil" in str(err.value)

    with pytest.raises(TypeError):
        t.cloneFromTemplate(producer, {t.VIR_DOMAIN_TEMPLATE_PARAM_NAME: 1})
    with pytest.raises(TypeError):
        t.templateCreate("py-tmpl")


def test_remove_and_undefine(conn, producer):
    t.templateCreate(producer)
    with pytest.raises(libvirt.libvirtError):
        producer.undefine()
    assert t.templateRemove(producer) == 0
    assert t.hasTemplate(producer) == 0

    producer.create()
    t.templateCreate(producer)
    producer.undefineFlags(t.VIR_DOMAIN_UNDEFINE_TEMPLATE)
    assert "py-tmpl" not in names(conn, 0)
