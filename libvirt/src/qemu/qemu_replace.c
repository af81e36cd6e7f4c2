/*
 * qemu_replace.c: replacing a running domain's emulator process
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

#include <sys/socket.h>
#include <unistd.h>

#include "qemu_replace.h"
#include "qemu_agent.h"
#include "qemu_domain.h"
#include "qemu_migration.h"
#include "qemu_migration_params.h"
#include "qemu_process.h"
#include "qemu_security.h"
#include "qemu_template.h"
#include "domain_audit.h"
#include "virerror.h"
#include "viralloc.h"
#include "virfile.h"
#include "virlog.h"
#include "virpidfile.h"
#include "virprocess.h"
#include "virtime.h"

#define VIR_FROM_THIS VIR_FROM_QEMU

VIR_LOG_INIT("qemu.qemu_replace");


/* Devices whose host side the running process holds in a way a second
 * process cannot share while both exist. */
static int
qemuReplaceCheckDevices(const virDomainDef *def)
{
    size_t i;

    for (i = 0; i < def->nnets; i++) {
        const virDomainNetDef *net = def->nets[i];
        char macstr[VIR_MAC_STRING_BUFLEN];

        if (virDomainNetGetActualType(net) != VIR_DOMAIN_NET_TYPE_USER ||
            net->backend.type != VIR_DOMAIN_NET_BACKEND_DEFAULT) {
            virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                           _("interface '%1$s' cannot be handed over to another emulator process: only <interface type='user'/> with QEMU's own backend can"),
                           virMacAddrFormat(&net->mac, macstr));
            return -1;
        }
    }

    if (def->nhostdevs > 0) {
        virReportError(VIR_ERR_OPERATION_UNSUPPORTED, "%s",
                       _("host devices cannot be handed over to another emulator process"));
        return -1;
    }

    for (i = 0; i < def->nfss; i++) {
        if (def->fss[i]->fsdriver == VIR_DOMAIN_FS_DRIVER_TYPE_VIRTIOFS) {
            virReportError(VIR_ERR_OPERATION_UNSUPPORTED, "%s",
                           _("virtiofs filesystems cannot be handed over to another emulator process"));
            return -1;
        }
    }

    for (i = 0; i < def->ntpms; i++) {
        if (def->tpms[i]->type == VIR_DOMAIN_TPM_TYPE_EMULATOR) {
            virReportError(VIR_ERR_OPERATION_UNSUPPORTED, "%s",
                           _("an emulated TPM cannot be handed over to another emulator process"));
            return -1;
        }
    }

    if (def->vsock) {
        virReportError(VIR_ERR_OPERATION_UNSUPPORTED, "%s",
                       _("a vsock device cannot be handed over to another emulator process: the running one holds its CID"));
        return -1;
    }

    for (i = 0; i < def->ndisks; i++) {
        virStorageType type = virStorageSourceGetActualType(def->disks[i]->src);

        if (type == VIR_STORAGE_TYPE_VHOST_USER ||
            type == VIR_STORAGE_TYPE_VHOST_VDPA) {
            virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                           _("disk '%1$s' cannot be handed over to another emulator process"),
                           def->disks[i]->dst);
            return -1;
        }
    }

    for (i = 0; i < def->ngraphics; i++) {
        const virDomainGraphicsDef *gfx = def->graphics[i];
        size_t j;

        for (j = 0; j < gfx->nListens; j++) {
            if (gfx->listens[j].type == VIR_DOMAIN_GRAPHICS_LISTEN_TYPE_ADDRESS ||
                gfx->listens[j].type == VIR_DOMAIN_GRAPHICS_LISTEN_TYPE_NETWORK) {
                virReportError(VIR_ERR_OPERATION_UNSUPPORTED, "%s",
                               _("graphics listening on a TCP port cannot be handed over to another emulator process: the running one holds the port"));
                return -1;
            }
        }
    }

    return 0;
}


/* RAM in memfds moves by its descriptors (cpr-transfer), which the
 * running process can send only if it keeps all of its RAM in them. */
static int
qemuReplaceCheckCPR(virDomainObj *vm)
{
    qemuDomainObjPrivate *priv = vm->privateData;
    bool shared = false;
    int rc;

    if (!virQEMUCapsGet(priv->qemuCaps, QEMU_CAPS_MIGRATE_CPR_TRANSFER)) {
        virReportError(VIR_ERR_OPERATION_UNSUPPORTED, "%s",
                       _("the emulator process of the domain cannot hand RAM in memfds over: it lacks the cpr-transfer migration mode"));
        return -1;
    }

    if (qemuDomainObjEnterMonitorAsync(vm, VIR_ASYNC_JOB_EMULATOR_REPLACE) < 0)
        return -1;
    rc = qemuMonitorGetMachineAuxRAMShare(priv->mon, &shared);
    qemuDomainObjExitMonitor(vm);
    if (rc < 0)
        return -1;

    if (!shared) {
        virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                       _("domain '%1$s' was started without its emulator's own RAM in memfds (aux-ram-share): shut it down and start it again to replace its emulator"),
                       vm->def->name);
        return -1;
    }

    return 0;
}


