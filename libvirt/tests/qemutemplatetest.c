/*
 * qemutemplatetest.c: test the definitions of clones of VM templates and
 * the record of a template's files
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

#include "testutils.h"

#ifdef WITH_QEMU

# include "testutilsqemu.h"
# include "virfile.h"
# define LIBVIRT_QEMU_TEMPLATEPRIV_H_ALLOW
# include "qemu/qemu_templatepriv.h"

# define VIR_FROM_THIS VIR_FROM_QEMU

static virQEMUDriver driver;

struct testCloneInfo {
    const char *name;    /* the clone's name, or NULL */
    const char *named;   /* the name it gets, if not compared to a file */
    const char *dxml;    /* file of the clone's XML, or NULL */
    const char *expect;  /* golden file of the clone's XML, or NULL */
    const char *error;   /* what a refusal says */
};


static virDomainDef *
testParseProducer(void)
{
    g_autofree char *path = g_strdup_printf("%s/qemutemplatedata/%s.xml",
                                            abs_srcdir, "producer");

    return virDomainDefParseFile(path, driver.xmlopt, NULL,
                                 VIR_DOMAIN_DEF_PARSE_INACTIVE);
}


static int
testCheckRefusal(const char *error)
{
    const char *msg = virGetLastErrorMessage();

    if (!strstr(msg, error)) {
        VIR_TEST_DEBUG("refused with '%s', expected '%s'", msg, error);
        return -1;
    }
    virResetLastError();
    return 0;
}


static int
testCloneDef(const void *opaque)
{
    const struct testCloneInfo *info = opaque;
    g_autoptr(virDomainDef) tmpl = NULL;
    g_autoptr(virDomainDef) def = NULL;
    g_autofree char *dxml = NULL;
    g_autofree char *xml = NULL;
    g_autofree char *expect = NULL;

    if (!(tmpl = testParseProducer()))
        return -1;

    if (info->dxml) {
        g_autofree char *path = g_strdup_printf("%s/qemutemplatedata/%s.xml",
                                                abs_srcdir, info->dxml);

        if (virTestLoadFile(path, &dxml) < 0)
            return -1;
    }

    def = qemuTemplateCloneDef(&driver, tmpl, info->name, dxml);

    if (info->error) {
        if (def) {
            VIR_TEST_DEBUG("clone '%s' was not refused", def->name);
            return -1;
        }
        return testCheckRefusal(info->error);
    }

    if (!def)
        return -1;

    /* What every clone gets, whatever its XML says. */
    if (memcmp(def->uuid, tmpl->uuid, VIR_UUID_BUFLEN) == 0) {
        VIR_TEST_DEBUG("the clone has its template's UUID");
        return -1;
    }
    if (def->mem.access != VIR_DOMAIN_MEMORY_ACCESS_PRIVATE ||
        def->mem.source != VIR_DOMAIN_MEMORY_SOURCE_FILE ||
        !def->mem.tmpl ||
        STRNEQ(def->mem.tmpl->path, tmpl->mem.tmpl->path)) {
        VIR_TEST_DEBUG("the clone does not map its template's RAM privately");
        return -1;
    }

    if (info->named && STRNEQ(def->name, info->named)) {
        VIR_TEST_DEBUG("the clone is named '%s', not '%s'", def->name, info->named);
        return -1;
    }

    if (!info->expect)
        return 0;

    /* The rest is compared with the expected XML, with a UUID of its own. */
    ignore_value(virUUIDParse("8c7a3d9e-64f1-4c0b-9d53-7a0e5c1f2b46", def->uuid));
    if (!(xml = virDomainDefFormat(def, driver.xmlopt, VIR_DOMAIN_DEF_FORMAT_SECURE)))
        return -1;
    expect = g_strdup_printf("%s/qemutemplatedata/%s.xml", abs_srcdir, info->expect);
    return virTestCompareToFile(xml, expect);
}


static int
testRecordRefuses(const char *record,
                  const char *what,
                  const char *error)
{
    if (qemuTemplateRecordCheck(record) == 0) {
        VIR_TEST_DEBUG("%s was not refused", what);
        return -1;
    }
    return testCheckRefusal(error);
}


