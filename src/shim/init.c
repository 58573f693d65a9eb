/* Start-up of the shim, done lazily at the first hooked call so that
 * processes that never touch CUDA (every `ls` in a container with
 * /etc/ld.so.preload) pay nothing but the constructor, which only registers
 * fork handlers.
 *
 * Where the group comes from: the fixed mount point /run/gpumem/self that
 * gpumem-runtime gives every limited container, whenever it exists (so
 * neither unsetting nor setting a variable escapes the limit), else
 * $GPUMEM_GROUP_DIR (set by `gpumem run`). With neither,
 * the shim passes everything through. With a group that is unusable (corrupt,
 * wrong version, unreadable) it fails closed: device allocations are refused
 * rather than run unlimited. */
#include "account.h"
#include "spill.h"
#include "gpumem/ticks.h"
#include "gpumem/procinfo.h"

#include <dlfcn.h>
#include <errno.h>
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

/* Asks the driver's own cuGetProcAddress for (name, version, stream flag).
 * Start-up only; NULL when the driver has no answer. */
static void *lookup(const char *name, int version, int per_thread)
{
    cuuint64_t flags = per_thread ? CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM : 0;
    void *p = NULL;
    CUresult r = CUDA_ERROR_NOT_FOUND;
    if (real.cuGetProcAddress_v2) {
        CUdriverProcAddressQueryResult st;
        r = ((PFN_cuGetProcAddress_v12000)real.cuGetProcAddress_v2)(name, &p, version, flags, &st);
    } else if (real.cuGetProcAddress) {
        r = ((PFN_cuGetProcAddress_v11030)real.cuGetProcAddress)(name, &p, version, flags);
    }
    return r == CUDA_SUCCESS ? p : NULL;
}

static const struct { const char *name; int version, per_thread; } hooked[] = {
#define HOOK(sym, name, ver, ptds) {#name, ver, ptds},
#include "hooked.def"
#undef HOOK
};

/* The driver's function `sym` (the signature of `name` at `version`): by
 * its exported name, else (a driver need not export every function by
 * name: cudart never asks for one) through the driver's cuGetProcAddress.
 * A driver older than `version` answers that lookup with an older variant
 * of another signature: that answer is the same as the one at the older
 * version hooked.def lists, and is not taken. */
static void *resolve(void *h, const char *sym, const char *name, int version, int per_thread)
{
    void *p = shim_real_dlsym(h, sym);
    if (p)
        return p;
    p = lookup(name, version, per_thread);
    if (!p)
        return NULL;
    for (size_t i = 0; i < sizeof hooked / sizeof hooked[0]; i++)
        if (hooked[i].version < version && hooked[i].per_thread == per_thread && !strcmp(hooked[i].name, name) &&
            lookup(name, hooked[i].version, per_thread) == p) {
            shim_log(LOG_DEBUG, "%s: the driver has no %s@%d", sym, name, version);
            return NULL;
        }
    shim_log(LOG_DEBUG, "%s: not exported by name, resolved through cuGetProcAddress (%s@%d%s)", sym, name, version,
             per_thread ? ", per-thread stream" : "");
    return p;
}

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
    /* cuGetProcAddress and _v2 come first in hooked.def: the lookups of
     * the names after them can use them. */
