/* Streams and events. Work never runs later than it is submitted (copies
 * and memsets complete before returning, host callbacks run at once), so
 * streams only carry their properties and events record a timestamp. Handles
 * are never freed: a destroyed one stays recognisable and answers
 * CUDA_ERROR_INVALID_HANDLE instead of reading freed memory. */
#include "internal.h"

#include <stdlib.h>
#include <time.h>

#define STREAM_MAGIC 0x5354524du
#define EVENT_MAGIC 0x4556544du

struct CUstream_st {
    uint32_t magic;
    _Atomic int destroyed;
    struct sim_ctx *ctx;
    unsigned flags;
    int priority;
    unsigned long long id;
};

struct CUevent_st {
    uint32_t magic;
    _Atomic int destroyed;
    unsigned flags;
    _Atomic int recorded;
    _Atomic uint64_t ns;
};

static _Atomic unsigned long long next_stream_id = 16;

static int special_stream(CUstream s)
{
    return s == NULL || s == CU_STREAM_LEGACY || s == CU_STREAM_PER_THREAD;
}

CUresult sim_stream_check(CUstream s)
{
    CUresult r = sim_check_init();
    if (r) return r;
    if (special_stream(s)) return CUDA_SUCCESS;
    if (s->magic != STREAM_MAGIC || atomic_load(&s->destroyed)) return CUDA_ERROR_INVALID_HANDLE;
    return sim_ctx_is_valid(s->ctx) ? CUDA_SUCCESS : CUDA_ERROR_CONTEXT_IS_DESTROYED;
}

CUresult sim_sync_all(void)
{
    sim_pools_trim_all();     /* pools give back memory above their threshold at synchronisation */
    return CUDA_SUCCESS;
}

static CUresult stream_create(CUstream *ph, unsigned int flags, int priority)
{
    if (!ph || (flags & ~(unsigned)CU_STREAM_NON_BLOCKING)) return CUDA_ERROR_INVALID_VALUE;
    struct sim_ctx *c;
    CUresult r = sim_ctx_current(&c);
    if (r) return r;
    struct CUstream_st *s = calloc(1, sizeof *s);
    if (!s) return CUDA_ERROR_OUT_OF_MEMORY;
    if (priority > 0) priority = 0;
    if (priority < -5) priority = -5;
    *s = (struct CUstream_st){ .magic = STREAM_MAGIC, .ctx = c, .flags = flags, .priority = priority,
                               .id = atomic_fetch_add(&next_stream_id, 1) };
    *ph = s;
    return CUDA_SUCCESS;
}
SIM_API CUresult cuStreamCreate(CUstream *ph, unsigned int Flags) { return stream_create(ph, Flags, 0); }
SIM_API CUresult cuStreamCreateWithPriority(CUstream *ph, unsigned int flags, int priority)
{ return stream_create(ph, flags, priority); }

static CUresult stream_destroy(CUstream s)
{
    CUresult r = sim_check_init();
    if (r) return r;
    if (special_stream(s) || s->magic != STREAM_MAGIC) return CUDA_ERROR_INVALID_HANDLE;
    int expected = 0;
    if (!atomic_compare_exchange_strong(&s->destroyed, &expected, 1)) return CUDA_ERROR_INVALID_HANDLE;
    return CUDA_SUCCESS;
}
SIM_API CUresult cuStreamDestroy(CUstream s) { return stream_destroy(s); }
SIM_API CUresult cuStreamDestroy_v2(CUstream s) { return stream_destroy(s); }

static CUresult get_priority(CUstream s, int *p)
{
    if (!p) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = sim_stream_check(s);
    if (r) return r;
    *p = special_stream(s) ? 0 : s->priority;
    return CUDA_SUCCESS;
}
SIM_API CUresult cuStreamGetPriority(CUstream s, int *p) { return get_priority(s, p); }
SIM_API CUresult cuStreamGetPriority_ptsz(CUstream s, int *p) { return get_priority(s, p); }

static CUresult get_flags(CUstream s, unsigned int *f)
{
    if (!f) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = sim_stream_check(s);
    if (r) return r;
    *f = special_stream(s) ? 0 : s->flags;
    return CUDA_SUCCESS;
}
SIM_API CUresult cuStreamGetFlags(CUstream s, unsigned int *f) { return get_flags(s, f); }
SIM_API CUresult cuStreamGetFlags_ptsz(CUstream s, unsigned int *f) { return get_flags(s, f); }