/* The record of a template's files refuses one that changed. */
static int
testRecord(const void *opaque G_GNUC_UNUSED)
{
    g_autofree char *dir = g_strdup_printf("%s/qemutemplatetest-XXXXXX", abs_builddir);
    g_autofree char *file = NULL;
    g_autofree char *other = NULL;
    g_autofree char *record = NULL;
    g_autofree char *via = NULL;
    g_autofree char *alt = NULL;
    g_autofree char *altFile = NULL;
    g_autofree char *viaFile = NULL;
    g_autofree char *odd = NULL;
    g_autofree char *oddLink = NULL;
    g_autofree char *oddPath = NULL;
    g_auto(virBuffer) oddBuf = VIR_BUFFER_INITIALIZER;
    g_autofree char *viaRecord = NULL;
    g_auto(virBuffer) buf = VIR_BUFFER_INITIALIZER;
    g_auto(virBuffer) viaBuf = VIR_BUFFER_INITIALIZER;
    struct timespec later[2] = { { 0, UTIME_OMIT }, { 2000000000, 0 } };
    int ret = -1;
    int rc;

    if (!g_mkdtemp(dir))
        return -1;
    file = g_build_filename(dir, "pc.ram", NULL);
    other = g_build_filename(dir, "other.ram", NULL);
    record = g_build_filename(dir, "record.xml", NULL);
    via = g_build_filename(dir, "via", NULL);
    odd = g_build_filename(dir, "odd\nname.ram", NULL);
    alt = g_build_filename(dir, "alt", NULL);
    altFile = g_build_filename(alt, "pc.ram", NULL);
    viaRecord = g_build_filename(dir, "via.xml", NULL);

    if (virFileWriteStr(file, "memory", 0600) < 0 ||
        virFileWriteStr(other, "memory", 0600) < 0)
        goto cleanup;

    virBufferAddLit(&buf, "<templateFiles>\n");
    if (qemuTemplateRecordFormatFile(&buf, "ram", file, NULL) < 0)
        goto cleanup;
    virBufferAddLit(&buf, "</templateFiles>\n");
    if (virFileWriteStr(record, virBufferCurrentContent(&buf), 0600) < 0)
        goto cleanup;

    if (qemuTemplateRecordCheck(record) < 0) {
        VIR_TEST_DEBUG("the unchanged file was refused");
        goto cleanup;
    }

    /* A record in a directory others may write is not the daemon's. */
    if (chmod(dir, 0755) < 0)
        goto cleanup;
    rc = testRecordRefuses(record, "a record others may replace",
                           "is not the daemon's alone");
    if (chmod(dir, 0700) < 0 || rc < 0)
        goto cleanup;

    /* A name the record could not keep as it is. */
    if (rename(other, odd) < 0)
        goto cleanup;
    rc = qemuTemplateRecordFormatFile(&oddBuf, "ram", odd, NULL);
    if (rename(odd, other) < 0 || rc == 0 ||
        testCheckRefusal("holds control characters") < 0)
        goto cleanup;

    /* Nor as a path naming it, through a link of such a name. */
    oddPath = g_strdup_printf("%s/odd\nlink/pc.ram", dir);
    oddLink = g_build_filename(dir, "odd\nlink", NULL);
    if (symlink(".", oddLink) < 0)
        goto cleanup;
    rc = qemuTemplateRecordFormatFile(&oddBuf, "ram", oddPath, NULL);
    if (rc == 0 || testCheckRefusal("holds control characters") < 0)
        goto cleanup;

    /* The same file (a second name of it) found elsewhere, through a link
     * on the way repointed: not where the template recorded it. */
    if (symlink(".", via) < 0 || g_mkdir(alt, 0700) < 0 || link(file, altFile) < 0)
        goto cleanup;
    virBufferAddLit(&viaBuf, "<templateFiles>\n");
    viaFile = g_build_filename(via, "pc.ram", NULL);
    rc = qemuTemplateRecordFormatFile(&viaBuf, "ram", viaFile, NULL);
    virBufferAddLit(&viaBuf, "</templateFiles>\n");
    if (rc < 0 || virFileWriteStr(viaRecord, virBufferCurrentContent(&viaBuf), 0600) < 0 ||
        unlink(via) < 0 || symlink("alt", via) < 0)
        goto cleanup;
    if (testRecordRefuses(viaRecord, "the file found elsewhere",
                          "was changed after the template was created") < 0)
        goto cleanup;
    unlink(altFile);

    /* Written behind the daemon's back: same size, later mtime. */
    if (utimensat(AT_FDCWD, file, later, 0) < 0)
        goto cleanup;
    if (testRecordRefuses(record, "a written file", "was changed after the template was created") < 0)
        goto cleanup;

    /* Replaced by another file of the same size. */
    if (rename(other, file) < 0)
        goto cleanup;
    if (testRecordRefuses(record, "a replaced file", "was changed after the template was created") < 0)
        goto cleanup;

    /* Gone. */
    if (unlink(file) < 0)
        goto cleanup;
    if (testRecordRefuses(record, "a missing file", "unable to open") < 0)
        goto cleanup;

    /* Something else in its place is refused unopened (a FIFO would block). */
    if (mkfifo(file, 0600) < 0)
        goto cleanup;
    if (testRecordRefuses(record, "a FIFO", "is not a regular file") < 0)
        goto cleanup;

    ret = 0;

 cleanup:
    unlink(file);
    unlink(other);
    unlink(record);
    unlink(altFile);
    rmdir(alt);
    unlink(via);
    unlink(viaRecord);
    unlink(odd);
    if (oddLink)
        unlink(oddLink);
    rmdir(dir);
    return ret;
}


