"""libvirt's VM template APIs for libvirt-python, and
virDomainEmulatorReplace(), which the same QEMU machinery brings.

The calls are named as libvirt-python's generator names the methods it
makes of them, and take the domain first:

    import libvirt, libvirt_template as t
    conn = libvirt.open()
    dom = conn.lookupByName("guest")
    t.templateCreate(dom)                      # dom.templateCreate()
    clone = t.cloneFromTemplate(dom, {t.VIR_DOMAIN_TEMPLATE_PARAM_NAME: "c1"})
    t.hasTemplate(dom)                         # dom.hasTemplate()
    t.emulatorReplace(dom)                     # dom.emulatorReplace()

They take and return libvirt-python's own virDomain objects and raise
libvirt.libvirtError as the bindings do.

Applications written for bindings that have the APIs call bind() once:

    libvirt_template.bind()
    dom.templateCreate()
    clone = dom.cloneFromTemplate({libvirt.VIR_DOMAIN_TEMPLATE_PARAM_NAME: "c1"})

It adds the calls as virDomain methods and the constants to the libvirt
module, wherever libvirt-python lacks them, and nothing where it has
them. Once libvirt-python binds these APIs, replace t.call(dom, ...) by
dom.call(...) and the constants by those of the libvirt module, drop the
bind() call; this module then goes.
"""

import libvirt
import libvirtmod_template as _mod

VIR_DOMAIN_TEMPLATE_PARAM_NAME = _mod.VIR_DOMAIN_TEMPLATE_PARAM_NAME
VIR_DOMAIN_TEMPLATE_PARAM_DXML = _mod.VIR_DOMAIN_TEMPLATE_PARAM_DXML
VIR_DOMAIN_TEMPLATE_PARAM_NIC = _mod.VIR_DOMAIN_TEMPLATE_PARAM_NIC
VIR_DOMAIN_CLONE_FROM_TEMPLATE_PAUSED = _mod.VIR_DOMAIN_CLONE_FROM_TEMPLATE_PAUSED
VIR_DOMAIN_CLONE_FROM_TEMPLATE_AUTODESTROY = _mod.VIR_DOMAIN_CLONE_FROM_TEMPLATE_AUTODESTROY
VIR_DOMAIN_TEMPLATE_REMOVE_SAVED_CLONES = _mod.VIR_DOMAIN_TEMPLATE_REMOVE_SAVED_CLONES
VIR_DOMAIN_TEMPLATE_REMOVE_FORGET_MISSING_DISKS = _mod.VIR_DOMAIN_TEMPLATE_REMOVE_FORGET_MISSING_DISKS
VIR_DOMAIN_UNDEFINE_TEMPLATE = _mod.VIR_DOMAIN_UNDEFINE_TEMPLATE
VIR_CONNECT_LIST_DOMAINS_HAS_TEMPLATE = _mod.VIR_CONNECT_LIST_DOMAINS_HAS_TEMPLATE
VIR_CONNECT_LIST_DOMAINS_NO_TEMPLATE = _mod.VIR_CONNECT_LIST_DOMAINS_NO_TEMPLATE
VIR_DOMAIN_JOB_OPERATION_TEMPLATE_CREATE = _mod.VIR_DOMAIN_JOB_OPERATION_TEMPLATE_CREATE
VIR_DOMAIN_EMULATOR_REPLACE_PARAM_EMULATOR = _mod.VIR_DOMAIN_EMULATOR_REPLACE_PARAM_EMULATOR
VIR_DOMAIN_JOB_OPERATION_EMULATOR_REPLACE = _mod.VIR_DOMAIN_JOB_OPERATION_EMULATOR_REPLACE


def _pointer(dom):
    if not isinstance(dom, libvirt.virDomain):
        raise TypeError("expected a libvirt.virDomain, got %s" % type(dom).__name__)
    return dom.c_pointer()


def templateCreate(dom, params=None, flags=0):
    """Turn the running domain dom into a template: virDomainTemplateCreate().

    params: dict of typed parameters (none defined yet), or None."""
    ret = _mod.virDomainTemplateCreate(_pointer(dom), params, flags)
    if ret == -1:
        raise libvirt.libvirtError('virDomainTemplateCreate() failed')
    return ret


def cloneFromTemplate(dom, params=None, flags=0):
    """Start a clone of the template dom: virDomainCloneFromTemplate().

    params: dict of VIR_DOMAIN_TEMPLATE_PARAM_* to values (a list of
    strings for VIR_DOMAIN_TEMPLATE_PARAM_NIC, given several times), or
    None. Returns the clone, a libvirt.virDomain of dom's connection."""
    ret = _mod.virDomainCloneFromTemplate(_pointer(dom), params, flags)
    if ret is None:
        raise libvirt.libvirtError('virDomainCloneFromTemplate() failed')
    return libvirt.virDomain(dom.connect(), _obj=ret)


def hasTemplate(dom, flags=0):
    """1 if dom holds a template, 0 if not: virDomainHasTemplate()."""
    ret = _mod.virDomainHasTemplate(_pointer(dom), flags)
    if ret == -1:
        raise libvirt.libvirtError('virDomainHasTemplate() failed')
    return ret


def templateRemove(dom, flags=0):
    """Remove the template dom holds: virDomainTemplateRemove()."""
    ret = _mod.virDomainTemplateRemove(_pointer(dom), flags)
    if ret == -1:
        raise libvirt.libvirtError('virDomainTemplateRemove() failed')
    return ret


def emulatorReplace(dom, params=None, flags=0):
    """Move the running domain dom to a new QEMU process, its RAM in
    place: virDomainEmulatorReplace().

    params: {VIR_DOMAIN_EMULATOR_REPLACE_PARAM_EMULATOR: path} to run
    another binary, or None for the domain's emulator as installed now."""
    ret = _mod.virDomainEmulatorReplace(_pointer(dom), params, flags)
    if ret == -1:
        raise libvirt.libvirtError('virDomainEmulatorReplace() failed')
    return ret


_METHODS = (templateCreate, cloneFromTemplate, hasTemplate, templateRemove,
            emulatorReplace)
_CONSTANTS = [name for name in dir() if name.startswith("VIR_")]


def bind():
    """Give libvirt.virDomain the template methods and the libvirt module
    the constants, where libvirt-python has none of its own. Returns the
    names it added: none once libvirt-python binds virDomain.hasTemplate,
    so that an application never sees a mix of the two."""
    added = []
    if hasattr(libvirt.virDomain, "hasTemplate"):
        return added
    for func in _METHODS:
        if not hasattr(libvirt.virDomain, func.__name__):
            setattr(libvirt.virDomain, func.__name__, func)
            added.append("virDomain." + func.__name__)
    for name in _CONSTANTS:
        if not hasattr(libvirt, name):
            setattr(libvirt, name, globals()[name])
            added.append(name)
    return added
