/* MIG in the simulated GPU (and under the shim), for tests/integration/mig_*.sh.
 * Linked with -lcuda (the simulated one); NVML is reached with dlopen, like
 * nvidia-smi. Prints facts, one per line; the scripts compare them.
 *
 *   nvml           "gpu I uuid=U mig=M pending=P max=N" for every GPU, then
 *                  "mig I.K uuid=U gi=G ci=C is_mig=1 parent=I total=T
 *                  used=U name=NAME" for each of its MIG devices, and
 *                  "byuuid I.K=RC" (nvmlDeviceGetHandleByUUID of it)
 *   cuda           "count=N rc=RC", then for each visible ordinal
 *                  "cuda I v2=HEX v1=HEX total=T free=F name=NAME"
 *                  (v2/v1: cuDeviceGetUuid_v2 / cuDeviceGetUuid bytes, hex;
 *                  free: cuMemGetInfo in the device's primary context)
 *   alloc SIZE [hold]  on visible ordinal 0: cuMemAlloc SIZE; prints
 *                  "alloc rc=RC free=F total=T"; with hold, then "held" and
 *                  waits for stdin to close */
#include "gpumem/cuda.h"
#include "gpumem/nvml.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

CUresult cuInit(unsigned int);
CUresult cuDeviceGetCount(int *);
CUresult cuDeviceGet(CUdevice *, int);
CUresult cuDeviceGetName(char *, int, CUdevice);
CUresult cuDeviceGetUuid(CUuuid *, CUdevice);
CUresult cuDeviceGetUuid_v2(CUuuid *, CUdevice);
CUresult cuDeviceTotalMem_v2(size_t *, CUdevice);
CUresult cuDevicePrimaryCtxRetain(CUcontext *, CUdevice);
CUresult cuCtxSetCurrent(CUcontext);
CUresult cuMemGetInfo_v2(size_t *, size_t *);
CUresult cuMemAlloc_v2(CUdeviceptr *, size_t);

#define NV(name) static PFN_##name p_##name;
NV(nvmlInit_v2)
NV(nvmlDeviceGetCount_v2)
NV(nvmlDeviceGetHandleByIndex_v2)
NV(nvmlDeviceGetHandleByUUID)
NV(nvmlDeviceGetUUID)
NV(nvmlDeviceGetName)
NV(nvmlDeviceGetMemoryInfo)
NV(nvmlDeviceGetMigMode)
NV(nvmlDeviceGetMaxMigDeviceCount)
NV(nvmlDeviceGetMigDeviceHandleByIndex)
NV(nvmlDeviceIsMigDeviceHandle)
NV(nvmlDeviceGetDeviceHandleFromMigDeviceHandle)
NV(nvmlDeviceGetGpuInstanceId)
NV(nvmlDeviceGetComputeInstanceId)
#undef NV

static int load_nvml(void)
{
    void *h = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        printf("nvml-error %s\n", dlerror());
        return -1;
    }
    int missing = 0;
#define LOAD(name) missing |= !(p_##name = (PFN_##name)dlsym(h, #name));
    LOAD(nvmlInit_v2)
    LOAD(nvmlDeviceGetCount_v2)
    LOAD(nvmlDeviceGetHandleByIndex_v2)
    LOAD(nvmlDeviceGetHandleByUUID)
    LOAD(nvmlDeviceGetUUID)
    LOAD(nvmlDeviceGetName)
    LOAD(nvmlDeviceGetMemoryInfo)
    LOAD(nvmlDeviceGetMigMode)
    LOAD(nvmlDeviceGetMaxMigDeviceCount)
    LOAD(nvmlDeviceGetMigDeviceHandleByIndex)
    LOAD(nvmlDeviceIsMigDeviceHandle)
    LOAD(nvmlDeviceGetDeviceHandleFromMigDeviceHandle)
    LOAD(nvmlDeviceGetGpuInstanceId)
    LOAD(nvmlDeviceGetComputeInstanceId)
#undef LOAD
    if (missing || p_nvmlInit_v2() != NVML_SUCCESS) {
        printf("nvml-error init\n");
        return -1;
    }
    return 0;
}

