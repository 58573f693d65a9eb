/* Start-up of the shim, done lazily at the first hooked call so that
 * processes that never touch CUDA (every `ls` in a container with
 * /etc/ld.so.preload) pay nothing but the constructor, which only registers
 * fork handlers.
 *
 * Where the group comes from: $GPUMEM_GROUP_DIR (set by `gpumem run`), else
 * the fixed mount point /run/gpumem/self that gpumem-runtime gives every
 * container (so unsetting a variable cannot escape the limit). With neither,
 * the shim passes everything through. With a group that is unusable (corrupt,
 * wrong version, unreadable) it fails closed: device allocations are refused
 * rather than run unlimited. */
#include "account.h"
#include "gpumem/ticks.h"
#include "gpumem/procinfo.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONTAINER_GROUP_DIR "/run/gpumem/self"

struct shim g;
struct real_driver real;
struct real_nvml real_nvml;

static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local int in_init;
static void *driver_handle;

int shim_resolve_driver(void)
{
    if (driver_handle)
        return 0;
    /* The application may already have the driver loaded (it is calling us
     * because it does); otherwise load it the way cudart does. */
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    if (!h)
        h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return -1;
#define HOOK(sym, name, ver, ptds) if (!real.sym) real.sym = shim_real_dlsym(h, #sym);
#include "hooked.def"
#undef HOOK
    real.cuCtxGetDevice = (PFN_cuCtxGetDevice_v2000)shim_real_dlsym(h, "cuCtxGetDevice");
    real.cuDeviceGetCount = (PFN_cuDeviceGetCount_v2000)shim_real_dlsym(h, "cuDeviceGetCount");
    real.cuDeviceGetUuid_v2 = (PFN_cuDeviceGetUuid_v11040)shim_real_dlsym(h, "cuDeviceGetUuid_v2");
    if (!real.cuDeviceGetUuid_v2)
        real.cuDeviceGetUuid_v2 = (PFN_cuDeviceGetUuid_v11040)shim_real_dlsym(h, "cuDeviceGetUuid");
    real.cuMemGetAddressRange_v2 = (PFN_cuMemGetAddressRange_v3020)shim_real_dlsym(h, "cuMemGetAddressRange_v2");
    real.cuPointerGetAttribute = (PFN_cuPointerGetAttribute_v4000)shim_real_dlsym(h, "cuPointerGetAttribute");
    real.cuMemPoolGetAttribute = (PFN_cuMemPoolGetAttribute_v11020)shim_real_dlsym(h, "cuMemPoolGetAttribute");
    real.cuDeviceGetMemPool = (PFN_cuDeviceGetMemPool_v11020)shim_real_dlsym(h, "cuDeviceGetMemPool");
    __atomic_store_n(&driver_handle, h, __ATOMIC_RELEASE);
    return 0;
}

int shim_resolve_nvml(void)
{
    static void *nvml_handle;
    if (nvml_handle)
        return 0;
    void *h = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_NOLOAD);
    if (!h)
        h = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return -1;
#define NVML_HOOK(sym) if (!real_nvml.sym) real_nvml.sym = shim_real_dlsym(h, #sym);
#include "nvml_hooked.def"
#undef NVML_HOOK
    real_nvml.nvmlDeviceGetUUID = (PFN_nvmlDeviceGetUUID)shim_real_dlsym(h, "nvmlDeviceGetUUID");
    real_nvml.nvmlInit_v2 = (PFN_nvmlInit_v2)shim_real_dlsym(h, "nvmlInit_v2");
    real_nvml.nvmlDeviceGetCount_v2 = (PFN_nvmlDeviceGetCount_v2)shim_real_dlsym(h, "nvmlDeviceGetCount_v2");
    real_nvml.nvmlDeviceGetHandleByIndex_v2 =
        (PFN_nvmlDeviceGetHandleByIndex_v2)shim_real_dlsym(h, "nvmlDeviceGetHandleByIndex_v2");
    __atomic_store_n(&nvml_handle, h, __ATOMIC_RELEASE);
    return 0;
}

static void claim_slot(void)
{
    pid_t pid = getpid();
    char comm[32];
    gm_proc_comm(pid, comm, sizeof comm);
    struct gm_proc_slot *s = gm_slot_claim(g.usage, pid, gm_proc_start_time(pid), comm);
    if (!s) {
        shim_log(LOG_ERROR, "group has no free process slot (%d in use): refusing device allocations",
                 GM_MAX_PROCS);
        atomic_store(&g.mode, SHIM_FAIL_CLOSED);
        return;
    }
    /* Published for gpumem inspect and the daemon (gpumem/live_table.h). */
    s->table_addr = (uint64_t)(uintptr_t)&live_allocs;
    s->table_layout = GM_LIVE_TABLE_LAYOUT;
    gm_ticks_anchor();
    g.slot = s;
}

