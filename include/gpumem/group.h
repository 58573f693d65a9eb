/* A group: one container or one `gpumem run`, living in a directory
 * (/run/gpumem/<name>/, or under $GPUMEM_STATE_DIR) with two files.
 *
 *   limits  Written by whoever creates the group; read-only to the group's
 *           processes (mounted read-only into containers). Fixed layout,
 *           updated in place under a seqlock by `gpumem limit`, so every
 *           process that has it mapped sees a new limit at its next
 *           allocation, and a reader never sees a half-written one.
 *   usage   Shared by every process of the group (mmap, read-write): per
 *           device the group's identity, peak and refusals; per process a
 *           slot with the bytes it holds and reserves, in lanes (one per
 *           thread, see struct gm_lane). Hot-path updates are lock-free
 *           atomics on the thread's own lane; only slot claim and reclaim of
 *           dead processes take the region's robust mutex, which the kernel
 *           hands on if its holder dies.
 *
 * Both files start with a magic and a layout version; anything else is
 * refused (and the shim then fails closed). */
#ifndef GPUMEM_GROUP_H
#define GPUMEM_GROUP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "gpumem/size.h"

#define GM_LAYOUT_VERSION   6
#define GM_LIMITS_MAGIC     0x31544d4c4d4d5047ULL /* "GPMMLMT1" */
#define GM_USAGE_MAGIC      0x3147534d4d4d5047ULL /* "GPMMMSG1" */
#define GM_MAX_DEVICES      16
#define GM_MAX_PROCS        256
#define GM_NAME_LEN         64

enum gm_priority { GM_PRIO_LOW = -1, GM_PRIO_NORMAL = 0, GM_PRIO_HIGH = 1 };

/* gm_limits.swap_flags. PROMOTE: spilled allocations move back to the
 * device when the group has room again (docs/spill.md). */
#define GM_SWAP_PROMOTE 1u

/* ---- limits ---------------------------------------------------------- */

struct gm_limit_dev {
    char uuid[GM_UUID_LEN];     /* "GPU-..." lower case; "" = unused entry */
    uint64_t limit;             /* bytes */
};

struct gm_limits {
    uint64_t magic;
    uint32_t version;
    uint32_t size;              /* sizeof(struct gm_limits) */
    _Atomic uint64_t seq;       /* seqlock: odd while being rewritten */
    uint64_t default_limit;     /* devices without an entry; GM_UNLIMITED = none */
    uint32_t ndev;
    uint32_t reserved0;
    struct gm_limit_dev dev[GM_MAX_DEVICES];
    uint64_t swap;              /* host spill allowance (bytes), 0 = none (docs/spill.md) */
    int32_t priority;
    uint32_t swap_flags;        /* GM_SWAP_*; was reserved (0 in every older file) */
    /* Identity, for people and for Prometheus labels. */
    char name[GM_NAME_LEN];
    char container_id[80];
    char pod[GM_NAME_LEN];
    char pod_namespace[GM_NAME_LEN];
    char container_name[GM_NAME_LEN];
    uint64_t created_unix;
    /* Requests (layout 6; docs/policy.md): what the group is guaranteed per
     * GPU, by UUID, else request_default (0 = nothing guaranteed). Admission
     * keeps the sum of requests on a GPU within its memory; between request
     * and limit the group borrows, and borrowed memory may be reclaimed. */
    uint64_t request_default;
    uint32_t nreq;
    /* GPUMEM_OOM=wait:SECONDS: an allocation that would pass the limit or
     * the GPU's free memory waits up to this long (ms) for memory to be
     * freed before it is refused; 0 = refuse at once. */
    uint32_t oom_wait_ms;
    struct gm_limit_dev req[GM_MAX_DEVICES]; /* .limit holds the request */
};

/* ---- usage ----------------------------------------------------------- */

/* A device as the group knows it: keyed by UUID, so renumbering by
 * CUDA_VISIBLE_DEVICES cannot split or dodge its accounting. */