#define HOOK(sym, name, ver, ptds) if (!real.sym) real.sym = resolve(h, #sym, #name, ver, ptds);
#include "hooked.def"
#undef HOOK
    real.cuCtxGetDevice = (PFN_cuCtxGetDevice_v2000)resolve(h, "cuCtxGetDevice", "cuCtxGetDevice", 2000, 0);
    real.cuDeviceGetCount = (PFN_cuDeviceGetCount_v2000)resolve(h, "cuDeviceGetCount", "cuDeviceGetCount", 2000, 0);
    real.cuDeviceGetUuid_v2 = (PFN_cuDeviceGetUuid_v11040)resolve(h, "cuDeviceGetUuid_v2", "cuDeviceGetUuid", 11040, 0);
    if (!real.cuDeviceGetUuid_v2)
        real.cuDeviceGetUuid_v2 = (PFN_cuDeviceGetUuid_v11040)resolve(h, "cuDeviceGetUuid", "cuDeviceGetUuid", 9020, 0);
    real.cuDeviceGetUuid = (PFN_cuDeviceGetUuid_v9020)resolve(h, "cuDeviceGetUuid", "cuDeviceGetUuid", 9020, 0);
    real.cuDeviceGetName = (CUresult(*)(char *, int, CUdevice))resolve(h, "cuDeviceGetName", "cuDeviceGetName", 2000, 0);
    real.cuMemGetAddressRange_v2 =
        (PFN_cuMemGetAddressRange_v3020)resolve(h, "cuMemGetAddressRange_v2", "cuMemGetAddressRange", 3020, 0);
    real.cuPointerGetAttribute =
        (PFN_cuPointerGetAttribute_v4000)resolve(h, "cuPointerGetAttribute", "cuPointerGetAttribute", 4000, 0);
    real.cuMemPoolGetAttribute =
        (PFN_cuMemPoolGetAttribute_v11020)resolve(h, "cuMemPoolGetAttribute", "cuMemPoolGetAttribute", 11020, 0);
    real.cuDeviceGetMemPool =
        (PFN_cuDeviceGetMemPool_v11020)resolve(h, "cuDeviceGetMemPool", "cuDeviceGetMemPool", 11020, 0);
    real.cuMemAdvise = (PFN_cuMemAdvise_v8000)resolve(h, "cuMemAdvise", "cuMemAdvise", 8000, 0);
    real.cuMemPrefetchAsync =
        (PFN_cuMemPrefetchAsync_v8000)resolve(h, "cuMemPrefetchAsync", "cuMemPrefetchAsync", 8000, 0);
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
    real_nvml.nvmlDeviceGetHandleByUUID = (PFN_nvmlDeviceGetHandleByUUID)shim_real_dlsym(h, "nvmlDeviceGetHandleByUUID");
    __atomic_store_n(&nvml_handle, h, __ATOMIC_RELEASE);
    return 0;
}

