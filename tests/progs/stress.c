/* Stress test of group accounting under SIGKILL (docs/testing.md, "Limits,
 * judged as an attacker would").
 *
 *   stress worker THREADS MAXMIB    churn allocations forever (run in a group);
 *                                   a negative MAXMIB means sizes in KiB
 *   stress judge PROCS SECONDS LIMIT_MIB THREADS MAXMIB [SEED]
 *
 * The judge keeps PROCS workers running in the group, SIGKILLs one every
 * 20-120 ms (and, one time in three, kills a fresh worker 0-3 ms after its
 * start, i.e. inside the shim's start-up), gives some workers injected driver
 * faults, and has some of them end their main thread with pthread_exit (the
 * process then lives on in its other threads, holding its memory, beside a
 * zombie leader) or exit while their threads allocate. A second thread of
 * the judge asks the simulated GPU itself (NVML: the driver's per-process
 * truth) every 2 ms how much the group's processes hold, for the whole run:
 * that may never pass the limit. At the end every worker is killed and the
 * device must be back to 0. Prints the test protocol's lines, and the seed
 * (STRESS_SEED or SEED reruns the same choices of the judge). */
#include "gpumem/cuda.h"
#include "gpumem/nvml.h"

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef CUresult (*PFN_retain)(CUcontext *, CUdevice);
typedef CUresult (*PFN_setcur)(CUcontext);

static PFN_cuMemAlloc_v3020 mem_alloc;
static PFN_cuMemFree_v3020 mem_free;
static int maxmib;
static CUcontext ctx;
static PFN_setcur set_current;

/* The process's live allocations, shared by its threads: a thread frees
 * whatever it finds in the entry it picks, so allocations are often freed
 * by another thread than the one that made them. */
#define HELD 32
static _Atomic CUdeviceptr held[HELD];

static void *churn(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg ^ (unsigned)getpid();
    set_current(ctx);
    for (;;) {
        int i = rand_r(&seed) % HELD;
        CUdeviceptr p = atomic_exchange(&held[i], 0);
        if (p) {
            mem_free(p);
        } else {
            /* maxmib < 0: sizes in KiB */
            size_t sz = maxmib > 0 ? ((size_t)(rand_r(&seed) % maxmib) + 1) << 20
                                   : ((size_t)(rand_r(&seed) % -maxmib) + 1) << 10;
            CUdeviceptr none = 0;
            if (mem_alloc(&p, sz) == CUDA_SUCCESS && !atomic_compare_exchange_strong(&held[i], &none, p))
                mem_free(p); /* another thread filled the entry meanwhile */
        }
    }
    return NULL;
}

/* How a worker's main thread ends (STRESS_END in its environment):
 * "pthread_exit" after starting its threads, or "exit" after a few ms of
 * churn, with its threads mid-allocation; otherwise it churns too. */
static void *exit_soon(void *arg)
{
    struct timespec ts = {0, (long)(uintptr_t)arg * 1000000L};
    nanosleep(&ts, NULL);
    exit(0);
}

static int worker(int threads)
{
    void *h = dlopen("libcuda.so.1", RTLD_NOW);
    if (!h)
        return 1;
    PFN_cuGetProcAddress_v12000 gpa = (PFN_cuGetProcAddress_v12000)dlsym(h, "cuGetProcAddress_v2");
    CUdriverProcAddressQueryResult st;
    PFN_cuInit_v2000 init;
    PFN_retain retain;
    gpa("cuInit", (void **)&init, 2000, 0, &st);
    gpa("cuDevicePrimaryCtxRetain", (void **)&retain, 7000, 0, &st);
    gpa("cuCtxSetCurrent", (void **)&set_current, 4000, 0, &st);
    gpa("cuMemAlloc", (void **)&mem_alloc, 3020, 0, &st);
    gpa("cuMemFree", (void **)&mem_free, 3020, 0, &st);
    if (init(0) || retain(&ctx, 0))
        return 1;
    const char *end = getenv("STRESS_END");
    pthread_t t;
    for (int i = 1; i < threads; i++)
        pthread_create(&t, NULL, churn, (void *)(uintptr_t)i);
    if (end && strcmp(end, "pthread_exit") == 0) {
        pthread_create(&t, NULL, churn, (void *)(uintptr_t)threads);
        pthread_exit(NULL);
    }
    if (end && strcmp(end, "exit") == 0)
        pthread_create(&t, NULL, exit_soon, (void *)(uintptr_t)(5 + getpid() % 50));
    churn(0);
    return 0;
}

