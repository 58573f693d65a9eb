/* Stream-ordered allocation (cuMemAllocAsync, cuMemAllocFromPoolAsync,
 * cuMemFreeAsync) charges the memory *pool*, not the allocation: a pool keeps
 * freed blocks reserved on the device until it is trimmed (by
 * cuMemPoolTrimTo, or at a synchronisation down to its release threshold),
 * so what the device really holds is the pool's reserved size
 * (CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT). Every hooked pool operation
 * settles the group's charge for that pool to that figure.
 *
 * An allocation reserves its whole size (at least the pool's 2 MiB growth
 * step; when that does not fit, the pool's idle bytes are trimmed first)
 * before the driver call, then settles to the pool's reserved size. When
 * the pool grew by more than that and the growth does not fit, the
 * allocation is freed back, the pool trimmed to what was charged, and the
 * caller gets CUDA_ERROR_OUT_OF_MEMORY; if the driver still
 * holds more than the group can take, the charge follows the driver anyway
 * and every further allocation is refused until it is back under the limit
 * (shim_charge_over). Between hooked operations a pool trimmed by a
 * synchronisation stays charged at its old size (an over-count, never an
 * under-count) until its next operation.
 *
 * The pool table is static (MAX_POOLS records, none freed but by
 * cuMemPoolDestroy); a pool that finds it full is refused, never passed
 * through uncharged. pool_lock is never held across an allocation or a
 * free: only across the pool attribute queries of a settle, so that two
 * settles of one pool cannot apply stale figures out of order. Reservations
 * of allocations in flight are in their record's `inflight`. */
#include "account.h"

#include <pthread.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))
#define MAX_POOLS (1u << ALLOC_POOL_BITS)
#define POOL_STEP (2u << 20)

struct pool_rec {
    CUmemoryPool pool;  /* NULL = free record */
    int gd;
    uint64_t charged;   /* what the group is charged for the pool's reserved size */
    uint64_t inflight;  /* reserved by allocations now inside the driver */
    /* A destroyed pool's allocations still live (the driver frees the pool
     * once they are freed): the record and its charge stay until then. */
    uint32_t zombie_allocs;
};

static struct pool_rec pools[MAX_POOLS];
static unsigned pools_hw;   /* records [0, pools_hw) have been used */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int warned_full, warned_over;

/* A forked child has no pools (driver state does not survive fork). */
void shim_pools_fork_child(void)
{
    memset(pools, 0, sizeof pools);
    pools_hw = 0;
    pthread_mutex_init(&pool_lock, NULL);
}

void shim_charge_over(int gd, uint64_t bytes, const char *what)
{
    struct gm_proc_slot *s = g.slot;
    if (!s || !bytes)
        return;
    atomic_fetch_add(&s->cell[GM_CELL_INDEX(GM_LANE_SHARED, gd)].charged, bytes);
    /* Every thread of this process meets the group's sum at its next
     * allocation (as after `gpumem limit`). */
    for (int l = 0; l < GM_LANES; l++)
        atomic_store(&s->cell[GM_CELL_INDEX(l, gd)].cap, 0);
    if (!atomic_exchange(&warned_over, 1))
        shim_log(LOG_ERROR,
                 "%s holds %llu bytes more than the group could be charged: charged anyway; "
                 "allocations are refused until the group is back under its limit",
                 what, (unsigned long long)bytes);
}

