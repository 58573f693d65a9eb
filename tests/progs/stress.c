/* Stress test of group accounting under SIGKILL (issue 3, DESIGN section 5).
 *
 *   stress worker THREADS MAXMIB    churn allocations forever (run in a group);
 *                                   a negative MAXMIB means sizes in KiB
 *   stress judge GROUPDIR PROCS SECONDS LIMIT_MIB
 *
 * The judge keeps PROCS workers running in the group, SIGKILLs one every
 * 20-120 ms (and, one time in three, kills a fresh worker 0-3 ms after its
 * start, i.e. inside the shim's start-up), gives some workers injected driver
 * faults, and after every step asks the simulated GPU itself (NVML: the
 * driver's per-process truth) how much the group's processes hold. That may
 * never pass the limit. At the end every worker is killed and the device
 * must be back to 0. Prints the test protocol's lines. */
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
    pthread_t t;
    for (int i = 1; i < threads; i++)
        pthread_create(&t, NULL, churn, (void *)(uintptr_t)i);
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
    pid_t p = fork();
    if (p == 0) {
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
    time_t end = time(NULL) + seconds;
    uint64_t worst = 0, steps = 0, kills = 0, startup_kills = 0;
    int over = 0;
    while (time(NULL) < end) {
        msleep(20 + rand() % 100);
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
        for (int k = 0; k < 3; k++) {
            uint64_t t = truth();
            steps++;
            if (t > worst)
                worst = t;
            if (t > limit && t != UINT64_MAX) {
                if (over++ < 5)
                    printf("# step %llu: group holds %llu MiB > limit %llu MiB\n", (unsigned long long)steps,
                       (unsigned long long)(t >> 20), (unsigned long long)(limit >> 20));
            }
            msleep(5);
        }
    }
    for (int i = 0; i < procs; i++) {
        kill(w[i], SIGKILL);
        waitpid(w[i], NULL, 0);
    }
    printf("# %llu checks, %llu kills (%llu during start-up), worst %llu MiB of %llu MiB\n",
           (unsigned long long)steps, (unsigned long long)kills, (unsigned long long)startup_kills,
           (unsigned long long)(worst >> 20), (unsigned long long)(limit >> 20));
    if (over)
        printf("FAIL stress_never_over_limit: %d of %llu checks over the limit\n", over, (unsigned long long)steps);
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
    if (argc == 7 && strcmp(argv[1], "judge") == 0) {
        srand((unsigned)getpid());
        snprintf(argbuf[0], sizeof argbuf[0], "%s", argv[5]);
        snprintf(argbuf[1], sizeof argbuf[1], "%s", argv[6]);
        return judge(atoi(argv[2]), atoi(argv[3]), (uint64_t)atoll(argv[4]) << 20);
    }
    fprintf(stderr, "usage: stress worker THREADS MAXMIB | stress judge PROCS SECONDS LIMIT_MIB THREADS MAXMIB\n");
    return 2;
}