static int
qemuReplaceCheck(virQEMUDriver *driver,
                 virDomainObj *vm,
                 const char *emulator,
                 virQEMUCaps **newCaps)
{
    g_autoptr(virQEMUCaps) caps = NULL;

    if (qemuTemplateIsClone(vm->def)) {
        virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                       _("domain '%1$s' is a clone of a VM template: its RAM is private to its emulator process"),
                       vm->def->name);
        return -1;
    }

    if (virDomainDefCheckSharedRAM(vm->def) < 0 ||
        qemuReplaceCheckDevices(vm->def) < 0)
        return -1;

    if (qemuDomainHasSharedMemfdRAM(vm->def) &&
        qemuReplaceCheckCPR(vm) < 0)
        return -1;

    /* QEMU touches preallocated RAM as it starts, under the running guest */
    if (vm->def->mem.allocation == VIR_DOMAIN_MEMORY_ALLOCATION_IMMEDIATE) {
        virReportError(VIR_ERR_OPERATION_UNSUPPORTED, "%s",
                       _("RAM allocated in full at start (<allocation mode='immediate'/>) cannot be mapped by a second emulator process under the running guest"));
        return -1;
    }

    if (!qemuDomainHasSharedMemfdRAM(vm->def) &&
        !qemuMigrationCapsGet(vm, QEMU_MIGRATION_CAP_X_IGNORE_SHARED)) {
        virReportError(VIR_ERR_OPERATION_UNSUPPORTED, "%s",
                       _("QEMU does not support the 'x-ignore-shared' migration capability"));
        return -1;
    }

    if (!qemuMigrationSrcIsAllowed(vm, false, VIR_ASYNC_JOB_EMULATOR_REPLACE, 0))
        return -1;

    if (emulator && !virFileIsExecutable(emulator)) {
        virReportError(VIR_ERR_INVALID_ARG,
                       _("emulator '%1$s' is not an executable file"), emulator);
        return -1;
    }

    /* probed again if the binary changed since it was last */
    if (!(caps = virQEMUCapsCacheLookup(driver->qemuCapsCache,
                                        emulator ? emulator : vm->def->emulator)))
        return -1;

    if (qemuDomainHasSharedMemfdRAM(vm->def) &&
        !virQEMUCapsGet(caps, QEMU_CAPS_MIGRATE_CPR_TRANSFER)) {
        virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                       _("emulator '%1$s' cannot take over RAM in memfds: it lacks the cpr-transfer migration mode"),
                       emulator ? emulator : vm->def->emulator);
        return -1;
    }

    if (!virQEMUCapsIsMachineSupported(caps, vm->def->virtType,
                                       vm->def->os.machine)) {
        virReportError(VIR_ERR_CONFIG_UNSUPPORTED,
                       _("emulator '%1$s' does not support machine type '%2$s'"),
                       emulator ? emulator : vm->def->emulator,
                       vm->def->os.machine);
        return -1;
    }

    *newCaps = g_steal_pointer(&caps);
    return 0;
}


/* The emulator process being replaced: the daemon no longer talks to it,
 * but can take the guest back to it until the new one runs the guest. */
typedef struct _qemuReplaceOld qemuReplaceOld;
struct _qemuReplaceOld {
    pid_t pid;
    qemuMonitor *mon;
    virQEMUCaps *qemuCaps;
    virBitmap *migrationCaps;
    virDomainChrSourceDef *monConfig;
    char *emulator;
};


static void
qemuReplaceDetachOld(virDomainObj *vm,
                     qemuReplaceOld *old)
{
    qemuDomainObjPrivate *priv = vm->privateData;

    old->pid = vm->pid;
    priv->replacedPid = vm->pid;
    /* still registered: the device state leaves through it */
    old->mon = g_steal_pointer(&priv->mon);
    old->qemuCaps = g_steal_pointer(&priv->qemuCaps);
    old->migrationCaps = g_steal_pointer(&priv->migrationCaps);

    if (priv->agent) {
        qemuAgentClose(priv->agent);
        priv->agent = NULL;
        priv->agentError = false;
    }
}


/* Swaps the monitor of the domain, and what the domain knows of its
 * process's capabilities, with those @old keeps: the monitor functions of
 * the domain then talk to the other process. */
