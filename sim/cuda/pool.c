/* Stream-ordered allocation and memory pools (cuMemAllocAsync, pools and
 * their attributes).
 *
 * Like the real driver, a pool keeps freed blocks reserved (still charged to
 * the device) and reuses them; at synchronisation (stream, event or context)
 * it gives back what exceeds its release threshold (default 0: everything
 * unused), and cuMemPoolTrimTo gives back on request. RESERVED_MEM_CURRENT
 * is what the pool holds from the device, USED_MEM_CURRENT what the
 * application holds; both have high-water marks. Reuse is by exact rounded
 * size, which is simpler than the driver's but charges the same bytes.
 * GPUMEM_SIM_POOL_GROWTH=SIZE makes a pool grow in steps of SIZE (the rest
 * of a step reserved but unused until trimmed), like a driver with a
 * coarser growth step than the block. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define POOL_MAGIC 0x504f4f4cu

struct CUmemPoolHandle_st { int unused; };   /* opaque to applications; see struct sim_pool */

struct sim_pool {
    uint32_t magic;
    int dev;
    int is_default;
    _Atomic int destroyed;
    pthread_mutex_t lock;
    uint64_t threshold, reserved, used, reserved_high, used_high, max_size;
    uint64_t slack;                 /* reserved past its blocks (GPUMEM_SIM_POOL_GROWTH), idle until trimmed */
    int reuse[3];
    unsigned access[SIM_MAX_DEVICES];
    CUmemAllocationHandleType handle_types;
    struct sim_alloc *cache;        /* freed blocks, still charged */
    struct sim_pool *next_pool;
};

static struct sim_pool default_pools[SIM_MAX_DEVICES];
static struct sim_pool *current_pool[SIM_MAX_DEVICES];
static struct sim_pool *all_pools;
static pthread_mutex_t pools_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t pools_once = PTHREAD_ONCE_INIT;

static void pool_init(struct sim_pool *p, int dev, int is_default)
{
    memset(p, 0, sizeof *p);
    p->magic = POOL_MAGIC;
    p->dev = dev;
    p->is_default = is_default;
    p->reuse[0] = p->reuse[1] = p->reuse[2] = 1;
    p->access[dev] = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    pthread_mutex_init(&p->lock, NULL);
}

static void pools_init(void)
{
    for (int d = 0; d < SIM_MAX_DEVICES; d++) {
        pool_init(&default_pools[d], d, 1);
        current_pool[d] = &default_pools[d];
        default_pools[d].next_pool = d + 1 < SIM_MAX_DEVICES ? &default_pools[d + 1] : NULL;
    }
    all_pools = &default_pools[0];
}

struct sim_pool *sim_pool_default(int dev)
{
    pthread_once(&pools_once, pools_init);
    return &default_pools[dev];
}

static CUresult pool_check(CUmemoryPool h, struct sim_pool **out)
{
    CUresult r = sim_check_init();
    if (r) return r;
    struct sim_pool *p = (struct sim_pool *)h;
    if (!p || p->magic != POOL_MAGIC || atomic_load(&p->destroyed)) return CUDA_ERROR_INVALID_VALUE;
    *out = p;
    return CUDA_SUCCESS;
}

static void bump_high(struct sim_pool *p)
{
    if (p->used > p->used_high) p->used_high = p->used;
    if (p->reserved > p->reserved_high) p->reserved_high = p->reserved;
}

/* Releases cached blocks until the pool holds at most `keep` bytes. */
static void trim(struct sim_pool *p, uint64_t keep)
{
    struct sim_alloc *victims = NULL;
    pthread_mutex_lock(&p->lock);
    uint64_t slack = p->reserved > keep ? p->reserved - keep : 0;
    if (slack > p->slack) slack = p->slack;
    p->slack -= slack;
    p->reserved -= slack;
    if (slack) sim_vdev_release(p->dev, slack);
    while (p->cache && p->reserved > keep) {
        struct sim_alloc *a = p->cache;
        p->cache = a->next;
        p->reserved -= a->charged;
        a->next = victims;
        victims = a;
    }
    pthread_mutex_unlock(&p->lock);
    while (victims) {
        struct sim_alloc *a = victims;
        victims = a->next;
        a->pool = NULL;              /* already taken off the pool's counters */
        sim_free_record(a);
    }
}

