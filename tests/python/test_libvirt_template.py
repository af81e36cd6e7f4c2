"""libvirt_template against libvirt's test driver (test:///default): a
template made of a running domain with template memory, clones of it as
libvirt-python virDomain objects, the list filter, errors as
libvirt.libvirtError, and removal."""

import unittest

import libvirt

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


class TemplateTest(unittest.TestCase):
    def setUp(self):
        self.conn = libvirt.open("test:///default")
        self.producer = self.conn.defineXML(DOMAIN_XML)
        self.producer.create()

    def tearDown(self):
        self.conn.close()

    def names(self, flags):
        return sorted(d.name() for d in self.conn.listAllDomains(flags))

    def test_template_and_clones(self):
        self.assertEqual(t.hasTemplate(self.producer), 0)
        self.assertEqual(t.templateCreate(self.producer), 0)
        self.assertEqual(t.hasTemplate(self.producer), 1)
        self.assertEqual(self.producer.state()[0], libvirt.VIR_DOMAIN_SHUTOFF)
        self.assertEqual(self.names(t.VIR_CONNECT_LIST_DOMAINS_HAS_TEMPLATE), ["py-tmpl"])

        clones = [t.cloneFromTemplate(self.producer) for _ in range(3)]
        for c in clones:
            self.assertIsInstance(c, libvirt.virDomain)
            self.assertTrue(c.isActive())
            self.assertFalse(c.isPersistent())
        self.assertEqual([c.name() for c in clones],
                         ["py-tmpl-clone-%d" % i for i in (1, 2, 3)])
        # an ordinary virDomain of the same connection
        self.assertIs(clones[0].connect(), self.conn)
        self.assertEqual(self.conn.lookupByName("py-tmpl-clone-2").UUIDString(),
                         clones[1].UUIDString())
        self.assertIn("py-tmpl-clone-1", self.names(t.VIR_CONNECT_LIST_DOMAINS_NO_TEMPLATE))

    def test_clone_params_and_flags(self):
        t.templateCreate(self.producer, None, 0)
        nic = "<interface type='network'><source network='default'/></interface>"
        clone = t.cloneFromTemplate(self.producer,
                                    {t.VIR_DOMAIN_TEMPLATE_PARAM_NAME: "py-named",
                                     t.VIR_DOMAIN_TEMPLATE_PARAM_NIC: [nic]},
                                    t.VIR_DOMAIN_CLONE_FROM_TEMPLATE_PAUSED)
        self.assertEqual(clone.name(), "py-named")
        self.assertEqual(clone.state()[0], libvirt.VIR_DOMAIN_PAUSED)

    def test_errors_are_libvirt_errors(self):
        with self.assertRaises(libvirt.libvirtError) as err:
            t.cloneFromTemplate(self.producer)
        self.assertEqual(err.exception.get_error_code(), libvirt.VIR_ERR_OPERATION_INVALID)
        self.assertIn("py-tmpl", str(err.exception))

        t.templateCreate(self.producer)
        with self.assertRaises(libvirt.libvirtError) as err:
            t.cloneFromTemplate(self.producer, {t.VIR_DOMAIN_TEMPLATE_PARAM_NAME: "../evil"})
        self.assertIn("../evil", str(err.exception))

        with self.assertRaises(TypeError):
            t.cloneFromTemplate(self.producer, {t.VIR_DOMAIN_TEMPLATE_PARAM_NAME: 1})
        with self.assertRaises(TypeError):
            t.templateCreate("py-tmpl")

    def test_remove_and_undefine(self):
        t.templateCreate(self.producer)
        with self.assertRaises(libvirt.libvirtError):
            self.producer.undefine()
        self.assertEqual(t.templateRemove(self.producer), 0)
        self.assertEqual(t.hasTemplate(self.producer), 0)

        self.producer.create()
        t.templateCreate(self.producer)
        self.producer.undefineFlags(t.VIR_DOMAIN_UNDEFINE_TEMPLATE)
        self.assertNotIn("py-tmpl", self.names(0))

    def test_emulator_replace(self):
        """The test driver checks what the QEMU driver checks first: RAM in
        shared files, an absolute emulator path, which the live definition
        then names."""
        self.assertEqual(t.emulatorReplace(self.producer), 0)
        self.assertEqual(t.emulatorReplace(
            self.producer, {t.VIR_DOMAIN_EMULATOR_REPLACE_PARAM_EMULATOR: "/opt/qemu/bin/qemu"}), 0)
        self.assertIn("<emulator>/opt/qemu/bin/qemu</emulator>", self.producer.XMLDesc())
        with self.assertRaises(libvirt.libvirtError) as ctx:
            t.emulatorReplace(self.producer,
                              {t.VIR_DOMAIN_EMULATOR_REPLACE_PARAM_EMULATOR: "qemu"})
        self.assertEqual(ctx.exception.get_error_code(), libvirt.VIR_ERR_INVALID_ARG)
        plain = self.conn.lookupByName("test")
        with self.assertRaises(libvirt.libvirtError) as ctx:
            t.emulatorReplace(plain)
        self.assertIn("<access mode='shared'/>", str(ctx.exception))

    def test_bind(self):
        """After bind(), the calls are the virDomain methods and the
        constants are the libvirt module's, as libvirt-python would have
        them; a second bind() adds nothing."""
        self.assertFalse(hasattr(libvirt.virDomain, "templateCreate"),
                         "libvirt-python binds the template APIs: bind() is no longer needed")
        added = t.bind()
        self.addCleanup(self.unbind, added)
        self.assertIn("virDomain.cloneFromTemplate", added)
        self.assertIn("VIR_DOMAIN_UNDEFINE_TEMPLATE", added)
        self.assertIn("virDomain.emulatorReplace", added)
        self.assertEqual(t.bind(), [])

        self.producer.templateCreate()
        self.assertEqual(self.producer.hasTemplate(), 1)
        clone = self.producer.cloneFromTemplate(
            {libvirt.VIR_DOMAIN_TEMPLATE_PARAM_NAME: "py-bound"},
            libvirt.VIR_DOMAIN_CLONE_FROM_TEMPLATE_PAUSED)
        self.assertEqual(clone.name(), "py-bound")
        self.assertEqual(clone.state()[0], libvirt.VIR_DOMAIN_PAUSED)
        self.producer.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_TEMPLATE)
        self.assertNotIn("py-tmpl", self.names(0))

    @staticmethod
    def unbind(added):
        for name in added:
            if name.startswith("virDomain."):
                delattr(libvirt.virDomain, name[len("virDomain."):])
            else:
                delattr(libvirt, name)


if __name__ == "__main__":
    unittest.main()