static void
qemuReplaceSwapMonitor(virDomainObj *vm,
                       qemuReplaceOld *old)
{
    qemuDomainObjPrivate *priv = vm->privateData;
    qemuMonitor *mon = priv->mon;
    virQEMUCaps *qemuCaps = priv->qemuCaps;
    virBitmap *migrationCaps = priv->migrationCaps;

    priv->mon = old->mon;
    priv->qemuCaps = old->qemuCaps;
    priv->migrationCaps = old->migrationCaps;
    old->mon = mon;
    old->qemuCaps = qemuCaps;
    old->migrationCaps = migrationCaps;
}


/* The new process gets a monitor socket of its own: the old one's stays
 * where the daemon finds it again if the domain goes back to it. */
static void
qemuReplaceMonitorConfig(virQEMUDriver *driver,
                         virDomainObj *vm,
                         qemuReplaceOld *old)
{
    qemuDomainObjPrivate *priv = vm->privateData;
    g_autofree char *first = g_strdup_printf("%s/monitor.sock", priv->libDir);
    const char *name = "monitor.sock";

    if (STREQ(priv->monConfig->data.nix.path, first))
        name = "monitor-replaced.sock";

    old->monConfig = g_steal_pointer(&priv->monConfig);
    priv->replacedMonitor = g_strdup(old->monConfig->data.nix.path);
    priv->monConfig = virDomainChrSourceDefNew(driver->xmlopt);
    priv->monConfig->type = VIR_DOMAIN_CHR_TYPE_UNIX;
    priv->monConfig->data.nix.listen = true;
    priv->monConfig->data.nix.path = g_strdup_printf("%s/%s", priv->libDir, name);
}


/* Removes the monitor socket of a process that no longer runs. */
static void
qemuReplaceMonitorConfigDrop(virDomainChrSourceDef **monConfig)
{
    if (!*monConfig)
        return;

    if (unlink((*monConfig)->data.nix.path) < 0 && errno != ENOENT)
        VIR_WARN("Unable to remove '%s': %s",
                 (*monConfig)->data.nix.path, g_strerror(errno));
    g_clear_pointer(monConfig, virObjectUnref);
}


/* The domain has a single process again: nothing of another one to record. */
static void
qemuReplaceForgetOld(qemuDomainObjPrivate *priv)
{
    priv->replacedPid = 0;
    VIR_FREE(priv->replacedMonitor);
    priv->replaceSwitched = false;
}


/* Kills the new process, if it was started, and gives the domain back to
 * the old one. */
static void
qemuReplaceAttachOld(virQEMUDriver *driver,
                     virDomainObj *vm,
                     qemuReplaceOld *old)
{
    qemuDomainObjPrivate *priv = vm->privateData;
    g_autoptr(virQEMUDriverConfig) cfg = virQEMUDriverGetConfig(driver);

    if (priv->mon) {
        qemuMonitorClose(priv->mon);
        priv->mon = NULL;
    }
    if (priv->agent) {
        qemuAgentClose(priv->agent);
        priv->agent = NULL;
    }
    if (vm->pid > 0 && vm->pid != old->pid &&
        virProcessKillPainfully(vm->pid, true) < 0)
        VIR_WARN("Unable to kill the new emulator process %lld of domain '%s'",
                 (long long)vm->pid, vm->def->name);

    vm->pid = old->pid;
    priv->mon = g_steal_pointer(&old->mon);

    virObjectUnref(priv->qemuCaps);
    priv->qemuCaps = g_steal_pointer(&old->qemuCaps);
    virBitmapFree(priv->migrationCaps);
    priv->migrationCaps = g_steal_pointer(&old->migrationCaps);
    if (old->monConfig) {
        qemuReplaceMonitorConfigDrop(&priv->monConfig);
        priv->monConfig = g_steal_pointer(&old->monConfig);
    }
    if (old->emulator) {
        g_free(vm->def->emulator);
        vm->def->emulator = g_steal_pointer(&old->emulator);
    }

    qemuReplaceForgetOld(priv);

    if (virPidFileWritePath(priv->pidfile, vm->pid) < 0)
        VIR_WARN("Unable to write the PID file of domain '%s'", vm->def->name);
    if (virDomainObjSave(vm, driver->xmlopt, cfg->stateDir) < 0)
        VIR_WARN("Unable to save the status of domain '%s'", vm->def->name);

    /* its EOF was not the domain's while it was detached */
    if (virProcessKill(vm->pid, 0) < 0) {
        VIR_WARN("The emulator process of domain '%s' died while it was being replaced",
                 vm->def->name);
        qemuProcessStop(driver, vm, VIR_DOMAIN_SHUTOFF_CRASHED,
                        VIR_ASYNC_JOB_EMULATOR_REPLACE, 0);
        virDomainAuditStop(vm, "failed");
        virObjectEventStateQueue(driver->domainEventState,
                                 virDomainEventLifecycleNewFromObj(vm,
                                     VIR_DOMAIN_EVENT_STOPPED,
                                     VIR_DOMAIN_EVENT_STOPPED_FAILED));
    }
}


