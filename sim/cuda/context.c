/* Contexts: primary (one per device, reference counted) and created ones,
 * plus the per-thread context stack.
 *
 * Like a real GPU, a context costs device memory while it exists
 * (GPUMEM_SIM_CTX_OVERHEAD, default 300 MiB, charged at creation or first
 * primary retain, released at destroy or last primary release), and
 * destroying it frees every allocation made in it. Context structures are
 * never freed: a stale handle stays safe to inspect and reports
 * CUDA_ERROR_CONTEXT_IS_DESTROYED / CUDA_ERROR_INVALID_CONTEXT. */
#include "internal.h"

#include <stdlib.h>

#define STACK_MAX 64
static __thread struct sim_ctx *ctx_stack[STACK_MAX];
static __thread int ctx_depth;

static struct sim_ctx primary[SIM_MAX_DEVICES];
static int primary_refs[SIM_MAX_DEVICES];
static unsigned primary_flags[SIM_MAX_DEVICES];
static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic unsigned long long next_ctx_id = 1;

static const size_t default_limits[8] = { 1024, 1 << 20, 8 << 20, 2, 2048, 64, 0, 0 };

int sim_ctx_is_valid(const struct sim_ctx *c)
{
    return c && c->magic == SIM_CTX_MAGIC && !atomic_load(&c->destroyed);
}

static void ctx_init(struct sim_ctx *c, int dev, unsigned flags, int is_primary)
{
    c->magic = SIM_CTX_MAGIC;
    c->dev = dev;
    c->flags = flags;
    c->primary = is_primary;
    c->id = atomic_fetch_add(&next_ctx_id, 1);
    for (int i = 0; i < 8; i++) c->limits[i] = default_limits[i];
    c->cache_config = CU_FUNC_CACHE_PREFER_NONE;
    c->shmem_config = CU_SHARED_MEM_CONFIG_FOUR_BYTE_BANK_SIZE;
    atomic_store(&c->destroyed, 0);
}

/* The device memory a context takes: charged like any allocation. */
static CUresult charge_overhead(int dev)
{
    if (sim_cfg.fail_ctx) return CUDA_ERROR_OUT_OF_MEMORY;
    if (sim_cfg.ctx_overhead && sim_vdev_charge(dev, sim_cfg.ctx_overhead) != 0) return CUDA_ERROR_OUT_OF_MEMORY;
    return CUDA_SUCCESS;
}

static void teardown(struct sim_ctx *c)
{
    atomic_store(&c->destroyed, 1);
    sim_registry_drain_ctx(c, sim_free_record);
    if (sim_cfg.ctx_overhead) sim_vdev_release(c->dev, sim_cfg.ctx_overhead);
}

CUresult sim_ctx_current(struct sim_ctx **out)
{
    CUresult r = sim_check_init();
    if (r) return r;
    struct sim_ctx *c = ctx_depth ? ctx_stack[ctx_depth - 1] : NULL;
    if (!c) return CUDA_ERROR_INVALID_CONTEXT;
    if (atomic_load_explicit(&c->destroyed, memory_order_relaxed))
        return c->primary ? CUDA_ERROR_INVALID_CONTEXT : CUDA_ERROR_CONTEXT_IS_DESTROYED;
    *out = c;
    return CUDA_SUCCESS;
}

CUresult sim_ctx_resolve(CUcontext h, struct sim_ctx **out)
{
    if (!h) return sim_ctx_current(out);
    CUresult r = sim_check_init();
    if (r) return r;
    struct sim_ctx *c = (struct sim_ctx *)h;
    if (c->magic != SIM_CTX_MAGIC) return CUDA_ERROR_INVALID_CONTEXT;
    if (atomic_load(&c->destroyed)) return c->primary ? CUDA_ERROR_INVALID_CONTEXT : CUDA_ERROR_CONTEXT_IS_DESTROYED;
    *out = c;
    return CUDA_SUCCESS;
}

/* ---- primary contexts ---- */

SIM_API CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
{
    if (!pctx) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = sim_check_device(dev);
    if (r) return r;
    pthread_mutex_lock(&ctx_lock);
    if (primary_refs[dev] == 0) {
        r = charge_overhead(dev);
        if (r == CUDA_SUCCESS) ctx_init(&primary[dev], dev, primary_flags[dev], 1);
    }
    if (r == CUDA_SUCCESS) {
        primary_refs[dev]++;
        *pctx = (CUcontext)&primary[dev];
    }
    pthread_mutex_unlock(&ctx_lock);
    return r;
}

