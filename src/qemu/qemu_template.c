/*
 * qemu_template.c: VM templates and their clones
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Lesser General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 *
 * This library is distributed in the hope that it will be useful,
 * but WITHOUT ANY WARRANTY; without even the implied warranty of
 * MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the GNU
 * Lesser General Public License for more details.
 *
 * You should have received a copy of the GNU Lesser General Public
 * License along with this library.  If not, see
 * <http://www.gnu.org/licenses/>.
 */

#include <config.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qemu_template.h"
#include "qemu_domain.h"
#include "qemu_migration.h"
#include "qemu_migration_params.h"
#include "qemu_process.h"
#include "qemu_saveimage.h"
#include "domain_audit.h"
#include "virfile.h"
#include "virlog.h"
#include "virstring.h"
#include "viruuid.h"

#define VIR_FROM_THIS VIR_FROM_QEMU

VIR_LOG_INIT("qemu.qemu_template");


/**
 * qemuTemplateIsProducer:
 * @def: domain definition
 *
 * Returns true if @def is a template producer: its RAM is written to the
 * template's RAM files (template memory with shared access).
 */
bool
qemuTemplateIsProducer(const virDomainDef *def)
{
    return def->mem.tmpl &&
           def->mem.access == VIR_DOMAIN_MEMORY_ACCESS_SHARED;
}


/**
 * qemuTemplateIsClone:
 * @def: domain definition
 *
 * Returns true if @def is a clone: it maps a template's RAM files
 * privately and must never change or remove them.
 */
bool
qemuTemplateIsClone(const virDomainDef *def)
{
    return def->mem.tmpl &&
           def->mem.access == VIR_DOMAIN_MEMORY_ACCESS_PRIVATE;
}


/**
 * qemuTemplateMemoryFiles:
 * @driver: qemu driver
 * @def: domain definition with template memory
 *
 * Lists the RAM files of @def's template memory: one per RAM backend,
 * named after its id ('ram-nodeN' per NUMA cell, or the machine's
 * default RAM id). Validation guarantees these are the only ones.
 *
 * Returns a NULL terminated list of absolute paths, or NULL with an error
 * reported.
 */
char **
qemuTemplateMemoryFiles(virQEMUDriver *driver,
                        const virDomainDef *def)
{
    size_t ncells = virDomainNumaGetNodeCount(def->numa);
    g_autoptr(virQEMUCaps) qemuCaps = NULL;
    const char *defaultRAMid;
    g_auto(GStrv) files = NULL;
    size_t i;

    if (ncells > 0) {
        files = g_new0(char *, ncells + 1);
        for (i = 0; i < ncells; i++)
            files[i] = g_strdup_printf("%s/ram-node%zu", def->mem.tmpl->path, i);
        return g_steal_pointer(&files);
    }

    /* Not the domain's own capabilities: those of a domain reconnected
     * after a daemon restart have no machine types. */
    if (!(qemuCaps = virQEMUCapsCacheLookup(driver->qemuCapsCache, def->emulator)))
        return NULL;

    if (!(defaultRAMid = virQEMUCapsGetMachineDefaultRAMid(qemuCaps,
                                                           def->virtType,
                                                           def->os.machine))) {
        virReportError(VIR_ERR_CONFIG_UNSUPPORTED,
                       _("machine type '%s' has no default RAM id"),
                       def->os.machine);
        return NULL;
    }

    files = g_new0(char *, 2);
    files[0] = g_strdup_printf("%s/%s", def->mem.tmpl->path, defaultRAMid);
    return g_steal_pointer(&files);
}


/**
 * qemuTemplateMemoryRemove:
 * @driver: qemu driver
 * @def: domain definition of a template producer
 *
 * Removes the RAM files of @def's template memory and their directory
 * if that is left empty. Only the files libvirt asked QEMU to create are
 * touched: the directory may be the user's. Errors are only logged, as
 * this runs when the domain stops.
 */
