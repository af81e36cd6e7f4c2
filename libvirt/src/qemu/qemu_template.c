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
#include <sys/statvfs.h>
#ifdef __linux__
# include <sys/statfs.h>
#endif
#include <unistd.h>

#define LIBVIRT_QEMU_TEMPLATEPRIV_H_ALLOW
#include "qemu_templatepriv.h"
#include "qemu_domain.h"
#include "qemu_hotplug.h"
#include "qemu_migration.h"
#include "qemu_migration_params.h"
#include "qemu_process.h"
#include "qemu_saveimage.h"
#include "qemu_security.h"
#include "configmake.h"
#include "storage_file_probe.h"
#include "storage_source.h"
#include "domain_audit.h"
#include "domain_validate.h"
#include "viralloc.h"
#include "vircommand.h"
#include "virclosecallbacks.h"
#include "virfile.h"
#include "virlog.h"
#include "virstring.h"
#include "viruuid.h"

#define VIR_FROM_THIS VIR_FROM_QEMU

VIR_LOG_INIT("qemu.qemu_template");

/* Far more than the record of a template with the most disks needs. */
#define QEMU_TEMPLATE_RECORD_MAX (1024 * 1024)

/* The depth the driver allows a disk's backing chain (qemu_domain.c). */
#define QEMU_TEMPLATE_BASE_CHAIN_MAX_DEPTH 200


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
 * qemuTemplateCheckNotHeld:
 * @vm: domain object
 *
 * A domain that holds a template must not run, nor have its disks
 * snapshotted: its QEMU would map the template's RAM files shared and
 * write them, or its disks, under the clones that start from them.
 *
 * Returns 0 if @vm holds no template, -1 with an error reported otherwise.
 */
int
qemuTemplateCheckNotHeld(virDomainObj *vm)
{
    if (!vm->hasTemplate)
        return 0;

    virReportError(VIR_ERR_OPERATION_INVALID,
                   _("domain '%1$s' holds a template; remove the template first"),
                   vm->def->name);
    return -1;
}


/* Makes the file open as @fd immutable, or not: an immutable template
 * RAM file or disk image cannot be written, chowned, relabelled or removed
 * by anyone, root and a QEMU running as root included, and so by no domain
 * that names it as a disk or memory device, directly or through a link.
 * Filesystems without the flag keep the protection of owner and mode. */
static int
qemuTemplateSetImmutable(int fd,
                         const char *path,
                         bool immutable)
{
    if (virFileSetImmutable(fd, immutable) == 0)
        return 0;

    if (errno == ENOTTY || errno == EOPNOTSUPP || errno == ENOSYS) {
        VIR_INFO("Filesystem of '%s' has no immutable flag", path);
        return 0;
    }

    /* a daemon without CAP_LINUX_IMMUTABLE, in a container */
    if (immutable && errno == EPERM) {
        VIR_WARN("Unable to make '%s' immutable: only its owner and mode protect it",
                 path);
        return 0;
    }

    if (immutable)
        virReportSystemError(errno, _("unable to make '%1$s' immutable"), path);
    else
        virReportSystemError(errno, _("unable to clear the immutable flag of '%1$s'"),
                             path);
    return -1;
}


/**
 * qemuTemplateMemoryFiles:
 * @driver: qemu driver
 * @def: domain definition with template memory
 *
 * Lists the RAM files of @def's template memory: one per RAM backend,
 * named after its id ('ram-nodeN' per NUMA cell, or the machine's
 * default RAM id). Validation guarantees these are the only ones.
 * virt-aa-helper, which cannot call this, recreates the names.
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
                       _("machine type '%1$s' has no default RAM id"),
                       def->os.machine);
        return NULL;
    }

    files = g_new0(char *, 2);
    files[0] = g_strdup_printf("%s/%s", def->mem.tmpl->path, defaultRAMid);
    return g_steal_pointer(&files);
}


/* The mode qemuTemplateSetAccess() gives the template directory it takes
 * from the producer: clones only need to get through it. */
#define QEMU_TEMPLATE_DIR_TAKEN_MODE (S_IRWXU | S_IXGRP | S_IXOTH)

/* The mode qemuTemplateRAMTake() gives the directory of RAM kept in place
 * for a save image: no one needs to get through it. */
#define QEMU_TEMPLATE_DIR_KEPT_MODE S_IRWXU

/* Whether the template directory open as @fd is the daemon's with @mode. */
static bool
qemuTemplateDirHasMode(int fd,
                       mode_t mode)
{
    struct stat sb;

    return fstat(fd, &sb) == 0 && sb.st_uid == geteuid() &&
           (sb.st_mode & 07777) == mode;
}


/* Whether the template directory open as @fd is the daemon's, as
 * qemuTemplateSetAccess() left it. */
static bool
qemuTemplateDirIsTaken(int fd)
{
    return qemuTemplateDirHasMode(fd, QEMU_TEMPLATE_DIR_TAKEN_MODE);
}


/* Whether the directory open as @fd is the daemon's, as
 * qemuTemplateRAMTake() left it; or the producer's, if its QEMU runs as
 * root: either way no one else put anything in it. */
static bool
qemuTemplateDirIsKept(int fd)
{
    return qemuTemplateDirHasMode(fd, QEMU_TEMPLATE_DIR_KEPT_MODE);
}


/**
 * qemuTemplateMemoryRemove:
 * @def: domain definition of a template producer
 *
 * Empties the template directory of @def, which is the daemon's, and
 * removes it: the RAM files and whatever the producer's QEMU left there.
 * Through the directory's descriptor, and whatever the emulator or its
 * machine types are now. Errors are only logged, as this runs when the
 * domain stops.
 */
void
qemuTemplateMemoryRemove(const virDomainDef *def)
{
    const char *dir = def->mem.tmpl->path;
    g_autoptr(DIR) dirp = NULL;
    struct dirent *ent;
    struct stat sb;
    bool taken;
    int rc;

    if ((rc = virDirOpenIfExists(&dirp, dir)) <= 0) {
        if (rc < 0)
            VIR_WARN("Unable to remove template directory '%s'", dir);
        return;
    }

    /* Only the daemon makes files immutable, and only in the directory it
     * took (qemuTemplateSetAccess()): in one the producer's QEMU owns, a
     * link to another template's file could be waiting. */
    taken = qemuTemplateDirIsTaken(dirfd(dirp)) ||
            qemuTemplateDirIsKept(dirfd(dirp));

    /* A subdirectory (the clone area) is left: it is emptied and removed
     * with the template, and a template with clones is not discarded. */
    while ((rc = virDirRead(dirp, &ent, dir)) > 0) {
        g_autofree char *path = g_strdup_printf("%s/%s", dir, ent->d_name);
        VIR_AUTOCLOSE fd = -1;

        if (taken &&
            (fd = openat(dirfd(dirp), ent->d_name,
                         O_RDONLY | O_NOFOLLOW | O_NONBLOCK)) >= 0 &&
            fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_nlink == 1 &&
            qemuTemplateSetImmutable(fd, path, false) < 0) {
            VIR_WARN("Unable to remove '%s'", path);
            continue;
        }

        if (unlinkat(dirfd(dirp), ent->d_name, 0) < 0 && errno != EISDIR)
            VIR_WARN("Unable to remove '%s': %s", path, g_strerror(errno));
    }

    if (rc < 0 || (rmdir(dir) < 0 && errno != ENOTEMPTY))
        VIR_WARN("Unable to remove template directory '%s'", dir);
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


/* The record of the files a template is made of as they were when it was
 * created: its RAM files and the images of its writable disks, which
 * became the read-only base of every clone's overlay, with their backing
 * chains, and the owner and mode the images had. It is the daemon's
 * alone, kept where no QEMU can write at any level (not under libDir,
 * which the daemon gives to the user QEMU runs as) and that outlives a
 * template directory on a tmpfs, so that the images of a template lost
 * with its directory are still given back. */
static char *
qemuTemplateRecordDir(virQEMUDriver *driver)
{
    g_autoptr(virQEMUDriverConfig) cfg = NULL;

    if (driver->embeddedRoot)
        return g_strdup_printf("%s/lib/template-records", driver->embeddedRoot);

    if (driver->privileged)
        return g_strdup(LOCALSTATEDIR "/lib/libvirt/template-records");

    /* a session daemon's QEMU runs as its own user */
    cfg = virQEMUDriverGetConfig(driver);
    return g_strdup_printf("%s/template-records", cfg->libDir);
}


/* The record of the template in @dir, named after its UUID (validation
 * makes every template directory one). */
static char *
qemuTemplateRecordPath(virQEMUDriver *driver,
                       const char *dir)
{
    g_autofree char *records = qemuTemplateRecordDir(driver);
    g_autofree char *uuid = g_path_get_basename(dir);

    return g_strdup_printf("%s/%s.xml", records, uuid);
}


/* Opens the directory of @record, which must be the daemon's with no
 * access for anyone else, and gives the record's name in it. Returns the
 * descriptor, -2 if the directory does not exist and @missingOK, or -1
 * with an error reported. */
static int
qemuTemplateRecordDirOpen(const char *record,
                          bool missingOK,
                          char **name)
{
    g_autofree char *dir = g_path_get_dirname(record);
    struct stat sb;
    int fd;

    if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)) < 0) {
        if (errno == ENOENT && missingOK)
            return -2;
        virReportSystemError(errno, _("unable to open template record directory '%1$s'"),
                             dir);
        return -1;
    }

    if (fstat(fd, &sb) < 0 || sb.st_uid != geteuid() ||
        (sb.st_mode & (S_IRWXG | S_IRWXO))) {
        virReportError(VIR_ERR_OPERATION_FAILED,
                       _("template record directory '%1$s' is not the daemon's alone"),
                       dir);
        VIR_FORCE_CLOSE(fd);
        return -1;
    }

    *name = g_path_get_basename(record);
    return fd;
}


/* Reads @record, a regular file of the daemon's with a single name, into
 * @content. Returns 0, 1 if there is no such record, or -1 with an error
 * reported. */
static int
qemuTemplateRecordLoad(const char *record,
                       char **content)
{
    g_autofree char *name = NULL;
    VIR_AUTOCLOSE dirfd = -1;
    VIR_AUTOCLOSE fd = -1;
    struct stat sb;

    if ((dirfd = qemuTemplateRecordDirOpen(record, true, &name)) == -2)
        return 1;
    if (dirfd < 0)
        return -1;

    if ((fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK)) < 0) {
        if (errno == ENOENT)
            return 1;
        virReportSystemError(errno, _("unable to open template record '%1$s'"), record);
        return -1;
    }

    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_nlink != 1 ||
        sb.st_uid != geteuid()) {
        virReportError(VIR_ERR_OPERATION_FAILED,
                       _("template record '%1$s' is not a file of the daemon's"), record);
        return -1;
    }

    if (virFileReadLimFD(fd, QEMU_TEMPLATE_RECORD_MAX, content) < 0) {
        virReportSystemError(errno, _("unable to read template record '%1$s'"), record);
        return -1;
    }

    return 0;
}


/* Replaces @record with @xml through its directory's descriptor, synced,
 * writing only a file the daemon has just created. */
static int
qemuTemplateRecordStore(const char *record,
                        const char *xml)
{
    g_autofree char *name = NULL;
    g_autofree char *tmp = NULL;
    VIR_AUTOCLOSE dirfd = -1;
    VIR_AUTOCLOSE fd = -1;
    ssize_t len = strlen(xml);

    if ((dirfd = qemuTemplateRecordDirOpen(record, false, &name)) < 0)
        return -1;
    tmp = g_strdup_printf("%s.new", name);

    if ((unlinkat(dirfd, tmp, 0) < 0 && errno != ENOENT) ||
        (fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW,
                     S_IRUSR | S_IWUSR)) < 0 ||
        safewrite(fd, xml, len) != len ||
        fsync(fd) < 0 ||
        VIR_CLOSE(fd) < 0 ||
        renameat(dirfd, tmp, dirfd, name) < 0 ||
        fsync(dirfd) < 0) {
        virReportSystemError(errno, _("unable to write template record '%1$s'"), record);
        ignore_value(unlinkat(dirfd, tmp, 0));
        return -1;
    }

    return 0;
}


/* Stores the record @doc, which a caller changed, as @record. */
static int
qemuTemplateRecordStoreDoc(const char *record,
                           xmlDocPtr doc)
{
    g_autofree char *xml = NULL;
    xmlChar *buf = NULL;
    int len;

    xmlDocDumpFormatMemory(doc, &buf, &len, 1);
    xml = g_strndup((const char *) buf, len);
    xmlFree(buf);
    return qemuTemplateRecordStore(record, xml);
}


/* Removes @record, if there is one. */
static int
qemuTemplateRecordRemove(const char *record)
{
    g_autofree char *name = NULL;
    VIR_AUTOCLOSE dirfd = -1;

    if ((dirfd = qemuTemplateRecordDirOpen(record, true, &name)) == -2)
        return 0;
    if (dirfd < 0)
        return -1;

    if ((unlinkat(dirfd, name, 0) < 0 && errno != ENOENT) || fsync(dirfd) < 0) {
        virReportSystemError(errno, _("unable to remove template record '%1$s'"), record);
        return -1;
    }

    return 0;
}


/* The overlays of clones not told otherwise live in a directory per clone;
 * one of a clone saved with its overlays is marked so. */
#define QEMU_TEMPLATE_SAVED_MARK "saved"

static char *
qemuTemplateCloneArea(const char *tmplDir)
{
    return g_strdup_printf("%s/clones", tmplDir);
}


static char *
qemuTemplateCloneDir(const char *tmplDir,
                     const char *cloneName)
{
    return g_strdup_printf("%s/clones/%s", tmplDir, cloneName);
}


static bool
qemuTemplateDiskIsBase(const virDomainDiskDef *disk)
{
    return !disk->src->readonly && !virStorageSourceIsEmpty(disk->src);
}


/* Opens the file @path, read-only, as root opens files that others name
 * or whose directories others own: only a regular file, and nothing else
 * even for a moment (opening a device or a FIFO may act): the path is
 * looked up without opening what it leads to, and opened through that
 * once it is known to be a regular file. Returns the descriptor, with @sb
 * filled, or -1 with an error reported and errno set (EINVAL: not a
 * regular file). */
static int
qemuTemplateOpenRegular(const char *path,
                        struct stat *sb)
{
    VIR_AUTOCLOSE pathfd = -1;
    int fd;
#ifdef __linux__
    g_autofree char *fdpath = NULL;

    if ((pathfd = open(path, O_PATH | O_NOFOLLOW)) < 0 ||
        fstat(pathfd, sb) < 0) {
        virReportSystemError(errno, _("unable to open '%1$s'"), path);
        return -1;
    }
#else /* !__linux__ */
    if ((pathfd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY)) < 0 ||
        fstat(pathfd, sb) < 0) {
        virReportSystemError(errno, _("unable to open '%1$s'"), path);
        return -1;
    }
#endif /* !__linux__ */

    if (!S_ISREG(sb->st_mode)) {
        virReportError(VIR_ERR_OPERATION_FAILED,
                       _("'%1$s' is not a regular file"), path);
        errno = EINVAL;
        return -1;
    }

#ifdef __linux__
    fdpath = g_strdup_printf("/proc/self/fd/%d", pathfd);
    if ((fd = open(fdpath, O_RDONLY | O_NOCTTY)) < 0) {
        virReportSystemError(errno, _("unable to open '%1$s'"), path);
        return -1;
    }
#else /* !__linux__ */
    fd = pathfd;
    pathfd = -1;
#endif /* !__linux__ */

    return fd;
}


/* The filesystem the descriptor @fd is on, as its ID, which filesystems
 * with a UUID (ext4, btrfs) derive from it, so that it outlives a reboot,
 * unlike st_dev; 0 where the filesystem has none. */
static int
qemuTemplateFilesystemId(int fd,
                         unsigned long long *fsid)
{
    struct statvfs sfs;

    if (fstatvfs(fd, &sfs) < 0)
        return -1;

    *fsid = sfs.f_fsid;
    return 0;
}


#define QEMU_TEMPLATE_EXT4_MAGIC 0xEF53
#define QEMU_TEMPLATE_BTRFS_MAGIC 0x9123683E
#define QEMU_TEMPLATE_FUSE_MAGIC 0x65735546

/* The filesystem of the file open as @fd, as the record names it, such
 * that the next boot mounting it from another device keeps it: ext4 and
 * btrfs by their f_fsid, which they derive from their UUID (btrfs from the
 * subvolume too: a snapshot is another); other filesystems, whose f_fsid
 * is the device number (XFS) or none (NFS), by their type. None on FUSE,
 * whose server, which any user may run, answers for owners and modes.
 * Elsewhere than Linux, by f_fsid, or st_dev where there is none. */
static char *
qemuTemplateFileSystem(int fd,
                       const char *path,
                       const struct stat *sb G_GNUC_UNUSED)
{
#ifdef __linux__
    struct statfs sfs;

    if (fstatfs(fd, &sfs) < 0) {
        virReportSystemError(errno, _("unable to access template file '%1$s'"), path);
        return NULL;
    }

    if ((unsigned int) sfs.f_type == QEMU_TEMPLATE_FUSE_MAGIC) {
        virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                       _("template file '%1$s' is on a FUSE filesystem, whose server, not the kernel, answers for its owner and mode"),
                       path);
        return NULL;
    }

    if (sfs.f_type == QEMU_TEMPLATE_EXT4_MAGIC ||
        (unsigned int) sfs.f_type == QEMU_TEMPLATE_BTRFS_MAGIC)
        return g_strdup_printf("fsid:%x:%x", (unsigned int) sfs.f_fsid.__val[0],
                               (unsigned int) sfs.f_fsid.__val[1]);
    return g_strdup_printf("type:%llx", (unsigned long long) sfs.f_type);
#else /* !__linux__ */
    unsigned long long fsid;

    if (qemuTemplateFilesystemId(fd, &fsid) < 0) {
        virReportSystemError(errno, _("unable to access template file '%1$s'"), path);
        return NULL;
    }
    if (fsid != 0)
        return g_strdup_printf("fsid:%llx", fsid);
    return g_strdup_printf("dev:%llu", (unsigned long long) sb->st_dev);
#endif /* !__linux__ */
}


/* The path @path of a template file as an XML attribute keeps it: no
 * control characters, UTF-8. Returns 0 if it is, -1 with an error
 * reported otherwise. */
static int
qemuTemplateCheckPlainPath(const char *path)
{
    g_autofree char *printable = NULL;
    const char *c;

    if (g_utf8_validate(path, -1, NULL)) {
        for (c = path; *c && !g_ascii_iscntrl(*c); c++)
            ;
        if (!*c)
            return 0;
    }

    printable = g_strescape(path, NULL);
    virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                   _("the path of template file '%1$s' holds control characters or is not UTF-8"),
                   printable);
    return -1;
}


/* Where the file open as @fd is, whatever links led to it: a file found
 * elsewhere (through a directory swapped for a link to another mount) is
 * not the one recorded. Empty where that can't be told (no /proc). */
static char *
qemuTemplateFileLocation(int fd G_GNUC_UNUSED)
{
#ifdef __linux__
    g_autofree char *fdpath = g_strdup_printf("/proc/self/fd/%d", fd);
    g_autoptr(GError) err = NULL;
    char *location;

    if (!(location = g_file_read_link(fdpath, &err))) {
        virReportError(VIR_ERR_INTERNAL_ERROR, _("unable to resolve '%1$s': %2$s"),
                       fdpath, err->message);
        return NULL;
    }

    if (qemuTemplateCheckPlainPath(location) < 0) {
        g_free(location);
        return NULL;
    }
    return location;
#else /* !__linux__ */
    return g_strdup("");
#endif /* !__linux__ */
}


/* What clones rely on about a template file, as record attributes: the
 * same file, of the same size, not written since. The file is its inode
 * and, where the filesystem has them, the inode's generation, which tells
 * a file from a later one given the same inode number, on its filesystem
 * (qemuTemplateFileSystem()), where it is (qemuTemplateFileLocation()),
 * or will be once renamed to @as, if given.
 * Returns NULL with an error reported. */
static char *
qemuTemplateFileIdentity(int fd,
                         const char *path,
                         const struct stat *sb,
                         const char *as)
{
#ifdef __APPLE__
    const struct timespec *mtime = &sb->st_mtimespec;
#else
    const struct timespec *mtime = &sb->st_mtim;
#endif
    g_auto(virBuffer) buf = VIR_BUFFER_INITIALIZER;
    g_autofree char *generation = NULL;
    g_autofree char *fs = NULL;
    g_autofree char *location = NULL;
    unsigned int gen;

    if (!(fs = qemuTemplateFileSystem(fd, path, sb)) ||
        !(location = qemuTemplateFileLocation(fd)))
        return NULL;

    if (as && *location) {
        g_autofree char *dir = g_path_get_dirname(location);
        g_autofree char *name = g_path_get_basename(as);

        g_free(location);
        location = g_build_filename(dir, name, NULL);
    }

    if (virFileGetGeneration(fd, &gen) == 0) {
        generation = g_strdup_printf(" generation='%u'", gen);
    } else if (errno != ENOTTY && errno != EOPNOTSUPP && errno != ENOSYS &&
               errno != EINVAL) {
        virReportSystemError(errno, _("unable to access template file '%1$s'"), path);
        return NULL;
    }

    virBufferAsprintf(&buf, "size='%lld' inode='%llu'%s fs='%s' mtime='%lld.%09ld'",
                      (long long) sb->st_size, (unsigned long long) sb->st_ino,
                      NULLSTR_EMPTY(generation), fs,
                      (long long) mtime->tv_sec, (long) mtime->tv_nsec);
    virBufferEscapeString(&buf, " location='%s'", location);
    return virBufferContentAndReset(&buf);
}


/* The identity (qemuTemplateFileIdentity()) a record's @node gives its
 * file. Returns NULL with an error reported. */
static char *
qemuTemplateRecordedIdentity(xmlNodePtr node)
{
    g_autofree char *size = virXMLPropString(node, "size");
    g_autofree char *inode = virXMLPropString(node, "inode");
    g_autofree char *generation = virXMLPropString(node, "generation");
    g_autofree char *fs = virXMLPropString(node, "fs");
    g_autofree char *mtime = virXMLPropString(node, "mtime");
    g_autofree char *location = virXMLPropString(node, "location");
    g_auto(virBuffer) buf = VIR_BUFFER_INITIALIZER;

    if (!size || !inode || !fs || !mtime || !location) {
        virReportError(VIR_ERR_XML_ERROR, "%s",
                       _("template record: a file lacks its size, inode, fs, mtime or location"));
        return NULL;
    }

    virBufferAsprintf(&buf, "size='%s' inode='%s'%s%s%s fs='%s' mtime='%s'", size, inode,
                      generation ? " generation='" : "",
                      NULLSTR_EMPTY(generation), generation ? "'" : "",
                      fs, mtime);
    virBufferEscapeString(&buf, " location='%s'", location);
    return virBufferContentAndReset(&buf);
}


static int
qemuTemplateRecordFormat(virBuffer *buf,
                         const char *element,
                         int fd,
                         const struct stat *sb,
                         const char *path,
                         const char *as)
{
    g_autofree char *identity = NULL;

    if (qemuTemplateCheckPlainPath(as ? as : path) < 0 ||
        !(identity = qemuTemplateFileIdentity(fd, path, sb, as)))
        return -1;

    virBufferAsprintf(buf, "<%s %s mode='%04o' owner='%u' group='%u'", element,
                      identity, sb->st_mode & 07777, (unsigned int) sb->st_uid,
                      (unsigned int) sb->st_gid);
    virBufferEscapeString(buf, " path='%s'/>\n", as ? as : path);
    return 0;
}