struct gm_usage_dev {
    char uuid[GM_UUID_LEN];     /* "" = free entry; set under the admin mutex */
    _Atomic uint64_t peak;              /* group peak of charged bytes */
    _Atomic uint64_t refusals;          /* allocations refused for the limit */
    _Atomic uint64_t last_refused_size;
    _Atomic uint64_t ctx_overhead;      /* measured per-context cost, 0 = not yet */
};

/* Where a process's threads count, so that two threads allocating at once
 * do not bounce one cache line between their CPUs.
 *
 * A slot has GM_LANES lanes, and a lane has one cell (one cache line) per
 * group device. Lanes 0 .. GM_LANES-2 belong to one thread each while it
 * lives. Its allocations are counted in `charged`, and it holds `reserved`
 * >= charged bytes against the group's limit, taken and given back in
 * small chunks: an allocation that leaves `charged` at or below `cap`
 * touches only that cell. Only the lane's thread changes `reserved`, `cap`
 * (but `gpumem limit` clears it) and `trim_below`; a free from another
 * thread lowers `charged` only.
 *
 * Lane GM_LANE_SHARED is for everything else (threads beyond the owned
 * lanes, contexts, memory pools): exact and any thread's. Its `reserved`
 * and `cap` stay 0; what it holds against the limit is its `charged`.
 *
 * A free from another thread that leaves a cell holding much more than it
 * uses sets its cap to GM_CAP_GIVEN_BACK: the cell has no fast path then,
 * and the sum counts only its `charged`, so the bytes go back to the group
 * at once; its thread takes a new reservation at its next allocation.
 *
 * The limit holds over the sum, over every cell of every slot, of
 * max(charged, reserved) (only `charged` for a cell whose reservation was
 * given back): whoever raises a charge or reservation adds first and sums
 * after, so of two racing raises at least one sees the other. Usage is the
 * sum of `charged`. */
#define GM_CAP_GIVEN_BACK 1
#define GM_LANES            4
#define GM_LANE_SHARED      (GM_LANES - 1)
struct gm_cell {
    _Atomic uint64_t charged;           /* bytes of live allocations made here */
    _Atomic uint64_t cap;               /* charged up to this fits the reservation; 0 (or 1): look at the group */
    _Atomic uint64_t reserved;          /* bytes held against the limit (owned lanes) */
    _Atomic uint64_t trim_below;        /* a free leaving charged below this gives reservation back */
    _Atomic uint64_t allocs, frees;
    /* Bytes of this lane's allocations spilled to host memory (managed
     * memory placed on the host, docs/spill.md): charged to the group's
     * swap, never to `charged`. Raised by the cell's own thread only in
     * the spill path; lowered by any free. Was padding (0 in every region
     * ever created), so the layout version is unchanged. */
    _Atomic uint64_t swapped;
    uint64_t pad;
} __attribute__((aligned(64)));
/* The cell of lane l, group device d; an allocation's entry records its
 * byte offset (gpumem/live_table.h alloc_cell_off). */
#define GM_CELL_INDEX(l, d) ((l) * GM_MAX_DEVICES + (d))
_Static_assert(sizeof(struct gm_cell) == 64, "a cell is one cache line");

/* The start time of a process that could not read its own /proc/self/stat
 * when it claimed its slot: nothing can prove it dead, so only its own exit
 * frees the slot (gm_proc_alive). */
#define GM_START_UNKNOWN UINT64_MAX

/* One process. Only its owner writes the counters; slots never move (no
 * compaction), so a pointer to one stays valid for the process's life. */
struct gm_proc_slot {
    _Atomic int32_t pid;                /* pid as the group sees it; 0 = free */
    int32_t host_pid;                   /* filled by the host side when known */
    uint64_t start_time;                /* /proc/<pid>/stat field 22: pid reuse guard;
                                         * GM_START_UNKNOWN: /proc unreadable at claim */
    char comm[32];
    _Atomic uint64_t peak[GM_MAX_DEVICES];
    _Atomic uint64_t refusals;
    _Atomic uint64_t last_refused_size;
    _Atomic uint64_t last_activity_ns;  /* CLOCK_REALTIME of the last alloc/free */
    /* Where this process keeps its table of live allocations (an address in
     * its own memory; layout gpumem/live_table.h, version table_layout), for
     * readers with ptrace rights: gpumem inspect, the daemon. 0 = none. */
    uint64_t table_addr;
    uint32_t table_layout;
    _Atomic uint32_t lanes_hw;          /* owned lanes [0, lanes_hw) ever claimed */
    _Atomic uint32_t lane_owned[GM_LANES]; /* owned lanes: 1 while a thread has it */
    struct gm_cell cell[GM_LANES * GM_MAX_DEVICES];
} __attribute__((aligned(64)));

