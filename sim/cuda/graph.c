/* CUDA graphs, as far as their memory goes: graphs made of memory nodes
 * (cuGraphAddMemAllocNode / cuGraphAddMemFreeNode), their instantiation,
 * upload and launch, and the per-device graph memory pool behind them
 * (cuDeviceGetGraphMemAttribute, cuDeviceSetGraphMemAttribute,
 * cuDeviceGraphMemTrim). No other node kind exists here (kernels do not
 * run), and stream capture stays a stub.
 *
 * The model, a subset of the driver's:
 * - An allocation node gets its address when it is added (reserved address
 *   space, PROT_NONE: graph memory holds no data here) and costs nothing
 *   until an executable graph made from it is uploaded or launched.
 * - An executable graph needs the sum of its allocation nodes' sizes,
 *   rounded like cuMemAlloc, per device (no sharing between allocations).
 *   Its first upload or launch maps that from the device's graph pool: the
 *   pool's idle bytes first, the rest charged to the device (machine-wide,
 *   so NVML's per-process usage shows it); it stays mapped until the
 *   executable graph is destroyed.
 * - Reserved (RESERVED_MEM_CURRENT) is what the pool holds from the device;
 *   cuDeviceGraphMemTrim gives back what no executable graph maps.
 * - Used (USED_MEM_CURRENT) is what allocations hold: during a launch, all
 *   of the graph's (which is what USED_MEM_HIGH sees); after it, those no
 *   free node of the same graph frees, until the executable graph is
 *   relaunched with CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH or
 *   destroyed (cuMemFree/cuMemFreeAsync of them are not emulated).
 *   Relaunching while they are outstanding, without that flag, is
 *   CUDA_ERROR_INVALID_VALUE, like the driver.
 * - A graph with memory nodes has at most one executable graph at a time. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define GRAPH_MAGIC 0x48505247u
#define NODE_MAGIC  0x45444f4eu
#define EXEC_MAGIC  0x43455847u

struct CUgraph_st { int unused; };      /* opaque; see struct sim_graph */
struct CUgraphNode_st { int unused; };
struct CUgraphExec_st { int unused; };

struct sim_gnode {
    uint32_t magic;
    CUgraphNodeType type;
    struct sim_graph *graph;
    int dev;                        /* allocation: its device */
    CUmemPoolProps props;
    size_t accessDescCount;
    size_t bytesize;
    uint64_t charged;               /* rounded like cuMemAlloc */
    CUdeviceptr dptr;               /* allocation: its address; free: what it frees */
    int freed_in_graph;             /* allocation: a free node of the graph frees it */
    struct sim_gnode *next;
};

struct sim_graph {
    uint32_t magic;
    struct sim_gnode *nodes;
    size_t nnodes;
    int has_mem_nodes;
    struct sim_gexec *exec;         /* its executable graph, while one exists */
};

struct sim_gexec {
    uint32_t magic;
    struct sim_graph *graph;        /* NULL once the graph is destroyed */
    unsigned long long flags;
    uint64_t needs[SIM_MAX_DEVICES];    /* every allocation node's bytes */
    uint64_t unfreed[SIM_MAX_DEVICES];  /* those no free node of the graph frees */
    int mapped;                     /* needs are mapped from the pools */
    int outstanding;                /* a launch left unfreed allocations in use */
};

/* The per-device graph memory pool of this process. */
static struct {
    uint64_t reserved, reserved_high, used, used_high, mapped;
} gpool[SIM_MAX_DEVICES];
static pthread_mutex_t graph_lock = PTHREAD_MUTEX_INITIALIZER;

static CUresult graph_check(CUgraph h, struct sim_graph **out)
{
    CUresult r = sim_check_init();
    if (r) return r;
    struct sim_graph *g = (struct sim_graph *)h;
    if (!g || g->magic != GRAPH_MAGIC) return CUDA_ERROR_INVALID_VALUE;
    *out = g;
    return CUDA_SUCCESS;
}