static CUresult primary_release(CUdevice dev)
{
    CUresult r = sim_check_device(dev);
    if (r) return r;
    pthread_mutex_lock(&ctx_lock);
    if (primary_refs[dev] == 0) r = CUDA_ERROR_INVALID_CONTEXT;
    else if (--primary_refs[dev] == 0) teardown(&primary[dev]);
    pthread_mutex_unlock(&ctx_lock);
    return r;
}
SIM_API CUresult cuDevicePrimaryCtxRelease(CUdevice dev) { return primary_release(dev); }
SIM_API CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev) { return primary_release(dev); }

static CUresult primary_reset(CUdevice dev)
{
    CUresult r = sim_check_device(dev);
    if (r) return r;
    pthread_mutex_lock(&ctx_lock);
    if (primary_refs[dev] > 0) {
        teardown(&primary[dev]);
        primary_refs[dev] = 0;
    }
    primary_flags[dev] = 0;
    pthread_mutex_unlock(&ctx_lock);
    return CUDA_SUCCESS;
}
SIM_API CUresult cuDevicePrimaryCtxReset(CUdevice dev) { return primary_reset(dev); }
SIM_API CUresult cuDevicePrimaryCtxReset_v2(CUdevice dev) { return primary_reset(dev); }

static CUresult primary_set_flags(CUdevice dev, unsigned int flags)
{
    CUresult r = sim_check_device(dev);
    if (r) return r;
    if (flags & ~0x1fu) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&ctx_lock);
    primary_flags[dev] = flags;
    primary[dev].flags = flags;
    pthread_mutex_unlock(&ctx_lock);
    return CUDA_SUCCESS;
}
SIM_API CUresult cuDevicePrimaryCtxSetFlags(CUdevice dev, unsigned int flags) { return primary_set_flags(dev, flags); }
SIM_API CUresult cuDevicePrimaryCtxSetFlags_v2(CUdevice dev, unsigned int flags) { return primary_set_flags(dev, flags); }

SIM_API CUresult cuDevicePrimaryCtxGetState(CUdevice dev, unsigned int *flags, int *active)
{
    if (!flags || !active) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = sim_check_device(dev);
    if (r) return r;
    pthread_mutex_lock(&ctx_lock);
    *flags = primary_flags[dev];
    *active = primary_refs[dev] > 0;
    pthread_mutex_unlock(&ctx_lock);
    return CUDA_SUCCESS;
}

/* ---- created contexts ---- */

static CUresult ctx_create(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
    if (!pctx) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = sim_check_device(dev);
    if (r) return r;
    if (ctx_depth >= STACK_MAX) return CUDA_ERROR_OUT_OF_MEMORY;
    struct sim_ctx *c = calloc(1, sizeof *c);
    if (!c) return CUDA_ERROR_OUT_OF_MEMORY;
    r = charge_overhead(dev);
    if (r) { free(c); return r; }
    ctx_init(c, dev, flags, 0);
    ctx_stack[ctx_depth++] = c;        /* a new context becomes current */
    *pctx = (CUcontext)c;
    return CUDA_SUCCESS;
}
SIM_API CUresult cuCtxCreate(CUcontext *pctx, unsigned int flags, CUdevice dev) { return ctx_create(pctx, flags, dev); }
SIM_API CUresult cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev) { return ctx_create(pctx, flags, dev); }
SIM_API CUresult cuCtxCreate_v3(CUcontext *pctx, CUexecAffinityParam *paramsArray, int numParams, unsigned int flags,
                                CUdevice dev)
{
    if (numParams < 0 || (numParams > 0 && !paramsArray)) return CUDA_ERROR_INVALID_VALUE;
    return ctx_create(pctx, flags, dev);
}
SIM_API CUresult cuCtxCreate_v4(CUcontext *pctx, CUctxCreateParams *ctxCreateParams, unsigned int flags, CUdevice dev)
{
    return ctx_create(pctx, flags, dev);
}

static void forget_in_stack(struct sim_ctx *c)
{
    int j = 0;
    for (int i = 0; i < ctx_depth; i++)
        if (ctx_stack[i] != c) ctx_stack[j++] = ctx_stack[i];
    ctx_depth = j;
}

static CUresult ctx_destroy(CUcontext h)
{
    CUresult r = sim_check_init();
    if (r) return r;
    struct sim_ctx *c = (struct sim_ctx *)h;
    if (!c || c->magic != SIM_CTX_MAGIC || c->primary) return CUDA_ERROR_INVALID_CONTEXT;
    int expected = 0;
    if (!atomic_compare_exchange_strong(&c->destroyed, &expected, 1)) return CUDA_ERROR_CONTEXT_IS_DESTROYED;
    teardown(c);
    forget_in_stack(c);
    return CUDA_SUCCESS;
}
SIM_API CUresult cuCtxDestroy(CUcontext ctx) { return ctx_destroy(ctx); }
SIM_API CUresult cuCtxDestroy_v2(CUcontext ctx) { return ctx_destroy(ctx); }
SIM_API CUresult cuCtxDetach(CUcontext ctx) { return ctx_destroy(ctx); }

