/* CUDA graph memory (cuGraphAddMemAllocNode, and cudaMallocAsync captured
 * into a graph, as PyTorch CUDA graphs and vLLM do). Graph allocations come
 * from a per-device graph memory pool the driver grows when an executable
 * graph is uploaded or launched (its physical memory is mapped then) and
 * shrinks only on cuDeviceGraphMemTrim. Like a memory pool, it is charged at
 * the driver's own figure, CU_GRAPH_MEM_ATTR_RESERVED_MEM_CURRENT, settled
 * after every hooked call that can change it.
 *
 * Before that, at instantiation, the shim sums the graph's allocation nodes
 * (cuGraphGetNodes, cuGraphMemAllocNodeGetParams; each rounded like an
 * allocation) per device and keeps it with the executable graph. Its first
 * upload or launch, or the first after a trim that may have released its
 * memory, reserves that sum less what the pool holds idle (estimated low,
 * idle_estimate) before the driver call, and is refused with
 * CUDA_ERROR_OUT_OF_MEMORY when it does not fit; later launches reserve
 * nothing (the memory stays mapped). A settle that finds more than was
 * reserved and cannot charge it undoes what it can (an instantiation that
 * uploaded: the executable graph is destroyed and the pool trimmed); what
 * it cannot (a launch already queued) is charged anyway and every further
 * allocation of the group refused until it is back under the limit
 * (shim_charge_over). So the group is never charged less than the driver
 * holds for its graphs, and a graph whose memory does not fit never runs.
 *
 * Executable graphs are recorded in a static table (MAX_EXECS); an
 * instantiation that finds it full is refused. graph_lock is held across
 * attribute queries only, never across instantiation, upload or launch. */
#include "account.h"

#include <dlfcn.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#define EXPORT __attribute__((visibility("default")))
#define MAX_EXECS 1024
#define EXEC_DEVS 4
#define PENDING ((CUgraphExec)(uintptr_t)1)

struct exec_rec {
    _Atomic(CUgraphExec) exec;  /* NULL = free; PENDING while being instantiated */
    _Atomic int resident;       /* uploaded or launched since its needs were last reserved */
    _Atomic int launched;       /* ever uploaded or launched: its memory may be mapped */
    int ndev;
    int unknown;                /* its graph could not be read: needs unknown */
    CUdevice dev[EXEC_DEVS];
    uint64_t needs[EXEC_DEVS];  /* its allocation nodes' bytes on dev[i] */
};

static struct exec_rec execs[MAX_EXECS];
static _Atomic unsigned execs_hw;                   /* records [0, execs_hw) have been used */
static uint64_t gcharged[GM_MAX_CU_DEVICES];        /* charged for the device's graph pool */
static uint64_t ginflight[GM_MAX_CU_DEVICES];       /* reserved by calls now inside the driver */
static uint64_t gidle_claimed[GM_MAX_CU_DEVICES];   /* idle bytes those calls count on */
static pthread_mutex_t graph_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int warned_full, warned_unknown;

/* Driver functions the shim calls but does not interpose, resolved once. */
static struct {
    PFN_cuGraphGetNodes_v10000 get_nodes;
    PFN_cuGraphNodeGetType_v10000 node_type;
    PFN_cuGraphMemAllocNodeGetParams_v11040 alloc_params;
    PFN_cuDeviceGetGraphMemAttribute_v11040 mem_attr;
} drv;
static pthread_once_t drv_once = PTHREAD_ONCE_INIT;

static void drv_resolve(void)
{
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    if (!h)
        return;
    drv.get_nodes = (PFN_cuGraphGetNodes_v10000)shim_real_dlsym(h, "cuGraphGetNodes");
    drv.node_type = (PFN_cuGraphNodeGetType_v10000)shim_real_dlsym(h, "cuGraphNodeGetType");
    drv.alloc_params = (PFN_cuGraphMemAllocNodeGetParams_v11040)shim_real_dlsym(h, "cuGraphMemAllocNodeGetParams");
    drv.mem_attr = (PFN_cuDeviceGetGraphMemAttribute_v11040)shim_real_dlsym(h, "cuDeviceGetGraphMemAttribute");
}