static CUresult node_check(CUgraphNode h, struct sim_gnode **out)
{
    CUresult r = sim_check_init();
    if (r) return r;
    struct sim_gnode *n = (struct sim_gnode *)h;
    if (!n || n->magic != NODE_MAGIC) return CUDA_ERROR_INVALID_VALUE;
    *out = n;
    return CUDA_SUCCESS;
}

static CUresult exec_check(CUgraphExec h, struct sim_gexec **out)
{
    CUresult r = sim_check_init();
    if (r) return r;
    struct sim_gexec *e = (struct sim_gexec *)h;
    if (!e || e->magic != EXEC_MAGIC) return CUDA_ERROR_INVALID_VALUE;
    *out = e;
    return CUDA_SUCCESS;
}

static void bump_high(int d)
{
    if (gpool[d].reserved > gpool[d].reserved_high) gpool[d].reserved_high = gpool[d].reserved;
    if (gpool[d].used > gpool[d].used_high) gpool[d].used_high = gpool[d].used;
}

SIM_API CUresult cuGraphCreate(CUgraph *phGraph, unsigned int flags)
{
    CUresult r = sim_check_init();
    if (r) return r;
    if (!phGraph || flags) return CUDA_ERROR_INVALID_VALUE;
    struct sim_graph *g = calloc(1, sizeof *g);
    if (!g) return CUDA_ERROR_OUT_OF_MEMORY;
    g->magic = GRAPH_MAGIC;
    *phGraph = (CUgraph)g;
    return CUDA_SUCCESS;
}

