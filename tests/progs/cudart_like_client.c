/* Reaches the driver exactly like NVIDIA's libcudart 13: dlopen
 * libcuda.so.1, dlsym only cuGetProcAddress_v2, fetch cuGetProcAddress again
 * at 12000 through it, then versioned lookups (with flags=2 where cudart
 * asks for per-thread-default-stream variants) for every lookup cudart 13.0
 * makes. Then exercises every emulated area through those pointers and
 * checks results and data. Prints the test protocol's lines.
 *
 * Env: GPUMEM_SIM_CTX_OVERHEAD is expected to be 300M or unset (checked via
 * cuMemGetInfo deltas), and the device at least 8 GiB. */
#include "gpumem/cuda.h"
#include "../testlib.h"
#include "sim_lookups.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

static PFN_cuGetProcAddress_v12000 gpa;

/* Looks `name` up like cudart does and stores it in a pointer of the
 * caller's (PFN-shaped) type. */
#define GET(var, name, ver, flags) do { \
    CUdriverProcAddressQueryResult st_; void *p_ = NULL; \
    CUresult r_ = gpa(name, &p_, ver, flags, &st_); \
    if (r_ != CUDA_SUCCESS || !p_) { printf("FAIL %s: lookup %s@%d/%d rc=%d\n", test_current_name, name, ver, flags, r_); \
        test_current_failed = 1; return; } \
    memcpy(&(var), &p_, sizeof p_); } while (0)
#define OKR(call) CHECK_EQ_INT((call), CUDA_SUCCESS)

static void *libcuda;

TEST(dlsym_only_getprocaddress_v2)
{
    libcuda = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    CHECK(libcuda != NULL);
    PFN_cuGetProcAddress_v12000 first = (PFN_cuGetProcAddress_v12000)dlsym(libcuda, "cuGetProcAddress_v2");
    CHECK(first != NULL);
    void *again = NULL;
    CUdriverProcAddressQueryResult st = 99;
    CHECK_EQ_INT(first("cuGetProcAddress", &again, 12000, 0, &st), CUDA_SUCCESS);
    CHECK_EQ_INT(st, CU_GET_PROC_ADDRESS_SUCCESS);
    CHECK(again == (void *)first);          /* the v2 entry point itself */
    memcpy(&gpa, &again, sizeof again);
}

TEST(all_cudart13_lookups_resolve)
{
    CHECK(gpa != NULL);
    size_t n = sizeof cudart13_lookups / sizeof cudart13_lookups[0];
    CHECK_EQ_INT(n, 439);
    for (size_t i = 0; i < n; i++) {
        void *p = NULL;
        CUdriverProcAddressQueryResult st = 99;
        CUresult r = gpa(cudart13_lookups[i].name, &p, cudart13_lookups[i].version,
                         (cuuint64_t)cudart13_lookups[i].flags, &st);
        if (r != CUDA_SUCCESS || !p || st != CU_GET_PROC_ADDRESS_SUCCESS) {
            printf("FAIL %s: %s ver=%d flags=%d -> rc=%d status=%d\n", test_current_name, cudart13_lookups[i].name,
                   cudart13_lookups[i].version, cudart13_lookups[i].flags, r, (int)st);
            test_current_failed = 1;
            return;
        }
    }
}

static CUdevice dev0;
static CUcontext pctx;
static PFN_cuMemGetInfo_v3020 memGetInfo;
static PFN_cuMemAlloc_v3020 memAlloc;
static PFN_cuMemFree_v3020 memFree;

