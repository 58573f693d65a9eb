/* A CUDA driver client for the spill tests (tests/integration/spill_*.sh).
 * It looks every driver function up by name with dlsym, as Triton and
 * older cudart do, and runs the operations given as arguments, printing
 * one line each:
 *
 *   init              cuInit + device 0's primary context, made current
 *   alloc SIZE        cuMemAlloc_v2            managed SIZE  cuMemAllocManaged
 *   free I            cuMemFree_v2 of the I-th successful allocation
 *   fill I B          cuMemsetD8 of all of it to byte B (a device-side touch)
 *   check I B         reads all of it back (cuMemcpyDtoH): every byte B?
 *   where I           "where I managed=0|1 preferred=cpu|N|none"
 *   truth             NVML's figure for every process on device 0:
 *                     "truth=BYTES"
 *   work N SIZE       a workload: N allocations of SIZE, each filled with
 *                     its own byte, then all read back and checked, then all
 *                     freed: "work done spilled=K truth=BYTES" (NVML's figure
 *                     before the frees) or "work refused at I"
 *   expect RC         the last operation's result must be RC, else exit 1
 *   hold              prints "holding" and waits to be killed
 *
 * Exit status: 0, or 1 when an expect or a check failed. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpumem/cuda.h"
#include "gpumem/nvml.h"

typedef CUresult (*PFN_memset8)(CUdeviceptr, unsigned char, size_t);
typedef CUresult (*PFN_dtoh)(void *, CUdeviceptr, size_t);
typedef CUresult (*PFN_set_current)(CUcontext);

static struct {
    PFN_cuInit_v2000 init;
    PFN_cuDeviceGet_v2000 device_get;
    PFN_cuDevicePrimaryCtxRetain_v7000 retain;
    PFN_set_current set_current;
    PFN_cuMemAlloc_v3020 alloc;
    PFN_cuMemAllocManaged_v6000 managed;
    PFN_cuMemFree_v3020 free;
    PFN_memset8 memset8;
    PFN_dtoh dtoh;
    PFN_cuPointerGetAttribute_v4000 attr;
    PFN_cuMemRangeGetAttribute_v8000 range_attr;
} cu;

#define MAX_ALLOCS 4096
static CUdeviceptr ptr[MAX_ALLOCS];
static size_t len[MAX_ALLOCS];
static int nallocs;

static uint64_t size_arg(const char *s)
{
    char *end;
    uint64_t v = strtoull(s, &end, 10);
    switch (*end) {
    case 'G': return v << 30;
    case 'M': return v << 20;
    case 'K': return v << 10;
    default: return v;
    }
}

static CUresult do_alloc(uint64_t size, int managed)
{
    CUdeviceptr p = 0;
    CUresult r = managed ? cu.managed(&p, size, CU_MEM_ATTACH_GLOBAL) : cu.alloc(&p, size);
    if (r == CUDA_SUCCESS && nallocs < MAX_ALLOCS) {
        ptr[nallocs] = p;
        len[nallocs++] = size;
    }
    return r;
}

static int valid(int i) { return i >= 0 && i < nallocs && ptr[i]; }

static CUresult fill(int i, unsigned char b)
{
    return valid(i) ? cu.memset8(ptr[i], b, len[i]) : CUDA_ERROR_INVALID_VALUE;
}

/* 0 when every byte of allocation i is b. */
static int check(int i, unsigned char b)
{
    static unsigned char buf[1 << 20];
    if (!valid(i))
        return 1;
    for (size_t off = 0; off < len[i]; off += sizeof buf) {
        size_t n = len[i] - off < sizeof buf ? len[i] - off : sizeof buf;
        if (cu.dtoh(buf, ptr[i] + off, n) != CUDA_SUCCESS)
            return 1;
        for (size_t k = 0; k < n; k++)
            if (buf[k] != b)
                return 1;
    }
    return 0;
}

/* Whether allocation i is managed memory that prefers the host. */
static int spilled(int i, int *managed, int *preferred)
{
    unsigned int m = 0;
    *preferred = CU_DEVICE_INVALID;
    if (cu.attr(&m, CU_POINTER_ATTRIBUTE_IS_MANAGED, ptr[i]) != CUDA_SUCCESS)
        m = 0;
    *managed = (int)m;
    if (m && cu.range_attr(preferred, sizeof *preferred, CU_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION, ptr[i], len[i]))
        *preferred = CU_DEVICE_INVALID;
    return m && *preferred == CU_DEVICE_CPU;
}