/* Records the file at @path under the path @as, if given: the template
 * image is recorded before it is published under its name. */
int
qemuTemplateRecordFormatFile(virBuffer *buf,
                             const char *element,
                             const char *path,
                             const char *as)
{
    VIR_AUTOCLOSE fd = -1;
    struct stat sb;

    if ((fd = qemuTemplateOpenRegular(path, &sb)) < 0)
        return -1;

    return qemuTemplateRecordFormat(buf, element, fd, &sb, path, as);
}


/* Whether the QEMU process @pid has the file @file open. Returns 1 if it
 * has, 0 if not, -1 with an error reported. */
static int
qemuTemplateQEMUHasOpen(pid_t pid,
                        const struct stat *file)
{
    g_autofree char *fds = g_strdup_printf("/proc/%lld/fd", (long long) pid);
    g_autoptr(DIR) dirp = NULL;
    struct dirent *ent;
    int rc;

    if (virDirOpen(&dirp, fds) < 0)
        return -1;

    while ((rc = virDirRead(dirp, &ent, fds)) > 0) {
        struct stat sb;

        if (fstatat(dirfd(dirp), ent->d_name, &sb, 0) == 0 &&
            sb.st_dev == file->st_dev && sb.st_ino == file->st_ino)
            return 1;
    }

    return rc;
}


/* Symbolic links followed on the way to one directory, as the kernel's
 * limit. */
#define QEMU_TEMPLATE_MAX_LINKS 40

static void
qemuTemplateCloseFD(void *fdp)
{
    VIR_FORCE_CLOSE(*(int *) fdp);
}


/* Whether the directory open as @fd, @sb, is out of reach of anyone but
 * root and the daemon: theirs, and writable by no one else unless sticky
 * (others can't rename what is not theirs there), which does not do for
 * the @last one, where they could put a file of their own; not on FUSE,
 * whose server, which any user may run, answers fstat(). */
static bool
qemuTemplateDirIsTrusted(int fd G_GNUC_UNUSED,
                         const struct stat *sb,
                         bool last)
{
#ifdef __linux__
    struct statfs sfs;

    if (fstatfs(fd, &sfs) < 0 ||
        (unsigned int) sfs.f_type == QEMU_TEMPLATE_FUSE_MAGIC)
        return false;
#endif /* __linux__ */

    if (sb->st_uid != 0 && sb->st_uid != geteuid())
        return false;

    return !(sb->st_mode & (S_IWGRP | S_IWOTH)) ||
           ((sb->st_mode & S_ISVTX) && !last);
}


/* Opens the directory @dir, an absolute path, from / by descriptor, as
 * the kernel resolves it, if no one but root may change where it leads
 * (which a filesystem a user mounted, FUSE or removable media, defeats):
 * each directory on the way must be trusted (qemuTemplateDirIsTrusted())
 * as it is opened, and a symbolic link is followed only if it is root's or
 * the daemon's, as others could replace theirs even in a sticky directory.
 * Returns the descriptor, or -1 with errno set, and @untrusted set if it
 * is a directory or link on the way that others may change. */
static int
qemuTemplateOpenTrustedDir(const char *dir,
                           bool *untrusted)
{
    g_autoptr(GArray) walked = g_array_new(FALSE, FALSE, sizeof(int));
    g_autofree char *rest = g_strdup(dir);
    size_t links = 0;
    int fd;

    *untrusted = false;
    g_array_set_clear_func(walked, qemuTemplateCloseFD);

    if (*dir != '/') {
        errno = EINVAL;
        return -1;
    }
    if ((fd = open("/", O_RDONLY | O_DIRECTORY)) < 0)
        return -1;
    g_array_append_val(walked, fd);

    while (true) {
        g_autofree char *target = NULL;
        char *next = rest;
        char *name;
        struct stat sb;
        ssize_t len;
        int saved;

        fd = g_array_index(walked, int, walked->len - 1);
        while (*next == '/' || (next[0] == '.' && (next[1] == '/' || !next[1])))
            next++;
        if (fstat(fd, &sb) < 0)
            return -1;
        if (!qemuTemplateDirIsTrusted(fd, &sb, !*next)) {
            *untrusted = true;
            return -1;
        }
        if (!*next) {
            /* the caller's now */
            g_array_index(walked, int, walked->len - 1) = -1;
            return fd;
        }

        name = next;
        if ((next = strchr(next, '/')))
            *next++ = '\0';
        else
            next = name + strlen(name);

        /* the directory it was entered from, as the kernel goes */
        if (STREQ(name, "..")) {
            if (walked->len > 1)
                g_array_remove_index(walked, walked->len - 1);
            memmove(rest, next, strlen(next) + 1);
            continue;
        }

        if ((saved = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)) >= 0) {
            g_array_append_val(walked, saved);
            memmove(rest, next, strlen(next) + 1);
            continue;
        }

        saved = errno;
        if (fstatat(fd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISLNK(sb.st_mode)) {
            errno = saved;
            return -1;
        }
        if (sb.st_uid != 0 && sb.st_uid != geteuid()) {
            *untrusted = true;
            return -1;
        }
        if (++links > QEMU_TEMPLATE_MAX_LINKS) {
            errno = ELOOP;
            return -1;
        }

        /* only root could change it since, as its length */
        target = g_new0(char, sb.st_size + 1);
        if ((len = readlinkat(fd, name, target, sb.st_size + 1)) < 0)
            return -1;
        if (len != sb.st_size) {
            errno = EINVAL;
            return -1;
        }

        /* an absolute link goes from / again */
        if (*target == '/')
            g_array_set_size(walked, 1);

        name = g_strdup_printf("%s/%s", target, next);
        g_free(rest);
        rest = name;
    }
}


/* QEMU and the security drivers open a template's disk image @fd by its
 * configured @path, after the daemon checked the file there, following
 * any symbolic link on the way: whoever may change a directory or link
 * on the way (qemuTemplateOpenTrustedDir()) could put another file there
 * meanwhile. Returns 0 if no one but root may, and @path still leads to
 * @fd, -1 with an error reported otherwise. */
int
qemuTemplateCheckImageDir(int fd,
                          const char *path)
{
    g_autofree char *dir = g_path_get_dirname(path);
    g_autofree char *name = g_path_get_basename(path);
    VIR_AUTOCLOSE dirfd = -1;
    struct stat file;
    struct stat there;
    bool untrusted;

    if ((dirfd = qemuTemplateOpenTrustedDir(dir, &untrusted)) < 0) {
        if (untrusted)
            virReportError(VIR_ERR_CONFIG_UNSUPPORTED,
                           _("disk image '%1$s' of a template must be in directories only root may change, unlike '%2$s': clones open it by its path"),
                           path, dir);
        else
            virReportSystemError(errno, _("unable to open '%1$s'"), dir);
        return -1;
    }

    if (fstat(fd, &file) < 0 ||
        fstatat(dirfd, name, &there, AT_SYMLINK_NOFOLLOW) < 0) {
        virReportSystemError(errno, _("unable to stat '%1$s'"), path);
        return -1;
    }

    if (file.st_dev != there.st_dev || file.st_ino != there.st_ino) {
        virReportError(VIR_ERR_OPERATION_FAILED,
                       _("disk image '%1$s' was replaced while the template checked it"),
                       path);
        return -1;
    }

    return 0;
}


/* Opens the disk image @path of a template, a @base of clones or a
 * backing file of one, if the record can keep it: a regular file, with a
 * path an XML attribute keeps, where only root may change what the path
 * leads to (qemuTemplateCheckImageDir()), and with no other name if a
 * base, which the daemon takes. Returns the descriptor with @sb filled,
 * or -1 with an error reported. */
static int
qemuTemplateOpenDiskImage(const char *path,
                          bool base,
                          struct stat *sb)
{
    VIR_AUTOCLOSE fd = -1;
    int ret;

    if (qemuTemplateCheckPlainPath(path) < 0 ||
        (fd = qemuTemplateOpenRegular(path, sb)) < 0)
        return -1;

    if (base && sb->st_nlink != 1) {
        virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                       _("disk image '%1$s' has more than one name"), path);
        return -1;
    }

    if (qemuTemplateCheckImageDir(fd, path) < 0)
        return -1;

    ret = fd;
    fd = -1;
    return ret;
}


/* Records the disk image @path of the running producer @vm. The daemon
 * will chown, label and make immutable the file recorded as a base: it
 * must be the one the domain's QEMU has open, not whatever @path leads to
 * now, which the owner of a directory on the way could have changed. */
static int
qemuTemplateRecordFormatDisk(virBuffer *buf,
                             virDomainObj *vm,
                             const char *element,
                             const char *path)
{
    VIR_AUTOCLOSE fd = -1;
    struct stat sb;
    int rc;

    if ((fd = qemuTemplateOpenDiskImage(path, STREQ(element, "base"), &sb)) < 0)
        return -1;

    if ((rc = qemuTemplateQEMUHasOpen(vm->pid, &sb)) <= 0) {
        if (rc == 0)
            virReportError(VIR_ERR_OPERATION_FAILED,
                           _("'%1$s' is not the disk image the QEMU of domain '%2$s' has open"),
                           path, vm->def->name);
        return -1;
    }

    return qemuTemplateRecordFormat(buf, element, fd, &sb, path, NULL);
}


/* Records the template's files, synced, before its image is published. */
static int
qemuTemplateRecordWrite(virQEMUDriver *driver,
                        virDomainObj *vm,
                        const char *partial)
{
    g_auto(virBuffer) buf = VIR_BUFFER_INITIALIZER;
    g_autofree char *records = qemuTemplateRecordDir(driver);
    g_autofree char *path = qemuTemplateRecordPath(driver, vm->def->mem.tmpl->path);
    g_autofree char *image = qemuTemplateImagePath(vm->def);
    g_autofree char *xml = NULL;
    g_auto(GStrv) files = NULL;
    VIR_AUTOCLOSE dirfd = -1;
    unsigned long long fsid;
    char **file;
    size_t i;

    if (!(files = qemuTemplateMemoryFiles(driver, vm->def)))
        return -1;

    /* what a daemon start finding the directory missing compares */
    if ((dirfd = open(vm->def->mem.tmpl->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)) < 0 ||
        qemuTemplateFilesystemId(dirfd, &fsid) < 0) {
        virReportSystemError(errno, _("unable to access template directory '%1$s'"),
                             vm->def->mem.tmpl->path);
        return -1;
    }

    virBufferAsprintf(&buf, "<templateFiles fsid='%llu'>\n", fsid);
    virBufferAdjustIndent(&buf, 2);
    if (qemuTemplateRecordFormatFile(&buf, "image", partial, image) < 0)
        return -1;
    for (file = files; *file; file++) {
        if (qemuTemplateRecordFormatFile(&buf, "ram", *file, NULL) < 0)
            return -1;
    }
    for (i = 0; i < vm->def->ndisks; i++) {
        virStorageSource *src = vm->def->disks[i]->src;
        virStorageSource *n;

        if (!qemuTemplateDiskIsBase(vm->def->disks[i]))
            continue;

        if (qemuTemplateRecordFormatDisk(&buf, vm, "base", src->path) < 0)
            return -1;

        /* Clones read the base's own backing chain too. */
        for (n = src->backingStore; virStorageSourceIsBacking(n); n = n->backingStore) {
            if (virStorageSourceIsLocalStorage(n) && n->path &&
                qemuTemplateRecordFormatDisk(&buf, vm, "backing", n->path) < 0)
                return -1;
        }
    }
    virBufferAdjustIndent(&buf, -2);
    virBufferAddLit(&buf, "</templateFiles>\n");
    xml = virBufferContentAndReset(&buf);

    if (g_mkdir_with_parents(records, S_IRWXU) < 0) {
        virReportSystemError(errno, _("unable to create directory '%1$s'"), records);
        return -1;
    }

    return qemuTemplateRecordStore(path, xml);
}


/* Parses the record @path. If @missing is given, no record is no error
 * but sets it. */
static xmlNodePtr *
qemuTemplateRecordRead(const char *path,
                       bool *missing,
                       xmlDocPtr *doc,
                       int *nnodes)
{
    g_autoptr(xmlXPathContext) ctxt = NULL;
    g_autofree char *xml = NULL;
    xmlNodePtr *nodes = NULL;
    int rc;

    if ((rc = qemuTemplateRecordLoad(path, &xml)) < 0)
        return NULL;
    if (rc > 0) {
        if (missing)
            *missing = true;
        else
            virReportError(VIR_ERR_OPERATION_FAILED,
                           _("template record '%1$s' does not exist"), path);
        return NULL;
    }

    if (!(*doc = virXMLParse(NULL, xml, path, "templateFiles", &ctxt, NULL, false)))
        return NULL;

    if ((*nnodes = virXPathNodeSet("./image|./ram|./base|./backing", ctxt, &nodes)) <= 0) {
        virReportError(VIR_ERR_OPERATION_FAILED,
                       _("template record '%1$s' lists no files"), path);
        g_clear_pointer(doc, xmlFreeDoc);
        return NULL;
    }

    return nodes;
}


/* Clones must run on the template's files exactly as they were created:
 * a RAM file truncated, replaced or written, or a base image written since,
 * would make a clone that continues from a state that never existed. */
int
qemuTemplateRecordCheck(const char *record)
{
    g_autoptr(xmlDoc) doc = NULL;
    g_autofree xmlNodePtr *nodes = NULL;
    int nnodes = 0;
    size_t i;

    if (!(nodes = qemuTemplateRecordRead(record, NULL, &doc, &nnodes)))
        return -1;

    for (i = 0; i < nnodes; i++) {
        g_autofree char *path = virXMLPropString(nodes[i], "path");
        g_autofree char *was = NULL;
        g_autofree char *now = NULL;
        VIR_AUTOCLOSE fd = -1;
        struct stat sb;

        if (!path) {
            virReportError(VIR_ERR_XML_ERROR, "%s",
                           _("template record: a file lacks its path"));
            return -1;
        }

        if (!(was = qemuTemplateRecordedIdentity(nodes[i])))
            return -1;

        if ((fd = qemuTemplateOpenRegular(path, &sb)) < 0)
            return -1;

        if (!(now = qemuTemplateFileIdentity(fd, path, &sb, NULL)))
            return -1;
        if (STRNEQ(was, now)) {
            virReportError(VIR_ERR_OPERATION_FAILED,
                           _("template file '%1$s' was changed after the template was created: it had %2$s, it has %3$s"),
                           path, was, now);
            return -1;
        }
    }

    return 0;
}


/* Finds the template whose RAM files @def, a clone's definition, maps:
 * the domain named by the UUID its template directory is named after,
 * which holds a template there. Returns it locked and referenced, or NULL
 * with an error reported. */
static virDomainObj *
qemuTemplateFindOfClone(virQEMUDriver *driver,
                        const virDomainDef *def)
{
    g_autofree char *base = NULL;
    unsigned char uuid[VIR_UUID_BUFLEN];
    virDomainObj *tmpl = NULL;

    if (def->mem.tmpl->path &&
        (base = g_path_get_basename(def->mem.tmpl->path)) &&
        virUUIDParse(base, uuid) == 0 &&
        (tmpl = virDomainObjListFindByUUID(driver->domains, uuid))) {
        if (tmpl->hasTemplate && tmpl->def->mem.tmpl &&
            STREQ(tmpl->def->mem.tmpl->path, def->mem.tmpl->path))
            return tmpl;
        virDomainObjEndAPI(&tmpl);
    }

    virReportError(VIR_ERR_OPERATION_INVALID,
                   _("domain '%1$s' is a clone of no template that exists"),
                   def->name);
    return NULL;
}


/**
 * qemuTemplateRestoreCloneBegin:
 * @conn: connection
 * @driver: qemu driver
 * @def: definition of a clone (see qemuTemplateIsClone()) to restore
 * @ensureACL: access check of the template's definition
 *
 * A clone restored from a save image, or reverted to a snapshot, maps its
 * template's memory as virDomainCloneFromTemplate() does: it needs the
 * same access to the template, and counts as one of its starting clones
 * until qemuTemplateRestoreCloneEnd(), so that the template and the
 * overlays of its saved clones stay. Call it with no domain locked.
 *
 * Returns the template, referenced and unlocked, or NULL with an error
 * reported.
 */
virDomainObj *
qemuTemplateRestoreCloneBegin(virConnectPtr conn,
                              virQEMUDriver *driver,
                              const virDomainDef *def,
                              qemuTemplateEnsureACL ensureACL)
{
    virDomainObj *tmpl;

    if (!(tmpl = qemuTemplateFindOfClone(driver, def)))
        return NULL;

    if (ensureACL(conn, tmpl->def) < 0) {
        virDomainObjEndAPI(&tmpl);
        return NULL;
    }

    QEMU_DOMAIN_PRIVATE(tmpl)->templateClonesStarting++;
    virObjectUnlock(tmpl);
    return tmpl;
}


/**
 * qemuTemplateRestoreCloneEnd:
 * @tmpl: what qemuTemplateRestoreCloneBegin() returned, or NULL
 *
 * Ends what qemuTemplateRestoreCloneBegin() began. Call it with no domain
 * locked.
 */
void
qemuTemplateRestoreCloneEnd(virDomainObj **tmpl)
{
    if (!*tmpl)
        return;

    virObjectLock(*tmpl);
    QEMU_DOMAIN_PRIVATE(*tmpl)->templateClonesStarting--;
    virDomainObjEndAPI(tmpl);
}


/**
 * qemuTemplateCheckRevert:
 * @vm: domain object
 * @def: definition of the snapshot @vm reverts to, or NULL
 *
 * Refuses reverting @vm to a snapshot whose definition maps the memory of
 * a template that @vm does not map: a redefined snapshot would give @vm a
 * template whose access was never checked.
 *
 * Returns 0 if allowed, -1 with an error reported.
 */
int
qemuTemplateCheckRevert(virDomainObj *vm,
                        const virDomainDef *def)
{
    if (!def || !qemuTemplateIsClone(def))
        return 0;

    if (qemuTemplateIsClone(vm->def) &&
        STREQ_NULLABLE(vm->def->mem.tmpl->path, def->mem.tmpl->path))
        return 0;

    virReportError(VIR_ERR_OPERATION_INVALID,
                   _("the snapshot maps the memory of a template that domain '%1$s' is no clone of"),
                   vm->def->name);
    return -1;
}


/**
 * qemuTemplateCheckImageDefine:
 * @def: definition a save image holds
 * @newdef: definition it is to hold instead
 *
 * Refuses rewriting a save image to map the memory of a template that the
 * saved domain does not map: restoring it would give the domain a
 * template whose access was never checked, and a managed save image
 * would make a persistent domain a clone.
 *
 * Returns 0 if allowed, -1 with an error reported.
 */
int
qemuTemplateCheckImageDefine(const virDomainDef *def,
                             const virDomainDef *newdef)
{
    if (!qemuTemplateIsClone(newdef))
        return 0;

    /* an image's definition is not validated: its path may be missing */
    if (qemuTemplateIsClone(def) &&
        STREQ_NULLABLE(def->mem.tmpl->path, newdef->mem.tmpl->path))
        return 0;

    virReportError(VIR_ERR_OPERATION_INVALID,
                   _("the new definition maps the memory of a template that domain '%1$s' is no clone of"),
                   def->name);
    return -1;
}


/**
 * qemuTemplateCheckSnapshot:
 * @vm: domain object
 * @def: definition of the snapshot to create
 *
 * Refuses snapshots of clones: the overlays of a clone go when it stops,
 * and a snapshot in them or with images on top of them would go with them
 * or lose its backing files. Before the snapshot's disks are filled in, so
 * whatever the definition asks for.
 *
 * Returns 0 if allowed, -1 with an error reported.
 */
int
qemuTemplateCheckSnapshot(virDomainObj *vm)
{
    if (!qemuTemplateIsClone(vm->def))
        return 0;

    virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                   _("domain '%1$s' is a clone of a template: its disk overlays are removed when it stops, so snapshots of it are not supported"),
                   vm->def->name);
    return -1;
}


/* The disk images a template is made of, as its record lists them: the
 * bases of its clones' overlays and their backing chains, each path
 * mapped to the identity recorded (qemuTemplateFileIdentity()). */
static GHashTable *
qemuTemplateRecordDisks(const char *record)
{
    g_autoptr(xmlDoc) doc = NULL;
    g_autofree xmlNodePtr *nodes = NULL;
    g_autoptr(GHashTable) disks = virHashNew(g_free);
    int nnodes = 0;
    size_t i;

    if (!(nodes = qemuTemplateRecordRead(record, NULL, &doc, &nnodes)))
        return NULL;

    for (i = 0; i < nnodes; i++) {
        g_autofree char *path = NULL;
        char *identity;

        if (!virXMLNodeNameEqual(nodes[i], "base") &&
            !virXMLNodeNameEqual(nodes[i], "backing"))
            continue;

        if (!(path = virXMLPropString(nodes[i], "path"))) {
            virReportError(VIR_ERR_XML_ERROR, "%s",
                           _("template record: a disk image lacks its path"));
            return NULL;
        }

        if (!(identity = qemuTemplateRecordedIdentity(nodes[i])))
            return NULL;

        g_hash_table_insert(disks, g_steal_pointer(&path), identity);
    }

    return g_steal_pointer(&disks);
}


/**
 * qemuTemplateCheckBlockCommit:
 * @vm: domain object
 * @disk: disk of @vm
 * @base: layer of @disk's chain a block commit writes into
 *
 * A clone's disk is its own overlay, and the layers it adds above it, on
 * the template's read-only base: committing into the base would change
 * the disk of every clone.
 *
 * Returns 0 if the commit stays in the clone's own layers, -1 with an
 * error reported otherwise.
 */
int
qemuTemplateCheckBlockCommit(virDomainObj *vm,
                             virDomainDiskDef *disk,
                             virStorageSource *base)
{
    g_autofree char *record = NULL;
    g_autoptr(GHashTable) disks = NULL;
    virStorageSource *n;

    if (!qemuTemplateIsClone(vm->def))
        return 0;

    /* The record says which images are the template's, also for a clone
     * restored from a save image, which knows no overlays of its own. */
    record = qemuTemplateRecordPath(QEMU_DOMAIN_PRIVATE(vm)->driver,
                                    vm->def->mem.tmpl->path);
    if (!(disks = qemuTemplateRecordDisks(record)))
        return -1;

    for (n = disk->src; virStorageSourceIsBacking(n); n = n->backingStore) {
        if (n->path && g_hash_table_contains(disks, n->path))
            break;
        if (n == base)
            return 0;
    }

    virReportError(VIR_ERR_OPERATION_INVALID,
                   _("disk '%1$s' of clone '%2$s' can't be committed into its template's image"),
                   disk->dst, vm->def->name);
    return -1;
}


/**
 * qemuTemplateCheckNotImage:
 * @driver: qemu driver
 * @path: path of a save image
 * @data: its header and XML
 *
 * A template image holds what every clone of the template starts from,
 * and is recorded as it was written: nothing may rewrite it. The image of
 * a domain whose RAM is kept in place holds no RAM either, but is its own:
 * its XML may change as any save image's.
 *
 * Returns 0 if @path is not a template image, -1 with an error reported
 * if it is or cannot be told.
 */