SIM_API CUresult cuCtxAttach(CUcontext *pctx, unsigned int flags)
{
    if (!pctx || flags) return CUDA_ERROR_INVALID_VALUE;
    struct sim_ctx *c;
    CUresult r = sim_ctx_current(&c);
    if (r) return r;
    *pctx = (CUcontext)c;
    return CUDA_SUCCESS;
}

/* ---- the thread's stack ---- */

SIM_API CUresult cuCtxSetCurrent(CUcontext ctx)
{
    CUresult r = sim_check_init();
    if (r) return r;
    struct sim_ctx *c = (struct sim_ctx *)ctx;
    if (!c) {
        if (ctx_depth) ctx_depth--;
        return CUDA_SUCCESS;
    }
    if (c->magic != SIM_CTX_MAGIC) return CUDA_ERROR_INVALID_CONTEXT;
    if (atomic_load(&c->destroyed)) return c->primary ? CUDA_ERROR_INVALID_CONTEXT : CUDA_ERROR_CONTEXT_IS_DESTROYED;
    if (ctx_depth) ctx_stack[ctx_depth - 1] = c;
    else ctx_stack[ctx_depth++] = c;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuCtxGetCurrent(CUcontext *pctx)
{
    if (!pctx) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = sim_check_init();
    if (r) return r;
    *pctx = ctx_depth ? (CUcontext)ctx_stack[ctx_depth - 1] : NULL;
    return CUDA_SUCCESS;
}

static CUresult ctx_push(CUcontext ctx)
{
    CUresult r = sim_check_init();
    if (r) return r;
    struct sim_ctx *c = (struct sim_ctx *)ctx;
    if (!c || c->magic != SIM_CTX_MAGIC || atomic_load(&c->destroyed)) return CUDA_ERROR_INVALID_CONTEXT;
    if (ctx_depth >= STACK_MAX) return CUDA_ERROR_OUT_OF_MEMORY;
    ctx_stack[ctx_depth++] = c;
    return CUDA_SUCCESS;
}
SIM_API CUresult cuCtxPushCurrent(CUcontext ctx) { return ctx_push(ctx); }
SIM_API CUresult cuCtxPushCurrent_v2(CUcontext ctx) { return ctx_push(ctx); }

static CUresult ctx_pop(CUcontext *pctx)
{
    CUresult r = sim_check_init();
    if (r) return r;
    if (!ctx_depth) return CUDA_ERROR_INVALID_CONTEXT;
    struct sim_ctx *c = ctx_stack[--ctx_depth];
    if (pctx) *pctx = (CUcontext)c;
    return CUDA_SUCCESS;
}
SIM_API CUresult cuCtxPopCurrent(CUcontext *pctx) { return ctx_pop(pctx); }
SIM_API CUresult cuCtxPopCurrent_v2(CUcontext *pctx) { return ctx_pop(pctx); }

/* ---- queries on a context ---- */

SIM_API CUresult cuCtxGetDevice(CUdevice *device)
{
    if (!device) return CUDA_ERROR_INVALID_VALUE;
    struct sim_ctx *c;
    CUresult r = sim_ctx_current(&c);
    if (r) return r;
    *device = c->dev;
    return CUDA_SUCCESS;
}

/* v13000: the context is explicit (NULL = current). */
SIM_API CUresult cuCtxGetDevice_v2(CUdevice *device, CUcontext ctx)
{
    if (!device) return CUDA_ERROR_INVALID_VALUE;
    struct sim_ctx *c;
    CUresult r = sim_ctx_resolve(ctx, &c);
    if (r) return r;
    *device = c->dev;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuCtxGetFlags(unsigned int *flags)
{
    if (!flags) return CUDA_ERROR_INVALID_VALUE;
    struct sim_ctx *c;
    CUresult r = sim_ctx_current(&c);
    if (r) return r;
    *flags = c->flags;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuCtxGetId(CUcontext ctx, unsigned long long *ctxId)
{
    if (!ctxId) return CUDA_ERROR_INVALID_VALUE;
    struct sim_ctx *c;
    CUresult r = sim_ctx_resolve(ctx, &c);
    if (r) return r;
    *ctxId = c->id;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuCtxGetApiVersion(CUcontext ctx, unsigned int *version)
{
    if (!version) return CUDA_ERROR_INVALID_VALUE;
    struct sim_ctx *c;
    CUresult r = sim_ctx_resolve(ctx, &c);
    if (r) return r;
    *version = 3020;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuCtxGetLimit(size_t *pvalue, CUlimit limit)
{
    if (!pvalue) return CUDA_ERROR_INVALID_VALUE;
    struct sim_ctx *c;
    CUresult r = sim_ctx_current(&c);
    if (r) return r;
    if ((unsigned)limit > CU_LIMIT_PERSISTING_L2_CACHE_SIZE) return CUDA_ERROR_INVALID_VALUE;
    *pvalue = c->limits[limit];
    return CUDA_SUCCESS;
}

SIM_API CUresult cuCtxSetLimit(CUlimit limit, size_t value)
{
    struct sim_ctx *c;
    CUresult r = sim_ctx_current(&c);
    if (r) return r;
    if ((unsigned)limit > CU_LIMIT_PERSISTING_L2_CACHE_SIZE) return CUDA_ERROR_INVALID_VALUE;
    c->limits[limit] = value;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuCtxGetCacheConfig(CUfunc_cache *pconfig)
{
    if (!pconfig) return CUDA_ERROR_INVALID_VALUE;
    struct sim_ctx *c;
    CUresult r = sim_ctx_current(&c);
    if (r) return r;
    *pconfig = (CUfunc_cache)c->cache_config;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuCtxSetCacheConfig(CUfunc_cache config)
{
    struct sim_ctx *c;
    CUresult r = sim_ctx_current(&c);
    if (r) return r;
    if ((unsigned)config > CU_FUNC_CACHE_PREFER_EQUAL) return CUDA_ERROR_INVALID_VALUE;
    c->cache_config = config;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuCtxGetSharedMemConfig(CUsharedconfig *pConfig)
{
    if (!pConfig) return CUDA_ERROR_INVALID_VALUE;
    struct sim_ctx *c;
    CUresult r = sim_ctx_current(&c);
    if (r) return r;
    *pConfig = (CUsharedconfig)c->shmem_config;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuCtxSetSharedMemConfig(CUsharedconfig config)
{
    struct sim_ctx *c;
    CUresult r = sim_ctx_current(&c);
    if (r) return r;
    if ((unsigned)config > CU_SHARED_MEM_CONFIG_EIGHT_BYTE_BANK_SIZE) return CUDA_ERROR_INVALID_VALUE;
    c->shmem_config = config;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuCtxGetStreamPriorityRange(int *leastPriority, int *greatestPriority)
{
    CUresult r = sim_check_init();
    if (r) return r;
    if (leastPriority) *leastPriority = 0;
    if (greatestPriority) *greatestPriority = -5;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuCtxSynchronize(void)
{
    struct sim_ctx *c;
    CUresult r = sim_ctx_current(&c);
    if (r) return r;
    return sim_sync_all();
}

SIM_API CUresult cuCtxSynchronize_v2(CUcontext ctx)
{
    struct sim_ctx *c;
    CUresult r = sim_ctx_resolve(ctx, &c);
    if (r) return r;
    return sim_sync_all();
}

SIM_API CUresult cuCtxResetPersistingL2Cache(void)
{
    struct sim_ctx *c;
    return sim_ctx_current(&c);
}

/* Peer access: every simulated device shares host memory, so access works;
 * the bookkeeping only gives the real error codes for double enable. */
SIM_API CUresult cuCtxEnablePeerAccess(CUcontext peerContext, unsigned int Flags)
{
    struct sim_ctx *c, *p;
    CUresult r = sim_ctx_current(&c);
    if (r) return r;
    if (Flags) return CUDA_ERROR_INVALID_VALUE;
    if (!peerContext) return CUDA_ERROR_INVALID_HANDLE;
    r = sim_ctx_resolve(peerContext, &p);
    if (r) return r;
    if (p->dev == c->dev) return CUDA_ERROR_INVALID_DEVICE;
    unsigned bit = 1u << p->dev;
    if (c->limits[7] & bit) return CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED;
    c->limits[7] |= bit;           /* slot 7 is unused by CUlimit: peer mask */
    return CUDA_SUCCESS;
}

SIM_API CUresult cuCtxDisablePeerAccess(CUcontext peerContext)
{
    struct sim_ctx *c, *p;
    CUresult r = sim_ctx_current(&c);
    if (r) return r;
    if (!peerContext) return CUDA_ERROR_INVALID_HANDLE;
    r = sim_ctx_resolve(peerContext, &p);
    if (r) return r;
    unsigned bit = 1u << p->dev;
    if (!(c->limits[7] & bit)) return CUDA_ERROR_PEER_ACCESS_NOT_ENABLED;
    c->limits[7] &= ~(size_t)bit;
    return CUDA_SUCCESS;
}