void shim_graphs_fork_child(void)
{
    memset(execs, 0, sizeof execs);
    atomic_store(&execs_hw, 0);
    memset(gcharged, 0, sizeof gcharged);
    memset(ginflight, 0, sizeof ginflight);
    memset(gidle_claimed, 0, sizeof gidle_claimed);
    pthread_mutex_init(&graph_lock, NULL);
}

/* ---- the device's graph pool: settles, with graph_lock held ---- */

static CUresult dev_settle(CUdevice d, uint64_t held)
{
    int gd = shim_gd_for_cudevice(d);
    if (gd < 0)
        return CUDA_SUCCESS;
    cuuint64_t now = gcharged[d] + held;   /* a driver that does not answer: keep it (an over-count) */
    if (drv.mem_attr)
        drv.mem_attr(d, CU_GRAPH_MEM_ATTR_RESERVED_MEM_CURRENT, &now);
    return shim_settle(gd, &gcharged[d], now, held);
}

/* A settle after a call that reserved nothing for the growth it finds. Growth
 * with a reservation in flight is that call's to settle; any other is
 * charged anyway. */
static void dev_settle_other(CUdevice d)
{
    if (dev_settle(d, 0) == CUDA_SUCCESS || ginflight[d])
        return;
    cuuint64_t now = 0;
    int gd = shim_gd_for_cudevice(d);
    if (gd < 0 || !drv.mem_attr || drv.mem_attr(d, CU_GRAPH_MEM_ATTR_RESERVED_MEM_CURRENT, &now) != CUDA_SUCCESS ||
        now <= gcharged[d])
        return;
    shim_charge_over(gd, now - gcharged[d], "the graph memory pool");
    gcharged[d] = now;
}

static void settle_all(void)
{
    int ncu = shim_ncu(), n = ncu > 0 && ncu <= GM_MAX_CU_DEVICES ? ncu : 1;
    for (int d = 0; d < n; d++)
        if (gcharged[d] || atomic_load_explicit(&g.gd_of[d], memory_order_relaxed) >= 0)
            dev_settle_other(d);
}

/* What an executable graph's first upload or launch reserves: per device,
 * its needs less what the pool holds idle, estimated as the charge less
 * what every executable graph ever uploaded or launched (and not destroyed)
 * needs, less what graph allocations use
 * (USED_MEM_CURRENT: those outlive their launch), less idle bytes other
 * calls in flight counted on. Every term errs towards less idle. */
struct hold {
    uint64_t want[EXEC_DEVS];   /* reserved */
    uint64_t idle[EXEC_DEVS];   /* idle bytes counted on (in gidle_claimed) */
};
static uint64_t idle_estimate(CUdevice d)
{
    uint64_t busy = gidle_claimed[d];
    unsigned hw = atomic_load(&execs_hw);
    for (unsigned i = 0; i < hw; i++) {
        if (!atomic_load(&execs[i].exec) || !atomic_load(&execs[i].launched))
            continue;
        if (execs[i].unknown)
            return 0;
        for (int k = 0; k < execs[i].ndev; k++)
            if (execs[i].dev[k] == d)
                busy += execs[i].needs[k];
    }
    cuuint64_t used = gcharged[d];
    if (!drv.mem_attr || drv.mem_attr(d, CU_GRAPH_MEM_ATTR_USED_MEM_CURRENT, &used) != CUDA_SUCCESS)
        return 0;
    busy += used;
    return gcharged[d] > busy ? gcharged[d] - busy : 0;
}

static void release_hold(const struct exec_rec *r, const struct hold *h, int unreserve)
{
    for (int i = 0; i < r->ndev; i++) {
        ginflight[r->dev[i]] -= h->want[i];
        gidle_claimed[r->dev[i]] -= h->idle[i];
        if (unreserve)
            shim_unreserve(shim_gd_for_cudevice(r->dev[i]), h->want[i]);
    }
}