/* ---- judge ---------------------------------------------------------- */

static PFN_nvmlDeviceGetComputeRunningProcesses_v3 nv_procs;
static nvmlDevice_t nv_dev;
static char *self_path;
static char argbuf[2][16];

static pid_t spawn(int faulty)
{
    /* Chosen before the fork, so the seed decides it. */
    int how = rand() % 4;
    pid_t p = fork();
    if (p == 0) {
        if (how == 1)
            setenv("STRESS_END", "pthread_exit", 1);
        else if (how == 2)
            setenv("STRESS_END", "exit", 1);
        /* The judge runs without the shim; its workers run with it. */
        if (getenv("STRESS_PRELOAD"))
            setenv("LD_PRELOAD", getenv("STRESS_PRELOAD"), 1);
        if (faulty) {
            char n[16];
            snprintf(n, sizeof n, "%d", 3 + rand() % 20);
            setenv("GPUMEM_SIM_FAIL_ALLOC_NTH", n, 1);
        }
        execl(self_path, self_path, "worker", argbuf[0], argbuf[1], (char *)NULL);
        _exit(127);
    }
    return p;
}

static uint64_t truth(void)
{
    nvmlProcessInfo_t procs[256];
    unsigned n = 256;
    if (nv_procs(nv_dev, &n, procs) != NVML_SUCCESS)
        return UINT64_MAX;
    uint64_t sum = 0;
    for (unsigned i = 0; i < n; i++)
        sum += procs[i].usedGpuMemory;
    return sum;
}