static int
testImageDirRefuses(int fd,
                    const char *path,
                    const char *what,
                    const char *error)
{
    if (qemuTemplateCheckImageDir(fd, path) == 0) {
        VIR_TEST_DEBUG("%s was not refused", what);
        return -1;
    }
    return testCheckRefusal(error);
}


/* Whether no one but root and this user may change any directory on the
 * way to @dir (no links on it), by lstat(): what the code under test must
 * tell by descriptor. */
static bool
testDirIsTrusted(const char *dir)
{
    g_autofree char *path = g_strdup(dir);
    char *slash = path;

    while (slash) {
        struct stat sb;
        bool last;

        slash = strchr(slash + 1, '/');
        if (slash)
            *slash = '\0';
        last = !slash;
        if (lstat(*path ? path : "/", &sb) < 0 || !S_ISDIR(sb.st_mode) ||
            (sb.st_uid != 0 && sb.st_uid != geteuid()) ||
            ((sb.st_mode & (S_IWGRP | S_IWOTH)) && (!(sb.st_mode & S_ISVTX) || last)))
            return false;
        if (slash)
            *slash = '/';
    }
    return true;
}


/* Clones open a template's disk image by its configured path: each
 * directory and link on the way must be out of reach of anyone but root. */
static int
testImageDir(const void *opaque G_GNUC_UNUSED)
{
    g_autofree char *dir = g_strdup_printf("%s/qemutemplatetest-XXXXXX", abs_builddir);
    g_autofree char *images = NULL;
    g_autofree char *file = NULL;
    g_autofree char *other = NULL;
    g_autofree char *rootLink = NULL;
    g_autofree char *upLink = NULL;
    g_autofree char *userLink = NULL;
    g_autofree char *loop = NULL;
    g_autofree char *path = NULL;
    VIR_AUTOCLOSE fd = -1;
    int ret = -1;

    if (!g_mkdtemp(dir))
        return -1;
    images = g_build_filename(dir, "images", NULL);
    file = g_build_filename(images, "disk.img", NULL);
    other = g_build_filename(images, "other.img", NULL);
    rootLink = g_build_filename(dir, "root-link", NULL);
    upLink = g_build_filename(dir, "up-link", NULL);
    userLink = g_build_filename(dir, "user-link", NULL);
    loop = g_build_filename(dir, "loop", NULL);

    if (g_mkdir(images, 0755) < 0 ||
        virFileWriteStr(file, "disk", 0600) < 0 ||
        virFileWriteStr(other, "disk", 0600) < 0 ||
        (fd = open(file, O_RDONLY)) < 0)
        goto cleanup;

    /* a build directory that others may change (umask 002) */
    if (!testDirIsTrusted(dir)) {
        VIR_TEST_DEBUG("skipped: others may change a directory on the way to '%s'", dir);
        ret = EXIT_AM_SKIP;
        goto cleanup;
    }

    if (qemuTemplateCheckImageDir(fd, file) < 0) {
        VIR_TEST_DEBUG("the image in a trusted directory was refused");
        goto cleanup;
    }

    /* Links of root's are followed, as the kernel does ('..' included). */
    path = g_strdup_printf("%s/disk.img", rootLink);
    if (symlink(images, rootLink) < 0 ||
        qemuTemplateCheckImageDir(fd, path) < 0) {
        VIR_TEST_DEBUG("the image through a link of root's was refused");
        goto cleanup;
    }
    g_free(path);
    path = g_strdup_printf("%s/./../root-link//disk.img", upLink);
    if (symlink("images", upLink) < 0 ||
        qemuTemplateCheckImageDir(fd, path) < 0) {
        VIR_TEST_DEBUG("the image through '..' was refused");
        goto cleanup;
    }

    /* Another file at that path. */
    if (testImageDirRefuses(fd, other, "another file", "was replaced") < 0)
        goto cleanup;

    /* A link that never ends. */
    g_free(path);
    path = g_strdup_printf("%s/disk.img", loop);
    if (symlink("loop", loop) < 0 ||
        testImageDirRefuses(fd, path, "a link loop", "unable to open") < 0)
        goto cleanup;

    /* A link someone else may point elsewhere, though it leads to the
     * very file in a trusted directory now. */
    if (geteuid() == 0) {
        g_free(path);
        path = g_strdup_printf("%s/disk.img", userLink);
        if (symlink(images, userLink) < 0 ||
            lchown(userLink, 65534, 65534) < 0 ||
            testImageDirRefuses(fd, path, "a link of another user",
                                "must be in directories only root may change") < 0)
            goto cleanup;
    }

    /* A directory others may write. */
    if (chmod(images, 0777) < 0 ||
        testImageDirRefuses(fd, file, "a directory others may write",
                            "must be in directories only root may change") < 0)
        goto cleanup;

    ret = 0;

 cleanup:
    unlink(file);
    unlink(other);
    rmdir(images);
    unlink(rootLink);
    unlink(upLink);
    unlink(userLink);
    unlink(loop);
    rmdir(dir);
    return ret;
}


