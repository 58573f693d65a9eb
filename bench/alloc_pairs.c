/* alloc_pairs: the cost of cuMemAlloc + cuMemFree pairs, as an application
 * built on cudart 12/13 pays it. Reaches the driver the way cudart does:
 * dlopen("libcuda.so.1"), dlsym only cuGetProcAddress_v2, re-fetch
 * cuGetProcAddress through itself at 12000, then versioned lookups. Run it
 * with and without the shim (LD_PRELOAD) and compare; bench/run.sh does.
 *
 *   alloc_pairs [options]
 *     -o OP       pair (default): cuMemAlloc(SIZE) + cuMemFree
 *                 ctxget: cuCtxGetCurrent (a call the shim does not hook)
 *                 htod:   cuMemcpyHtoD of 8 bytes (not hooked either)
 *     -n N        operations per thread per run (default 100000)
 *     -t T        threads, each doing N operations at once (default 1)
 *     -l L        live allocations of SIZE held during the runs (default 0)
 *     -r R        timed runs; the median is reported (default 7)
 *     -w W        untimed warm-up operations first (default 1000)
 *     -s SIZE     allocation size, K/M/G suffixes (default 4K)
 *     -c          one untimed measured run for callgrind: the N operations
 *                 run inside measured_run() (use --toggle-collect=measured_run)
 *     -S FD       start-up probe for bench/startup (must come first): write
 *                 the CLOCK_MONOTONIC time at main() to FD; then with -n 0
 *                 exit, otherwise reach the driver as above, make the primary
 *                 context current, do one pair and write the time again
 *
 * Prints one line of key=value fields: ns_per_op (median over runs of the
 * wall time of one run divided by the operations of all threads), ops_per_s
 * (all threads together), min/max ns_per_op over the runs, and where the
 * resolved function lives (resolved_in=libcuda.so.1 means the application
 * holds the driver's own pointer, libgpumem.so means the shim's hook).
 * Exit status 0, or 1 if the driver could not be reached or a call failed. */
#include "gpumem/cuda.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Driver signatures this file needs beyond include/gpumem/cuda.h. */
typedef CUresult (*bench_ctx_set_fn)(CUcontext ctx);
typedef CUresult (*bench_ctx_get_fn)(CUcontext *pctx);
typedef CUresult (*bench_htod_fn)(CUdeviceptr dst, const void *src, size_t bytes);

enum op { OP_PAIR, OP_CTXGET, OP_HTOD };

static struct {
    PFN_cuInit_v2000 init;
    PFN_cuDeviceGet_v2000 device_get;
    PFN_cuDevicePrimaryCtxRetain_v7000 ctx_retain;
    bench_ctx_set_fn ctx_set;
    bench_ctx_get_fn ctx_get;
    PFN_cuMemAlloc_v3020 alloc;
    PFN_cuMemFree_v3020 free;
    bench_htod_fn htod;
} cu;

static struct {
    enum op op;
    long n, threads, live, runs, warmup;
    size_t size;
} opt = {OP_PAIR, 100000, 1, 0, 7, 1000, 4096};

static CUcontext ctx;
static CUdeviceptr htod_dst;
static _Atomic int failed;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int die(const char *what, CUresult r)
{
    fprintf(stderr, "alloc_pairs: %s failed (CUresult %d)\n", what, (int)r);
    return 1;
}

static size_t size_arg(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    switch (*end) {
    case 'K': case 'k': v *= 1024; break;
    case 'M': case 'm': v *= 1024 * 1024; break;
    case 'G': case 'g': v *= 1024.0 * 1024 * 1024; break;
    default: break;
    }
    return v < 1 ? 1 : (size_t)v;
}

