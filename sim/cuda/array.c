/* CUDA arrays (1D, 2D, 3D, layered, cubemap) and mipmapped arrays. An array
 * is stored as packed rows (pitch = width * element size) so 2D/3D copies
 * can address it; it charges its real size (all levels for a mipmapped
 * array), rounded like any allocation. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define ARRAY_MAGIC 0x41525259u
#define MIPMAP_MAGIC 0x4d49504du

struct sim_array {
    uint32_t magic;
    _Atomic int destroyed;
    CUDA_ARRAY3D_DESCRIPTOR desc;
    size_t elem, bytes, charged;
    unsigned char *data;
    int dev;
    int is_level;                 /* belongs to a mipmapped array */
};

struct sim_mipmap {
    uint32_t magic;
    _Atomic int destroyed;
    unsigned levels;
    size_t charged;
    int dev;
    struct sim_array *level[32];
};

static size_t format_bytes(CUarray_format f)
{
    switch ((int)f) {
    case CU_AD_FORMAT_UNSIGNED_INT8: case CU_AD_FORMAT_SIGNED_INT8: return 1;
    case CU_AD_FORMAT_UNSIGNED_INT16: case CU_AD_FORMAT_SIGNED_INT16: case CU_AD_FORMAT_HALF: return 2;
    case CU_AD_FORMAT_UNSIGNED_INT32: case CU_AD_FORMAT_SIGNED_INT32: case CU_AD_FORMAT_FLOAT: return 4;
    default: return 0;
    }
}

/* Validates a descriptor; returns its size in bytes (0 if invalid). */
static size_t desc_bytes(const CUDA_ARRAY3D_DESCRIPTOR *d, size_t *elem)
{
    size_t fb = format_bytes(d->Format);
    if (!fb || (d->NumChannels != 1 && d->NumChannels != 2 && d->NumChannels != 4) || d->Width == 0) return 0;
    if (d->Height == 0 && d->Depth != 0 && !(d->Flags & CUDA_ARRAY3D_LAYERED)) return 0;
    if ((d->Flags & CUDA_ARRAY3D_CUBEMAP) && (d->Width != d->Height || d->Depth % 6 || d->Depth == 0)) return 0;
    *elem = fb * d->NumChannels;
    size_t h = d->Height ? d->Height : 1, z = d->Depth ? d->Depth : 1;
    if (d->Width > SIZE_MAX / *elem / h / z) return 0;
    return d->Width * *elem * h * z;
}

static struct sim_array *make_array(const CUDA_ARRAY3D_DESCRIPTOR *d, size_t bytes, size_t elem, int dev)
{
    struct sim_array *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->data = bytes > SIM_SMALL_MAX ? sim_map_backing(bytes) : sim_heap_calloc(bytes);
    if (!a->data) { free(a); return NULL; }
    a->magic = ARRAY_MAGIC;
    a->desc = *d;
    a->elem = elem;
    a->bytes = bytes;
    a->dev = dev;
    return a;
}

static void drop_array(struct sim_array *a)
{
    if (a->bytes > SIM_SMALL_MAX) munmap(a->data, a->bytes);
    else sim_heap_free(a->data, a->bytes);
    a->data = NULL;
    atomic_store(&a->destroyed, 1);   /* kept: stale handles stay checkable */
}

