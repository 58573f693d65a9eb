/* Internal interface of libgpumem.so. Everything here is hidden (built with
 * -fvisibility=hidden; libgpumem.map exports only the hooks). */
#ifndef GPUMEM_SHIM_H
#define GPUMEM_SHIM_H

#include <stdatomic.h>
#include <stdint.h>

#include "gpumem/cuda.h"
#include "gpumem/group.h"
#include "gpumem/nvml.h"
#include "alloc_table.h"

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* The pre-11.0 flavours of two hooked functions (same arguments). */
typedef PFN_cuDevicePrimaryCtxRelease_v11000 PFN_cuDevicePrimaryCtxRelease_v7000;
typedef PFN_cuDevicePrimaryCtxReset_v11000 PFN_cuDevicePrimaryCtxReset_v7000;
typedef PFN_cuIpcOpenMemHandle_v11000 PFN_cuIpcOpenMemHandle_v4010;

/* The driver's own functions, resolved once from the driver's handle. */
struct real_driver {
#define HOOK(sym, name, ver, ptds) void *sym;
#include "hooked.def"
#undef HOOK
    /* Not hooked, but called by the shim itself. */
    PFN_cuCtxGetDevice_v2000 cuCtxGetDevice;
    PFN_cuDeviceGetCount_v2000 cuDeviceGetCount;
    PFN_cuDeviceGetUuid_v11040 cuDeviceGetUuid_v2;
    PFN_cuDeviceGetUuid_v9020 cuDeviceGetUuid;             /* mig.c: a MIG device's GPU UUID */
    CUresult (*cuDeviceGetName)(char *name, int len, CUdevice dev); /* mig.c */
    PFN_cuMemGetAddressRange_v3020 cuMemGetAddressRange_v2;
    PFN_cuPointerGetAttribute_v4000 cuPointerGetAttribute;
    PFN_cuMemPoolGetAttribute_v11020 cuMemPoolGetAttribute;
    PFN_cuDeviceGetMemPool_v11020 cuDeviceGetMemPool;
    /* Spill (spill.c): where managed memory is placed. */
    PFN_cuMemAdvise_v8000 cuMemAdvise;
    PFN_cuMemPrefetchAsync_v8000 cuMemPrefetchAsync;
};
struct real_nvml {
#define NVML_HOOK(sym) void *sym;
#include "nvml_hooked.def"
#undef NVML_HOOK
    PFN_nvmlDeviceGetUUID nvmlDeviceGetUUID;
    PFN_nvmlInit_v2 nvmlInit_v2;
    PFN_nvmlDeviceGetHandleByUUID nvmlDeviceGetHandleByUUID;
};
/* Hidden in the declarations too (not only by -fvisibility=hidden at the
 * definitions): the compiler then addresses them directly, rather than
 * through the GOT, one instruction less per use on the hot path. */
#define SHIM_HIDDEN __attribute__((visibility("hidden")))
extern struct real_driver real SHIM_HIDDEN;
extern struct real_nvml real_nvml SHIM_HIDDEN;

#define GM_MAX_CU_DEVICES 64

/* What the shim does in this process. */
enum shim_mode {
    SHIM_UNINIT = 0,
    SHIM_PASSTHROUGH,   /* no group: count nothing, change nothing */
    SHIM_ENFORCE,       /* a valid group: account and enforce */
    SHIM_FAIL_CLOSED,   /* a group was configured but is unusable: refuse device allocations */
};

struct shim {
    _Atomic int mode;                   /* enum shim_mode; read on every hooked call */
    const struct gm_limits *limits;
    struct gm_usage *usage;
    struct gm_proc_slot *slot;          /* NULL after fork until re-claimed */
    char dir[4096];                     /* the group's directory when a run group may be removed from it, else "" */
    /* == slot while enforcing, else NULL: the one test a hot-path hook makes
     * (mode and slot in one load). */
    struct gm_proc_slot *_Atomic hot;
    _Atomic int ncu;                    /* CUDA devices this process sees, 0 = not yet known */
    _Atomic int gd_of[GM_MAX_CU_DEVICES];   /* CUdevice -> group device index, -1 = not yet */
    int primary_retained[GM_MAX_CU_DEVICES];
    CUcontext primary_ctx[GM_MAX_CU_DEVICES];  /* as the last retain returned it */
    uint64_t ctx_charge[GM_MAX_CU_DEVICES]; /* overhead charged for this device's contexts */
};
extern struct shim g SHIM_HIDDEN;

/* init.c */
void shim_init_slow(void);
static inline int shim_mode(void)
{
    int m = atomic_load_explicit(&g.mode, memory_order_acquire);
    if (unlikely(m == SHIM_UNINIT || (m == SHIM_ENFORCE && !g.slot))) {
        shim_init_slow();
        m = atomic_load_explicit(&g.mode, memory_order_acquire);
    }
    return m;
}
static inline struct gm_proc_slot *shim_hot_slot(void)
{
    return atomic_load_explicit(&g.hot, memory_order_acquire);
}
int shim_resolve_driver(void);
int shim_resolve_nvml(void);

