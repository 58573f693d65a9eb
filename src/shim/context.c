/* Contexts cost device memory the moment they exist (hundreds of MiB on
 * recent GPUs), so each one is charged to the group like an allocation.
 *
 * The cost is measured, not guessed: the first time a context is created on
 * a device of the group, the shim asks NVML how much the process now holds
 * on that device and subtracts what it had charged for everything else. The
 * figure is stored in the group (usage dev[].ctx_overhead); every later
 * context on that device reserves it before the driver call, so a context
 * that would pass the limit fails with CUDA_ERROR_OUT_OF_MEMORY like any
 * allocation. Without NVML the cost is GPUMEM_CTX_OVERHEAD (a size) or 0,
 * with a warning. */
#include "account.h"
#include "gpumem/size.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;

/* Allocations die with their context: cuCtxDestroy, and the last release
 * or a reset of a primary context, free everything made in it, and no
 * free of those reaches the shim. Before such a call the shim finds its
 * live device pointers made in that context (the driver can be asked about
 * a pointer only while it is valid: CU_POINTER_ATTRIBUTE_CONTEXT); after
 * the call succeeds they leave the table and their bytes go back. Not a
 * hot path: a context ends rarely, and this costs one driver query per
 * live pointer. (Arrays and VMM handles are not pointers the driver can be
 * asked about; an array whose context is gone stays charged until its
 * address is handed out again or the process exits.) */
struct sweep {
    uint64_t *keys;
    size_t n, cap;
};

static void sweep_add(const struct at_entry *e, void *arg)
{
    struct sweep *sw = arg;
    int k = alloc_kind(e->value);
    if (k != AK_MEM && k != AK_PITCH && k != AK_MANAGED)
        return; /* (pool allocations: their pool settles its own charge) */
    if (sw->n == sw->cap) {
        size_t nc = sw->cap ? sw->cap * 2 : 256;
        uint64_t *nk = realloc(sw->keys, nc * sizeof *nk);
        if (!nk)
            return; /* what is not swept stays charged: an over-count */
        sw->keys = nk;
        sw->cap = nc;
    }
    sw->keys[sw->n++] = e->key;
}

/* The live pointers of context ctx (keys copied under the table's locks,
 * then asked about with none held: no lock across a driver call). */
static void sweep_collect(CUcontext ctx, struct sweep *sw)
{
    memset(sw, 0, sizeof *sw);
    if (!ctx || !shim_hot_slot() || !real.cuPointerGetAttribute)
        return;
    at_foreach(&live_allocs, sweep_add, sw);
    size_t keep = 0;
    for (size_t i = 0; i < sw->n; i++) {
        CUcontext owner = NULL;
        if (real.cuPointerGetAttribute(&owner, CU_POINTER_ATTRIBUTE_CONTEXT, sw->keys[i]) == CUDA_SUCCESS &&
            owner == ctx)
            sw->keys[keep++] = sw->keys[i];
    }
    sw->n = keep;
}

/* The context is gone (done = 1): its allocations leave the table and give
 * their bytes back. */
static void sweep_finish(struct sweep *sw, int done)
{
    struct gm_proc_slot *s = shim_hot_slot();
    for (size_t i = 0; done && s && i < sw->n; i++) {
        uint64_t v;
        if (at_remove(&live_allocs, sw->keys[i], &v))
            shim_release(s, v);
    }
    if (done && sw->n)
        shim_log(LOG_DEBUG, "context gone: %zu allocations released", sw->n);
    free(sw->keys);
}

/* What this process holds on `gd` according to NVML, or -1 if unknown. The
 * device is looked up by the group's UUID for it, which NVML resolves for
 * GPUs and MIG devices alike (a MIG device is no entry of the GPU list). */