int
qemuTemplateCheckNotImage(virQEMUDriver *driver,
                          const char *path,
                          virQEMUSaveData *data)
{
    g_autoptr(qemuDomainSaveCookie) cookie = NULL;

    if (virSaveCookieParseString(data->cookie, (virObject **)&cookie,
                                 virDomainXMLOptionGetSaveCookie(driver->xmlopt)) < 0)
        return -1;

    if (cookie && cookie->ignoreShared && !cookie->ramKept) {
        virReportError(VIR_ERR_OPERATION_INVALID,
                       _("'%1$s' is a template image: what clones start from can't be changed"),
                       path);
        return -1;
    }

    return 0;
}


/**
 * qemuTemplateCheckCloneSource:
 * @vm: domain object of a clone (see qemuTemplateIsClone())
 *
 * A clone restored from a save image, or reverted to, maps the RAM files
 * its XML names: they must be those of a template that is published and
 * holds them unchanged, not any directory under memory_template_dir.
 * Called with the clone's object locked, so it looks at the template's
 * files, not at its domain object: locking that would invert the order of
 * the domain list lock and a domain's.
 *
 * Returns 0 if they are, -1 with an error reported otherwise.
 */
int
qemuTemplateCheckCloneSource(virDomainObj *vm)
{
    g_autofree char *image = qemuTemplateImagePath(vm->def);
    g_autofree char *record = NULL;

    if (!virFileExists(image)) {
        virReportError(VIR_ERR_OPERATION_INVALID,
                       _("domain '%1$s' is a clone of no template that exists"),
                       vm->def->name);
        return -1;
    }

    record = qemuTemplateRecordPath(QEMU_DOMAIN_PRIVATE(vm)->driver,
                                    vm->def->mem.tmpl->path);
    return qemuTemplateRecordCheck(record);
}


/* The group QEMU runs as for @def, which may read the template's files. */
static gid_t
qemuTemplateQEMUGroup(virQEMUDriverConfig *cfg,
                      virDomainDef *def)
{
    g_autoptr(virStorageSource) src = virStorageSourceNew();
    gid_t gid;

    qemuDomainGetImageIds(cfg, def, src, NULL, NULL, &gid);
    return gid;
}


/* Returns 1 if it changed @node, which then goes back to the record. */
typedef int (*qemuTemplateBaseFunc)(int fd,
                                    const char *path,
                                    const struct stat *sb,
                                    xmlNodePtr node,
                                    void *opaque);

/* Opens the disk image a record's @node names, at @path, as root: by
 * descriptor, as anyone could replace it, and only if it is the file
 * recorded, unchanged since (qemuTemplateFileIdentity(), one name).
 * Returns 1 with @fd and @sb filled if it is, 0 if it is gone or not the
 * one recorded, with an error reported either way, -1 with an error
 * reported if that can't be told. */
static int
qemuTemplateBaseOpen(xmlNodePtr node,
                     const char *path,
                     int *fd,
                     struct stat *sb)
{
    g_autofree char *was = NULL;
    g_autofree char *now = NULL;

    if (!(was = qemuTemplateRecordedIdentity(node)))
        return -1;

    /* not there, a link or something else in its place */
    if ((*fd = qemuTemplateOpenRegular(path, sb)) < 0)
        return errno == ENOENT || errno == ELOOP || errno == EINVAL ? 0 : -1;

    if (sb->st_nlink == 1 &&
        !(now = qemuTemplateFileIdentity(*fd, path, sb, NULL)))
        return -1;

    if (!now) {
        virReportError(VIR_ERR_OPERATION_FAILED,
                       _("'%1$s' is not the disk image the template recorded"), path);
        return 0;
    }

    if (STRNEQ(was, now)) {
        virReportError(VIR_ERR_OPERATION_FAILED,
                       _("template file '%1$s' was changed after the template was created: it had %2$s, it has %3$s"),
                       path, was, now);
        return 0;
    }

    return 1;
}


typedef enum {
    /* a disk image gone or not the one recorded is skipped, not an error */
    QEMU_TEMPLATE_BASES_SKIP_MISSING = 1 << 0,
    /* a template without a record (a restored backup) has nothing to do */
    QEMU_TEMPLATE_BASES_NO_RECORD_OK = 1 << 1,
    /* only those the daemon took (giving them back) */
    QEMU_TEMPLATE_BASES_TAKEN = 1 << 2,
} qemuTemplateBasesFlags;

/* Calls @func on each disk image of the record of @dir, as
 * qemuTemplateBaseOpen() opens it, with @flags of qemuTemplateBasesFlags:
 * with none, each must be found as recorded (making a template, removing
 * one). */
static int
qemuTemplateBasesForEach(virQEMUDriver *driver,
                         const char *dir,
                         unsigned int flags,
                         qemuTemplateBaseFunc func,
                         void *opaque)
{
    g_autofree char *record = qemuTemplateRecordPath(driver, dir);
    g_autoptr(xmlDoc) doc = NULL;
    g_autofree xmlNodePtr *nodes = NULL;
    int nnodes = 0;
    size_t i;
    bool changed = false;
    bool missing = false;
    bool noRecordOK = flags & QEMU_TEMPLATE_BASES_NO_RECORD_OK;
    int ret = 0;
    int rc;

    if (!(nodes = qemuTemplateRecordRead(record, noRecordOK ? &missing : NULL,
                                         &doc, &nnodes))) {
        /* what the record kept cannot be given back */
        if (missing) {
            VIR_WARN("Template record '%s' is gone: the disk images of template directory '%s' keep their owner and mode",
                     record, dir);
            return 0;
        }
        return -1;
    }

    for (i = 0; i < nnodes; i++) {
        g_autofree char *path = NULL;
        g_autofree char *taken = virXMLPropString(nodes[i], "taken");
        VIR_AUTOCLOSE fd = -1;
        struct stat sb;

        if (!virXMLNodeNameEqual(nodes[i], "base") ||
            (!taken && (flags & QEMU_TEMPLATE_BASES_TAKEN)))
            continue;

        if (!(path = virXMLPropString(nodes[i], "path"))) {
            virReportError(VIR_ERR_XML_ERROR, "%s",
                           _("template record: a base lacks its path"));
            ret = -1;
            break;
        }

        if ((rc = qemuTemplateBaseOpen(nodes[i], path, &fd, &sb)) <= 0) {
            if (rc == 0 && (flags & QEMU_TEMPLATE_BASES_SKIP_MISSING)) {
                VIR_WARN("Leaving '%s' of template directory '%s' alone: %s",
                         path, dir, virGetLastErrorMessage());
                virResetLastError();
                continue;
            }
            ret = -1;
            break;
        }

        if ((rc = func(fd, path, &sb, nodes[i], opaque)) < 0) {
            /* it may have changed the node before failing */
            changed = true;
            ret = -1;
            break;
        }
        changed |= rc > 0;
    }

    /* what was changed before a failure too */
    if (changed && qemuTemplateRecordStoreDoc(record, doc) < 0)
        return -1;

    return ret;
}


/* qemuTemplateBaseProtect() changes the owner and mode of each once the
 * producer has stopped, when the guest's state is only in the template:
 * try both now, changing nothing (root may not, on NFS with root_squash). */
static int
qemuTemplateBaseCheck(int fd,
                      const char *path,
                      const struct stat *sb,
                      xmlNodePtr node G_GNUC_UNUSED,
                      void *opaque G_GNUC_UNUSED)
{
    if (fchown(fd, sb->st_uid, sb->st_gid) < 0 ||
        fchmod(fd, sb->st_mode & 07777) < 0) {
        virReportSystemError(errno, _("unable to take template base '%1$s'"), path);
        return -1;
    }

    return 0;
}


struct qemuTemplateBasesProtectData {
    virQEMUDriver *driver;
    virDomainDef *labelDef;
    gid_t gid;
};

static int
qemuTemplateBaseProtect(int fd,
                        const char *path,
                        const struct stat *sb,
                        xmlNodePtr node,
                        void *opaque)
{
    struct qemuTemplateBasesProtectData *data = opaque;
    const mode_t bits = S_IWUSR | S_IWGRP | S_IWOTH | S_IRGRP;
    g_autofree char *fdpath = NULL;
    g_autofree char *owner = NULL;
    g_autofree char *group = NULL;
    g_autofree char *mode = NULL;
    g_autofree char *done = NULL;
    g_autofree char *taken = NULL;

    /* Protected before: a clone or a daemon start after a crash finds it
     * so, or an administrator cleared the flag since, which the record's
     * modification time then tells. */
    if (virFileIsImmutable(fd) ||
        (done = virXMLPropString(node, "protected")))
        return 0;

    /* What the stopped producer left, which its security drivers restored,
     * is what qemuTemplateBaseRelease() gives back; not what an earlier
     * attempt that failed half-way made of it. */
    if (!(taken = virXMLPropString(node, "taken"))) {
        owner = g_strdup_printf("%u", (unsigned int) sb->st_uid);
        group = g_strdup_printf("%u", (unsigned int) sb->st_gid);
        mode = g_strdup_printf("%04o", (unsigned int) (sb->st_mode & 07777));
        xmlSetProp(node, BAD_CAST "owner", BAD_CAST owner);
        xmlSetProp(node, BAD_CAST "group", BAD_CAST group);
        xmlSetProp(node, BAD_CAST "mode", BAD_CAST mode);
        xmlSetProp(node, BAD_CAST "taken", BAD_CAST "yes");
    }

    if (fchown(fd, geteuid(), data->gid) < 0 ||
        fchmod(fd, ((sb->st_mode & ~bits) | S_IRGRP) & 0777) < 0) {
        virReportSystemError(errno, _("unable to make template base '%1$s' read-only"),
                             path);
        return -1;
    }

    /* through the descriptor: @path may lead elsewhere by now */
    fdpath = g_strdup_printf("/proc/self/fd/%d", fd);
    if (qemuSecurityDomainSetPathLabelRO(data->driver, data->labelDef, fdpath) < 0)
        return -1;

    if (qemuTemplateSetImmutable(fd, path, true) < 0)
        return -1;

    xmlSetProp(node, BAD_CAST "protected", BAD_CAST "yes");
    return 1;
}


/**
 * qemuTemplateBasesProtect:
 * @driver: qemu driver
 * @vm: inactive domain holding a template, locked
 * @labelDef: the definition the producer ran with, or NULL
 * @strict: whether a disk image that is not the one recorded is an error
 *
 * While the template exists its disk images are the base of every clone's
 * overlay: nobody may write them, not even the domain they came from. They
 * become the daemon's, readable by the group QEMU runs as, get the
 * read-only label all domains share and are made immutable, so that no
 * domain naming them as a disk can take them over: the clones' chains
 * then neither chown nor relabel them (qemuTemplateCloneCreateOverlays()).
 * Their backing files are not taken: other domains may share them, as
 * read-only layers the security drivers label read-only; the record tells
 * if one was written. The files are those of the record, which the daemon wrote in its own
 * directory, whatever the domain's definition says now. Only once the
 * producer has stopped: stopping restores the labels of its disks, which
 * the security drivers cannot do on an immutable file. The labels are
 * those of the security models of @labelDef: a domain's inactive
 * definition may have none.
 *
 * Returns 0 on success, -1 with an error reported.
 */
int
qemuTemplateBasesProtect(virQEMUDriver *driver,
                         virDomainObj *vm,
                         virDomainDef *labelDef,
                         bool strict)
{
    g_autoptr(virQEMUDriverConfig) cfg = virQEMUDriverGetConfig(driver);
    struct qemuTemplateBasesProtectData data = {
        .driver = driver,
        .labelDef = labelDef ? labelDef : vm->def,
        .gid = qemuTemplateQEMUGroup(cfg, vm->def),
    };

    return qemuTemplateBasesForEach(driver, vm->def->mem.tmpl->path,
                                    strict ? 0 : (QEMU_TEMPLATE_BASES_SKIP_MISSING |
                                                  QEMU_TEMPLATE_BASES_NO_RECORD_OK),
                                    qemuTemplateBaseProtect, &data);
}


static int
qemuTemplateBaseRelease(int fd,
                        const char *path,
                        const struct stat *sb,
                        xmlNodePtr node,
                        void *opaque G_GNUC_UNUSED)
{
    const mode_t bits = S_IWUSR | S_IWGRP | S_IWOTH | S_IRGRP;
    g_autofree char *taken = virXMLPropString(node, "taken");
    unsigned int mode;
    unsigned int owner;
    unsigned int group;

    /* never taken: its owner and mode are still the domain's */
    if (!taken)
        return 0;

    if (virXMLPropUInt(node, "mode", 8, VIR_XML_PROP_REQUIRED, &mode) < 0 ||
        virXMLPropUInt(node, "owner", 10, VIR_XML_PROP_REQUIRED, &owner) < 0 ||
        virXMLPropUInt(node, "group", 10, VIR_XML_PROP_REQUIRED, &group) < 0)
        return -1;

    if (qemuTemplateSetImmutable(fd, path, false) < 0)
        return -1;

    /* no set-ID bits on a file of root's, whoever made them */
    if (fchown(fd, owner, group) < 0 ||
        fchmod(fd, ((sb->st_mode & ~bits) | (mode & bits)) & 0777) < 0) {
        virReportSystemError(errno, _("unable to give back template base '%1$s'"),
                             path);
        return -1;
    }

    /* to be taken again if the template stays */
    xmlUnsetProp(node, BAD_CAST "taken");
    xmlUnsetProp(node, BAD_CAST "protected");
    return 1;
}


/* A record of the template directory @dir that no template holds any
 * more: the disk images it took were not all given back, which
 * template-remove does. Returns 1 if there is one that took disk images,
 * 0 if there is none (one that took none is removed), -1 with an error
 * reported. */
static int
qemuTemplateRecordLeftover(virQEMUDriver *driver,
                           const char *dir)
{
    g_autofree char *record = qemuTemplateRecordPath(driver, dir);
    g_autoptr(xmlDoc) doc = NULL;
    g_autofree xmlNodePtr *nodes = NULL;
    bool missing = false;
    int nnodes = 0;
    size_t i;

    if (!(nodes = qemuTemplateRecordRead(record, &missing, &doc, &nnodes)))
        return missing ? 0 : -1;

    for (i = 0; i < nnodes; i++) {
        g_autofree char *taken = virXMLPropString(nodes[i], "taken");

        if (taken)
            return 1;
    }

    return qemuTemplateRecordRemove(record);
}


static int
qemuTemplateBaseFound(int fd G_GNUC_UNUSED,
                      const char *path G_GNUC_UNUSED,
                      const struct stat *sb G_GNUC_UNUSED,
                      xmlNodePtr node G_GNUC_UNUSED,
                      void *opaque G_GNUC_UNUSED)
{
    return 0;
}


/* Before giving back the disk images the template of @def took: each is
 * found as recorded, or none is given back, and the template stays whole. */
static int
qemuTemplateBasesCheckTaken(virQEMUDriver *driver,
                            const virDomainDef *def)
{
    g_autofree char *reason = NULL;

    if (qemuTemplateBasesForEach(driver, def->mem.tmpl->path,
                                 QEMU_TEMPLATE_BASES_TAKEN |
                                 QEMU_TEMPLATE_BASES_NO_RECORD_OK,
                                 qemuTemplateBaseFound, NULL) == 0)
        return 0;

    reason = g_strdup(virGetLastErrorMessage());
    virReportError(VIR_ERR_OPERATION_FAILED,
                   _("the disk images the template of domain '%1$s' took can't be given back: %2$s; mount their filesystem, or have template-remove --forget-missing-disks forget them"),
                   def->name, reason);
    return -1;
}


/* Marks the record @path as that of no template, before anything of it is
 * given back: a record kept with disk images still taken
 * (qemuTemplateRecordRelease()) brings no template back. */
static int
qemuTemplateRecordMarkReleased(const char *path)
{
    g_autoptr(xmlDoc) doc = NULL;
    g_autofree xmlNodePtr *nodes = NULL;
    int nnodes = 0;

    if (!(nodes = qemuTemplateRecordRead(path, NULL, &doc, &nnodes)))
        return -1;

    xmlSetProp(xmlDocGetRootElement(doc), BAD_CAST "released", BAD_CAST "yes");
    return qemuTemplateRecordStoreDoc(path, doc);
}


/* Whether the record @doc is that of no template any more. */
static bool
qemuTemplateRecordIsReleased(xmlDocPtr doc)
{
    g_autofree char *released = virXMLPropString(xmlDocGetRootElement(doc), "released");

    return !!released;
}


/* Gives back the disk images of a template that is no more (or never was)
 * and forgets its record. Each disk image taken must be found as recorded,
 * or nothing is given back, unless @keepMissing: those not found then stay
 * taken in the record, for a later attempt (their filesystem may not be
 * mounted yet when the daemon starts). */
static int
qemuTemplateRecordRelease(virQEMUDriver *driver,
                          const virDomainDef *def,
                          bool keepMissing)
{
    g_autofree char *path = qemuTemplateRecordPath(driver, def->mem.tmpl->path);
    g_autofree char *xml = NULL;
    int rc;

    if ((rc = qemuTemplateRecordLoad(path, &xml)) != 0)
        return rc < 0 ? -1 : 0;

    if ((!keepMissing && qemuTemplateBasesCheckTaken(driver, def) < 0) ||
        qemuTemplateRecordMarkReleased(path) < 0 ||
        qemuTemplateBasesForEach(driver, def->mem.tmpl->path,
                                 QEMU_TEMPLATE_BASES_TAKEN |
                                 (keepMissing ? QEMU_TEMPLATE_BASES_SKIP_MISSING : 0),
                                 qemuTemplateBaseRelease, NULL) < 0)
        return -1;

    if (keepMissing) {
        if ((rc = qemuTemplateRecordLeftover(driver, def->mem.tmpl->path)) > 0)
            VIR_WARN("Keeping template record '%s': disk images it took were not found as recorded; the next daemon start or template-remove of domain '%s' gives them back once they are, template-remove --forget-missing-disks forgets them",
                     path, def->name);
        return rc < 0 ? -1 : 0;
    }

    return qemuTemplateRecordRemove(path);
}


/* Whether @dir has the record of a template, or one that can't be read,
 * which keeps what it took. */
static bool
qemuTemplateHasRecord(virQEMUDriver *driver,
                      const char *dir)
{
    g_autofree char *record = qemuTemplateRecordPath(driver, dir);
    g_autoptr(xmlDoc) doc = NULL;
    g_autofree xmlNodePtr *nodes = NULL;
    bool missing = false;
    int nnodes = 0;

    if (!(nodes = qemuTemplateRecordRead(record, &missing, &doc, &nnodes))) {
        if (missing)
            return false;
        VIR_WARN("%s", virGetLastErrorMessage());
        virResetLastError();
        return true;
    }

    return !qemuTemplateRecordIsReleased(doc);
}


/* A daemon killed during template-create after qemuTemplateSetAccess(), or
 * during a save after qemuTemplateRAMTake(), leaves the template directory
 * its own and the RAM files its own, read-only and immutable, and their
 * owners before are not kept anywhere:
 * they go to the domain's QEMU as starting it would make them, so that
 * the producer resumed by job recovery can write its RAM and a later start
 * can open it again; those of a producer that is not running are removed.
 * Only files the daemon took, by descriptor. */
static void
qemuTemplateReclaimRAMFiles(virQEMUDriver *driver,
                            virDomainObj *vm)
{
    g_autoptr(virQEMUDriverConfig) cfg = virQEMUDriverGetConfig(driver);
    g_autoptr(virStorageSource) src = virStorageSourceNew();
    const char *dir = vm->def->mem.tmpl->path;
    g_auto(GStrv) files = NULL;
    VIR_AUTOCLOSE dirfd = -1;
    char **file;
    struct stat sb;
    uid_t uid;
    gid_t gid;

    if ((dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)) < 0 ||
        !(qemuTemplateDirIsTaken(dirfd) || qemuTemplateDirIsKept(dirfd)))
        return;

    /* A producer that is not running has nothing to label them for, and
     * its next start makes them anew. */
    if (!virDomainObjIsActive(vm)) {
        qemuTemplateMemoryRemove(vm->def);
        return;
    }

    qemuDomainGetImageIds(cfg, vm->def, src, NULL, &uid, &gid);
    if (!(files = qemuTemplateMemoryFiles(driver, vm->def)))
        return;

    for (file = files; *file; file++) {
        VIR_AUTOCLOSE fd = open(*file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);

        if (fd < 0 || fstat(fd, &sb) < 0 ||
            !S_ISREG(sb.st_mode) || sb.st_nlink != 1 ||
            (!virFileIsImmutable(fd) &&
             (sb.st_uid != geteuid() ||
              ((sb.st_mode & 07777) != (S_IRUSR | S_IRGRP) &&
               (sb.st_mode & 07777) != S_IRUSR))))
            continue;

        VIR_INFO("Giving template RAM file '%s' back to domain '%s'",
                 *file, vm->def->name);
        if (qemuTemplateSetImmutable(fd, *file, false) < 0 ||
            fchown(fd, uid, gid) < 0 ||
            fchmod(fd, S_IRUSR | S_IWUSR) < 0 ||
            qemuSecurityDomainSetPathLabel(driver, vm, *file, false) < 0) {
            VIR_WARN("Unable to give back template RAM file '%s'", *file);
            virResetLastError();
        }
    }

    if (fchown(dirfd, uid, gid) < 0 ||
        fchmod(dirfd, S_IRWXU) < 0 ||
        qemuSecurityDomainSetPathLabel(driver, vm, dir, true) < 0) {
        VIR_WARN("Unable to give back template directory '%s'", dir);
        virResetLastError();
    }
}


/* Removes the files of one clone directory of the clone area @areafd
 * without following links: QEMU may write the template directory. */
static void
qemuTemplateRemoveCloneDirAt(int areafd,
                             const char *name)
{
    g_autoptr(DIR) dirp = NULL;
    struct dirent *ent;
    int fd;

    if ((fd = openat(areafd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)) < 0)
        return;

    if (!(dirp = fdopendir(fd))) {
        VIR_FORCE_CLOSE(fd);
        return;
    }

    while (virDirRead(dirp, &ent, name) > 0) {
        if (unlinkat(dirfd(dirp), ent->d_name, 0) < 0)
            VIR_WARN("Unable to remove '%s' of clone '%s': %s",
                     ent->d_name, name, g_strerror(errno));
    }

    if (unlinkat(areafd, name, AT_REMOVEDIR) < 0)
        VIR_WARN("Unable to remove the directory of clone '%s': %s",
                 name, g_strerror(errno));
}


/* Overlays of clones that a killed daemon never started: clone directories
 * with no running domain of their name (status XML) and not kept for a
 * save image of a clone. */
