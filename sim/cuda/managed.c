/* Managed (unified) memory: cuMemAllocManaged, its advice, prefetches and
 * range attributes, and where its pages are.
 *
 * What a real driver does (Linux, a GPU with concurrentManagedAccess):
 * cuMemAllocManaged reserves addresses and populates nothing; a page is
 * populated where it is first touched, on its preferred location if it has
 * one; a device that faults on a page migrates it to itself unless the
 * page prefers the CPU and the device may map it (SET_ACCESSED_BY), in
 * which case it is read over the bus where it is; cuMemPrefetchAsync moves
 * pages to a device or to the CPU. Only pages resident on a device use
 * device memory (NVML's per-process figure, cuMemGetInfo).
 *
 * The model here, per allocation rather than per page (advice or a
 * prefetch of any part applies to the whole allocation): it starts
 * unpopulated and charged to no device; a device-side touch (a copy or a
 * memset through the driver: the simulated GPU runs no kernels) populates
 * it on its preferred location, or else on the device of the current
 * context, and migrates a host-resident one to that device unless it
 * prefers the CPU; a prefetch moves it. A move to a device that has no
 * room leaves it on the host (the driver would evict other managed pages
 * or serve it remotely; it never fails the access). Host accesses through
 * the pointer are plain memory accesses the sim cannot see: they move
 * nothing. docs/simulated-gpu.md describes the same. */
#include "internal.h"

/* Live managed allocations of the process: a touch from a copy looks for
 * one only while there are any, so copies cost nothing more without them. */
static _Atomic long live_managed;

static int valid_device(int d) { return d >= 0 && d < sim_vdev_count() && d < 32; }

SIM_API CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t bytesize, unsigned int flags)
{
    if (!dptr) return CUDA_ERROR_INVALID_VALUE;
    if (flags != CU_MEM_ATTACH_GLOBAL && flags != CU_MEM_ATTACH_HOST) return CUDA_ERROR_INVALID_VALUE;
    struct sim_ctx *c;
    CUresult r = sim_ctx_current(&c);
    if (r) return r;
    if (bytesize == 0) return CUDA_ERROR_INVALID_VALUE;
    size_t rounded = sim_round_alloc(bytesize);
    if (rounded == 0) return CUDA_ERROR_OUT_OF_MEMORY;
    if (sim_inject_alloc_failure()) return CUDA_ERROR_OUT_OF_MEMORY;
    struct sim_alloc *a = sim_record_alloc();
    if (!a) return CUDA_ERROR_OUT_OF_MEMORY;
    /* Page-backed always: host memory that a real driver maps the same. */
    void *mem = sim_map_backing(rounded);
    if (!mem) { sim_record_free(a); return CUDA_ERROR_OUT_OF_MEMORY; }
    static _Atomic unsigned long long managed_ids = 1ull << 62; /* apart from memory.c's ids */
    *a = (struct sim_alloc){
        .base = (uintptr_t)mem, .size = bytesize, .charged = 0, .mapped = rounded, .dev = c->dev,
        .kind = SIM_KIND_MANAGED, .mmapped = 1, .flags = flags, .ipc_fd = -1,
        .id = atomic_fetch_add_explicit(&managed_ids, 1, memory_order_relaxed), .ctx = c,
        .res = SIM_RES_NONE, .res_dev = -1, .preferred = CU_DEVICE_INVALID, .last_prefetch = CU_DEVICE_INVALID,
    };
    atomic_fetch_add(&live_managed, 1);
    sim_registry_insert(a);
    *dptr = a->base;
    return CUDA_SUCCESS;
}

/* Places allocation a on the host (dev < 0) or on device dev, moving its
 * device charge. A device without room leaves it on the host. */
static void place(struct sim_alloc *a, int dev)
{
    size_t rounded = a->mapped;
    if (dev >= 0 && a->res == SIM_RES_DEVICE && a->res_dev == dev) return;
    if (dev >= 0 && sim_vdev_charge(dev, rounded) != 0) dev = -1;
    if (a->res == SIM_RES_DEVICE && a->charged) sim_vdev_release(a->res_dev, a->charged);
    if (dev >= 0) {
        a->res = SIM_RES_DEVICE;
        a->res_dev = (int16_t)dev;
        a->charged = rounded;
    } else {
        a->res = SIM_RES_HOST;
        a->res_dev = -1;
        a->charged = 0;
    }
}

struct touch { int dev; };

