/* Memory copies and memsets. Every copy really moves bytes (tests check
 * data), synchronously: "async" variants complete before they return, which
 * is a legal schedule for any correct program. Device-side ranges are
 * bounds-checked against the allocation they fall in, so a bad pointer
 * gives CUDA_ERROR_INVALID_VALUE instead of a crash. */
#include "internal.h"

#include <string.h>

/* [p, p+len) must be memory the driver knows (any allocation, host memory
 * registered or allocated through it, or mapped VMM). */
static CUresult check_dev(CUdeviceptr p, size_t len)
{
    if (len == 0) return CUDA_SUCCESS;
    if (p == 0) return CUDA_ERROR_INVALID_VALUE;
    struct sim_alloc a;
    int dev;
    if (sim_registry_find(p, len, &a) == 0 || sim_vmm_covers(p, len, &dev)) return CUDA_SUCCESS;
    return CUDA_ERROR_INVALID_VALUE;
}

static CUresult need_ctx(void)
{
    struct sim_ctx *c;
    return sim_ctx_current(&c);
}

static CUresult copy_checked(CUdeviceptr dst, int dst_dev, CUdeviceptr src, int src_dev, size_t n, CUstream s)
{
    CUresult r = need_ctx();
    if (!r && s) r = sim_stream_check(s);
    if (!r && dst_dev) r = check_dev(dst, n);
    if (!r && src_dev) r = check_dev(src, n);
    if (r) return r;
    if (n && (!dst || !src)) return CUDA_ERROR_INVALID_VALUE;
    if (n) {
        sim_managed_touch(dst, n);      /* the copy engine touches managed memory */
        sim_managed_touch(src, n);
        memmove((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, n);
    }
    return CUDA_SUCCESS;
}

#define H(p) ((CUdeviceptr)(uintptr_t)(p))

/* Unified addressing: either side may be host or device memory. */
SIM_API CUresult cuMemcpy(CUdeviceptr dst, CUdeviceptr src, size_t n) { return copy_checked(dst, 0, src, 0, n, NULL); }
SIM_API CUresult cuMemcpy_ptds(CUdeviceptr dst, CUdeviceptr src, size_t n) { return copy_checked(dst, 0, src, 0, n, NULL); }
SIM_API CUresult cuMemcpyAsync(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s) { return copy_checked(dst, 0, src, 0, n, s); }
SIM_API CUresult cuMemcpyAsync_ptsz(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s) { return copy_checked(dst, 0, src, 0, n, s); }

SIM_API CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n) { return copy_checked(dst, 1, H(src), 0, n, NULL); }
SIM_API CUresult cuMemcpyHtoD_v2_ptds(CUdeviceptr dst, const void *src, size_t n) { return copy_checked(dst, 1, H(src), 0, n, NULL); }
SIM_API CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n, CUstream s) { return copy_checked(dst, 1, H(src), 0, n, s); }
SIM_API CUresult cuMemcpyHtoDAsync_v2_ptsz(CUdeviceptr dst, const void *src, size_t n, CUstream s) { return copy_checked(dst, 1, H(src), 0, n, s); }
SIM_API CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n) { return copy_checked(H(dst), 0, src, 1, n, NULL); }
SIM_API CUresult cuMemcpyDtoH_v2_ptds(void *dst, CUdeviceptr src, size_t n) { return copy_checked(H(dst), 0, src, 1, n, NULL); }
SIM_API CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n, CUstream s) { return copy_checked(H(dst), 0, src, 1, n, s); }
SIM_API CUresult cuMemcpyDtoHAsync_v2_ptsz(void *dst, CUdeviceptr src, size_t n, CUstream s) { return copy_checked(H(dst), 0, src, 1, n, s); }
SIM_API CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t n) { return copy_checked(dst, 1, src, 1, n, NULL); }
SIM_API CUresult cuMemcpyDtoD_v2_ptds(CUdeviceptr dst, CUdeviceptr src, size_t n) { return copy_checked(dst, 1, src, 1, n, NULL); }
SIM_API CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s) { return copy_checked(dst, 1, src, 1, n, s); }
SIM_API CUresult cuMemcpyDtoDAsync_v2_ptsz(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s) { return copy_checked(dst, 1, src, 1, n, s); }

