/* Device allocation paths: charge before the driver call, roll back when
 * the driver fails, release on free against the allocation's own device. */
#include "account.h"
#include "spill.h"
#include "oom_wait.h"

/* The rare outcomes of recording an allocation (alloc_table.h at_insert). */
static void __attribute__((noinline, cold)) alloc_record_trouble(int rc, uint64_t old)
{
    if (rc < 0) { /* old: the value that found no room */
        shim_log_once(SHIM_ONCE_TABLE_FULL, LOG_WARN, "allocation table full: %llu bytes stay charged until exit",
                      (unsigned long long)alloc_bytes(old));
        return;
    }
    if (rc == 2) { /* the driver said success and handed out 0 */
        shim_log_once(SHIM_ONCE_KEY_ZERO, LOG_WARN,
                      "the driver returned a null allocation: its %llu bytes stay charged until exit",
                      (unsigned long long)alloc_bytes(old));
        return;
    }
    /* The driver handed out an address the shim still had as live: its free
     * went by another way (a destroyed context), so its bytes go back now
     * (a pool allocation's bytes are its pool's, settled by pool ops). */
    if (alloc_kind(old) != AK_ASYNC)
        shim_release(g.slot, old);
}

static void __attribute__((noinline, cold)) alloc_failed(uint64_t v) { shim_uncharge(v); }

/* The driver refused an allocation charged as v (not 0): its charge is
 * taken back; when the GPU was full, that is reported as pressure (for the
 * daemon's reclaim) and, under GPUMEM_OOM=wait, 1 says to try again after
 * a sleep (oom_wait.c). */
static int __attribute__((noinline, cold)) driver_refused(CUresult r, uint64_t v, struct shim_wait *w)
{
    shim_uncharge(v);
    return r == CUDA_ERROR_OUT_OF_MEMORY && shim_oom_wait(w, alloc_gd(v), alloc_bytes(v), 1);
}

/* After the driver call: an allocation charged as v (0: not charged) is
 * recorded under its key with its call site (the hook's return address),
 * or its charge taken back if the driver failed. */
static ALWAYS_INLINE CUresult alloc_done(CUresult r, uint64_t key, uint64_t v, void *site)
{
    if (v == 0)
        return r;
    if (unlikely(r != CUDA_SUCCESS)) {
        alloc_failed(v);
        return r;
    }
    uint64_t old = v;
    /* Key 0 marks an empty table entry: such an allocation cannot be
     * recorded (nor freed: a free of 0 does nothing). */
    int rc = likely(key != 0) ? at_insert(&live_allocs, key, v, (uint64_t)(uintptr_t)site, &old) : 2;
    if (unlikely(rc != 0))
        alloc_record_trouble(rc, old);
    return r;
}

/* A free the driver refused (out of line: it is rare). */
static void __attribute__((noinline, cold)) free_refused(uint64_t key, uint64_t value)
{
    at_put_back(&live_allocs, key, value);
}

/* Removes `key` from the table before the driver frees it (so a concurrent
 * allocation that gets the same address cannot be confused with it), and
 * puts it back if the driver refuses the free. */
#define FREE_THROUGH(call, key)                                      \
    do {                                                             \
        uint64_t v_;                                                 \
        struct gm_proc_slot *s_ = shim_hot_slot();                   \
        if (!s_ || !at_remove(&live_allocs, (key), &v_))             \
            return call;                                             \
        CUresult r_ = call;                                          \
        if (unlikely(r_ != CUDA_SUCCESS))                            \
            free_refused((key), v_);                                 \
        else                                                         \
            shim_release(s_, v_);                                    \
        return r_;                                                   \
    } while (0)

/* The body of most allocation hooks: charge `bytes` as `kind`, make the
 * driver call, record the allocation under `key` (read only when the
 * call succeeded) or take the charge back. */
#define CHARGE_THROUGH(bytes, kind, call, key)                                                      \
    do {                                                                                        \
        struct shim_wait w_ = {0};                                                              \
        for (;;) {                                                                              \
            uint64_t v_;                                                                        \
            CUresult r_ = shim_charge((bytes), (kind), &v_);                                    \
            if (unlikely(r_ != CUDA_SUCCESS))                                                   \
                return r_;                                                                      \
            r_ = (call);                                                                        \
            if (unlikely(r_ != CUDA_SUCCESS)) {                                                 \
                if (v_ && driver_refused(r_, v_, &w_))                                          \
                    continue;                                                                   \
                return r_;                                                                      \
            }                                                                                   \
            return alloc_done(r_, (uint64_t)(key), v_, __builtin_return_address(0));            \
        }                                                                                       \
    } while (0)