/* Starts loading the device state in the new process, which is the
 * domain's: it arrives once the old process sends it. */
static int
qemuReplaceStartIncoming(virDomainObj *vm,
                         const char *uri,
                         qemuMigrationParams *migParams)
{
    qemuDomainObjPrivate *priv = vm->privateData;
    virTristateBool exitOnError = VIR_TRISTATE_BOOL_ABSENT;
    int rc;

    /* a failed load is reported by the process, which stays to say why */
    if (virQEMUCapsGet(priv->qemuCaps, QEMU_CAPS_MIGRATE_INCOMING_EXIT_ON_ERROR))
        exitOnError = VIR_TRISTATE_BOOL_NO;

    if (qemuMigrationParamsApply(vm, VIR_ASYNC_JOB_EMULATOR_REPLACE,
                                 migParams, 0) < 0 ||
        qemuDomainObjEnterMonitorAsync(vm, VIR_ASYNC_JOB_EMULATOR_REPLACE) < 0)
        return -1;

    rc = qemuMonitorSetDBusVMStateIdList(priv->mon, priv->dbusVMStateIds);
    if (rc == 0)
        rc = qemuMonitorMigrateIncoming(priv->mon, uri, exitOnError);
    qemuDomainObjExitMonitor(vm);
    return rc;
}


/* The device state is a few hundred kilobytes: a process that has not
 * moved it by then is stuck, and the guest must not stay paused. */
#define QEMU_REPLACE_MIGRATION_TIMEOUT_MS (60 * 1000)

/* Waits for the migration of the domain's process to complete, @sending
 * the device state or loading it: asked, as the migration events of both
 * processes reach the domain. */
static int
qemuReplaceWaitForMigration(virDomainObj *vm,
                            bool sending)
{
    qemuDomainObjPrivate *priv = vm->privateData;
    unsigned long long deadline;

    if (virTimeMillisNow(&deadline) < 0)
        return -1;
    deadline += QEMU_REPLACE_MIGRATION_TIMEOUT_MS;

    while (true) {
        qemuMonitorMigrationStats stats = { 0 };
        g_autofree char *error = NULL;
        unsigned long long now;
        int rc;

        if (qemuDomainObjEnterMonitorAsync(vm, VIR_ASYNC_JOB_EMULATOR_REPLACE) < 0)
            return -1;
        rc = qemuMonitorGetMigrationStats(priv->mon, &stats, &error);
        qemuDomainObjExitMonitor(vm);
        if (rc < 0)
            return -1;

        switch ((qemuMonitorMigrationStatus) stats.status) {
        case QEMU_MONITOR_MIGRATION_STATUS_COMPLETED:
            return 0;

        case QEMU_MONITOR_MIGRATION_STATUS_ERROR:
        case QEMU_MONITOR_MIGRATION_STATUS_CANCELLING:
        case QEMU_MONITOR_MIGRATION_STATUS_CANCELLED:
            if (sending)
                virReportError(VIR_ERR_OPERATION_FAILED,
                               _("the emulator process being replaced failed to send the device state: %1$s"),
                               NULLSTR(error));
            else
                virReportError(VIR_ERR_OPERATION_FAILED,
                               _("the new emulator process failed to load the device state: %1$s"),
                               NULLSTR(error));
            return -1;

        case QEMU_MONITOR_MIGRATION_STATUS_INACTIVE:
        case QEMU_MONITOR_MIGRATION_STATUS_SETUP:
        case QEMU_MONITOR_MIGRATION_STATUS_ACTIVE:
        case QEMU_MONITOR_MIGRATION_STATUS_PRE_SWITCHOVER:
        case QEMU_MONITOR_MIGRATION_STATUS_DEVICE:
        case QEMU_MONITOR_MIGRATION_STATUS_POSTCOPY:
        case QEMU_MONITOR_MIGRATION_STATUS_POSTCOPY_PAUSED:
        case QEMU_MONITOR_MIGRATION_STATUS_POSTCOPY_RECOVER:
        case QEMU_MONITOR_MIGRATION_STATUS_POSTCOPY_RECOVER_SETUP:
        case QEMU_MONITOR_MIGRATION_STATUS_WAIT_UNPLUG:
        case QEMU_MONITOR_MIGRATION_STATUS_LAST:
            break;
        }

        if (virTimeMillisNow(&now) < 0)
            return -1;
        if (now > deadline) {
            virReportError(VIR_ERR_OPERATION_TIMEOUT, "%s",
                           _("the device state did not move from the old emulator process to the new one in time"));
            return -1;
        }
        if (virDomainObjWaitUntil(vm, now + 5) < 0)
            return -1;
        if (virDomainObjCheckActive(vm) < 0)
            return -1;
    }
}