static CUresult peer(CUdeviceptr dst, CUcontext dctx, CUdeviceptr src, CUcontext sctx, size_t n, CUstream s)
{
    struct sim_ctx *a, *b;
    CUresult r = sim_ctx_resolve(dctx, &a);
    if (!r) r = sim_ctx_resolve(sctx, &b);
    if (r) return r;
    if (!dctx || !sctx) return CUDA_ERROR_INVALID_CONTEXT;
    return copy_checked(dst, 1, src, 1, n, s);
}
SIM_API CUresult cuMemcpyPeer(CUdeviceptr dst, CUcontext dctx, CUdeviceptr src, CUcontext sctx, size_t n)
{ return peer(dst, dctx, src, sctx, n, NULL); }
SIM_API CUresult cuMemcpyPeer_ptds(CUdeviceptr dst, CUcontext dctx, CUdeviceptr src, CUcontext sctx, size_t n)
{ return peer(dst, dctx, src, sctx, n, NULL); }
SIM_API CUresult cuMemcpyPeerAsync(CUdeviceptr dst, CUcontext dctx, CUdeviceptr src, CUcontext sctx, size_t n, CUstream s)
{ return peer(dst, dctx, src, sctx, n, s); }
SIM_API CUresult cuMemcpyPeerAsync_ptsz(CUdeviceptr dst, CUcontext dctx, CUdeviceptr src, CUcontext sctx, size_t n,
                                        CUstream s)
{ return peer(dst, dctx, src, sctx, n, s); }

/* ---- 2D / 3D ---- */

struct side {
    unsigned char *base;
    size_t pitch, height;     /* bytes per row, rows per slice */
};

/* Resolves one side of a 2D/3D copy and checks that every byte it touches
 * lies in that memory. */