/* The loop under test: no I/O, no timing calls, nothing but the driver. */
static void run_ops(long n)
{
    CUresult r = CUDA_SUCCESS;
    switch (opt.op) {
    case OP_PAIR:
        for (long i = 0; i < n && r == CUDA_SUCCESS; i++) {
            CUdeviceptr p;
            r = cu.alloc(&p, opt.size);
            if (r == CUDA_SUCCESS)
                r = cu.free(p);
        }
        break;
    case OP_CTXGET:
        for (long i = 0; i < n && r == CUDA_SUCCESS; i++) {
            CUcontext c;
            r = cu.ctx_get(&c);
        }
        break;
    case OP_HTOD: {
        uint64_t v = 42;
        for (long i = 0; i < n && r == CUDA_SUCCESS; i++)
            r = cu.htod(htod_dst, &v, sizeof v);
        break;
    }
    }
    if (r != CUDA_SUCCESS)
        failed = (int)r;
}

/* Callgrind counts only inside this function (--toggle-collect). It is
 * called through a volatile pointer, so no compiler can inline it or call
 * a specialised copy under another name. */
__attribute__((noinline)) void measured_run(long n);
__attribute__((noinline)) void measured_run(long n) { run_ops(n); }
static void (*volatile measured_run_ptr)(long) = measured_run;

static pthread_barrier_t start_line, finish_line;

static void *worker(void *arg)
{
    CUresult r = cu.ctx_set(ctx);
    if (r != CUDA_SUCCESS)
        failed = (int)r;
    run_ops(opt.warmup);
    for (long k = 0; k < opt.runs; k++) {
        pthread_barrier_wait(&start_line);
        run_ops(opt.n);
        pthread_barrier_wait(&finish_line);
    }
    return arg;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Times opt.runs runs of opt.threads threads x opt.n operations. */
static void timed_runs(double *ns_per_op)
{
    pthread_t tid[64];
    pthread_barrier_init(&start_line, NULL, (unsigned)opt.threads + 1);
    pthread_barrier_init(&finish_line, NULL, (unsigned)opt.threads + 1);
    for (long i = 0; i < opt.threads; i++)
        pthread_create(&tid[i], NULL, worker, NULL);
    for (long k = 0; k < opt.runs; k++) {
        pthread_barrier_wait(&start_line);
        double t0 = now_ns();
        pthread_barrier_wait(&finish_line);
        ns_per_op[k] = (now_ns() - t0) / (double)(opt.n * opt.threads);
    }
    for (long i = 0; i < opt.threads; i++)
        pthread_join(tid[i], NULL);
}

static const char *where(void *fn)
{
    Dl_info info;
    if (!fn || !dladdr(fn, &info) || !info.dli_fname)
        return "unknown";
    const char *slash = strrchr(info.dli_fname, '/');
    return slash ? slash + 1 : info.dli_fname;
}

static void report_time(int fd)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long t = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    if (write(fd, &t, sizeof t) != (ssize_t)sizeof t)
        _exit(1);
}