/* What the sending of RAM descriptors (cpr-transfer) to the new process
 * needs, and what it did. */
typedef struct _qemuReplaceCPR qemuReplaceCPR;
struct _qemuReplaceCPR {
    qemuReplaceOld *old;
    char *statePath;
    char *cprPath;
    bool *wasRunning;
    bool modeSet;
};


/* Waits for the new process to listen on its cpr channel. Returns 1 once
 * it does, 0 if the process exited (its start reports why), -1 on error. */
static int
qemuReplaceWaitForCPRChannel(virDomainObj *vm,
                             const char *path)
{
    unsigned long long deadline;

    if (virTimeMillisNow(&deadline) < 0)
        return -1;
    deadline += QEMU_REPLACE_MIGRATION_TIMEOUT_MS;

    while (!virFileExists(path)) {
        unsigned long long now;

        if (virProcessKill(vm->pid, 0) < 0)
            return 0;
        if (virTimeMillisNow(&now) < 0)
            return -1;
        if (now > deadline) {
            virReportError(VIR_ERR_OPERATION_TIMEOUT, "%s",
                           _("the new emulator process did not get ready for the RAM in time"));
            return -1;
        }
        if (virDomainObjWaitUntil(vm, now + 5) < 0)
            return -1;
    }

    return 1;
}


/* Pauses the guest, and has the old process send the descriptors of its
 * RAM to the new one, which waits for them before it creates its devices
 * and its monitor; the device state follows once the new process asks
 * for it (qemuReplaceStartIncoming()). */
static int
qemuReplaceSendCPR(virDomainObj *vm,
                   void *opaque)
{
    qemuReplaceCPR *cpr = opaque;
    qemuDomainObjPrivate *priv = vm->privateData;
    int ret = -1;
    int rc;

    if ((rc = qemuReplaceWaitForCPRChannel(vm, cpr->cprPath)) <= 0)
        return rc;

    qemuReplaceSwapMonitor(vm, cpr->old);

    if (virDomainObjGetState(vm, NULL) == VIR_DOMAIN_RUNNING) {
        *cpr->wasRunning = true;
        if (qemuProcessStopCPUs(priv->driver, vm, VIR_DOMAIN_PAUSED_MIGRATION,
                                VIR_ASYNC_JOB_EMULATOR_REPLACE) < 0)
            goto cleanup;
    }

    if (qemuDomainObjEnterMonitorAsync(vm, VIR_ASYNC_JOB_EMULATOR_REPLACE) < 0)
        goto cleanup;
    rc = qemuMonitorSetMigrationMode(priv->mon, "cpr-transfer");
    if (rc == 0) {
        cpr->modeSet = true;
        rc = qemuMonitorMigrateCPRTransfer(priv->mon, cpr->statePath, cpr->cprPath);
    }
    qemuDomainObjExitMonitor(vm);
    if (rc < 0)
        goto cleanup;

    ret = 0;

 cleanup:
    qemuReplaceSwapMonitor(vm, cpr->old);
    return ret;
}


/**
 * qemuReplaceCancelCPR:
 * @vm: domain whose process sent, or was about to send, its RAM by its
 *      descriptors to a new process that does not run the guest
 * @asyncJob: the job the domain is in
 *
 * Cancels the cpr-transfer migration of the process, waits for it to
 * stop, and turns the migration mode back to normal for later saves and
 * migrations of the domain.
 */
void
qemuReplaceCancelCPR(virDomainObj *vm,
                     virDomainAsyncJob asyncJob)
{
    qemuDomainObjPrivate *priv = vm->privateData;
    unsigned long long deadline;
    int rc;

    if (qemuDomainObjEnterMonitorAsync(vm, asyncJob) < 0)
        return;
    rc = qemuMonitorMigrateCancel(priv->mon);
    qemuDomainObjExitMonitor(vm);
    if (rc < 0 || virTimeMillisNow(&deadline) < 0)
        return;
    deadline += QEMU_REPLACE_MIGRATION_TIMEOUT_MS;

    while (true) {
        qemuMonitorMigrationStats stats = { 0 };
        unsigned long long now;

        if (qemuDomainObjEnterMonitorAsync(vm, asyncJob) < 0)
            return;
        rc = qemuMonitorGetMigrationStats(priv->mon, &stats, NULL);
        qemuDomainObjExitMonitor(vm);
        if (rc < 0)
            return;

        if (stats.status != QEMU_MONITOR_MIGRATION_STATUS_SETUP &&
            stats.status != QEMU_MONITOR_MIGRATION_STATUS_ACTIVE &&
            stats.status != QEMU_MONITOR_MIGRATION_STATUS_DEVICE &&
            stats.status != QEMU_MONITOR_MIGRATION_STATUS_CANCELLING)
            break;

        if (virTimeMillisNow(&now) < 0 || now > deadline ||
            virDomainObjWaitUntil(vm, now + 5) < 0 ||
            virDomainObjCheckActive(vm) < 0)
            return;
    }

    if (qemuDomainObjEnterMonitorAsync(vm, asyncJob) < 0)
        return;
    if (qemuMonitorSetMigrationMode(priv->mon, "normal") < 0)
        VIR_WARN("Unable to set the migration mode of domain '%s' back to normal",
                 vm->def->name);
    qemuDomainObjExitMonitor(vm);
}


