/* Device, managed and host memory: cuMemAlloc and friends, cuMemGetInfo,
 * address ranges, pointer attributes.
 *
 * Rounding (what a real driver charges, not what was asked for): up to
 * 1 MiB rounds up to 512 bytes, like the driver's sub-allocator that packs
 * small allocations into shared 2 MiB pages; larger allocations round up to
 * whole 2 MiB pages. Small allocations come from the sim's own slabs
 * (heap.c: no system call in steady state, nothing from the application's
 * malloc heap), large ones from mmap(MAP_NORESERVE), so an 80 GiB device
 * costs nothing until its memory is touched. Records come from heap.c too. */
#include "internal.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static _Atomic unsigned long long next_buffer_id = 1;
static __thread unsigned long long my_next_id, my_end_id;

/* A process-unique buffer id (CU_POINTER_ATTRIBUTE_BUFFER_ID, IPC names).
 * Each thread takes ids 1024 at a time: one shared counter bumped on every
 * allocation was the cache line two allocating threads fought over. */
static unsigned long long new_buffer_id(void)
{
    if (my_next_id == my_end_id) {
        my_next_id = atomic_fetch_add_explicit(&next_buffer_id, 1024, memory_order_relaxed);
        my_end_id = my_next_id + 1024;
    }
    return my_next_id++;
}

size_t sim_round_alloc(size_t bytes)
{
    if (bytes <= SIM_SMALL_MAX) return (bytes + SIM_SMALL_GRAIN - 1) & ~(size_t)(SIM_SMALL_GRAIN - 1);
    if (bytes > SIZE_MAX - SIM_PAGE) return 0;
    return (bytes + SIM_PAGE - 1) & ~(size_t)(SIM_PAGE - 1);
}

void *sim_map_backing(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

CUresult sim_alloc_device(struct sim_ctx *ctx, size_t bytes, enum sim_kind kind, struct sim_pool *pool,
                          struct sim_alloc **out)
{
    if (bytes == 0) return CUDA_ERROR_INVALID_VALUE;
    size_t rounded = sim_round_alloc(bytes);
    if (rounded == 0 || rounded > sim_vdev(ctx->dev)->capacity) return CUDA_ERROR_OUT_OF_MEMORY;
    if (sim_inject_alloc_failure()) return CUDA_ERROR_OUT_OF_MEMORY;
    struct sim_alloc *a = sim_record_alloc();
    if (!a) return CUDA_ERROR_OUT_OF_MEMORY;
    if (sim_vdev_charge(ctx->dev, rounded) != 0) { sim_record_free(a); return CUDA_ERROR_OUT_OF_MEMORY; }
    int mmapped = rounded > SIM_SMALL_MAX;
    void *mem = mmapped ? sim_map_backing(rounded) : sim_heap_alloc(rounded);
    if (!mem) {
        sim_vdev_release(ctx->dev, rounded);
        sim_record_free(a);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    *a = (struct sim_alloc){
        .base = (uintptr_t)mem, .size = bytes, .charged = rounded, .mapped = rounded, .dev = ctx->dev,
        .kind = (uint8_t)kind, .mmapped = (uint8_t)mmapped, .ipc_fd = -1,
        .id = new_buffer_id(), .ctx = ctx, .pool = pool,
    };
    sim_registry_insert(a);
    *out = a;
    return CUDA_SUCCESS;
}

void sim_free_record(struct sim_alloc *a)
{
    if (a->pool) sim_pool_on_free(a);
    switch (a->kind) {
    case SIM_KIND_DEVICE:
    case SIM_KIND_MANAGED:
    case SIM_KIND_HOST:
        if (a->ipc_fd >= 0) close(a->ipc_fd);
        if (a->mmapped) munmap((void *)a->base, a->mapped);
        else sim_heap_free((void *)a->base, a->mapped);
        /* (managed memory: what is resident on res_dev, managed.c) */
        if (a->charged) sim_vdev_release(a->kind == SIM_KIND_MANAGED ? a->res_dev : a->dev, a->charged);
        if (a->kind == SIM_KIND_MANAGED) sim_managed_freed();
        break;
    case SIM_KIND_IPC:
        munmap((void *)a->base, a->mapped);
        break;
    default:
        break;
    }
    sim_record_free(a);
}

#define DEVICE_KINDS ((1u << SIM_KIND_DEVICE) | (1u << SIM_KIND_MANAGED))

SIM_API CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize)
{
    if (!dptr) return CUDA_ERROR_INVALID_VALUE;
    struct sim_ctx *c;
    CUresult r = sim_ctx_current(&c);
    if (r) return r;
    struct sim_alloc *a;
    r = sim_alloc_device(c, bytesize, SIM_KIND_DEVICE, NULL, &a);
    if (r == CUDA_SUCCESS) *dptr = a->base;
    return r;
}

SIM_API CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pPitch, size_t WidthInBytes, size_t Height,
                                    unsigned int ElementSizeBytes)
{
    if (!dptr || !pPitch || WidthInBytes == 0 || Height == 0) return CUDA_ERROR_INVALID_VALUE;
    if (ElementSizeBytes != 4 && ElementSizeBytes != 8 && ElementSizeBytes != 16) return CUDA_ERROR_INVALID_VALUE;
    struct sim_ctx *c;
    CUresult r = sim_ctx_current(&c);
    if (r) return r;
    /* Rows aligned like the real driver's texture pitch (512 bytes). */
    size_t pitch = (WidthInBytes + 511) & ~(size_t)511;
    if (Height > SIZE_MAX / pitch) return CUDA_ERROR_OUT_OF_MEMORY;
    struct sim_alloc *a;
    r = sim_alloc_device(c, pitch * Height, SIM_KIND_DEVICE, NULL, &a);
    if (r == CUDA_SUCCESS) {
        *dptr = a->base;
        *pPitch = pitch;
    }
    return r;
}

