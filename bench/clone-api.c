/*
 * clone-api: start clones of a VM template through the C API, no virsh.
 *
 *   clone-api TEMPLATE NAME...
 *
 * Connects once (not timed), then for each NAME calls
 * virDomainCloneFromTemplate() and prints one line:
 *   NAME <CLOCK_MONOTONIC in ms before the call> <ms the call took>
 * so that a caller can time the clone up to an event of its own, such as
 * the guest's next heartbeat (Python's time.monotonic() is that clock).  Exits non-zero on the first failure.
 */

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

static double
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

int
main(int argc, char **argv)
{
    virConnectPtr conn;
    virDomainPtr tmpl;
    int ret = EXIT_FAILURE;
    int i;

    if (argc < 3) {
        fprintf(stderr, "usage: %s TEMPLATE NAME...\n", argv[0]);
        return EXIT_FAILURE;
    }

    if (!(conn = virConnectOpen(NULL)))
        return EXIT_FAILURE;

    if (!(tmpl = virDomainLookupByName(conn, argv[1])))
        goto cleanup;

    for (i = 2; i < argc; i++) {
        virTypedParameterPtr params = NULL;
        int nparams = 0;
        int maxparams = 0;
        virDomainPtr clone;
        double start;

        if (virTypedParamsAddString(&params, &nparams, &maxparams,
                                    VIR_DOMAIN_TEMPLATE_PARAM_NAME,
                                    argv[i]) < 0)
            goto cleanup;

        start = now_ms();
        clone = virDomainCloneFromTemplate(tmpl, params, nparams, 0);
        printf("%s %.1f %.1f\n", argv[i], start, now_ms() - start);
        fflush(stdout);
        virTypedParamsFree(params, nparams);
        if (!clone)
            goto cleanup;
        virDomainFree(clone);
    }
    ret = EXIT_SUCCESS;

 cleanup:
    if (ret != EXIT_SUCCESS)
        fprintf(stderr, "clone-api: %s\n", virGetLastErrorMessage());
    if (tmpl)
        virDomainFree(tmpl);
    virConnectClose(conn);
    return ret;
}