static int open_group(void)
{
    const char *dir = shim_getenv("GPUMEM_GROUP_DIR");
    struct stat st;
    if (!dir || !*dir) {
        if (stat(CONTAINER_GROUP_DIR "/limits", &st) != 0)
            return SHIM_PASSTHROUGH;
        dir = CONTAINER_GROUP_DIR;
    }
    char err[512];
    g.limits = gm_limits_map(dir, err, sizeof err);
    if (g.limits)
        g.usage = gm_usage_map(dir, err, sizeof err);
    if (!g.limits || !g.usage) {
        shim_log(LOG_ERROR, "%s: refusing device allocations (fail closed)", err);
        return SHIM_FAIL_CLOSED;
    }
    shim_log(LOG_DEBUG, "group %s (%s)", g.limits->name, dir);
    return SHIM_ENFORCE;
}

void shim_init_slow(void)
{
    if (in_init)
        return; /* re-entered from inside our own start-up: callers pass through */
    in_init = 1;
    pthread_mutex_lock(&init_lock);
    int m = atomic_load(&g.mode);
    if (m == SHIM_UNINIT) {
        shim_log_init();
        shim_trace_init();
        for (int i = 0; i < GM_MAX_CU_DEVICES; i++)
            atomic_store(&g.gd_of[i], -1);
        m = open_group();
        if (shim_resolve_driver() < 0)
            shim_log(LOG_DEBUG, "libcuda.so.1 not loadable yet");
        if (m == SHIM_ENFORCE)
            claim_slot();
        if (atomic_load(&g.mode) == SHIM_UNINIT)
            atomic_store_explicit(&g.mode, m, memory_order_release);
    } else if (m == SHIM_ENFORCE && !g.slot) {
        claim_slot(); /* first hooked call in a forked child */
    }
    if (atomic_load(&g.mode) == SHIM_ENFORCE && g.slot)
        atomic_store_explicit(&g.hot, g.slot, memory_order_release);
    pthread_mutex_unlock(&init_lock);
    in_init = 0;
}

static void format_uuid(const CUuuid *u, char *out)
{
    const unsigned char *b = (const unsigned char *)u->bytes;
    snprintf(out, GM_UUID_LEN, "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

int shim_gd_for_cudevice(CUdevice dev)
{
    if (dev < 0 || dev >= GM_MAX_CU_DEVICES)
        return -1;
    int gd = atomic_load_explicit(&g.gd_of[dev], memory_order_acquire);
    if (likely(gd >= 0))
        return gd;
    CUuuid u;
    if (!real.cuDeviceGetUuid_v2 || real.cuDeviceGetUuid_v2(&u, dev) != CUDA_SUCCESS)
        return -1;
    char uuid[GM_UUID_LEN];
    format_uuid(&u, uuid);
    gd = gm_usage_device(g.usage, uuid);
    if (gd < 0) {
        shim_log(LOG_ERROR, "group device table full: refusing allocations on %s", uuid);
        return -1;
    }
    atomic_store_explicit(&g.gd_of[dev], gd, memory_order_release);
    return gd;
}

/* shim_current_gd() without its fast path (shim.h). */
int shim_current_gd_slow(void)
{
    if (g.ncu == 0) {
        int n = 0;
        if (!real.cuDeviceGetCount || real.cuDeviceGetCount(&n) != CUDA_SUCCESS || n <= 0)
            return -1;
        g.ncu = n;
    }
    CUdevice dev = 0;
    if (g.ncu > 1 && (!real.cuCtxGetDevice || real.cuCtxGetDevice(&dev) != CUDA_SUCCESS))
        return -1;
    return shim_gd_for_cudevice(dev);
}

static void fork_prepare(void) { alloc_table_fork_prepare(); }
static void fork_parent(void) { alloc_table_fork_parent(); }
static void fork_child(void)
{
    alloc_table_fork_child();
    /* The child is a new process of the same group: it takes its own slot at
     * its first hooked call. It holds no contexts or allocations yet. */
    atomic_store(&g.hot, NULL);
    g.slot = NULL;
    shim_lanes_fork_child();
    memset(g.primary_retained, 0, sizeof g.primary_retained);
    memset(g.primary_ctx, 0, sizeof g.primary_ctx);
    shim_pools_fork_child();
    shim_graphs_fork_child();
    memset(g.ctx_charge, 0, sizeof g.ctx_charge);
    in_init = 0;
    pthread_mutex_init(&init_lock, NULL);
}

__attribute__((constructor)) static void shim_constructor(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* A normal exit gives the group its bytes back at once (the driver frees the
 * process's memory as it goes); a killed process is reclaimed by the next
 * one that needs the room, or by the CLI and daemon. */
__attribute__((destructor)) static void shim_destructor(void)
{
    if (atomic_load(&g.mode) == SHIM_ENFORCE && g.slot && atomic_load(&g.slot->pid) == getpid()) {
        shim_leak_report();
        /* Threads still running (exit does not stop them) pass through from
         * here on: the slot may soon be another process's. */
        atomic_store(&g.mode, SHIM_PASSTHROUGH);
        atomic_store(&g.hot, NULL);
        gm_slot_release(g.usage, g.slot);
    }
}