void
qemuTemplateMemoryRemove(virQEMUDriver *driver,
                         const virDomainDef *def)
{
    g_auto(GStrv) files = NULL;
    char **file;

    if (!(files = qemuTemplateMemoryFiles(driver, def))) {
        VIR_WARN("Unable to list the template memory files of domain '%s'",
                 def->name);
        return;
    }

    for (file = files; *file; file++) {
        if (unlink(*file) < 0 && errno != ENOENT)
            VIR_WARN("Unable to remove template memory file '%s': %s",
                     *file, g_strerror(errno));
    }

    if (rmdir(def->mem.tmpl->path) < 0 && errno != ENOENT && errno != ENOTEMPTY)
        VIR_WARN("Unable to remove template memory directory '%s': %s",
                 def->mem.tmpl->path, g_strerror(errno));
}


/**
 * qemuTemplateCloneSetIgnoreShared:
 * @vm: clone, started with an incoming migration
 * @asyncJob: the job starting it
 *
 * A template's device state was saved with x-ignore-shared, and QEMU only
 * loads it with the same capability set. Call before migrate-incoming.
 *
 * Returns 0 on success, -1 with an error reported.
 */
int
qemuTemplateCloneSetIgnoreShared(virDomainObj *vm,
                                 virDomainAsyncJob asyncJob)
{
    g_autoptr(qemuMigrationParams) migParams = qemuMigrationParamsNew();

    if (qemuMigrationParamsSetIgnoreShared(migParams, vm) < 0)
        return -1;

    return qemuMigrationParamsApply(vm, asyncJob, migParams, 0);
}


/**
 * qemuTemplateImagePath:
 * @def: definition of a template producer
 *
 * Returns the path of the template image (device state and XML, in the
 * save image format) of @def, next to its RAM files.
 */
char *
qemuTemplateImagePath(const virDomainDef *def)
{
    return g_strdup_printf("%s/template.save", def->mem.tmpl->path);
}


/**
 * qemuTemplateLoad:
 * @vm: domain object
 * @opaque: unused
 *
 * Learns at daemon start whether @vm holds a template, and drops the
 * leftovers of a template-create that never completed.
 */
int
qemuTemplateLoad(virDomainObj *vm,
                 void *opaque G_GNUC_UNUSED)
{
    g_autofree char *path = NULL;
    g_autofree char *partial = NULL;

    virObjectLock(vm);
    if (qemuTemplateIsProducer(vm->def)) {
        path = qemuTemplateImagePath(vm->def);
        partial = g_strdup_printf("%s.partial", path);
        vm->hasTemplate = virFileExists(path);
        if (unlink(partial) < 0 && errno != ENOENT)
            VIR_WARN("Unable to remove '%s': %s", partial, g_strerror(errno));
    }
    virObjectUnlock(vm);
    return 0;
}


/**
 * qemuTemplateDiscard:
 * @driver: qemu driver
 * @vm: inactive domain holding a template
 *
 * Removes the template image and the RAM files of @vm: it is an ordinary
 * domain again.
 *
 * Returns 0 on success, -1 with an error reported.
 */
int
qemuTemplateDiscard(virQEMUDriver *driver,
                    virDomainObj *vm)
{
    g_autofree char *path = qemuTemplateImagePath(vm->def);

    if (unlink(path) < 0 && errno != ENOENT) {
        virReportSystemError(errno, _("unable to remove template image '%s'"), path);
        return -1;
    }
    vm->hasTemplate = false;

    qemuTemplateMemoryRemove(driver, vm->def);

    return 0;
}


/* Until disks become linked clones and NICs are hot-plugged into clones,
 * clones would share a writable image or a MAC address; NVRAM and TPM
 * state would be shared the same way. */
static int
qemuTemplateCreateCheckDevices(const virDomainDef *def)
{
    size_t i;

    for (i = 0; i < def->ndisks; i++) {
        if (!def->disks[i]->src->readonly &&
            !virStorageSourceIsEmpty(def->disks[i]->src)) {
            virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                           _("disk '%s' is writable: its clones would share it; "
                             "only read-only disks are supported in templates"),
                           def->disks[i]->dst);
            return -1;
        }
    }

    if (def->nnets > 0) {
        virReportError(VIR_ERR_OPERATION_UNSUPPORTED, "%s",
                       _("templates with network interfaces are not supported: "
                         "every clone would have the same MAC address"));
        return -1;
    }

    if (def->os.loader && def->os.loader->nvram) {
        virReportError(VIR_ERR_OPERATION_UNSUPPORTED, "%s",
                       _("templates with UEFI variable stores are not supported: "
                         "every clone would write the same NVRAM file"));
        return -1;
    }

    if (def->ntpms > 0) {
        virReportError(VIR_ERR_OPERATION_UNSUPPORTED, "%s",
                       _("templates with a TPM are not supported: every clone "
                         "would share its state"));
        return -1;
    }

    return 0;
}