static void
qemuReplaceOldClear(qemuReplaceOld *old)
{
    if (old->mon)
        qemuMonitorClose(old->mon);
    if (old->pid > 0 && virProcessKillPainfully(old->pid, true) < 0)
        VIR_WARN("Unable to kill the old emulator process %lld",
                 (long long)old->pid);
    qemuReplaceMonitorConfigDrop(&old->monConfig);
    virObjectUnref(old->qemuCaps);
    virBitmapFree(old->migrationCaps);
    g_free(old->emulator);
}


/**
 * qemuReplaceEmulator:
 * @conn: connection of the caller
 * @driver: qemu driver
 * @vm: running or paused domain
 * @emulator: emulator binary to run @vm on, or NULL for its own
 *
 * Replaces the emulator process of @vm with a new one started from the
 * emulator binary as installed now, which maps the guest's RAM where it
 * is. The new process is launched, waiting for the device state, while
 * the old one still runs the guest; then the guest pauses while the old
 * process sends the device state (x-ignore-shared) over a socket pair to
 * the new one, which resumes it. On any failure until then, the new
 * process is killed and the old one resumes the guest.
 *
 * Returns 0 on success, -1 with an error reported otherwise.
 */
int
qemuReplaceEmulator(virConnectPtr conn,
                    virQEMUDriver *driver,
                    virDomainObj *vm,
                    const char *emulator)
{
    qemuDomainObjPrivate *priv = vm->privateData;
    g_autoptr(virQEMUDriverConfig) cfg = virQEMUDriverGetConfig(driver);
    g_autoptr(qemuMigrationParams) migParams = qemuMigrationParamsNew();
    g_autoptr(virQEMUCaps) newCaps = NULL;
    qemuProcessIncomingDef *incoming = NULL;
    qemuReplaceOld old = { 0 };
    qemuReplaceCPR cpr = { .old = &old };
    bool byDescriptors = qemuDomainHasSharedMemfdRAM(vm->def);
    bool wasRunning = false;
    bool detached = false;
    bool switched = false;
    bool onOld = false;
    int pair[2] = { -1, -1 };
    int ret = -1;

    if (virDomainObjBeginAsyncJob(vm, VIR_ASYNC_JOB_EMULATOR_REPLACE,
                                  VIR_DOMAIN_JOB_OPERATION_EMULATOR_REPLACE, 0) < 0)
        return -1;

    /* nothing else talks to the processes while they change */
    qemuDomainObjSetAsyncJobMask(vm, VIR_JOB_NONE);

    if (virDomainObjCheckActive(vm) < 0 ||
        qemuReplaceCheck(driver, vm, emulator, &newCaps) < 0)
        goto endjob;

    qemuDomainJobSetStatsType(vm->job->current,
                              QEMU_DOMAIN_JOB_STATS_TYPE_MIGRATION);

    if (byDescriptors) {
        /* the new process listens on both, in the domain's own directory */
        cpr.statePath = g_strdup_printf("%s/replace-state.sock", priv->libDir);
        cpr.cprPath = g_strdup_printf("%s/replace-cpr.sock", priv->libDir);
        cpr.wasRunning = &wasRunning;
        if ((unlink(cpr.statePath) < 0 && errno != ENOENT) ||
            (unlink(cpr.cprPath) < 0 && errno != ENOENT)) {
            virReportSystemError(errno, "%s",
                                 _("unable to remove a stale socket of a replaced emulator"));
            goto endjob;
        }
    } else {
        qemuMigrationParamsSetIgnoreShared(migParams);

        /* labelled as the sockets the domain's QEMU uses for a migration */
        if (qemuSecuritySetSocketLabel(driver->securityManager, vm->def) < 0)
            goto endjob;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) {
            virReportSystemError(errno, "%s",
                                 _("unable to create a socket pair for the device state"));
            ignore_value(qemuSecurityClearSocketLabel(driver->securityManager, vm->def));
            goto endjob;
        }
        if (qemuSecurityClearSocketLabel(driver->securityManager, vm->def) < 0)
            goto endjob;
    }

    qemuReplaceDetachOld(vm, &old);
    detached = true;

    priv->qemuCaps = g_steal_pointer(&newCaps);
    if (emulator) {
        old.emulator = g_steal_pointer(&vm->def->emulator);
        vm->def->emulator = g_strdup(emulator);
    }

    if (byDescriptors) {
        g_autofree char *uri = g_strdup_printf("unix:%s", cpr.statePath);

        if (!(incoming = qemuProcessIncomingDefNew(driver, vm, NULL, uri,
                                                   &pair[0], NULL, NULL,
                                                   migParams)))
            goto endjob;
        incoming->cprPath = g_strdup(cpr.cprPath);
        incoming->cprSend = qemuReplaceSendCPR;
        incoming->cprSendOpaque = &cpr;
    } else if (!(incoming = qemuProcessIncomingDefNew(driver, vm, NULL, "stdio",
                                                      &pair[0], NULL, NULL,
                                                      migParams))) {
        goto endjob;
    }

    qemuReplaceMonitorConfig(driver, vm, &old);

    if (qemuProcessPrepareHostReplace(vm) < 0 ||
        qemuProcessLaunch(conn, driver, vm, VIR_ASYNC_JOB_EMULATOR_REPLACE,
                          incoming, NULL, VIR_NETDEV_VPORT_PROFILE_OP_RESTORE,
                          VIR_QEMU_PROCESS_START_PAUSED |
                          VIR_QEMU_PROCESS_START_REPLACE) < 0 ||
        qemuReplaceStartIncoming(vm, incoming->uri, migParams) < 0)
        goto endjob;
    VIR_FORCE_CLOSE(pair[0]);

    /* the guest pauses from here until the new process resumes it; with
     * RAM sent by its descriptors, it paused during the launch */
    qemuReplaceSwapMonitor(vm, &old);
    onOld = true;

    if (!byDescriptors &&
        virDomainObjGetState(vm, NULL) == VIR_DOMAIN_RUNNING) {
        wasRunning = true;
        if (qemuProcessStopCPUs(driver, vm, VIR_DOMAIN_PAUSED_MIGRATION,
                                VIR_ASYNC_JOB_EMULATOR_REPLACE) < 0)
            goto endjob;
    }

    if (!byDescriptors &&
        qemuMigrationSrcToFile(driver, vm, NULL, &pair[1], NULL, migParams, 0,
                               VIR_ASYNC_JOB_EMULATOR_REPLACE) < 0)
        goto endjob;

    if (qemuReplaceWaitForMigration(vm, true) < 0)
        goto endjob;

    qemuReplaceSwapMonitor(vm, &old);
    onOld = false;

    if (qemuReplaceWaitForMigration(vm, false) < 0)
        goto endjob;

    /* The old process sent the device state and cannot run the guest on:
     * a daemon that dies from here finds the guest in the new one. */
    priv->replaceSwitched = true;
    if (virDomainObjSave(vm, driver->xmlopt, cfg->stateDir) < 0)
        goto endjob;
    /* no way back: the new process may run the guest even if resuming it
     * seems to fail */
    switched = true;

    /* the RAM goes into the stream again for whatever saves it later */
    if (qemuMigrationParamsClearIgnoreShared(vm, VIR_ASYNC_JOB_EMULATOR_REPLACE) < 0 ||
        (wasRunning &&
         qemuProcessStartCPUs(driver, vm, VIR_DOMAIN_RUNNING_MIGRATED,
                              VIR_ASYNC_JOB_EMULATOR_REPLACE) < 0))
        goto endjob;

    if (wasRunning)
        qemuDomainJobDataUpdateDowntime(vm->job->current);

    /* the new process runs the guest from here on */
    detached = false;
    qemuReplaceOldClear(&old);
    qemuReplaceForgetOld(priv);
    qemuMonitorSetDomainLog(priv->mon, NULL, NULL, NULL);

    if (!wasRunning)
        virDomainObjSetState(vm, VIR_DOMAIN_PAUSED, VIR_DOMAIN_PAUSED_USER);

    if (qemuProcessRefreshState(driver, vm, VIR_ASYNC_JOB_EMULATOR_REPLACE) < 0)
        VIR_WARN("Unable to refresh the device state of domain '%s'", vm->def->name);

    if (virDomainObjSave(vm, driver->xmlopt, cfg->stateDir) < 0)
        VIR_WARN("Unable to save the status of domain '%s'", vm->def->name);

    /* the whole job, not only the sending of the device state, which
     * completed the job statistics first */
    qemuDomainJobDataUpdateTime(vm->job->current);
    g_clear_pointer(&vm->job->completed, virDomainJobDataFree);
    vm->job->completed = virDomainJobDataCopy(vm->job->current);
    vm->job->completed->status = VIR_DOMAIN_JOB_STATUS_COMPLETED;
    ret = 0;

 endjob:
    if (onOld)
        qemuReplaceSwapMonitor(vm, &old);

    if (detached && switched) {
        qemuReplaceOldClear(&old);
        qemuReplaceForgetOld(priv);
        if (wasRunning && virDomainObjGetState(vm, NULL) == VIR_DOMAIN_PAUSED)
            virDomainObjSetState(vm, VIR_DOMAIN_PAUSED, VIR_DOMAIN_PAUSED_API_ERROR);
        if (virDomainObjSave(vm, driver->xmlopt, cfg->stateDir) < 0)
            VIR_WARN("Unable to save the status of domain '%s'", vm->def->name);
    } else if (detached) {
        virErrorPtr orig_err;

        virErrorPreserveLast(&orig_err);
        qemuReplaceAttachOld(driver, vm, &old);
        virErrorRestore(&orig_err);
    }

    if (ret < 0 && !switched && virDomainObjIsActive(vm)) {
        virErrorPtr orig_err;

        virErrorPreserveLast(&orig_err);
        if (qemuMigrationParamsClearIgnoreShared(vm, VIR_ASYNC_JOB_EMULATOR_REPLACE) < 0)
            VIR_WARN("Unable to turn x-ignore-shared off for domain '%s'",
                     vm->def->name);
        if (cpr.modeSet)
            qemuReplaceCancelCPR(vm, VIR_ASYNC_JOB_EMULATOR_REPLACE);
        if (wasRunning &&
            virDomainObjGetState(vm, NULL) == VIR_DOMAIN_PAUSED &&
            qemuProcessStartCPUs(driver, vm, VIR_DOMAIN_RUNNING_MIGRATION_CANCELED,
                                 VIR_ASYNC_JOB_EMULATOR_REPLACE) < 0)
            VIR_WARN("Unable to resume domain '%s' on its old emulator process",
                     vm->def->name);
        virErrorRestore(&orig_err);
    }

    VIR_FORCE_CLOSE(pair[0]);
    VIR_FORCE_CLOSE(pair[1]);
    if (cpr.statePath) {
        unlink(cpr.statePath);
        unlink(cpr.cprPath);
    }
    g_free(cpr.statePath);
    g_free(cpr.cprPath);
    qemuProcessIncomingDefFree(incoming);
    virDomainObjEndAsyncJob(vm);
    return ret;
}