void sim_pools_trim_all(void)
{
    pthread_once(&pools_once, pools_init);
    pthread_mutex_lock(&pools_lock);
    for (struct sim_pool *p = all_pools; p; p = p->next_pool)
        if (p->cache || p->slack) trim(p, p->threshold > p->used ? p->threshold : p->used);
    pthread_mutex_unlock(&pools_lock);
}

void sim_pool_on_free(struct sim_alloc *a)
{
    struct sim_pool *p = a->pool;
    pthread_mutex_lock(&p->lock);
    p->used -= a->charged;
    p->reserved -= a->charged;
    pthread_mutex_unlock(&p->lock);
}

static CUresult alloc_from(struct sim_pool *p, CUdeviceptr *dptr, size_t size, CUstream s)
{
    if (!dptr || size == 0) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = sim_stream_check(s);
    if (r) return r;
    struct sim_ctx *c;
    r = sim_ctx_current(&c);
    if (r) return r;
    if (c->dev != p->dev) return CUDA_ERROR_INVALID_VALUE;
    size_t rounded = sim_round_alloc(size);
    pthread_mutex_lock(&p->lock);
    for (struct sim_alloc **pp = &p->cache; *pp; pp = &(*pp)->next) {
        struct sim_alloc *a = *pp;
        if (a->charged != rounded) continue;
        *pp = a->next;
        p->used += rounded;
        bump_high(p);
        pthread_mutex_unlock(&p->lock);
        a->size = size;
        a->ctx = c;
        sim_registry_insert(a);
        *dptr = a->base;
        return CUDA_SUCCESS;
    }
    if (p->max_size && p->reserved + rounded > p->max_size) {
        pthread_mutex_unlock(&p->lock);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    pthread_mutex_unlock(&p->lock);
    struct sim_alloc *a;
    r = sim_alloc_device(c, size, SIM_KIND_DEVICE, p, &a);
    if (r == CUDA_ERROR_OUT_OF_MEMORY && p->cache) {
        trim(p, 0);                  /* like the driver: give back cached blocks, retry */
        r = sim_alloc_device(c, size, SIM_KIND_DEVICE, p, &a);
    }
    if (r) return r;
    /* A coarser growth step: the rest of the step is reserved, unused. */
    uint64_t g = sim_cfg.pool_growth, extra = 0;
    if (g) {
        extra = (a->charged + g - 1) / g * g - a->charged;
        if (sim_vdev_charge(p->dev, extra) != 0) extra = 0;
    }
    pthread_mutex_lock(&p->lock);
    p->used += a->charged;
    p->reserved += a->charged + extra;
    p->slack += extra;
    bump_high(p);
    pthread_mutex_unlock(&p->lock);
    *dptr = a->base;
    return CUDA_SUCCESS;
}

static CUresult alloc_async(CUdeviceptr *dptr, size_t size, CUstream s)
{
    struct sim_ctx *c;
    CUresult r = sim_ctx_current(&c);
    if (r) return r;
    pthread_once(&pools_once, pools_init);
    return alloc_from(current_pool[c->dev], dptr, size, s);
}
SIM_API CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t size, CUstream s) { return alloc_async(dptr, size, s); }
SIM_API CUresult cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t size, CUstream s) { return alloc_async(dptr, size, s); }

static CUresult alloc_from_pool(CUdeviceptr *dptr, size_t size, CUmemoryPool pool, CUstream s)
{
    struct sim_pool *p;
    CUresult r = pool_check(pool, &p);
    return r ? r : alloc_from(p, dptr, size, s);
}
SIM_API CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t size, CUmemoryPool pool, CUstream s)
{ return alloc_from_pool(dptr, size, pool, s); }
SIM_API CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t size, CUmemoryPool pool, CUstream s)
{ return alloc_from_pool(dptr, size, pool, s); }

static CUresult free_async(CUdeviceptr dptr, CUstream s)
{
    CUresult r = sim_stream_check(s);
    if (r) return r;
    struct sim_alloc *a = sim_registry_remove(dptr, (1u << SIM_KIND_DEVICE) | (1u << SIM_KIND_MANAGED));
    if (!a) return CUDA_ERROR_INVALID_VALUE;
    struct sim_pool *p = a->pool;
    if (!p) { sim_free_record(a); return CUDA_SUCCESS; }
    pthread_mutex_lock(&p->lock);
    p->used -= a->charged;
    a->next = p->cache;              /* stays reserved until trimmed */
    p->cache = a;
    pthread_mutex_unlock(&p->lock);
    return CUDA_SUCCESS;
}
SIM_API CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream s) { return free_async(dptr, s); }
SIM_API CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream s) { return free_async(dptr, s); }