static void
qemuTemplateRemoveStrayOverlays(virQEMUDriver *driver,
                                const char *dir)
{
    g_autoptr(virQEMUDriverConfig) cfg = virQEMUDriverGetConfig(driver);
    g_autofree char *area = qemuTemplateCloneArea(dir);
    g_autoptr(DIR) dirp = NULL;
    struct dirent *ent;
    VIR_AUTOCLOSE areafd = -1;
    int fd;

    if ((areafd = open(area, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)) < 0 ||
        (fd = dup(areafd)) < 0)
        return;

    if (!(dirp = fdopendir(fd))) {
        VIR_FORCE_CLOSE(fd);
        return;
    }

    while (virDirRead(dirp, &ent, area) > 0) {
        g_autofree char *status = g_strdup_printf("%s/%s.xml", cfg->stateDir,
                                                  ent->d_name);
        g_autofree char *saved = g_strdup_printf("%s/%s", ent->d_name,
                                                 QEMU_TEMPLATE_SAVED_MARK);

        if (virFileExists(status) ||
            faccessat(areafd, saved, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
            continue;

        VIR_INFO("Removing overlays of clone '%s' that never started", ent->d_name);
        qemuTemplateRemoveCloneDirAt(areafd, ent->d_name);
    }
}


/* Opens the directory that holds the template directory @dir, which must
 * be out of every QEMU's reach at each level (qemuTemplateOpenTrustedDir()):
 * whoever may rename a template directory, or a directory on the way to
 * it, makes the daemon take that template for gone (qemuTemplateIsGone()).
 * Returns the descriptor, or -1 with an error reported. */
static int
qemuTemplateOpenParentDir(const char *dir)
{
    g_autofree char *parent = g_path_get_dirname(dir);
    bool untrusted;
    int fd;

    if ((fd = qemuTemplateOpenTrustedDir(parent, &untrusted)) >= 0)
        return fd;

    if (untrusted)
        virReportError(VIR_ERR_CONFIG_UNSUPPORTED,
                       _("'%1$s' must be in directories only the daemon may change: see memory_template_dir in qemu.conf"),
                       parent);
    else
        virReportSystemError(errno, _("unable to open '%1$s'"), parent);
    return -1;
}


struct qemuTemplateCloneSearch {
    virDomainObj *tmpl;
    const char *dir;
    bool found;
};

static int
qemuTemplateFindRunningClone(virDomainObj *vm,
                             void *opaque)
{
    struct qemuTemplateCloneSearch *search = opaque;

    if (vm == search->tmpl)
        return 0;

    virObjectLock(vm);
    if (virDomainObjIsActive(vm) && qemuTemplateIsClone(vm->def) &&
        STREQ_NULLABLE(vm->def->mem.tmpl->path, search->dir))
        search->found = true;
    virObjectUnlock(vm);
    return 0;
}


/* Whether a clone of the template @tmpl holds runs. The clone area tells
 * as long as the template directory exists; this asks the domains, with
 * @tmpl, locked by the caller in a job, unlocked meanwhile: no domain is
 * locked while another is. No clone of a template without its directory
 * starts meanwhile (qemuTemplateCheckDir()). */
static bool
qemuTemplateHasRunningClone(virQEMUDriver *driver,
                            virDomainObj *tmpl)
{
    /* a define, which takes no job, may replace tmpl->def meanwhile */
    g_autofree char *dir = g_strdup(tmpl->def->mem.tmpl->path);
    struct qemuTemplateCloneSearch search = {
        .tmpl = tmpl,
        .dir = dir,
    };

    virObjectUnlock(tmpl);
    virDomainObjListForEach(driver->domains, false,
                            qemuTemplateFindRunningClone, &search);
    virObjectLock(tmpl);
    return search.found;
}


/* A template directory missing at daemon start may only be out of sight:
 * on a filesystem not mounted yet, or a tmpfs mounted anew since. Its
 * template is gone for good only if no QEMU could have renamed it away
 * (qemuTemplateOpenParentDir()), the directory that held it is on the
 * filesystem the template was made on (qemuTemplateFilesystemId()), and
 * no clone still runs on its disk
 * images. Otherwise @vm keeps its template, without files, until
 * template-remove. Called from qemuTemplateLoad()'s walk of the domain
 * list, which the search for clones walks again: nested read locks, while
 * nothing waits to write it before the daemon serves clients. */
static bool
qemuTemplateIsGone(virQEMUDriver *driver,
                   virDomainObj *vm)
{
    const char *dir = vm->def->mem.tmpl->path;
    g_autofree char *record = qemuTemplateRecordPath(driver, dir);
    g_autoptr(xmlDoc) doc = NULL;
    g_autofree xmlNodePtr *nodes = NULL;
    unsigned long long fsid = 0;
    unsigned long long recorded;
    VIR_AUTOCLOSE parentfd = -1;
    bool missing = false;
    int nnodes = 0;

    if (!(nodes = qemuTemplateRecordRead(record, &missing, &doc, &nnodes))) {
        /* no record, no template ever made */
        if (missing)
            return true;
        VIR_WARN("Keeping the template of domain '%s': %s",
                 vm->def->name, virGetLastErrorMessage());
        virResetLastError();
        return false;
    }

    /* given up before, with disk images it did not find */
    if (qemuTemplateRecordIsReleased(doc))
        return true;

    /* none recorded, or none the filesystem has (0): kept */
    if (virXMLPropULongLong(xmlDocGetRootElement(doc), "fsid", 10,
                            VIR_XML_PROP_NONE, &recorded) <= 0 || recorded == 0 ||
        (parentfd = qemuTemplateOpenParentDir(dir)) < 0 ||
        qemuTemplateFilesystemId(parentfd, &fsid) < 0 || fsid != recorded) {
        VIR_WARN("Keeping the template of domain '%s' without its directory '%s': "
                 "it is not on the filesystem the template was made on, or not the daemon's alone; "
                 "template-remove gives its disk images back",
                 vm->def->name, dir);
        virResetLastError();
        return false;
    }

    if (qemuTemplateHasRunningClone(driver, vm)) {
        VIR_WARN("Keeping the template of domain '%s' without its directory '%s': clones of it run",
                 vm->def->name, dir);
        return false;
    }

    return true;
}


/* A template is reached through its directory: a symbolic link there
 * would let whoever can change it pick the files a template is made of or
 * the files its clones map. Once @created, the directory is the daemon's
 * (see qemuTemplateSetAccess()). */
static int
qemuTemplateCheckDir(const char *dir,
                     bool created)
{
    struct stat sb;

    if (lstat(dir, &sb) < 0) {
        virReportSystemError(errno, _("template directory '%1$s' is not usable"), dir);
        return -1;
    }

    if (S_ISLNK(sb.st_mode)) {
        virReportError(VIR_ERR_OPERATION_INVALID,
                       _("template directory '%1$s' is a symbolic link"), dir);
        return -1;
    }

    if (!S_ISDIR(sb.st_mode)) {
        virReportError(VIR_ERR_OPERATION_INVALID,
                       _("template directory '%1$s' is not a directory"), dir);
        return -1;
    }

    if (created && sb.st_uid != geteuid()) {
        virReportError(VIR_ERR_OPERATION_INVALID,
                       _("template directory '%1$s' is not owned by the daemon"),
                       dir);
        return -1;
    }

    return 0;
}


/* RAM kept in place for a save image: see qemuTemplateRAMKeep(). */

static char *
qemuTemplateRAMRecordPath(virQEMUDriver *driver,
                          const char *dir)
{
    g_autofree char *records = qemuTemplateRecordDir(driver);
    g_autofree char *uuid = g_path_get_basename(dir);

    return g_strdup_printf("%s/%s-saved.xml", records, uuid);
}


/* Reads the record of the RAM files of @def kept in place. Returns 0 with
 * @doc and @ctxt set, 1 if there is none, -1 with an error reported. */
static int
qemuTemplateRAMRecordRead(virQEMUDriver *driver,
                          const virDomainDef *def,
                          xmlDocPtr *doc,
                          xmlXPathContextPtr *ctxt)
{
    g_autofree char *record = qemuTemplateRAMRecordPath(driver, def->mem.tmpl->path);
    g_autofree char *xml = NULL;
    int rc;

    if ((rc = qemuTemplateRecordLoad(record, &xml)) != 0)
        return rc;

    if (!(*doc = virXMLParse(NULL, xml, record, "keptRAM", ctxt, NULL, false)))
        return -1;

    return 0;
}


/**
 * qemuTemplateRAMIsKept:
 * @driver: qemu driver
 * @def: domain definition
 *
 * Returns 1 if the RAM files of @def, a template producer, are kept in
 * place for a save image, 0 if not, -1 with an error reported if that
 * can't be told.
 */
int
qemuTemplateRAMIsKept(virQEMUDriver *driver,
                      const virDomainDef *def)
{
    g_autofree char *record = NULL;
    g_autofree char *xml = NULL;
    int rc;

    if (!qemuTemplateIsProducer(def))
        return 0;

    record = qemuTemplateRAMRecordPath(driver, def->mem.tmpl->path);
    if ((rc = qemuTemplateRecordLoad(record, &xml)) < 0)
        return -1;

    return rc == 0;
}


/* At daemon start: the RAM of @vm stays kept for its image while @vm is
 * stopped, saved but not stopped yet (job recovery stops it), or still
 * starting up to restore it (the reconnect stops it, and the next restore
 * takes the files again). The record of a domain that may have run on its
 * RAM files is stale: it goes, and the files go back to the domain.
 * Returns true if the RAM stays kept. */
static bool
qemuTemplateRAMLoad(virQEMUDriver *driver,
                    virDomainObj *vm)
{
    g_autofree char *record = NULL;
    int reason;
    int kept;

    if ((kept = qemuTemplateRAMIsKept(driver, vm->def)) < 0) {
        VIR_WARN("%s", virGetLastErrorMessage());
        virResetLastError();
        return true;
    }

    if (!kept)
        return false;

    if (!virDomainObjIsActive(vm) && !virFileExists(vm->def->mem.tmpl->path)) {
        VIR_WARN("The RAM of domain '%s' kept in place for a save image is gone: the image can't be restored",
                 vm->def->name);
        record = qemuTemplateRAMRecordPath(driver, vm->def->mem.tmpl->path);
        if (qemuTemplateRecordRemove(record) < 0) {
            VIR_WARN("%s", virGetLastErrorMessage());
            virResetLastError();
            return true;
        }
        return false;
    }

    /* The reconnect stops a domain still starting up: its vCPUs never ran.
     * Job recovery finishes a save that kept the RAM. */
    if (!virDomainObjIsActive(vm) ||
        vm->job->asyncJob == VIR_ASYNC_JOB_SAVE ||
        (virDomainObjGetState(vm, &reason) == VIR_DOMAIN_PAUSED &&
         reason == VIR_DOMAIN_PAUSED_STARTING_UP))
        return true;

    VIR_INFO("Domain '%s' runs on the RAM it kept for a save image: forgetting it",
             vm->def->name);
    record = qemuTemplateRAMRecordPath(driver, vm->def->mem.tmpl->path);
    if (qemuTemplateRecordRemove(record) < 0) {
        VIR_WARN("%s", virGetLastErrorMessage());
        virResetLastError();
        return true;
    }

    return false;
}


/**
 * qemuTemplateLoad:
 * @vm: domain object
 * @opaque: qemu driver
 *
 * Learns at daemon start whether @vm holds a template and finishes what a
 * daemon killed in the middle of template-create or of starting a clone
 * left: a partial image is dropped and the disk images and RAM files
 * given back, the disk images of an image that made it are protected, and
 * overlays of clones that never started are removed. A template whose
 * directory is missing is given back only if it is gone for good
 * (qemuTemplateIsGone()). Runs before the daemon serves any client.
 */
int
qemuTemplateLoad(virDomainObj *vm,
                 void *opaque)
{
    virQEMUDriver *driver = opaque;
    VIR_AUTOCLOSE dirfd = -1;
    g_autofree char *path = NULL;
    g_autofree char *partial = NULL;
    const char *dir;
    bool taken = false;
    bool dirMissing = false;

    virObjectLock(vm);
    if (qemuTemplateIsProducer(vm->def) && !qemuTemplateRAMLoad(driver, vm)) {
        dir = vm->def->mem.tmpl->path;
        path = qemuTemplateImagePath(vm->def);
        partial = g_strdup_printf("%s.partial", path);

        /* Until template-create takes it, the directory is the producer's
         * QEMU's: an image found in it then is not the daemon's. */
        vm->hasTemplate = false;
        if ((dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)) >= 0) {
            if ((taken = qemuTemplateDirIsTaken(dirfd))) {
                /* published, and not an old directory back after
                 * template-remove */
                vm->hasTemplate = virFileExists(path) &&
                                  qemuTemplateHasRecord(driver, dir);
                if (unlink(partial) < 0 && errno != ENOENT)
                    VIR_WARN("Unable to remove '%s': %s", partial, g_strerror(errno));
            }
        } else if (errno == ENOENT) {
            dirMissing = true;
            if (!virDomainObjIsActive(vm))
                vm->hasTemplate = !qemuTemplateIsGone(driver, vm);
        } else if (!virDomainObjIsActive(vm)) {
            VIR_WARN("Template directory '%s' of domain '%s' is not usable: %s",
                     dir, vm->def->name, g_strerror(errno));
            vm->hasTemplate = qemuTemplateHasRecord(driver, dir);
        }

        if (vm->hasTemplate) {
            /* A producer still running is stopped when the daemon
             * reconnects to it, which protects them (qemuProcessStop()). */
            if (!virDomainObjIsActive(vm) &&
                qemuTemplateBasesProtect(driver, vm, NULL, false) < 0)
                VIR_WARN("Unable to protect the disk images of template '%s'",
                         vm->def->name);
            if (!dirMissing)
                qemuTemplateRemoveStrayOverlays(driver, dir);
        } else if (!virDomainObjIsActive(vm) && (taken || dirMissing)) {
            /* No template is left: a template-create that did not publish
             * one, or a directory gone for good. The record is the
             * daemon's own, wherever the directory went. */
            if (qemuTemplateRecordRelease(driver, vm->def, true) < 0)
                VIR_WARN("Unable to give back the disk images of domain '%s'",
                         vm->def->name);
            qemuTemplateReclaimRAMFiles(driver, vm);
        } else {
            /* Not the disk images a running producer runs on, nor those
             * of a directory that is not the daemon's: what a record left
             * stays for template-remove (qemuTemplateRecordLeftover()). */
            qemuTemplateReclaimRAMFiles(driver, vm);
        }
    }
    virObjectUnlock(vm);
    return 0;
}


/* Whether the template of @vm, an inactive domain holding one, can be
 * discarded now: no clone of it is starting and no overlay of a clone,
 * running or saved, sits on its disk images, which become writable again.
 * Returns 0 if it can, -1 with an error reported otherwise. */
static int
qemuTemplateCheckDiscard(virDomainObj *vm)
{
    g_autofree char *area = qemuTemplateCloneArea(vm->def->mem.tmpl->path);
    qemuDomainObjPrivate *priv = vm->privateData;
    g_autoptr(DIR) dirp = NULL;
    struct dirent *ent;
    int rc;

    if (priv->templateClonesStarting > 0) {
        virReportError(VIR_ERR_OPERATION_INVALID,
                       _("clones of template '%1$s' are being started"),
                       vm->def->name);
        return -1;
    }

    /* The disk images become writable again: no clone may still be
     * running, or saved, on top of them. */
    if ((rc = virDirOpenIfExists(&dirp, area)) < 0)
        return -1;
    if (rc > 0 && (rc = virDirRead(dirp, &ent, area)) != 0) {
        if (rc > 0)
            virReportError(VIR_ERR_OPERATION_INVALID,
                           _("template '%1$s' still has overlays of clones in '%2$s' (clone '%3$s'): destroy its clones and remove the overlays of saved clones first"),
                           vm->def->name, area, ent->d_name);
        return -1;
    }

    /* A template kept without its directory (qemuTemplateIsGone()) has
     * no clone area to tell. */
    if (rc == 0 && !virFileExists(vm->def->mem.tmpl->path)) {
        if (qemuTemplateHasRunningClone(priv->driver, vm)) {
            virReportError(VIR_ERR_OPERATION_INVALID,
                           _("clones of template '%1$s' run: destroy them first"),
                           vm->def->name);
            return -1;
        }

        /* unlocked meanwhile */
        if (priv->templateClonesStarting > 0) {
            virReportError(VIR_ERR_OPERATION_INVALID,
                           _("clones of template '%1$s' are being started"),
                           vm->def->name);
            return -1;
        }
    }

    return 0;
}


/**
 * qemuTemplateDiscard:
 * @vm: inactive domain holding a template
 *
 * Removes the template image and the RAM files of @vm and gives its disk
 * images back: it is an ordinary domain again. Fails, and keeps the
 * template, if a disk image it took is not found as recorded (its
 * filesystem not mounted): virDomainTemplateRemove() can forget those.
 *
 * Returns 0 on success, -1 with an error reported.
 */
int
qemuTemplateDiscard(virDomainObj *vm)
{
    virQEMUDriver *driver = QEMU_DOMAIN_PRIVATE(vm)->driver;
    g_autofree char *path = qemuTemplateImagePath(vm->def);
    g_autofree char *area = qemuTemplateCloneArea(vm->def->mem.tmpl->path);

    if (qemuTemplateCheckDiscard(vm) < 0 ||
        qemuTemplateBasesCheckTaken(driver, vm->def) < 0)
        return -1;

    /* The disk images first: a template whose images could not all be
     * given back stays one (its clones protect them again), and a crash
     * here leaves one that the next daemon start protects again. */
    if (qemuTemplateBasesForEach(driver, vm->def->mem.tmpl->path,
                                 QEMU_TEMPLATE_BASES_TAKEN |
                                 QEMU_TEMPLATE_BASES_NO_RECORD_OK,
                                 qemuTemplateBaseRelease, NULL) < 0)
        return -1;

    /* Unpublished next: what is left after a crash is no template, whose
     * record the next daemon start releases (qemuTemplateLoad()). */
    if (unlink(path) < 0 && errno != ENOENT) {
        virReportSystemError(errno, _("unable to remove template image '%1$s'"), path);
        return -1;
    }
    vm->hasTemplate = false;

    if (qemuTemplateRecordRelease(driver, vm->def, false) < 0)
        return -1;

    if (rmdir(area) < 0 && errno != ENOENT)
        VIR_WARN("Unable to remove '%s': %s", area, g_strerror(errno));

    qemuTemplateMemoryRemove(vm->def);

    return 0;
}


/**
 * qemuTemplateCheckUndefine:
 * @vm: domain about to be undefined
 *
 * Checked before undefine removes anything of @vm (its managed save image,
 * NVRAM): the template it holds can be discarded, each disk image it took
 * is found to be given back, and no record of an earlier template keeps
 * disk images taken, which nothing could give back once the domain is
 * gone.
 *
 * Returns 0 if @vm may be undefined, -1 with an error reported otherwise.
 */
int
qemuTemplateCheckUndefine(virDomainObj *vm)
{
    virQEMUDriver *driver = QEMU_DOMAIN_PRIVATE(vm)->driver;
    int rc;

    if (vm->hasTemplate) {
        if (qemuTemplateCheckDiscard(vm) < 0 ||
            qemuTemplateBasesCheckTaken(driver, vm->def) < 0)
            return -1;
        return 0;
    }

    if (!qemuTemplateIsProducer(vm->def))
        return 0;

    if ((rc = qemuTemplateRecordLeftover(driver, vm->def->mem.tmpl->path)) > 0) {
        virReportError(VIR_ERR_OPERATION_INVALID,
                       _("disk images an earlier template of domain '%1$s' took are still taken: give them back with template-remove first"),
                       vm->def->name);
        return -1;
    }

    return rc;
}


/* The RAM kept in place for a save image of a stopped domain is found
 * through the template memory of @oldDef: @newDef must keep it. Returns 0
 * if it does, or nothing is kept, -1 with an error reported otherwise. */
static int
qemuTemplateRAMCheckRedefine(virQEMUDriver *driver,
                             const virDomainDef *oldDef,
                             const virDomainDef *newDef)
{
    int kept;

    if ((kept = qemuTemplateRAMIsKept(driver, oldDef)) <= 0)
        return kept;

    if (qemuTemplateIsProducer(newDef) &&
        STREQ(newDef->mem.tmpl->path, oldDef->mem.tmpl->path))
        return 0;

    virReportError(VIR_ERR_OPERATION_INVALID,
                   _("the RAM of domain '%1$s' is kept in place for a save image: restore it, or discard it with start --force-boot, before the template memory changes"),
                   oldDef->name);
    return -1;
}


/**
 * qemuTemplateCheckRedefine:
 * @vm: domain object, locked
 * @oldDef: persistent definition of @vm before the redefinition, or NULL
 *          if @vm was transient
 * @newDef: its new persistent definition
 *
 * A domain making or holding a template keeps its template memory, which
 * names the template's directory, and so does one whose earlier template
 * left disk images taken in its record, until template-remove gives them
 * back, or whose RAM is kept in place for a save image (a stopped domain).
 * The rest of its definition may change: clones start from the
 * definition saved in the template, as a restore does from a managed save
 * image.
 *
 * Returns 0 if @newDef may replace @oldDef, -1 with an error reported
 * otherwise.
 */
int
qemuTemplateCheckRedefine(virDomainObj *vm,
                          virDomainDef *oldDef,
                          virDomainDef *newDef)
{
    virDomainDef *tmplDef;
    int leftover = 0;

    if (oldDef && !virDomainObjIsActive(vm) &&
        qemuTemplateRAMCheckRedefine(QEMU_DOMAIN_PRIVATE(vm)->driver,
                                     oldDef, newDef) < 0)
        return -1;

    if (vm->hasTemplate && oldDef) {
        tmplDef = oldDef;
    } else if (virDomainObjIsActive(vm) && qemuTemplateIsProducer(vm->def)) {
        tmplDef = vm->def;
    } else if (oldDef && qemuTemplateIsProducer(oldDef)) {
        tmplDef = oldDef;
        leftover = qemuTemplateRecordLeftover(QEMU_DOMAIN_PRIVATE(vm)->driver,
                                              oldDef->mem.tmpl->path);
        if (leftover <= 0)
            return leftover;
    } else {
        return 0;
    }

    if (!qemuTemplateIsProducer(newDef) ||
        STRNEQ_NULLABLE(newDef->mem.tmpl->path, tmplDef->mem.tmpl->path)) {
        if (leftover)
            virReportError(VIR_ERR_OPERATION_INVALID,
                           _("disk images an earlier template of domain '%1$s' took are still taken: its new definition must keep its template memory until template-remove gives them back"),
                           vm->def->name);
        else
            virReportError(VIR_ERR_OPERATION_INVALID,
                           _("domain '%1$s' makes or holds a template: its new definition must keep its template memory"),
                           vm->def->name);
        return -1;
    }

    return 0;
}


/* Removes the overlays kept for saved clones of the template in @dir:
 * those whose directory in the clone area has the saved mark and whose
 * clone does not run. Restores of clones count as starting clones, which
 * the caller refused. */
static int
qemuTemplateRemoveSavedClones(virQEMUDriver *driver,
                              const char *dir)
{
    g_autoptr(virQEMUDriverConfig) cfg = virQEMUDriverGetConfig(driver);
    g_autofree char *area = qemuTemplateCloneArea(dir);
    g_autoptr(DIR) dirp = NULL;
    struct dirent *ent;
    int rc;

    if ((rc = virDirOpenIfExists(&dirp, area)) <= 0)
        return rc;

    /* All or nothing: the template stays for a clone that is not saved. */
    while ((rc = virDirRead(dirp, &ent, area)) > 0) {
        g_autofree char *status = g_strdup_printf("%s/%s.xml", cfg->stateDir,
                                                  ent->d_name);
        g_autofree char *saved = g_strdup_printf("%s/%s", ent->d_name,
                                                 QEMU_TEMPLATE_SAVED_MARK);

        if (virFileExists(status) ||
            faccessat(dirfd(dirp), saved, F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
            virReportError(VIR_ERR_OPERATION_INVALID,
                           _("clone '%1$s' of the template in '%2$s' is not saved: destroy it first"),
                           ent->d_name, dir);
            return -1;
        }
    }
    if (rc < 0)
        return -1;

    rewinddir(dirp);
    while ((rc = virDirRead(dirp, &ent, area)) > 0) {
        VIR_INFO("Removing overlays of saved clone '%s'", ent->d_name);
        qemuTemplateRemoveCloneDirAt(dirfd(dirp), ent->d_name);
    }

    return rc;
}


/* Drops from the record of @def's template the disk images it took that
 * are not found as recorded: nothing gives them their owner and mode back
 * then. */
static int
qemuTemplateRecordForgetMissing(virQEMUDriver *driver,
                                const virDomainDef *def)
{
    g_autofree char *record = qemuTemplateRecordPath(driver, def->mem.tmpl->path);
    g_autoptr(xmlDoc) doc = NULL;
    g_autofree xmlNodePtr *nodes = NULL;
    bool changed = false;
    bool missing = false;
    int nnodes = 0;
    size_t i;
    int rc;

    if (!(nodes = qemuTemplateRecordRead(record, &missing, &doc, &nnodes)))
        return missing ? 0 : -1;

    for (i = 0; i < nnodes; i++) {
        g_autofree char *path = NULL;
        g_autofree char *taken = virXMLPropString(nodes[i], "taken");
        VIR_AUTOCLOSE fd = -1;
        struct stat sb;

        if (!virXMLNodeNameEqual(nodes[i], "base") ||
            !(path = virXMLPropString(nodes[i], "path")))
            continue;

        /* whatever keeps it from being found, as asked */
        if ((rc = qemuTemplateBaseOpen(nodes[i], path, &fd, &sb)) > 0)
            continue;

        VIR_WARN("Forgetting disk image '%s' of template '%s'%s: %s",
                 path, def->name,
                 taken ? ", which stays owned by root, read-only and immutable" : "",
                 virGetLastErrorMessage());
        virResetLastError();
        xmlUnlinkNode(nodes[i]);
        xmlFreeNode(nodes[i]);
        changed = true;
    }

    if (!changed)
        return 0;

    return qemuTemplateRecordStoreDoc(record, doc);
}


/**
 * qemuTemplateRemove:
 * @driver: qemu driver
 * @vm: domain object
 * @flags: bitwise-OR of virDomainTemplateRemoveFlags
 *
 * Removes the template @vm holds, as virDomainTemplateRemove() asks.
 *
 * Returns 0 on success, -1 with an error reported.
 */
int
qemuTemplateRemove(virQEMUDriver *driver,
                   virDomainObj *vm,
                   unsigned int flags)
{
    qemuDomainObjPrivate *priv = vm->privateData;
    bool forget = flags & VIR_DOMAIN_TEMPLATE_REMOVE_FORGET_MISSING_DISKS;
    int rc;
    int ret = -1;

    if (virDomainObjBeginJob(vm, VIR_JOB_MODIFY) < 0)
        return -1;

    if (!vm->hasTemplate) {
        /* what an earlier template left, once nothing runs on it */
        if (!virDomainObjIsActive(vm) && qemuTemplateIsProducer(vm->def) &&
            (rc = qemuTemplateRecordLeftover(driver, vm->def->mem.tmpl->path)) != 0) {
            /* under no clone, running or saved */
            if (rc < 0 || qemuTemplateCheckDiscard(vm) < 0)
                goto endjob;

            /* unlocked meanwhile: a define may have dropped its memory */
            if (!qemuTemplateIsProducer(vm->def)) {
                virReportError(VIR_ERR_OPERATION_INVALID,
                               _("domain '%1$s' was redefined without template memory meanwhile"),
                               vm->def->name);
                goto endjob;
            }

            if (!forget || qemuTemplateRecordForgetMissing(driver, vm->def) == 0)
                ret = qemuTemplateRecordRelease(driver, vm->def, false);
            goto endjob;
        }

        virReportError(VIR_ERR_OPERATION_INVALID,
                       _("domain '%1$s' holds no template"), vm->def->name);
        goto endjob;
    }

    if (flags & VIR_DOMAIN_TEMPLATE_REMOVE_SAVED_CLONES) {
        if (priv->templateClonesStarting > 0) {
            virReportError(VIR_ERR_OPERATION_INVALID,
                           _("clones of template '%1$s' are being started"),
                           vm->def->name);
            goto endjob;
        }

        if (qemuTemplateRemoveSavedClones(driver, vm->def->mem.tmpl->path) < 0)
            goto endjob;
    }

    /* the discard checks first: what is forgotten is forgotten */
    if (forget &&
        (qemuTemplateCheckDiscard(vm) < 0 ||
         qemuTemplateRecordForgetMissing(driver, vm->def) < 0))
        goto endjob;

    ret = qemuTemplateDiscard(vm);

 endjob:
    virDomainObjEndJob(vm);
    return ret;
}


/* Each clone would bind the socket a device listens on at a path of the
 * XML, taking it over from the clone before: its console, agent or display
 * would reach another guest. Those libvirt makes are not in the template
 * image (in the domain's channel directory @channelDir, or generated), and
 * files are renamed per clone (qemuTemplateCloneChardevPaths()). */
static int
qemuTemplateCheckSocket(const virDomainChrSourceDef *src,
                        const char *channelDir)
{
    const char *rest;

    if (!src || src->type != VIR_DOMAIN_CHR_TYPE_UNIX ||
        !src->data.nix.listen || !src->data.nix.path)
        return 0;

    if (channelDir && (rest = STRSKIP(src->data.nix.path, channelDir)) &&
        *rest == '/')
        return 0;

    virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                   _("a device listens on the socket '%1$s': every clone would take it over; leave its path to libvirt"),
                   src->data.nix.path);
    return -1;
}


static int
qemuTemplateCheckChrSocket(virDomainDef *def G_GNUC_UNUSED,
                           virDomainChrDef *chr,
                           void *opaque)
{
    return qemuTemplateCheckSocket(chr->source, opaque);
}


static int
qemuTemplateCheckSockets(virDomainObj *vm)
{
    qemuDomainObjPrivate *priv = vm->privateData;
    virDomainDef *def = vm->def;
    size_t i;
    size_t j;

    if (virDomainChrDefForeach(def, true, qemuTemplateCheckChrSocket,
                               priv->channelTargetDir) < 0)
        return -1;

    for (i = 0; i < def->nrngs; i++) {
        if (def->rngs[i]->backend == VIR_DOMAIN_RNG_BACKEND_EGD &&
            qemuTemplateCheckSocket(def->rngs[i]->source.chardev, NULL) < 0)
            return -1;
    }

    for (i = 0; i < def->nredirdevs; i++) {
        if (qemuTemplateCheckSocket(def->redirdevs[i]->source, NULL) < 0)
            return -1;
    }

    for (i = 0; i < def->nsmartcards; i++) {
        if (def->smartcards[i]->type == VIR_DOMAIN_SMARTCARD_TYPE_PASSTHROUGH &&
            qemuTemplateCheckSocket(def->smartcards[i]->data.passthru, NULL) < 0)
            return -1;
    }

    for (i = 0; i < def->ngraphics; i++) {
        for (j = 0; j < def->graphics[i]->nListens; j++) {
            virDomainGraphicsListenDef *listen = &def->graphics[i]->listens[j];

            if (listen->type == VIR_DOMAIN_GRAPHICS_LISTEN_TYPE_SOCKET &&
                listen->socket && !listen->autoGenerated) {
                virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                               _("a display listens on the socket '%1$s': every clone would take it over; leave its path to libvirt"),
                               listen->socket);
                return -1;
            }
        }
    }

    return 0;
}


