/* A scriptable CUDA driver client for the shim's integration tests. It
 * reaches the driver the way real programs do, chosen with -m:
 *   -m procaddress  (default) like cudart 12/13: dlopen libcuda.so.1, dlsym
 *                   only cuGetProcAddress_v2, then versioned lookups
 *   -m dlsym        like Triton / older cudart: dlsym every name
 * and runs the operations given as arguments, printing one line each:
 *
 *   init                 cuInit + primary context of device 0, made current
 *   device N             primary context of device N, made current
 *   ctx                  cuCtxCreate on the current device (a second context)
 *   ctxdestroy           cuCtxDestroy of the context the last `ctx` made
 *   reset                cuDevicePrimaryCtxReset of the current device
 *   alloc SIZE           cuMemAlloc            managed SIZE  cuMemAllocManaged
 *   talloc SIZE          cuMemAlloc on a second thread that stays alive (the
 *                        same one every time; `free` of it is then a free
 *                        from another thread)
 *   pitch W H            cuMemAllocPitch       async SIZE    cuMemAllocAsync
 *   pool SIZE            cuMemAllocFromPoolAsync on the device's default pool
 *   vmm SIZE             cuMemCreate (physical handle) on the current device
 *   array W H            cuArrayCreate (1 channel float)
 *   array3d W H D        cuArray3DCreate       mipmap W H LEVELS
 *   free I               free the I-th successful allocation (by its kind;
 *                        async ones are freed and their stream synchronised)
 *   freeasync I          cuMemFreeAsync of the I-th, without synchronising
 *   trim                 cuMemPoolTrimTo(the device's default pool, 0)
 *   pools N SIZE         N new pools (cuMemPoolCreate) on the current device,
 *                        SIZE from each (cuMemAllocFromPoolAsync, kept):
 *                        stops at the first error; prints "pools made=K"
 *   lastpool SIZE        cuMemAllocFromPoolAsync from the last pool `pools` made
 *   pooldestroy          cuMemPoolDestroy of that pool
 *   gnew                 cuGraphCreate: the current graph
 *   galloc SIZE          cuGraphAddMemAllocNode of SIZE on the current device
 *   gfree                cuGraphAddMemFreeNode of the last galloc's pointer
 *   ginst                cuGraphInstantiateWithFlags(0) of the current graph:
 *                        the current executable graph (the I-th made is
 *                        `gexec I`); ginstup: cuGraphInstantiateWithParams
 *                        with CUDA_GRAPH_INSTANTIATE_FLAG_UPLOAD; ginst1:
 *                        the five-argument cuGraphInstantiate_v2
 *   gupload, glaunch     cuGraphUpload, cuGraphLaunch of the current one
 *   gexecdestroy         cuGraphExecDestroy of it; gdestroy: cuGraphDestroy
 *   gtrim                cuDeviceGraphMemTrim of the current device
 *   greserved            prints "greserved=BYTES" (RESERVED_MEM_CURRENT)
 *   asyncstorm T N SIZE MAX  T threads, each N stream-ordered allocations of
 *                        SIZE/2, SIZE or 2*SIZE from the device's pool (at
 *                        most 4 live, the oldest freed; every 8th round a
 *                        trim), NVML's truth read after each: returns 0 if
 *                        it never passed MAX bytes, else 1; prints
 *                        "asyncstorm ok=A refused=R worst=BYTES"
 *   graphstorm T N SIZE MAX  the same with graphs: T threads, each N rounds
 *                        of a graph with one allocation node of SIZE/2,
 *                        SIZE or 2*SIZE (freed in the graph), instantiated,
 *                        launched twice, kept for one more round, then
 *                        destroyed; every 4th round a trim; NVML's truth
 *                        after each launch; prints "graphstorm ok=A
 *                        refused=R worst=BYTES"
 *   truthle SIZE         the driver's truth through NVML (every process the
 *                        process list shows on device 0, usedGpuMemory):
 *                        prints "truth=BYTES", returns 0 if at most SIZE, else 1
 *   freeall              free every live allocation
 *   info                 cuMemGetInfo: "info free=F total=T"
 *   info32, total32      the same through the 32-bit (v2000) forms
 *   alloc32 SIZE         cuMemAlloc through the 32-bit (v2000) form
 *   total                cuDeviceTotalMem of the current device
 *   expect RC            exit 3 unless the last operation returned RC (0, 2, ...)
 *   sleep MS             hold                  print "holding pid=N", pause until killed
 *   await PATH           print "awaiting PATH", then wait until PATH exists
 *                        (the test's go-ahead; exit 4 after 120 s without it)
 *   loop N alloc SIZE    N cuMemAlloc/cuMemFree pairs
 *   many N SIZE          N cuMemAlloc kept until exit (not numbered for free)
 *   forkhold SIZE        fork a child that initialises CUDA, allocates SIZE
 *                        and waits; the parent goes on when it holds it
 *   killchild            SIGKILL that child and reap it
 *   mainexit             the main thread ends (pthread_exit) while the
 *                        `talloc` thread lives on, holding what it allocated
 * SIZE takes K/M/G/T suffixes (a plain number is exact, up to 2^64 - 1). Exit status 0 unless an `expect` failed. */