static int
testAddDomain(const char *name)
{
    g_autoptr(virDomainDef) def = testParseProducer();
    virDomainObj *vm;

    if (!def)
        return -1;
    g_free(def->name);
    def->name = g_strdup(name);
    if (virUUIDGenerate(def->uuid) < 0 ||
        !(vm = virDomainObjListAdd(driver.domains, &def, driver.xmlopt, 0, NULL)))
        return -1;
    virDomainObjEndAPI(&vm);
    return 0;
}


/* A save image is rewritten to map a template's memory only if the saved
 * domain maps it already; its definition may lack a path (not validated). */
static int
testImageDefine(const void *opaque G_GNUC_UNUSED)
{
    g_autoptr(virDomainDef) tmpl = testParseProducer();
    g_autoptr(virDomainDef) clone = NULL;
    g_autoptr(virDomainDef) pathless = NULL;

    if (!tmpl ||
        !(clone = qemuTemplateCloneDef(&driver, tmpl, "saved", NULL)) ||
        !(pathless = virDomainDefCopy(clone, driver.xmlopt, NULL, false)))
        return -1;
    g_clear_pointer(&pathless->mem.tmpl->path, g_free);

    if (qemuTemplateCheckImageDefine(clone, clone) < 0 ||
        qemuTemplateCheckImageDefine(tmpl, tmpl) < 0) {
        VIR_TEST_DEBUG("an image cannot keep its own definition");
        return -1;
    }
    if (qemuTemplateCheckImageDefine(pathless, clone) == 0 ||
        testCheckRefusal("no clone of") < 0 ||
        qemuTemplateCheckImageDefine(clone, pathless) == 0 ||
        testCheckRefusal("no clone of") < 0) {
        VIR_TEST_DEBUG("a path was given to or taken from a clone's image");
        return -1;
    }
    if (qemuTemplateCheckImageDefine(tmpl, clone) == 0) {
        VIR_TEST_DEBUG("the image of a domain that is no clone was made one");
        return -1;
    }
    return testCheckRefusal("no clone of");
}