/* A process's bytes on group device d, allocations and frees: over its lanes. */
static inline uint64_t gm_slot_charged(const struct gm_proc_slot *s, int d)
{
    uint64_t sum = 0;
    for (int l = 0; l < GM_LANES; l++)
        sum += atomic_load(&s->cell[GM_CELL_INDEX(l, d)].charged);
    return sum;
}
/* A process's bytes spilled to host memory on group device d. */
static inline uint64_t gm_slot_swapped_dev(const struct gm_proc_slot *s, int d)
{
    uint64_t sum = 0;
    for (int l = 0; l < GM_LANES; l++)
        sum += atomic_load(&s->cell[GM_CELL_INDEX(l, d)].swapped);
    return sum;
}
/* ... on every device (the swap allowance is one figure for the group). */
static inline uint64_t gm_slot_swapped(const struct gm_proc_slot *s)
{
    uint64_t sum = 0;
    for (int i = 0; i < GM_LANES * GM_MAX_DEVICES; i++)
        sum += atomic_load(&s->cell[i].swapped);
    return sum;
}
static inline uint64_t gm_slot_allocs(const struct gm_proc_slot *s)
{
    uint64_t sum = 0;
    for (int i = 0; i < GM_LANES * GM_MAX_DEVICES; i++)
        sum += atomic_load_explicit(&s->cell[i].allocs, memory_order_relaxed);
    return sum;
}
static inline uint64_t gm_slot_frees(const struct gm_proc_slot *s)
{
    uint64_t sum = 0;
    for (int i = 0; i < GM_LANES * GM_MAX_DEVICES; i++)
        sum += atomic_load_explicit(&s->cell[i].frees, memory_order_relaxed);
    return sum;
}

struct gm_usage {
    uint64_t magic;
    uint32_t version;
    uint32_t size;                      /* sizeof(struct gm_usage) */
    uint32_t max_devices, max_procs;
    _Atomic uint32_t slots_hw;          /* slots [0, slots_hw) may be in use */
    _Atomic uint32_t ndev;
    pthread_mutex_t admin;              /* robust, process-shared; never on the hot path */
    /* The group's lifetime (gm_group_collect), both set under the admin
     * mutex. `removed`: the group's files were (or are being) unlinked; no
     * slot is claimed any more, so a process that mapped the region before
     * the removal fails closed instead of accounting where no one looks.
     * `creator_left`: the `gpumem run` that created the group has seen its
     * command exit while other processes still held slots, so the last of
     * them removes it. Carved out of what was padding (zero in every region
     * ever created), so the layout version is unchanged. */
    _Atomic uint32_t removed;
    _Atomic uint32_t creator_left;
    /* CLOCK_REALTIME (ns) of the group's first spill to host memory, 0 =
     * never: the daemon reports it once as an event. Carved out of padding
     * like the two above. */
    _Atomic uint64_t first_spill_ns;
    /* Memory pressure, for the daemon's reclaim (docs/policy.md): the last
     * allocation the driver refused because the GPU was full (not the
     * group's limit): its bytes, group device, CLOCK_REALTIME ns and pid.
     * A call blocked in GPUMEM_OOM=wait refreshes want_ns at each retry, so
     * a report goes stale by itself when its process dies. Written by the
     * shim's slow path only; carved out of padding. */
    _Atomic uint64_t want_bytes;
    _Atomic uint64_t want_ns;
    _Atomic uint32_t want_dev;
    _Atomic int32_t want_pid;
    char pad[24];
    struct gm_usage_dev dev[GM_MAX_DEVICES];
    struct gm_proc_slot slot[GM_MAX_PROCS];
};

/* ---- operations (src/common/group_*.c) -------------------------------- */

