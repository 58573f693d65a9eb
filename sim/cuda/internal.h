/* Private declarations shared by the simulated driver's files. Everything
 * here is hidden (-fvisibility=hidden); only SIM_API functions are exported,
 * and the version script (libcuda.map) lists exactly those. */
#ifndef GPUMEM_SIM_CUDA_INTERNAL_H
#define GPUMEM_SIM_CUDA_INTERNAL_H

#include <gpumem/cuda.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "../common/simstate.h"

#define SIM_API __attribute__((visibility("default")))

/* Entry points are reached through cuGetProcAddress's table (entries.def)
 * or dlsym, never called by name inside the library, so they have no
 * header of prototypes. Each definition follows PFN_<name>_v<version> of
 * cudaTypedefs.h for its entries.def row; the tests call them through
 * pointers of those types (tests/progs/cudart_like_client.c). */
#pragma GCC diagnostic ignored "-Wmissing-prototypes"

#define SIM_SMALL_MAX    (1ULL << 20)   /* up to this: 512-byte granules, backed by heap.c */
#define SIM_SMALL_GRAIN  512ULL
#define SIM_PAGE         (2ULL << 20)   /* larger: 2 MiB pages from mmap */
#define SIM_DRIVER_VERSION 13000

/* ---- init.c: process-wide switches read once from the environment ---- */
struct sim_config {
    uint64_t ctx_overhead;          /* GPUMEM_SIM_CTX_OVERHEAD, default 300 MiB */
    long fail_alloc_nth;            /* GPUMEM_SIM_FAIL_ALLOC_NTH, 0 = off */
    int fail_ctx;                   /* GPUMEM_SIM_FAIL_CTX */
    unsigned alloc_delay_us;        /* GPUMEM_SIM_ALLOC_DELAY_US */
    uint64_t pool_growth;           /* GPUMEM_SIM_POOL_GROWTH: a pool grows in steps of this, 0 = by the block */
};
extern struct sim_config sim_cfg;
extern _Atomic int sim_initialized;
CUresult sim_check_init(void);                  /* NOT_INITIALIZED before cuInit */
CUresult sim_check_device(CUdevice dev);        /* + INVALID_DEVICE */
/* Fault injection and the delay, for every device allocation. */
int sim_inject_alloc_failure(void);

/* ---- visible.c: CUDA_VISIBLE_DEVICES, the one visible -> physical map ----
 * Inside sim/cuda a device number is always the visible ordinal (what the
 * application passes and receives); these translate it where it reaches the
 * machine-wide state. sim/common's per-device calls take physical indices
 * and are poisoned below, so none can be reached without the mapping. */
void sim_visible_init(void);                    /* once, at cuInit */
int sim_vdev_count(void);
int sim_vdev_phys(int dev);                     /* -1 if not a visible ordinal */
int sim_vdev_from_phys(int phys);               /* -1 if that device is hidden */
const struct sim_device_info *sim_vdev(int dev);
const struct sim_device_info *sim_vdev_gpu(int dev);   /* a MIG device's GPU; else sim_vdev */
int sim_vdev_charge(int dev, uint64_t bytes);
void sim_vdev_release(int dev, uint64_t bytes);
uint64_t sim_vdev_used(int dev);
#ifndef SIM_VISIBLE_IMPL
#pragma GCC poison sim_device sim_device_count sim_charge sim_release sim_device_used sim_device_charged
#pragma GCC poison sim_self_used sim_device_processes
#endif

/* ---- context.c ---- */
#define SIM_CTX_MAGIC 0x43545853u
struct sim_pool;
struct sim_ctx {
    uint32_t magic;
    int dev;
    unsigned flags;
    int primary;
    _Atomic int destroyed;
    unsigned long long id;
    size_t limits[8];
    int cache_config;
    int shmem_config;
};
/* The current context of this thread: INVALID_CONTEXT if none (or destroyed). */
CUresult sim_ctx_current(struct sim_ctx **out);
/* Validates a handle from the application (NULL = current). */
CUresult sim_ctx_resolve(CUcontext h, struct sim_ctx **out);
int sim_ctx_is_valid(const struct sim_ctx *c);