typedef CUresult (*PFN_cuDeviceGetName)(char *, int, CUdevice);
typedef CUresult (*PFN_cuDeviceGetAttribute)(int *, CUdevice_attribute, CUdevice);
typedef CUresult (*PFN_cuDeviceGetPCIBusId)(char *, int, CUdevice);
typedef CUresult (*PFN_cuDeviceGetByPCIBusId)(CUdevice *, const char *);
typedef CUresult (*PFN_cuDriverGetVersion)(int *);
typedef CUresult (*PFN_cuCtxSetCurrent)(CUcontext);
typedef CUresult (*PFN_cuCtxGetCurrent)(CUcontext *);
typedef CUresult (*PFN_cuMemcpyHtoD)(CUdeviceptr, const void *, size_t);
typedef CUresult (*PFN_cuMemcpyDtoH)(void *, CUdeviceptr, size_t);
typedef CUresult (*PFN_cuMemcpyDtoD)(CUdeviceptr, CUdeviceptr, size_t);
typedef CUresult (*PFN_cuMemcpyHtoDAsync)(CUdeviceptr, const void *, size_t, CUstream);
typedef CUresult (*PFN_cuMemcpy)(CUdeviceptr, CUdeviceptr, size_t);
typedef CUresult (*PFN_cuMemsetD8)(CUdeviceptr, unsigned char, size_t);
typedef CUresult (*PFN_cuMemsetD32)(CUdeviceptr, unsigned int, size_t);
typedef CUresult (*PFN_cuMemsetD2D8)(CUdeviceptr, size_t, unsigned char, size_t, size_t);
typedef CUresult (*PFN_cuMemcpy2D)(const CUDA_MEMCPY2D *);
typedef CUresult (*PFN_cuMemcpy3D)(const CUDA_MEMCPY3D *);
typedef CUresult (*PFN_cuMemcpy2DAsync)(const CUDA_MEMCPY2D *, CUstream);
typedef CUresult (*PFN_cuMemHostAlloc)(void **, size_t, unsigned int);
typedef CUresult (*PFN_cuMemFreeHost)(void *);
typedef CUresult (*PFN_cuMemHostRegister)(void *, size_t, unsigned int);
typedef CUresult (*PFN_cuMemHostUnregister)(void *);
typedef CUresult (*PFN_cuMemHostGetDevicePointer)(CUdeviceptr *, void *, unsigned int);
typedef CUresult (*PFN_cuPointerGetAttributes)(unsigned int, CUpointer_attribute *, void **, CUdeviceptr);
typedef CUresult (*PFN_cuStreamCreate)(CUstream *, unsigned int);
typedef CUresult (*PFN_cuStreamDestroy)(CUstream);
typedef CUresult (*PFN_cuStreamSynchronize)(CUstream);
typedef CUresult (*PFN_cuStreamGetPriority)(CUstream, int *);
typedef CUresult (*PFN_cuEventCreate)(CUevent *, unsigned int);
typedef CUresult (*PFN_cuEventRecord)(CUevent, CUstream);
typedef CUresult (*PFN_cuEventSynchronize)(CUevent);
typedef CUresult (*PFN_cuEventElapsedTime)(float *, CUevent, CUevent);
typedef CUresult (*PFN_cuEventDestroy)(CUevent);
typedef CUresult (*PFN_cuLaunchHostFunc)(CUstream, CUhostFn, void *);
typedef CUresult (*PFN_cuMemPoolGetAttribute)(CUmemoryPool, CUmemPool_attribute, void *);
typedef CUresult (*PFN_cuDeviceGetDefaultMemPool)(CUmemoryPool *, CUdevice);
typedef CUresult (*PFN_cuMemMap)(CUdeviceptr, size_t, size_t, CUmemGenericAllocationHandle, unsigned long long);
typedef CUresult (*PFN_cuMemUnmap)(CUdeviceptr, size_t);
typedef CUresult (*PFN_cuMemAddressReserve)(CUdeviceptr *, size_t, size_t, CUdeviceptr, unsigned long long);
typedef CUresult (*PFN_cuMemAddressFree)(CUdeviceptr, size_t);
typedef CUresult (*PFN_cuMemSetAccess)(CUdeviceptr, size_t, const CUmemAccessDesc *, size_t);
typedef CUresult (*PFN_cuMemGetAllocationGranularity)(size_t *, const CUmemAllocationProp *, int);
typedef CUresult (*PFN_cuMemExportToShareableHandle)(void *, CUmemGenericAllocationHandle, CUmemAllocationHandleType,
                                                     unsigned long long);
typedef CUresult (*PFN_cuArrayGetDescriptor)(CUDA_ARRAY_DESCRIPTOR *, CUarray);
typedef CUresult (*PFN_cuMipmappedArrayGetLevel)(CUarray *, CUmipmappedArray, unsigned int);
typedef CUresult (*PFN_cuGetErrorString)(CUresult, const char **);
typedef CUresult (*PFN_cuIpcGetMemHandle)(CUipcMemHandle *, CUdeviceptr);
typedef CUresult (*PFN_stub)(void);

static uint64_t free_now(void)
{
    size_t f = 0, t = 0;
    if (memGetInfo(&f, &t) != CUDA_SUCCESS) return 0;
    return f;
}