/* The directory that holds groups: $GPUMEM_STATE_DIR, else /run/gpumem for
 * root, else $XDG_RUNTIME_DIR/gpumem, else /tmp/gpumem-<uid>. */
const char *gm_state_dir(char *buf, size_t len);

/* A group name: [A-Za-z0-9][A-Za-z0-9_.-]{0,62}. Returns 0 when valid. */
int gm_valid_group_name(const char *name);

/* Fills `l` from a parsed spec: UUID terms and ALL become entries/default;
 * INDEX terms are mapped with index_uuid (index -> "GPU-..." or NULL). */
int gm_limits_from_spec(struct gm_limits *l, const struct gm_limit_spec *spec,
                        const char *(*index_uuid)(int index, void *ctx), void *ctx, char *err, size_t errlen);
void gm_limits_init(struct gm_limits *l);
/* Adds {uuid, bytes} to arr[0..*n) (limit or request entries); -1 with err
 * when the device is there already ("given two <what>") or arr is full. */
int gm_dev_entry_add(struct gm_limit_dev *arr, uint32_t *n, const char *uuid, uint64_t bytes, const char *what,
                     char *err, size_t errlen);

/* Creates dir/limits (0644) and dir/usage (0666 by default) for a new group.
 * Fails if the group exists. */
int gm_group_create(const char *dir, const struct gm_limits *l, mode_t usage_mode, char *err, size_t errlen);
int gm_group_remove(const char *dir);

/* ---- lifetime (src/common/group_usage.c) ------------------------------
 *
 * A group lives while any process holds a slot in it. `gpumem run` (unless
 * --keep) writes a marker file, GM_RUN_MARKER, naming itself (pid and start
 * time): such a group is removed as soon as it is empty and its creator is
 * done with it, by whichever comes first: the creator when its command
 * exits, the shim of the last process to leave, the daemon, `gpumem run`
 * reusing the name, or `gpumem rm`. Groups without the marker (containers,
 * --keep) are never removed by this rule. */
#define GM_RUN_MARKER "run"

/* Writes dir/run: "pid=<pid>\nstart=<start time>\n" (tmp + rename). */
int gm_run_marker_write(const char *dir, pid_t pid, uint64_t start, char *err, size_t errlen);
/* 1 with *pid and *start filled when dir has a well-formed marker, else 0. */
int gm_run_marker_read(const char *dir, pid_t *pid, uint64_t *start);

enum {
    GM_COLLECT_CREATOR = 1, /* the creator's command exited: remove if empty, else leave it to the last one out */
    GM_COLLECT_ANY = 2,     /* remove if empty, marker or not (gpumem rm, the daemon's container GC) */
};
/* Under the admin mutex: releases `mine` (a slot of the caller, or NULL),
 * reclaims dead processes' slots, and when no slot is left and the group
 * may go (`how`; with 0: it has a run marker and its creator left or died)
 * marks the region removed and unlinks the group's files. A group already
 * marked removed (its remover died midway) is removed again. Returns 1
 * when the group was removed, 0 when it stays, -1 when the mutex could not
 * be taken. */
int gm_group_collect(const char *dir, struct gm_usage *u, struct gm_proc_slot *mine, int how);

/* Maps dir/limits read-only / dir/usage read-write, validating magic,
 * version, and size. Returns the mapping or NULL with err set. */
const struct gm_limits *gm_limits_map(const char *dir, char *err, size_t errlen);
struct gm_usage *gm_usage_map(const char *dir, char *err, size_t errlen);
void gm_limits_unmap(const struct gm_limits *l);
void gm_usage_unmap(struct gm_usage *u);

/* Consistent copy of a mapped limits file (seqlock read). A writer midway
 * through a rewrite is waited out; -1 when one died mid-update (an odd
 * counter nobody holds the file's lock for) or stays midway for seconds
 * (stopped by a signal). */
int gm_limits_read(const struct gm_limits *l, struct gm_limits *copy);

/* The limit for a device UUID: its entry, else the default. Lock-free, as
 * gm_limits_read; 0 (refuse everything) where that gives -1. */
uint64_t gm_limits_for(const struct gm_limits *l, const char *uuid);