static CUresult create3d(CUarray *pHandle, const CUDA_ARRAY3D_DESCRIPTOR *d)
{
    if (!pHandle || !d) return CUDA_ERROR_INVALID_VALUE;
    struct sim_ctx *c;
    CUresult r = sim_ctx_current(&c);
    if (r) return r;
    size_t elem, bytes = desc_bytes(d, &elem);
    if (!bytes) return CUDA_ERROR_INVALID_VALUE;
    size_t charged = sim_round_alloc(bytes);
    if (!charged || sim_inject_alloc_failure() || sim_vdev_charge(c->dev, charged) != 0) return CUDA_ERROR_OUT_OF_MEMORY;
    struct sim_array *a = make_array(d, bytes, elem, c->dev);
    if (!a) { sim_vdev_release(c->dev, charged); return CUDA_ERROR_OUT_OF_MEMORY; }
    a->charged = charged;
    *pHandle = (CUarray)a;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuArray3DCreate_v2(CUarray *pHandle, const CUDA_ARRAY3D_DESCRIPTOR *pAllocateArray)
{
    return create3d(pHandle, pAllocateArray);
}

SIM_API CUresult cuArrayCreate_v2(CUarray *pHandle, const CUDA_ARRAY_DESCRIPTOR *pAllocateArray)
{
    if (!pAllocateArray) return CUDA_ERROR_INVALID_VALUE;
    CUDA_ARRAY3D_DESCRIPTOR d = { .Width = pAllocateArray->Width, .Height = pAllocateArray->Height,
                                  .Format = pAllocateArray->Format, .NumChannels = pAllocateArray->NumChannels };
    return create3d(pHandle, &d);
}

static struct sim_array *array_of(CUarray h)
{
    struct sim_array *a = (struct sim_array *)h;
    return a && a->magic == ARRAY_MAGIC && !atomic_load(&a->destroyed) ? a : NULL;
}

int sim_array_layout(CUarray h, unsigned char **base, size_t *pitch, size_t *height, size_t *bytes)
{
    struct sim_array *a = array_of(h);
    if (!a) return -1;
    *base = a->data;
    *pitch = a->desc.Width * a->elem;
    *height = a->desc.Height ? a->desc.Height : 1;
    *bytes = a->bytes;
    return 0;
}

SIM_API CUresult cuArray3DGetDescriptor_v2(CUDA_ARRAY3D_DESCRIPTOR *pArrayDescriptor, CUarray hArray)
{
    if (!pArrayDescriptor) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = sim_check_init();
    if (r) return r;
    struct sim_array *a = array_of(hArray);
    if (!a) return CUDA_ERROR_INVALID_HANDLE;
    *pArrayDescriptor = a->desc;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuArrayGetDescriptor_v2(CUDA_ARRAY_DESCRIPTOR *pArrayDescriptor, CUarray hArray)
{
    if (!pArrayDescriptor) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = sim_check_init();
    if (r) return r;
    struct sim_array *a = array_of(hArray);
    if (!a) return CUDA_ERROR_INVALID_HANDLE;
    if (a->desc.Depth) return CUDA_ERROR_INVALID_VALUE;     /* a 3D array: use cuArray3DGetDescriptor */
    *pArrayDescriptor = (CUDA_ARRAY_DESCRIPTOR){ a->desc.Width, a->desc.Height, a->desc.Format, a->desc.NumChannels };
    return CUDA_SUCCESS;
}

SIM_API CUresult cuArrayDestroy(CUarray hArray)
{
    CUresult r = sim_check_init();
    if (r) return r;
    struct sim_array *a = array_of(hArray);
    if (!a || a->is_level) return CUDA_ERROR_INVALID_HANDLE;
    sim_vdev_release(a->dev, a->charged);
    drop_array(a);
    return CUDA_SUCCESS;
}

SIM_API CUresult cuMipmappedArrayCreate(CUmipmappedArray *pHandle, const CUDA_ARRAY3D_DESCRIPTOR *d,
                                        unsigned int numMipmapLevels)
{
    if (!pHandle || !d || numMipmapLevels == 0) return CUDA_ERROR_INVALID_VALUE;
    struct sim_ctx *c;
    CUresult r = sim_ctx_current(&c);
    if (r) return r;
    size_t elem;
    if (!desc_bytes(d, &elem)) return CUDA_ERROR_INVALID_VALUE;
    size_t maxdim = d->Width;
    if (d->Height > maxdim) maxdim = d->Height;
    if (!(d->Flags & CUDA_ARRAY3D_LAYERED) && d->Depth > maxdim) maxdim = d->Depth;
    unsigned maxlevels = 1;
    while ((maxdim >> maxlevels) > 0) maxlevels++;
    if (numMipmapLevels > maxlevels || numMipmapLevels > 32) return CUDA_ERROR_INVALID_VALUE;
    struct sim_mipmap *m = calloc(1, sizeof *m);
    if (!m) return CUDA_ERROR_OUT_OF_MEMORY;
    size_t total = 0;
    for (unsigned l = 0; l < numMipmapLevels; l++) {
        CUDA_ARRAY3D_DESCRIPTOR ld = *d;
        ld.Width = d->Width >> l ? d->Width >> l : 1;
        if (d->Height) ld.Height = d->Height >> l ? d->Height >> l : 1;
        if (d->Depth && !(d->Flags & CUDA_ARRAY3D_LAYERED)) ld.Depth = d->Depth >> l ? d->Depth >> l : 1;
        size_t bytes = desc_bytes(&ld, &elem);
        m->level[l] = bytes ? make_array(&ld, bytes, elem, c->dev) : NULL;
        if (!m->level[l]) {
            while (l--) drop_array(m->level[l]);
            free(m);
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
        m->level[l]->is_level = 1;
        total += bytes;
    }
    m->charged = sim_round_alloc(total);
    if (!m->charged || sim_inject_alloc_failure() || sim_vdev_charge(c->dev, m->charged) != 0) {
        for (unsigned l = 0; l < numMipmapLevels; l++) drop_array(m->level[l]);
        free(m);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    m->magic = MIPMAP_MAGIC;
    m->levels = numMipmapLevels;
    m->dev = c->dev;
    *pHandle = (CUmipmappedArray)m;
    return CUDA_SUCCESS;
}

static struct sim_mipmap *mipmap_of(CUmipmappedArray h)
{
    struct sim_mipmap *m = (struct sim_mipmap *)h;
    return m && m->magic == MIPMAP_MAGIC && !atomic_load(&m->destroyed) ? m : NULL;
}

SIM_API CUresult cuMipmappedArrayGetLevel(CUarray *pLevelArray, CUmipmappedArray hMipmappedArray, unsigned int level)
{
    if (!pLevelArray) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = sim_check_init();
    if (r) return r;
    struct sim_mipmap *m = mipmap_of(hMipmappedArray);
    if (!m) return CUDA_ERROR_INVALID_HANDLE;
    if (level >= m->levels) return CUDA_ERROR_INVALID_VALUE;
    *pLevelArray = (CUarray)m->level[level];
    return CUDA_SUCCESS;
}

SIM_API CUresult cuMipmappedArrayDestroy(CUmipmappedArray hMipmappedArray)
{
    CUresult r = sim_check_init();
    if (r) return r;
    struct sim_mipmap *m = mipmap_of(hMipmappedArray);
    if (!m) return CUDA_ERROR_INVALID_HANDLE;
    atomic_store(&m->destroyed, 1);
    for (unsigned l = 0; l < m->levels; l++) drop_array(m->level[l]);
    sim_vdev_release(m->dev, m->charged);
    return CUDA_SUCCESS;
}
