/* A scriptable simulated-driver client for the multi-process tests
 * (tests/integration/sim_multiprocess.sh). One mode per run:
 *
 *   alloc BYTES [hold]   allocate, print "rc=N", then wait to be killed if hold
 *   race BYTES FILE      wait until FILE exists, then like "alloc BYTES hold"
 *   info                 print "free=F total=T" (after creating the primary context)
 *   churn THREADS        allocate and free random sizes forever
 *   nth COUNT            COUNT allocations of 1 MiB, print each rc
 *   ctx                  retain the primary context, print "rc=N"
 *   delay                time one allocation, print "us=N"
 *   ipc-export           4 MiB with a pattern; print the handle as hex; exit on stdin EOF
 *   ipc-import HEX       open the handle, check the pattern, print "ipc=ok" */
#include "gpumem/cuda.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

CUresult cuInit(unsigned int);
CUresult cuDevicePrimaryCtxRetain(CUcontext *, CUdevice);
CUresult cuCtxSetCurrent(CUcontext);
CUresult cuMemAlloc_v2(CUdeviceptr *, size_t);
CUresult cuMemFree_v2(CUdeviceptr);
CUresult cuMemGetInfo_v2(size_t *, size_t *);
CUresult cuMemcpyHtoD_v2(CUdeviceptr, const void *, size_t);
CUresult cuMemcpyDtoH_v2(void *, CUdeviceptr, size_t);
CUresult cuIpcGetMemHandle(CUipcMemHandle *, CUdeviceptr);
CUresult cuIpcOpenMemHandle_v2(CUdeviceptr *, CUipcMemHandle, unsigned int);
CUresult cuIpcCloseMemHandle(CUdeviceptr);

static CUcontext ctx;

static int setup(void)
{
    CUresult r = cuInit(0);
    if (!r) r = cuDevicePrimaryCtxRetain(&ctx, 0);
    if (!r) r = cuCtxSetCurrent(ctx);
    return r;
}

static void *churn(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    cuCtxSetCurrent(ctx);
    CUdeviceptr live[64] = { 0 };
    for (;;) {
        int i = (int)(rand_r(&seed) % 64);
        if (live[i]) { cuMemFree_v2(live[i]); live[i] = 0; }
        else cuMemAlloc_v2(&live[i], (size_t)(rand_r(&seed) % 2 ? rand_r(&seed) % 4096 + 1 : (rand_r(&seed) % 8 + 1) << 20));
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) return 2;
    const char *mode = argv[1];
    if (strcmp(mode, "ctx") == 0) {
        printf("rc=%d\n", setup());
        return 0;
    }
    int r = setup();
    if (r) { printf("rc=%d\n", r); return 1; }
    setvbuf(stdout, NULL, _IONBF, 0);
    if (strcmp(mode, "alloc") == 0 || strcmp(mode, "race") == 0) {
        if (strcmp(mode, "race") == 0) {
            printf("ready\n"); /* initialised; the test starts the race once both say so */
            while (access(argv[3], F_OK) != 0) usleep(200);
        }
        CUdeviceptr p;
        printf("rc=%d\n", cuMemAlloc_v2(&p, strtoull(argv[2], NULL, 10)));
        if (strcmp(mode, "race") == 0 || (argc > 3 && strcmp(argv[3], "hold") == 0)) pause();
    } else if (strcmp(mode, "info") == 0) {
        size_t f, t;
        cuMemGetInfo_v2(&f, &t);
        printf("free=%zu total=%zu\n", f, t);
    } else if (strcmp(mode, "churn") == 0) {
        int n = atoi(argv[2]);
        pthread_t th[16];
        for (int i = 0; i < n && i < 16; i++) pthread_create(&th[i], NULL, churn, (void *)(uintptr_t)(i + 1));
        pause();
    } else if (strcmp(mode, "nth") == 0) {
        int n = atoi(argv[2]);
        for (int i = 1; i <= n; i++) {
            CUdeviceptr p;
            printf("%d:%d\n", i, cuMemAlloc_v2(&p, 1 << 20));
        }
    } else if (strcmp(mode, "delay") == 0) {
        struct timespec a, b;
        CUdeviceptr p;
        clock_gettime(CLOCK_MONOTONIC, &a);
        cuMemAlloc_v2(&p, 4096);
        clock_gettime(CLOCK_MONOTONIC, &b);
        printf("us=%ld\n", (long)((b.tv_sec - a.tv_sec) * 1000000 + (b.tv_nsec - a.tv_nsec) / 1000));
    } else if (strcmp(mode, "ipc-export") == 0) {
        CUdeviceptr p;
        if (cuMemAlloc_v2(&p, 4 << 20)) return 1;
        static unsigned char pat[4 << 20];
        for (size_t i = 0; i < sizeof pat; i++) pat[i] = (unsigned char)(i * 31 + 7);
        cuMemcpyHtoD_v2(p, pat, sizeof pat);
        CUipcMemHandle h;
        if ((r = cuIpcGetMemHandle(&h, p))) { printf("rc=%d\n", r); return 1; }
        for (int i = 0; i < CU_IPC_HANDLE_SIZE; i++) printf("%02x", (unsigned char)h.reserved[i]);
        printf("\n");
        char line[16];
        if (fgets(line, sizeof line, stdin)) {
            /* the importer wrote "IMPORTED" at the start: check we see it */
            char back[9] = { 0 };
            cuMemcpyDtoH_v2(back, p, 8);
            printf("exporter-sees=%s\n", back);
        }
    } else if (strcmp(mode, "ipc-import") == 0) {
        CUipcMemHandle h;
        for (int i = 0; i < CU_IPC_HANDLE_SIZE; i++) {
            unsigned v;
            sscanf(argv[2] + 2 * i, "%2x", &v);
            h.reserved[i] = (char)v;
        }
        CUdeviceptr p;
        if ((r = cuIpcOpenMemHandle_v2(&p, h, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS))) { printf("rc=%d\n", r); return 1; }
        static unsigned char got[4 << 20];
        cuMemcpyDtoH_v2(got, p, sizeof got);
        for (size_t i = 0; i < sizeof got; i++)
            if (got[i] != (unsigned char)(i * 31 + 7)) { printf("ipc=bad at %zu\n", i); return 1; }
        cuMemcpyHtoD_v2(p, "IMPORTED", 8);
        size_t f, t;
        cuMemGetInfo_v2(&f, &t);
        printf("ipc=ok free=%zu\n", f);
        cuIpcCloseMemHandle(p);
    }
    return 0;
}