#include "gpumem/cuda.h"
#include "gpumem/nvml.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

typedef CUresult (*PFN_cuDevicePrimaryCtxRetain)(CUcontext *, CUdevice);
typedef CUresult (*PFN_cuCtxSetCurrent)(CUcontext);
typedef CUresult (*PFN_cuDeviceGetDefaultMemPool)(CUmemoryPool *, CUdevice);
typedef CUresult (*PFN_cuStreamSynchronize)(CUstream);
typedef CUresult (*PFN_cuMemPoolTrimTo)(CUmemoryPool, size_t);
typedef CUresult (*PFN_cuMemPoolCreate)(CUmemoryPool *, const CUmemPoolProps *);
typedef CUresult (*PFN_cuMemPoolDestroy)(CUmemoryPool);

static struct {
    PFN_cuInit_v2000 init;
    PFN_cuDeviceGet_v2000 device_get;
    PFN_cuDevicePrimaryCtxRetain ctx_retain;
    PFN_cuCtxSetCurrent ctx_set;
    PFN_cuCtxCreate_v3020 ctx_create;
    PFN_cuCtxDestroy_v4000 ctx_destroy;
    PFN_cuMemAlloc_v2000 alloc32;
    PFN_cuMemGetInfo_v2000 info32;
    PFN_cuDeviceTotalMem_v2000 total32;
    PFN_cuDevicePrimaryCtxReset_v11000 ctx_reset;
    PFN_cuMemAlloc_v3020 alloc;
    PFN_cuMemAllocPitch_v3020 pitch;
    PFN_cuMemAllocManaged_v6000 managed;
    PFN_cuMemFree_v3020 free;
    PFN_cuMemAllocAsync_v11020 async;
    PFN_cuMemAllocFromPoolAsync_v11020 pool;
    PFN_cuMemFreeAsync_v11020 free_async;
    PFN_cuDeviceGetDefaultMemPool default_pool;
    PFN_cuStreamSynchronize sync;
    PFN_cuMemPoolTrimTo trim;
    PFN_cuMemPoolCreate pool_create;
    PFN_cuMemPoolDestroy pool_destroy;
    PFN_cuGraphCreate_v10000 graph_create;
    PFN_cuGraphAddMemAllocNode_v11040 graph_alloc;
    PFN_cuGraphAddMemFreeNode_v11040 graph_free;
    PFN_cuGraphInstantiateWithFlags_v11040 graph_inst;
    PFN_cuGraphInstantiateWithParams_v12000 graph_inst_params;
    PFN_cuGraphInstantiate_v11000 graph_inst1;
    PFN_cuGraphUpload_v11010 graph_upload;
    PFN_cuGraphLaunch_v10000 graph_launch;
    PFN_cuGraphExecDestroy_v10000 graph_exec_destroy;
    PFN_cuGraphDestroy_v10000 graph_destroy;
    PFN_cuDeviceGraphMemTrim_v11040 graph_trim;
    PFN_cuDeviceGetGraphMemAttribute_v11040 graph_attr;
    PFN_cuMemCreate_v10020 create;
    PFN_cuMemRelease_v10020 release;
    PFN_cuArrayCreate_v3020 array;
    PFN_cuArray3DCreate_v3020 array3d;
    PFN_cuArrayDestroy_v2000 array_destroy;
    PFN_cuMipmappedArrayCreate_v5000 mipmap;
    PFN_cuMipmappedArrayDestroy_v5000 mipmap_destroy;
    PFN_cuMemGetInfo_v3020 info;
    PFN_cuDeviceTotalMem_v3020 total;
} cu;

static void *lookup(void *h, int by_procaddress, PFN_cuGetProcAddress_v12000 gpa, const char *name,
                    const char *symbol, int version)
{
    void *p = NULL;
    if (by_procaddress) {
        CUdriverProcAddressQueryResult st;
        if (gpa(name, &p, version, 0, &st) != CUDA_SUCCESS)
            p = NULL;
    } else {
        p = dlsym(h, symbol);
    }
    if (!p)
        fprintf(stderr, "alloc_client: cannot resolve %s\n", symbol);
    return p;
}