static CUresult add_node(struct sim_graph *g, const CUgraphNode *deps, size_t ndeps, struct sim_gnode *n,
                         CUgraphNode *out)
{
    if (ndeps && !deps) return CUDA_ERROR_INVALID_VALUE;
    for (size_t i = 0; i < ndeps; i++) {
        struct sim_gnode *d = (struct sim_gnode *)deps[i];
        if (!d || d->magic != NODE_MAGIC || d->graph != g) return CUDA_ERROR_INVALID_VALUE;
    }
    n->magic = NODE_MAGIC;
    n->graph = g;
    pthread_mutex_lock(&graph_lock);
    n->next = g->nodes;
    g->nodes = n;
    g->nnodes++;
    g->has_mem_nodes = 1;
    pthread_mutex_unlock(&graph_lock);
    *out = (CUgraphNode)n;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuGraphAddMemAllocNode(CUgraphNode *phGraphNode, CUgraph hGraph, const CUgraphNode *dependencies,
                                        size_t numDependencies, CUDA_MEM_ALLOC_NODE_PARAMS *nodeParams)
{
    struct sim_graph *g;
    CUresult r = graph_check(hGraph, &g);
    if (r) return r;
    if (!phGraphNode || !nodeParams || nodeParams->bytesize == 0) return CUDA_ERROR_INVALID_VALUE;
    const CUmemPoolProps *pp = &nodeParams->poolProps;
    if (pp->allocType != CU_MEM_ALLOCATION_TYPE_PINNED || pp->location.type != CU_MEM_LOCATION_TYPE_DEVICE ||
        pp->handleTypes != CU_MEM_HANDLE_TYPE_NONE)
        return CUDA_ERROR_INVALID_VALUE;
    if (sim_check_device(pp->location.id)) return CUDA_ERROR_INVALID_DEVICE;
    if (nodeParams->accessDescCount && !nodeParams->accessDescs) return CUDA_ERROR_INVALID_VALUE;
    struct sim_gnode *n = calloc(1, sizeof *n);
    if (!n) return CUDA_ERROR_OUT_OF_MEMORY;
    n->type = CU_GRAPH_NODE_TYPE_MEM_ALLOC;
    n->dev = pp->location.id;
    n->props = *pp;
    n->accessDescCount = nodeParams->accessDescCount;
    n->bytesize = nodeParams->bytesize;
    n->charged = sim_round_alloc(nodeParams->bytesize);
    void *va = mmap(NULL, n->charged, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (va == MAP_FAILED) {
        free(n);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    n->dptr = (CUdeviceptr)(uintptr_t)va;
    r = add_node(g, dependencies, numDependencies, n, phGraphNode);
    if (r) {
        munmap(va, n->charged);
        free(n);
        return r;
    }
    nodeParams->dptr = n->dptr;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuGraphMemAllocNodeGetParams(CUgraphNode hNode, CUDA_MEM_ALLOC_NODE_PARAMS *params_out)
{
    struct sim_gnode *n;
    CUresult r = node_check(hNode, &n);
    if (r) return r;
    if (!params_out || n->type != CU_GRAPH_NODE_TYPE_MEM_ALLOC) return CUDA_ERROR_INVALID_VALUE;
    memset(params_out, 0, sizeof *params_out);
    params_out->poolProps = n->props;
    params_out->accessDescs = NULL;      /* the peer access list is not kept */
    params_out->accessDescCount = 0;
    params_out->bytesize = n->bytesize;
    params_out->dptr = n->dptr;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuGraphAddMemFreeNode(CUgraphNode *phGraphNode, CUgraph hGraph, const CUgraphNode *dependencies,
                                       size_t numDependencies, CUdeviceptr dptr)
{
    struct sim_graph *g;
    CUresult r = graph_check(hGraph, &g);
    if (r) return r;
    if (!phGraphNode) return CUDA_ERROR_INVALID_VALUE;
    /* Only an allocation of the same graph, freed once. */
    struct sim_gnode *alloc = NULL;
    pthread_mutex_lock(&graph_lock);
    for (struct sim_gnode *n = g->nodes; n && !alloc; n = n->next)
        if (n->type == CU_GRAPH_NODE_TYPE_MEM_ALLOC && n->dptr == dptr)
            alloc = n;
    int bad = !alloc || alloc->freed_in_graph;
    if (!bad)
        alloc->freed_in_graph = 1;
    pthread_mutex_unlock(&graph_lock);
    if (bad) return CUDA_ERROR_INVALID_VALUE;
    struct sim_gnode *n = calloc(1, sizeof *n);
    if (!n) return CUDA_ERROR_OUT_OF_MEMORY;
    n->type = CU_GRAPH_NODE_TYPE_MEM_FREE;
    n->dev = alloc->dev;
    n->dptr = dptr;
    r = add_node(g, dependencies, numDependencies, n, phGraphNode);
    if (r) {
        pthread_mutex_lock(&graph_lock);
        alloc->freed_in_graph = 0;
        pthread_mutex_unlock(&graph_lock);
        free(n);
    }
    return r;
}

SIM_API CUresult cuGraphMemFreeNodeGetParams(CUgraphNode hNode, CUdeviceptr *dptr_out)
{
    struct sim_gnode *n;
    CUresult r = node_check(hNode, &n);
    if (r) return r;
    if (!dptr_out || n->type != CU_GRAPH_NODE_TYPE_MEM_FREE) return CUDA_ERROR_INVALID_VALUE;
    *dptr_out = n->dptr;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuGraphNodeGetType(CUgraphNode hNode, CUgraphNodeType *type)
{
    struct sim_gnode *n;
    CUresult r = node_check(hNode, &n);
    if (r) return r;
    if (!type) return CUDA_ERROR_INVALID_VALUE;
    *type = n->type;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuGraphGetNodes(CUgraph hGraph, CUgraphNode *nodes, size_t *numNodes)
{
    struct sim_graph *g;
    CUresult r = graph_check(hGraph, &g);
    if (r) return r;
    if (!numNodes) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&graph_lock);
    if (!nodes) {
        *numNodes = g->nnodes;
    } else {
        size_t i = 0;
        for (struct sim_gnode *n = g->nodes; n && i < *numNodes; n = n->next)
            nodes[i++] = (CUgraphNode)n;
        for (size_t j = i; j < *numNodes; j++)
            nodes[j] = NULL;
        *numNodes = i;
    }
    pthread_mutex_unlock(&graph_lock);
    return CUDA_SUCCESS;
}

SIM_API CUresult cuGraphDestroy(CUgraph hGraph)
{
    struct sim_graph *g;
    CUresult r = graph_check(hGraph, &g);
    if (r) return r;
    pthread_mutex_lock(&graph_lock);
    g->magic = 0;
    if (g->exec)
        g->exec->graph = NULL;     /* an executable graph outlives its graph */
    struct sim_gnode *n = g->nodes;
    pthread_mutex_unlock(&graph_lock);
    while (n) {
        struct sim_gnode *next = n->next;
        if (n->type == CU_GRAPH_NODE_TYPE_MEM_ALLOC)
            munmap((void *)(uintptr_t)n->dptr, n->charged);
        n->magic = 0;
        free(n);
        n = next;
    }
    free(g);
    return CUDA_SUCCESS;
}

static CUresult instantiate(CUgraphExec *out, CUgraph hGraph, unsigned long long flags)
{
    struct sim_graph *g;
    CUresult r = graph_check(hGraph, &g);
    if (r) return r;
    if (!out) return CUDA_ERROR_INVALID_VALUE;
    struct sim_gexec *e = calloc(1, sizeof *e);
    if (!e) return CUDA_ERROR_OUT_OF_MEMORY;
    e->magic = EXEC_MAGIC;
    e->flags = flags;
    pthread_mutex_lock(&graph_lock);
    if (g->has_mem_nodes && g->exec) {
        pthread_mutex_unlock(&graph_lock);
        free(e);
        return CUDA_ERROR_INVALID_VALUE;     /* one executable graph at a time */
    }
    for (struct sim_gnode *n = g->nodes; n; n = n->next) {
        if (n->type != CU_GRAPH_NODE_TYPE_MEM_ALLOC) continue;
        e->needs[n->dev] += n->charged;
        if (!n->freed_in_graph) e->unfreed[n->dev] += n->charged;
    }
    if (g->has_mem_nodes) {
        g->exec = e;
        e->graph = g;
    }
    pthread_mutex_unlock(&graph_lock);
    *out = (CUgraphExec)e;
    return CUDA_SUCCESS;
}

/* Maps an executable graph's needs from the pools, charging the devices for
 * what their idle bytes do not cover. With graph_lock held. */
static CUresult map_exec(struct sim_gexec *e)
{
    if (e->mapped) return CUDA_SUCCESS;
    uint64_t grown[SIM_MAX_DEVICES] = {0};
    for (int d = 0; d < SIM_MAX_DEVICES; d++) {
        if (!e->needs[d]) continue;
        uint64_t idle = gpool[d].reserved - gpool[d].mapped;
        uint64_t grow = e->needs[d] > idle ? e->needs[d] - idle : 0;
        if (grow && sim_vdev_charge(d, grow) != 0) {
            for (int k = 0; k < d; k++)
                if (grown[k]) {
                    sim_vdev_release(k, grown[k]);
                    gpool[k].reserved -= grown[k];
                    gpool[k].mapped -= e->needs[k];
                }
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
        grown[d] = grow;
        gpool[d].reserved += grow;
        gpool[d].mapped += e->needs[d];
        bump_high(d);
    }
    e->mapped = 1;
    return CUDA_SUCCESS;
}

static CUresult upload(CUgraphExec h, CUstream s)
{
    struct sim_gexec *e;
    CUresult r = exec_check(h, &e);
    if (r) return r;
    if ((r = sim_stream_check(s))) return r;
    pthread_mutex_lock(&graph_lock);
    r = map_exec(e);
    pthread_mutex_unlock(&graph_lock);
    return r;
}

SIM_API CUresult cuGraphUpload(CUgraphExec hGraphExec, CUstream hStream) { return upload(hGraphExec, hStream); }
SIM_API CUresult cuGraphUpload_ptsz(CUgraphExec hGraphExec, CUstream hStream) { return upload(hGraphExec, hStream); }

static CUresult launch(CUgraphExec h, CUstream s)
{
    struct sim_gexec *e;
    CUresult r = exec_check(h, &e);
    if (r) return r;
    if ((r = sim_stream_check(s))) return r;
    pthread_mutex_lock(&graph_lock);
    if (e->outstanding) {
        if (!(e->flags & CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH)) {
            pthread_mutex_unlock(&graph_lock);
            return CUDA_ERROR_INVALID_VALUE;
        }
        for (int d = 0; d < SIM_MAX_DEVICES; d++)
            gpool[d].used -= e->unfreed[d];
        e->outstanding = 0;
    }
    r = map_exec(e);
    if (r == CUDA_SUCCESS) {
        /* It runs to completion now: all its allocations live during the
         * run, those it does not free after it. */
        for (int d = 0; d < SIM_MAX_DEVICES; d++) {
            if (!e->needs[d]) continue;
            gpool[d].used += e->needs[d];
            bump_high(d);
            gpool[d].used -= e->needs[d] - e->unfreed[d];
            if (e->unfreed[d]) e->outstanding = 1;
        }
    }
    pthread_mutex_unlock(&graph_lock);
    return r;
}

SIM_API CUresult cuGraphLaunch(CUgraphExec hGraphExec, CUstream hStream) { return launch(hGraphExec, hStream); }
SIM_API CUresult cuGraphLaunch_ptsz(CUgraphExec hGraphExec, CUstream hStream) { return launch(hGraphExec, hStream); }

SIM_API CUresult cuGraphInstantiate(CUgraphExec *phGraphExec, CUgraph hGraph, CUgraphNode *phErrorNode,
                                    char *logBuffer, size_t bufferSize)
{
    if (phErrorNode) *phErrorNode = NULL;
    if (logBuffer && bufferSize) logBuffer[0] = 0;
    return instantiate(phGraphExec, hGraph, 0);
}
SIM_API CUresult cuGraphInstantiate_v2(CUgraphExec *phGraphExec, CUgraph hGraph, CUgraphNode *phErrorNode,
                                       char *logBuffer, size_t bufferSize)
{
    return cuGraphInstantiate(phGraphExec, hGraph, phErrorNode, logBuffer, bufferSize);
}

SIM_API CUresult cuGraphInstantiateWithFlags(CUgraphExec *phGraphExec, CUgraph hGraph, unsigned long long flags)
{
    if (flags & CUDA_GRAPH_INSTANTIATE_FLAG_UPLOAD) return CUDA_ERROR_INVALID_VALUE; /* WithParams only */
    return instantiate(phGraphExec, hGraph, flags);
}

SIM_API CUresult cuGraphExecDestroy(CUgraphExec hGraphExec);

static CUresult instantiate_params(CUgraphExec *phGraphExec, CUgraph hGraph, CUDA_GRAPH_INSTANTIATE_PARAMS *p)
{
    if (!p) return CUDA_ERROR_INVALID_VALUE;
    p->hErrNode_out = NULL;
    CUresult r = instantiate(phGraphExec, hGraph, p->flags);
    if (r == CUDA_SUCCESS && (p->flags & CUDA_GRAPH_INSTANTIATE_FLAG_UPLOAD)) {
        r = upload(*phGraphExec, p->hUploadStream);
        if (r) {
            cuGraphExecDestroy(*phGraphExec);
            *phGraphExec = NULL;
        }
    }
    p->result_out = r == CUDA_SUCCESS ? CUDA_GRAPH_INSTANTIATE_SUCCESS : CUDA_GRAPH_INSTANTIATE_ERROR;
    return r;
}
SIM_API CUresult cuGraphInstantiateWithParams(CUgraphExec *phGraphExec, CUgraph hGraph,
                                              CUDA_GRAPH_INSTANTIATE_PARAMS *instantiateParams)
{
    return instantiate_params(phGraphExec, hGraph, instantiateParams);
}
SIM_API CUresult cuGraphInstantiateWithParams_ptsz(CUgraphExec *phGraphExec, CUgraph hGraph,
                                                   CUDA_GRAPH_INSTANTIATE_PARAMS *instantiateParams)
{
    return instantiate_params(phGraphExec, hGraph, instantiateParams);
}

SIM_API CUresult cuGraphExecDestroy(CUgraphExec hGraphExec)
{
    struct sim_gexec *e;
    CUresult r = exec_check(hGraphExec, &e);
    if (r) return r;
    pthread_mutex_lock(&graph_lock);
    e->magic = 0;
    for (int d = 0; d < SIM_MAX_DEVICES; d++) {
        if (e->mapped) gpool[d].mapped -= e->needs[d];     /* stays reserved until trimmed */
        if (e->outstanding) gpool[d].used -= e->unfreed[d];
    }
    if (e->graph) e->graph->exec = NULL;
    pthread_mutex_unlock(&graph_lock);
    free(e);
    return CUDA_SUCCESS;
}

SIM_API CUresult cuDeviceGraphMemTrim(CUdevice device)
{
    CUresult r = sim_check_init();
    if (r) return r;
    if ((r = sim_check_device(device))) return r;
    pthread_mutex_lock(&graph_lock);
    uint64_t idle = gpool[device].reserved - gpool[device].mapped;
    gpool[device].reserved -= idle;
    pthread_mutex_unlock(&graph_lock);
    if (idle) sim_vdev_release(device, idle);
    return CUDA_SUCCESS;
}

SIM_API CUresult cuDeviceGetGraphMemAttribute(CUdevice device, CUgraphMem_attribute attr, void *value)
{
    CUresult r = sim_check_init();
    if (r) return r;
    if ((r = sim_check_device(device))) return r;
    if (!value) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&graph_lock);
    switch ((int)attr) {
    case CU_GRAPH_MEM_ATTR_USED_MEM_CURRENT: *(cuuint64_t *)value = gpool[device].used; break;
    case CU_GRAPH_MEM_ATTR_USED_MEM_HIGH: *(cuuint64_t *)value = gpool[device].used_high; break;
    case CU_GRAPH_MEM_ATTR_RESERVED_MEM_CURRENT: *(cuuint64_t *)value = gpool[device].reserved; break;
    case CU_GRAPH_MEM_ATTR_RESERVED_MEM_HIGH: *(cuuint64_t *)value = gpool[device].reserved_high; break;
    default: r = CUDA_ERROR_INVALID_VALUE; break;
    }
    pthread_mutex_unlock(&graph_lock);
    return r;
}

SIM_API CUresult cuDeviceSetGraphMemAttribute(CUdevice device, CUgraphMem_attribute attr, void *value)
{
    CUresult r = sim_check_init();
    if (r) return r;
    if ((r = sim_check_device(device))) return r;
    if (!value || *(cuuint64_t *)value != 0) return CUDA_ERROR_INVALID_VALUE;  /* high marks reset to 0 only */
    pthread_mutex_lock(&graph_lock);
    switch ((int)attr) {
    case CU_GRAPH_MEM_ATTR_USED_MEM_HIGH: gpool[device].used_high = gpool[device].used; break;
    case CU_GRAPH_MEM_ATTR_RESERVED_MEM_HIGH: gpool[device].reserved_high = gpool[device].reserved; break;
    default: r = CUDA_ERROR_INVALID_VALUE; break;
    }
    pthread_mutex_unlock(&graph_lock);
    return r;
}
