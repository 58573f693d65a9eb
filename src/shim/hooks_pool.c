/* Stream-ordered allocation (cuMemAllocAsync, cuMemAllocFromPoolAsync,
 * cuMemFreeAsync) charges the memory *pool*, not the allocation: a pool keeps
 * freed blocks reserved on the device until it is trimmed (by
 * cuMemPoolTrimTo, or at a synchronisation down to its release threshold),
 * so what the device really holds is the pool's reserved size
 * (CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT). Every hooked pool operation
 * settles the group's charge for that pool to that figure.
 *
 * An allocation reserves its size (at least the pool's 2 MiB growth step)
 * before the driver call, so the pool can never grow past the limit; after
 * the call the charge is settled to the pool's reserved size. Between hooked
 * operations a pool trimmed by a synchronisation stays charged at its old
 * size (an over-count, never an under-count) until its next operation.
 *
 * Pools are few: a small table under a process-local mutex. */
#include "account.h"

#include <pthread.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))
#define MAX_POOLS 64
#define POOL_STEP (2u << 20)

struct pool_rec {
    CUmemoryPool pool;  /* NULL = free entry */
    int gd;
    uint64_t charged;   /* what the group is charged for this pool */
};

static struct pool_rec pools[MAX_POOLS];
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;

/* A forked child has no pools (driver state does not survive fork). */
void shim_pools_fork_child(void)
{
    memset(pools, 0, sizeof pools);
    pthread_mutex_init(&pool_lock, NULL);
}

static struct pool_rec *pool_find(CUmemoryPool pool, int gd, int create)
{
    struct pool_rec *free_rec = NULL;
    for (int i = 0; i < MAX_POOLS; i++) {
        if (pools[i].pool == pool)
            return &pools[i];
        if (!pools[i].pool && !free_rec)
            free_rec = &pools[i];
    }
    if (!create || !free_rec)
        return NULL;
    free_rec->pool = pool;
    free_rec->gd = gd;
    free_rec->charged = 0;
    return free_rec;
}

static uint64_t pool_attr(CUmemoryPool pool, CUmemPool_attribute attr, uint64_t fallback)
{
    cuuint64_t v = 0;
    if (!real.cuMemPoolGetAttribute || real.cuMemPoolGetAttribute(pool, attr, &v))
        return fallback;
    return v;
}

/* Brings the pool's charge to what the driver says it reserves, on top of
 * `held` bytes this caller already reserved for it (which it consumes).
 * Returns CUDA_ERROR_OUT_OF_MEMORY, with nothing changed beyond `held`'s
 * release, when the pool grew past what the group can take. */
