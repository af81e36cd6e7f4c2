/*
 * libvirtmod_template.c: Python binding of libvirt's VM template APIs
 *
 * Until libvirt-python binds virDomainTemplateCreate() and friends, and
 * virDomainEmulatorReplace(), which the same machinery brings, this
 * module gives them to the python3-libvirt of the distribution: it takes a
 * domain by libvirt-python's virDomain.c_pointer() and hands a new domain
 * back as the capsule libvirt-python's own virDomain objects wrap, so that
 * libvirt_template.py can return one. Both modules use the one libvirt
 * library of the process, so its last error is libvirt-python's too.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <libvirt/libvirt.h>

#define UNUSED __attribute__((unused))

/* The capsule name libvirt-python's virDomain objects wrap. */
#define DOMAIN_CAPSULE "virDomainPtr"


static virDomainPtr
getDomain(PyObject *pointer)
{
    void *dom = PyLong_AsVoidPtr(pointer);

    if (!dom && !PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, "NULL domain pointer");
    return dom;
}


/* Adds @value, a string or a list of strings (a parameter given several
 * times), as the typed parameter @key. */
static int
addParam(virTypedParameterPtr *params,
         int *nparams,
         int *maxparams,
         const char *key,
         PyObject *value)
{
    Py_ssize_t i;

    if (PyUnicode_Check(value)) {
        const char *str = PyUnicode_AsUTF8(value);

        if (!str)
            return -1;
        if (virTypedParamsAddString(params, nparams, maxparams, key, str) < 0) {
            PyErr_NoMemory();
            return -1;
        }
        return 0;
    }

    if (PyList_Check(value) || PyTuple_Check(value)) {
        PyObject *seq = PySequence_Fast(value, "");

        if (!seq)
            return -1;
        for (i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
            PyObject *item = PySequence_Fast_GET_ITEM(seq, i);

            if (!PyUnicode_Check(item)) {
                PyErr_Format(PyExc_TypeError,
                             "parameter '%s' takes strings", key);
                Py_DECREF(seq);
                return -1;
            }
            if (addParam(params, nparams, maxparams, key, item) < 0) {
                Py_DECREF(seq);
                return -1;
            }
        }
        Py_DECREF(seq);
        return 0;
    }

    PyErr_Format(PyExc_TypeError,
                 "parameter '%s' takes a string or a list of strings", key);
    return -1;
}


/* The typed parameters of the dict @dict (or None). */
static int
dictToParams(PyObject *dict,
             virTypedParameterPtr *params,
             int *nparams)
{
    PyObject *key;
    PyObject *value;
    Py_ssize_t pos = 0;
    int maxparams = 0;

    *params = NULL;
    *nparams = 0;
    if (dict == Py_None)
        return 0;

    if (!PyDict_Check(dict)) {
        PyErr_SetString(PyExc_TypeError, "params must be a dict or None");
        return -1;
    }

    while (PyDict_Next(dict, &pos, &key, &value)) {
        const char *name;

        if (!PyUnicode_Check(key) || !(name = PyUnicode_AsUTF8(key))) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "parameter names are strings");
            goto error;
        }
        if (addParam(params, nparams, &maxparams, name, value) < 0)
            goto error;
    }
    return 0;

 error:
    virTypedParamsFree(*params, *nparams);
    *params = NULL;
    *nparams = 0;
    return -1;
}


/* The APIs that take a domain, typed parameters and flags. */
typedef int (*domainParamsFunc)(virDomainPtr dom,
                                virTypedParameterPtr params,
                                int nparams,
                                unsigned int flags);

static PyObject *
callWithParams(PyObject *args,
               const char *format,
               domainParamsFunc func)
{
    PyObject *pointer;
    PyObject *dict;
    unsigned int flags;
    virDomainPtr dom;
    virTypedParameterPtr params;
    int nparams;
    int ret;

    if (!PyArg_ParseTuple(args, format, &pointer, &dict, &flags) ||
        !(dom = getDomain(pointer)) ||
        dictToParams(dict, &params, &nparams) < 0)
        return NULL;

    Py_BEGIN_ALLOW_THREADS
    ret = func(dom, params, nparams, flags);
    Py_END_ALLOW_THREADS
    virTypedParamsFree(params, nparams);

    return PyLong_FromLong(ret);
}


static PyObject *
templateCreate(PyObject *self UNUSED,
               PyObject *args)
{
    return callWithParams(args, "OOI:virDomainTemplateCreate",
                          virDomainTemplateCreate);
}


static PyObject *
emulatorReplace(PyObject *self UNUSED,
                PyObject *args)
{
    return callWithParams(args, "OOI:virDomainEmulatorReplace",
                          virDomainEmulatorReplace);
}


