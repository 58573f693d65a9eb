/* Replays a list of cuGetProcAddress lookups the way cudart 13 makes them
 * (dlopen libcuda.so.1, dlsym only cuGetProcAddress_v2, switch to the
 * pointer the lookup of cuGetProcAddress at 12000 gives) and prints, for each
 * one, the driver's (or the shim's) answer and where the pointer lives:
 *
 *   NAME VERSION FLAGS rc=R status=S WHERE
 *
 * WHERE is "null", "driver:SYMBOL" (the address of that export of
 * libcuda), "driver:+0xOFFSET" (inside libcuda but no export of its own),
 * "shim:SYMBOL" (a hook of libgpumem.so) or "other:FILE". The first line is
 * "# driver FILE version V" (cuDriverGetVersion). The list has one lookup a
 * line, "NAME ver=V flags=F" (tests/data/cudart13-driver-lookups.txt); a line
 * without a name is left out. Used by tests/integration/realdrv_lookups.sh,
 * which compares the answers with and without the shim. */
#include "gpumem/cuda.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

static void where(void *p, char *out, size_t len)
{
    Dl_info info;
    if (!p) {
        snprintf(out, len, "null");
        return;
    }
    if (!dladdr(p, &info) || !info.dli_fname) {
        snprintf(out, len, "other:?");
        return;
    }
    const char *who = strstr(info.dli_fname, "libgpumem") ? "shim" : strstr(info.dli_fname, "libcuda") ? "driver" : NULL;
    if (!who)
        snprintf(out, len, "other:%s", info.dli_fname);
    else if (info.dli_sname && info.dli_saddr == p)
        snprintf(out, len, "%s:%s", who, info.dli_sname);
    else
        snprintf(out, len, "%s:+0x%lx", who, (unsigned long)((char *)p - (char *)info.dli_fbase));
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: lookup_replay LIST\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "r");
    if (!f) {
        perror(argv[1]);
        return 2;
    }
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "lookup_replay: %s\n", dlerror());
        return 2;
    }
    void *first = dlsym(h, "cuGetProcAddress_v2");
    if (!first) {
        fprintf(stderr, "lookup_replay: no cuGetProcAddress_v2: %s\n", dlerror());
        return 2;
    }
    PFN_cuGetProcAddress_v12000 gpa;
    memcpy(&gpa, &first, sizeof first);

    int version = 0;
    char buf[512];
    void *dgv = dlsym(h, "cuDriverGetVersion");
    CUresult vr = CUDA_ERROR_NOT_FOUND;
    if (dgv) {
        CUresult (*fn)(int *);
        memcpy(&fn, &dgv, sizeof dgv);
        vr = fn(&version);
    }
    Dl_info info;
    printf("# driver %s version %d (rc=%d)\n", dladdr(first, &info) && info.dli_fname ? info.dli_fname : "?", version,
           vr);

    char line[512];
    while (fgets(line, sizeof line, f)) {
        char name[256];
        int ver;
        unsigned long long flags;
        if (sscanf(line, "%255s ver=%d flags=%llu", name, &ver, &flags) != 3)
            continue; /* no name: nothing to look up */
        void *p = NULL;
        CUdriverProcAddressQueryResult st = (CUdriverProcAddressQueryResult)99;
        CUresult r = gpa(name, &p, ver, (cuuint64_t)flags, &st);
        where(p, buf, sizeof buf);
        printf("%s %d %llu rc=%d status=%d %s\n", name, ver, flags, r, (int)st, buf);
        /* cudart goes on with the cuGetProcAddress it fetched at 12000. */
        if (r == CUDA_SUCCESS && p && !strcmp(name, "cuGetProcAddress") && ver >= 12000)
            memcpy(&gpa, &p, sizeof p);
    }
    fclose(f);
    return 0;
}