/* What a pitched allocation is reserved at before the driver picks its
 * pitch: a 512-byte pitch, at full width (no wrap near 2^64). */
static inline uint64_t pitch_guess(uint64_t width, uint64_t height)
{
    unsigned __int128 b = ((unsigned __int128)width + 511) / 512 * 512 * height;
    return b > ALLOC_BYTES_MAX ? SHIM_TOO_BIG : shim_charge_size((uint64_t)b);
}

/* Pitched allocations, both widths: reserved at a 512-byte pitch, settled
 * on the driver's (freed again if the real pitch does not fit). */
#define PITCH_THROUGH(call, free_call)                                                              \
    do {                                                                                        \
        uint64_t v_, guess_ = pitch_guess(WidthInBytes, Height);                                \
        CUresult r_ = shim_charge(guess_, AK_PITCH, &v_);                                       \
        if (unlikely(r_ != CUDA_SUCCESS))                                                       \
            return r_;                                                                          \
        r_ = (call);                                                                            \
        if (v_ && r_ == CUDA_SUCCESS &&                                                         \
            shim_recharge(&v_, shim_charge_size((uint64_t)*pPitch * Height)) != CUDA_SUCCESS) { \
            (free_call);                                                                        \
            shim_uncharge(v_);                                                                  \
            return CUDA_ERROR_OUT_OF_MEMORY;                                                    \
        }                                                                                       \
        return alloc_done(r_, r_ == CUDA_SUCCESS ? (uint64_t)*dptr : 0, v_, __builtin_return_address(0)); \
    } while (0)

#define REAL(sym) ((PFN_##sym)real.sym)
typedef PFN_cuMemAlloc_v3020 PFN_cuMemAlloc_v2;
typedef PFN_cuMemAlloc_v2000 PFN_cuMemAlloc;
typedef PFN_cuMemAllocPitch_v2000 PFN_cuMemAllocPitch;
typedef PFN_cuMemFree_v2000 PFN_cuMemFree;
typedef PFN_cuArrayCreate_v2000 PFN_cuArrayCreate;
typedef PFN_cuArray3DCreate_v2000 PFN_cuArray3DCreate;
typedef PFN_cuMemAllocPitch_v3020 PFN_cuMemAllocPitch_v2;
typedef PFN_cuMemAllocManaged_v6000 PFN_cuMemAllocManaged;
typedef PFN_cuMemFree_v3020 PFN_cuMemFree_v2;
typedef PFN_cuMemCreate_v10020 PFN_cuMemCreate;
typedef PFN_cuMemRelease_v10020 PFN_cuMemRelease;
typedef PFN_cuArrayCreate_v3020 PFN_cuArrayCreate_v2;
typedef PFN_cuArray3DCreate_v3020 PFN_cuArray3DCreate_v2;
typedef PFN_cuArrayDestroy_v2000 PFN_cuArrayDestroy;
typedef PFN_cuMipmappedArrayCreate_v5000 PFN_cuMipmappedArrayCreate;
typedef PFN_cuMipmappedArrayDestroy_v5000 PFN_cuMipmappedArrayDestroy;

#define EXPORT __attribute__((visibility("default")))

/* cuMemAlloc_v2 when its fast path does not apply (out of line, so that
 * the hook itself holds nothing but the fast path: see alloc_table.h
 * at_insert_contended). */
static CUresult __attribute__((noinline)) mem_alloc_slow(CUdeviceptr *dptr, size_t bytesize, void *site)
{
    struct shim_wait w = {0};
    for (;;) {
        uint64_t v;
        CUresult r = shim_charge_or_spill(shim_charge_size(bytesize), AK_MEM, &v);
        if (unlikely(r != CUDA_SUCCESS))
            return r;
        /* Past the device limit, within the swap: managed memory on the host. */
        r = alloc_spilled(v) ? shim_spill_managed(dptr, bytesize, CU_MEM_ATTACH_GLOBAL)
                             : REAL(cuMemAlloc_v2)(dptr, bytesize);
        if (unlikely(r != CUDA_SUCCESS)) {
            /* The GPU full (not a spilled charge: the host refused that):
             * reported as pressure, and waited out under GPUMEM_OOM=wait. */
            if (v && !alloc_spilled(v) && driver_refused(r, v, &w))
                continue;
            return v && alloc_spilled(v) ? alloc_done(r, 0, v, site) : r;
        }
        return alloc_done(r, *dptr, v, site);
    }
}