static uint64_t size_arg(const char *s)
{
    char *end;
    uint64_t n = strtoull(s, &end, 10);
    if (!*end)
        return n; /* exact, up to 2^64 - 1 */
    double v = strtod(s, &end);
    switch (*end) {
    case 'K': case 'k': v *= 1024; break;
    case 'M': case 'm': v *= 1024 * 1024; break;
    case 'G': case 'g': v *= 1024.0 * 1024 * 1024; break;
    case 'T': case 't': v *= 1024.0 * 1024 * 1024 * 1024; break;
    default: break;
    }
    return (uint64_t)v;
}

enum kind { K_MEM, K_ASYNC, K_VMM, K_ARRAY, K_MIPMAP };
static struct { enum kind kind; uint64_t h; int live; } allocs[100000];
static int nallocs;
static CUdevice cur_dev;
static CUcontext made_ctx; /* by the last `ctx` */
static pid_t child;

static CUresult free_one(int i)
{
    if (i < 0 || i >= nallocs || !allocs[i].live)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult r;
    switch (allocs[i].kind) {
    case K_ASYNC: r = cu.free_async(allocs[i].h, 0); if (!r) r = cu.sync(0); break;
    case K_VMM: r = cu.release(allocs[i].h); break;
    case K_ARRAY: r = cu.array_destroy((CUarray)(uintptr_t)allocs[i].h); break;
    case K_MIPMAP: r = cu.mipmap_destroy((CUmipmappedArray)(uintptr_t)allocs[i].h); break;
    default: r = cu.free(allocs[i].h); break;
    }
    if (r == CUDA_SUCCESS)
        allocs[i].live = 0;
    return r;
}

static void keep(CUresult r, enum kind k, uint64_t h)
{
    if (r == CUDA_SUCCESS && nallocs < (int)(sizeof allocs / sizeof allocs[0])) {
        allocs[nallocs].kind = k;
        allocs[nallocs].h = h;
        allocs[nallocs].live = 1;
        nallocs++;
    }
}

static CUcontext cur_ctx;
static CUmemoryPool last_pool; /* by the last `pools` */
static CUgraph cur_graph;
static CUdeviceptr last_galloc;
static CUgraphExec execs[64], cur_exec;
static int nexecs;

/* The bytes NVML's process list shows on device 0 (every process it lists:
 * under the shim, the group's), or UINT64_MAX. */
static uint64_t nvml_truth(void)
{
    void *h = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return UINT64_MAX;
    PFN_nvmlInit_v2 init = (PFN_nvmlInit_v2)dlsym(h, "nvmlInit_v2");
    PFN_nvmlDeviceGetHandleByIndex_v2 by_index =
        (PFN_nvmlDeviceGetHandleByIndex_v2)dlsym(h, "nvmlDeviceGetHandleByIndex_v2");
    PFN_nvmlDeviceGetComputeRunningProcesses_v3 procs_of =
        (PFN_nvmlDeviceGetComputeRunningProcesses_v3)dlsym(h, "nvmlDeviceGetComputeRunningProcesses_v3");
    nvmlDevice_t dev;
    nvmlProcessInfo_t procs[64];
    unsigned n = 64;
    if (!init || !by_index || !procs_of || init() || by_index(0, &dev) || procs_of(dev, &n, procs))
        return UINT64_MAX;
    uint64_t sum = 0;
    for (unsigned i = 0; i < n; i++)
        sum += procs[i].usedGpuMemory;
    return sum;
}

static CUresult use_device(int n)
{
    CUdevice d;
    CUcontext c;
    CUresult r = cu.device_get(&d, n);
    if (!r)
        r = cu.ctx_retain(&c, d);
    if (!r)
        r = cu.ctx_set(c);
    if (!r) {
        cur_dev = d;
        cur_ctx = c;
    }
    return r;
}

/* `talloc`: one helper thread, alive until exit, allocates on request. */
static pthread_mutex_t worker_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t worker_cv = PTHREAD_COND_INITIALIZER;
static struct { size_t want; int busy; CUresult r; CUdeviceptr p; } job;

static void *worker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&worker_lock);
    for (;;) {
        while (!job.busy)
            pthread_cond_wait(&worker_cv, &worker_lock);
        job.r = cu.ctx_set(cur_ctx);
        if (!job.r)
            job.r = cu.alloc(&job.p, job.want);
        job.busy = 0;
        pthread_cond_broadcast(&worker_cv);
    }
    return NULL;
}

