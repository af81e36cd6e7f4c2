/*
 * qemusaveimagetest.c: test reading the header of QEMU save images
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
#include <unistd.h>

#include "testutils.h"

#ifdef WITH_QEMU

# include "testutilsqemu.h"
# include "qemu/qemu_saveimage.h"
# include "virfile.h"

# define VIR_FROM_THIS VIR_FROM_QEMU

static virQEMUDriver driver;

static const char testXML[] =
    "<domain type='qemu'>\n"
    "  <name>saved</name>\n"
    "  <memory unit='KiB'>219136</memory>\n"
    "  <os><type arch='x86_64' machine='pc'>hvm</type></os>\n"
    "  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices>\n"
    "</domain>\n";

static const char testCookie[] = "<cookie/>\n";

struct testHeaderInfo {
    bool nul;               /* whether the XML and cookie end in a NUL */
    bool cookie;            /* whether a cookie follows the XML */
    bool empty;             /* whether the header says there is no data */
    uint32_t dataLen;       /* if not 0, the data length the header says */
    uint32_t cookieOffset;  /* if not 0, the cookie offset it says */
    const char *error;      /* what a refusal says, NULL if read */
};


/* Whether @rc and what was read, @def and @data, are as @info expects. */
static int
testHeaderCheck(const struct testHeaderInfo *info,
                int rc,
                virDomainDef *def,
                virQEMUSaveData *data)
{
    if (info->error) {
        g_autofree char *msg = NULL;

        if (rc == 0) {
            VIR_TEST_DEBUG("the header was not refused");
            return -1;
        }
        msg = g_strdup(virGetLastErrorMessage());
        virResetLastError();
        if (!strstr(msg, info->error)) {
            VIR_TEST_DEBUG("refused with '%s', not '%s'", msg, info->error);
            return -1;
        }
        return 0;
    }

    if (rc < 0)
        return -1;

    /* Each as the image holds it, ending in a NUL whether it did or not. */
    if (STRNEQ(data->xml, testXML) || STRNEQ(def->name, "saved")) {
        VIR_TEST_DEBUG("the XML read back is not the one written: '%s'", data->xml);
        return -1;
    }
    if (info->cookie && STRNEQ_NULLABLE(data->cookie, testCookie)) {
        VIR_TEST_DEBUG("the cookie read back is not the one written: '%s'",
                       NULLSTR(data->cookie));
        return -1;
    }

    return 0;
}


/* Writes a save image whose header is as @info says, followed by the XML
 * and the cookie; reads it back as the driver does. */
static int
testHeader(const void *opaque)
{
    const struct testHeaderInfo *info = opaque;
    g_autofree char *path = g_strdup_printf("%s/qemusaveimagetest-XXXXXX", abs_builddir);
    g_autoptr(virDomainDef) def = NULL;
    virQEMUSaveData *data = NULL;
    size_t xmlLen = strlen(testXML) + (info->nul ? 1 : 0);
    size_t cookieLen = info->cookie ? strlen(testCookie) + (info->nul ? 1 : 0) : 0;
    virQEMUSaveHeader header = { .version = QEMU_SAVE_VERSION,
                                 .format = QEMU_SAVE_FORMAT_RAW };
    VIR_AUTOCLOSE fd = -1;
    int rc;

    memcpy(header.magic, QEMU_SAVE_MAGIC, sizeof(header.magic));
    header.data_len = info->empty ? 0 :
                      info->dataLen ? info->dataLen : xmlLen + cookieLen;
    header.cookieOffset = info->cookieOffset ? info->cookieOffset :
                          info->cookie ? xmlLen : 0;

    if ((fd = g_mkstemp_full(path, O_RDWR, 0600)) < 0)
        return -1;
    if (safewrite(fd, &header, sizeof(header)) != sizeof(header) ||
        safewrite(fd, testXML, xmlLen) != xmlLen ||
        safewrite(fd, testCookie, cookieLen) != cookieLen) {
        unlink(path);
        return -1;
    }
    VIR_FORCE_CLOSE(fd);
    rc = qemuSaveImageGetMetadata(&driver, NULL, path, &def, &data);
    unlink(path);
    rc = testHeaderCheck(info, rc, def, data);
    virQEMUSaveDataFree(data);
    return rc;
}


static int
mymain(void)
{
    g_autoptr(GHashTable) capslatest = testQemuGetLatestCaps();
    g_autoptr(GHashTable) capscache = virHashNew(virObjectUnref);
    int ret = 0;

    if (qemuTestDriverInit(&driver) < 0)
        return EXIT_FAILURE;

    if (testQemuInsertRealCaps(driver.qemuCapsCache, "x86_64", "latest", "",
                               capslatest, capscache, NULL, NULL) < 0) {
        ret = -1;
        goto cleanup;
    }

# define DO_TEST_HEADER(desc, ...) \
    do { \
        static struct testHeaderInfo info = { __VA_ARGS__ }; \
        if (virTestRun("save image header " desc, testHeader, &info) < 0) \
            ret = -1; \
    } while (0)

    DO_TEST_HEADER("as the driver writes it", .nul = true, .cookie = true);
    DO_TEST_HEADER("without a cookie", .nul = true);
    DO_TEST_HEADER("without NULs", .cookie = true);
    DO_TEST_HEADER("with no data", .nul = true, .empty = true,
                   .error = "invalid header data length: 0");
    DO_TEST_HEADER("with 4 GiB of data", .nul = true, .dataLen = 0xffffffff,
                   .error = "invalid header data length: 4294967295");
    DO_TEST_HEADER("with more data than a domain XML can have",
                   .nul = true, .dataLen = 16 * 1024 * 1024 + 1,
                   .error = "invalid header data length: 16777217");
    DO_TEST_HEADER("with a cookie past the data", .nul = true, .cookie = true,
                   .cookieOffset = 0x7fffffff,
                   .error = "invalid header cookie offset: 2147483647");

 cleanup:
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