static void msleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The sampler: the driver's truth every 2 ms while the storm runs. The
 * truth is a sum over processes (and over each process's threads) read one
 * after another, not at one instant: a free in one process and an
 * allocation in another can both be seen, and the sum then passes what the
 * device ever held. So a sample over the limit counts only when the two
 * samples right after it (well under a millisecond) are over too: a group
 * really over its limit stays so until one of its processes frees, while a
 * torn read would have to recur twice in a row. */
static uint64_t limit_bytes;
static atomic_int sampling = 1;
static _Atomic uint64_t samples, worst, over;

static void *sampler(void *arg)
{
    (void)arg;
    while (atomic_load(&sampling)) {
        uint64_t t = truth();
        for (int again = 0; again < 2 && t != UINT64_MAX && t > limit_bytes; again++) {
            uint64_t u = truth();
            t = u < t ? u : t;
        }
        if (t != UINT64_MAX) {
            atomic_fetch_add(&samples, 1);
            uint64_t w = atomic_load(&worst);
            while (t > w && !atomic_compare_exchange_weak(&worst, &w, t))
                ;
            if (t > limit_bytes && atomic_fetch_add(&over, 1) < 5)
                printf("# sample %llu: group holds %llu MiB > limit %llu MiB\n",
                       (unsigned long long)atomic_load(&samples), (unsigned long long)(t >> 20),
                       (unsigned long long)(limit_bytes >> 20));
        }
        msleep(2);
    }
    return NULL;
}

/* Workers that ended by themselves (STRESS_END=exit) are replaced. */
static void respawn_exited(pid_t *w, int procs)
{
    for (int i = 0; i < procs; i++)
        if (waitpid(w[i], NULL, WNOHANG) == w[i])
            w[i] = spawn(rand() % 3 == 0);
}

static unsigned seed;

static int judge(int procs, int seconds, uint64_t limit)
{
    void *h = dlopen("libnvidia-ml.so.1", RTLD_NOW);
    if (!h)
        return printf("FAIL stress_setup: no NVML: %s\n", dlerror()), 1;
    PFN_nvmlInit_v2 init = (PFN_nvmlInit_v2)dlsym(h, "nvmlInit_v2");
    PFN_nvmlDeviceGetHandleByIndex_v2 by_index =
        (PFN_nvmlDeviceGetHandleByIndex_v2)dlsym(h, "nvmlDeviceGetHandleByIndex_v2");
    nv_procs = (PFN_nvmlDeviceGetComputeRunningProcesses_v3)dlsym(h, "nvmlDeviceGetComputeRunningProcesses_v3");
    PFN_nvmlDeviceGetMemoryInfo meminfo = (PFN_nvmlDeviceGetMemoryInfo)dlsym(h, "nvmlDeviceGetMemoryInfo");
    if (init() || by_index(0, &nv_dev))
        return printf("FAIL stress_setup: NVML init\n"), 1;
    pid_t *w = calloc((size_t)procs, sizeof *w);
    for (int i = 0; i < procs; i++)
        w[i] = spawn(i % 3 == 2);
    limit_bytes = limit;
    pthread_t st;
    pthread_create(&st, NULL, sampler, NULL);
    time_t end = time(NULL) + seconds;
    uint64_t kills = 0, startup_kills = 0;
    while (time(NULL) < end) {
        msleep(20 + rand() % 100);
        respawn_exited(w, procs);
        int v = rand() % procs;
        kill(w[v], SIGKILL);
        waitpid(w[v], NULL, 0);
        kills++;
        if (rand() % 3 == 0) { /* die inside start-up */
            pid_t p = spawn(0);
            usleep((useconds_t)(rand() % 3000));
            kill(p, SIGKILL);
            waitpid(p, NULL, 0);
            startup_kills++;
        }
        w[v] = spawn(rand() % 3 == 0);
    }
    for (int i = 0; i < procs; i++) {
        kill(w[i], SIGKILL);
        waitpid(w[i], NULL, 0);
    }
    atomic_store(&sampling, 0);
    pthread_join(st, NULL);
    printf("# %llu samples of the driver's truth, %llu kills (%llu during start-up), worst %llu MiB of %llu MiB\n",
           (unsigned long long)samples, (unsigned long long)kills, (unsigned long long)startup_kills,
           (unsigned long long)(worst >> 20), (unsigned long long)(limit >> 20));
    if (over)
        printf("FAIL stress_never_over_limit: %llu of %llu samples over the limit (rerun: STRESS_SEED=%u)\n",
               (unsigned long long)over, (unsigned long long)samples, seed);
    else
        printf("ok stress_never_over_limit\n");
    printf("%s stress_limit_was_under_pressure%s\n", worst > limit / 2 ? "ok" : "FAIL",
           worst > limit / 2 ? "" : ": workers never got near the limit; the test proves nothing");
    nvmlMemory_t m;
    uint64_t used = UINT64_MAX;
    for (int i = 0; i < 100; i++) {
        if (meminfo(nv_dev, &m) == NVML_SUCCESS && (used = m.used) == 0)
            break;
        msleep(20);
    }
    if (used == 0)
        printf("ok stress_device_back_to_zero\n");
    else
        printf("FAIL stress_device_back_to_zero: %llu bytes still used\n", (unsigned long long)used);
    return 0;
}

int main(int argc, char **argv)
{
    self_path = argv[0];
    if (argc == 4 && strcmp(argv[1], "worker") == 0) {
        maxmib = atoi(argv[3]);
        return worker(atoi(argv[2]));
    }
    if ((argc == 7 || argc == 8) && strcmp(argv[1], "judge") == 0) {
        const char *fixed = argc == 8 ? argv[7] : getenv("STRESS_SEED");
        seed = fixed && *fixed ? (unsigned)strtoul(fixed, NULL, 10) : (unsigned)time(NULL) ^ (unsigned)getpid();
        printf("# seed %u\n", seed);
        fflush(stdout);
        srand(seed);
        snprintf(argbuf[0], sizeof argbuf[0], "%s", argv[5]);
        snprintf(argbuf[1], sizeof argbuf[1], "%s", argv[6]);
        return judge(atoi(argv[2]), atoi(argv[3]), (uint64_t)atoll(argv[4]) << 20);
    }
    fprintf(stderr, "usage: stress worker THREADS MAXMIB | stress judge PROCS SECONDS LIMIT_MIB THREADS MAXMIB [SEED]\n");
    return 2;
}