static CUresult worker_alloc(size_t want, CUdeviceptr *p)
{
    static pthread_t t;
    static int started;
    if (!started && pthread_create(&t, NULL, worker, NULL) == 0)
        started = 1;
    pthread_mutex_lock(&worker_lock);
    job.want = want;
    job.p = 0;
    job.busy = 1;
    pthread_cond_broadcast(&worker_cv);
    while (job.busy)
        pthread_cond_wait(&worker_cv, &worker_lock);
    *p = job.p;
    CUresult r = job.r;
    pthread_mutex_unlock(&worker_lock);
    return r;
}

/* `asyncstorm`: threads churning one pool under the limit. */
static struct { int n; uint64_t size, max; _Atomic int ok, refused, over; _Atomic uint64_t worst; } storm;

static void *storm_thread(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    CUdeviceptr live[4] = {0};
    CUmemoryPool pool;
    if (cu.ctx_set(cur_ctx) || cu.default_pool(&pool, cur_dev))
        return NULL;
    for (int i = 0; i < storm.n; i++) {
        int slot = i % 4;
        if (live[slot]) {
            cu.free_async(live[slot], 0);
            live[slot] = 0;
        }
        uint64_t sz = storm.size;
        switch (rand_r(&seed) % 3) {
        case 0: sz /= 2; break;
        case 1: sz *= 2; break;
        default: break;
        }
        CUresult r = cu.async(&live[slot], sz, 0);
        if (r == CUDA_SUCCESS) {
            storm.ok++;
        } else {
            live[slot] = 0;
            if (r == CUDA_ERROR_OUT_OF_MEMORY)
                storm.refused++;
        }
        if (i % 8 == 7) {
            cu.sync(0);
            cu.trim(pool, 0);
        }
        uint64_t t = nvml_truth();
        uint64_t w = storm.worst;
        while (t != UINT64_MAX && t > w && !atomic_compare_exchange_weak(&storm.worst, &w, t))
            ;
        if (t != UINT64_MAX && t > storm.max)
            storm.over = 1;
    }
    for (int k = 0; k < 4; k++)
        if (live[k])
            cu.free_async(live[k], 0);
    cu.sync(0);
    return NULL;
}

static void storm_truth(void)
{
    uint64_t t = nvml_truth();
    uint64_t w = storm.worst;
    while (t != UINT64_MAX && t > w && !atomic_compare_exchange_weak(&storm.worst, &w, t))
        ;
    if (t != UINT64_MAX && t > storm.max)
        storm.over = 1;
}

static void *graph_storm_thread(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    CUgraph kept_g = NULL;
    CUgraphExec kept_e = NULL;
    if (cu.ctx_set(cur_ctx))
        return NULL;
    for (int i = 0; i < storm.n; i++) {
        CUgraph gr;
        CUgraphExec e = NULL;
        if (cu.graph_create(&gr, 0))
            continue;
        CUDA_MEM_ALLOC_NODE_PARAMS p;
        memset(&p, 0, sizeof p);
        p.poolProps.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
        p.poolProps.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
        p.poolProps.location.id = cur_dev;
        p.bytesize = storm.size;
        switch (rand_r(&seed) % 3) {
        case 0: p.bytesize /= 2; break;
        case 1: p.bytesize *= 2; break;
        default: break;
        }
        CUgraphNode na, nf;
        if (!cu.graph_alloc(&na, gr, NULL, 0, &p) && !cu.graph_free(&nf, gr, &na, 1, p.dptr) &&
            !cu.graph_inst(&e, gr, 0)) {
            CUresult r = cu.graph_launch(e, 0);
            storm_truth();
            if (!r)
                r = cu.graph_launch(e, 0);
            storm_truth();
            if (!r)
                storm.ok++;
            else if (r == CUDA_ERROR_OUT_OF_MEMORY)
                storm.refused++;
        }
        if (kept_e)
            cu.graph_exec_destroy(kept_e);
        if (kept_g)
            cu.graph_destroy(kept_g);
        kept_e = e;
        kept_g = gr;
        if (i % 4 == 3)
            cu.graph_trim(cur_dev);
        storm_truth();
    }
    if (kept_e)
        cu.graph_exec_destroy(kept_e);
    if (kept_g)
        cu.graph_destroy(kept_g);
    return NULL;
}

/* NT threads (at most 16) of fn against the storm's settings; 1 when the
 * group was seen over its limit or nothing was granted. */