static int
qemuTemplateSyncFile(const char *path)
{
    VIR_AUTOCLOSE fd = -1;

    if ((fd = open(path, O_RDONLY)) < 0 || fdatasync(fd) < 0) {
        virReportSystemError(errno, _("unable to sync '%s'"), path);
        return -1;
    }

    return 0;
}


/* The RAM files and the image must be on disk before the image is published:
 * a clone must never see a template whose RAM is not all there. */
static int
qemuTemplateSync(virQEMUDriver *driver,
                 virDomainObj *vm,
                 const char *image)
{
    g_auto(GStrv) files = NULL;
    char **file;

    if (!(files = qemuTemplateMemoryFiles(driver, vm->def)))
        return -1;

    for (file = files; *file; file++) {
        if (qemuTemplateSyncFile(*file) < 0)
            return -1;
    }

    return qemuTemplateSyncFile(image);
}


/**
 * qemuTemplateCreate:
 * @driver: qemu driver
 * @vm: running template producer, locked
 *
 * Saves the device state of @vm with x-ignore-shared next to its RAM
 * files, publishes the template image once it is complete and stops @vm
 * while keeping the files.
 *
 * Returns 0 on success, -1 with an error reported and @vm left running.
 */
int
qemuTemplateCreate(virQEMUDriver *driver,
                   virDomainObj *vm)
{
    qemuDomainObjPrivate *priv = vm->privateData;
    g_autoptr(qemuDomainSaveCookie) cookie = NULL;
    virQEMUSaveData *data = NULL;
    virObjectEvent *event = NULL;
    g_autofree char *xml = NULL;
    g_autofree char *path = NULL;
    g_autofree char *partial = NULL;
    bool was_running = false;
    int ret = -1;

    if (virDomainObjBeginAsyncJob(vm, VIR_ASYNC_JOB_SAVE,
                                  VIR_DOMAIN_JOB_OPERATION_SAVE, 0) < 0)
        return -1;

    if (virDomainObjCheckActive(vm) < 0)
        goto endjob;

    if (!vm->persistent) {
        virReportError(VIR_ERR_OPERATION_INVALID, "%s",
                       _("cannot make a template of a transient domain"));
        goto endjob;
    }

    if (!qemuTemplateIsProducer(vm->def)) {
        virReportError(VIR_ERR_OPERATION_INVALID,
                       _("domain '%s' has no template memory: it needs "
                         "<memoryBacking> with <source type='file'/>, "
                         "<access mode='shared'/> and <template/>"),
                       vm->def->name);
        goto endjob;
    }

    if (vm->hasTemplate) {
        virReportError(VIR_ERR_OPERATION_INVALID,
                       _("domain '%s' already holds a template"), vm->def->name);
        goto endjob;
    }

    if (qemuTemplateCreateCheckDevices(vm->def) < 0 ||
        !qemuMigrationSrcIsAllowed(vm, false, VIR_ASYNC_JOB_SAVE, 0))
        goto endjob;

    path = qemuTemplateImagePath(vm->def);
    partial = g_strdup_printf("%s.partial", path);

    if (virDomainObjGetState(vm, NULL) == VIR_DOMAIN_RUNNING) {
        was_running = true;
        if (qemuProcessStopCPUs(driver, vm, VIR_DOMAIN_PAUSED_SAVE,
                                VIR_ASYNC_JOB_SAVE) < 0)
            goto endjob;

        if (virDomainObjCheckActive(vm) < 0)
            goto endjob;
    }

    if (!(xml = qemuDomainDefFormatLive(driver, priv->qemuCaps, vm->def,
                                        priv->origCPU, true, true)) ||
        !(cookie = qemuDomainSaveCookieNew(vm)))
        goto endjob;
    cookie->ignoreShared = true;

    /* 0: a raw, uncompressed stream */
    if (!(data = virQEMUSaveDataNew(g_steal_pointer(&xml), cookie, was_running,
                                    0, driver->xmlopt)))
        goto endjob;

    if (qemuSaveImageCreate(driver, vm, partial, data, NULL, true, 0,
                            VIR_ASYNC_JOB_SAVE) < 0 ||
        qemuTemplateSync(driver, vm, partial) < 0)
        goto endjob;

    if (rename(partial, path) < 0) {
        virReportSystemError(errno, _("unable to publish template image '%s'"),
                             path);
        goto endjob;
    }
    vm->hasTemplate = true;

    qemuProcessStop(driver, vm, VIR_DOMAIN_SHUTOFF_SAVED, VIR_ASYNC_JOB_SAVE, 0);
    virDomainAuditStop(vm, "saved");
    event = virDomainEventLifecycleNewFromObj(vm, VIR_DOMAIN_EVENT_STOPPED,
                                              VIR_DOMAIN_EVENT_STOPPED_SAVED);
    ret = 0;

 endjob:
    if (ret < 0) {
        if (partial && unlink(partial) < 0 && errno != ENOENT)
            VIR_WARN("Unable to remove '%s': %s", partial, g_strerror(errno));

        if (was_running && virDomainObjIsActive(vm)) {
            virErrorPtr orig_err;

            virErrorPreserveLast(&orig_err);
            if (qemuProcessStartCPUs(driver, vm, VIR_DOMAIN_RUNNING_SAVE_CANCELED,
                                     VIR_ASYNC_JOB_SAVE) < 0)
                VIR_WARN("Unable to resume guest CPUs after template-create failure");
            virErrorRestore(&orig_err);
        }
    }
    virDomainObjEndAsyncJob(vm);
    virQEMUSaveDataFree(data);
    virObjectEventStateQueue(driver->domainEventState, event);
    return ret;
}