static CUresult pool_settle(struct pool_rec *r, uint64_t held)
{
    uint64_t now = pool_attr(r->pool, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT, r->charged + held);
    if (now >= r->charged) {
        uint64_t growth = now - r->charged;
        if (growth > held && shim_reserve(r->gd, growth - held) != CUDA_SUCCESS) {
            shim_unreserve(r->gd, held);
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
        if (growth < held)
            shim_unreserve(r->gd, held - growth);
    } else {
        shim_unreserve(r->gd, r->charged - now + held);
    }
    r->charged = now;
    return CUDA_SUCCESS;
}


/* pool == NULL: the current device's current pool (cuMemAllocAsync). */
static CUresult pool_alloc(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool, CUstream stream,
                           CUresult (*call)(CUdeviceptr *, size_t, CUmemoryPool, CUstream, void *), void *fn,
                           const void *site)
{
    int m = shim_mode();
    if (m == SHIM_FAIL_CLOSED)
        return CUDA_ERROR_OUT_OF_MEMORY;
    int gd = m == SHIM_ENFORCE ? shim_current_gd() : -1;
    CUmemoryPool p = pool;
    if (gd >= 0 && !p) {
        CUdevice dev = 0;
        if (g.ncu > 1 && real.cuCtxGetDevice(&dev) != CUDA_SUCCESS)
            gd = -1;
        else if (!real.cuDeviceGetMemPool || real.cuDeviceGetMemPool(&p, dev) != CUDA_SUCCESS)
            gd = -1;
    }
    if (gd < 0)
        return call(dptr, bytesize, pool, stream, fn);

    uint64_t want = shim_charge_size(bytesize);
    if (want < POOL_STEP)
        want = POOL_STEP;
    pthread_mutex_lock(&pool_lock);
    struct pool_rec *r = pool_find(p, gd, 1);
    CUresult res;
    if (!r) {
        shim_log(LOG_WARN, "more than %d memory pools: allocation passed through uncharged", MAX_POOLS);
        pthread_mutex_unlock(&pool_lock);
        return call(dptr, bytesize, pool, stream, fn);
    }
    /* The pool may have shrunk since its last operation (a sync trims it).
     * What it holds but does not use can serve this allocation without
     * growing: reserve only the rest (settling catches any growth anyway). */
    pool_settle(r, 0);
    uint64_t used = pool_attr(p, CU_MEMPOOL_ATTR_USED_MEM_CURRENT, r->charged);
    uint64_t idle = r->charged > used ? r->charged - used : 0;
    want = want > idle ? want - idle : 0;
    res = want ? shim_reserve(gd, want) : CUDA_SUCCESS;
    if (res == CUDA_SUCCESS) {
        res = call(dptr, bytesize, pool, stream, fn);
        if (res != CUDA_SUCCESS) {
            shim_unreserve(gd, want);
        } else if (pool_settle(r, want) != CUDA_SUCCESS) {
            /* The pool grew by more than its step and that does not fit. */
            PFN_cuMemFreeAsync_v11020 fr = (PFN_cuMemFreeAsync_v11020)real.cuMemFreeAsync;
            fr(*dptr, stream);
            res = CUDA_ERROR_OUT_OF_MEMORY;
        } else {
            uint64_t old;
            at_insert(&live_allocs, *dptr,
                      alloc_pack_pool(shim_charge_size(bytesize), AK_ASYNC, GM_LANE_SHARED, gd, (unsigned)(r - pools)),
                      (uint64_t)(uintptr_t)site, &old);
            shim_count(gd, 0);
        }
    }
    pthread_mutex_unlock(&pool_lock);
    return res;
}

static CUresult call_async(CUdeviceptr *d, size_t n, CUmemoryPool p, CUstream s, void *fn)
{
    (void)p;
    return ((PFN_cuMemAllocAsync_v11020)fn)(d, n, s);
}
static CUresult call_from_pool(CUdeviceptr *d, size_t n, CUmemoryPool p, CUstream s, void *fn)
{
    return ((PFN_cuMemAllocFromPoolAsync_v11020)fn)(d, n, p, s);
}

EXPORT CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize, CUstream hStream)
{
    return pool_alloc(dptr, bytesize, NULL, hStream, call_async, real.cuMemAllocAsync, __builtin_return_address(0));
}
EXPORT CUresult cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUstream hStream)
{
    return pool_alloc(dptr, bytesize, NULL, hStream, call_async, real.cuMemAllocAsync_ptsz, __builtin_return_address(0));
}
EXPORT CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool, CUstream hStream)
{
    return pool_alloc(dptr, bytesize, pool, hStream, call_from_pool, real.cuMemAllocFromPoolAsync, __builtin_return_address(0));
}
EXPORT CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool,
                                             CUstream hStream)
{
    return pool_alloc(dptr, bytesize, pool, hStream, call_from_pool, real.cuMemAllocFromPoolAsync_ptsz, __builtin_return_address(0));
}

/* The block goes back to its pool, which may keep it: the charge follows
 * the pool's reserved size, settled after the free. */
static CUresult pool_free(CUdeviceptr dptr, CUstream stream, PFN_cuMemFreeAsync_v11020 fn)
{
    uint64_t v;
    struct gm_proc_slot *s = shim_hot_slot();
    if (!s || !at_remove(&live_allocs, dptr, &v))
        return fn(dptr, stream);
    CUresult r = fn(dptr, stream);
    if (r != CUDA_SUCCESS) {
        at_put_back(&live_allocs, dptr, v);
        return r;
    }
    shim_count(alloc_gd(v), 1);
    pthread_mutex_lock(&pool_lock);
    struct pool_rec *rec = &pools[alloc_pool(v) % MAX_POOLS];
    if (rec->pool)
        pool_settle(rec, 0);
    pthread_mutex_unlock(&pool_lock);
    return r;
}

EXPORT CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream hStream)
{
    return pool_free(dptr, hStream, (PFN_cuMemFreeAsync_v11020)real.cuMemFreeAsync);
}
EXPORT CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream hStream)
{
    return pool_free(dptr, hStream, (PFN_cuMemFreeAsync_v11020)real.cuMemFreeAsync_ptsz);
}

EXPORT CUresult cuMemPoolTrimTo(CUmemoryPool pool, size_t minBytesToKeep)
{
    CUresult r = ((PFN_cuMemPoolTrimTo_v11020)real.cuMemPoolTrimTo)(pool, minBytesToKeep);
    if (r != CUDA_SUCCESS || atomic_load(&g.mode) != SHIM_ENFORCE || !g.slot)
        return r;
    pthread_mutex_lock(&pool_lock);
    struct pool_rec *rec = pool_find(pool, -1, 0);
    if (rec)
        pool_settle(rec, 0);
    pthread_mutex_unlock(&pool_lock);
    return r;
}

EXPORT CUresult cuMemPoolDestroy(CUmemoryPool pool)
{
    CUresult r = ((PFN_cuMemPoolDestroy_v11020)real.cuMemPoolDestroy)(pool);
    if (r != CUDA_SUCCESS || atomic_load(&g.mode) != SHIM_ENFORCE || !g.slot)
        return r;
    pthread_mutex_lock(&pool_lock);
    struct pool_rec *rec = pool_find(pool, -1, 0);
    if (rec) {
        shim_unreserve(rec->gd, rec->charged);
        rec->pool = NULL;
        rec->charged = 0;
    }
    pthread_mutex_unlock(&pool_lock);
    return r;
}