static CUresult run_storm(const char *name, int nt, void *(*fn)(void *))
{
    pthread_t th[16];
    if (nt > 16)
        nt = 16;
    for (int i = 0; i < nt; i++)
        pthread_create(&th[i], NULL, fn, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < nt; i++)
        pthread_join(th[i], NULL);
    printf("%s ok=%d refused=%d worst=%llu\n", name, (int)storm.ok, (int)storm.refused,
           (unsigned long long)storm.worst);
    return storm.over || storm.ok == 0 ? 1 : CUDA_SUCCESS;
}

int main(int argc, char **argv)
{
    int by_pa = 1, a = 1;
    if (argc > 2 && strcmp(argv[1], "-m") == 0) {
        by_pa = strcmp(argv[2], "dlsym") != 0;
        a = 3;
    }
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "alloc_client: %s\n", dlerror());
        return 1;
    }
    PFN_cuGetProcAddress_v12000 gpa = (PFN_cuGetProcAddress_v12000)dlsym(h, "cuGetProcAddress_v2");
    if (by_pa) {
        /* cudart re-fetches cuGetProcAddress through itself at 12000. */
        void *p = NULL;
        CUdriverProcAddressQueryResult st;
        if (!gpa || gpa("cuGetProcAddress", &p, 12000, 0, &st) != CUDA_SUCCESS || !p)
            return fprintf(stderr, "alloc_client: no cuGetProcAddress\n"), 1;
        gpa = (PFN_cuGetProcAddress_v12000)p;
    }
#define L(field, name, sym, ver) cu.field = (__typeof__(cu.field))lookup(h, by_pa, gpa, name, sym, ver)
    L(init, "cuInit", "cuInit", 2000);
    L(device_get, "cuDeviceGet", "cuDeviceGet", 2000);
    L(ctx_retain, "cuDevicePrimaryCtxRetain", "cuDevicePrimaryCtxRetain", 7000);
    L(ctx_set, "cuCtxSetCurrent", "cuCtxSetCurrent", 4000);
    L(ctx_create, "cuCtxCreate", "cuCtxCreate_v2", 3020);
    L(ctx_destroy, "cuCtxDestroy", "cuCtxDestroy_v2", 4000);
    L(alloc32, "cuMemAlloc", "cuMemAlloc", 2000);
    L(info32, "cuMemGetInfo", "cuMemGetInfo", 2000);
    L(total32, "cuDeviceTotalMem", "cuDeviceTotalMem", 2000);
    L(ctx_reset, "cuDevicePrimaryCtxReset", "cuDevicePrimaryCtxReset_v2", 11000);
    L(alloc, "cuMemAlloc", "cuMemAlloc_v2", 3020);
    L(pitch, "cuMemAllocPitch", "cuMemAllocPitch_v2", 3020);
    L(managed, "cuMemAllocManaged", "cuMemAllocManaged", 6000);
    L(free, "cuMemFree", "cuMemFree_v2", 3020);
    L(async, "cuMemAllocAsync", "cuMemAllocAsync", 11020);
    L(pool, "cuMemAllocFromPoolAsync", "cuMemAllocFromPoolAsync", 11020);
    L(free_async, "cuMemFreeAsync", "cuMemFreeAsync", 11020);
    L(default_pool, "cuDeviceGetDefaultMemPool", "cuDeviceGetDefaultMemPool", 11020);
    L(sync, "cuStreamSynchronize", "cuStreamSynchronize", 2000);
    L(trim, "cuMemPoolTrimTo", "cuMemPoolTrimTo", 11020);
    L(pool_create, "cuMemPoolCreate", "cuMemPoolCreate", 11020);
    L(pool_destroy, "cuMemPoolDestroy", "cuMemPoolDestroy", 11020);
    L(graph_create, "cuGraphCreate", "cuGraphCreate", 10000);
    L(graph_alloc, "cuGraphAddMemAllocNode", "cuGraphAddMemAllocNode", 11040);
    L(graph_free, "cuGraphAddMemFreeNode", "cuGraphAddMemFreeNode", 11040);
    L(graph_inst, "cuGraphInstantiateWithFlags", "cuGraphInstantiateWithFlags", 11040);
    L(graph_inst_params, "cuGraphInstantiateWithParams", "cuGraphInstantiateWithParams", 12000);
    L(graph_inst1, "cuGraphInstantiate", "cuGraphInstantiate_v2", 11000);
    L(graph_upload, "cuGraphUpload", "cuGraphUpload", 11010);
    L(graph_launch, "cuGraphLaunch", "cuGraphLaunch", 10000);
    L(graph_exec_destroy, "cuGraphExecDestroy", "cuGraphExecDestroy", 10000);
    L(graph_destroy, "cuGraphDestroy", "cuGraphDestroy", 10000);
    L(graph_trim, "cuDeviceGraphMemTrim", "cuDeviceGraphMemTrim", 11040);
    L(graph_attr, "cuDeviceGetGraphMemAttribute", "cuDeviceGetGraphMemAttribute", 11040);
    L(create, "cuMemCreate", "cuMemCreate", 10020);
    L(release, "cuMemRelease", "cuMemRelease", 10020);
    L(array, "cuArrayCreate", "cuArrayCreate_v2", 3020);
    L(array3d, "cuArray3DCreate", "cuArray3DCreate_v2", 3020);
    L(array_destroy, "cuArrayDestroy", "cuArrayDestroy", 2000);
    L(mipmap, "cuMipmappedArrayCreate", "cuMipmappedArrayCreate", 5000);
    L(mipmap_destroy, "cuMipmappedArrayDestroy", "cuMipmappedArrayDestroy", 5000);
    L(info, "cuMemGetInfo", "cuMemGetInfo_v2", 3020);
    L(total, "cuDeviceTotalMem", "cuDeviceTotalMem_v2", 3020);