int main(int argc, char **argv)
{
    int callgrind = 0, startup_fd = -1, c;
    if (argc > 2 && strcmp(argv[1], "-S") == 0) /* before anything else */
        report_time(startup_fd = atoi(argv[2]));
    while ((c = getopt(argc, argv, "o:n:t:l:r:w:s:cS:")) != -1) {
        switch (c) {
        case 'o':
            opt.op = !strcmp(optarg, "ctxget") ? OP_CTXGET : !strcmp(optarg, "htod") ? OP_HTOD : OP_PAIR;
            break;
        case 'n': opt.n = atol(optarg); break;
        case 't': opt.threads = atol(optarg); break;
        case 'l': opt.live = atol(optarg); break;
        case 'r': opt.runs = atol(optarg); break;
        case 'w': opt.warmup = atol(optarg); break;
        case 's': opt.size = size_arg(optarg); break;
        case 'c': callgrind = 1; break;
        case 'S': break;
        default: fprintf(stderr, "usage: see the comment at the top of bench/alloc_pairs.c\n"); return 2;
        }
    }
    if (startup_fd >= 0 && opt.n == 0)
        return 0; /* a process that never touches CUDA */
    if (opt.threads < 1 || opt.threads > 64 || opt.runs < 1 || opt.runs > 1000 || opt.n < 0 || opt.live < 0)
        return fprintf(stderr, "alloc_pairs: bad -t/-r/-n/-l\n"), 2;

    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return fprintf(stderr, "alloc_pairs: %s\n", dlerror()), 1;
    PFN_cuGetProcAddress_v12000 gpa = (PFN_cuGetProcAddress_v12000)dlsym(h, "cuGetProcAddress_v2");
    void *p = NULL;
    CUdriverProcAddressQueryResult st;
    if (!gpa || gpa("cuGetProcAddress", &p, 12000, 0, &st) != CUDA_SUCCESS || !p)
        return fprintf(stderr, "alloc_pairs: no cuGetProcAddress\n"), 1;
    gpa = (PFN_cuGetProcAddress_v12000)p;
#define L(field, name, ver)                                                            \
    do {                                                                               \
        void *fn_ = NULL;                                                              \
        if (gpa(name, &fn_, ver, 0, &st) != CUDA_SUCCESS || !fn_)                      \
            return fprintf(stderr, "alloc_pairs: cannot resolve %s@%d\n", name, ver), 1; \
        cu.field = (__typeof__(cu.field))fn_;                                          \
    } while (0)
    L(init, "cuInit", 2000);
    L(device_get, "cuDeviceGet", 2000);
    L(ctx_retain, "cuDevicePrimaryCtxRetain", 7000);
    L(ctx_set, "cuCtxSetCurrent", 4000);
    L(ctx_get, "cuCtxGetCurrent", 4000);
    L(alloc, "cuMemAlloc", 3020);
    L(free, "cuMemFree", 3020);
    L(htod, "cuMemcpyHtoD", 3020);
#undef L
    CUdevice dev;
    CUresult r = cu.init(0);
    if (r) return die("cuInit", r);
    if ((r = cu.device_get(&dev, 0))) return die("cuDeviceGet", r);
    if ((r = cu.ctx_retain(&ctx, dev))) return die("cuDevicePrimaryCtxRetain", r);
    if ((r = cu.ctx_set(ctx))) return die("cuCtxSetCurrent", r);

    if (startup_fd >= 0) {
        CUdeviceptr d;
        if ((r = cu.alloc(&d, opt.size)) || (r = cu.free(d)))
            return die("start-up pair", r);
        report_time(startup_fd);
        return 0;
    }

    if (opt.op == OP_HTOD && (r = cu.alloc(&htod_dst, 4096)))
        return die("cuMemAlloc (copy target)", r);
    CUdeviceptr *live = NULL;
    if (opt.live) {
        live = calloc((size_t)opt.live, sizeof *live);
        if (!live)
            return fprintf(stderr, "alloc_pairs: out of memory\n"), 1;
        for (long i = 0; i < opt.live; i++)
            if ((r = cu.alloc(&live[i], opt.size)))
                return die("cuMemAlloc (live set)", r);
    }

    void *fn = opt.op == OP_PAIR ? (void *)cu.alloc : opt.op == OP_CTXGET ? (void *)cu.ctx_get : (void *)cu.htod;
    const char *opname = opt.op == OP_PAIR ? "pair" : opt.op == OP_CTXGET ? "ctxget" : "htod";
    if (callgrind) {
        run_ops(opt.warmup);
        measured_run_ptr(opt.n);
        printf("op=%s n=%ld live=%ld size=%zu resolved_in=%s callgrind_run=1\n", opname, opt.n, opt.live,
               opt.size, where(fn));
    } else {
        double ns[1000];
        timed_runs(ns);
        qsort(ns, (size_t)opt.runs, sizeof ns[0], cmp_double);
        double med = opt.runs % 2 ? ns[opt.runs / 2] : (ns[opt.runs / 2 - 1] + ns[opt.runs / 2]) / 2;
        printf("op=%s n=%ld threads=%ld live=%ld size=%zu runs=%ld ns_per_op=%.1f ops_per_s=%.0f "
               "min_ns=%.1f max_ns=%.1f resolved_in=%s\n",
               opname, opt.n, opt.threads, opt.live, opt.size, opt.runs, med, 1e9 / med, ns[0],
               ns[opt.runs - 1], where(fn));
    }
    for (long i = 0; i < opt.live; i++)
        cu.free(live[i]);
    free(live);
    if (opt.op == OP_HTOD)
        cu.free(htod_dst);
    if (failed)
        return die("an operation in the loop", (CUresult)failed);
    return 0;
}