/* A CUDA device's index in the group (>= 0), or one of these. */
enum {
    /* Nothing to account: the driver is not initialised, there is no
     * current context, or the device is not one: the driver refuses the
     * call itself. */
    SHIM_GD_NONE = -1,
    /* A device that cannot be accounted (the driver cannot name it, more
     * devices than the group can hold): refuse, fail closed. */
    SHIM_GD_REFUSE = -2,
};
int shim_gd_for_cudevice(CUdevice dev);
int shim_current_gd_slow(void);
/* mig.c: the group's name for CUDA device dev's 16 UUID bytes u, "GPU-..."
 * or, on a MIG device, "MIG-..." (out has GM_UUID_LEN bytes). */
void shim_uuid_name(CUdevice dev, const CUuuid *u, char *out);
static inline int shim_ncu(void) { return atomic_load_explicit(&g.ncu, memory_order_relaxed); }
/* The group device of the calling thread's current context. With one
 * visible device (the common case in a container) there is nothing to ask. */
static inline int shim_current_gd(void)
{
    if (likely(shim_ncu() == 1)) {
        int gd = atomic_load_explicit(&g.gd_of[0], memory_order_relaxed);
        if (likely(gd >= 0))
            return gd;
    }
    return shim_current_gd_slow();
}
int shim_gd_for_nvml_device(nvmlDevice_t dev);

/* account.h / account.c: charging device memory to the group. */

/* log.c: GPUMEM_LOG=debug|info|warn|error|off, GPUMEM_LOG_FILE=path. No
 * malloc: formats into a stack buffer and write(2)s it. */
enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF };
void shim_log_init(void);
void shim_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Causes of errors that repeat on every call (a full table, a device that
 * cannot be accounted): each is logged once a process, not once a call. */
enum shim_once {
    SHIM_ONCE_TABLE_FULL,
    SHIM_ONCE_KEY_ZERO,
    SHIM_ONCE_CU_DEVICES,
    SHIM_ONCE_NO_UUID,
    SHIM_ONCE_GROUP_DEVICES,
    SHIM_ONCE_LIMITS_TORN,
    SHIM_ONCE_POOLS_FULL,
    SHIM_ONCE_COUNT
};
void shim_log_once(enum shim_once cause, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A refused allocation: one warning a second at most, saying how many
 * were refused since the last. */
void shim_log_refusal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *shim_getenv(const char *name);

/* trace.c: GPUMEM_LEAK_REPORT. */
void shim_trace_init(void);
void shim_leak_report(void);

/* dlsym.c */
void *shim_real_dlsym(void *handle, const char *name);
void *shim_hook_for_symbol(const char *name);
void **shim_real_slot(const char *name);            /* procaddress.c */
struct link_map;
void *shim_object_symbol(const struct link_map *l, const char *name); /* elf_lookup.c */

/* hooks_pool.c */
void shim_pools_fork_child(void);
/* Brings a charge `*charged` (on gd's shared lane) to the driver's figure
 * `now`, consuming `held` bytes the caller reserved for it. Returns
 * CUDA_ERROR_OUT_OF_MEMORY (held released, *charged unchanged) when the
 * growth does not fit under the limit. */
CUresult shim_settle(int gd, uint64_t *charged, uint64_t now, uint64_t held);
/* Charges `bytes` the driver already holds although the group cannot take
 * them (past its limit): every further allocation of the group is then
 * refused until it is back under. Logs once, naming `what`. */
void shim_charge_over(int gd, uint64_t bytes, const char *what);

/* hooks_graph.c */
void shim_graphs_fork_child(void);

/* hooks_info.c: the group's view of a device's (free, total). */
void shim_view(int gd, uint64_t *free, uint64_t *total);

/* Every hook, declared with the PFN type of its (name, version): the
 * compiler proves each has exactly the signature cuGetProcAddress promises
 * for it (and NVML's for the NVML ones). */
#define HOOK(sym, nm, ver, ptds) extern __typeof__(*(PFN_##nm##_v##ver)0) sym __attribute__((visibility("default")));
#include "hooked.def"
#undef HOOK
/* NVIDIA's private entry point to NVML's function tables (hooks_nvml.c);
 * include/gpumem/nvml.h declares only public entry points. */
typedef nvmlReturn_t (*PFN_nvmlInternalGetExportTable)(const void **table, const unsigned char *id);
#define NVML_HOOK(sym) extern __typeof__(*(PFN_##sym)0) sym __attribute__((visibility("default")));
#include "nvml_hooked.def"
#undef NVML_HOOK

#endif