static CUresult resolve_side(CUmemorytype type, const void *host, CUdeviceptr dev, CUarray array, size_t pitch,
                             size_t height, size_t x, size_t y, size_t z, size_t width, size_t rows, size_t depth,
                             struct side *out)
{
    if (width == 0 || rows == 0 || depth == 0) return CUDA_ERROR_INVALID_VALUE;
    switch ((int)type) {
    case CU_MEMORYTYPE_HOST:
        if (!host) return CUDA_ERROR_INVALID_VALUE;
        out->base = (unsigned char *)(uintptr_t)host;
        break;
    case CU_MEMORYTYPE_DEVICE:
    case CU_MEMORYTYPE_UNIFIED:
        if (!dev) return CUDA_ERROR_INVALID_VALUE;
        out->base = (unsigned char *)(uintptr_t)dev;
        break;
    case CU_MEMORYTYPE_ARRAY: {
        size_t bytes;
        if (!array || sim_array_layout(array, &out->base, &pitch, &height, &bytes) != 0) return CUDA_ERROR_INVALID_HANDLE;
        if (x + width > pitch || ((z + depth - 1) * height + y + rows) * pitch > bytes)
            return CUDA_ERROR_INVALID_VALUE;
        out->pitch = pitch;
        out->height = height;
        return CUDA_SUCCESS;
    }
    default:
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (pitch == 0) pitch = width;
    if (x + width > pitch && (rows > 1 || depth > 1)) return CUDA_ERROR_INVALID_VALUE;
    if (height == 0) height = y + rows;
    out->pitch = pitch;
    out->height = height;
    if (type == CU_MEMORYTYPE_DEVICE) {
        size_t first = (z * height + y) * pitch + x;
        size_t last = ((z + depth - 1) * height + y + rows - 1) * pitch + x + width;
        return check_dev(dev + first, last - first);
    }
    return CUDA_SUCCESS;
}

static CUresult copy3d(const CUDA_MEMCPY3D *p, CUstream s)
{
    if (!p) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = need_ctx();
    if (!r && s) r = sim_stream_check(s);
    if (r) return r;
    if (p->srcLOD || p->dstLOD) return CUDA_ERROR_INVALID_VALUE;
    size_t depth = p->Depth ? p->Depth : 1, rows = p->Height ? p->Height : 1;
    struct side src, dst;
    r = resolve_side(p->srcMemoryType, p->srcHost, p->srcDevice, p->srcArray, p->srcPitch, p->srcHeight,
                     p->srcXInBytes, p->srcY, p->srcZ, p->WidthInBytes, rows, depth, &src);
    if (!r) r = resolve_side(p->dstMemoryType, p->dstHost, p->dstDevice, p->dstArray, p->dstPitch, p->dstHeight,
                             p->dstXInBytes, p->dstY, p->dstZ, p->WidthInBytes, rows, depth, &dst);
    if (r) return r;
    for (size_t z = 0; z < depth; z++)
        for (size_t y = 0; y < rows; y++)
            memmove(dst.base + ((p->dstZ + z) * dst.height + p->dstY + y) * dst.pitch + p->dstXInBytes,
                    src.base + ((p->srcZ + z) * src.height + p->srcY + y) * src.pitch + p->srcXInBytes,
                    p->WidthInBytes);
    return CUDA_SUCCESS;
}

static CUresult copy2d(const CUDA_MEMCPY2D *p, CUstream s)
{
    if (!p) return CUDA_ERROR_INVALID_VALUE;
    CUDA_MEMCPY3D q = {
        .srcXInBytes = p->srcXInBytes, .srcY = p->srcY, .srcMemoryType = p->srcMemoryType, .srcHost = p->srcHost,
        .srcDevice = p->srcDevice, .srcArray = p->srcArray, .srcPitch = p->srcPitch,
        .dstXInBytes = p->dstXInBytes, .dstY = p->dstY, .dstMemoryType = p->dstMemoryType, .dstHost = p->dstHost,
        .dstDevice = p->dstDevice, .dstArray = p->dstArray, .dstPitch = p->dstPitch,
        .WidthInBytes = p->WidthInBytes, .Height = p->Height, .Depth = 1,
    };
    return copy3d(&q, s);
}

SIM_API CUresult cuMemcpy2D_v2(const CUDA_MEMCPY2D *p) { return copy2d(p, NULL); }
SIM_API CUresult cuMemcpy2D_v2_ptds(const CUDA_MEMCPY2D *p) { return copy2d(p, NULL); }
SIM_API CUresult cuMemcpy2DUnaligned_v2(const CUDA_MEMCPY2D *p) { return copy2d(p, NULL); }
SIM_API CUresult cuMemcpy2DUnaligned_v2_ptds(const CUDA_MEMCPY2D *p) { return copy2d(p, NULL); }
SIM_API CUresult cuMemcpy2DAsync_v2(const CUDA_MEMCPY2D *p, CUstream s) { return copy2d(p, s); }
SIM_API CUresult cuMemcpy2DAsync_v2_ptsz(const CUDA_MEMCPY2D *p, CUstream s) { return copy2d(p, s); }
SIM_API CUresult cuMemcpy3D_v2(const CUDA_MEMCPY3D *p) { return copy3d(p, NULL); }
SIM_API CUresult cuMemcpy3D_v2_ptds(const CUDA_MEMCPY3D *p) { return copy3d(p, NULL); }
SIM_API CUresult cuMemcpy3DAsync_v2(const CUDA_MEMCPY3D *p, CUstream s) { return copy3d(p, s); }
SIM_API CUresult cuMemcpy3DAsync_v2_ptsz(const CUDA_MEMCPY3D *p, CUstream s) { return copy3d(p, s); }

/* ---- memset: elements of 1, 2 or 4 bytes, 1D or pitched 2D ---- */

static CUresult memset2d(CUdeviceptr dst, size_t pitch, unsigned value, unsigned elem, size_t width, size_t height,
                         CUstream s)
{
    CUresult r = need_ctx();
    if (!r && s) r = sim_stream_check(s);
    if (r) return r;
    if (dst % elem || (height > 1 && (pitch % elem || pitch < width * elem))) return CUDA_ERROR_INVALID_VALUE;
    if (width == 0 || height == 0) return CUDA_SUCCESS;
    if (width > SIZE_MAX / elem) return CUDA_ERROR_INVALID_VALUE;
    size_t span = (height - 1) * pitch + width * elem;
    r = check_dev(dst, span);
    if (r) return r;
    sim_managed_touch(dst, span);
    for (size_t y = 0; y < height; y++) {
        unsigned char *row = (unsigned char *)(uintptr_t)(dst + y * pitch);
        if (elem == 1) { memset(row, (int)(value & 0xff), width); continue; }
        for (size_t i = 0; i < width; i++) {
            if (elem == 2) { uint16_t v = (uint16_t)value; memcpy(row + 2 * i, &v, 2); }
            else { uint32_t v = value; memcpy(row + 4 * i, &v, 4); }
        }
    }
    return CUDA_SUCCESS;
}

SIM_API CUresult cuMemsetD8_v2(CUdeviceptr d, unsigned char uc, size_t N) { return memset2d(d, 0, uc, 1, N, 1, NULL); }
SIM_API CUresult cuMemsetD8_v2_ptds(CUdeviceptr d, unsigned char uc, size_t N) { return memset2d(d, 0, uc, 1, N, 1, NULL); }
SIM_API CUresult cuMemsetD16_v2(CUdeviceptr d, unsigned short us, size_t N) { return memset2d(d, 0, us, 2, N, 1, NULL); }
SIM_API CUresult cuMemsetD16_v2_ptds(CUdeviceptr d, unsigned short us, size_t N) { return memset2d(d, 0, us, 2, N, 1, NULL); }
SIM_API CUresult cuMemsetD32_v2(CUdeviceptr d, unsigned int ui, size_t N) { return memset2d(d, 0, ui, 4, N, 1, NULL); }
SIM_API CUresult cuMemsetD32_v2_ptds(CUdeviceptr d, unsigned int ui, size_t N) { return memset2d(d, 0, ui, 4, N, 1, NULL); }
SIM_API CUresult cuMemsetD8Async(CUdeviceptr d, unsigned char uc, size_t N, CUstream s) { return memset2d(d, 0, uc, 1, N, 1, s); }
SIM_API CUresult cuMemsetD8Async_ptsz(CUdeviceptr d, unsigned char uc, size_t N, CUstream s) { return memset2d(d, 0, uc, 1, N, 1, s); }
SIM_API CUresult cuMemsetD16Async(CUdeviceptr d, unsigned short us, size_t N, CUstream s) { return memset2d(d, 0, us, 2, N, 1, s); }
SIM_API CUresult cuMemsetD16Async_ptsz(CUdeviceptr d, unsigned short us, size_t N, CUstream s) { return memset2d(d, 0, us, 2, N, 1, s); }
SIM_API CUresult cuMemsetD32Async(CUdeviceptr d, unsigned int ui, size_t N, CUstream s) { return memset2d(d, 0, ui, 4, N, 1, s); }
SIM_API CUresult cuMemsetD32Async_ptsz(CUdeviceptr d, unsigned int ui, size_t N, CUstream s) { return memset2d(d, 0, ui, 4, N, 1, s); }

SIM_API CUresult cuMemsetD2D8_v2(CUdeviceptr d, size_t pitch, unsigned char uc, size_t w, size_t h)
{ return memset2d(d, pitch, uc, 1, w, h, NULL); }
SIM_API CUresult cuMemsetD2D8_v2_ptds(CUdeviceptr d, size_t pitch, unsigned char uc, size_t w, size_t h)
{ return memset2d(d, pitch, uc, 1, w, h, NULL); }
SIM_API CUresult cuMemsetD2D16_v2(CUdeviceptr d, size_t pitch, unsigned short us, size_t w, size_t h)
{ return memset2d(d, pitch, us, 2, w, h, NULL); }
SIM_API CUresult cuMemsetD2D16_v2_ptds(CUdeviceptr d, size_t pitch, unsigned short us, size_t w, size_t h)
{ return memset2d(d, pitch, us, 2, w, h, NULL); }
SIM_API CUresult cuMemsetD2D32_v2(CUdeviceptr d, size_t pitch, unsigned int ui, size_t w, size_t h)
{ return memset2d(d, pitch, ui, 4, w, h, NULL); }
SIM_API CUresult cuMemsetD2D32_v2_ptds(CUdeviceptr d, size_t pitch, unsigned int ui, size_t w, size_t h)
{ return memset2d(d, pitch, ui, 4, w, h, NULL); }
SIM_API CUresult cuMemsetD2D8Async(CUdeviceptr d, size_t pitch, unsigned char uc, size_t w, size_t h, CUstream s)
{ return memset2d(d, pitch, uc, 1, w, h, s); }
SIM_API CUresult cuMemsetD2D8Async_ptsz(CUdeviceptr d, size_t pitch, unsigned char uc, size_t w, size_t h, CUstream s)
{ return memset2d(d, pitch, uc, 1, w, h, s); }
SIM_API CUresult cuMemsetD2D16Async(CUdeviceptr d, size_t pitch, unsigned short us, size_t w, size_t h, CUstream s)
{ return memset2d(d, pitch, us, 2, w, h, s); }
SIM_API CUresult cuMemsetD2D16Async_ptsz(CUdeviceptr d, size_t pitch, unsigned short us, size_t w, size_t h, CUstream s)
{ return memset2d(d, pitch, us, 2, w, h, s); }
SIM_API CUresult cuMemsetD2D32Async(CUdeviceptr d, size_t pitch, unsigned int ui, size_t w, size_t h, CUstream s)
{ return memset2d(d, pitch, ui, 4, w, h, s); }
SIM_API CUresult cuMemsetD2D32Async_ptsz(CUdeviceptr d, size_t pitch, unsigned int ui, size_t w, size_t h, CUstream s)
{ return memset2d(d, pitch, ui, 4, w, h, s); }
