/* Error paths of the simulated driver, called the way programs linked with
 * -lcuda call it (by the exported, versioned symbol names). */
#include "gpumem/cuda.h"
#include "../testlib.h"

#include <stdlib.h>

CUresult cuInit(unsigned int);
CUresult cuDeviceGetCount(int *);
CUresult cuDeviceGet(CUdevice *, int);
CUresult cuDeviceGetName(char *, int, CUdevice);
CUresult cuDeviceTotalMem_v2(size_t *, CUdevice);
CUresult cuDeviceGetAttribute(int *, int, CUdevice);
CUresult cuCtxGetCurrent(CUcontext *);
CUresult cuCtxSetCurrent(CUcontext);
CUresult cuCtxCreate_v2(CUcontext *, unsigned int, CUdevice);
CUresult cuCtxDestroy_v2(CUcontext);
CUresult cuCtxPopCurrent_v2(CUcontext *);
CUresult cuDevicePrimaryCtxRetain(CUcontext *, CUdevice);
CUresult cuDevicePrimaryCtxRelease_v2(CUdevice);
CUresult cuMemAlloc_v2(CUdeviceptr *, size_t);
CUresult cuMemFree_v2(CUdeviceptr);
CUresult cuMemGetInfo_v2(size_t *, size_t *);
CUresult cuMemcpyHtoD_v2(CUdeviceptr, const void *, size_t);
CUresult cuMemcpyDtoH_v2(void *, CUdeviceptr, size_t);
CUresult cuMemAllocManaged(CUdeviceptr *, size_t, unsigned int);
CUresult cuMemAllocPitch_v2(CUdeviceptr *, size_t *, size_t, size_t, unsigned int);
CUresult cuMemsetD32_v2(CUdeviceptr, unsigned int, size_t);
CUresult cuStreamSynchronize(CUstream);
CUresult cuMemPoolCreate(CUmemoryPool *, const CUmemPoolProps *);
CUresult cuMemPoolDestroy(CUmemoryPool);
CUresult cuDeviceGetDefaultMemPool(CUmemoryPool *, CUdevice);
CUresult cuPointerGetAttribute(void *, int, CUdeviceptr);
CUresult cuGetErrorName(CUresult, const char **);

static CUcontext ctx;

TEST(before_cuinit_not_initialized)
{
    int n;
    CUcontext c;
    CUdeviceptr p;
    CHECK_EQ_INT(cuDeviceGetCount(&n), CUDA_ERROR_NOT_INITIALIZED);
    CHECK_EQ_INT(cuCtxGetCurrent(&c), CUDA_ERROR_NOT_INITIALIZED);
    CHECK_EQ_INT(cuMemAlloc_v2(&p, 16), CUDA_ERROR_NOT_INITIALIZED);
    CHECK_EQ_INT(cuInit(1), CUDA_ERROR_INVALID_VALUE);
    CHECK_EQ_INT(cuInit(0), CUDA_SUCCESS);
}

TEST(null_pointers_invalid_value)
{
    CHECK_EQ_INT(cuDeviceGetCount(NULL), CUDA_ERROR_INVALID_VALUE);
    CHECK_EQ_INT(cuDeviceGet(NULL, 0), CUDA_ERROR_INVALID_VALUE);
    CHECK_EQ_INT(cuDeviceGetName(NULL, 10, 0), CUDA_ERROR_INVALID_VALUE);
    CHECK_EQ_INT(cuDeviceTotalMem_v2(NULL, 0), CUDA_ERROR_INVALID_VALUE);
    CHECK_EQ_INT(cuDevicePrimaryCtxRetain(NULL, 0), CUDA_ERROR_INVALID_VALUE);
    CHECK_EQ_INT(cuGetErrorName(0, NULL), CUDA_ERROR_INVALID_VALUE);
}

TEST(bad_device_invalid_device)
{
    CUdevice d;
    size_t b;
    int v;
    CUcontext c;
    CHECK_EQ_INT(cuDeviceGet(&d, 7), CUDA_ERROR_INVALID_DEVICE);
    CHECK_EQ_INT(cuDeviceGet(&d, -1), CUDA_ERROR_INVALID_DEVICE);
    CHECK_EQ_INT(cuDeviceTotalMem_v2(&b, 2), CUDA_ERROR_INVALID_DEVICE);
    CHECK_EQ_INT(cuDeviceGetAttribute(&v, 16, 9), CUDA_ERROR_INVALID_DEVICE);
    CHECK_EQ_INT(cuDevicePrimaryCtxRetain(&c, 5), CUDA_ERROR_INVALID_DEVICE);
    CHECK_EQ_INT(cuDeviceGetAttribute(&v, 100000, 0), CUDA_ERROR_INVALID_VALUE);
}