SIM_API CUresult cuMemPoolTrimTo(CUmemoryPool pool, size_t minBytesToKeep)
{
    struct sim_pool *p;
    CUresult r = pool_check(pool, &p);
    if (r) return r;
    trim(p, minBytesToKeep);
    return CUDA_SUCCESS;
}

SIM_API CUresult cuMemPoolSetAttribute(CUmemoryPool pool, CUmemPool_attribute attr, void *value)
{
    struct sim_pool *p;
    CUresult r = pool_check(pool, &p);
    if (r) return r;
    if (!value) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&p->lock);
    switch ((int)attr) {
    case CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES:
    case CU_MEMPOOL_ATTR_REUSE_ALLOW_OPPORTUNISTIC:
    case CU_MEMPOOL_ATTR_REUSE_ALLOW_INTERNAL_DEPENDENCIES:
        p->reuse[attr - 1] = *(int *)value != 0;
        break;
    case CU_MEMPOOL_ATTR_RELEASE_THRESHOLD: p->threshold = *(cuuint64_t *)value; break;
    case CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH:
        if (*(cuuint64_t *)value != 0) r = CUDA_ERROR_INVALID_VALUE;
        else p->reserved_high = p->reserved;
        break;
    case CU_MEMPOOL_ATTR_USED_MEM_HIGH:
        if (*(cuuint64_t *)value != 0) r = CUDA_ERROR_INVALID_VALUE;
        else p->used_high = p->used;
        break;
    default: r = CUDA_ERROR_INVALID_VALUE; break;
    }
    pthread_mutex_unlock(&p->lock);
    return r;
}

SIM_API CUresult cuMemPoolGetAttribute(CUmemoryPool pool, CUmemPool_attribute attr, void *value)
{
    struct sim_pool *p;
    CUresult r = pool_check(pool, &p);
    if (r) return r;
    if (!value) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&p->lock);
    switch ((int)attr) {
    case CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES:
    case CU_MEMPOOL_ATTR_REUSE_ALLOW_OPPORTUNISTIC:
    case CU_MEMPOOL_ATTR_REUSE_ALLOW_INTERNAL_DEPENDENCIES:
        *(int *)value = p->reuse[attr - 1];
        break;
    case CU_MEMPOOL_ATTR_RELEASE_THRESHOLD: *(cuuint64_t *)value = p->threshold; break;
    case CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT: *(cuuint64_t *)value = p->reserved; break;
    case CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH: *(cuuint64_t *)value = p->reserved_high; break;
    case CU_MEMPOOL_ATTR_USED_MEM_CURRENT: *(cuuint64_t *)value = p->used; break;
    case CU_MEMPOOL_ATTR_USED_MEM_HIGH: *(cuuint64_t *)value = p->used_high; break;
    default: r = CUDA_ERROR_INVALID_VALUE; break;
    }
    pthread_mutex_unlock(&p->lock);
    return r;
}