CUresult shim_settle(int gd, uint64_t *charged, uint64_t now, uint64_t held)
{
    uint64_t have = *charged + held;
    if (now > have) {
        if (shim_reserve(gd, now - have) != CUDA_SUCCESS) {
            shim_unreserve(gd, held);
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
    } else if (have > now) {
        shim_unreserve(gd, have - now);
    }
    *charged = now;
    return CUDA_SUCCESS;
}

static struct pool_rec *pool_find(CUmemoryPool pool)
{
    for (unsigned i = 0; i < pools_hw; i++)
        if (pools[i].pool == pool)
            return &pools[i];
    return NULL;
}

static struct pool_rec *pool_add(CUmemoryPool pool, int gd)
{
    struct pool_rec *r = NULL;
    for (unsigned i = 0; i < pools_hw && !r; i++)
        if (!pools[i].pool && !pools[i].zombie_allocs)
            r = &pools[i];
    if (!r && pools_hw < MAX_POOLS)
        r = &pools[pools_hw++];
    if (r) {
        r->pool = pool;
        r->gd = gd;
        r->charged = 0;
        r->inflight = 0;
    }
    return r;
}

/* The pool's attribute; 1 when the driver did not answer. */
static int pool_attr(CUmemoryPool pool, CUmemPool_attribute attr, uint64_t *out)
{
    cuuint64_t v = 0;
    if (!real.cuMemPoolGetAttribute || real.cuMemPoolGetAttribute(pool, attr, &v) != CUDA_SUCCESS)
        return 1;
    *out = v;
    return 0;
}

/* Brings the pool's charge to what the driver says it reserves, on top of
 * `held` bytes this caller reserved for it (consumed). With pool_lock held.
 * CUDA_ERROR_OUT_OF_MEMORY: the pool grew past what the group can take
 * (nothing changed beyond `held`'s release). A driver that does not answer
 * leaves the charge where it was plus `held` (an over-count). */
static CUresult pool_settle(struct pool_rec *r, uint64_t held)
{
    uint64_t now;
    if (pool_attr(r->pool, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT, &now))
        now = r->charged + held;
    return shim_settle(r->gd, &r->charged, now, held);
}

/* A settle by anyone but an allocation that just grew the pool. Growth it
 * finds belongs to an allocation still in flight (whose own settle will
 * cover it, or free it back) unless none is: then nothing will, and the
 * driver's figure is charged anyway. */
static void pool_settle_other(struct pool_rec *r)
{
    if (pool_settle(r, 0) == CUDA_SUCCESS || r->inflight)
        return;
    uint64_t now;
    if (pool_attr(r->pool, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT, &now) || now <= r->charged)
        return;
    shim_charge_over(r->gd, now - r->charged, "a memory pool");
    r->charged = now;
}

/* pool == NULL: the current device's current pool (cuMemAllocAsync). */
static CUresult pool_alloc(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool, CUstream stream,
                           CUresult (*call)(CUdeviceptr *, size_t, CUmemoryPool, CUstream, void *), void *fn,
                           const void *site)
{
    int m = shim_mode();
    if (m == SHIM_FAIL_CLOSED)
        return CUDA_ERROR_OUT_OF_MEMORY;
    int gd = m == SHIM_ENFORCE ? shim_current_gd() : SHIM_GD_NONE;
    CUmemoryPool p = pool;
    if (gd >= 0 && !p) {
        CUdevice dev = 0;
        if (!real.cuDeviceGetMemPool)
            gd = SHIM_GD_REFUSE; /* which pool grows cannot be known */
        else if ((shim_ncu() > 1 && real.cuCtxGetDevice(&dev) != CUDA_SUCCESS) ||
                 real.cuDeviceGetMemPool(&p, dev) != CUDA_SUCCESS)
            gd = SHIM_GD_NONE; /* no context: the driver refuses the call itself */
    }
    if (gd == SHIM_GD_REFUSE)
        return CUDA_ERROR_OUT_OF_MEMORY;
    if (gd < 0)
        return call(dptr, bytesize, pool, stream, fn);

    uint64_t want = shim_charge_size(bytesize);
    if (want < POOL_STEP)
        want = POOL_STEP;
    pthread_mutex_lock(&pool_lock);
    struct pool_rec *r = pool_find(p);
    if (!r && !(r = pool_add(p, gd))) {
        pthread_mutex_unlock(&pool_lock);
        if (!atomic_exchange(&warned_full, 1))
            shim_log(LOG_ERROR, "more than %u memory pools in use: allocations from further pools are refused",
                     MAX_POOLS);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    /* The pool may have shrunk since its last operation (a sync trims it).
     * The allocation reserves its whole size, idle bytes or not: the
     * driver may not be able to use them (a block of another size), and
     * the pool would then grow past the limit before a settle could see
     * it. When that does not fit and the pool holds idle bytes, they are
     * given back first (as the driver does before it fails an
     * allocation). */
    pool_settle_other(r);
    uint64_t used = r->charged;
    pool_attr(p, CU_MEMPOOL_ATTR_USED_MEM_CURRENT, &used);
    if (used < r->charged && real.cuMemPoolTrimTo) {
        uint64_t room = UINT64_MAX, total = UINT64_MAX;
        shim_view(gd, &room, &total);
        if (want > room) {
            pthread_mutex_unlock(&pool_lock);
            ((PFN_cuMemPoolTrimTo_v11020)real.cuMemPoolTrimTo)(p, used);
            pthread_mutex_lock(&pool_lock);
            pool_settle_other(r);
        }
    }
    CUresult res = shim_reserve(gd, want);
    if (res != CUDA_SUCCESS) {
        pthread_mutex_unlock(&pool_lock);
        return res;
    }
    r->inflight += want;
    pthread_mutex_unlock(&pool_lock);

    res = call(dptr, bytesize, pool, stream, fn);

    pthread_mutex_lock(&pool_lock);
    r->inflight -= want;
    if (res != CUDA_SUCCESS) {
        shim_unreserve(gd, want);
        pool_settle_other(r);
        pthread_mutex_unlock(&pool_lock);
        return res;
    }
    if (pool_settle(r, want) != CUDA_SUCCESS) {
        /* The pool grew by more than was reserved, and that does not fit:
         * give the block back and the pool's growth with it. */
        uint64_t keep = r->charged;
        pthread_mutex_unlock(&pool_lock);
        ((PFN_cuMemFreeAsync_v11020)real.cuMemFreeAsync)(*dptr, stream);
        if (real.cuMemPoolTrimTo)
            ((PFN_cuMemPoolTrimTo_v11020)real.cuMemPoolTrimTo)(p, keep);
        pthread_mutex_lock(&pool_lock);
        pool_settle_other(r);
        pthread_mutex_unlock(&pool_lock);
        *dptr = 0;
        shim_log(LOG_INFO, "memory pool grew past the group's limit: allocation of %llu bytes refused",
                 (unsigned long long)bytesize);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    uint64_t old;
    at_insert(&live_allocs, *dptr,
              alloc_pack_pool(shim_charge_size(bytesize), AK_ASYNC, GM_LANE_SHARED, gd, (unsigned)(r - pools)),
              (uint64_t)(uintptr_t)site, &old);
    shim_count(gd, 0);
    pthread_mutex_unlock(&pool_lock);
    return CUDA_SUCCESS;
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
    if (rec->pool) {
        pool_settle_other(rec);
    } else if (rec->zombie_allocs && --rec->zombie_allocs == 0) {
        shim_unreserve(rec->gd, rec->charged);   /* the driver frees the destroyed pool now */
        rec->charged = 0;
    }
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
    struct pool_rec *rec = pool_find(pool);
    if (rec)
        pool_settle_other(rec);
    pthread_mutex_unlock(&pool_lock);
    return r;
}

struct pool_count {
    unsigned idx;
    uint32_t n;
};
static void count_pool_allocs(const struct at_entry *e, void *ctx)
{
    struct pool_count *c = ctx;
    if (alloc_kind(e->value) == AK_ASYNC && alloc_pool(e->value) == c->idx)
        c->n++;
}

/* The driver frees what the pool holds idle at once, the rest when the
 * pool's last live allocation is freed: until then the pool stays charged
 * what its allocations use. */
EXPORT CUresult cuMemPoolDestroy(CUmemoryPool pool)
{
    int enforcing = atomic_load(&g.mode) == SHIM_ENFORCE && g.slot;
    uint64_t used = 0;
    int used_known = enforcing && !pool_attr(pool, CU_MEMPOOL_ATTR_USED_MEM_CURRENT, &used);
    CUresult r = ((PFN_cuMemPoolDestroy_v11020)real.cuMemPoolDestroy)(pool);
    if (r != CUDA_SUCCESS || !enforcing)
        return r;
    pthread_mutex_lock(&pool_lock);
    struct pool_rec *rec = pool_find(pool);
    if (rec) {
        struct pool_count c = {(unsigned)(rec - pools), 0};
        at_foreach(&live_allocs, count_pool_allocs, &c);
        uint64_t keep = !c.n ? 0 : used_known && used < rec->charged ? used : rec->charged;
        shim_unreserve(rec->gd, rec->charged - keep);
        rec->charged = keep;
        rec->zombie_allocs = c.n;
        rec->pool = NULL;
    }
    pthread_mutex_unlock(&pool_lock);
    return r;
}