static PyObject *
cloneFromTemplate(PyObject *self UNUSED,
                  PyObject *args)
{
    PyObject *pointer;
    PyObject *dict;
    unsigned int flags;
    virDomainPtr tmpl;
    virDomainPtr clone;
    virTypedParameterPtr params;
    int nparams;

    if (!PyArg_ParseTuple(args, "OOI:virDomainCloneFromTemplate", &pointer, &dict, &flags) ||
        !(tmpl = getDomain(pointer)) ||
        dictToParams(dict, &params, &nparams) < 0)
        return NULL;

    Py_BEGIN_ALLOW_THREADS
    clone = virDomainCloneFromTemplate(tmpl, params, nparams, flags);
    Py_END_ALLOW_THREADS
    virTypedParamsFree(params, nparams);

    if (!clone)
        Py_RETURN_NONE;

    /* freed by libvirt-python's virDomain.__del__() */
    return PyCapsule_New(clone, DOMAIN_CAPSULE, NULL);
}


static PyObject *
hasTemplate(PyObject *self UNUSED,
            PyObject *args)
{
    PyObject *pointer;
    unsigned int flags;
    virDomainPtr dom;
    int ret;

    if (!PyArg_ParseTuple(args, "OI:virDomainHasTemplate", &pointer, &flags) ||
        !(dom = getDomain(pointer)))
        return NULL;

    Py_BEGIN_ALLOW_THREADS
    ret = virDomainHasTemplate(dom, flags);
    Py_END_ALLOW_THREADS

    return PyLong_FromLong(ret);
}


static PyObject *
templateRemove(PyObject *self UNUSED,
               PyObject *args)
{
    PyObject *pointer;
    unsigned int flags;
    virDomainPtr dom;
    int ret;

    if (!PyArg_ParseTuple(args, "OI:virDomainTemplateRemove", &pointer, &flags) ||
        !(dom = getDomain(pointer)))
        return NULL;

    Py_BEGIN_ALLOW_THREADS
    ret = virDomainTemplateRemove(dom, flags);
    Py_END_ALLOW_THREADS

    return PyLong_FromLong(ret);
}


static PyMethodDef methods[] = {
    {"virDomainTemplateCreate", templateCreate, METH_VARARGS, NULL},
    {"virDomainCloneFromTemplate", cloneFromTemplate, METH_VARARGS, NULL},
    {"virDomainHasTemplate", hasTemplate, METH_VARARGS, NULL},
    {"virDomainTemplateRemove", templateRemove, METH_VARARGS, NULL},
    {"virDomainEmulatorReplace", emulatorReplace, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL}
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "libvirtmod_template",
    NULL,
    -1,
    methods,
    NULL, NULL, NULL, NULL
};


#define ADD_INT(name) \
    if (PyModule_AddIntConstant(mod, #name, name) < 0) \
        goto error
#define ADD_STRING(name) \
    if (PyModule_AddStringConstant(mod, #name, name) < 0) \
        goto error

PyMODINIT_FUNC
PyInit_libvirtmod_template(void)
{
    PyObject *mod = PyModule_Create(&module);

    if (!mod)
        return NULL;

    ADD_STRING(VIR_DOMAIN_TEMPLATE_PARAM_NAME);
    ADD_STRING(VIR_DOMAIN_TEMPLATE_PARAM_DXML);
    ADD_STRING(VIR_DOMAIN_TEMPLATE_PARAM_NIC);
    ADD_INT(VIR_DOMAIN_CLONE_FROM_TEMPLATE_PAUSED);
    ADD_INT(VIR_DOMAIN_CLONE_FROM_TEMPLATE_AUTODESTROY);
    ADD_INT(VIR_DOMAIN_TEMPLATE_REMOVE_SAVED_CLONES);
    ADD_INT(VIR_DOMAIN_TEMPLATE_REMOVE_FORGET_MISSING_DISKS);
    ADD_INT(VIR_DOMAIN_UNDEFINE_TEMPLATE);
    ADD_INT(VIR_CONNECT_LIST_DOMAINS_HAS_TEMPLATE);
    ADD_INT(VIR_CONNECT_LIST_DOMAINS_NO_TEMPLATE);
    ADD_INT(VIR_DOMAIN_JOB_OPERATION_TEMPLATE_CREATE);
    ADD_STRING(VIR_DOMAIN_EMULATOR_REPLACE_PARAM_EMULATOR);
    ADD_INT(VIR_DOMAIN_JOB_OPERATION_EMULATOR_REPLACE);
    return mod;

 error:
    Py_DECREF(mod);
    return NULL;
}