TEST(init_and_devices)
{
    PFN_cuInit_v2000 init;
    PFN_cuDeviceGetCount_v2000 count;
    PFN_cuDeviceGet_v2000 get;
    PFN_cuDeviceGetName name;
    PFN_cuDeviceTotalMem_v3020 total;
    PFN_cuDeviceGetAttribute attr;
    PFN_cuDeviceGetUuid_v11040 uuid;
    PFN_cuDeviceGetPCIBusId busid;
    PFN_cuDeviceGetByPCIBusId bybus;
    PFN_cuDriverGetVersion ver;
    GET(init, "cuInit", 2000, 0);
    GET(count, "cuDeviceGetCount", 2000, 0);
    GET(get, "cuDeviceGet", 2000, 0);
    GET(name, "cuDeviceGetName", 2000, 0);
    GET(total, "cuDeviceTotalMem", 3020, 0);
    GET(attr, "cuDeviceGetAttribute", 2000, 0);
    GET(uuid, "cuDeviceGetUuid", 11040, 0);
    GET(busid, "cuDeviceGetPCIBusId", 4010, 0);
    GET(bybus, "cuDeviceGetByPCIBusId", 4010, 0);
    GET(ver, "cuDriverGetVersion", 2020, 0);
    int v = 0, n = 0;
    OKR(ver(&v));
    CHECK(v >= 13000);
    OKR(init(0));
    OKR(count(&n));
    CHECK(n >= 1);
    OKR(get(&dev0, 0));
    char nm[128];
    OKR(name(nm, sizeof nm, dev0));
    CHECK(strncmp(nm, "NVIDIA", 6) == 0 || strncmp(nm, "Tesla", 5) == 0);
    size_t bytes = 0;
    OKR(total(&bytes, dev0));
    CHECK(bytes >= (8ULL << 30));
    int a = 0;
    OKR(attr(&a, CU_DEVICE_ATTRIBUTE_WARP_SIZE, dev0)); CHECK_EQ_INT(a, 32);
    OKR(attr(&a, CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING, dev0)); CHECK_EQ_INT(a, 1);
    OKR(attr(&a, CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY, dev0)); CHECK_EQ_INT(a, 1);
    OKR(attr(&a, CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED, dev0)); CHECK_EQ_INT(a, 1);
    OKR(attr(&a, CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, dev0)); CHECK_EQ_INT(a, 1);
    OKR(attr(&a, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev0)); CHECK(a >= 7);
    OKR(attr(&a, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev0)); CHECK(a > 0);
    CUuuid u;
    OKR(uuid(&u, dev0));
    int nonzero = 0;
    for (int i = 0; i < 16; i++) nonzero |= u.bytes[i];
    CHECK(nonzero);
    char bus[32];
    OKR(busid(bus, sizeof bus, dev0));
    CUdevice back = -1;
    OKR(bybus(&back, bus));
    CHECK_EQ_INT(back, dev0);
}

TEST(primary_context_and_overhead)
{
    PFN_cuDevicePrimaryCtxRetain_v7000 retain;
    PFN_cuCtxSetCurrent set;
    PFN_cuCtxGetCurrent cur;
    PFN_cuCtxGetDevice_v2000 getdev1;
    PFN_cuCtxGetDevice_v13000 getdev2;
    GET(retain, "cuDevicePrimaryCtxRetain", 7000, 0);
    GET(set, "cuCtxSetCurrent", 4000, 0);
    GET(cur, "cuCtxGetCurrent", 4000, 0);
    GET(getdev1, "cuCtxGetDevice", 2000, 0);
    GET(getdev2, "cuCtxGetDevice", 13000, 0);
    GET(memGetInfo, "cuMemGetInfo", 3020, 0);
    GET(memAlloc, "cuMemAlloc", 3020, 0);
    GET(memFree, "cuMemFree", 3020, 0);
    OKR(retain(&pctx, dev0));
    OKR(set(pctx));
    CUcontext c = NULL;
    OKR(cur(&c));
    CHECK(c == pctx);
    CUdevice d = -1;
    OKR(getdev1(&d)); CHECK_EQ_INT(d, dev0);
    d = -1;
    OKR(getdev2(&d, pctx)); CHECK_EQ_INT(d, dev0);
    d = -1;
    OKR(getdev2(&d, NULL)); CHECK_EQ_INT(d, dev0);
    size_t f = 0, t = 0;
    OKR(memGetInfo(&f, &t));
    CHECK(t - f >= (300ULL << 20));          /* the context's own memory */
}