static int touch_one(struct sim_alloc *a, void *arg)
{
    int dev = ((struct touch *)arg)->dev;
    if (a->res == SIM_RES_NONE) {
        if (a->preferred == CU_DEVICE_CPU) place(a, -1);
        else place(a, a->preferred >= 0 ? a->preferred : dev);
    } else if (a->res == SIM_RES_HOST && a->preferred != CU_DEVICE_CPU) {
        place(a, dev);                   /* a device fault migrates it */
    } else if (a->res == SIM_RES_DEVICE && a->res_dev != dev && a->preferred != a->res_dev &&
               !(a->accessed_by & (1u << dev))) {
        place(a, dev);                   /* another device without a mapping migrates it */
    }
    return 0;
}

void sim_managed_touch(uintptr_t p, size_t len)
{
    if (atomic_load_explicit(&live_managed, memory_order_relaxed) == 0) return;
    struct sim_alloc found;
    if (sim_registry_find(p, len ? len : 1, &found) != 0 || found.kind != SIM_KIND_MANAGED) return;
    struct sim_ctx *c;
    if (sim_ctx_current(&c) != CUDA_SUCCESS) return;
    struct touch t = { c->dev };
    sim_registry_with(found.base, 1u << SIM_KIND_MANAGED, touch_one, &t);
}

/* The managed allocation holding [p, p+count): its base, or an error. */
static CUresult managed_range(CUdeviceptr p, size_t count, uintptr_t *base)
{
    CUresult r = sim_check_init();
    if (r) return r;
    struct sim_alloc a;
    if (count == 0 || sim_registry_find(p, count, &a) != 0 || a.kind != SIM_KIND_MANAGED)
        return CUDA_ERROR_INVALID_VALUE;
    *base = a.base;
    return CUDA_SUCCESS;
}

struct advice { CUmem_advise advice; int dev; };

static int advise_one(struct sim_alloc *a, void *arg)
{
    const struct advice *v = arg;
    switch (v->advice) {
    case CU_MEM_ADVISE_SET_READ_MOSTLY: a->read_mostly = 1; break;
    case CU_MEM_ADVISE_UNSET_READ_MOSTLY: a->read_mostly = 0; break;
    /* Advice moves nothing by itself: it steers later faults. */
    case CU_MEM_ADVISE_SET_PREFERRED_LOCATION: a->preferred = v->dev; break;
    case CU_MEM_ADVISE_UNSET_PREFERRED_LOCATION: a->preferred = CU_DEVICE_INVALID; break;
    case CU_MEM_ADVISE_SET_ACCESSED_BY: a->accessed_by |= 1u << v->dev; break;
    case CU_MEM_ADVISE_UNSET_ACCESSED_BY: a->accessed_by &= ~(1u << v->dev); break;
    }
    return 0;
}

static CUresult advise(CUdeviceptr p, size_t count, CUmem_advise advice, int dev)
{
    if ((unsigned)advice < 1 || (unsigned)advice > 6) return CUDA_ERROR_INVALID_VALUE;
    uintptr_t base;
    CUresult r = managed_range(p, count, &base);
    if (r) return r;
    /* PREFERRED_LOCATION takes the CPU or a device; ACCESSED_BY a device;
     * READ_MOSTLY ignores the device. */
    int needs = advice == CU_MEM_ADVISE_SET_PREFERRED_LOCATION ? 2
                : advice == CU_MEM_ADVISE_SET_ACCESSED_BY || advice == CU_MEM_ADVISE_UNSET_ACCESSED_BY ? 1 : 0;
    if (needs && !valid_device(dev) && !(needs == 2 && dev == CU_DEVICE_CPU)) return CUDA_ERROR_INVALID_DEVICE;
    struct advice v = { advice, dev };
    return sim_registry_with(base, 1u << SIM_KIND_MANAGED, advise_one, &v) < 0 ? CUDA_ERROR_INVALID_VALUE
                                                                             : CUDA_SUCCESS;
}

/* A location as the v2 calls give it: the CPU (host) or a device. */
static int location_dev(CUmemLocation loc)
{
    if (loc.type == CU_MEM_LOCATION_TYPE_DEVICE) return loc.id;
    if (loc.type == 2 /* HOST */ || loc.type == 3 /* HOST_NUMA */ || loc.type == 4 /* HOST_NUMA_CURRENT */)
        return CU_DEVICE_CPU;
    return CU_DEVICE_INVALID;
}

SIM_API CUresult cuMemAdvise(CUdeviceptr devPtr, size_t count, CUmem_advise advice, CUdevice device)
{
    return advise(devPtr, count, advice, device);
}
SIM_API CUresult cuMemAdvise_v2(CUdeviceptr devPtr, size_t count, CUmem_advise advice, CUmemLocation location)
{
    return advise(devPtr, count, advice, location_dev(location));
}