SIM_API CUresult cuMemPoolSetAccess(CUmemoryPool pool, const CUmemAccessDesc *map, size_t count)
{
    struct sim_pool *p;
    CUresult r = pool_check(pool, &p);
    if (r) return r;
    if (!map && count) return CUDA_ERROR_INVALID_VALUE;
    for (size_t i = 0; i < count; i++) {
        if (map[i].location.type != CU_MEM_LOCATION_TYPE_DEVICE) return CUDA_ERROR_INVALID_VALUE;
        if (sim_check_device(map[i].location.id)) return CUDA_ERROR_INVALID_DEVICE;
        if (map[i].location.id == p->dev && map[i].flags != CU_MEM_ACCESS_FLAGS_PROT_READWRITE)
            return CUDA_ERROR_INVALID_VALUE;       /* the owner always has access */
    }
    for (size_t i = 0; i < count; i++) p->access[map[i].location.id] = map[i].flags;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuMemPoolGetAccess(CUmemAccess_flags *flags, CUmemoryPool memPool, CUmemLocation *location)
{
    struct sim_pool *p;
    CUresult r = pool_check(memPool, &p);
    if (r) return r;
    if (!flags || !location || location->type != CU_MEM_LOCATION_TYPE_DEVICE) return CUDA_ERROR_INVALID_VALUE;
    if (sim_check_device(location->id)) return CUDA_ERROR_INVALID_DEVICE;
    *flags = (CUmemAccess_flags)p->access[location->id];
    return CUDA_SUCCESS;
}

SIM_API CUresult cuMemPoolCreate(CUmemoryPool *pool, const CUmemPoolProps *props)
{
    if (!pool || !props) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = sim_check_init();
    if (r) return r;
    if (props->allocType != CU_MEM_ALLOCATION_TYPE_PINNED || props->location.type != CU_MEM_LOCATION_TYPE_DEVICE)
        return CUDA_ERROR_INVALID_VALUE;
    if (props->handleTypes & ~(unsigned)CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR) return CUDA_ERROR_NOT_SUPPORTED;
    if (sim_check_device(props->location.id)) return CUDA_ERROR_INVALID_DEVICE;
    pthread_once(&pools_once, pools_init);
    struct sim_pool *p = malloc(sizeof *p);
    if (!p) return CUDA_ERROR_OUT_OF_MEMORY;
    pool_init(p, props->location.id, 0);
    p->max_size = props->maxSize;
    p->handle_types = props->handleTypes;
    pthread_mutex_lock(&pools_lock);
    p->next_pool = all_pools;
    all_pools = p;
    pthread_mutex_unlock(&pools_lock);
    *pool = (CUmemoryPool)p;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuMemPoolDestroy(CUmemoryPool pool)
{
    struct sim_pool *p;
    CUresult r = pool_check(pool, &p);
    if (r) return r;
    if (p->is_default) return CUDA_ERROR_INVALID_VALUE;
    trim(p, 0);
    atomic_store(&p->destroyed, 1);   /* kept in the list: live blocks still point at it */
    pthread_mutex_lock(&pools_lock);
    if (current_pool[p->dev] == p) current_pool[p->dev] = &default_pools[p->dev];
    pthread_mutex_unlock(&pools_lock);
    return CUDA_SUCCESS;
}

SIM_API CUresult cuDeviceGetDefaultMemPool(CUmemoryPool *pool_out, CUdevice dev)
{
    if (!pool_out) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = sim_check_device(dev);
    if (r) return r;
    *pool_out = (CUmemoryPool)sim_pool_default(dev);
    return CUDA_SUCCESS;
}

SIM_API CUresult cuDeviceGetMemPool(CUmemoryPool *pool, CUdevice dev)
{
    if (!pool) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = sim_check_device(dev);
    if (r) return r;
    pthread_once(&pools_once, pools_init);
    pthread_mutex_lock(&pools_lock);
    *pool = (CUmemoryPool)current_pool[dev];
    pthread_mutex_unlock(&pools_lock);
    return CUDA_SUCCESS;
}

SIM_API CUresult cuDeviceSetMemPool(CUdevice dev, CUmemoryPool pool)
{
    CUresult r = sim_check_device(dev);
    if (r) return r;
    struct sim_pool *p;
    r = pool_check(pool, &p);
    if (r) return r;
    if (p->dev != dev) return CUDA_ERROR_INVALID_DEVICE;
    pthread_mutex_lock(&pools_lock);
    current_pool[dev] = p;
    pthread_mutex_unlock(&pools_lock);
    return CUDA_SUCCESS;
}

/* v13000 forms keyed by a location; only device locations have pools here. */
static CUresult location_device(const CUmemLocation *loc, CUmemAllocationType type, CUdevice *dev)
{
    if (!loc || type != CU_MEM_ALLOCATION_TYPE_PINNED) return CUDA_ERROR_INVALID_VALUE;
    if (loc->type != CU_MEM_LOCATION_TYPE_DEVICE) return CUDA_ERROR_NOT_SUPPORTED;
    *dev = loc->id;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuMemGetDefaultMemPool(CUmemoryPool *pool_out, CUmemLocation *location, CUmemAllocationType type)
{
    CUdevice d;
    CUresult r = location_device(location, type, &d);
    return r ? r : cuDeviceGetDefaultMemPool(pool_out, d);
}

SIM_API CUresult cuMemGetMemPool(CUmemoryPool *pool, CUmemLocation *location, CUmemAllocationType type)
{
    CUdevice d;
    CUresult r = location_device(location, type, &d);
    return r ? r : cuDeviceGetMemPool(pool, d);
}

SIM_API CUresult cuMemSetMemPool(CUmemLocation *location, CUmemAllocationType type, CUmemoryPool pool)
{
    CUdevice d;
    CUresult r = location_device(location, type, &d);
    return r ? r : cuDeviceSetMemPool(d, pool);
}