/* A file that one domain writes must not be shared by its clones: replace
 * the template's name in the file name by the clone's, or prefix it. */
static void
qemuTemplateCloneChrSourcePath(virDomainChrSourceDef *src,
                               const char *tmplName,
                               const char *cloneName)
{
    char **paths[] = { NULL, &src->logfile };
    size_t i;

    if (src->type == VIR_DOMAIN_CHR_TYPE_FILE)
        paths[0] = &src->data.file.path;

    for (i = 0; i < G_N_ELEMENTS(paths); i++) {
        g_autofree char *dir = NULL;
        g_autofree char *base = NULL;
        g_autofree char *newbase = NULL;

        if (!paths[i] || !*paths[i])
            continue;

        dir = g_path_get_dirname(*paths[i]);
        base = g_path_get_basename(*paths[i]);
        if (strstr(base, tmplName))
            newbase = virStringReplace(base, tmplName, cloneName);
        else
            newbase = g_strdup_printf("%s-%s", cloneName, base);

        g_free(*paths[i]);
        *paths[i] = g_build_filename(dir, newbase, NULL);
    }
}


static void
qemuTemplateCloneChardevPaths(virDomainDef *def,
                              const char *tmplName)
{
    size_t i;

    for (i = 0; i < def->nserials; i++)
        qemuTemplateCloneChrSourcePath(def->serials[i]->source, tmplName, def->name);
    for (i = 0; i < def->nconsoles; i++)
        qemuTemplateCloneChrSourcePath(def->consoles[i]->source, tmplName, def->name);
    for (i = 0; i < def->nparallels; i++)
        qemuTemplateCloneChrSourcePath(def->parallels[i]->source, tmplName, def->name);
    for (i = 0; i < def->nchannels; i++)
        qemuTemplateCloneChrSourcePath(def->channels[i]->source, tmplName, def->name);
}