static int nvml_list(void)
{
    if (load_nvml() < 0)
        return 1;
    unsigned n = 0;
    p_nvmlDeviceGetCount_v2(&n);
    for (unsigned i = 0; i < n; i++) {
        nvmlDevice_t d;
        char uuid[96] = "", name[96] = "";
        unsigned cur = 9, pend = 9, max = 99;
        if (p_nvmlDeviceGetHandleByIndex_v2(i, &d) != NVML_SUCCESS)
            continue;
        p_nvmlDeviceGetUUID(d, uuid, sizeof uuid);
        p_nvmlDeviceGetMigMode(d, &cur, &pend);
        p_nvmlDeviceGetMaxMigDeviceCount(d, &max);
        printf("gpu %u uuid=%s mig=%u pending=%u max=%u\n", i, uuid, cur, pend, max);
        for (unsigned k = 0; k < max; k++) {
            nvmlDevice_t m, parent = NULL, back = NULL;
            if (p_nvmlDeviceGetMigDeviceHandleByIndex(d, k, &m) != NVML_SUCCESS)
                continue;
            unsigned gi = 99, ci = 99, is = 9;
            nvmlMemory_t mem = { 0 };
            p_nvmlDeviceGetUUID(m, uuid, sizeof uuid);
            p_nvmlDeviceGetName(m, name, sizeof name);
            p_nvmlDeviceGetGpuInstanceId(m, &gi);
            p_nvmlDeviceGetComputeInstanceId(m, &ci);
            p_nvmlDeviceIsMigDeviceHandle(m, &is);
            p_nvmlDeviceGetMemoryInfo(m, &mem);
            p_nvmlDeviceGetDeviceHandleFromMigDeviceHandle(m, &parent);
            printf("mig %u.%u uuid=%s gi=%u ci=%u is_mig=%u parent=%s total=%llu used=%llu name=%s\n", i, k, uuid,
                   gi, ci, is, parent == d ? "ok" : "wrong", mem.total, mem.used, name);
            printf("byuuid %u.%u=%d\n", i, k,
                   p_nvmlDeviceGetHandleByUUID(uuid, &back) == NVML_SUCCESS && back == m ? 0 : 1);
        }
    }
    return 0;
}

static void hex(const CUuuid *u, char *out)
{
    for (int i = 0; i < 16; i++)
        sprintf(out + 2 * i, "%02x", (unsigned char)u->bytes[i]);
}

static int cuda_list(void)
{
    int rc = cuInit(0), n = 0;
    int crc = cuDeviceGetCount(&n);
    printf("count=%d rc=%d/%d\n", n, rc, crc);
    for (int i = 0; i < n; i++) {
        CUdevice dev;
        CUuuid u1, u2;
        char name[128] = "", h1[33] = "", h2[33] = "";
        size_t total = 0, free_b = 0, ctx_total = 0;
        CUcontext ctx;
        cuDeviceGet(&dev, i);
        cuDeviceGetName(name, sizeof name, dev);
        if (cuDeviceGetUuid_v2(&u2, dev) == CUDA_SUCCESS)
            hex(&u2, h2);
        if (cuDeviceGetUuid(&u1, dev) == CUDA_SUCCESS)
            hex(&u1, h1);
        cuDeviceTotalMem_v2(&total, dev);
        if (cuDevicePrimaryCtxRetain(&ctx, dev) == CUDA_SUCCESS && cuCtxSetCurrent(ctx) == CUDA_SUCCESS)
            cuMemGetInfo_v2(&free_b, &ctx_total);
        printf("cuda %d v2=%s v1=%s total=%zu ctxtotal=%zu free=%zu name=%s\n", i, h2, h1, total, ctx_total, free_b,
               name);
    }
    return 0;
}

static int alloc_hold(const char *size_s, int hold)
{
    CUdevice dev;
    CUcontext ctx;
    CUdeviceptr p;
    size_t free_b = 0, total = 0;
    unsigned long long size = strtoull(size_s, NULL, 10);
    if (cuInit(0) != CUDA_SUCCESS || cuDeviceGet(&dev, 0) != CUDA_SUCCESS ||
        cuDevicePrimaryCtxRetain(&ctx, dev) != CUDA_SUCCESS || cuCtxSetCurrent(ctx) != CUDA_SUCCESS) {
        printf("alloc rc=init\n");
        return 1;
    }
    int rc = cuMemAlloc_v2(&p, (size_t)size);
    cuMemGetInfo_v2(&free_b, &total);
    printf("alloc rc=%d free=%zu total=%zu\n", rc, free_b, total);
    fflush(stdout);
    if (hold) {
        printf("held\n");
        fflush(stdout);
        char buf[64];
        while (read(0, buf, sizeof buf) > 0) {
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 2 && !strcmp(argv[1], "nvml"))
        return nvml_list();
    if (argc >= 2 && !strcmp(argv[1], "cuda"))
        return cuda_list();
    if (argc >= 3 && !strcmp(argv[1], "alloc"))
        return alloc_hold(argv[2], argc >= 4 && !strcmp(argv[3], "hold"));
    fprintf(stderr, "usage: sim_mig_linked nvml | cuda | alloc BYTES [hold]\n");
    return 2;
}