/* The driver refused what the fast path charged: the slow path, with its
 * waits, takes over (the charge is taken back first). */
static CUresult __attribute__((noinline, cold)) mem_alloc_refused(CUresult r, uint64_t v, CUdeviceptr *dptr,
                                                                   size_t bytesize, void *site)
{
    struct shim_wait w = {0};
    if (!driver_refused(r, v, &w))
        return r;
    return mem_alloc_slow(dptr, bytesize, site);
}

EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize)
{
    uint64_t v;
    if (unlikely(!shim_charge_fast(shim_charge_size(bytesize), AK_MEM, &v)))
        return mem_alloc_slow(dptr, bytesize, __builtin_return_address(0));
    CUresult r = REAL(cuMemAlloc_v2)(dptr, bytesize);
    if (unlikely(r != CUDA_SUCCESS))
        return mem_alloc_refused(r, v, dptr, bytesize, __builtin_return_address(0));
    return alloc_done(r, *dptr, v, __builtin_return_address(0));
}

EXPORT CUresult cuMemFree_v2(CUdeviceptr dptr) { FREE_THROUGH(REAL(cuMemFree_v2)(dptr), dptr); }

/* The pitch is the driver's choice: reserve for the usual 512-byte row
 * alignment, then settle on the real pitch x height. */
EXPORT CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pPitch, size_t WidthInBytes, size_t Height,
                                   unsigned int ElementSizeBytes)
{
    PITCH_THROUGH(REAL(cuMemAllocPitch_v2)(dptr, pPitch, WidthInBytes, Height, ElementSizeBytes),
                  REAL(cuMemFree_v2)(*dptr));
}

/* Charged as device memory (a program's managed memory may all end up on
 * the device), or past the limit spilled like cuMemAlloc's. */
EXPORT CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t bytesize, unsigned int flags)
{
    uint64_t v, bytes = shim_charge_size(bytesize);
    CUresult r = likely(shim_charge_fast(bytes, AK_MANAGED, &v)) ? CUDA_SUCCESS
                                                                  : shim_charge_or_spill(bytes, AK_MANAGED, &v);
    if (unlikely(r != CUDA_SUCCESS))
        return r;
    r = alloc_spilled(v) ? shim_spill_managed(dptr, bytesize, flags) : REAL(cuMemAllocManaged)(dptr, bytesize, flags);
    return alloc_done(r, r == CUDA_SUCCESS ? *dptr : 0, v, __builtin_return_address(0));
}

/* VMM: the physical handle is the device memory; cuMemMap only maps it. */
EXPORT CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size, const CUmemAllocationProp *prop,
                            unsigned long long flags)
{
    int hint = -1;
    if (shim_mode() == SHIM_ENFORCE && prop && prop->location.type == CU_MEM_LOCATION_TYPE_DEVICE) {
        hint = shim_gd_for_cudevice(prop->location.id);
        if (hint == SHIM_GD_REFUSE)
            return CUDA_ERROR_OUT_OF_MEMORY;
        if (hint < 0) /* not a device (or no driver yet): the driver refuses it */
            return REAL(cuMemCreate)(handle, size, prop, flags);
    }
    uint64_t v;
    uint64_t bytes = shim_charge_clamp(size);
    CUresult r = hint >= 0 ? shim_charge_slow(hint, bytes, AK_VMM, &v) : shim_charge(bytes, AK_VMM, &v);
    if (unlikely(r != CUDA_SUCCESS))
        return r;
    r = REAL(cuMemCreate)(handle, size, prop, flags);
    return alloc_done(r, r == CUDA_SUCCESS ? *handle : 0, v, __builtin_return_address(0));
}

EXPORT CUresult cuMemRelease(CUmemGenericAllocationHandle handle)
{
    FREE_THROUGH(REAL(cuMemRelease)(handle), handle);
}

/* Bytes of a CUDA array: width x height x depth x channels x element size
 * (layered and cubemap arrays are depth layers). */