static char *
qemuTemplateCloneFreeName(virQEMUDriver *driver,
                          const char *tmplName)
{
    unsigned int n;

    for (n = 1; n < UINT_MAX; n++) {
        g_autofree char *name = g_strdup_printf("%s-clone-%u", tmplName, n);
        virDomainObj *vm;

        if (!(vm = virDomainObjListFindByName(driver->domains, name)))
            return g_steal_pointer(&name);
        virDomainObjEndAPI(&vm);
    }

    virReportError(VIR_ERR_OPERATION_FAILED,
                   _("no free clone name for template '%s'"), tmplName);
    return NULL;
}


/* Builds the clone's definition from the template's. */
static virDomainDef *
qemuTemplateCloneDef(virQEMUDriver *driver,
                     virDomainDef *tmplDef,
                     const char *name,
                     const char *dxml)
{
    g_autoptr(virDomainDef) def = NULL;

    if (dxml) {
        g_autoptr(virDomainDef) abi = NULL;

        if (!(def = virDomainDefParseString(dxml, driver->xmlopt, NULL,
                                            VIR_DOMAIN_DEF_PARSE_INACTIVE)))
            return NULL;

        /* Only the identity of the clone may differ from its template. */
        if (!(abi = qemuDomainDefCopy(driver, NULL, def,
                                      VIR_DOMAIN_XML_MIGRATABLE)))
            return NULL;
        g_free(abi->name);
        abi->name = g_strdup(tmplDef->name);
        memcpy(abi->uuid, tmplDef->uuid, VIR_UUID_BUFLEN);
        memcpy(abi->genid, tmplDef->genid, VIR_UUID_BUFLEN);
        if (!virDomainDefCheckABIStability(tmplDef, abi, driver->xmlopt))
            return NULL;
    } else {
        if (!(def = virDomainDefCopy(tmplDef, driver->xmlopt, NULL, false)))
            return NULL;

        g_free(def->name);
        if (name)
            def->name = g_strdup(name);
        else if (!(def->name = qemuTemplateCloneFreeName(driver, tmplDef->name)))
            return NULL;

        if (virUUIDGenerate(def->uuid) < 0) {
            virReportError(VIR_ERR_INTERNAL_ERROR, "%s",
                           _("failed to generate a UUID for the clone"));
            return NULL;
        }

        qemuTemplateCloneChardevPaths(def, tmplDef->name);
    }

    if (STREQ(def->name, tmplDef->name)) {
        virReportError(VIR_ERR_INVALID_ARG, "%s",
                       _("a clone needs a name of its own"));
        return NULL;
    }

    /* A clone's RAM always maps its template's files privately. */
    if (!def->mem.tmpl)
        def->mem.tmpl = g_new0(virDomainMemoryTemplate, 1);
    g_free(def->mem.tmpl->path);
    def->mem.tmpl->path = g_strdup(tmplDef->mem.tmpl->path);
    def->mem.source = VIR_DOMAIN_MEMORY_SOURCE_FILE;
    def->mem.access = VIR_DOMAIN_MEMORY_ACCESS_PRIVATE;

    return g_steal_pointer(&def);
}


/* QEMU would create a missing RAM file, or map one of the wrong size:
 * either way a clone would run on memory that is not its template's. */
static int
qemuTemplateCheckMemoryFiles(virQEMUDriver *driver,
                             virDomainDef *def)
{
    g_auto(GStrv) files = NULL;
    size_t ncells = virDomainNumaGetNodeCount(def->numa);
    size_t i;

    if (!(files = qemuTemplateMemoryFiles(driver, def)))
        return -1;

    for (i = 0; files[i]; i++) {
        unsigned long long expected;
        struct stat sb;

        if (ncells > 0)
            expected = virDomainNumaGetNodeMemorySize(def->numa, i) * 1024;
        else
            expected = virDomainDefGetMemoryInitial(def) * 1024;

        if (stat(files[i], &sb) < 0) {
            virReportSystemError(errno, _("template RAM file '%s' is not usable"),
                                 files[i]);
            return -1;
        }

        if (!S_ISREG(sb.st_mode) || (unsigned long long) sb.st_size != expected) {
            virReportError(VIR_ERR_OPERATION_FAILED,
                           _("template RAM file '%s' has %lld bytes, the template needs %llu"),
                           files[i], (long long) sb.st_size, expected);
            return -1;
        }
    }

    return 0;
}