TEST(alloc_copy_readback)
{
    PFN_cuMemcpyHtoD htod;
    PFN_cuMemcpyDtoH dtoh;
    PFN_cuMemcpyDtoD dtod;
    PFN_cuMemcpy copy;
    PFN_cuMemcpyHtoD htod_ptds;
    PFN_cuMemsetD8 set8;
    PFN_cuMemsetD32 set32;
    PFN_cuMemGetAddressRange_v3020 range;
    GET(htod, "cuMemcpyHtoD", 3020, 0);
    GET(htod_ptds, "cuMemcpyHtoD", 7000, 2);
    GET(dtoh, "cuMemcpyDtoH", 3020, 0);
    GET(dtod, "cuMemcpyDtoD", 3020, 0);
    GET(copy, "cuMemcpy", 4000, 0);
    GET(set8, "cuMemsetD8", 3020, 0);
    GET(set32, "cuMemsetD32", 7000, 2);
    GET(range, "cuMemGetAddressRange", 3020, 0);
    CHECK(htod != htod_ptds);
    uint64_t before = free_now();
    CUdeviceptr a = 0, b = 0;
    OKR(memAlloc(&a, 1000));
    CHECK_EQ_U64(before - free_now(), 1024);        /* rounded to 512 bytes */
    OKR(memAlloc(&b, 3 << 20));
    CHECK_EQ_U64(before - free_now(), 1024 + (4 << 20));   /* rounded to 2 MiB pages */
    CHECK(a % 256 == 0 && b % 256 == 0);
    unsigned char src[1000], dst[1000];
    for (int i = 0; i < 1000; i++) src[i] = (unsigned char)(i * 7);
    OKR(htod_ptds(a, src, sizeof src));
    OKR(dtod(b + 100, a, sizeof src));
    memset(dst, 0, sizeof dst);
    OKR(dtoh(dst, b + 100, sizeof dst));
    CHECK(memcmp(src, dst, sizeof src) == 0);
    OKR(copy((CUdeviceptr)(uintptr_t)dst, a, 10));
    OKR(set8(a, 0xab, 1000));
    OKR(dtoh(dst, a, 1000));
    CHECK(dst[0] == 0xab && dst[999] == 0xab);
    OKR(set32(b, 0x01020304u, 4));
    uint32_t w[4];
    OKR(dtoh(w, b, sizeof w));
    CHECK(w[0] == 0x01020304u && w[3] == 0x01020304u);
    CHECK_EQ_INT(htod(a + 900, src, 1000), CUDA_ERROR_INVALID_VALUE);   /* past the end */
    CUdeviceptr base = 0;
    size_t size = 0;
    OKR(range(&base, &size, b + 12345));
    CHECK(base == b && size == (3u << 20));
    OKR(memFree(a));
    OKR(memFree(b));
    CHECK_EQ_U64(free_now(), before);
    CHECK_EQ_INT(memFree(a), CUDA_ERROR_INVALID_VALUE);
}

TEST(pitch_managed_host)
{
    PFN_cuMemAllocPitch_v3020 pitchAlloc;
    PFN_cuMemAllocManaged_v6000 managed;
    PFN_cuMemHostAlloc hostAlloc;
    PFN_cuMemFreeHost freeHost;
    PFN_cuMemHostRegister reg;
    PFN_cuMemHostUnregister unreg;
    PFN_cuMemHostGetDevicePointer devptr;
    PFN_cuPointerGetAttributes attrs;
    PFN_cuMemsetD2D8 set2d;
    PFN_cuMemcpy2D copy2d;
    GET(pitchAlloc, "cuMemAllocPitch", 3020, 0);
    GET(managed, "cuMemAllocManaged", 6000, 0);
    GET(hostAlloc, "cuMemHostAlloc", 2020, 0);
    GET(freeHost, "cuMemFreeHost", 2000, 0);
    GET(reg, "cuMemHostRegister", 6050, 0);
    GET(unreg, "cuMemHostUnregister", 4000, 0);
    GET(devptr, "cuMemHostGetDevicePointer", 3020, 0);
    GET(attrs, "cuPointerGetAttributes", 7000, 0);
    GET(set2d, "cuMemsetD2D8", 3020, 0);
    GET(copy2d, "cuMemcpy2DUnaligned", 3020, 0);
    uint64_t before = free_now();
    CUdeviceptr p = 0;
    size_t pitch = 0;
    OKR(pitchAlloc(&p, &pitch, 1000, 300, 4));
    CHECK_EQ_U64(pitch, 1024);
    CHECK_EQ_U64(before - free_now(), 1024 * 300 > (1 << 20) ? (2u << 20) : 1024 * 300);
    OKR(set2d(p, pitch, 7, 1000, 300));
    unsigned char rows[2][1000];
    CUDA_MEMCPY2D c = { .srcMemoryType = CU_MEMORYTYPE_DEVICE, .srcDevice = p, .srcPitch = pitch, .srcY = 298,
                        .dstMemoryType = CU_MEMORYTYPE_HOST, .dstHost = rows, .dstPitch = 1000,
                        .WidthInBytes = 1000, .Height = 2 };
    OKR(copy2d(&c));
    CHECK(rows[0][0] == 7 && rows[1][999] == 7);
    OKR(memFree(p));

    CUdeviceptr m = 0;
    OKR(managed(&m, 4096, CU_MEM_ATTACH_GLOBAL));
    CHECK_EQ_U64(before - free_now(), 0);               /* nothing populated until touched */
    OKR(set2d(m, 4096, 1, 4096, 1));                    /* a device-side touch: populated on the device */
    CHECK_EQ_U64(before - free_now(), 4096);
    ((volatile char *)(uintptr_t)m)[10] = 42;          /* managed memory is host-accessible */
    unsigned int mtype = 0, is_managed = 0;
    int ordinal = -1;
    CUpointer_attribute which[3] = { CU_POINTER_ATTRIBUTE_MEMORY_TYPE, CU_POINTER_ATTRIBUTE_IS_MANAGED,
                                     CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL };
    void *out[3] = { &mtype, &is_managed, &ordinal };
    OKR(attrs(3, which, out, m + 10));
    CHECK(mtype == CU_MEMORYTYPE_DEVICE && is_managed == 1 && ordinal == dev0);
    OKR(memFree(m));

    void *h = NULL;
    OKR(hostAlloc(&h, 1 << 16, CU_MEMHOSTALLOC_DEVICEMAP));
    CHECK_EQ_U64(free_now(), before);                   /* host memory is not device memory */
    CUdeviceptr hd = 0;
    OKR(devptr(&hd, h, 0));
    CHECK(hd == (CUdeviceptr)(uintptr_t)h);
    OKR(freeHost(h));
    static char buf[8192];
    OKR(reg(buf, sizeof buf, 0));
    CHECK_EQ_INT(reg(buf, sizeof buf, 0), CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED);
    OKR(unreg(buf));
    CHECK_EQ_INT(unreg(buf), CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED);
}