/* Reserves rec's needs (all its devices, or none). With graph_lock held. */
static CUresult reserve_needs(const struct exec_rec *r, struct hold *h)
{
    memset(h, 0, sizeof *h);
    for (int i = 0; i < r->ndev; i++) {
        CUdevice d = r->dev[i];
        int gd = shim_gd_for_cudevice(d);
        dev_settle_other(d);
        uint64_t idle = idle_estimate(d);
        h->idle[i] = idle < r->needs[i] ? idle : r->needs[i];
        h->want[i] = r->needs[i] - h->idle[i];
        if (gd < 0 || (h->want[i] && shim_reserve(gd, h->want[i]) != CUDA_SUCCESS)) {
            h->want[i] = h->idle[i] = 0;
            release_hold(r, h, 1);
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
        ginflight[d] += h->want[i];
        gidle_claimed[d] += h->idle[i];
    }
    return CUDA_SUCCESS;
}

/* Settles after a call that reserved h (or nothing: h == NULL). Returns
 * CUDA_ERROR_OUT_OF_MEMORY when a device's pool grew past what the group
 * can take; the caller undoes the call or charges it anyway. */
static CUresult settle_after(const struct exec_rec *r, const struct hold *h)
{
    CUresult res = CUDA_SUCCESS;
    if (h)
        release_hold(r, h, 0);
    for (int i = 0; i < r->ndev; i++)
        if (dev_settle(r->dev[i], h ? h->want[i] : 0) != CUDA_SUCCESS)
            res = CUDA_ERROR_OUT_OF_MEMORY;
    return res;
}

static void settle_or_charge(const struct exec_rec *r)
{
    for (int i = 0; i < r->ndev; i++)
        dev_settle_other(r->dev[i]);
}

/* ---- what a graph needs ---- */

/* Sums the graph's allocation nodes per device into r. 0, or -1 when the
 * driver cannot tell (r->unknown). */
static int graph_needs(CUgraph graph, struct exec_rec *r)
{
    r->ndev = 0;
    r->unknown = 1;
    size_t n = 0;
    if (!drv.get_nodes || !drv.node_type || !drv.alloc_params || drv.get_nodes(graph, NULL, &n) != CUDA_SUCCESS)
        return -1;
    CUgraphNode stack_nodes[256], *nodes = stack_nodes;
    size_t map_len = 0;
    if (n > 256) {
        map_len = n * sizeof *nodes;
        void *m = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            return -1;
        nodes = m;
    }
    int res = -1;
    size_t got = n;
    if (n == 0 || drv.get_nodes(graph, nodes, &got) == CUDA_SUCCESS) {
        res = 0;
        for (size_t i = 0; i < got && i < n && res == 0; i++) {
            CUgraphNodeType t;
            if (drv.node_type(nodes[i], &t) != CUDA_SUCCESS) {
                res = -1;
                break;
            }
            if (t != CU_GRAPH_NODE_TYPE_MEM_ALLOC)
                continue;
            CUDA_MEM_ALLOC_NODE_PARAMS p;
            memset(&p, 0, sizeof p);
            if (drv.alloc_params(nodes[i], &p) != CUDA_SUCCESS) {
                res = -1;
                break;
            }
            CUdevice d = p.poolProps.location.id;
            int k = 0;
            while (k < r->ndev && r->dev[k] != d)
                k++;
            if (k == r->ndev) {
                if (k == EXEC_DEVS || d < 0 || d >= GM_MAX_CU_DEVICES) {
                    res = -1;
                    break;
                }
                r->dev[k] = d;
                r->needs[k] = 0;
                r->ndev++;
            }
            r->needs[k] += shim_charge_size(p.bytesize);
        }
    }
    if (map_len)
        munmap(nodes, map_len);
    if (res == 0)
        r->unknown = 0;
    else
        r->ndev = 0;
    return res;
}

static struct exec_rec *exec_find(CUgraphExec e)
{
    unsigned hw = atomic_load(&execs_hw);
    for (unsigned i = 0; i < hw; i++)
        if (atomic_load_explicit(&execs[i].exec, memory_order_acquire) == e)
            return &execs[i];
    return NULL;
}

/* A free record, marked PENDING; NULL when the table is full. */
static struct exec_rec *exec_claim(void)
{
    pthread_mutex_lock(&graph_lock);
    struct exec_rec *r = NULL;
    unsigned hw = atomic_load(&execs_hw);
    for (unsigned i = 0; i < hw && !r; i++)
        if (!atomic_load(&execs[i].exec))
            r = &execs[i];
    if (!r && hw < MAX_EXECS) {
        r = &execs[hw];
        atomic_store(&execs_hw, hw + 1);
    }
    if (r) {
        atomic_store(&r->exec, PENDING);
        atomic_store(&r->resident, 0);
        atomic_store(&r->launched, 0);
        r->ndev = 0;
        r->unknown = 0;
    }
    pthread_mutex_unlock(&graph_lock);
    return r;
}

static void exec_unclaim(struct exec_rec *r)
{
    atomic_store_explicit(&r->exec, (CUgraphExec)NULL, memory_order_release);
}

static int enforcing(void)
{
    int m = shim_mode();
    if (m != SHIM_PASSTHROUGH)
        pthread_once(&drv_once, drv_resolve);
    return m;
}

/* ---- instantiation ---- */

enum inst_kind { INST_V1, INST_V2, INST_FLAGS, INST_PARAMS, INST_PARAMS_PTSZ };

struct inst_args {
    CUgraphExec *out;
    CUgraph graph;
    CUgraphNode *err_node;
    char *log;
    size_t log_size;
    unsigned long long flags;
    CUDA_GRAPH_INSTANTIATE_PARAMS *params;
};

static CUresult inst_call(enum inst_kind k, struct inst_args *a)
{
    switch (k) {
    case INST_V1: return ((PFN_cuGraphInstantiate_v10000)real.cuGraphInstantiate)(a->out, a->graph, a->err_node, a->log, a->log_size);
    case INST_V2: return ((PFN_cuGraphInstantiate_v11000)real.cuGraphInstantiate_v2)(a->out, a->graph, a->err_node, a->log, a->log_size);
    case INST_FLAGS: return ((PFN_cuGraphInstantiateWithFlags_v11040)real.cuGraphInstantiateWithFlags)(a->out, a->graph, a->flags);
    case INST_PARAMS: return ((PFN_cuGraphInstantiateWithParams_v12000)real.cuGraphInstantiateWithParams)(a->out, a->graph, a->params);
    default: return ((PFN_cuGraphInstantiateWithParams_v12000)real.cuGraphInstantiateWithParams_ptsz)(a->out, a->graph, a->params);
    }
}

static CUresult instantiate(enum inst_kind k, struct inst_args *a)
{
    int m = enforcing();
    if (m == SHIM_PASSTHROUGH || m == SHIM_UNINIT || !a->out)
        return inst_call(k, a);
    struct exec_rec *r = m == SHIM_ENFORCE ? exec_claim() : NULL;
    if (m == SHIM_ENFORCE && !r) {
        if (!atomic_exchange(&warned_full, 1))
            shim_log(LOG_ERROR, "more than %d executable graphs: further instantiations are refused", MAX_EXECS);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    struct exec_rec tmp;
    struct exec_rec *nr = r ? r : &tmp;
    if (graph_needs(a->graph, nr) < 0 && m == SHIM_ENFORCE && !atomic_exchange(&warned_unknown, 1))
        shim_log(LOG_WARN, "cannot read a graph's memory nodes: its memory is charged after each launch");
    if (m == SHIM_FAIL_CLOSED) {
        /* A group that cannot be read: graphs that allocate are refused. */
        if (nr->ndev || nr->unknown)
            return CUDA_ERROR_OUT_OF_MEMORY;
        return inst_call(k, a);
    }
    for (int i = 0; i < r->ndev; i++)
        if (shim_gd_for_cudevice(r->dev[i]) < 0) {
            exec_unclaim(r);
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
    int uploads = (k == INST_PARAMS || k == INST_PARAMS_PTSZ) && a->params &&
                  (a->params->flags & CUDA_GRAPH_INSTANTIATE_FLAG_UPLOAD);
    struct hold h;
    if (uploads) {
        pthread_mutex_lock(&graph_lock);
        CUresult res = reserve_needs(r, &h);
        pthread_mutex_unlock(&graph_lock);
        if (res != CUDA_SUCCESS) {
            exec_unclaim(r);
            return res;
        }
    }
    CUresult res = inst_call(k, a);
    pthread_mutex_lock(&graph_lock);
    if (res != CUDA_SUCCESS) {
        if (uploads)
            release_hold(r, &h, 1);
        settle_or_charge(r);
        pthread_mutex_unlock(&graph_lock);
        exec_unclaim(r);
        return res;
    }
    CUgraphExec e = *a->out;
    if (uploads && settle_after(r, &h) != CUDA_SUCCESS) {
        /* It mapped more than its nodes and that does not fit: undo. */
        pthread_mutex_unlock(&graph_lock);
        ((PFN_cuGraphExecDestroy_v10000)real.cuGraphExecDestroy)(e);
        for (int i = 0; i < r->ndev; i++)
            ((PFN_cuDeviceGraphMemTrim_v11040)real.cuDeviceGraphMemTrim)(r->dev[i]);
        pthread_mutex_lock(&graph_lock);
        settle_or_charge(r);
        pthread_mutex_unlock(&graph_lock);
        exec_unclaim(r);
        *a->out = NULL;
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    if (r->unknown)
        settle_all();
    /* Resident before the lock goes: another graph's idle estimate must not
     * take this one's memory for idle. */
    atomic_store(&r->resident, uploads);
    atomic_store(&r->launched, uploads);
    atomic_store_explicit(&r->exec, e, memory_order_release);
    pthread_mutex_unlock(&graph_lock);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuGraphInstantiate(CUgraphExec *phGraphExec, CUgraph hGraph, CUgraphNode *phErrorNode, char *logBuffer,
                                   size_t bufferSize)
{
    struct inst_args a = {phGraphExec, hGraph, phErrorNode, logBuffer, bufferSize, 0, NULL};
    return instantiate(INST_V1, &a);
}
EXPORT CUresult cuGraphInstantiate_v2(CUgraphExec *phGraphExec, CUgraph hGraph, CUgraphNode *phErrorNode,
                                      char *logBuffer, size_t bufferSize)
{
    struct inst_args a = {phGraphExec, hGraph, phErrorNode, logBuffer, bufferSize, 0, NULL};
    return instantiate(INST_V2, &a);
}
EXPORT CUresult cuGraphInstantiateWithFlags(CUgraphExec *phGraphExec, CUgraph hGraph, unsigned long long flags)
{
    struct inst_args a = {phGraphExec, hGraph, NULL, NULL, 0, flags, NULL};
    return instantiate(INST_FLAGS, &a);
}
EXPORT CUresult cuGraphInstantiateWithParams(CUgraphExec *phGraphExec, CUgraph hGraph,
                                             CUDA_GRAPH_INSTANTIATE_PARAMS *instantiateParams)
{
    struct inst_args a = {phGraphExec, hGraph, NULL, NULL, 0, 0, instantiateParams};
    return instantiate(INST_PARAMS, &a);
}
EXPORT CUresult cuGraphInstantiateWithParams_ptsz(CUgraphExec *phGraphExec, CUgraph hGraph,
                                                  CUDA_GRAPH_INSTANTIATE_PARAMS *instantiateParams)
{
    struct inst_args a = {phGraphExec, hGraph, NULL, NULL, 0, 0, instantiateParams};
    return instantiate(INST_PARAMS_PTSZ, &a);
}

/* ---- upload and launch: where the pool grows ---- */

static CUresult run_exec(CUgraphExec e, CUstream s, PFN_cuGraphLaunch_v10000 fn)
{
    int m = enforcing();
    if (m != SHIM_ENFORCE || !g.slot)
        return fn(e, s);
    struct exec_rec *r = exec_find(e);
    if (!r) {
        /* Not instantiated through the shim (before the group, or a path it
         * does not hook): whatever it maps is charged after the call. */
        CUresult res = fn(e, s);
        pthread_mutex_lock(&graph_lock);
        settle_all();
        pthread_mutex_unlock(&graph_lock);
        return res;
    }
    int reserve = !atomic_load(&r->resident) && r->ndev;
    struct hold h;
    if (reserve) {
        pthread_mutex_lock(&graph_lock);
        CUresult res = reserve_needs(r, &h);
        pthread_mutex_unlock(&graph_lock);
        if (res != CUDA_SUCCESS) {
            shim_log(LOG_INFO, "graph launch refused: its memory nodes do not fit under the group's limit");
            return res; /* its memory does not fit: it does not run */
        }
    }
    CUresult res = fn(e, s);
    pthread_mutex_lock(&graph_lock);
    if (res != CUDA_SUCCESS && reserve) {
        release_hold(r, &h, 1);
        reserve = 0;
    }
    if (settle_after(r, reserve ? &h : NULL) != CUDA_SUCCESS)
        settle_or_charge(r);   /* queued already: charged, and the group refuses until it is back under */
    if (r->unknown)
        settle_all();
    if (res == CUDA_SUCCESS) {
        atomic_store(&r->resident, 1);   /* under the lock: see instantiate */
        atomic_store(&r->launched, 1);
    }
    pthread_mutex_unlock(&graph_lock);
    return res;
}

EXPORT CUresult cuGraphUpload(CUgraphExec hGraphExec, CUstream hStream)
{
    return run_exec(hGraphExec, hStream, (PFN_cuGraphLaunch_v10000)real.cuGraphUpload);
}
EXPORT CUresult cuGraphUpload_ptsz(CUgraphExec hGraphExec, CUstream hStream)
{
    return run_exec(hGraphExec, hStream, (PFN_cuGraphLaunch_v10000)real.cuGraphUpload_ptsz);
}
EXPORT CUresult cuGraphLaunch(CUgraphExec hGraphExec, CUstream hStream)
{
    return run_exec(hGraphExec, hStream, (PFN_cuGraphLaunch_v10000)real.cuGraphLaunch);
}
EXPORT CUresult cuGraphLaunch_ptsz(CUgraphExec hGraphExec, CUstream hStream)
{
    return run_exec(hGraphExec, hStream, (PFN_cuGraphLaunch_v10000)real.cuGraphLaunch_ptsz);
}

/* ---- where it shrinks ---- */

EXPORT CUresult cuGraphExecDestroy(CUgraphExec hGraphExec)
{
    struct exec_rec *r = hGraphExec ? exec_find(hGraphExec) : NULL;   /* before its handle can be reused */
    CUresult res = ((PFN_cuGraphExecDestroy_v10000)real.cuGraphExecDestroy)(hGraphExec);
    if (res != CUDA_SUCCESS || atomic_load(&g.mode) != SHIM_ENFORCE || !g.slot)
        return res;
    pthread_mutex_lock(&graph_lock);
    if (r) {
        settle_or_charge(r);
        exec_unclaim(r);
    }
    pthread_mutex_unlock(&graph_lock);
    return res;
}

EXPORT CUresult cuGraphDestroy(CUgraph hGraph)
{
    CUresult res = ((PFN_cuGraphDestroy_v10000)real.cuGraphDestroy)(hGraph);
    if (res != CUDA_SUCCESS || atomic_load(&g.mode) != SHIM_ENFORCE || !g.slot)
        return res;
    pthread_once(&drv_once, drv_resolve);
    pthread_mutex_lock(&graph_lock);
    settle_all();
    pthread_mutex_unlock(&graph_lock);
    return res;
}

/* The trim gives back what no graph holds. When the pool kept less than
 * the executable graphs launched on the device need, the driver may have
 * released some of theirs: each reserves its needs again at its next
 * launch (they still count as holding their memory in idle estimates). */
EXPORT CUresult cuDeviceGraphMemTrim(CUdevice device)
{
    CUresult res = ((PFN_cuDeviceGraphMemTrim_v11040)real.cuDeviceGraphMemTrim)(device);
    if (res != CUDA_SUCCESS || atomic_load(&g.mode) != SHIM_ENFORCE || !g.slot || device < 0 ||
        device >= GM_MAX_CU_DEVICES)
        return res;
    pthread_once(&drv_once, drv_resolve);
    pthread_mutex_lock(&graph_lock);
    dev_settle_other(device);
    uint64_t mapped = 0;
    unsigned hw = atomic_load(&execs_hw);
    for (unsigned i = 0; i < hw; i++)
        if (atomic_load(&execs[i].exec) && atomic_load(&execs[i].launched))
            for (int k = 0; k < execs[i].ndev; k++)
                if (execs[i].dev[k] == device)
                    mapped += execs[i].needs[k];
    if (gcharged[device] < mapped)
        for (unsigned i = 0; i < hw; i++)
            for (int k = 0; k < execs[i].ndev; k++)
                if (execs[i].dev[k] == device)
                    atomic_store(&execs[i].resident, 0);
    pthread_mutex_unlock(&graph_lock);
    return res;
}
