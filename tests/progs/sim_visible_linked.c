/* CUDA_VISIBLE_DEVICES in the simulated driver, for
 * tests/integration/sim_visible_devices.sh. Linked with -lcuda (the
 * simulated one); NVML is reached with dlopen like nvidia-smi does. Prints
 * facts, one per line; the script compares them.
 *
 *   list           init=RC count=N rc=RC, then for each visible ordinal
 *                  "cuda I uuid=U name=N total=T pci=P bypci=O ordinal=O",
 *                  "beyond=RC" (cuDeviceGet one past the end), then
 *                  "nvml I uuid=U" for every physical device
 *   alloc DEV BYTES  on visible DEV: cuMemAlloc BYTES and cuMemCreate 2 MiB;
 *                  "ptr_ordinal=O ctx_dev=D vmm_dev=V", then
 *                  "used U0 U1 ..." (NVML, per physical device) while held
 *                  and "freed U0 U1 ..." after both are released */
#include "gpumem/cuda.h"
#include "gpumem/nvml.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

CUresult cuInit(unsigned int);
CUresult cuDeviceGetCount(int *);
CUresult cuDeviceGet(CUdevice *, int);
CUresult cuDeviceGetName(char *, int, CUdevice);
CUresult cuDeviceGetUuid_v2(CUuuid *, CUdevice);
CUresult cuDeviceTotalMem_v2(size_t *, CUdevice);
CUresult cuDeviceGetPCIBusId(char *, int, CUdevice);
CUresult cuDeviceGetByPCIBusId(CUdevice *, const char *);
CUresult cuDevicePrimaryCtxRetain(CUcontext *, CUdevice);
CUresult cuDevicePrimaryCtxRelease_v2(CUdevice);
CUresult cuCtxSetCurrent(CUcontext);
CUresult cuCtxGetDevice(CUdevice *);
CUresult cuMemAlloc_v2(CUdeviceptr *, size_t);
CUresult cuMemFree_v2(CUdeviceptr);
CUresult cuPointerGetAttribute(void *, CUpointer_attribute, CUdeviceptr);
CUresult cuMemCreate(CUmemGenericAllocationHandle *, size_t, const CUmemAllocationProp *, unsigned long long);
CUresult cuMemRelease(CUmemGenericAllocationHandle);
CUresult cuMemGetAllocationPropertiesFromHandle(CUmemAllocationProp *, CUmemGenericAllocationHandle);

static PFN_nvmlInit_v2 n_init;
static PFN_nvmlDeviceGetCount_v2 n_count;
static PFN_nvmlDeviceGetHandleByIndex_v2 n_handle;
static PFN_nvmlDeviceGetUUID n_uuid;
static PFN_nvmlDeviceGetMemoryInfo n_mem;

static int load_nvml(void)
{
    void *h = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) { printf("nvml-error %s\n", dlerror()); return -1; }
    n_init = (PFN_nvmlInit_v2)dlsym(h, "nvmlInit_v2");
    n_count = (PFN_nvmlDeviceGetCount_v2)dlsym(h, "nvmlDeviceGetCount_v2");
    n_handle = (PFN_nvmlDeviceGetHandleByIndex_v2)dlsym(h, "nvmlDeviceGetHandleByIndex_v2");
    n_uuid = (PFN_nvmlDeviceGetUUID)dlsym(h, "nvmlDeviceGetUUID");
    n_mem = (PFN_nvmlDeviceGetMemoryInfo)dlsym(h, "nvmlDeviceGetMemoryInfo");
    if (!n_init || !n_count || !n_handle || !n_uuid || !n_mem || n_init() != NVML_SUCCESS) {
        printf("nvml-error init\n");
        return -1;
    }
    return 0;
}

static void print_nvml_used(const char *label)
{
    unsigned n = 0;
    n_count(&n);
    printf("%s", label);
    for (unsigned i = 0; i < n; i++) {
        nvmlDevice_t d;
        nvmlMemory_t m = { 0 };
        if (n_handle(i, &d) != NVML_SUCCESS || n_mem(d, &m) != NVML_SUCCESS) m.used = ~0ULL;
        printf(" %llu", (unsigned long long)m.used);
    }
    printf("\n");
}