static void claim_slot(void)
{
    pid_t pid = getpid();
    char comm[32];
    gm_proc_comm(pid, comm, sizeof comm);
    /* The start time tells this process from a later one with its pid. If
     * /proc cannot say (not mounted, out of descriptors), the slot is marked
     * so that nobody reclaims it on that missing evidence: only our exit
     * frees it. */
    uint64_t start = gm_proc_start_time(pid);
    if (start == 0) {
        start = GM_START_UNKNOWN;
        shim_log(LOG_WARN, "cannot read /proc/%d/stat: this process's slot is freed only by its own exit",
                 (int)pid);
    }
    struct gm_proc_slot *s = gm_slot_claim(g.usage, pid, start, comm);
    if (!s && atomic_load(&g.usage->removed)) {
        shim_log(LOG_ERROR, "group %.*s no longer exists (its last process exited, or gpumem rm removed it): "
                 "refusing device allocations (fail closed)", GM_NAME_LEN, g.limits->name);
        atomic_store(&g.mode, SHIM_FAIL_CLOSED);
        return;
    }
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

/* Where a container runtime mounted the group, that mount wins, always:
 * GPUMEM_GROUP_DIR is the process's own environment, which anything in the
 * container can set (`docker exec -e`, a shell), so a variable naming another
 * group is ignored there (and said so). A /run/gpumem/self that exists but
 * cannot be used fails closed, as any unusable group does. */
static int open_group(void)
{
    const char *env = shim_getenv("GPUMEM_GROUP_DIR");
    const char *dir = NULL;
    struct stat st;
    if (stat(CONTAINER_GROUP_DIR, &st) == 0) {
        dir = CONTAINER_GROUP_DIR;
        struct stat mine, theirs;
        char path[4096];
        if (env && *env && strcmp(env, CONTAINER_GROUP_DIR) != 0 &&
            (snprintf(path, sizeof path, "%s/limits", env) >= (int)sizeof path || stat(path, &theirs) != 0 ||
             stat(CONTAINER_GROUP_DIR "/limits", &mine) != 0 || mine.st_dev != theirs.st_dev ||
             mine.st_ino != theirs.st_ino))
            shim_log(LOG_WARN, "GPUMEM_GROUP_DIR=%s ignored: the group mounted at " CONTAINER_GROUP_DIR " applies",
                     env);
    } else if (errno != ENOENT && errno != ENOTDIR) {
        shim_log(LOG_ERROR, CONTAINER_GROUP_DIR ": %s: refusing device allocations (fail closed)", strerror(errno));
        return SHIM_FAIL_CLOSED;
    } else if (env && *env) {
        dir = env;
    } else {
        return SHIM_PASSTHROUGH;
    }
    char err[512];
    g.limits = gm_limits_map(dir, err, sizeof err);
    if (g.limits)
        g.usage = gm_usage_map(dir, err, sizeof err);
    if (!g.limits || !g.usage) {
        char probe[4200];
        snprintf(probe, sizeof probe, "%s/limits", dir);
        if (access(probe, F_OK) != 0 && (errno == ENOENT || errno == ENOTDIR))
            shim_log(LOG_ERROR, "group %s no longer exists (its last process exited, or gpumem rm removed it): "
                     "refusing device allocations (fail closed)", dir);
        else
            shim_log(LOG_ERROR, "%s: refusing device allocations (fail closed)", err);
        return SHIM_FAIL_CLOSED;
    }
    /* Where the last process of a `gpumem run` group removes it from
     * (shim_destructor); never the container mount, which is not ours. */
    if (dir[0] == '/' && strcmp(dir, CONTAINER_GROUP_DIR) != 0)
        snprintf(g.dir, sizeof g.dir, "%s", dir);
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

int shim_gd_for_cudevice(CUdevice dev)
{
    if (dev < 0)
        return SHIM_GD_NONE; /* not a device: the driver says so */
    if (dev >= GM_MAX_CU_DEVICES) {
        shim_log_once(SHIM_ONCE_CU_DEVICES, LOG_ERROR,
                      "CUDA device %d: the shim accounts for at most %d devices a process: refusing allocations there",
                      (int)dev, GM_MAX_CU_DEVICES);
        return SHIM_GD_REFUSE;
    }
    int gd = atomic_load_explicit(&g.gd_of[dev], memory_order_acquire);
    if (likely(gd >= 0))
        return gd;
    CUuuid u;
    CUresult r = real.cuDeviceGetUuid_v2 ? real.cuDeviceGetUuid_v2(&u, dev) : CUDA_ERROR_NOT_FOUND;
    if (r == CUDA_ERROR_NOT_INITIALIZED || r == CUDA_ERROR_DEINITIALIZED || r == CUDA_ERROR_INVALID_DEVICE)
        return SHIM_GD_NONE; /* the driver refuses anything on it as well */
    if (r != CUDA_SUCCESS) {
        shim_log_once(SHIM_ONCE_NO_UUID, LOG_ERROR,
                      "cannot tell which GPU CUDA device %d is (cuDeviceGetUuid: %s %d): refusing allocations there",
                      (int)dev, real.cuDeviceGetUuid_v2 ? "error" : "not in the driver", (int)r);
        return SHIM_GD_REFUSE;
    }
    char uuid[GM_UUID_LEN];
    shim_uuid_name(dev, &u, uuid);
    gd = gm_usage_device(g.usage, uuid);
    if (gd < 0) {
        shim_log_once(SHIM_ONCE_GROUP_DEVICES, LOG_ERROR,
                      "group device table full (%d GPUs): refusing allocations on %s", GM_MAX_DEVICES, uuid);
        return SHIM_GD_REFUSE;
    }
    atomic_store_explicit(&g.gd_of[dev], gd, memory_order_release);
    return gd;
}

/* shim_current_gd() without its fast path (shim.h). */
int shim_current_gd_slow(void)
{
    int n = shim_ncu();
    if (n == 0) {
        if (!real.cuDeviceGetCount || real.cuDeviceGetCount(&n) != CUDA_SUCCESS || n <= 0)
            return SHIM_GD_NONE; /* not initialised, or no device: the driver refuses */
        atomic_store_explicit(&g.ncu, n, memory_order_relaxed);
    }
    CUdevice dev = 0;
    if (n > 1) {
        if (!real.cuCtxGetDevice)
            return SHIM_GD_REFUSE;
        if (real.cuCtxGetDevice(&dev) != CUDA_SUCCESS)
            return SHIM_GD_NONE; /* no current context: the driver refuses */
    }
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
    shim_spill_fork_child();
    memset(g.ctx_charge, 0, sizeof g.ctx_charge);
    in_init = 0;
    pthread_mutex_init(&init_lock, NULL);
}

__attribute__((constructor)) static void shim_constructor(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* A normal exit gives the group its bytes back at once (the driver frees the
 * process's memory as it goes) when this is the process's last thread. While
 * other threads run (exit() does not stop them until its very end), they may
 * be inside a hook with the slot in hand, and they still hold and allocate
 * device memory: the slot stays ours, enforcing, until the process has gone,
 * and the next reclaim frees it then. */
__attribute__((destructor)) static void shim_destructor(void)
{
    if (atomic_load(&g.mode) != SHIM_ENFORCE || !g.slot || atomic_load(&g.slot->pid) != getpid())
        return;
    shim_leak_report();
    if (gm_proc_threads(getpid()) != 1)
        return;
    atomic_store(&g.mode, SHIM_PASSTHROUGH);
    atomic_store(&g.hot, NULL);
    /* The last process of a `gpumem run` group whose run is over removes
     * it (only a group with a run marker; gm_group_collect). */
    if (g.dir[0])
        gm_group_collect(g.dir, g.usage, g.slot, 0);
    else
        gm_slot_release(g.usage, g.slot);
}