/* The request for a device UUID: its entry, else request_default (from a
 * consistent copy, as gm_limits_read gives). */
uint64_t gm_request_for(const struct gm_limits *copy, const char *uuid);

/* Rewrites the limits of an existing group in place (flock + seqlock). */
int gm_limits_update(const char *dir, const struct gm_limits *l, char *err, size_t errlen);

/* Admin mutex (robust): returns 0 when held. A dead holder's half-done work
 * is repaired by the reclaim that follows every acquisition that finds it. */
int gm_admin_lock(struct gm_usage *u);
void gm_admin_unlock(struct gm_usage *u);

/* Finds or adds the group's entry for a device UUID; -1 when full. */
int gm_usage_device(struct gm_usage *u, const char *uuid);

/* Claims a slot for this process (reclaiming dead ones first if needed).
 * NULL when none is free, or the group was removed (u->removed). */
struct gm_proc_slot *gm_slot_claim(struct gm_usage *u, pid_t pid, uint64_t start_time, const char *comm);
void gm_slot_release(struct gm_usage *u, struct gm_proc_slot *s);

/* Frees the slots of processes that no longer exist (pid gone, or reused:
 * start time differs). Returns how many were reclaimed. Takes the admin
 * mutex itself. */
int gm_reclaim_dead(struct gm_usage *u);

/* How many slots of the group hold a process (alive or not yet reclaimed). */
static inline int gm_usage_live_slots(const struct gm_usage *u)
{
    int n = 0;
    uint32_t hw = atomic_load(&u->slots_hw);
    for (uint32_t i = 0; i < hw && i < GM_MAX_PROCS; i++)
        n += atomic_load(&u->slot[i].pid) != 0;
    return n;
}

/* The group's usage on group device `d`: every slot's charged bytes. */
static inline uint64_t gm_usage_total(const struct gm_usage *u, int d)
{
    uint64_t sum = 0;
    uint32_t hw = atomic_load(&u->slots_hw);
    for (uint32_t i = 0; i < hw; i++)
        sum += gm_slot_charged(&u->slot[i], d);
    return sum;
}

/* The group's bytes spilled to host memory, on group device d (d < 0: on
 * every device: what the swap allowance is checked against). */
static inline uint64_t gm_usage_swapped(const struct gm_usage *u, int d)
{
    uint64_t sum = 0;
    uint32_t hw = atomic_load(&u->slots_hw);
    for (uint32_t i = 0; i < hw; i++)
        sum += d < 0 ? gm_slot_swapped(&u->slot[i]) : gm_slot_swapped_dev(&u->slot[i], d);
    return sum;
}

/* What the limit is checked against on group device `d`: every cell's
 * max(charged, reserved), or its charge alone where its reservation was
 * given back (the shared lane always, owned lanes below lanes_hw). A
 * charge above the reservation is an allocation on its way to a raise or a
 * refusal: counting it can only refuse, never admit. The cap is read
 * before the charge: a thread that passed its fast path under the old cap
 * had added its bytes before (account.h), so they are counted. */
static inline uint64_t gm_usage_reserved(const struct gm_usage *u, int d)
{
    uint64_t sum = 0;
    uint32_t hw = atomic_load(&u->slots_hw);
    for (uint32_t i = 0; i < hw; i++) {
        const struct gm_proc_slot *s = &u->slot[i];
        uint32_t lanes = atomic_load(&s->lanes_hw);
        for (uint32_t l = 0; l < GM_LANES; l++) {
            if (l >= lanes && l != GM_LANE_SHARED)
                continue;
            const struct gm_cell *c = &s->cell[GM_CELL_INDEX(l, d)];
            uint64_t cap = atomic_load(&c->cap);
            uint64_t ch = atomic_load(&c->charged), r = atomic_load(&c->reserved);
            sum += ch > r || cap == GM_CAP_GIVEN_BACK ? ch : r;
        }
    }
    return sum;
}

/* `gpumem limit` changed the limits: every cell's cap goes to 0, so each
 * lane's next allocation looks at the group (and the new limit) again. */
void gm_usage_clear_caps(struct gm_usage *u);

#endif