static void uuid_str(const CUuuid *u, char *out, size_t len)
{
    const unsigned char *b = (const unsigned char *)u->bytes;
    snprintf(out, len, "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
             b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

static int list(void)
{
    CUresult init = cuInit(0);
    int count = 0;
    CUresult rc = cuDeviceGetCount(&count);
    printf("init=%d count=%d rc=%d\n", (int)init, count, (int)rc);
    for (int i = 0; i < count; i++) {
        CUdevice dev = -1, back = -1;
        char name[128] = "", pci[64] = "", uuid[64] = "";
        CUuuid u;
        size_t total = 0;
        if (cuDeviceGet(&dev, i) || cuDeviceGetName(name, sizeof name, dev) || cuDeviceGetUuid_v2(&u, dev) ||
            cuDeviceTotalMem_v2(&total, dev) || cuDeviceGetPCIBusId(pci, sizeof pci, dev) ||
            cuDeviceGetByPCIBusId(&back, pci)) {
            printf("cuda %d error\n", i);
            continue;
        }
        uuid_str(&u, uuid, sizeof uuid);
        for (char *p = name; *p; p++)
            if (*p == ' ') *p = '_';
        printf("cuda %d uuid=%s name=%s total=%zu pci=%s bypci=%d ordinal=%d\n", i, uuid, name, total, pci, back, dev);
    }
    CUdevice dev;
    printf("beyond=%d\n", (int)cuDeviceGet(&dev, count));
    if (load_nvml() != 0) return 1;
    unsigned n = 0;
    n_count(&n);
    for (unsigned i = 0; i < n; i++) {
        nvmlDevice_t d;
        char uuid[96] = "";
        if (n_handle(i, &d) != NVML_SUCCESS || n_uuid(d, uuid, sizeof uuid) != NVML_SUCCESS) strcpy(uuid, "error");
        printf("nvml %u uuid=%s\n", i, uuid);
    }
    return 0;
}

static int alloc(int ordinal, size_t bytes)
{
    CUcontext ctx;
    CUresult r = cuInit(0);
    if (!r) r = cuDevicePrimaryCtxRetain(&ctx, ordinal);
    if (!r) r = cuCtxSetCurrent(ctx);
    CUdeviceptr p = 0;
    if (!r) r = cuMemAlloc_v2(&p, bytes);
    CUmemAllocationProp prop = { .type = CU_MEM_ALLOCATION_TYPE_PINNED,
                                 .location = { CU_MEM_LOCATION_TYPE_DEVICE, ordinal } }, got;
    CUmemGenericAllocationHandle h = 0;
    if (!r) r = cuMemCreate(&h, 2u << 20, &prop, 0);
    if (r) { printf("rc=%d\n", (int)r); return 1; }
    int ptr_ordinal = -1;
    CUdevice ctx_dev = -1;
    memset(&got, 0, sizeof got);
    got.location.id = -1;
    cuPointerGetAttribute(&ptr_ordinal, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, p);
    cuCtxGetDevice(&ctx_dev);
    cuMemGetAllocationPropertiesFromHandle(&got, h);
    printf("ptr_ordinal=%d ctx_dev=%d vmm_dev=%d\n", ptr_ordinal, ctx_dev, got.location.id);
    if (load_nvml() != 0) return 1;
    print_nvml_used("used");
    cuMemFree_v2(p);
    cuMemRelease(h);
    cuDevicePrimaryCtxRelease_v2(ordinal);
    print_nvml_used("freed");
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc == 2 && strcmp(argv[1], "list") == 0) return list();
    if (argc == 4 && strcmp(argv[1], "alloc") == 0) return alloc(atoi(argv[2]), (size_t)strtoull(argv[3], NULL, 10));
    fprintf(stderr, "usage: %s list | alloc DEV BYTES\n", argv[0]);
    return 2;
}