SIM_API CUresult cuMemFree_v2(CUdeviceptr dptr)
{
    struct sim_ctx *c;
    CUresult r = sim_ctx_current(&c);
    if (r) return r;
    if (dptr == 0) return CUDA_SUCCESS;
    struct sim_alloc *a = sim_registry_remove(dptr, DEVICE_KINDS);
    if (!a) return CUDA_ERROR_INVALID_VALUE;
    sim_free_record(a);
    return CUDA_SUCCESS;
}

SIM_API CUresult cuMemGetInfo_v2(size_t *free_bytes, size_t *total)
{
    if (!free_bytes || !total) return CUDA_ERROR_INVALID_VALUE;
    struct sim_ctx *c;
    CUresult r = sim_ctx_current(&c);
    if (r) return r;
    uint64_t cap = sim_vdev(c->dev)->capacity, used = sim_vdev_used(c->dev);
    *total = cap;
    *free_bytes = used >= cap ? 0 : cap - used;     /* clamp: never an underflowed huge number */
    return CUDA_SUCCESS;
}

/* The 32-bit form, clamped like NVIDIA's. */
SIM_API CUresult cuMemGetInfo(unsigned int *free_bytes, unsigned int *total)
{
    size_t f, t;
    if (!free_bytes || !total) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = cuMemGetInfo_v2(&f, &t);
    if (r) return r;
    *free_bytes = f > UINT32_MAX ? UINT32_MAX : (unsigned int)f;
    *total = t > UINT32_MAX ? UINT32_MAX : (unsigned int)t;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuMemGetAddressRange_v2(CUdeviceptr *pbase, size_t *psize, CUdeviceptr dptr)
{
    struct sim_ctx *c;
    CUresult r = sim_ctx_current(&c);
    if (r) return r;
    struct sim_alloc a;
    if (sim_registry_find(dptr, 1, &a) != 0 || a.kind == SIM_KIND_HOST || a.kind == SIM_KIND_REGISTERED)
        return CUDA_ERROR_NOT_FOUND;
    if (pbase) *pbase = a.base;
    if (psize) *psize = a.size;
    return CUDA_SUCCESS;
}

/* ---- host memory: page-locked in a real driver, plain memory here, not
 * device memory (never charged). ---- */

static CUresult host_alloc(void **pp, size_t bytesize, unsigned int flags)
{
    if (!pp || bytesize == 0) return CUDA_ERROR_INVALID_VALUE;
    if (flags & ~7u) return CUDA_ERROR_INVALID_VALUE;
    struct sim_ctx *c;
    CUresult r = sim_ctx_current(&c);
    if (r) return r;
    struct sim_alloc *a = sim_record_alloc();
    if (!a) return CUDA_ERROR_OUT_OF_MEMORY;
    int mmapped = bytesize > SIM_SMALL_MAX;
    size_t len = mmapped ? (bytesize + 4095) & ~(size_t)4095 : bytesize;
    void *mem = mmapped ? sim_map_backing(len) : sim_heap_alloc(len);
    if (!mem) { sim_record_free(a); return CUDA_ERROR_OUT_OF_MEMORY; }
    *a = (struct sim_alloc){ .base = (uintptr_t)mem, .size = bytesize, .mapped = len, .dev = c->dev,
                             .kind = SIM_KIND_HOST, .mmapped = (uint8_t)mmapped, .flags = flags, .ipc_fd = -1,
                             .id = new_buffer_id(), .ctx = c };
    sim_registry_insert(a);
    *pp = mem;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuMemHostAlloc(void **pp, size_t bytesize, unsigned int Flags) { return host_alloc(pp, bytesize, Flags); }
SIM_API CUresult cuMemAllocHost_v2(void **pp, size_t bytesize) { return host_alloc(pp, bytesize, 0); }

SIM_API CUresult cuMemFreeHost(void *p)
{
    struct sim_ctx *c;
    CUresult r = sim_ctx_current(&c);
    if (r) return r;
    struct sim_alloc *a = sim_registry_remove((uintptr_t)p, 1u << SIM_KIND_HOST);
    if (!a) return CUDA_ERROR_INVALID_VALUE;
    sim_free_record(a);
    return CUDA_SUCCESS;
}

/* The page-locked host allocation (allocated or registered) holding p. */
static CUresult find_host(void *p, struct sim_alloc *a)
{
    struct sim_ctx *c;
    CUresult r = sim_ctx_current(&c);
    if (r) return r;
    if (sim_registry_find((uintptr_t)p, 1, a) != 0 || (a->kind != SIM_KIND_HOST && a->kind != SIM_KIND_REGISTERED))
        return CUDA_ERROR_INVALID_VALUE;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuMemHostGetDevicePointer_v2(CUdeviceptr *pdptr, void *p, unsigned int Flags)
{
    if (!pdptr || Flags) return CUDA_ERROR_INVALID_VALUE;
    struct sim_alloc a;
    CUresult r = find_host(p, &a);
    if (r) return r;
    *pdptr = (CUdeviceptr)(uintptr_t)p;      /* unified addressing: same address */
    return CUDA_SUCCESS;
}

SIM_API CUresult cuMemHostGetFlags(unsigned int *pFlags, void *p)
{
    if (!pFlags) return CUDA_ERROR_INVALID_VALUE;
    struct sim_alloc a;
    CUresult r = find_host(p, &a);
    if (r) return r;
    *pFlags = a.flags;
    return CUDA_SUCCESS;
}

static CUresult host_register(void *p, size_t bytesize, unsigned int Flags)
{
    if (!p || bytesize == 0 || (Flags & ~0xfu)) return CUDA_ERROR_INVALID_VALUE;
    struct sim_ctx *c;
    CUresult r = sim_ctx_current(&c);
    if (r) return r;
    struct sim_alloc probe;
    if (sim_registry_find((uintptr_t)p, 1, &probe) == 0 && probe.kind == SIM_KIND_REGISTERED)
        return CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED;
    struct sim_alloc *a = sim_record_alloc();
    if (!a) return CUDA_ERROR_OUT_OF_MEMORY;
    *a = (struct sim_alloc){ .base = (uintptr_t)p, .size = bytesize, .dev = c->dev, .kind = SIM_KIND_REGISTERED,
                             .flags = Flags, .ipc_fd = -1, .id = new_buffer_id(), .ctx = c };
    sim_registry_insert(a);
    return CUDA_SUCCESS;
}
SIM_API CUresult cuMemHostRegister(void *p, size_t bytesize, unsigned int Flags) { return host_register(p, bytesize, Flags); }
SIM_API CUresult cuMemHostRegister_v2(void *p, size_t bytesize, unsigned int Flags) { return host_register(p, bytesize, Flags); }

SIM_API CUresult cuMemHostUnregister(void *p)
{
    struct sim_ctx *c;
    CUresult r = sim_ctx_current(&c);
    if (r) return r;
    struct sim_alloc *a = sim_registry_remove((uintptr_t)p, 1u << SIM_KIND_REGISTERED);
    if (!a) return CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED;
    sim_free_record(a);
    return CUDA_SUCCESS;
}

/* ---- pointer attributes ---- */

static CUresult one_attribute(void *data, CUpointer_attribute attribute, CUdeviceptr ptr, const struct sim_alloc *a,
                              int found, int vmm_dev)
{
    if (!found && vmm_dev < 0) return CUDA_ERROR_INVALID_VALUE;
    int is_host = found && (a->kind == SIM_KIND_HOST || a->kind == SIM_KIND_REGISTERED);
    int dev = found ? a->dev : vmm_dev;
    switch ((int)attribute) {
    case CU_POINTER_ATTRIBUTE_CONTEXT: *(CUcontext *)data = found ? (CUcontext)a->ctx : NULL; break;
    case CU_POINTER_ATTRIBUTE_MEMORY_TYPE: *(unsigned int *)data = is_host ? CU_MEMORYTYPE_HOST : CU_MEMORYTYPE_DEVICE; break;
    case CU_POINTER_ATTRIBUTE_DEVICE_POINTER: *(CUdeviceptr *)data = ptr; break;
    case CU_POINTER_ATTRIBUTE_HOST_POINTER:
        if (!is_host && !(found && a->kind == SIM_KIND_MANAGED)) return CUDA_ERROR_INVALID_VALUE;
        *(void **)data = (void *)(uintptr_t)ptr;
        break;
    case CU_POINTER_ATTRIBUTE_SYNC_MEMOPS: *(unsigned int *)data = 0; break;
    case CU_POINTER_ATTRIBUTE_BUFFER_ID: *(unsigned long long *)data = found ? a->id : 0; break;
    case CU_POINTER_ATTRIBUTE_IS_MANAGED: *(unsigned int *)data = found && a->kind == SIM_KIND_MANAGED; break;
    case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL: *(int *)data = dev; break;
    case 10: /* IS_LEGACY_CUDA_IPC_CAPABLE */ *(unsigned int *)data = found && a->kind == SIM_KIND_DEVICE && !a->pool; break;
    case CU_POINTER_ATTRIBUTE_RANGE_START_ADDR: *(CUdeviceptr *)data = found ? a->base : ptr; break;
    case CU_POINTER_ATTRIBUTE_RANGE_SIZE: *(size_t *)data = found ? a->size : 0; break;
    case CU_POINTER_ATTRIBUTE_MAPPED: *(unsigned int *)data = 1; break;
    case 14: /* ALLOWED_HANDLE_TYPES */ *(unsigned long long *)data = 0; break;
    case 16: /* ACCESS_FLAGS */ *(unsigned int *)data = CU_MEM_ACCESS_FLAGS_PROT_READWRITE; break;
    case CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE: *(CUmemoryPool *)data = found ? (CUmemoryPool)a->pool : NULL; break;
    default: return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}

static int lookup(CUdeviceptr ptr, struct sim_alloc *a, int *vmm_dev)
{
    *vmm_dev = -1;
    if (sim_registry_find(ptr, 1, a) == 0) return 1;
    int d;
    if (sim_vmm_covers(ptr, 1, &d)) *vmm_dev = d;
    return 0;
}

SIM_API CUresult cuPointerGetAttribute(void *data, CUpointer_attribute attribute, CUdeviceptr ptr)
{
    if (!data) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = sim_check_init();
    if (r) return r;
    struct sim_alloc a;
    int vmm_dev, found = lookup(ptr, &a, &vmm_dev);
    return one_attribute(data, attribute, ptr, &a, found, vmm_dev);
}

SIM_API CUresult cuPointerGetAttributes(unsigned int numAttributes, CUpointer_attribute *attributes, void **data,
                                        CUdeviceptr ptr)
{
    if (!attributes || !data) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = sim_check_init();
    if (r) return r;
    struct sim_alloc a;
    int vmm_dev, found = lookup(ptr, &a, &vmm_dev);
    for (unsigned i = 0; i < numAttributes; i++) {
        if (!data[i]) continue;
        if (!found && vmm_dev < 0) {
            /* Unknown memory is not an error here: a pageable host pointer. */
            switch ((int)attributes[i]) {
            case CU_POINTER_ATTRIBUTE_MEMORY_TYPE: *(unsigned int *)data[i] = 0; continue;
            case CU_POINTER_ATTRIBUTE_CONTEXT: *(CUcontext *)data[i] = NULL; continue;
            case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL: *(int *)data[i] = -2; continue;
            default: break;
            }
        }
        if (one_attribute(data[i], attributes[i], ptr, &a, found, vmm_dev) != CUDA_SUCCESS) {
            if (!found && vmm_dev < 0) continue;
            return CUDA_ERROR_INVALID_VALUE;
        }
    }
    return CUDA_SUCCESS;
}