/* A clone writes to an overlay of each writable disk of its template; the
 * rest would be shared by all clones: a MAC address, NVRAM or TPM state. */
static int
qemuTemplateCreateCheckDevices(virDomainObj *vm)
{
    g_autoptr(virQEMUDriverConfig) cfg = virQEMUDriverGetConfig(QEMU_DOMAIN_PRIVATE(vm)->driver);
    g_autoptr(virStorageSource) image = virStorageSourceNew();
    virDomainDef *def = vm->def;
    virStorageSource *n;
    struct stat sb;
    uid_t uid;
    gid_t gid;
    size_t i;

    qemuDomainGetImageIds(cfg, def, image, NULL, &uid, &gid);

    for (i = 0; i < def->ndisks; i++) {
        virDomainDiskDef *disk = def->disks[i];

        if (!qemuTemplateDiskIsBase(disk))
            continue;

        if (virStorageSourceGetActualType(disk->src) != VIR_STORAGE_TYPE_FILE ||
            (disk->src->format != VIR_STORAGE_FILE_RAW &&
             disk->src->format != VIR_STORAGE_FILE_QCOW2)) {
            virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                           _("disk '%1$s' is writable and not a local raw or qcow2 file: clones can only write to overlays of such images"),
                           disk->dst);
            return -1;
        }

        if (disk->src->shared || disk->transient) {
            virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                           _("disk '%1$s' is shareable or transient: it cannot be the read-only base of clones"),
                           disk->dst);
            return -1;
        }

        /* Only image files are recorded and protected, each whole. */
        for (n = disk->src; virStorageSourceIsBacking(n); n = n->backingStore) {
            VIR_AUTOCLOSE fd = -1;

            if (!virStorageSourceIsLocalStorage(n) || !n->path) {
                virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                               _("disk '%1$s' has a backing image that is not a local file: it cannot be the read-only base of clones"),
                               disk->dst);
                return -1;
            }

            /* what the record refuses, before the guest pauses for it */
            if ((fd = qemuTemplateOpenDiskImage(n->path, n == disk->src, &sb)) < 0)
                return -1;

            if (n->dataFileStore || n->sliceStorage) {
                virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                               _("disk '%1$s' has an external data file or a slice: it cannot be the read-only base of clones"),
                               disk->dst);
                return -1;
            }

            /* Each clone's start gives the backing files to root and the
             * group QEMU runs as (qemuTemplateCloneCreateOverlays()). */
            if (n != disk->src && uid != 0 &&
                (!(sb.st_mode & S_IRGRP) || (sb.st_mode & (S_IWGRP | S_IWOTH)))) {
                virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                               _("backing file '%1$s' of disk '%2$s' has mode %3$04o: clones read it as group %4$u, so it must be readable by the group and writable only by its owner, as 0640 or 0644 are"),
                               n->path, disk->dst, (unsigned int) (sb.st_mode & 07777),
                               (unsigned int) gid);
                return -1;
            }
        }
    }

    if (def->nnets > 0) {
        virReportError(VIR_ERR_OPERATION_UNSUPPORTED, "%s",
                       _("templates with network interfaces are not supported: every clone would have the same MAC address; attach interfaces to clones instead"));
        return -1;
    }

    if (def->os.loader && def->os.loader->nvram) {
        virReportError(VIR_ERR_OPERATION_UNSUPPORTED, "%s",
                       _("templates with UEFI variable stores are not supported: every clone would write the same NVRAM file"));
        return -1;
    }

    if (def->ntpms > 0) {
        virReportError(VIR_ERR_OPERATION_UNSUPPORTED, "%s",
                       _("templates with a TPM are not supported: every clone would share its state"));
        return -1;
    }

    return qemuTemplateCheckSockets(vm);
}


static int
qemuTemplateSyncFile(const char *path)
{
    VIR_AUTOCLOSE fd = -1;
    struct stat sb;

    /* A disk path is the user's: whatever is put there, a FIFO or a
     * device, is not opened. */
    if ((fd = qemuTemplateOpenRegular(path, &sb)) < 0)
        return -1;

    if (fdatasync(fd) < 0) {
        virReportSystemError(errno, _("unable to sync '%1$s'"), path);
        return -1;
    }

    return 0;
}


/* The RAM files, the disk images and the image must be on disk before the
 * image is published: a clone must never see a template that is not all
 * there. */
static int
qemuTemplateSync(virQEMUDriver *driver,
                 virDomainObj *vm,
                 const char *image)
{
    g_auto(GStrv) files = NULL;
    g_autoptr(GPtrArray) paths = g_ptr_array_new_with_free_func(g_free);
    size_t i;
    int ret = 0;

    if (!(files = qemuTemplateMemoryFiles(driver, vm->def)))
        return -1;

    for (i = 0; files[i]; i++)
        g_ptr_array_add(paths, g_strdup(files[i]));
    for (i = 0; i < vm->def->ndisks; i++) {
        if (qemuTemplateDiskIsBase(vm->def->disks[i]))
            g_ptr_array_add(paths, g_strdup(vm->def->disks[i]->src->path));
    }
    g_ptr_array_add(paths, g_strdup(image));

    /* Gigabytes may go to disk: the async job keeps the domain as it is,
     * others may read it meanwhile (as in qemuDomainFileWrapperFDClose). */
    virObjectUnlock(vm);
    for (i = 0; i < paths->len && ret == 0; i++)
        ret = qemuTemplateSyncFile(g_ptr_array_index(paths, i));
    virObjectLock(vm);

    if (ret == 0 && virDomainObjCheckActive(vm) < 0)
        ret = -1;

    return ret;
}


/* Whether the security driver @model labels the domains' files. */
static bool
qemuTemplateHasSecurityModel(virQEMUDriver *driver,
                             const char *model)
{
    g_autofree virSecurityManager **mgrs = NULL;
    bool found = false;
    size_t i;

    qemuSecurityStackLock(driver->securityManager);
    if ((mgrs = qemuSecurityGetNested(driver->securityManager))) {
        for (i = 0; mgrs[i]; i++) {
            if (STREQ(qemuSecurityGetModel(mgrs[i]), model))
                found = true;
        }
    }
    qemuSecurityStackUnlock(driver->securityManager);
    return found;
}


/* Makes the DAC driver give @src the owner @label ("+UID:+GID") rather
 * than the user QEMU runs as, who could make it writable. */
static void
qemuTemplateSetDACLabel(virStorageSource *src,
                        const char *label)
{
    virSecurityDeviceLabelDef *seclabel = virSecurityDeviceLabelDefNew("dac");

    seclabel->relabel = true;
    seclabel->label = g_strdup(label);
    VIR_APPEND_ELEMENT(src->seclabels, src->nseclabels, seclabel);
}


/* What qemuTemplateSetAccess() took from the producer, by descriptor, to
 * give it back if template-create fails. */
typedef struct {
    int dirfd;
    struct stat dir;            /* owner and mode before */
    size_t nfiles;
    char **paths;
    int *fds;
    struct stat *files;
} qemuTemplateAccess;


static void
qemuTemplateAccessClear(qemuTemplateAccess *access)
{
    size_t i;

    VIR_FORCE_CLOSE(access->dirfd);
    for (i = 0; i < access->nfiles; i++) {
        VIR_FORCE_CLOSE(access->fds[i]);
        g_free(access->paths[i]);
    }
    g_clear_pointer(&access->paths, g_free);
    g_clear_pointer(&access->fds, g_free);
    g_clear_pointer(&access->files, g_free);
    access->nfiles = 0;
}


/* Adds the RAM file @path, open as @fd and found as @sb, to @access, which
 * owns @fd from now on. */
static void
qemuTemplateAccessAdd(qemuTemplateAccess *access,
                      const char *path,
                      int fd,
                      const struct stat *sb)
{
    access->paths = g_renew(char *, access->paths, access->nfiles + 1);
    access->fds = g_renew(int, access->fds, access->nfiles + 1);
    access->files = g_renew(struct stat, access->files, access->nfiles + 1);
    access->paths[access->nfiles] = g_strdup(path);
    access->fds[access->nfiles] = fd;
    access->files[access->nfiles++] = *sb;
}


/* Makes the RAM file @path, found as @sb in the directory the daemon took,
 * the daemon's and read-only to the group QEMU runs as (@gid): clones map
 * it read-only, and no QEMU may change it. By descriptor, so that it is
 * the file checked; the descriptor goes to @access. */
static int
qemuTemplateSetRAMFileOwner(qemuTemplateAccess *access,
                            const char *path,
                            const struct stat *sb,
                            gid_t gid)
{
    int fd;
    struct stat fdsb;

    if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK)) < 0) {
        virReportSystemError(errno, _("unable to open template RAM file '%1$s'"), path);
        return -1;
    }

    if (fstat(fd, &fdsb) < 0 ||
        fdsb.st_dev != sb->st_dev || fdsb.st_ino != sb->st_ino) {
        virReportError(VIR_ERR_OPERATION_FAILED,
                       _("template RAM file '%1$s' was replaced while the daemon took it"),
                       path);
        VIR_FORCE_CLOSE(fd);
        return -1;
    }

    qemuTemplateAccessAdd(access, path, fd, &fdsb);

    if (fchown(fd, geteuid(), gid) < 0 ||
        fchmod(fd, S_IRUSR | S_IRGRP) < 0) {
        virReportSystemError(errno, _("unable to make template RAM file '%1$s' read-only"),
                             path);
        return -1;
    }

    return 0;
}


/* Refuses anything but the RAM files @files in the template directory @dir,
 * taken as @was. */
static int
qemuTemplateCheckDirEntries(const char *dir,
                            const struct stat *was,
                            char **files)
{
    g_autoptr(DIR) dirp = NULL;
    struct dirent *ent;
    struct stat sb;
    int rc;

    if (virDirOpen(&dirp, dir) < 0)
        return -1;

    if (fstat(dirfd(dirp), &sb) < 0 ||
        sb.st_dev != was->st_dev || sb.st_ino != was->st_ino) {
        virReportError(VIR_ERR_OPERATION_FAILED,
                       _("template directory '%1$s' was replaced while the daemon took it"),
                       dir);
        return -1;
    }

    while ((rc = virDirRead(dirp, &ent, dir)) > 0) {
        g_autofree char *path = g_strdup_printf("%s/%s", dir, ent->d_name);

        if (!g_strv_contains((const char * const *) files, path)) {
            virReportError(VIR_ERR_OPERATION_FAILED,
                           _("unexpected '%1$s' in template directory '%2$s'"),
                           ent->d_name, dir);
            return -1;
        }
    }

    return rc;
}


/* Gives the template directory and its RAM files back to the producer,
 * owners, modes and labels, when template-create fails after
 * qemuTemplateSetAccess(): its QEMU runs on. The RAM files first, while
 * the directory is still the daemon's and nothing can replace them. A
 * producer stopped meanwhile has no labels to give (the caller removes the
 * files): only the immutable flag is cleared. */
static void
qemuTemplateGiveBack(virQEMUDriver *driver,
                     virDomainObj *vm,
                     qemuTemplateAccess *access)
{
    const char *dir = vm->def->mem.tmpl->path;
    virErrorPtr orig_err;
    size_t i;

    virErrorPreserveLast(&orig_err);

    for (i = 0; i < access->nfiles; i++) {
        if (qemuTemplateSetImmutable(access->fds[i], access->paths[i], false) < 0)
            VIR_WARN("Unable to give back template RAM file '%s'", access->paths[i]);
        if (!virDomainObjIsActive(vm))
            continue;
        if (fchown(access->fds[i], access->files[i].st_uid, access->files[i].st_gid) < 0 ||
            fchmod(access->fds[i], access->files[i].st_mode & 07777) < 0)
            VIR_WARN("Unable to give back template RAM file '%s': %s",
                     access->paths[i], g_strerror(errno));
        if (qemuSecurityDomainSetPathLabel(driver, vm, access->paths[i], false) < 0)
            VIR_WARN("Unable to relabel template RAM file '%s'", access->paths[i]);
    }

    if (access->dirfd >= 0 && virDomainObjIsActive(vm)) {
        if (fchown(access->dirfd, access->dir.st_uid, access->dir.st_gid) < 0 ||
            fchmod(access->dirfd, access->dir.st_mode & 07777) < 0)
            VIR_WARN("Unable to give back template directory '%s': %s",
                     dir, g_strerror(errno));
        if (qemuSecurityDomainSetPathLabel(driver, vm, dir, true) < 0)
            VIR_WARN("Unable to relabel template directory '%s'", dir);
    }

    virErrorRestore(&orig_err);
}


/* Until template-create, the producer's QEMU owns the template directory
 * and could put symbolic links where the daemon is about to write, chown
 * or label files. So the daemon first takes the directory, by descriptor
 * (mode 0711: clones only need to get through it), and only then checks
 * and relabels what is in it.
 *
 * The security drivers gave the directory and the RAM files the producer's
 * own labels, which clones, confined with labels of their own (sVirt),
 * cannot use. The RAM files become the daemon's, readable by the group QEMU
 * runs as, and they and the directory get the read-only MAC label all
 * domains share. Nothing restores these labels: the RAM files go with the
 * template, and a producer started again relabels the directory
 * (qemuProcessBuildDestroyMemoryPaths()). Nothing but the RAM files may be
 * in the directory then: the producer's QEMU could have left links where
 * the daemon is about to write as root.
 *
 * What was taken goes to @access, which the caller clears; if it fails
 * later, qemuTemplateGiveBack() gives it back. */
static int
qemuTemplateSetAccess(virQEMUDriver *driver,
                      virDomainObj *vm,
                      qemuTemplateAccess *access)
{
    g_autoptr(virQEMUDriverConfig) cfg = virQEMUDriverGetConfig(driver);
    const char *dir = vm->def->mem.tmpl->path;
    g_auto(GStrv) files = NULL;
    int dirfd;
    char **file;
    struct stat sb;
    gid_t gid = qemuTemplateQEMUGroup(cfg, vm->def);

    if ((dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)) < 0) {
        virReportSystemError(errno, _("unable to open template directory '%1$s'"), dir);
        return -1;
    }

    if (fstat(dirfd, &access->dir) < 0) {
        virReportSystemError(errno, _("unable to stat template directory '%1$s'"), dir);
        VIR_FORCE_CLOSE(dirfd);
        return -1;
    }
    access->dirfd = dirfd;

    if (fchown(dirfd, geteuid(), getegid()) < 0 ||
        fchmod(dirfd, QEMU_TEMPLATE_DIR_TAKEN_MODE) < 0) {
        virReportSystemError(errno, _("unable to take template directory '%1$s'"),
                             dir);
        goto error;
    }

    if (lstat(dir, &sb) < 0 ||
        sb.st_dev != access->dir.st_dev || sb.st_ino != access->dir.st_ino) {
        virReportError(VIR_ERR_OPERATION_FAILED,
                       _("template directory '%1$s' was replaced while the daemon took it"),
                       dir);
        goto error;
    }

    if (!(files = qemuTemplateMemoryFiles(driver, vm->def)) ||
        qemuTemplateCheckDirEntries(dir, &access->dir, files) < 0)
        goto error;

    for (file = files; *file; file++) {
        if (lstat(*file, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_nlink != 1) {
            virReportError(VIR_ERR_OPERATION_FAILED,
                           _("template RAM file '%1$s' is not a regular file of its own"),
                           *file);
            goto error;
        }

        if (qemuTemplateSetRAMFileOwner(access, *file, &sb, gid) < 0 ||
            qemuSecurityDomainSetPathLabelRO(driver, vm->def, *file) < 0 ||
            qemuTemplateSetImmutable(access->fds[access->nfiles - 1], *file, true) < 0)
            goto error;
    }

    if (qemuSecurityDomainSetPathLabelRO(driver, vm->def, dir) < 0)
        goto error;

    return 0;

 error:
    qemuTemplateGiveBack(driver, vm, access);
    return -1;
}