static int host_fn_ran;
static void host_fn(void *p) { *(int *)p = 1; }

TEST(streams_events)
{
    PFN_cuStreamCreate create;
    PFN_cuStreamDestroy destroy;
    PFN_cuStreamSynchronize sync, sync_ptsz;
    PFN_cuStreamGetPriority prio;
    PFN_cuEventCreate ecreate;
    PFN_cuEventRecord record;
    PFN_cuEventSynchronize esync;
    PFN_cuEventElapsedTime elapsed;
    PFN_cuEventDestroy edestroy;
    PFN_cuLaunchHostFunc hostfn;
    PFN_cuMemcpyHtoDAsync htodAsync;
    GET(create, "cuStreamCreate", 2000, 0);
    GET(destroy, "cuStreamDestroy", 4000, 0);
    GET(sync, "cuStreamSynchronize", 2000, 0);
    GET(sync_ptsz, "cuStreamSynchronize", 7000, 2);
    GET(prio, "cuStreamGetPriority", 7000, 2);
    GET(ecreate, "cuEventCreate", 2000, 0);
    GET(record, "cuEventRecord", 2000, 0);
    GET(esync, "cuEventSynchronize", 2000, 0);
    GET(elapsed, "cuEventElapsedTime", 12080, 0);
    GET(edestroy, "cuEventDestroy", 4000, 0);
    GET(hostfn, "cuLaunchHostFunc", 10000, 0);
    GET(htodAsync, "cuMemcpyHtoDAsync", 7000, 2);
    CHECK(sync != sync_ptsz);
    CUstream s = NULL;
    OKR(create(&s, CU_STREAM_NON_BLOCKING));
    int pr = 1;
    OKR(prio(s, &pr)); CHECK_EQ_INT(pr, 0);
    CUevent e1, e2;
    OKR(ecreate(&e1, 0));
    OKR(ecreate(&e2, 0));
    OKR(record(e1, s));
    CUdeviceptr d;
    OKR(memAlloc(&d, 64));
    OKR(htodAsync(d, "hello", 6, s));
    OKR(hostfn(s, host_fn, &host_fn_ran));
    OKR(record(e2, s));
    OKR(esync(e2));
    OKR(sync_ptsz(CU_STREAM_PER_THREAD));
    CHECK_EQ_INT(host_fn_ran, 1);
    float ms = -1;
    OKR(elapsed(&ms, e1, e2));
    CHECK(ms >= 0);
    OKR(sync(s));
    OKR(memFree(d));
    OKR(edestroy(e1));
    OKR(edestroy(e2));
    OKR(destroy(s));
    CHECK_EQ_INT(destroy(s), CUDA_ERROR_INVALID_HANDLE);
}

