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

#include <unistd.h>

#include "qemu_template.h"
#include "qemu_migration_params.h"
#include "virfile.h"
#include "virlog.h"

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
 * @def: domain definition with template memory
 * @qemuCaps: capabilities of the domain's QEMU
 *
 * Lists the RAM files of @def's template memory: one per RAM backend,
 * named after its id ('ram-nodeN' per NUMA cell, or the machine's
 * default RAM id). Validation guarantees these are the only ones.
 *
 * Returns a NULL terminated list of absolute paths, or NULL with an error
 * reported.
 */
char **
qemuTemplateMemoryFiles(const virDomainDef *def,
                        virQEMUCaps *qemuCaps)
{
    size_t ncells = virDomainNumaGetNodeCount(def->numa);
    const char *defaultRAMid;
    g_auto(GStrv) files = NULL;
    size_t i;

    if (ncells > 0) {
        files = g_new0(char *, ncells + 1);
        for (i = 0; i < ncells; i++)
            files[i] = g_strdup_printf("%s/ram-node%zu", def->mem.tmpl->path, i);
        return g_steal_pointer(&files);
    }

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
 * @def: domain definition of a template producer
 * @qemuCaps: capabilities of the domain's QEMU
 *
 * Removes the RAM files of @def's template memory and their directory
 * if that is left empty. Only the files libvirt asked QEMU to create are
 * touched: the directory may be the user's. Errors are only logged, as
 * this runs when the domain stops.
 */
void
qemuTemplateMemoryRemove(const virDomainDef *def,
                         virQEMUCaps *qemuCaps)
{
    g_auto(GStrv) files = NULL;
    char **file;

    if (!(files = qemuTemplateMemoryFiles(def, qemuCaps))) {
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