static CUresult stream_ctx(CUstream s, struct sim_ctx **c)
{
    CUresult r = sim_stream_check(s);
    if (r) return r;
    if (special_stream(s)) return sim_ctx_current(c);
    *c = s->ctx;
    return CUDA_SUCCESS;
}

static CUresult get_device(CUstream s, CUdevice *d)
{
    if (!d) return CUDA_ERROR_INVALID_VALUE;
    struct sim_ctx *c;
    CUresult r = stream_ctx(s, &c);
    if (r) return r;
    *d = c->dev;
    return CUDA_SUCCESS;
}
SIM_API CUresult cuStreamGetDevice(CUstream s, CUdevice *d) { return get_device(s, d); }
SIM_API CUresult cuStreamGetDevice_ptsz(CUstream s, CUdevice *d) { return get_device(s, d); }

static CUresult get_ctx(CUstream s, CUcontext *pctx)
{
    if (!pctx) return CUDA_ERROR_INVALID_VALUE;
    struct sim_ctx *c;
    CUresult r = stream_ctx(s, &c);
    if (r) return r;
    *pctx = (CUcontext)c;
    return CUDA_SUCCESS;
}
SIM_API CUresult cuStreamGetCtx(CUstream s, CUcontext *pctx) { return get_ctx(s, pctx); }
SIM_API CUresult cuStreamGetCtx_ptsz(CUstream s, CUcontext *pctx) { return get_ctx(s, pctx); }
SIM_API CUresult cuStreamGetCtx_v2(CUstream s, CUcontext *pctx, CUgreenCtx *pGreenCtx)
{
    if (pGreenCtx) *pGreenCtx = NULL;
    return get_ctx(s, pctx);
}
SIM_API CUresult cuStreamGetCtx_v2_ptsz(CUstream s, CUcontext *pctx, CUgreenCtx *pGreenCtx)
{
    if (pGreenCtx) *pGreenCtx = NULL;
    return get_ctx(s, pctx);
}

static CUresult get_id(CUstream s, unsigned long long *id)
{
    if (!id) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = sim_stream_check(s);
    if (r) return r;
    *id = s == CU_STREAM_PER_THREAD ? 2 : special_stream(s) ? 1 : s->id;
    return CUDA_SUCCESS;
}
SIM_API CUresult cuStreamGetId(CUstream s, unsigned long long *id) { return get_id(s, id); }
SIM_API CUresult cuStreamGetId_ptsz(CUstream s, unsigned long long *id) { return get_id(s, id); }

static CUresult event_check(CUevent e)
{
    CUresult r = sim_check_init();
    if (r) return r;
    if (!e || e->magic != EVENT_MAGIC || atomic_load(&e->destroyed)) return CUDA_ERROR_INVALID_HANDLE;
    return CUDA_SUCCESS;
}

static CUresult wait_event(CUstream s, CUevent e, unsigned int flags)
{
    CUresult r = sim_stream_check(s);
    if (!r) r = event_check(e);
    if (r) return r;
    return flags > 1 ? CUDA_ERROR_INVALID_VALUE : CUDA_SUCCESS;
}
SIM_API CUresult cuStreamWaitEvent(CUstream s, CUevent e, unsigned int f) { return wait_event(s, e, f); }
SIM_API CUresult cuStreamWaitEvent_ptsz(CUstream s, CUevent e, unsigned int f) { return wait_event(s, e, f); }

static CUresult add_callback(CUstream s, CUstreamCallback cb, void *ud, unsigned int flags)
{
    if (!cb || flags) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = sim_stream_check(s);
    if (r) return r;
    cb(s, CUDA_SUCCESS, ud);
    return CUDA_SUCCESS;
}
SIM_API CUresult cuStreamAddCallback(CUstream s, CUstreamCallback cb, void *ud, unsigned int f) { return add_callback(s, cb, ud, f); }
SIM_API CUresult cuStreamAddCallback_ptsz(CUstream s, CUstreamCallback cb, void *ud, unsigned int f) { return add_callback(s, cb, ud, f); }

static CUresult host_func(CUstream s, CUhostFn fn, void *ud)
{
    if (!fn) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = sim_stream_check(s);
    if (r) return r;
    fn(ud);
    return CUDA_SUCCESS;
}
SIM_API CUresult cuLaunchHostFunc(CUstream s, CUhostFn fn, void *ud) { return host_func(s, fn, ud); }
SIM_API CUresult cuLaunchHostFunc_ptsz(CUstream s, CUhostFn fn, void *ud) { return host_func(s, fn, ud); }