TEST(async_alloc_and_pools)
{
    PFN_cuMemAllocAsync_v11020 allocAsync;
    PFN_cuMemFreeAsync_v11020 freeAsync;
    PFN_cuMemPoolTrimTo_v11020 trim;
    PFN_cuMemPoolGetAttribute getAttr;
    PFN_cuDeviceGetDefaultMemPool defPool;
    PFN_cuStreamSynchronize sync;
    GET(allocAsync, "cuMemAllocAsync", 11020, 2);
    GET(freeAsync, "cuMemFreeAsync", 11020, 2);
    GET(trim, "cuMemPoolTrimTo", 11020, 0);
    GET(getAttr, "cuMemPoolGetAttribute", 11020, 0);
    GET(defPool, "cuDeviceGetDefaultMemPool", 11020, 0);
    GET(sync, "cuStreamSynchronize", 2000, 0);
    CUmemoryPool pool;
    OKR(defPool(&pool, dev0));
    uint64_t before = free_now();
    CUdeviceptr a;
    OKR(allocAsync(&a, 5 << 20, CU_STREAM_PER_THREAD));
    cuuint64_t used = 0, reserved = 0;
    OKR(getAttr(pool, CU_MEMPOOL_ATTR_USED_MEM_CURRENT, &used));
    OKR(getAttr(pool, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT, &reserved));
    CHECK_EQ_U64(used, 6 << 20);
    CHECK_EQ_U64(reserved, 6 << 20);
    CHECK_EQ_U64(before - free_now(), 6 << 20);
    OKR(freeAsync(a, CU_STREAM_PER_THREAD));
    OKR(getAttr(pool, CU_MEMPOOL_ATTR_USED_MEM_CURRENT, &used));
    OKR(getAttr(pool, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT, &reserved));
    CHECK_EQ_U64(used, 0);
    CHECK_EQ_U64(reserved, 6 << 20);                  /* kept by the pool */
    CUdeviceptr b;
    OKR(allocAsync(&b, 5 << 20, CU_STREAM_PER_THREAD));
    CHECK(b == a);                                    /* reused */
    OKR(freeAsync(b, CU_STREAM_PER_THREAD));
    OKR(trim(pool, 0));
    OKR(getAttr(pool, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT, &reserved));
    CHECK_EQ_U64(reserved, 0);
    CHECK_EQ_U64(free_now(), before);
    OKR(allocAsync(&a, 1 << 20, NULL));
    OKR(freeAsync(a, NULL));
    OKR(sync(NULL));                                  /* threshold 0: released at sync */
    CHECK_EQ_U64(free_now(), before);
}

TEST(vmm_map_and_share_fd)
{
    PFN_cuMemGetAllocationGranularity gran;
    PFN_cuMemCreate_v10020 create;
    PFN_cuMemRelease_v10020 release;
    PFN_cuMemAddressReserve reserve;
    PFN_cuMemAddressFree afree;
    PFN_cuMemMap map;
    PFN_cuMemUnmap unmap;
    PFN_cuMemSetAccess access;
    PFN_cuMemExportToShareableHandle exp;
    PFN_cuMemImportFromShareableHandle_v10020 imp;
    PFN_cuMemcpyHtoD htod;
    PFN_cuMemcpyDtoH dtoh;
    GET(gran, "cuMemGetAllocationGranularity", 10020, 0);
    GET(create, "cuMemCreate", 10020, 0);
    GET(release, "cuMemRelease", 10020, 0);
    GET(reserve, "cuMemAddressReserve", 10020, 0);
    GET(afree, "cuMemAddressFree", 10020, 0);
    GET(map, "cuMemMap", 10020, 0);
    GET(unmap, "cuMemUnmap", 10020, 0);
    GET(access, "cuMemSetAccess", 10020, 0);
    GET(exp, "cuMemExportToShareableHandle", 10020, 0);
    GET(imp, "cuMemImportFromShareableHandle", 10020, 0);
    GET(htod, "cuMemcpyHtoD", 3020, 0);
    GET(dtoh, "cuMemcpyDtoH", 3020, 0);
    CUmemAllocationProp prop = { .type = CU_MEM_ALLOCATION_TYPE_PINNED,
                                 .requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR,
                                 .location = { CU_MEM_LOCATION_TYPE_DEVICE, dev0 } };
    size_t g = 0;
    OKR(gran(&g, &prop, CU_MEM_ALLOC_GRANULARITY_RECOMMENDED));
    CHECK_EQ_U64(g, 2 << 20);
    uint64_t before = free_now();
    CUmemGenericAllocationHandle h;
    CHECK_EQ_INT(create(&h, g + 1, &prop, 0), CUDA_ERROR_INVALID_VALUE);
    OKR(create(&h, 2 * g, &prop, 0));
    CHECK_EQ_U64(before - free_now(), 2 * g);
    CUdeviceptr va = 0, va2 = 0;
    OKR(reserve(&va, 4 * g, 0, 0, 0));
    OKR(reserve(&va2, 2 * g, 0, 0, 0));
    OKR(map(va, 2 * g, 0, h, 0));
    CUmemAccessDesc ad = { { CU_MEM_LOCATION_TYPE_DEVICE, dev0 }, CU_MEM_ACCESS_FLAGS_PROT_READWRITE };
    CHECK_EQ_INT(htod(va, "x", 1), CUDA_ERROR_INVALID_VALUE);      /* mapped but no access yet */
    OKR(access(va, 2 * g, &ad, 1));
    OKR(htod(va + g, "shared!", 8));
    int fd = -1;
    OKR(exp(&fd, h, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0));
    CHECK(fd >= 0);
    CUmemGenericAllocationHandle h2;
    OKR(imp(&h2, (void *)(intptr_t)fd, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR));
    close(fd);
    CHECK_EQ_U64(before - free_now(), 2 * g);        /* importing charges nothing more */
    OKR(map(va2, 2 * g, 0, h2, 0));
    OKR(access(va2, 2 * g, &ad, 1));
    char back[8] = { 0 };
    OKR(dtoh(back, va2 + g, 8));
    CHECK(strcmp(back, "shared!") == 0);
    OKR(release(h));
    OKR(release(h2));
    CHECK_EQ_U64(before - free_now(), 2 * g);        /* still mapped */
    OKR(unmap(va, 2 * g));
    OKR(unmap(va2, 2 * g));
    CHECK_EQ_U64(free_now(), before);
    OKR(afree(va, 4 * g));
    OKR(afree(va2, 2 * g));
}