/**
 * qemuTemplateCreate:
 * @driver: qemu driver
 * @vm: running template producer, locked
 *
 * Saves the device state of @vm with x-ignore-shared next to its RAM
 * files, labels them for clones to use, records them, publishes the
 * template image once all is on disk, stops @vm while keeping the files
 * and makes its writable disk images read-only.
 *
 * Returns 0 on success, -1 with an error reported and @vm left running,
 * or stopped with a template that can't be cloned while its disk images
 * could not all be protected.
 */
int
qemuTemplateCreate(virQEMUDriver *driver,
                   virDomainObj *vm)
{
    qemuDomainObjPrivate *priv = vm->privateData;
    g_autoptr(qemuDomainSaveCookie) cookie = NULL;
    g_autoptr(qemuMigrationParams) saveParams = qemuMigrationParamsNew();
    virQEMUSaveData *data = NULL;
    virObjectEvent *event = NULL;
    g_autoptr(virDomainDef) liveDef = NULL;
    g_autofree char *xml = NULL;
    g_autofree char *path = NULL;
    g_autofree char *partial = NULL;
    bool was_running = false;
    bool dirTaken = false;
    bool recorded = false;
    qemuTemplateAccess access = { .dirfd = -1 };
    VIR_AUTOCLOSE parentfd = -1;
    int rc;
    int ret = -1;

    if (virDomainObjBeginAsyncJob(vm, VIR_ASYNC_JOB_TEMPLATE_CREATE,
                                  VIR_DOMAIN_JOB_OPERATION_TEMPLATE_CREATE, 0) < 0)
        return -1;

    if (virDomainObjCheckActive(vm) < 0)
        goto endjob;

    qemuDomainJobSetStatsType(vm->job->current,
                              QEMU_DOMAIN_JOB_STATS_TYPE_SAVEDUMP);

    if (!vm->persistent) {
        virReportError(VIR_ERR_OPERATION_INVALID, "%s",
                       _("cannot make a template of a transient domain"));
        goto endjob;
    }

    if (!qemuTemplateIsProducer(vm->def)) {
        virReportError(VIR_ERR_OPERATION_INVALID,
                       _("domain '%1$s' has no template memory: it needs <memoryBacking> with <source type='file'/>, <access mode='shared'/> and <template/>"),
                       vm->def->name);
        goto endjob;
    }

    if (vm->hasTemplate) {
        virReportError(VIR_ERR_OPERATION_INVALID,
                       _("domain '%1$s' already holds a template"), vm->def->name);
        goto endjob;
    }

    if (!qemuMigrationCapsGet(vm, QEMU_MIGRATION_CAP_X_IGNORE_SHARED)) {
        virReportError(VIR_ERR_OPERATION_UNSUPPORTED, "%s",
                       _("QEMU does not support the 'x-ignore-shared' migration capability"));
        goto endjob;
    }
    qemuMigrationParamsSetIgnoreShared(saveParams);

    if ((parentfd = qemuTemplateOpenParentDir(vm->def->mem.tmpl->path)) < 0 ||
        qemuTemplateCheckDir(vm->def->mem.tmpl->path, false) < 0 ||
        qemuTemplateCreateCheckDevices(vm) < 0 ||
        !qemuMigrationSrcIsAllowed(vm, false,
                                   VIR_ASYNC_JOB_TEMPLATE_CREATE, 0))
        goto endjob;

    /* A record left by an earlier template: a new one would forget the
     * owners it keeps. */
    if ((rc = qemuTemplateRecordLeftover(driver, vm->def->mem.tmpl->path)) != 0) {
        if (rc > 0)
            virReportError(VIR_ERR_OPERATION_INVALID,
                           _("the disk images of an earlier template of domain '%1$s' were not all given back: run template-remove once the domain is stopped"),
                           vm->def->name);
        goto endjob;
    }

    path = qemuTemplateImagePath(vm->def);
    partial = g_strdup_printf("%s.partial", path);

    if (virDomainObjGetState(vm, NULL) == VIR_DOMAIN_RUNNING) {
        was_running = true;
        if (qemuProcessStopCPUs(driver, vm, VIR_DOMAIN_PAUSED_SAVE,
                                VIR_ASYNC_JOB_TEMPLATE_CREATE) < 0)
            goto endjob;

        if (virDomainObjCheckActive(vm) < 0)
            goto endjob;
    }

    if (!(xml = qemuDomainDefFormatLive(driver, priv->qemuCaps, vm->def,
                                        priv->origCPU, true, true)) ||
        !(cookie = qemuDomainSaveCookieNew(vm)))
        goto endjob;
    cookie->ignoreShared = true;

    if (!(data = virQEMUSaveDataNew(g_steal_pointer(&xml), cookie, was_running,
                                    QEMU_SAVE_FORMAT_RAW, driver->xmlopt)))
        goto endjob;

    if (qemuTemplateSetAccess(driver, vm, &access) < 0)
        goto endjob;
    dirTaken = true;

    if (qemuSaveImageCreate(driver, vm, partial, data, NULL, saveParams, 0,
                            VIR_ASYNC_JOB_TEMPLATE_CREATE) < 0 ||
        qemuTemplateSync(driver, vm, partial) < 0 ||
        qemuTemplateRecordWrite(driver, vm, partial) < 0)
        goto endjob;
    recorded = true;

    /* Its disk images are protected once it has stopped: whatever can be
     * checked is, while it can still run on. */
    if (qemuTemplateBasesForEach(driver, vm->def->mem.tmpl->path, 0,
                                 qemuTemplateBaseCheck, NULL) < 0)
        goto endjob;

    /* its labels, for the disk images it protects after stopping */
    if (!(liveDef = virDomainDefCopy(vm->def, driver->xmlopt,
                                     priv->qemuCaps, false)))
        goto endjob;

    if (rename(partial, path) < 0) {
        virReportSystemError(errno, _("unable to publish template image '%1$s'"),
                             path);
        goto endjob;
    }
    vm->hasTemplate = true;

    /* The image's name, not only its content, must survive a host crash. */
    if (fsync(access.dirfd) < 0)
        VIR_WARN("Unable to sync template directory '%s': %s",
                 vm->def->mem.tmpl->path, g_strerror(errno));

    qemuProcessStop(driver, vm, VIR_DOMAIN_SHUTOFF_SAVED,
                    VIR_ASYNC_JOB_TEMPLATE_CREATE, 0);
    virDomainAuditStop(vm, "saved");
    event = virDomainEventLifecycleNewFromObj(vm, VIR_DOMAIN_EVENT_STOPPED,
                                              VIR_DOMAIN_EVENT_STOPPED_SAVED);

    /* Stopping protected the disk images (qemuProcessStop()); strictly
     * here, as for clones (qemuTemplateClone()). The guest's state is in
     * the template alone now: it stays, and clones are refused until its
     * disk images are all protected. */
    if (qemuTemplateBasesProtect(driver, vm, liveDef, true) < 0) {
        virReportError(VIR_ERR_OPERATION_FAILED,
                       _("the template of domain '%1$s' was made, but it can't be cloned until its disk images are protected: %2$s"),
                       vm->def->name, virGetLastErrorMessage());
        recorded = false;
        dirTaken = false;
        goto endjob;
    }
    ret = 0;

 endjob:
    if (ret < 0) {
        if (partial && unlink(partial) < 0 && errno != ENOENT)
            VIR_WARN("Unable to remove '%s': %s", partial, g_strerror(errno));

        if (recorded) {
            virErrorPtr orig_err;

            virErrorPreserveLast(&orig_err);
            /* If not now, the next daemon start gives them back. */
            if (qemuTemplateRecordRelease(driver, vm->def, true) < 0)
                VIR_WARN("Unable to give back the disk images of domain '%s'",
                         vm->def->name);
            virErrorRestore(&orig_err);
        }

        if (dirTaken) {
            qemuTemplateGiveBack(driver, vm, &access);
            /* stopped, without a template: nothing of one is left */
            if (!virDomainObjIsActive(vm))
                qemuTemplateMemoryRemove(vm->def);
        }

        if (virDomainObjIsActive(vm)) {
            virErrorPtr orig_err;

            virErrorPreserveLast(&orig_err);
            if (qemuMigrationParamsClearIgnoreShared(vm, VIR_ASYNC_JOB_TEMPLATE_CREATE) < 0)
                VIR_WARN("Unable to turn x-ignore-shared off for domain '%s'",
                         vm->def->name);
            virErrorRestore(&orig_err);
        }

        if (was_running && virDomainObjIsActive(vm)) {
            virErrorPtr orig_err;

            virErrorPreserveLast(&orig_err);
            if (qemuProcessStartCPUs(driver, vm, VIR_DOMAIN_RUNNING_SAVE_CANCELED,
                                     VIR_ASYNC_JOB_TEMPLATE_CREATE) < 0) {
                VIR_WARN("Unable to resume guest CPUs after template-create failure");
                virObjectEventStateQueue(driver->domainEventState,
                                         virDomainEventLifecycleNewFromObj(vm,
                                             VIR_DOMAIN_EVENT_SUSPENDED,
                                             VIR_DOMAIN_EVENT_SUSPENDED_API_ERROR));
                if (virDomainObjGetState(vm, NULL) == VIR_DOMAIN_PAUSED)
                    virDomainObjSetState(vm, VIR_DOMAIN_PAUSED,
                                         VIR_DOMAIN_PAUSED_API_ERROR);
            }
            virErrorRestore(&orig_err);
        }
    }
    qemuTemplateAccessClear(&access);
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


/* The first name no domain has and no saved clone's overlays use. */
static char *
qemuTemplateCloneFreeName(virQEMUDriver *driver,
                          const virDomainDef *tmplDef)
{
    const char *tmplName = tmplDef->name;
    unsigned int n;

    for (n = 1; n < UINT_MAX; n++) {
        g_autofree char *name = g_strdup_printf("%s-clone-%u", tmplName, n);
        g_autofree char *cloneDir = qemuTemplateCloneDir(tmplDef->mem.tmpl->path, name);
        virDomainObj *vm;

        if (!(vm = virDomainObjListFindByName(driver->domains, name))) {
            if (!virFileExists(cloneDir))
                return g_steal_pointer(&name);
            continue;
        }
        virDomainObjEndAPI(&vm);
    }

    virReportError(VIR_ERR_OPERATION_FAILED,
                   _("no free clone name for template '%1$s'"), tmplName);
    return NULL;
}


/* Builds the clone's definition from the template's. */
virDomainDef *
qemuTemplateCloneDef(virQEMUDriver *driver,
                     virDomainDef *tmplDef,
                     const char *name,
                     const char *dxml)
{
    g_autoptr(virDomainDef) def = NULL;

    if (dxml) {
        g_autoptr(virDomainDef) abi = NULL;

        /* Validated once its memory is the clone's (below). */
        if (!(def = virDomainDefParseString(dxml, driver->xmlopt, NULL,
                                            VIR_DOMAIN_DEF_PARSE_INACTIVE |
                                            VIR_DOMAIN_DEF_PARSE_SKIP_VALIDATE)))
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
        g_autoptr(virDomainDef) copy = NULL;

        if (!(copy = virDomainDefCopy(tmplDef, driver->xmlopt, NULL, false)))
            return NULL;

        g_free(copy->name);
        if (name)
            copy->name = g_strdup(name);
        else if (!(copy->name = qemuTemplateCloneFreeName(driver, tmplDef)))
            return NULL;

        if (virUUIDGenerate(copy->uuid) < 0) {
            virReportError(VIR_ERR_INTERNAL_ERROR, "%s",
                           _("failed to generate a UUID for the clone"));
            return NULL;
        }

        qemuTemplateCloneChardevPaths(copy, tmplDef->name);

        /* The name ends up in file names: it gets the parser's checks, as
         * the name of a definition from XML does. */
        if (!(def = virDomainDefCopy(copy, driver->xmlopt, NULL, false)))
            return NULL;
    }

    if (virXMLCheckIllegalChars("name", def->name, "\n") < 0)
        return NULL;

    /* It names the directory of the clone's overlays. */
    if (STREQ(def->name, ".") || STREQ(def->name, "..")) {
        virReportError(VIR_ERR_INVALID_ARG,
                       _("'%1$s' can't be the name of a clone"), def->name);
        return NULL;
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

    if (virDomainDefValidate(def, 0, driver->xmlopt, NULL) < 0)
        return NULL;

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
            virReportSystemError(errno, _("template RAM file '%1$s' is not usable"),
                                 files[i]);
            return -1;
        }

        if (!S_ISREG(sb.st_mode) || (unsigned long long) sb.st_size != expected) {
            virReportError(VIR_ERR_OPERATION_FAILED,
                           _("template RAM file '%1$s' has %2$lld bytes, the template needs %3$llu"),
                           files[i], (long long) sb.st_size, expected);
            return -1;
        }
    }

    return 0;
}


/* Removes a clone's directory in the clone area with its overlays, and
 * what is left of a template discarded while the clone ran. An overlay
 * the clone's XML put elsewhere is only linked from there: it is the
 * caller's, and root does not remove files by a path others can change. */
static void
qemuTemplateOverlaysRemove(const char *tmplDir,
                           const char *cloneName)
{
    g_autofree char *area = qemuTemplateCloneArea(tmplDir);
    const char *dirs[] = { area, tmplDir };
    VIR_AUTOCLOSE areafd = -1;
    size_t i;

    if ((areafd = open(area, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)) >= 0)
        qemuTemplateRemoveCloneDirAt(areafd, cloneName);

    for (i = 0; i < G_N_ELEMENTS(dirs); i++) {
        if (rmdir(dirs[i]) < 0) {
            if (errno != ENOENT && errno != ENOTEMPTY)
                VIR_WARN("Unable to remove '%s': %s", dirs[i], g_strerror(errno));
            break;
        }
    }
}


/**
 * qemuTemplateCloneRemoveOverlays:
 * @vm: domain object
 *
 * Removes the disk overlays created for @vm when it was cloned from its
 * template, if it is such a clone. Call once its QEMU is gone.
 */
void
qemuTemplateCloneRemoveOverlays(virDomainObj *vm)
{
    qemuDomainObjPrivate *priv = vm->privateData;

    if (!priv->templateOverlays || !vm->def->mem.tmpl)
        return;

    qemuTemplateOverlaysRemove(vm->def->mem.tmpl->path, vm->def->name);
    g_clear_pointer(&priv->templateOverlays, g_strfreev);
}


/* The clone area is in the template's directory, which is the daemon's
 * since template-create, but whatever is found there must still be a
 * directory of the daemon's own. QEMU needs to get through it to the
 * overlay it opens, hence the mode. */
static int
qemuTemplateMakePrivateDir(const char *path)
{
    struct stat sb;

    if (mkdir(path, S_IRWXU | S_IXGRP | S_IXOTH) < 0 && errno != EEXIST) {
        virReportSystemError(errno, _("unable to create directory '%1$s'"), path);
        return -1;
    }

    if (lstat(path, &sb) < 0) {
        virReportSystemError(errno, _("unable to access '%1$s'"), path);
        return -1;
    }

    if (!S_ISDIR(sb.st_mode) || sb.st_uid != geteuid()) {
        virReportError(VIR_ERR_OPERATION_FAILED,
                       _("'%1$s' is not a directory the daemon created"), path);
        return -1;
    }

    return 0;
}


/* A clone's directory is made by that clone alone: one that exists holds
 * the overlays of another clone of that name, which must not be taken
 * over or removed. */
static int
qemuTemplateMakeCloneDir(const char *tmplDir,
                         const char *cloneDir)
{
    g_autofree char *area = qemuTemplateCloneArea(tmplDir);

    if (qemuTemplateMakePrivateDir(area) < 0)
        return -1;

    if (mkdir(cloneDir, S_IRWXU | S_IXGRP | S_IXOTH) < 0) {
        if (errno == EEXIST)
            virReportError(VIR_ERR_OPERATION_INVALID,
                           _("'%1$s' holds the overlays of another clone of that name, a saved one perhaps"),
                           cloneDir);
        else
            virReportSystemError(errno, _("unable to create directory '%1$s'"), cloneDir);
        return -1;
    }

    return 0;
}


/**
 * qemuTemplateCloneKeepOverlays:
 * @vm: domain object
 *
 * Keeps the disk overlays of @vm, a clone being saved: its save image
 * needs them. They stay in the clone area, marked as kept, and are the
 * user's from now on.
 */
void
qemuTemplateCloneKeepOverlays(virDomainObj *vm)
{
    qemuDomainObjPrivate *priv = vm->privateData;
    g_autofree char *cloneDir = NULL;
    g_autofree char *mark = NULL;
    VIR_AUTOCLOSE fd = -1;

    if (!priv->templateOverlays || !vm->def->mem.tmpl)
        return;

    cloneDir = qemuTemplateCloneDir(vm->def->mem.tmpl->path, vm->def->name);
    mark = g_strdup_printf("%s/%s", cloneDir, QEMU_TEMPLATE_SAVED_MARK);
    if (virFileIsDir(cloneDir) &&
        (fd = open(mark, O_WRONLY | O_CREAT | O_NOFOLLOW, S_IRUSR | S_IWUSR)) < 0)
        VIR_WARN("Unable to mark the overlays of clone '%s' as kept: %s",
                 vm->def->name, g_strerror(errno));

    g_clear_pointer(&priv->templateOverlays, g_strfreev);
}


/* Overlays created where a clone's XML put them, outside the clone area,
 * held by the directory they were created in: a clone that fails to start
 * removes them through it, whatever their path names by then. */
typedef struct {
    size_t n;
    int *dirfds;
    char **names;
} qemuTemplateOutsideOverlays;


static void
qemuTemplateOutsideOverlaysRelease(qemuTemplateOutsideOverlays *outside,
                                   bool remove)
{
    size_t i;

    for (i = 0; i < outside->n; i++) {
        if (remove && unlinkat(outside->dirfds[i], outside->names[i], 0) < 0)
            VIR_WARN("Unable to remove overlay '%s': %s",
                     outside->names[i], g_strerror(errno));
        VIR_FORCE_CLOSE(outside->dirfds[i]);
        g_free(outside->names[i]);
    }
    g_clear_pointer(&outside->dirfds, g_free);
    g_clear_pointer(&outside->names, g_free);
    outside->n = 0;
}


/* The size a clone's overlay of @base gets, from the header libvirt
 * probed, or the file's size for a raw base. */
static int
qemuTemplateBaseCapacity(virStorageSource *base,
                         unsigned long long *capacity)
{
    struct stat sb;

    if (base->format != VIR_STORAGE_FILE_RAW) {
        if (base->capacity == 0) {
            virReportError(VIR_ERR_OPERATION_FAILED,
                           _("unable to read the size of template disk '%1$s'"),
                           base->path);
            return -1;
        }
        *capacity = base->capacity;
        return 0;
    }

    if (stat(base->path, &sb) < 0) {
        virReportSystemError(errno, _("unable to stat template disk '%1$s'"),
                             base->path);
        return -1;
    }
    *capacity = sb.st_size;
    return 0;
}


/* Reads the backing chain of @base, a copy of a template's disk image, one
 * image at a time, each through a descriptor: the producer's QEMU could
 * have written the backing names in the images, and the daemon opens, as
 * root, only files the template recorded (@recorded, see
 * qemuTemplateRecordDisks()), the very files, and none that would block
 * (a FIFO). */
static int
qemuTemplateBaseChainRead(virStorageSource *base,
                          GHashTable *recorded,
                          uid_t qemuUser)
{
    virStorageSource *n = base;
    unsigned int depth;

    for (depth = 1; depth <= QEMU_TEMPLATE_BASE_CHAIN_MAX_DEPTH; depth++) {
        g_autoptr(virStorageSource) backing = NULL;
        g_autofree char *buf = NULL;
        VIR_AUTOCLOSE fd = -1;
        struct stat sb;
        ssize_t len;
        g_autofree char *identity = NULL;
        int rc;

        if (!n->path || !g_hash_table_contains(recorded, n->path)) {
            virReportError(VIR_ERR_OPERATION_FAILED,
                           _("the backing chain of template disk image '%1$s' holds '%2$s', which the template did not record"),
                           base->path, NULLSTR(n->path));
            return -1;
        }

        if ((fd = qemuTemplateOpenRegular(n->path, &sb)) < 0)
            return -1;

        if (!(identity = qemuTemplateFileIdentity(fd, n->path, &sb, NULL)) ||
            qemuTemplateCheckImageDir(fd, n->path) < 0)
            return -1;
        if (STRNEQ(identity, g_hash_table_lookup(recorded, n->path))) {
            virReportError(VIR_ERR_OPERATION_FAILED,
                           _("'%1$s' is not the disk image recorded in the template"),
                           n->path);
            return -1;
        }

        /* The clone's start gives it to the group every QEMU runs as.
         * Its owner could write it and set its mtime back: none but root,
         * the daemon or, as starting a domain on it makes it, QEMU's. */
        if (n != base) {
            if (sb.st_mode & (S_IWGRP | S_IWOTH)) {
                virReportError(VIR_ERR_OPERATION_FAILED,
                               _("backing file '%1$s' of template disk image '%2$s' may be written by others than its owner (mode %3$04o)"),
                               n->path, base->path, (unsigned int) (sb.st_mode & 07777));
                return -1;
            }
            if (sb.st_uid != 0 && sb.st_uid != geteuid() && sb.st_uid != qemuUser) {
                virReportError(VIR_ERR_OPERATION_FAILED,
                               _("backing file '%1$s' of template disk image '%2$s' is owned by user %3$u, who could change it unnoticed: only root, the daemon or the user QEMU runs as may own it"),
                               n->path, base->path, (unsigned int) sb.st_uid);
                return -1;
            }
        }

        if ((len = virFileReadHeaderFD(fd, VIR_STORAGE_MAX_HEADER, &buf)) < 0) {
            virReportSystemError(errno, _("unable to read template disk image '%1$s'"),
                                 n->path);
            return -1;
        }

        if (virStorageFileProbeGetMetadata(n, buf, len) < 0)
            return -1;

        if (n->dataFileRaw) {
            virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                           _("template disk image '%1$s' has an external data file"),
                           n->path);
            return -1;
        }

        if (!n->backingStoreRaw) {
            n->backingStore = virStorageSourceNew();
            n->backingStore->detected = true;
            return 0;
        }

        if ((rc = virStorageSourceNewFromBacking(n, &backing)) < 0)
            return -1;

        if (rc == 1 || backing->format <= VIR_STORAGE_FILE_NONE) {
            virReportError(VIR_ERR_OPERATION_INVALID,
                           _("backing image '%1$s' of template disk image '%2$s' has no usable location or format in the image metadata"),
                           n->backingStoreRaw, n->path);
            return -1;
        }

        backing->id = depth;
        n->backingStore = g_steal_pointer(&backing);
        n = n->backingStore;
    }

    virReportError(VIR_ERR_OPERATION_FAILED,
                   _("the backing chain of template disk image '%1$s' is too deep"),
                   base->path);
    return -1;
}


/* Puts a new qcow2 overlay on each of the template's disk images that
 * clones share as their read-only base. The overlay goes where the clone's
 * XML puts the disk if that differs from the template, else in the clone's
 * directory of the template's clone area. */