static int prefetch_one(struct sim_alloc *a, void *arg)
{
    int dev = *(int *)arg;
    place(a, dev);
    a->last_prefetch = dev;
    return 0;
}

static CUresult prefetch(CUdeviceptr p, size_t count, int dev, CUstream s)
{
    CUresult r = sim_stream_check(s);
    if (r) return r;
    uintptr_t base;
    r = managed_range(p, count, &base);
    if (r) return r;
    if (dev != CU_DEVICE_CPU && !valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
    /* Synchronous, like every "async" call of the sim (a legal schedule). */
    return sim_registry_with(base, 1u << SIM_KIND_MANAGED, prefetch_one, &dev) < 0 ? CUDA_ERROR_INVALID_VALUE
                                                                                 : CUDA_SUCCESS;
}
SIM_API CUresult cuMemPrefetchAsync(CUdeviceptr devPtr, size_t count, CUdevice dstDevice, CUstream hStream)
{ return prefetch(devPtr, count, dstDevice, hStream); }
SIM_API CUresult cuMemPrefetchAsync_ptsz(CUdeviceptr devPtr, size_t count, CUdevice dstDevice, CUstream hStream)
{ return prefetch(devPtr, count, dstDevice, hStream); }
SIM_API CUresult cuMemPrefetchAsync_v2(CUdeviceptr devPtr, size_t count, CUmemLocation location, unsigned int flags,
                                       CUstream hStream)
{ return flags ? CUDA_ERROR_INVALID_VALUE : prefetch(devPtr, count, location_dev(location), hStream); }
SIM_API CUresult cuMemPrefetchAsync_v2_ptsz(CUdeviceptr devPtr, size_t count, CUmemLocation location,
                                            unsigned int flags, CUstream hStream)
{ return flags ? CUDA_ERROR_INVALID_VALUE : prefetch(devPtr, count, location_dev(location), hStream); }

/* One range attribute of a managed allocation a (a copy), as the driver
 * documents them: 4-byte ints; ACCESSED_BY fills an array of them with the
 * devices, then CU_DEVICE_INVALID. */
static CUresult range_attribute(void *data, size_t size, CUmem_range_attribute attr, const struct sim_alloc *a)
{
    if (!data) return CUDA_ERROR_INVALID_VALUE;
    int *out = data;
    switch ((int)attr) {
    case CU_MEM_RANGE_ATTRIBUTE_READ_MOSTLY:
    case CU_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION:
    case CU_MEM_RANGE_ATTRIBUTE_LAST_PREFETCH_LOCATION:
        if (size != 4) return CUDA_ERROR_INVALID_VALUE;
        *out = attr == CU_MEM_RANGE_ATTRIBUTE_READ_MOSTLY ? a->read_mostly
               : attr == CU_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION ? a->preferred : a->last_prefetch;
        return CUDA_SUCCESS;
    case CU_MEM_RANGE_ATTRIBUTE_ACCESSED_BY: {
        if (size == 0 || size % 4) return CUDA_ERROR_INVALID_VALUE;
        size_t n = size / 4, k = 0;
        for (int d = 0; d < 32 && k < n; d++)
            if (a->accessed_by & (1u << d)) out[k++] = d;
        while (k < n) out[k++] = CU_DEVICE_INVALID;
        return CUDA_SUCCESS;
    }
    default:
        return CUDA_ERROR_INVALID_VALUE;
    }
}

static CUresult find_range(CUdeviceptr p, size_t count, struct sim_alloc *a)
{
    CUresult r = sim_check_init();
    if (r) return r;
    if (count == 0 || sim_registry_find(p, count, a) != 0 || a->kind != SIM_KIND_MANAGED)
        return CUDA_ERROR_INVALID_VALUE;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuMemRangeGetAttribute(void *data, size_t dataSize, CUmem_range_attribute attribute,
                                        CUdeviceptr devPtr, size_t count)
{
    struct sim_alloc a;
    CUresult r = find_range(devPtr, count, &a);
    return r ? r : range_attribute(data, dataSize, attribute, &a);
}

SIM_API CUresult cuMemRangeGetAttributes(void **data, size_t *dataSizes, CUmem_range_attribute *attributes,
                                         size_t numAttributes, CUdeviceptr devPtr, size_t count)
{
    if (!data || !dataSizes || !attributes || numAttributes == 0) return CUDA_ERROR_INVALID_VALUE;
    struct sim_alloc a;
    CUresult r = find_range(devPtr, count, &a);
    for (size_t i = 0; !r && i < numAttributes; i++)
        r = range_attribute(data[i], dataSizes[i], attributes[i], &a);
    return r;
}

void sim_managed_freed(void) { atomic_fetch_sub(&live_managed, 1); }