static int64_t nvml_self_used(int gd)
{
    if (shim_resolve_nvml() < 0 || !real_nvml.nvmlInit_v2 || !real_nvml.nvmlDeviceGetHandleByUUID ||
        !real_nvml.nvmlDeviceGetComputeRunningProcesses_v3)
        return -1;
    if (real_nvml.nvmlInit_v2() != NVML_SUCCESS)
        return -1;
    nvmlDevice_t dev;
    if (real_nvml.nvmlDeviceGetHandleByUUID(g.usage->dev[gd].uuid, &dev) != NVML_SUCCESS)
        return -1;
    nvmlProcessInfo_t procs[128];
    unsigned count = 128;
    PFN_nvmlDeviceGetComputeRunningProcesses_v3 list =
        (PFN_nvmlDeviceGetComputeRunningProcesses_v3)real_nvml.nvmlDeviceGetComputeRunningProcesses_v3;
    if (list(dev, &count, procs) != NVML_SUCCESS)
        return -1;
    for (unsigned k = 0; k < count; k++)
        if (procs[k].pid == (unsigned)getpid())
            return (int64_t)procs[k].usedGpuMemory;
    return -1;
}

static uint64_t configured_overhead(void)
{
    const char *v = shim_getenv("GPUMEM_CTX_OVERHEAD");
    uint64_t b = 0;
    char err[200];
    if (v && gm_parse_size(v, GM_BARE_BYTES, &b, err, sizeof err) < 0)
        shim_log(LOG_WARN, "%s", err);
    return b;
}

/* Before a context is created on `dev`: reserve the known overhead. */
static CUresult ctx_begin(CUdevice dev, int *gd, uint64_t *reserved)
{
    *gd = -1;
    *reserved = 0;
    int m = shim_mode();
    if (m == SHIM_FAIL_CLOSED)
        return CUDA_ERROR_OUT_OF_MEMORY;
    if (m != SHIM_ENFORCE)
        return CUDA_SUCCESS;
    int d = shim_gd_for_cudevice(dev);
    if (d < 0) /* none: not initialised or bad device, the driver will say so */
        return d == SHIM_GD_REFUSE ? CUDA_ERROR_OUT_OF_MEMORY : CUDA_SUCCESS;
    uint64_t known = atomic_load(&g.usage->dev[d].ctx_overhead);
    if (known) {
        CUresult r = shim_reserve(d, known);
        if (r != CUDA_SUCCESS)
            return r;
    }
    *gd = d;
    *reserved = known;
    return CUDA_SUCCESS;
}

/* After the driver made it: measure the first time, settle the charge.
 * Returns the overhead charged, or 0 with *refused set when the measured
 * cost does not fit the limit (the caller then undoes the context). */
static uint64_t ctx_settle(int gd, uint64_t reserved, int *refused)
{
    *refused = 0;
    if (reserved)
        return reserved;
    int64_t held = nvml_self_used(gd);
    uint64_t cost;
    if (held >= 0) {
        uint64_t charged = gm_slot_charged(g.slot, gd);
        cost = (uint64_t)held > charged ? (uint64_t)held - charged : 0;
    } else {
        cost = configured_overhead();
        shim_log(LOG_WARN, "context overhead on %s not measurable (no NVML view of this process); charging %llu",
                 g.usage->dev[gd].uuid, (unsigned long long)cost);
    }
    if (cost && shim_reserve(gd, cost) != CUDA_SUCCESS) {
        *refused = 1;
        return 0;
    }
    uint64_t zero = 0;
    if (cost)
        atomic_compare_exchange_strong(&g.usage->dev[gd].ctx_overhead, &zero, cost);
    shim_log(LOG_DEBUG, "context overhead on %s: %llu bytes", g.usage->dev[gd].uuid, (unsigned long long)cost);
    return cost;
}