/* ---- registry.c: every allocation the process holds, by address ---- */
enum sim_kind {
    SIM_KIND_DEVICE = 1,     /* cuMemAlloc, pitch, async, pool */
    SIM_KIND_MANAGED,        /* cuMemAllocManaged */
    SIM_KIND_HOST,           /* cuMemHostAlloc / cuMemAllocHost */
    SIM_KIND_REGISTERED,     /* cuMemHostRegister */
    SIM_KIND_IPC,            /* cuIpcOpenMemHandle mapping */
    SIM_KIND_VMM,            /* a mapped range inside cuMemAddressReserve */
};
struct sim_alloc {
    uintptr_t base;
    size_t size;             /* what the application asked for */
    size_t charged;          /* bytes charged to the device (rounded), 0 if none */
    size_t mapped;           /* bytes of backing memory at base (mmap length or sim_heap_alloc size) */
    int dev;
    uint8_t kind;
    uint8_t mmapped;         /* backing is its own mmap (else sim_heap_alloc) */
    unsigned flags;
    int ipc_fd;              /* memfd once exported by IPC, else -1 */
    unsigned long long id;
    struct sim_ctx *ctx;
    struct sim_pool *pool;   /* allocated from a memory pool (async) */
    struct sim_alloc *next;  /* hash chain / pool free list */
    /* Managed memory only (managed.c): where its pages are and the advice
     * given. `charged` is then what is resident on device `res_dev`. */
    int8_t res;              /* SIM_RES_*: unpopulated, host, device */
    uint8_t read_mostly;
    int16_t res_dev;         /* the device holding it while SIM_RES_DEVICE */
    int preferred;           /* CU_DEVICE_CPU, a device, or CU_DEVICE_INVALID (none) */
    int last_prefetch;       /* CU_DEVICE_CPU, a device, or CU_DEVICE_INVALID */
    uint32_t accessed_by;    /* bit d: SET_ACCESSED_BY device d */
};
enum { SIM_RES_NONE = 0, SIM_RES_HOST, SIM_RES_DEVICE };
void sim_registry_insert(struct sim_alloc *a);
/* Removes and returns the allocation starting exactly at base (kind matching
 * one of the bits in kind_mask, 1 << kind), or NULL. O(1). */
struct sim_alloc *sim_registry_remove(uintptr_t base, unsigned kind_mask);
/* Calls fn on the live record starting exactly at base (kind in kind_mask)
 * under its shard's lock, so a concurrent free cannot free it meanwhile.
 * Returns fn's result, or -1 when there is no such record. */
int sim_registry_with(uintptr_t base, unsigned kind_mask, int (*fn)(struct sim_alloc *a, void *arg), void *arg);
/* Finds the allocation containing [p, p+len): copies it to *out. Slower for
 * interior pointers of small allocations (scans). 0 on success. */
int sim_registry_find(uintptr_t p, size_t len, struct sim_alloc *out);
/* Removes every allocation of a context (context destroy / reset), calling
 * fn for each. */
void sim_registry_drain_ctx(struct sim_ctx *ctx, void (*fn)(struct sim_alloc *));

/* ---- fork.c: one pthread_atfork for the library ----
 * The locks of the modules it lists are held across fork() (PREPARE), then
 * released in the parent and made new in the child (whose only thread has a
 * new thread id), so a child never inherits a lock that another thread held
 * mid-update. Each module's function walks its own locks. */
enum sim_fork_phase { SIM_FORK_PREPARE, SIM_FORK_PARENT, SIM_FORK_CHILD };
void sim_mutex_fork(pthread_mutex_t *m, enum sim_fork_phase phase);   /* lock, unlock or init */
void sim_registry_fork(enum sim_fork_phase phase);
void sim_heap_fork(enum sim_fork_phase phase);

/* ---- heap.c: the sim's own memory, never the application's malloc heap ----
 * Blocks of 1..SIM_SMALL_MAX bytes, 512-byte aligned (records: 64 or more), not
 * zeroed unless calloc; free takes the size given at allocation. No system
 * call in steady state; safe across threads and fork. */
void *sim_heap_alloc(size_t size);
void *sim_heap_calloc(size_t size);
void sim_heap_free(void *p, size_t size);
struct sim_alloc *sim_record_alloc(void);        /* uninitialised */
void sim_record_free(struct sim_alloc *a);

/* ---- memory.c ---- */
size_t sim_round_alloc(size_t bytes);
/* Allocates backing + charges + registers a device-kind allocation. */
CUresult sim_alloc_device(struct sim_ctx *ctx, size_t bytes, enum sim_kind kind, struct sim_pool *pool,
                          struct sim_alloc **out);
/* Frees backing, releases charge, frees the record (already unregistered). */
void sim_free_record(struct sim_alloc *a);
void *sim_map_backing(size_t len);               /* lazily reserved zero pages */

/* ---- managed.c: managed memory's residency ----
 * A device-side touch (a copy or memset naming [p, p+len)) of managed
 * memory: populates or migrates it as the driver's fault handling would. */
void sim_managed_touch(uintptr_t p, size_t len);
/* memory.c frees managed records like the others, and says so here. */
void sim_managed_freed(void);

/* ---- pool.c ---- */
CUresult sim_pool_free_async(struct sim_alloc *a);
void sim_pools_trim_all(void);                   /* on synchronisation */
void sim_pool_on_free(struct sim_alloc *a);      /* a pool block freed for good */
struct sim_pool *sim_pool_default(int dev);

/* ---- vmm.c ---- */
/* Whether [p, p+len) lies in mapped, accessible VMM memory. */
int sim_vmm_covers(uintptr_t p, size_t len, int *dev);

/* ---- stream.c ---- */
CUresult sim_stream_check(CUstream s);           /* INVALID_HANDLE on garbage */
CUresult sim_sync_all(void);

/* ---- array.c ---- */
struct sim_array;
/* Base, row pitch and height of an array's level 0 for copies. */
int sim_array_layout(CUarray a, unsigned char **base, size_t *pitch, size_t *height, size_t *bytes);

#endif
