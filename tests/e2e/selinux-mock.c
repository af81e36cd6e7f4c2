/*
 * What libvirt's SELinux test helper (tests/securityselinuxhelper.c) does
 * not fake but a daemon starting domains needs.  Preloaded after that
 * helper by scripts/daemon.sh when VIRTQEMUD_SELINUX_MOCK=1, on a kernel
 * without SELinux: labels of files opened by descriptor go to the same
 * user.libvirt.selinux xattr as the helper's, and QEMU and its sockets
 * keep the daemon's context.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#define LABEL_XATTR "user.libvirt.selinux"

int setexeccon_raw(const char *context);
int setsockcreatecon_raw(const char *context);
int fsetfilecon_raw(int fd, const char *context);
int fgetfilecon_raw(int fd, char **context);

int
setexeccon_raw(const char *context)
{
    (void)context;
    return 0;
}

int
setsockcreatecon_raw(const char *context)
{
    (void)context;
    return 0;
}

int
fsetfilecon_raw(int fd, const char *context)
{
    struct stat sb;

    if (fstat(fd, &sb) < 0)
        return -1;
    /* Pipes, as to libvirt's I/O helper, take no user xattrs. */
    if (S_ISFIFO(sb.st_mode))
        return 0;

    return fsetxattr(fd, LABEL_XATTR, context, strlen(context), 0);
}

int
fgetfilecon_raw(int fd, char **context)
{
    ssize_t len = fgetxattr(fd, LABEL_XATTR, NULL, 0);
    char *label;

    if (len < 0)
        return -1;
    if (!(label = calloc(1, len + 1)))
        return -1;
    if (fgetxattr(fd, LABEL_XATTR, label, len) < 0) {
        free(label);
        return -1;
    }
    *context = label;
    return 0;
}