static CUresult stream_sync(CUstream s)
{
    CUresult r = sim_stream_check(s);
    return r ? r : sim_sync_all();
}
SIM_API CUresult cuStreamSynchronize(CUstream s) { return stream_sync(s); }
SIM_API CUresult cuStreamSynchronize_ptsz(CUstream s) { return stream_sync(s); }
SIM_API CUresult cuStreamQuery(CUstream s) { return sim_stream_check(s); }
SIM_API CUresult cuStreamQuery_ptsz(CUstream s) { return sim_stream_check(s); }

static CUresult attach_mem(CUstream s, CUdeviceptr p, size_t len, unsigned int flags)
{
    CUresult r = sim_stream_check(s);
    if (r) return r;
    struct sim_alloc a;
    if (sim_registry_find(p, len ? len : 1, &a) != 0 || a.kind != SIM_KIND_MANAGED) return CUDA_ERROR_INVALID_VALUE;
    return flags == CU_MEM_ATTACH_GLOBAL || flags == CU_MEM_ATTACH_HOST || flags == CU_MEM_ATTACH_SINGLE
               ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}
SIM_API CUresult cuStreamAttachMemAsync(CUstream s, CUdeviceptr p, size_t len, unsigned int f) { return attach_mem(s, p, len, f); }
SIM_API CUresult cuStreamAttachMemAsync_ptsz(CUstream s, CUdeviceptr p, size_t len, unsigned int f) { return attach_mem(s, p, len, f); }

/* ---- events ---- */

SIM_API CUresult cuEventCreate(CUevent *ph, unsigned int Flags)
{
    if (!ph || (Flags & ~7u)) return CUDA_ERROR_INVALID_VALUE;
    if ((Flags & CU_EVENT_INTERPROCESS) && !(Flags & CU_EVENT_DISABLE_TIMING)) return CUDA_ERROR_INVALID_VALUE;
    struct sim_ctx *c;
    CUresult r = sim_ctx_current(&c);
    if (r) return r;
    struct CUevent_st *e = calloc(1, sizeof *e);
    if (!e) return CUDA_ERROR_OUT_OF_MEMORY;
    e->magic = EVENT_MAGIC;
    e->flags = Flags;
    *ph = e;
    return CUDA_SUCCESS;
}

static CUresult record(CUevent e, CUstream s, unsigned int flags)
{
    CUresult r = event_check(e);
    if (!r) r = sim_stream_check(s);
    if (r) return r;
    if (flags > 1) return CUDA_ERROR_INVALID_VALUE;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    atomic_store(&e->ns, (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec);
    atomic_store(&e->recorded, 1);
    return CUDA_SUCCESS;
}
SIM_API CUresult cuEventRecord(CUevent e, CUstream s) { return record(e, s, 0); }
SIM_API CUresult cuEventRecord_ptsz(CUevent e, CUstream s) { return record(e, s, 0); }
SIM_API CUresult cuEventRecordWithFlags(CUevent e, CUstream s, unsigned int f) { return record(e, s, f); }
SIM_API CUresult cuEventRecordWithFlags_ptsz(CUevent e, CUstream s, unsigned int f) { return record(e, s, f); }

SIM_API CUresult cuEventQuery(CUevent e) { return event_check(e); }
SIM_API CUresult cuEventSynchronize(CUevent e)
{
    CUresult r = event_check(e);
    return r ? r : sim_sync_all();
}

static CUresult event_destroy(CUevent e)
{
    CUresult r = event_check(e);
    if (r) return r;
    atomic_store(&e->destroyed, 1);
    return CUDA_SUCCESS;
}
SIM_API CUresult cuEventDestroy(CUevent e) { return event_destroy(e); }
SIM_API CUresult cuEventDestroy_v2(CUevent e) { return event_destroy(e); }

static CUresult elapsed(float *ms, CUevent a, CUevent b)
{
    if (!ms) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = event_check(a);
    if (!r) r = event_check(b);
    if (r) return r;
    if ((a->flags | b->flags) & CU_EVENT_DISABLE_TIMING) return CUDA_ERROR_INVALID_HANDLE;
    if (!atomic_load(&a->recorded) || !atomic_load(&b->recorded)) return CUDA_ERROR_INVALID_HANDLE;
    int64_t d = (int64_t)(atomic_load(&b->ns) - atomic_load(&a->ns));
    *ms = (float)((double)d / 1e6);
    return CUDA_SUCCESS;
}
SIM_API CUresult cuEventElapsedTime(float *ms, CUevent a, CUevent b) { return elapsed(ms, a, b); }
SIM_API CUresult cuEventElapsedTime_v2(float *ms, CUevent a, CUevent b) { return elapsed(ms, a, b); }