/* Shared tail of every context creation. */
static CUresult ctx_finish(CUresult r, CUcontext ctx, CUdevice dev, int gd, uint64_t reserved, int primary)
{
    if (gd < 0)
        return r;
    if (r != CUDA_SUCCESS) {
        shim_unreserve(gd, reserved);
        return r;
    }
    pthread_mutex_lock(&ctx_lock);
    if (primary && g.primary_retained[dev]++ > 0) {
        /* Already counted: a retain of a live primary context costs nothing. */
        pthread_mutex_unlock(&ctx_lock);
        shim_unreserve(gd, reserved);
        return r;
    }
    int refused;
    uint64_t cost = ctx_settle(gd, reserved, &refused);
    if (refused) {
        if (primary)
            g.primary_retained[dev]--;
        pthread_mutex_unlock(&ctx_lock);
        if (primary)
            ((PFN_cuDevicePrimaryCtxRelease_v11000)real.cuDevicePrimaryCtxRelease_v2)(dev);
        else
            ((PFN_cuCtxDestroy_v4000)real.cuCtxDestroy_v2)(ctx);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    if (primary)
        g.ctx_charge[dev] = cost;
    pthread_mutex_unlock(&ctx_lock);
    if (!primary) {
        uint64_t old;
        at_insert(&live_allocs, (uint64_t)(uintptr_t)ctx, alloc_pack(cost, AK_CTX, GM_LANE_SHARED, gd), 0, &old);
    }
    shim_count(gd, 0);
    return r;
}

/* cuCtxCreate and cuCtxCreate_v2 (the same arguments). */
static CUresult ctx_create(CUcontext *pctx, unsigned int flags, CUdevice dev, PFN_cuCtxCreate_v3020 create)
{
    int gd;
    uint64_t res;
    CUresult r = ctx_begin(dev, &gd, &res);
    if (r != CUDA_SUCCESS)
        return r;
    r = create(pctx, flags, dev);
    return ctx_finish(r, r == CUDA_SUCCESS ? *pctx : NULL, dev, gd, res, 0);
}

EXPORT CUresult cuCtxCreate(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
    return ctx_create(pctx, flags, dev, (PFN_cuCtxCreate_v2000)real.cuCtxCreate);
}

EXPORT CUresult cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
    return ctx_create(pctx, flags, dev, (PFN_cuCtxCreate_v3020)real.cuCtxCreate_v2);
}

EXPORT CUresult cuCtxCreate_v3(CUcontext *pctx, CUexecAffinityParam *params, int n, unsigned int flags, CUdevice dev)
{
    int gd;
    uint64_t res;
    CUresult r = ctx_begin(dev, &gd, &res);
    if (r != CUDA_SUCCESS)
        return r;
    r = ((PFN_cuCtxCreate_v11040)real.cuCtxCreate_v3)(pctx, params, n, flags, dev);
    return ctx_finish(r, r == CUDA_SUCCESS ? *pctx : NULL, dev, gd, res, 0);
}

EXPORT CUresult cuCtxCreate_v4(CUcontext *pctx, CUctxCreateParams *params, unsigned int flags, CUdevice dev)
{
    int gd;
    uint64_t res;
    CUresult r = ctx_begin(dev, &gd, &res);
    if (r != CUDA_SUCCESS)
        return r;
    r = ((PFN_cuCtxCreate_v12050)real.cuCtxCreate_v4)(pctx, params, flags, dev);
    return ctx_finish(r, r == CUDA_SUCCESS ? *pctx : NULL, dev, gd, res, 0);
}

static CUresult ctx_destroy(CUcontext ctx, PFN_cuCtxDestroy_v4000 destroy)
{
    uint64_t v;
    if (!shim_hot_slot() || !at_remove(&live_allocs, (uint64_t)(uintptr_t)ctx, &v))
        return destroy(ctx);
    struct sweep sw;
    sweep_collect(ctx, &sw);
    CUresult r = destroy(ctx);
    sweep_finish(&sw, r == CUDA_SUCCESS);
    if (r != CUDA_SUCCESS)
        at_put_back(&live_allocs, (uint64_t)(uintptr_t)ctx, v);
    else
        shim_release(g.slot, v);
    return r;
}

EXPORT CUresult cuCtxDestroy_v2(CUcontext ctx)
{
    return ctx_destroy(ctx, (PFN_cuCtxDestroy_v4000)real.cuCtxDestroy_v2);
}