TEST(no_context_invalid_context)
{
    CUdeviceptr p;
    size_t f, t;
    CHECK_EQ_INT(cuMemAlloc_v2(&p, 16), CUDA_ERROR_INVALID_CONTEXT);
    CHECK_EQ_INT(cuMemGetInfo_v2(&f, &t), CUDA_ERROR_INVALID_CONTEXT);
    CHECK_EQ_INT(cuMemFree_v2(0x1000), CUDA_ERROR_INVALID_CONTEXT);
    CHECK_EQ_INT(cuCtxPopCurrent_v2(NULL), CUDA_ERROR_INVALID_CONTEXT);
    CHECK_EQ_INT(cuDevicePrimaryCtxRelease_v2(0), CUDA_ERROR_INVALID_CONTEXT);   /* never retained */
}

TEST(allocation_errors)
{
    CHECK_EQ_INT(cuDevicePrimaryCtxRetain(&ctx, 0), CUDA_SUCCESS);
    CHECK_EQ_INT(cuCtxSetCurrent(ctx), CUDA_SUCCESS);
    CUdeviceptr p = 0;
    size_t pitch;
    CHECK_EQ_INT(cuMemAlloc_v2(NULL, 16), CUDA_ERROR_INVALID_VALUE);
    CHECK_EQ_INT(cuMemAlloc_v2(&p, 0), CUDA_ERROR_INVALID_VALUE);
    CHECK_EQ_INT(cuMemAlloc_v2(&p, 1ULL << 40), CUDA_ERROR_OUT_OF_MEMORY);
    CHECK_EQ_INT(cuMemAlloc_v2(&p, (size_t)-1), CUDA_ERROR_OUT_OF_MEMORY);
    CHECK_EQ_INT(cuMemAllocManaged(&p, 16, 0), CUDA_ERROR_INVALID_VALUE);
    CHECK_EQ_INT(cuMemAllocPitch_v2(&p, &pitch, 100, 10, 3), CUDA_ERROR_INVALID_VALUE);
    CHECK_EQ_INT(cuMemFree_v2(0xdead000), CUDA_ERROR_INVALID_VALUE);
    CHECK_EQ_INT(cuMemAlloc_v2(&p, 64), CUDA_SUCCESS);
    CHECK_EQ_INT(cuMemFree_v2(p + 8), CUDA_ERROR_INVALID_VALUE);        /* interior pointer */
    CHECK_EQ_INT(cuMemsetD32_v2(p + 2, 0, 1), CUDA_ERROR_INVALID_VALUE); /* misaligned */
    char buf[128];
    CHECK_EQ_INT(cuMemcpyHtoD_v2(p, buf, 65), CUDA_ERROR_INVALID_VALUE);
    CHECK_EQ_INT(cuMemcpyDtoH_v2(buf, 0x10, 4), CUDA_ERROR_INVALID_VALUE);
    CHECK_EQ_INT(cuMemFree_v2(p), CUDA_SUCCESS);
    CHECK_EQ_INT(cuMemFree_v2(p), CUDA_ERROR_INVALID_VALUE);            /* double free */
    unsigned int type;
    CHECK_EQ_INT(cuPointerGetAttribute(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, p), CUDA_ERROR_INVALID_VALUE);
}

TEST(pool_errors)
{
    CUmemoryPool pool;
    CUmemPoolProps bad = { .allocType = CU_MEM_ALLOCATION_TYPE_PINNED, .location = { CU_MEM_LOCATION_TYPE_HOST, 0 } };
    CHECK_EQ_INT(cuMemPoolCreate(&pool, &bad), CUDA_ERROR_INVALID_VALUE);
    CHECK_EQ_INT(cuDeviceGetDefaultMemPool(&pool, 0), CUDA_SUCCESS);
    CHECK_EQ_INT(cuMemPoolDestroy(pool), CUDA_ERROR_INVALID_VALUE);       /* the default pool */
}

TEST(destroyed_context)
{
    CUcontext c;
    CUdeviceptr p;
    CHECK_EQ_INT(cuCtxCreate_v2(&c, 0, 0), CUDA_SUCCESS);
    CHECK_EQ_INT(cuMemAlloc_v2(&p, 1 << 20), CUDA_SUCCESS);
    CHECK_EQ_INT(cuCtxDestroy_v2(c), CUDA_SUCCESS);
    CHECK_EQ_INT(cuCtxDestroy_v2(c), CUDA_ERROR_CONTEXT_IS_DESTROYED);
    CHECK_EQ_INT(cuCtxSetCurrent(c), CUDA_ERROR_CONTEXT_IS_DESTROYED);
    CHECK_EQ_INT(cuCtxDestroy_v2(ctx), CUDA_ERROR_INVALID_CONTEXT);      /* primary: release, not destroy */
    CUcontext cur = (CUcontext)1;
    CHECK_EQ_INT(cuCtxGetCurrent(&cur), CUDA_SUCCESS);
    CHECK(cur == ctx);                                                   /* popped back to the primary */
}

int main(void)
{
    RUN(before_cuinit_not_initialized);
    RUN(null_pointers_invalid_value);
    RUN(bad_device_invalid_device);
    RUN(no_context_invalid_context);
    RUN(allocation_errors);
    RUN(pool_errors);
    RUN(destroyed_context);
    return test_summary();
}