static int
qemuTemplateCloneCreateOverlays(virQEMUDriver *driver,
                                virDomainDef *tmplDef,
                                virDomainDef *def,
                                char ***overlays,
                                qemuTemplateOutsideOverlays *outside)
{
    g_autoptr(virQEMUDriverConfig) cfg = virQEMUDriverGetConfig(driver);
    g_autoptr(virStorageSource) ids = virStorageSourceNew();
    g_autofree char *baseOwner = NULL;
    g_autofree char *cloneDir = qemuTemplateCloneDir(tmplDef->mem.tmpl->path,
                                                     def->name);
    bool selinux = qemuTemplateHasSecurityModel(driver, "selinux");
    g_autofree char *record = qemuTemplateRecordPath(driver, tmplDef->mem.tmpl->path);
    g_auto(GStrv) created = g_new0(char *, tmplDef->ndisks + 1);
    g_autoptr(GHashTable) recorded = NULL;
    uid_t qemuUser;
    gid_t qemuGroup;
    size_t ncreated = 0;
    bool dirMade = false;
    size_t i;
    int fd;
    int ret = -1;

    /* the group reads the bases; starting a domain gives the user the
     * backing files of its disks */
    qemuDomainGetImageIds(cfg, def, ids, NULL, &qemuUser, &qemuGroup);
    baseOwner = g_strdup_printf("+%u:+%u", (unsigned int) geteuid(),
                                (unsigned int) qemuGroup);

    for (i = 0; i < tmplDef->ndisks; i++) {
        if (qemuTemplateDiskIsBase(tmplDef->disks[i])) {
            if (qemuTemplateMakeCloneDir(tmplDef->mem.tmpl->path, cloneDir) < 0)
                return -1;
            dirMade = true;
            break;
        }
    }

    for (i = 0; i < tmplDef->ndisks; i++) {
        virStorageSource *base = tmplDef->disks[i]->src;
        virDomainDiskDef *disk = def->disks[i];
        g_autoptr(virStorageSource) overlay = NULL;
        g_autoptr(virCommand) cmd = NULL;
        g_autofree char *link = NULL;
        g_autofree char *parent = NULL;
        g_autofree char *name = NULL;
        unsigned long long capacity;
        int parentfd;
        virStorageSource *n;

        if (!qemuTemplateDiskIsBase(tmplDef->disks[i]))
            continue;

        overlay = virStorageSourceNew();
        overlay->type = VIR_STORAGE_TYPE_FILE;
        overlay->format = VIR_STORAGE_FILE_QCOW2;

        if (virStorageSourceIsSameLocation(disk->src, base)) {
            overlay->path = g_strdup_printf("%s/%s.qcow2", cloneDir, disk->dst);
        } else if (virStorageSourceGetActualType(disk->src) == VIR_STORAGE_TYPE_FILE &&
                   disk->src->path) {
            overlay->path = g_strdup(disk->src->path);
            /* A link in the clone area, so that the template is not
             * removed from under an overlay it cannot see. */
            link = g_strdup_printf("%s/%s.qcow2", cloneDir, disk->dst);
        } else {
            virReportError(VIR_ERR_CONFIG_UNSUPPORTED,
                           _("disk '%1$s' of the clone must be a file: it is the overlay of the template's disk"),
                           disk->dst);
            goto cleanup;
        }

        /* Created in its directory as opened now, so that a failed clone
         * removes the file it created even if the path changed since.
         * Never take over a file: it could be a sibling's overlay. */
        parent = g_path_get_dirname(overlay->path);
        name = g_path_get_basename(overlay->path);
        if ((parentfd = open(parent, O_RDONLY | O_DIRECTORY)) < 0) {
            virReportSystemError(errno, _("unable to open the directory of overlay '%1$s'"),
                                 overlay->path);
            goto cleanup;
        }
        if ((fd = openat(parentfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW,
                         S_IRUSR | S_IWUSR)) < 0) {
            VIR_FORCE_CLOSE(parentfd);
            if (errno == EEXIST)
                virReportError(VIR_ERR_OPERATION_INVALID,
                               _("overlay '%1$s' of disk '%2$s' already exists"),
                               overlay->path, disk->dst);
            else
                virReportSystemError(errno, _("unable to create overlay '%1$s'"),
                                     overlay->path);
            goto cleanup;
        }
        created[ncreated++] = g_strdup(overlay->path);
        if (link) {
            outside->dirfds = g_renew(int, outside->dirfds, outside->n + 1);
            outside->names = g_renew(char *, outside->names, outside->n + 1);
            outside->dirfds[outside->n] = parentfd;
            outside->names[outside->n++] = g_steal_pointer(&name);
        } else {
            VIR_FORCE_CLOSE(parentfd);
        }

        if (link && symlink(overlay->path, link) < 0) {
            virReportSystemError(errno, _("unable to link overlay '%1$s' to '%2$s'"),
                                 overlay->path, link);
            VIR_FORCE_CLOSE(fd);
            goto cleanup;
        }

        /* Clones share the base and its backing chain: QEMU must not lock
         * them for writing, and the DAC driver must not give them to the
         * user QEMU runs as. The image keeps no chain: detect it here, or
         * the clone's start would, without these labels. */
        overlay->backingStore = virStorageSourceCopy(base, false);
        if ((!recorded &&
             !(recorded = qemuTemplateRecordDisks(record))) ||
            qemuTemplateBaseChainRead(overlay->backingStore, recorded, qemuUser) < 0 ||
            qemuTemplateBaseCapacity(overlay->backingStore, &capacity) < 0) {
            VIR_FORCE_CLOSE(fd);
            goto cleanup;
        }

        /* Formatted through the file created above: its path may be in a
         * directory that others can change. The base was written by the
         * producer's QEMU: -u keeps root's qemu-img from opening it and
         * following whatever backing names it holds. */
        cmd = virCommandNewArgList("qemu-img", "create", "-q", "-u", "-f", "qcow2",
                                   "-F", virStorageFileFormatTypeToString(base->format),
                                   "-b", base->path, NULL);
        virCommandAddArgFormat(cmd, "/dev/fd/%d", fd);
        virCommandAddArgFormat(cmd, "%llu", capacity);
        virCommandPassFD(cmd, fd, VIR_COMMAND_PASS_FD_CLOSE_PARENT);
        fd = -1;
        if (virCommandRun(cmd, NULL) < 0)
            goto cleanup;

        for (n = overlay->backingStore; virStorageSourceIsBacking(n); n = n->backingStore) {
            n->readonly = true;
            qemuTemplateSetDACLabel(n, baseOwner);
        }
        /* The base itself has the shared read-only label already and is
         * immutable (qemuTemplateBasesProtect()): relabelling it would fail. */
        if (selinux) {
            virSecurityDeviceLabelDef *seclabel = virSecurityDeviceLabelDefNew("selinux");

            seclabel->relabel = false;
            VIR_APPEND_ELEMENT(overlay->backingStore->seclabels,
                               overlay->backingStore->nseclabels, seclabel);
        }
        virObjectUnref(disk->src);
        disk->src = g_steal_pointer(&overlay);
    }

    if (ncreated > 0)
        *overlays = g_steal_pointer(&created);
    ret = 0;

 cleanup:
    if (ret < 0) {
        if (dirMade)
            qemuTemplateOverlaysRemove(tmplDef->mem.tmpl->path, def->name);
        qemuTemplateOutsideOverlaysRelease(outside, true);
    }
    return ret;
}


/* template-create writes the device state raw, and QEMU may wait forever,
 * rather than fail, on an incoming stream that ends before its first byte
 * (seen with 7.2): refuse a compressed or truncated image here. */
static int
qemuTemplateCheckImageStream(const char *path,
                             int fd,
                             virQEMUSaveData *data)
{
    struct stat sb;
    off_t pos;

    /* raw, as qemuTemplateCreate() writes it */
    if (data->header.format != QEMU_SAVE_FORMAT_RAW) {
        virReportError(VIR_ERR_OPERATION_INVALID,
                       _("template image '%1$s' is compressed: template images are raw"),
                       path);
        return -1;
    }

    if ((pos = lseek(fd, 0, SEEK_CUR)) < 0 || fstat(fd, &sb) < 0) {
        virReportSystemError(errno, _("unable to read template image '%1$s'"), path);
        return -1;
    }

    if (sb.st_size <= pos) {
        virReportError(VIR_ERR_OPERATION_FAILED,
                       _("template image '%1$s' is truncated: it holds no device state"),
                       path);
        return -1;
    }

    return 0;
}


static void
qemuTemplateCloneFreeNICs(virDomainDeviceDef **devs,
                          size_t nnics)
{
    size_t i;

    if (!devs)
        return;
    for (i = 0; i < nnics; i++)
        virDomainDeviceDefFree(devs[i]);
    g_free(devs);
}


/* The clone's device state is its template's, which has no network
 * interfaces: those asked for are parsed against the clone's definition
 * (each without a MAC address gets its own) before anything is started. */
static virDomainDeviceDef **
qemuTemplateCloneParseNICs(virQEMUDriver *driver,
                           virDomainDef *def,
                           const char **nics,
                           size_t nnics)
{
    g_autoptr(virQEMUCaps) qemuCaps = NULL;
    virDomainDeviceDef **devs = g_new0(virDomainDeviceDef *, nnics + 1);
    size_t i;

    if (!(qemuCaps = virQEMUCapsCacheLookup(driver->qemuCapsCache,
                                            def->emulator)))
        goto error;

    for (i = 0; i < nnics; i++) {
        if (!(devs[i] = virDomainDeviceDefParse(nics[i], def, driver->xmlopt,
                                                qemuCaps,
                                                VIR_DOMAIN_DEF_PARSE_INACTIVE |
                                                VIR_DOMAIN_DEF_PARSE_ABI_UPDATE)))
            goto error;

        if (devs[i]->type != VIR_DOMAIN_DEVICE_NET) {
            virReportError(VIR_ERR_INVALID_ARG,
                           _("parameter '%1$s' must be an <interface> device, not <%2$s>"),
                           VIR_DOMAIN_TEMPLATE_PARAM_NIC,
                           virDomainDeviceTypeToString(devs[i]->type));
            goto error;
        }
    }

    return devs;

 error:
    qemuTemplateCloneFreeNICs(devs, nnics);
    return NULL;
}


/* A clone that cannot be given what it was asked for is not kept. */
static void
qemuTemplateCloneStop(virQEMUDriver *driver,
                      virDomainObj *vm)
{
    if (qemuProcessBeginStopJob(vm, VIR_JOB_DESTROY, true) < 0)
        return;

    if (virDomainObjIsActive(vm)) {
        qemuProcessStop(driver, vm, VIR_DOMAIN_SHUTOFF_FAILED,
                        VIR_ASYNC_JOB_NONE, 0);
        virDomainAuditStop(vm, "failed");
        virObjectEventStateQueue(driver->domainEventState,
                                 virDomainEventLifecycleNewFromObj(vm,
                                                                   VIR_DOMAIN_EVENT_STOPPED,
                                                                   VIR_DOMAIN_EVENT_STOPPED_FAILED));
    }
    qemuProcessEndStopJob(vm);
}


/* Plugs the clone's network interfaces while it is still paused, so that
 * its guest never runs without them, then resumes it if asked. Stops the
 * clone on failure. */
static int
qemuTemplateClonePlugNICs(virQEMUDriver *driver,
                          virDomainObj *vm,
                          virDomainDeviceDef **devs,
                          size_t nnics,
                          bool resume)
{
    virErrorPtr orig_err = NULL;
    size_t i;

    if (virDomainObjBeginJob(vm, VIR_JOB_MODIFY) < 0)
        goto error;

    if (virDomainObjCheckActive(vm) < 0)
        goto endjob;

    for (i = 0; i < nnics; i++) {
        if (virDomainDeviceValidateAliasForHotplug(vm, devs[i],
                                                   VIR_DOMAIN_AFFECT_LIVE) < 0 ||
            virDomainDefCompatibleDevice(vm->def, devs[i], NULL,
                                         VIR_DOMAIN_DEVICE_ACTION_ATTACH,
                                         true) < 0 ||
            qemuDomainAttachDeviceLive(vm, devs[i], driver) < 0)
            goto endjob;
    }

    if (resume &&
        qemuProcessStartCPUs(driver, vm, VIR_DOMAIN_RUNNING_RESTORED,
                             VIR_ASYNC_JOB_NONE) < 0) {
        if (virGetLastErrorCode() == VIR_ERR_OK)
            virReportError(VIR_ERR_OPERATION_FAILED, "%s",
                           _("failed to resume domain"));
        goto endjob;
    }

    qemuDomainSaveStatus(vm);
    virDomainObjEndJob(vm);
    return 0;

 endjob:
    virDomainObjEndJob(vm);
 error:
    virErrorPreserveLast(&orig_err);
    qemuTemplateCloneStop(driver, vm);
    virErrorRestore(&orig_err);
    return -1;
}


/**
 * qemuTemplateClone:
 * @conn: connection
 * @driver: qemu driver
 * @tmpl: domain holding a template, locked
 * @name: name of the clone, or NULL for the first free TEMPLATE-clone-N
 * @dxml: full XML of the clone, or NULL to derive it from the template
 * @flags: bitwise-OR of virDomainCloneFromTemplateFlags
 * @ensureACL: access check of the clone's definition
 *
 * Starts a transient clone of @tmpl from its template image. The template
 * can't be removed until the clone runs (see qemuTemplateDiscard()).
 *
 * Returns the clone, or NULL with an error reported and nothing left.
 */
virDomainPtr
qemuTemplateClone(virConnectPtr conn,
                  virQEMUDriver *driver,
                  virDomainObj *tmpl,
                  const char *name,
                  const char *dxml,
                  const char **nics,
                  size_t nnics,
                  unsigned int flags,
                  qemuTemplateEnsureACL ensureACL)
{
    qemuDomainObjPrivate *tmplPriv = tmpl->privateData;
    g_autoptr(virDomainDef) tmplDef = NULL;
    g_autoptr(virDomainDef) def = NULL;
    g_autoptr(qemuDomainSaveCookie) cookie = NULL;
    g_autoptr(qemuMigrationParams) restoreParams = qemuMigrationParamsNew();
    g_autofree char *path = NULL;
    g_autofree char *dir = NULL;
    g_autofree char *record = NULL;
    unsigned char uuid[VIR_UUID_BUFLEN];
    g_auto(GStrv) overlays = NULL;
    qemuTemplateOutsideOverlays outside = { 0 };
    virDomainDeviceDef **nicDevs = NULL;
    virQEMUSaveData *data = NULL;
    virDomainObj *vm = NULL;
    virDomainPtr clone = NULL;
    bool paused = !!(flags & VIR_DOMAIN_CLONE_FROM_TEMPLATE_PAUSED);
    bool started;
    bool failed;
    int fd = -1;

    if (name && dxml) {
        virReportError(VIR_ERR_INVALID_ARG, "%s",
                       _("the clone's name comes from its XML when one is given"));
        return NULL;
    }

    if ((flags & VIR_DOMAIN_CLONE_FROM_TEMPLATE_AUTODESTROY) &&
        driver->embeddedRoot) {
        virReportError(VIR_ERR_OPERATION_UNSUPPORTED, "%s",
                       _("autodestroy of clones is not supported by embedded drivers"));
        return NULL;
    }

    /* No job on the template: clones of it start in parallel, and jobs
     * that would remove it check for starting clones. */
    if (!tmpl->hasTemplate) {
        virReportError(VIR_ERR_OPERATION_INVALID,
                       _("domain '%1$s' is not a template"), tmpl->def->name);
        return NULL;
    }

    /* Its producer still maps the RAM files shared until the daemon, back
     * from a crash, has finished template-create. */
    if (virDomainObjIsActive(tmpl)) {
        virReportError(VIR_ERR_OPERATION_INVALID,
                       _("template-create of domain '%1$s' is still finishing"),
                       tmpl->def->name);
        return NULL;
    }

    /* A start with another definition of the template's name and UUID
     * puts it in tmpl->def until qemuTemplateCheckNotHeld() refuses it. */
    if (tmpl->newDef) {
        virReportError(VIR_ERR_OPERATION_INVALID,
                       _("domain '%1$s' is being started with another definition"),
                       tmpl->newDef->name);
        return NULL;
    }

    if (qemuTemplateCheckDir(tmpl->def->mem.tmpl->path, true) < 0)
        return NULL;

    /* Done when the producer stopped (qemuProcessStop()), unless that
     * failed: no clone of a template whose disk images are writable. */
    if (qemuTemplateBasesProtect(driver, tmpl, NULL, true) < 0)
        return NULL;

    path = qemuTemplateImagePath(tmpl->def);
    dir = g_strdup(tmpl->def->mem.tmpl->path);
    record = qemuTemplateRecordPath(driver, dir);
    memcpy(uuid, tmpl->def->uuid, VIR_UUID_BUFLEN);
    tmplPriv->templateClonesStarting++;
    virObjectUnlock(tmpl);

    if (qemuSaveImageGetMetadata(driver, NULL, path, &tmplDef, &data) < 0 ||
        (fd = qemuSaveImageOpen(driver, path, false, false, NULL, false)) < 0)
        goto relock;

    if (virSaveCookieParseString(data->cookie, (virObject **)&cookie,
                                 virDomainXMLOptionGetSaveCookie(driver->xmlopt)) < 0)
        goto relock;

    if (!cookie || !cookie->ignoreShared || !qemuTemplateIsProducer(tmplDef)) {
        virReportError(VIR_ERR_OPERATION_INVALID,
                       _("'%1$s' is not a template image"), path);
        goto relock;
    }

    /* Another template's image, put there or linked to, would make clones
     * of that template under this one's name. */
    if (memcmp(tmplDef->uuid, uuid, VIR_UUID_BUFLEN) != 0 ||
        STRNEQ(tmplDef->mem.tmpl->path, dir)) {
        virReportError(VIR_ERR_OPERATION_INVALID,
                       _("template image '%1$s' belongs to another domain"), path);
        goto relock;
    }

    if (qemuTemplateCheckImageStream(path, fd, data) < 0)
        goto relock;

    if (!(def = qemuTemplateCloneDef(driver, tmplDef, name, dxml)) ||
        ensureACL(conn, def) < 0 ||
        qemuTemplateCheckMemoryFiles(driver, def) < 0 ||
        qemuTemplateRecordCheck(record) < 0)
        goto relock;

    if (nnics > 0 &&
        !(nicDevs = qemuTemplateCloneParseNICs(driver, def, nics, nnics)))
        goto relock;

    /* Added first, the clone holds its name and UUID: no other domain can
     * take them while its overlays are made. */
    if (!(vm = virDomainObjListAdd(driver->domains, &def, driver->xmlopt,
                                   VIR_DOMAIN_OBJ_LIST_ADD_LIVE |
                                   VIR_DOMAIN_OBJ_LIST_ADD_CHECK_LIVE,
                                   NULL)))
        goto relock;

    /* The name and UUID of an inactive defined domain, given by the clone's
     * XML, would make the clone persistent. */
    if (vm->persistent) {
        virReportError(VIR_ERR_OPERATION_INVALID,
                       _("domain '%1$s' is defined: a clone cannot take its name and UUID"),
                       vm->def->name);
        goto remove;
    }

    if (qemuTemplateCloneCreateOverlays(driver, tmplDef, vm->def, &overlays,
                                        &outside) < 0)
        goto remove;
    QEMU_DOMAIN_PRIVATE(vm)->templateOverlays = g_steal_pointer(&overlays);

    if (qemuProcessBeginJob(vm, VIR_DOMAIN_JOB_OPERATION_RESTORE, 0) < 0)
        goto remove;

    /* The template's device state was saved with x-ignore-shared, which
     * QEMU only loads with the same capability set. */
    qemuMigrationParamsSetIgnoreShared(restoreParams);
    started = qemuSaveImageStartVM(conn, driver, vm, &fd, data, path,
                                   restoreParams, paused || nnics > 0, false,
                                   VIR_ASYNC_JOB_START) == 0;
    if (started && (flags & VIR_DOMAIN_CLONE_FROM_TEMPLATE_AUTODESTROY))
        virCloseCallbacksDomainAdd(vm, conn, qemuProcessAutoDestroy);
    qemuProcessEndJob(vm);

    /* Taken without letting the domain go in between, so no other job
     * (a resume) can come before the clone has its interfaces. */
    if (started && nicDevs)
        started = qemuTemplateClonePlugNICs(driver, vm, nicDevs, nnics,
                                            data->header.was_running &&
                                            !paused) == 0;

    if (started)
        clone = virGetDomain(conn, vm->def->name, vm->def->uuid, vm->def->id);

 remove:
    /* A failed clone that could not be stopped (qemuTemplateCloneStop())
     * stays, with its overlays, to be destroyed. */
    failed = !clone && !virDomainObjIsActive(vm);
    if (failed) {
        qemuTemplateCloneRemoveOverlays(vm);
        /* unless whoever destroyed it meanwhile removed it */
        if (!vm->removing)
            qemuDomainRemoveInactive(driver, vm, 0, false);
    } else if (!clone) {
        VIR_WARN("Clone '%s' of template '%s' failed but still runs",
                 vm->def->name, tmplDef->name);
    }
    qemuTemplateOutsideOverlaysRelease(&outside, failed);

 relock:
    VIR_FORCE_CLOSE(fd);
    virQEMUSaveDataFree(data);
    qemuTemplateCloneFreeNICs(nicDevs, nnics);
    virDomainObjEndAPI(&vm);
    virObjectLock(tmpl);
    tmplPriv->templateClonesStarting--;
    return clone;
}


/* RAM kept in place for a save image. A running template producer that is
 * saved keeps its RAM in its RAM files: the image holds only the device
 * state (x-ignore-shared) and a nonce, which a record of the files, as they
 * were synced, shares. The daemon takes the files and their directory from
 * the domain's QEMU (qemuTemplateRAMTake()), so that nothing reads or
 * changes them until the image is restored. The restore maps them shared
 * again and forgets the record before the guest can run: an image is
 * restored once, and a domain started any other way would boot on them and
 * lose that image's RAM. */


/**
 * qemuTemplateRAMCheckNotKept:
 * @driver: qemu driver
 * @vm: domain object about to start
 *
 * Refuses to start @vm any other way than by restoring the image its RAM
 * files are kept in place for (qemuTemplateRAMCheckKept()).
 *
 * Returns 0 if it may start, -1 with an error reported otherwise.
 */
int
qemuTemplateRAMCheckNotKept(virQEMUDriver *driver,
                            virDomainObj *vm)
{
    g_autoptr(xmlDoc) doc = NULL;
    g_autoptr(xmlXPathContext) ctxt = NULL;
    g_autofree char *image = NULL;
    int rc;

    if (!qemuTemplateIsProducer(vm->def) ||
        QEMU_DOMAIN_PRIVATE(vm)->ramKeptRestore)
        return 0;

    if ((rc = qemuTemplateRAMRecordRead(driver, vm->def, &doc, &ctxt)) != 0)
        return rc > 0 ? 0 : -1;

    image = virXPathString("string(./@image)", ctxt);
    virReportError(VIR_ERR_OPERATION_INVALID,
                   _("the RAM of domain '%1$s' is kept in place for its save image '%2$s': restore that image, or discard it with start --force-boot"),
                   vm->def->name, NULLSTR(image));
    return -1;
}


/**
 * qemuTemplateRAMCheckKeep:
 * @vm: running domain about to be saved
 * @image: path of the save image
 *
 * Returns 1 if saving @vm to @image keeps its RAM in place, 0 if the image
 * will hold the RAM, -1 with an error reported if it can't be saved.
 */