/* The v2000 form (same arguments). */
EXPORT CUresult cuCtxDestroy(CUcontext ctx) { return ctx_destroy(ctx, (PFN_cuCtxDestroy_v2000)real.cuCtxDestroy); }

EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
{
    int gd = -1;
    uint64_t res = 0;
    int live = 0;
    if (dev >= 0 && dev < GM_MAX_CU_DEVICES) {
        pthread_mutex_lock(&ctx_lock);
        live = g.primary_retained[dev] > 0;
        pthread_mutex_unlock(&ctx_lock);
    }
    if (!live) {
        CUresult r = ctx_begin(dev, &gd, &res);
        if (r != CUDA_SUCCESS)
            return r;
    }
    CUresult r = ((PFN_cuDevicePrimaryCtxRetain_v7000)real.cuDevicePrimaryCtxRetain)(pctx, dev);
    if (r == CUDA_SUCCESS && dev >= 0 && dev < GM_MAX_CU_DEVICES) {
        pthread_mutex_lock(&ctx_lock);
        g.primary_ctx[dev] = *pctx;
        pthread_mutex_unlock(&ctx_lock);
    }
    if (live) {
        if (r == CUDA_SUCCESS && atomic_load(&g.mode) == SHIM_ENFORCE) {
            pthread_mutex_lock(&ctx_lock);
            g.primary_retained[dev]++;
            pthread_mutex_unlock(&ctx_lock);
        }
        return r;
    }
    return ctx_finish(r, r == CUDA_SUCCESS ? *pctx : NULL, dev, gd, res, 1);
}

/* Drops one retain (or all, for reset); the last one gives the cost back. */
static void primary_drop(CUdevice dev, int all)
{
    if (atomic_load(&g.mode) != SHIM_ENFORCE || dev < 0 || dev >= GM_MAX_CU_DEVICES)
        return;
    uint64_t give = 0;
    pthread_mutex_lock(&ctx_lock);
    if (g.primary_retained[dev] > 0) {
        g.primary_retained[dev] = all ? 0 : g.primary_retained[dev] - 1;
        if (g.primary_retained[dev] == 0) {
            give = g.ctx_charge[dev];
            g.ctx_charge[dev] = 0;
        }
    }
    pthread_mutex_unlock(&ctx_lock);
    int gd = atomic_load(&g.gd_of[dev]);
    if (give && gd >= 0 && g.slot) {
        shim_unreserve(gd, give);
        shim_count(gd, 1);
    }
}

/* The primary context of dev when this release (or reset: all) ends it,
 * else NULL. */
static CUcontext primary_ending(CUdevice dev, int all)
{
    if (atomic_load(&g.mode) != SHIM_ENFORCE || dev < 0 || dev >= GM_MAX_CU_DEVICES)
        return NULL;
    pthread_mutex_lock(&ctx_lock);
    int ends = g.primary_retained[dev] > 0 && (all || g.primary_retained[dev] == 1);
    CUcontext ctx = ends ? g.primary_ctx[dev] : NULL;
    pthread_mutex_unlock(&ctx_lock);
    return ctx;
}

/* The four release/reset entry points differ only in the driver function
 * they call and whether they drop one retain or all. */
#define PRIMARY_DROP(sym, all)                                                             \
    EXPORT CUresult sym(CUdevice dev)                                                      \
    {                                                                                      \
        struct sweep sw;                                                                   \
        sweep_collect(primary_ending(dev, all), &sw);                                      \
        CUresult r = ((PFN_cuDevicePrimaryCtxRelease_v11000)real.sym)(dev);                \
        sweep_finish(&sw, r == CUDA_SUCCESS);                                              \
        if (r == CUDA_SUCCESS)                                                             \
            primary_drop(dev, all);                                                        \
        return r;                                                                          \
    }
PRIMARY_DROP(cuDevicePrimaryCtxRelease, 0)
PRIMARY_DROP(cuDevicePrimaryCtxRelease_v2, 0)
PRIMARY_DROP(cuDevicePrimaryCtxReset, 1)
PRIMARY_DROP(cuDevicePrimaryCtxReset_v2, 1)