#undef L
    setvbuf(stdout, NULL, _IOLBF, 0);
    CUresult last = 0;
    for (; a < argc; a++) {
        const char *op = argv[a];
        const char *x = a + 1 < argc ? argv[a + 1] : "0";
        const char *y = a + 2 < argc ? argv[a + 2] : "0";
        const char *z = a + 3 < argc ? argv[a + 3] : "0";
        if (!strcmp(op, "init")) {
            last = cu.init(0);
            if (!last)
                last = use_device(0);
        } else if (!strcmp(op, "device")) {
            last = use_device(atoi(x)); a++;
        } else if (!strcmp(op, "ctx")) {
            last = cu.ctx_create(&made_ctx, 0, cur_dev);
        } else if (!strcmp(op, "ctxdestroy")) {
            last = cu.ctx_destroy(made_ctx);
        } else if (!strcmp(op, "reset")) {
            last = cu.ctx_reset(cur_dev);
        } else if (!strcmp(op, "alloc")) {
            CUdeviceptr p = 0;
            last = cu.alloc(&p, size_arg(x)); a++;
            keep(last, K_MEM, p);
        } else if (!strcmp(op, "talloc")) {
            CUdeviceptr p = 0;
            last = worker_alloc(size_arg(x), &p); a++;
            keep(last, K_MEM, p);
        } else if (!strcmp(op, "managed")) {
            CUdeviceptr p = 0;
            last = cu.managed(&p, size_arg(x), CU_MEM_ATTACH_GLOBAL); a++;
            keep(last, K_MEM, p);
        } else if (!strcmp(op, "pitch")) {
            CUdeviceptr p = 0;
            size_t pitch = 0;
            last = cu.pitch(&p, &pitch, size_arg(x), size_arg(y), 4); a += 2;
            keep(last, K_MEM, p);
            if (!last)
                printf("pitch=%zu\n", pitch);
        } else if (!strcmp(op, "async")) {
            CUdeviceptr p = 0;
            last = cu.async(&p, size_arg(x), 0); a++;
            keep(last, K_ASYNC, p);
        } else if (!strcmp(op, "pool")) {
            CUdeviceptr p = 0;
            CUmemoryPool pool;
            last = cu.default_pool(&pool, cur_dev);
            if (!last)
                last = cu.pool(&p, size_arg(x), pool, 0);
            a++;
            keep(last, K_ASYNC, p);
        } else if (!strcmp(op, "vmm")) {
            CUmemAllocationProp prop;
            memset(&prop, 0, sizeof prop);
            prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
            prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
            prop.location.id = cur_dev;
            CUmemGenericAllocationHandle hd = 0;
            last = cu.create(&hd, size_arg(x), &prop, 0); a++;
            keep(last, K_VMM, hd);
        } else if (!strcmp(op, "array")) {
            CUDA_ARRAY_DESCRIPTOR d = {size_arg(x), size_arg(y), CU_AD_FORMAT_FLOAT, 1};
            CUarray arr = NULL;
            last = cu.array(&arr, &d); a += 2;
            keep(last, K_ARRAY, (uint64_t)(uintptr_t)arr);
        } else if (!strcmp(op, "array3d")) {
            CUDA_ARRAY3D_DESCRIPTOR d = {size_arg(x), size_arg(y), size_arg(z), CU_AD_FORMAT_FLOAT, 1, 0};
            CUarray arr = NULL;
            last = cu.array3d(&arr, &d); a += 3;
            keep(last, K_ARRAY, (uint64_t)(uintptr_t)arr);
        } else if (!strcmp(op, "mipmap")) {
            CUDA_ARRAY3D_DESCRIPTOR d = {size_arg(x), size_arg(y), 0, CU_AD_FORMAT_FLOAT, 1, 0};
            CUmipmappedArray m = NULL;
            last = cu.mipmap(&m, &d, (unsigned)atoi(z)); a += 3;
            keep(last, K_MIPMAP, (uint64_t)(uintptr_t)m);
        } else if (!strcmp(op, "free")) {
            last = free_one(atoi(x)); a++;
        } else if (!strcmp(op, "freeasync")) {
            int i = atoi(x);
            a++;
            last = i >= 0 && i < nallocs && allocs[i].live ? cu.free_async(allocs[i].h, 0) : CUDA_ERROR_INVALID_VALUE;
            if (!last)
                allocs[i].live = 0;
        } else if (!strcmp(op, "trim")) {
            CUmemoryPool pool;
            last = cu.default_pool(&pool, cur_dev);
            if (!last)
                last = cu.trim(pool, 0);
        } else if (!strcmp(op, "pools")) {
            int n = atoi(x), made = 0;
            uint64_t sz = size_arg(y);
            a += 2;
            last = 0;
            for (; made < n && !last; made++) {
                CUmemPoolProps props;
                memset(&props, 0, sizeof props);
                props.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
                props.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
                props.location.id = cur_dev;
                CUmemoryPool pool;
                CUdeviceptr p = 0;
                last = cu.pool_create(&pool, &props);
                if (!last) {
                    last_pool = pool;
                    last = cu.pool(&p, sz, pool, 0);
                }
                keep(last, K_ASYNC, p);
                if (last)
                    break;
            }
            printf("pools made=%d\n", made);
        } else if (!strcmp(op, "pooldestroy")) {
            last = cu.pool_destroy(last_pool);
        } else if (!strcmp(op, "lastpool")) {
            CUdeviceptr p = 0;
            last = cu.pool(&p, size_arg(x), last_pool, 0); a++;
            keep(last, K_ASYNC, p);
        } else if (!strcmp(op, "gnew")) {
            last = cu.graph_create(&cur_graph, 0);
        } else if (!strcmp(op, "galloc")) {
            CUDA_MEM_ALLOC_NODE_PARAMS p;
            memset(&p, 0, sizeof p);
            p.poolProps.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
            p.poolProps.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
            p.poolProps.location.id = cur_dev;
            p.bytesize = size_arg(x); a++;
            CUgraphNode n;
            last = cu.graph_alloc(&n, cur_graph, NULL, 0, &p);
            if (!last)
                last_galloc = p.dptr;
        } else if (!strcmp(op, "gfree")) {
            CUgraphNode n;
            last = cu.graph_free(&n, cur_graph, NULL, 0, last_galloc);
        } else if (!strcmp(op, "ginst") || !strcmp(op, "ginstup") || !strcmp(op, "ginst1")) {
            CUgraphExec e = NULL;
            if (!strcmp(op, "ginst")) {
                last = cu.graph_inst(&e, cur_graph, 0);
            } else if (!strcmp(op, "ginst1")) {
                last = cu.graph_inst1(&e, cur_graph, NULL, NULL, 0);
            } else {
                CUDA_GRAPH_INSTANTIATE_PARAMS ip;
                memset(&ip, 0, sizeof ip);
                ip.flags = CUDA_GRAPH_INSTANTIATE_FLAG_UPLOAD;
                last = cu.graph_inst_params(&e, cur_graph, &ip);
            }
            if (!last) {
                cur_exec = e;
                if (nexecs < 64)
                    execs[nexecs++] = e;
            }
        } else if (!strcmp(op, "gexec")) {
            int i = atoi(x);
            a++;
            last = i >= 0 && i < nexecs ? (cur_exec = execs[i], CUDA_SUCCESS) : CUDA_ERROR_INVALID_VALUE;
        } else if (!strcmp(op, "gupload")) {
            last = cu.graph_upload(cur_exec, 0);
        } else if (!strcmp(op, "glaunch")) {
            last = cu.graph_launch(cur_exec, 0);
        } else if (!strcmp(op, "gexecdestroy")) {
            last = cu.graph_exec_destroy(cur_exec);
        } else if (!strcmp(op, "gdestroy")) {
            last = cu.graph_destroy(cur_graph);
        } else if (!strcmp(op, "gtrim")) {
            last = cu.graph_trim(cur_dev);
        } else if (!strcmp(op, "greserved")) {
            cuuint64_t v = 0;
            last = cu.graph_attr(cur_dev, CU_GRAPH_MEM_ATTR_RESERVED_MEM_CURRENT, &v);
            printf("greserved=%llu\n", (unsigned long long)v);
        } else if (!strcmp(op, "asyncstorm") || !strcmp(op, "graphstorm")) {
            storm.n = atoi(y);
            storm.size = size_arg(z);
            storm.max = size_arg(a + 4 < argc ? argv[a + 4] : "0");
            last = run_storm(op, atoi(x), op[0] == 'a' ? storm_thread : graph_storm_thread);
            a += 4;
        } else if (!strcmp(op, "truthle")) {
            uint64_t t = nvml_truth();
            a++;
            printf("truth=%llu\n", (unsigned long long)t);
            last = t <= size_arg(x) ? CUDA_SUCCESS : 1;
        } else if (!strcmp(op, "freeall")) {
            last = 0;
            for (int i = 0; i < nallocs; i++)
                if (allocs[i].live && (last = free_one(i)))
                    break;
        } else if (!strcmp(op, "info")) {
            size_t f = 0, t = 0;
            last = cu.info(&f, &t);
            printf("info free=%zu total=%zu\n", f, t);
        } else if (!strcmp(op, "alloc32")) {
            CUdeviceptr_v1 p = 0;
            last = cu.alloc32(&p, (unsigned int)size_arg(x)); a++;
            keep(last, K_MEM, p);
        } else if (!strcmp(op, "info32")) {
            unsigned int f = 0, t = 0;
            last = cu.info32(&f, &t);
            printf("info32 free=%u total=%u\n", f, t);
        } else if (!strcmp(op, "total32")) {
            unsigned int t = 0;
            last = cu.total32(&t, cur_dev);
            printf("total32=%u\n", t);
        } else if (!strcmp(op, "total")) {
            size_t t = 0;
            last = cu.total(&t, cur_dev);
            printf("total=%zu\n", t);
        } else if (!strcmp(op, "expect")) {
            a++;
            if ((int)last != atoi(x)) {
                printf("expect %s: got %d\n", x, (int)last);
                return 3;
            }
            continue;
        } else if (!strcmp(op, "sleep")) {
            usleep((useconds_t)atoi(x) * 1000u); a++;
            continue;
        } else if (!strcmp(op, "await")) {
            printf("awaiting %s\n", x);
            fflush(stdout);
            int n = 0;
            while (access(x, F_OK) != 0) {
                if (++n > 12000) {
                    printf("await %s: never appeared\n", x);
                    return 4;
                }
                usleep(10000);
            }
            a++;
            continue;
        } else if (!strcmp(op, "forkhold")) {
            int fds[2];
            char c = 0;
            a++;
            if (pipe(fds) < 0)
                return 1;
            child = fork();
            if (child == 0) {
                CUdeviceptr p = 0;
                CUresult r = cu.init(0);
                if (!r)
                    r = use_device(0);
                if (!r)
                    r = cu.alloc(&p, size_arg(x));
                c = (char)('0' + (r == CUDA_SUCCESS));
                (void)!write(fds[1], &c, 1);
                pause();
                _exit(0);
            }
            last = read(fds[0], &c, 1) == 1 && c == '1' ? CUDA_SUCCESS : CUDA_ERROR_UNKNOWN;
        } else if (!strcmp(op, "killchild")) {
            last = kill(child, SIGKILL) == 0 && waitpid(child, NULL, 0) == child ? CUDA_SUCCESS : CUDA_ERROR_UNKNOWN;
        } else if (!strcmp(op, "mainexit")) {
            printf("mainexit\n");
            pthread_exit(NULL);
        } else if (!strcmp(op, "hold")) {
            printf("holding pid=%d\n", (int)getpid());
            pause();
        } else if (!strcmp(op, "loop")) {
            int n = atoi(x);
            uint64_t sz = size_arg(z);
            a += 3;
            for (int i = 0; i < n && !last; i++) {
                CUdeviceptr p;
                last = cu.alloc(&p, sz);
                if (!last)
                    last = cu.free(p);
            }
        } else if (!strcmp(op, "many")) {
            int n = atoi(x);
            uint64_t sz = size_arg(y);
            a += 2;
            for (int i = 0; i < n && !last; i++) {
                CUdeviceptr p;
                last = cu.alloc(&p, sz);
            }
        } else {
            fprintf(stderr, "alloc_client: unknown operation \"%s\"\n", op);
            return 2;
        }
        printf("%s -> %d\n", op, (int)last);
    }
    return 0;
}