int
qemuTemplateRAMCheckKeep(virDomainObj *vm,
                         const char *image)
{
    /* Nothing could discard the RAM of a transient domain that is never
     * restored; without x-ignore-shared QEMU would save it anyway. */
    if (!qemuTemplateIsProducer(vm->def) || !vm->persistent ||
        !qemuMigrationCapsGet(vm, QEMU_MIGRATION_CAP_X_IGNORE_SHARED))
        return 0;

    if (qemuTemplateCheckPlainPath(image) < 0)
        return -1;

    return 1;
}


/* Opens the RAM file @path in the directory @dirfd by its name, if it is a
 * regular file of its own. Returns the descriptor with @sb filled, or -1
 * with an error reported. */
static int
qemuTemplateRAMOpen(int dirfd,
                    const char *path,
                    struct stat *sb)
{
    g_autofree char *name = g_path_get_basename(path);
    VIR_AUTOCLOSE fd = -1;
    int ret;

    if ((fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK)) < 0 ||
        fstat(fd, sb) < 0) {
        virReportSystemError(errno, _("unable to open RAM file '%1$s'"), path);
        return -1;
    }

    if (!S_ISREG(sb->st_mode) || sb->st_nlink != 1) {
        virReportError(VIR_ERR_OPERATION_FAILED,
                       _("RAM file '%1$s' is not a regular file of its own"), path);
        return -1;
    }

    ret = fd;
    fd = -1;
    return ret;
}


/* Takes the directory of the RAM files of @vm from its QEMU, by descriptor:
 * the daemon's, with no access for anyone else, and nothing in it but the
 * RAM files, which are the daemon's and read-only to it alone. What was
 * taken goes to @access, for qemuTemplateGiveBack(). The labels stay: the
 * restore gives them new ones. */
static int
qemuTemplateRAMTake(virQEMUDriver *driver,
                    virDomainObj *vm,
                    qemuTemplateAccess *access)
{
    const char *dir = vm->def->mem.tmpl->path;
    g_auto(GStrv) files = NULL;
    struct stat sb;
    size_t i;

    if ((access->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)) < 0 ||
        fstat(access->dirfd, &access->dir) < 0) {
        virReportSystemError(errno, _("unable to open template directory '%1$s'"), dir);
        VIR_FORCE_CLOSE(access->dirfd);
        return -1;
    }

    if (fchown(access->dirfd, geteuid(), getegid()) < 0 ||
        fchmod(access->dirfd, QEMU_TEMPLATE_DIR_KEPT_MODE) < 0) {
        virReportSystemError(errno, _("unable to take template directory '%1$s'"), dir);
        goto error;
    }

    if (!(files = qemuTemplateMemoryFiles(driver, vm->def)) ||
        qemuTemplateCheckDirEntries(dir, &access->dir, files) < 0)
        goto error;

    for (i = 0; files[i]; i++) {
        int fd;

        if ((fd = qemuTemplateRAMOpen(access->dirfd, files[i], &sb)) < 0)
            goto error;

        qemuTemplateAccessAdd(access, files[i], fd, &sb);

        /* what a restore in place remembered (qemuTemplateRAMTakeBack()) */
        if (qemuSecurityDomainRestorePathLabel(driver, vm, files[i]) < 0)
            goto error;

        if (fchown(fd, geteuid(), getegid()) < 0 ||
            fchmod(fd, S_IRUSR) < 0) {
            virReportSystemError(errno, _("unable to take RAM file '%1$s'"), files[i]);
            goto error;
        }
    }

    return 0;

 error:
    qemuTemplateGiveBack(driver, vm, access);
    return -1;
}


/**
 * qemuTemplateRAMKeep:
 * @driver: qemu driver
 * @vm: running template producer, locked in an async job, paused, whose
 *      device state was saved to @image with x-ignore-shared
 * @nonce: the nonce in the cookie of @image
 * @image: path of the save image
 * @managed: whether @image is the managed save image of @vm
 *
 * Takes the RAM files of @vm and their directory from its QEMU, syncs the
 * files, records them with @nonce and makes them immutable, so that they
 * stay as they are when @vm stops, until @image is restored.
 *
 * Returns 0 on success, -1 with an error reported and the files given back.
 */
int
qemuTemplateRAMKeep(virQEMUDriver *driver,
                    virDomainObj *vm,
                    const char *nonce,
                    const char *image,
                    bool managed)
{
    g_autofree char *records = qemuTemplateRecordDir(driver);
    g_autofree char *record = qemuTemplateRAMRecordPath(driver, vm->def->mem.tmpl->path);
    g_auto(virBuffer) buf = VIR_BUFFER_INITIALIZER;
    g_autofree char *xml = NULL;
    qemuTemplateAccess access = { .dirfd = -1 };
    bool stored = false;
    size_t i;
    int ret = -1;

    if (qemuTemplateRAMTake(driver, vm, &access) < 0)
        return -1;

    /* Gigabytes may go to disk (as in qemuTemplateSync()). */
    virObjectUnlock(vm);
    for (i = 0; i < access.nfiles; i++) {
        if (fdatasync(access.fds[i]) < 0) {
            virReportSystemError(errno, _("unable to sync '%1$s'"), access.paths[i]);
            break;
        }
    }
    virObjectLock(vm);
    if (i < access.nfiles || virDomainObjCheckActive(vm) < 0)
        goto cleanup;

    virBufferEscapeString(&buf, "<keptRAM nonce='%s'", nonce);
    virBufferEscapeString(&buf, " image='%s'", image);
    virBufferAsprintf(&buf, " managed='%s'>\n", managed ? "yes" : "no");
    virBufferAdjustIndent(&buf, 2);
    for (i = 0; i < access.nfiles; i++) {
        struct stat sb;

        if (fstat(access.fds[i], &sb) < 0) {
            virReportSystemError(errno, _("unable to stat '%1$s'"), access.paths[i]);
            goto cleanup;
        }
        if (qemuTemplateRecordFormat(&buf, "ram", access.fds[i], &sb,
                                     access.paths[i], NULL) < 0)
            goto cleanup;
    }
    virBufferAdjustIndent(&buf, -2);
    virBufferAddLit(&buf, "</keptRAM>\n");
    xml = virBufferContentAndReset(&buf);

    if (g_mkdir_with_parents(records, S_IRWXU) < 0) {
        virReportSystemError(errno, _("unable to create directory '%1$s'"), records);
        goto cleanup;
    }

    if (qemuTemplateRecordStore(record, xml) < 0)
        goto cleanup;
    stored = true;

    for (i = 0; i < access.nfiles; i++) {
        if (qemuTemplateSetImmutable(access.fds[i], access.paths[i], true) < 0)
            goto cleanup;
    }

    ret = 0;

 cleanup:
    if (ret < 0) {
        if (stored && qemuTemplateRecordRemove(record) < 0)
            VIR_WARN("Unable to remove '%s'", record);
        qemuTemplateGiveBack(driver, vm, &access);
    }
    qemuTemplateAccessClear(&access);
    return ret;
}


/**
 * qemuTemplateRAMCheckKept:
 * @driver: qemu driver
 * @def: definition of the domain about to be restored from @image
 * @image: path of the save image
 * @nonce: the nonce in the cookie of @image
 *
 * Returns 0 if the RAM files of @def are kept in place for @image, -1 with
 * an error reported otherwise.
 */
int
qemuTemplateRAMCheckKept(virQEMUDriver *driver,
                         const virDomainDef *def,
                         const char *image,
                         const char *nonce)
{
    g_autoptr(xmlDoc) doc = NULL;
    g_autoptr(xmlXPathContext) ctxt = NULL;
    g_autofree char *recorded = NULL;
    int rc;

    if (!qemuTemplateIsProducer(def)) {
        virReportError(VIR_ERR_CONFIG_UNSUPPORTED,
                       _("save image '%1$s' holds no RAM: its domain XML must keep the template memory the RAM was kept in"),
                       NULLSTR(image));
        return -1;
    }

    if ((rc = qemuTemplateRAMRecordRead(driver, def, &doc, &ctxt)) < 0)
        return -1;

    if (rc == 0)
        recorded = virXPathString("string(./@nonce)", ctxt);

    if (STRNEQ_NULLABLE(recorded, nonce)) {
        virReportError(VIR_ERR_OPERATION_INVALID,
                       _("save image '%1$s' of domain '%2$s' holds no RAM, and the RAM it was saved with is no longer kept in place: the image was restored already, or the domain was saved or booted since"),
                       NULLSTR(image), def->name);
        return -1;
    }

    return 0;
}


/* The RAM files @ctxt records, which must be those of @def: their paths,
 * NULL terminated, with @nodes set to their record elements. Returns NULL
 * with an error reported. */
static char **
qemuTemplateRAMRecordFiles(virQEMUDriver *driver,
                           const virDomainDef *def,
                           xmlXPathContextPtr ctxt,
                           xmlNodePtr **nodes)
{
    g_auto(GStrv) expected = NULL;
    g_auto(GStrv) files = NULL;
    int nnodes;
    size_t i;

    if (!(expected = qemuTemplateMemoryFiles(driver, def)))
        return NULL;

    if ((nnodes = virXPathNodeSet("./ram", ctxt, nodes)) < 0)
        return NULL;

    files = g_new0(char *, nnodes + 1);
    for (i = 0; i < nnodes; i++)
        files[i] = virXMLPropString((*nodes)[i], "path");

    if (nnodes != g_strv_length(expected) ||
        !g_strv_equal((const char * const *) files, (const char * const *) expected)) {
        virReportError(VIR_ERR_OPERATION_FAILED,
                       _("the RAM files of domain '%1$s' are not those kept in place for its save image"),
                       def->name);
        return NULL;
    }

    return g_steal_pointer(&files);
}


/* Opens the RAM file @path of domain @name in the directory @dirfd, as
 * qemuTemplateRAMOpen() does, if it is as its record @node says. Returns
 * the descriptor, -2 with an error reported if the file changed since, -1
 * with an error reported on other errors. */
static int
qemuTemplateRAMOpenRecorded(int dirfd,
                            const char *path,
                            xmlNodePtr node,
                            const char *name)
{
    g_autofree char *was = NULL;
    g_autofree char *now = NULL;
    VIR_AUTOCLOSE fd = -1;
    struct stat sb;
    int ret;

    if (!(was = qemuTemplateRecordedIdentity(node)) ||
        (fd = qemuTemplateRAMOpen(dirfd, path, &sb)) < 0 ||
        !(now = qemuTemplateFileIdentity(fd, path, &sb, NULL)))
        return -1;

    if (STRNEQ(was, now)) {
        virReportError(VIR_ERR_OPERATION_FAILED,
                       _("RAM file '%1$s' of domain '%2$s' was changed after the domain was saved: it had %3$s, it has %4$s"),
                       path, name, was, now);
        return -2;
    }

    ret = fd;
    fd = -1;
    return ret;
}


/* Removes the record @record of RAM kept in place, keeping the error
 * reported before. */
static int
qemuTemplateRAMForget(const char *record)
{
    virErrorPtr orig_err;
    int ret;

    virErrorPreserveLast(&orig_err);
    ret = qemuTemplateRecordRemove(record);
    virErrorRestore(&orig_err);
    return ret;
}


/* Takes the RAM files of @vm, stopped before its vCPUs ran on them, and
 * their directory back from its QEMU, if they are as recorded in @ctxt, so
 * that the image they are kept for can be restored later. Returns 0 on
 * success, -2 with an error reported if the files are not as recorded, -1
 * with an error reported on other errors. */
static int
qemuTemplateRAMKeepAgain(virQEMUDriver *driver,
                         virDomainObj *vm,
                         xmlXPathContextPtr ctxt)
{
    const char *dir = vm->def->mem.tmpl->path;
    g_autofree xmlNodePtr *nodes = NULL;
    g_auto(GStrv) files = NULL;
    VIR_AUTOCLOSE dirfd = -1;
    struct stat sb;
    size_t i;

    if ((dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)) < 0 ||
        fstat(dirfd, &sb) < 0 ||
        fchown(dirfd, geteuid(), getegid()) < 0 ||
        fchmod(dirfd, QEMU_TEMPLATE_DIR_KEPT_MODE) < 0) {
        virReportSystemError(errno, _("unable to take template directory '%1$s'"), dir);
        return -1;
    }

    /* nothing but the RAM files, as when it was taken first */
    if (!(files = qemuTemplateRAMRecordFiles(driver, vm->def, ctxt, &nodes)) ||
        qemuTemplateCheckDirEntries(dir, &sb, files) < 0)
        return -1;

    for (i = 0; files[i]; i++) {
        VIR_AUTOCLOSE fd = -1;

        if ((fd = qemuTemplateRAMOpenRecorded(dirfd, files[i], nodes[i],
                                              vm->def->name)) < 0)
            return fd;

        if (qemuSecurityDomainRestorePathLabel(driver, vm, files[i]) < 0)
            return -1;

        if (fchown(fd, geteuid(), getegid()) < 0 ||
            fchmod(fd, S_IRUSR) < 0) {
            virReportSystemError(errno, _("unable to take RAM file '%1$s'"), files[i]);
            return -1;
        }

        if (qemuTemplateSetImmutable(fd, files[i], true) < 0)
            return -1;
    }

    return 0;
}


/**
 * qemuTemplateRAMStopped:
 * @driver: qemu driver
 * @vm: domain object that stopped while its RAM is kept in place for a
 *      save image: a save that kept it, or a restore that failed before its
 *      vCPUs ran (the record goes before they can, qemuTemplateRAMRestored())
 *
 * Takes the RAM files back from the QEMU of a restore that failed, so that
 * the image can be restored later; if they changed, nothing can restore it
 * and they are removed. Errors are only logged, as this runs when the
 * domain stops.
 */
void
qemuTemplateRAMStopped(virQEMUDriver *driver,
                       virDomainObj *vm)
{
    g_autofree char *record = qemuTemplateRAMRecordPath(driver, vm->def->mem.tmpl->path);
    g_autoptr(xmlDoc) doc = NULL;
    g_autoptr(xmlXPathContext) ctxt = NULL;
    VIR_AUTOCLOSE dirfd = -1;
    int rc;

    /* as the save left it */
    if ((dirfd = open(vm->def->mem.tmpl->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)) >= 0 &&
        qemuTemplateDirIsKept(dirfd))
        return;

    if (qemuTemplateRAMRecordRead(driver, vm->def, &doc, &ctxt) != 0 ||
        (rc = qemuTemplateRAMKeepAgain(driver, vm, ctxt)) == -1) {
        VIR_WARN("Unable to take back the RAM of domain '%s' kept in place: %s",
                 vm->def->name, virGetLastErrorMessage());
        virResetLastError();
        return;
    }

    if (rc == -2) {
        VIR_WARN("Removing the RAM of domain '%s' kept in place: %s",
                 vm->def->name, virGetLastErrorMessage());
        virResetLastError();
        qemuTemplateMemoryRemove(vm->def);
        if (!virFileExists(vm->def->mem.tmpl->path) &&
            qemuTemplateRecordRemove(record) < 0) {
            VIR_WARN("%s", virGetLastErrorMessage());
            virResetLastError();
        }
    }
}


/**
 * qemuTemplateRAMTakeBack:
 * @driver: qemu driver
 * @vm: template producer being started to restore the image its RAM files
 *      are kept for (qemuTemplateRAMCheckKept()), with its security labels
 *
 * Checks that the RAM files are as recorded, in the directory the daemon
 * took, and gives them to the domain's QEMU, read-write, while nothing
 * else can change what is in the directory: the caller gives it after.
 *
 * Returns 0 on success, -1 with an error reported.
 */
int
qemuTemplateRAMTakeBack(virQEMUDriver *driver,
                        virDomainObj *vm)
{
    const char *dir = vm->def->mem.tmpl->path;
    g_autoptr(xmlDoc) doc = NULL;
    g_autoptr(xmlXPathContext) ctxt = NULL;
    g_autofree xmlNodePtr *nodes = NULL;
    g_auto(GStrv) files = NULL;
    VIR_AUTOCLOSE dirfd = -1;
    struct stat sb;
    size_t i;
    int rc;

    if ((rc = qemuTemplateRAMRecordRead(driver, vm->def, &doc, &ctxt)) != 0) {
        if (rc > 0)
            virReportError(VIR_ERR_OPERATION_FAILED,
                           _("the RAM of domain '%1$s' is no longer kept in place"),
                           vm->def->name);
        return -1;
    }

    if ((dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)) < 0) {
        virReportSystemError(errno, _("unable to open template directory '%1$s'"), dir);
        return -1;
    }

    /* given to the QEMU of a restore that failed (qemuTemplateRAMStopped()) */
    if (!qemuTemplateDirIsKept(dirfd) &&
        qemuTemplateRAMKeepAgain(driver, vm, ctxt) < 0)
        return -1;

    if (fstat(dirfd, &sb) < 0) {
        virReportSystemError(errno, _("unable to stat template directory '%1$s'"), dir);
        return -1;
    }

    if (!(files = qemuTemplateRAMRecordFiles(driver, vm->def, ctxt, &nodes)) ||
        qemuTemplateCheckDirEntries(dir, &sb, files) < 0)
        return -1;

    for (i = 0; files[i]; i++) {
        VIR_AUTOCLOSE fd = -1;

        if ((fd = qemuTemplateRAMOpenRecorded(dirfd, files[i], nodes[i],
                                              vm->def->name)) == -2) {
            g_autofree char *record = qemuTemplateRAMRecordPath(driver, dir);

            /* nothing can restore the image: the stop removes the files */
            if (qemuTemplateRAMForget(record) < 0)
                VIR_WARN("Unable to remove '%s'", record);
        }
        if (fd < 0)
            return -1;

        if (qemuTemplateSetImmutable(fd, files[i], false) < 0)
            return -1;

        if (fchmod(fd, S_IRUSR | S_IWUSR) < 0) {
            virReportSystemError(errno, _("unable to make RAM file '%1$s' writable"),
                                 files[i]);
            return -1;
        }

        /* The labels an earlier restore remembered go first: the file is
         * not the domain's any more, and no one restores them. */
        if (qemuSecurityDomainRestorePathLabel(driver, vm, files[i]) < 0 ||
            qemuSecurityDomainSetPathLabel(driver, vm, files[i], false) < 0)
            return -1;
    }

    return 0;
}


/**
 * qemuTemplateRAMRestored:
 * @driver: qemu driver
 * @vm: template producer restored from the image its RAM files are kept
 *      for, its vCPUs not started yet
 *
 * The restored domain runs on the RAM files from now on: their record goes
 * before its vCPUs can run, so that no image is restored on RAM a guest
 * changed.
 *
 * Returns 0 on success, -1 with an error reported (the caller must stop
 * @vm, which keeps the files for the image, qemuTemplateRAMStopped()).
 */
int
qemuTemplateRAMRestored(virQEMUDriver *driver,
                        virDomainObj *vm)
{
    g_autofree char *record = qemuTemplateRAMRecordPath(driver, vm->def->mem.tmpl->path);

    return qemuTemplateRecordRemove(record);
}


/**
 * qemuTemplateRAMImageIsLost:
 * @driver: qemu driver
 * @def: definition in the save image @data
 * @data: header and XML of a save image
 *
 * Returns true if @data holds no RAM and the RAM it was saved with is no
 * longer kept in place: nothing can restore it.
 */
bool
qemuTemplateRAMImageIsLost(virQEMUDriver *driver,
                           const virDomainDef *def,
                           virQEMUSaveData *data)
{
    g_autoptr(qemuDomainSaveCookie) cookie = NULL;
    g_autoptr(xmlDoc) doc = NULL;
    g_autoptr(xmlXPathContext) ctxt = NULL;
    g_autofree char *nonce = NULL;

    if (virSaveCookieParseString(data->cookie, (virObject **)&cookie,
                                 virDomainXMLOptionGetSaveCookie(driver->xmlopt)) < 0) {
        virResetLastError();
        return false;
    }

    if (!cookie || !cookie->ramKept)
        return false;

    if (!qemuTemplateIsProducer(def) ||
        qemuTemplateRAMRecordRead(driver, def, &doc, &ctxt) != 0) {
        virResetLastError();
        return true;
    }

    nonce = virXPathString("string(./@nonce)", ctxt);
    return STRNEQ_NULLABLE(nonce, cookie->ramKept);
}


/**
 * qemuTemplateRAMCheckUndefine:
 * @driver: qemu driver
 * @vm: domain object about to be undefined, stopped
 * @managedSave: whether the managed save image goes with it
 *
 * No image can be restored on the RAM of a domain that is no more: the RAM
 * kept for the managed save image goes with it, that of another image is
 * refused.
 *
 * Returns 1 if the caller discards kept RAM (qemuTemplateRAMDiscard()), 0
 * if there is none, -1 with an error reported.
 */
int
qemuTemplateRAMCheckUndefine(virQEMUDriver *driver,
                             virDomainObj *vm,
                             bool managedSave)
{
    g_autoptr(xmlDoc) doc = NULL;
    g_autoptr(xmlXPathContext) ctxt = NULL;
    g_autofree char *image = NULL;
    g_autofree char *managed = NULL;
    int rc;

    if (!qemuTemplateIsProducer(vm->def))
        return 0;

    if ((rc = qemuTemplateRAMRecordRead(driver, vm->def, &doc, &ctxt)) != 0)
        return rc > 0 ? 0 : -1;

    managed = virXPathString("string(./@managed)", ctxt);
    if (managedSave && STREQ_NULLABLE(managed, "yes"))
        return 1;

    image = virXPathString("string(./@image)", ctxt);
    virReportError(VIR_ERR_OPERATION_INVALID,
                   _("Refusing to undefine while the domain's RAM is kept in place for save image '%1$s': restore it, or discard it with start --force-boot --paused and destroy"),
                   NULLSTR(image));
    return -1;
}


/**
 * qemuTemplateRAMDiscard:
 * @driver: qemu driver
 * @def: definition of a stopped domain
 * @managed: whether only RAM kept for the managed save image goes
 *
 * Removes the RAM files of @def kept in place for a save image, and their
 * record: that image can no longer be restored.
 *
 * Returns 0 on success or if there is nothing to remove, -1 with an error
 * reported.
 */
int
qemuTemplateRAMDiscard(virQEMUDriver *driver,
                       const virDomainDef *def,
                       bool managed)
{
    g_autoptr(xmlDoc) doc = NULL;
    g_autoptr(xmlXPathContext) ctxt = NULL;
    g_autofree char *record = NULL;
    g_autofree char *forManaged = NULL;
    int rc;

    if (!qemuTemplateIsProducer(def))
        return 0;

    if ((rc = qemuTemplateRAMRecordRead(driver, def, &doc, &ctxt)) != 0)
        return rc > 0 ? 0 : -1;

    forManaged = virXPathString("string(./@managed)", ctxt);
    if (managed && STRNEQ_NULLABLE(forManaged, "yes"))
        return 0;

    /* The files first: the record keeps refusing to boot on them until
     * they are all gone. */
    qemuTemplateMemoryRemove(def);
    if (virFileExists(def->mem.tmpl->path)) {
        virReportError(VIR_ERR_OPERATION_FAILED,
                       _("unable to remove the RAM of domain '%1$s' kept in place in '%2$s'"),
                       def->name, def->mem.tmpl->path);
        return -1;
    }

    record = qemuTemplateRAMRecordPath(driver, def->mem.tmpl->path);
    return qemuTemplateRecordRemove(record);
}