/**
 * qemuTemplateClone:
 * @conn: connection
 * @driver: qemu driver
 * @tmpl: domain holding a template, locked
 * @name: name of the clone, or NULL for the first free TEMPLATE-clone-N
 * @dxml: full XML of the clone, or NULL to derive it from the template
 * @flags: VIR_DOMAIN_START_PAUSED or 0
 * @ensureACL: access check of the clone's definition
 *
 * Starts a transient clone of @tmpl from its template image. A job on
 * @tmpl keeps the template from being discarded until the clone runs.
 *
 * Returns the clone, or NULL with an error reported and nothing left.
 */
virDomainPtr
qemuTemplateClone(virConnectPtr conn,
                  virQEMUDriver *driver,
                  virDomainObj *tmpl,
                  const char *name,
                  const char *dxml,
                  unsigned int flags,
                  qemuTemplateEnsureACL ensureACL)
{
    g_autoptr(virDomainDef) tmplDef = NULL;
    g_autoptr(virDomainDef) def = NULL;
    g_autoptr(qemuDomainSaveCookie) cookie = NULL;
    g_autofree char *path = NULL;
    virQEMUSaveData *data = NULL;
    virDomainObj *vm = NULL;
    virDomainPtr clone = NULL;
    int fd = -1;

    if (name && dxml) {
        virReportError(VIR_ERR_INVALID_ARG, "%s",
                       _("the clone's name comes from its XML when one is given"));
        return NULL;
    }

    if (virDomainObjBeginJob(tmpl, VIR_JOB_QUERY) < 0)
        return NULL;

    if (!tmpl->hasTemplate) {
        virReportError(VIR_ERR_OPERATION_INVALID,
                       _("domain '%s' is not a template"), tmpl->def->name);
        goto endjob;
    }

    path = qemuTemplateImagePath(tmpl->def);
    virObjectUnlock(tmpl);

    if ((fd = qemuSaveImageOpen(driver, NULL, path, &tmplDef, &data,
                                false, NULL, false, false)) < 0)
        goto relock;

    if (virSaveCookieParseString(data->cookie, (virObject **)&cookie,
                                 virDomainXMLOptionGetSaveCookie(driver->xmlopt)) < 0)
        goto relock;

    if (!cookie || !cookie->ignoreShared || !qemuTemplateIsProducer(tmplDef)) {
        virReportError(VIR_ERR_OPERATION_INVALID,
                       _("'%s' is not a template image"), path);
        goto relock;
    }

    if (!(def = qemuTemplateCloneDef(driver, tmplDef, name, dxml)) ||
        ensureACL(conn, def) < 0 ||
        qemuTemplateCheckMemoryFiles(driver, def) < 0)
        goto relock;

    if (!(vm = virDomainObjListAdd(driver->domains, &def, driver->xmlopt,
                                   VIR_DOMAIN_OBJ_LIST_ADD_LIVE |
                                   VIR_DOMAIN_OBJ_LIST_ADD_CHECK_LIVE,
                                   NULL)))
        goto relock;

    if (qemuProcessBeginJob(vm, VIR_DOMAIN_JOB_OPERATION_RESTORE, flags) < 0) {
        qemuDomainRemoveInactive(driver, vm, 0, false);
        goto relock;
    }

    if (qemuSaveImageStartVM(conn, driver, vm, &fd, data, path,
                             !!(flags & VIR_DOMAIN_START_PAUSED),
                             false, VIR_ASYNC_JOB_START) == 0)
        clone = virGetDomain(conn, vm->def->name, vm->def->uuid, vm->def->id);

    qemuProcessEndJob(vm);
    if (!clone)
        qemuDomainRemoveInactive(driver, vm, 0, false);

 relock:
    VIR_FORCE_CLOSE(fd);
    virQEMUSaveDataFree(data);
    virDomainObjEndAPI(&vm);
    virObjectLock(tmpl);
 endjob:
    virDomainObjEndJob(tmpl);
    return clone;
}