static uint64_t array_bytes(size_t w, size_t h, size_t d, CUarray_format f, unsigned ch)
{
    unsigned elem;
    switch (f) {
    case CU_AD_FORMAT_UNSIGNED_INT8: case CU_AD_FORMAT_SIGNED_INT8: elem = 1; break;
    case CU_AD_FORMAT_UNSIGNED_INT16: case CU_AD_FORMAT_SIGNED_INT16: case CU_AD_FORMAT_HALF: elem = 2; break;
    default: elem = 4; break;
    }
    unsigned __int128 b = (unsigned __int128)w * (h ? h : 1) * (d ? d : 1) * (ch ? ch : 1) * elem;
    return b > ALLOC_BYTES_MAX ? SHIM_TOO_BIG : shim_charge_size((uint64_t)b);
}

/* cuArrayCreate and cuArray3DCreate, both widths (the v2000 descriptors
 * have 32-bit sizes); depth is 1 for the 2D ones. */
#define ARRAY_HOOK(sym, desc_type, depth)                                                                   \
    EXPORT CUresult sym(CUarray *pHandle, const desc_type *desc)                                            \
    {                                                                                                       \
        if (!desc)                                                                                          \
            return REAL(sym)(pHandle, desc);                                                                \
        CHARGE_THROUGH(array_bytes(desc->Width, desc->Height, depth, desc->Format, desc->NumChannels), AK_ARRAY, \
                       REAL(sym)(pHandle, desc), (uintptr_t)*pHandle);                                      \
    }
ARRAY_HOOK(cuArrayCreate, CUDA_ARRAY_DESCRIPTOR_v1, 1)
ARRAY_HOOK(cuArrayCreate_v2, CUDA_ARRAY_DESCRIPTOR, 1)
ARRAY_HOOK(cuArray3DCreate, CUDA_ARRAY3D_DESCRIPTOR_v1, desc->Depth)
ARRAY_HOOK(cuArray3DCreate_v2, CUDA_ARRAY3D_DESCRIPTOR, desc->Depth)

EXPORT CUresult cuArrayDestroy(CUarray hArray)
{
    FREE_THROUGH(REAL(cuArrayDestroy)(hArray), (uint64_t)(uintptr_t)hArray);
}

EXPORT CUresult cuMipmappedArrayCreate(CUmipmappedArray *pHandle, const CUDA_ARRAY3D_DESCRIPTOR *desc,
                                       unsigned int levels)
{
    if (!desc)
        return REAL(cuMipmappedArrayCreate)(pHandle, desc, levels);
    uint64_t bytes = 0;
    size_t w = desc->Width, h = desc->Height, d = desc->Depth;
    for (unsigned l = 0; l < levels && l < 32; l++) {
        bytes = shim_charge_clamp(bytes + array_bytes(w, h, d, desc->Format, desc->NumChannels));
        w = w > 1 ? w / 2 : 1;
        h = h > 1 ? h / 2 : h;
        d = d > 1 ? d / 2 : d;
    }
    CHARGE_THROUGH(bytes, AK_MIPMAP, REAL(cuMipmappedArrayCreate)(pHandle, desc, levels), (uintptr_t)*pHandle);
}

EXPORT CUresult cuMipmappedArrayDestroy(CUmipmappedArray h)
{
    FREE_THROUGH(REAL(cuMipmappedArrayDestroy)(h), (uint64_t)(uintptr_t)h);
}

/* The 32-bit forms (v2000: 32-bit pointers and sizes). NVIDIA's headers no
 * longer declare them, but libcuda still exports them, so a program can
 * reach them by name: they are charged like the others, or they would be a
 * way around the limit. An allocation's key is its pointer's value, so a
 * free by either form finds it. */
EXPORT CUresult cuMemAlloc(CUdeviceptr_v1 *dptr, unsigned int bytesize)
{
    CHARGE_THROUGH(shim_charge_size(bytesize), AK_MEM, REAL(cuMemAlloc)(dptr, bytesize), *dptr);
}

EXPORT CUresult cuMemFree(CUdeviceptr_v1 dptr) { FREE_THROUGH(REAL(cuMemFree)(dptr), dptr); }

EXPORT CUresult cuMemAllocPitch(CUdeviceptr_v1 *dptr, unsigned int *pPitch, unsigned int WidthInBytes,
                                unsigned int Height, unsigned int ElementSizeBytes)
{
    PITCH_THROUGH(REAL(cuMemAllocPitch)(dptr, pPitch, WidthInBytes, Height, ElementSizeBytes), REAL(cuMemFree)(*dptr));
}

