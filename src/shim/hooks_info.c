/* What the application sees: the limit is the size of its GPU.
 *   total = the limit (never more than the device really has)
 *   free  = limit - group usage, clamped at 0, and never more than the
 *           device really has free (other tenants use it too). */
#include "account.h"

#define EXPORT __attribute__((visibility("default")))

static inline uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* Applies the group's view to a device's (free, total). */
void shim_view(int gd, uint64_t *free, uint64_t *total)
{
    uint64_t limit = shim_limit(gd);
    if (limit == GM_UNLIMITED)
        return;
    /* Not a hot path: leave out the processes that have gone since the last
     * reclaim (a SIGKILLed one is otherwise counted until an allocation
     * needs its room), so the view is as fresh as the driver's own. */
    gm_reclaim_dead(g.usage);
    uint64_t used = gm_usage_total(g.usage, gd);
    uint64_t room = limit > used ? limit - used : 0;
    *total = min_u64(limit, *total);
    *free = min_u64(min_u64(room, *free), *total);
}

/* A program linked with -lcuda may call these before any other hooked
 * function: shim_mode() first initialises the shim, which resolves the
 * driver's functions (calling through an unresolved one crashed). */
#define REAL_OR_FAIL(fn) \
    if (!real.fn)        \
        return CUDA_ERROR_NOT_INITIALIZED;

EXPORT CUresult cuMemGetInfo_v2(size_t *free, size_t *total)
{
    int m = shim_mode();
    REAL_OR_FAIL(cuMemGetInfo_v2)
    CUresult r = ((PFN_cuMemGetInfo_v3020)real.cuMemGetInfo_v2)(free, total);
    if (r != CUDA_SUCCESS || m == SHIM_PASSTHROUGH)
        return r;
    if (m == SHIM_FAIL_CLOSED) {
        *free = 0;
        return r;
    }
    int gd = shim_current_gd();
    if (gd >= 0) {
        uint64_t f = *free, t = *total;
        shim_view(gd, &f, &t);
        *free = f;
        *total = t;
    } else if (gd == SHIM_GD_REFUSE) {
        *free = 0; /* nothing can be allocated there */
    }
    return r;
}

EXPORT CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev)
{
    int m = shim_mode();
    REAL_OR_FAIL(cuDeviceTotalMem_v2)
    CUresult r = ((PFN_cuDeviceTotalMem_v3020)real.cuDeviceTotalMem_v2)(bytes, dev);
    if (r != CUDA_SUCCESS || m != SHIM_ENFORCE)
        return r;
    int gd = shim_gd_for_cudevice(dev);
    if (gd >= 0)
        *bytes = min_u64(shim_limit(gd), *bytes);
    return r;
}

/* The 32-bit forms: the driver clamps what they report to 32 bits; the
 * group's view is worked out at full width (from the driver's 64-bit
 * figures) and clamped the same way. The driver's own answer comes first,
 * so a driver without them still says so. */
static unsigned int clamp32(uint64_t x) { return x > UINT32_MAX ? UINT32_MAX : (unsigned int)x; }

EXPORT CUresult cuMemGetInfo(unsigned int *free, unsigned int *total)
{
    int m = shim_mode();
    REAL_OR_FAIL(cuMemGetInfo)
    CUresult r = ((PFN_cuMemGetInfo_v2000)real.cuMemGetInfo)(free, total);
    size_t f, t;
    if (r != CUDA_SUCCESS || m == SHIM_PASSTHROUGH || !free || !total || cuMemGetInfo_v2(&f, &t) != CUDA_SUCCESS)
        return r;
    *free = clamp32(f);
    *total = clamp32(t);
    return r;
}

EXPORT CUresult cuDeviceTotalMem(unsigned int *bytes, CUdevice dev)
{
    int m = shim_mode();
    REAL_OR_FAIL(cuDeviceTotalMem)
    CUresult r = ((PFN_cuDeviceTotalMem_v2000)real.cuDeviceTotalMem)(bytes, dev);
    size_t t;
    if (r != CUDA_SUCCESS || m != SHIM_ENFORCE || !bytes || cuDeviceTotalMem_v2(&t, dev) != CUDA_SUCCESS)
        return r;
    *bytes = clamp32(t);
    return r;
}