/* Whether @pid is an emulator process of the domain named @name. */
static bool
qemuReplaceIsDomainProcess(pid_t pid,
                           const char *name)
{
    g_autofree char *path = g_strdup_printf("/proc/%lld/cmdline", (long long)pid);
    g_autofree char *cmdline = NULL;
    g_autofree char *arg = g_strdup_printf("guest=%s,", name);
    int len;
    size_t i;

    if ((len = virFileReadAllQuiet(path, 64 * 1024, &cmdline)) <= 0)
        return false;

    for (i = 0; i < len; i += strlen(cmdline + i) + 1) {
        if (STRPREFIX(cmdline + i, arg))
            return true;
    }
    return false;
}


/**
 * qemuReplaceRecover:
 * @vm: domain whose emulator-replace job a daemon that died left
 *
 * Kills the process of the job that does not have the guest, whichever
 * it is (qemuDomainObjPrivateXMLParse() decided), and removes its monitor
 * socket, first thing on reconnect, before anything can fail and stop the
 * domain's process alone. Recovering the job as a save's then resumes the
 * guest where it was paused for the job.
 */
void
qemuReplaceRecover(virDomainObj *vm)
{
    qemuDomainObjPrivate *priv = vm->privateData;

    if (priv->replaceStalePid > 0 &&
        priv->replaceStalePid != vm->pid &&
        qemuReplaceIsDomainProcess(priv->replaceStalePid, vm->def->name)) {
        VIR_INFO("Killing process %lld left by replacing the emulator of domain '%s'",
                 (long long)priv->replaceStalePid, vm->def->name);
        if (virProcessKillPainfully(priv->replaceStalePid, true) < 0)
            VIR_WARN("Unable to kill process %lld of domain '%s'",
                     (long long)priv->replaceStalePid, vm->def->name);
    }

    if (priv->replaceStaleMonitor &&
        STRNEQ(priv->replaceStaleMonitor, priv->monConfig->data.nix.path) &&
        unlink(priv->replaceStaleMonitor) < 0 && errno != ENOENT)
        VIR_WARN("Unable to remove '%s': %s",
                 priv->replaceStaleMonitor, g_strerror(errno));

    priv->replaceStalePid = 0;
    VIR_FREE(priv->replaceStaleMonitor);
}