TEST(arrays_and_mipmaps)
{
    PFN_cuArrayCreate_v3020 create;
    PFN_cuArray3DCreate_v3020 create3d;
    PFN_cuArrayDestroy_v2000 destroy;
    PFN_cuArrayGetDescriptor getdesc;
    PFN_cuMipmappedArrayCreate_v5000 mcreate;
    PFN_cuMipmappedArrayGetLevel level;
    PFN_cuMipmappedArrayDestroy_v5000 mdestroy;
    PFN_cuMemcpy2DAsync copy2d;
    PFN_cuMemcpy3D copy3d;
    GET(create, "cuArrayCreate", 3020, 0);
    GET(create3d, "cuArray3DCreate", 3020, 0);
    GET(destroy, "cuArrayDestroy", 2000, 0);
    GET(getdesc, "cuArrayGetDescriptor", 3020, 0);
    GET(mcreate, "cuMipmappedArrayCreate", 5000, 0);
    GET(level, "cuMipmappedArrayGetLevel", 5000, 0);
    GET(mdestroy, "cuMipmappedArrayDestroy", 5000, 0);
    GET(copy2d, "cuMemcpy2DAsync", 7000, 2);
    GET(copy3d, "cuMemcpy3D", 3020, 0);
    uint64_t before = free_now();
    CUDA_ARRAY_DESCRIPTOR d = { 64, 32, CU_AD_FORMAT_FLOAT, 4 };
    CUarray arr;
    OKR(create(&arr, &d));
    CHECK_EQ_U64(before - free_now(), 64 * 32 * 16);
    CUDA_ARRAY_DESCRIPTOR got;
    OKR(getdesc(&got, arr));
    CHECK(got.Width == 64 && got.Height == 32 && got.NumChannels == 4);
    static float in[32][64 * 4], out[32][64 * 4];
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 256; x++) in[y][x] = (float)(y * 1000 + x);
    CUDA_MEMCPY2D c = { .srcMemoryType = CU_MEMORYTYPE_HOST, .srcHost = in, .srcPitch = sizeof in[0],
                        .dstMemoryType = CU_MEMORYTYPE_ARRAY, .dstArray = arr,
                        .WidthInBytes = sizeof in[0], .Height = 32 };
    OKR(copy2d(&c, NULL));
    CUDA_MEMCPY3D c3 = { .srcMemoryType = CU_MEMORYTYPE_ARRAY, .srcArray = arr,
                         .dstMemoryType = CU_MEMORYTYPE_HOST, .dstHost = out, .dstPitch = sizeof out[0],
                         .dstHeight = 32, .WidthInBytes = sizeof out[0], .Height = 32, .Depth = 1 };
    OKR(copy3d(&c3));
    CHECK(memcmp(in, out, sizeof in) == 0);
    OKR(destroy(arr));
    CHECK_EQ_U64(free_now(), before);
    CUDA_ARRAY3D_DESCRIPTOR d3 = { 16, 16, 16, CU_AD_FORMAT_UNSIGNED_INT8, 1, 0 };
    OKR(create3d(&arr, &d3));
    CHECK_EQ_U64(before - free_now(), 4096);
    OKR(destroy(arr));
    CUmipmappedArray mm;
    CUDA_ARRAY3D_DESCRIPTOR dm = { 256, 256, 0, CU_AD_FORMAT_UNSIGNED_INT8, 4, 0 };
    OKR(mcreate(&mm, &dm, 9));
    /* 256x256 + 128x128 + ... + 1x1 texels of 4 bytes, rounded to 512 */
    uint64_t texels = 0;
    for (int l = 0; l < 9; l++) texels += (uint64_t)(256 >> l) * (256 >> l);
    CHECK_EQ_U64(before - free_now(), (texels * 4 + 511) / 512 * 512);
    CUarray l8;
    OKR(level(&l8, mm, 8));
    OKR(getdesc(&got, l8));
    CHECK(got.Width == 1 && got.Height == 1);
    CHECK_EQ_INT(level(&l8, mm, 9), CUDA_ERROR_INVALID_VALUE);
    OKR(mdestroy(mm));
    CHECK_EQ_U64(free_now(), before);
}