/* A snapshot of a clone reverts only onto the template the clone maps. */
static int
testRevert(const void *opaque G_GNUC_UNUSED)
{
    g_autoptr(virDomainDef) tmpl = testParseProducer();
    g_autoptr(virDomainDef) snapDef = NULL;
    g_autoptr(virDomainDef) otherDef = NULL;
    g_autoptr(virDomainDef) def = NULL;
    virDomainObj *vm = NULL;
    virDomainObj *producer = NULL;
    int ret = -1;

    if (!tmpl ||
        !(def = qemuTemplateCloneDef(&driver, tmpl, "revert", NULL)) ||
        !(snapDef = virDomainDefCopy(def, driver.xmlopt, NULL, false)) ||
        !(otherDef = virDomainDefCopy(def, driver.xmlopt, NULL, false)))
        return -1;
    g_free(otherDef->mem.tmpl->path);
    otherDef->mem.tmpl->path = g_strdup("/var/lib/libvirt/template/a7d1c6b0-5f0e-4c55-9a55-2d7e0f1b6c3e");

    if (!(vm = virDomainObjListAdd(driver.domains, &def, driver.xmlopt, 0, NULL)) ||
        !(producer = virDomainObjListAdd(driver.domains, &tmpl, driver.xmlopt, 0, NULL)))
        goto cleanup;

    if (qemuTemplateCheckRevert(vm, snapDef) < 0 ||
        qemuTemplateCheckRevert(vm, NULL) < 0) {
        VIR_TEST_DEBUG("a clone cannot revert to its own snapshot");
        goto cleanup;
    }
    if (qemuTemplateCheckRevert(vm, otherDef) == 0) {
        VIR_TEST_DEBUG("a clone reverted to a snapshot of another template's memory");
        goto cleanup;
    }
    if (testCheckRefusal("no clone of") < 0)
        goto cleanup;
    if (qemuTemplateCheckRevert(producer, snapDef) == 0) {
        VIR_TEST_DEBUG("a producer reverted to a snapshot of a clone");
        goto cleanup;
    }
    ret = testCheckRefusal("no clone of");

 cleanup:
    if (vm)
        virDomainObjListRemove(driver.domains, vm);
    if (producer)
        virDomainObjListRemove(driver.domains, producer);
    virDomainObjEndAPI(&vm);
    virDomainObjEndAPI(&producer);
    return ret;
}


static int
mymain(void)
{
    g_autoptr(GHashTable) capslatest = testQemuGetLatestCaps();
    g_autoptr(GHashTable) capscache = virHashNew(virObjectUnref);
    int ret = 0;

    if (qemuTestDriverInit(&driver) < 0)
        return EXIT_FAILURE;
    /* Clones get the first name that no domain has. */
    driver.domains = virDomainObjListNew();

    if (testQemuInsertRealCaps(driver.qemuCapsCache, "x86_64", "latest", "",
                               capslatest, capscache, NULL, NULL) < 0) {
        ret = -1;
        goto cleanup;
    }

# define DO_TEST_CLONE(desc, ...) \
    do { \
        static struct testCloneInfo info = { __VA_ARGS__ }; \
        if (virTestRun("clone " desc, testCloneDef, &info) < 0) \
            ret = -1; \
    } while (0)

    DO_TEST_CLONE("with the first free name", .expect = "producer-clone");
    DO_TEST_CLONE("named", .name = "web1", .expect = "producer-clone-web1");
    if (testAddDomain("QEMUGuest1-clone-1") < 0)
        ret = -1;
    DO_TEST_CLONE("with a free name after one in use",
                  .named = "QEMUGuest1-clone-2");
    DO_TEST_CLONE("from XML", .dxml = "clone-xml", .expect = "clone-xml-clone");

    /* A clone's name ends up in file names: it gets the parser's checks. */
    DO_TEST_CLONE("named with a '/'", .name = "../../evil",
                  .error = "cannot contain '/'");
    DO_TEST_CLONE("named with a newline", .name = "a\nb",
                  .error = "invalid char in name");
    DO_TEST_CLONE("named '..'", .name = "..",
                  .error = "can't be the name of a clone");
    DO_TEST_CLONE("named as its template", .name = "QEMUGuest1",
                  .error = "a clone needs a name of its own");
    DO_TEST_CLONE("from XML of another guest ABI", .dxml = "clone-vcpus",
                  .error = "does not match source");

    if (virTestRun("record refuses changed files", testRecord, NULL) < 0)
        ret = -1;
    if (virTestRun("disk images only where root alone may change them",
                   testImageDir, NULL) < 0)
        ret = -1;
    if (virTestRun("save images become clones only of their template",
                   testImageDefine, NULL) < 0)
        ret = -1;
    if (virTestRun("revert only onto the clone's template", testRevert, NULL) < 0)
        ret = -1;

 cleanup:
    virObjectUnref(driver.domains);
    qemuTestDriverFree(&driver);
    return ret == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

VIR_TEST_MAIN(mymain)

#else

int main(void)
{
    return EXIT_AM_SKIP;
}

#endif /* WITH_QEMU */