static uint64_t truth(void)
{
    void *h = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    PFN_nvmlInit_v2 ninit = h ? (PFN_nvmlInit_v2)dlsym(h, "nvmlInit_v2") : NULL;
    PFN_nvmlDeviceGetHandleByIndex_v2 get = h ? (PFN_nvmlDeviceGetHandleByIndex_v2)dlsym(h, "nvmlDeviceGetHandleByIndex_v2") : NULL;
    PFN_nvmlDeviceGetComputeRunningProcesses_v3 list =
        h ? (PFN_nvmlDeviceGetComputeRunningProcesses_v3)dlsym(h, "nvmlDeviceGetComputeRunningProcesses_v3") : NULL;
    nvmlDevice_t dev;
    nvmlProcessInfo_t p[64];
    unsigned n = 64;
    if (!ninit || !get || !list || ninit() || get(0, &dev) || list(dev, &n, p))
        return UINT64_MAX;
    uint64_t sum = 0;
    for (unsigned i = 0; i < n; i++)
        sum += p[i].usedGpuMemory;
    return sum;
}

static int work(int n, uint64_t size)
{
    int first = nallocs, nspilled = 0;
    for (int i = 0; i < n; i++)
        if (do_alloc(size, 0) != CUDA_SUCCESS || fill(first + i, (unsigned char)(i + 1)) != CUDA_SUCCESS) {
            printf("work refused at %d\n", i);
            return 2;
        }
    for (int i = 0; i < n; i++) {
        int m, pref;
        nspilled += spilled(first + i, &m, &pref);
        if (check(first + i, (unsigned char)(i + 1))) {
            printf("work check failed at %d\n", i);
            return 1;
        }
    }
    uint64_t t = truth(); /* everything touched: what the device holds for it */
    for (int i = 0; i < n; i++)
        if (cu.free(ptr[first + i]) == CUDA_SUCCESS)
            ptr[first + i] = 0;
    printf("work done spilled=%d truth=%llu\n", nspilled, (unsigned long long)t);
    return 0;
}

int main(int argc, char **argv)
{
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return fprintf(stderr, "spill_client: %s\n", dlerror()), 1;
#define L(field, sym) cu.field = (__typeof__(cu.field))dlsym(h, sym)
    L(init, "cuInit");
    L(device_get, "cuDeviceGet");
    L(retain, "cuDevicePrimaryCtxRetain");
    L(set_current, "cuCtxSetCurrent");
    L(alloc, "cuMemAlloc_v2");
    L(managed, "cuMemAllocManaged");
    L(free, "cuMemFree_v2");
    L(memset8, "cuMemsetD8_v2");
    L(dtoh, "cuMemcpyDtoH_v2");
    L(attr, "cuPointerGetAttribute");
    L(range_attr, "cuMemRangeGetAttribute");
#undef L
    setvbuf(stdout, NULL, _IOLBF, 0);
    long last = 0;
    for (int a = 1; a < argc; a++) {
        const char *op = argv[a], *x = a + 1 < argc ? argv[a + 1] : "0", *y = a + 2 < argc ? argv[a + 2] : "0";
        if (!strcmp(op, "init")) {
            CUdevice d;
            CUcontext c;
            last = cu.init(0);
            if (!last)
                last = cu.device_get(&d, 0);
            if (!last)
                last = cu.retain(&c, d);
            if (!last)
                last = cu.set_current(c);
        } else if (!strcmp(op, "alloc") || !strcmp(op, "managed")) {
            last = do_alloc(size_arg(x), op[0] == 'm');
            a++;
        } else if (!strcmp(op, "free")) {
            int i = atoi(x);
            last = valid(i) ? cu.free(ptr[i]) : CUDA_ERROR_INVALID_VALUE;
            if (!last)
                ptr[i] = 0;
            a++;
        } else if (!strcmp(op, "fill")) {
            last = fill(atoi(x), (unsigned char)atoi(y));
            a += 2;
        } else if (!strcmp(op, "check")) {
            last = check(atoi(x), (unsigned char)atoi(y));
            a += 2;
        } else if (!strcmp(op, "where")) {
            int i = atoi(x), m = 0, pref = CU_DEVICE_INVALID;
            a++;
            if (!valid(i)) {
                last = CUDA_ERROR_INVALID_VALUE;
            } else {
                spilled(i, &m, &pref);
                char p[16];
                snprintf(p, sizeof p, "%d", pref);
                printf("where %d managed=%d preferred=%s\n", i, m,
                       pref == CU_DEVICE_CPU ? "cpu" : pref == CU_DEVICE_INVALID ? "none" : p);
                last = 0;
            }
        } else if (!strcmp(op, "truth")) {
            printf("truth=%llu\n", (unsigned long long)truth());
            last = 0;
        } else if (!strcmp(op, "work")) {
            last = work(atoi(x), size_arg(y));
            a += 2;
        } else if (!strcmp(op, "expect")) {
            a++;
            if (last != atol(x)) {
                printf("expected %s, got %ld\n", x, last);
                return 1;
            }
            continue;
        } else if (!strcmp(op, "hold")) {
            printf("holding\n");
            for (;;)
                pause();
        } else {
            fprintf(stderr, "spill_client: unknown operation \"%s\"\n", op);
            return 2;
        }
        printf("%s -> %ld\n", op, last);
    }
    return 0;
}