TEST(errors_stubs_export_table)
{
    PFN_cuGetErrorString str;
    PFN_cuGetErrorString name;
    PFN_stub stub, export_table;
    GET(str, "cuGetErrorString", 6000, 0);
    GET(name, "cuGetErrorName", 6000, 0);
    GET(stub, "cuModuleLoad", 2000, 0);
    GET(export_table, "cuGetExportTable", 3000, 0);
    const char *s = NULL;
    OKR(name(CUDA_ERROR_OUT_OF_MEMORY, &s));
    CHECK_STR(s, "CUDA_ERROR_OUT_OF_MEMORY");
    OKR(str(CUDA_ERROR_OUT_OF_MEMORY, &s));
    CHECK_STR(s, "out of memory");
    CHECK_EQ_INT(name(12345, &s), CUDA_ERROR_INVALID_VALUE);
    CHECK_EQ_INT(stub(), CUDA_ERROR_NOT_SUPPORTED);
    CHECK_EQ_INT(export_table(), CUDA_ERROR_NOT_SUPPORTED);
}

TEST(ipc_handle_in_process_refused)
{
    PFN_cuIpcGetMemHandle get;
    PFN_cuIpcOpenMemHandle_v11000 open_;
    GET(get, "cuIpcGetMemHandle", 4010, 0);
    GET(open_, "cuIpcOpenMemHandle", 11000, 0);
    CUdeviceptr d;
    OKR(memAlloc(&d, 4 << 20));
    CUipcMemHandle h;
    OKR(get(&h, d));
    CUdeviceptr o;
    CHECK_EQ_INT(open_(&o, h, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS), CUDA_ERROR_INVALID_CONTEXT);
    OKR(memFree(d));
}

TEST(primary_release_returns_everything)
{
    PFN_cuDevicePrimaryCtxRelease_v11000 rel;
    PFN_cuDevicePrimaryCtxRetain_v7000 retain;
    PFN_cuCtxSetCurrent set;
    GET(rel, "cuDevicePrimaryCtxRelease", 11000, 0);
    GET(retain, "cuDevicePrimaryCtxRetain", 7000, 0);
    GET(set, "cuCtxSetCurrent", 4000, 0);
    size_t f0, t;
    OKR(memGetInfo(&f0, &t));
    CUdeviceptr leak;
    OKR(memAlloc(&leak, 8 << 20));                       /* freed by the release */
    OKR(rel(dev0));
    CHECK_EQ_INT(memAlloc(&leak, 1), CUDA_ERROR_INVALID_CONTEXT);
    CUcontext c;
    OKR(retain(&c, dev0));
    OKR(set(c));
    size_t f1;
    OKR(memGetInfo(&f1, &t));
    CHECK_EQ_U64(f1, f0);
}

int main(void)
{
    RUN(dlsym_only_getprocaddress_v2);
    RUN(all_cudart13_lookups_resolve);
    RUN(init_and_devices);
    RUN(primary_context_and_overhead);
    RUN(alloc_copy_readback);
    RUN(pitch_managed_host);
    RUN(streams_events);
    RUN(async_alloc_and_pools);
    RUN(vmm_map_and_share_fd);
    RUN(arrays_and_mipmaps);
    RUN(errors_stubs_export_table);
    RUN(ipc_handle_in_process_refused);
    RUN(primary_release_returns_everything);
    return test_summary();
}
