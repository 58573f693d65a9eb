/* The accounting hot path, inlined into every allocation hook.
 *
 * Each thread counts in its own lane of its process's slot (group.h): one
 * cell, one cache line, per group device. It holds a small reservation
 * there against the group's limit. An allocation that fits under the
 * cell's `cap` adds its bytes to `charged` and compares: one cache line,
 * no other thread's. One that does not fit raises the reservation
 * (cell_grow, account.c):
 *   1. store the cell's new reservation (seq_cst);
 *   2. sum every cell's reservation in the group (seq_cst loads);
 *   3. over the limit -> take it back (and the bytes) and refuse.
 * Two racing raises cannot both pass when together they exceed the limit:
 * each one's store precedes its loads, so at least one sees the other.
 * No lock, nothing a killed process can leave held; a killed process's
 * cells stay until reclaim verifies (pid, start time) that it is gone.
 *
 * The thread keeps the byte offset of its cell in thread-local storage
 * (shim_tl.fast), so the fast path is: the hot slot, that offset, one
 * atomic add, one compare. The allocation's entry in the live table
 * records the same offset (gpumem/live_table.h), so a free finds the cell
 * with one mask. */
#ifndef GPUMEM_SHIM_ACCOUNT_H
#define GPUMEM_SHIM_ACCOUNT_H

#include "shim.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* A charge past ALLOC_BYTES_MAX: no cap admits it (caps stay at or below
 * ALLOC_BYTES_MAX) and the slow path refuses it, so a size near 2^64 can
 * neither wrap a counter nor be truncated in the live table. */
#define SHIM_TOO_BIG (ALLOC_BYTES_MAX + 1)
static inline uint64_t shim_charge_clamp(uint64_t bytes) { return bytes > ALLOC_BYTES_MAX ? SHIM_TOO_BIG : bytes; }

/* The driver's own rounding (as modelled by the simulated GPU, and close to
 * what NVIDIA's driver reports per process): small allocations are packed at
 * 512-byte granularity, larger ones take whole 2 MiB pages. */
static inline uint64_t shim_charge_size(uint64_t bytes)
{
    if (bytes <= (1u << 20))
        return (bytes + 511) & ~(uint64_t)511;
    if (unlikely(bytes > ALLOC_BYTES_MAX - (2u << 20)))
        return SHIM_TOO_BIG;
    return (bytes + (2u << 20) - 1) & ~(uint64_t)((2u << 20) - 1);
}

/* The limit for group device gd, read from the limits file each time: only
 * the slow paths ask (a reservation to raise, the view), and the fast path
 * never needs it (`gpumem limit` clears every cell's cap, so the next
 * allocation comes here). 0 while the file is left torn by a dead writer. */
static inline uint64_t shim_limit(int gd) { return gm_limits_for(g.limits, g.usage->dev[gd].uuid); }

/* A thread's accounting state. Initial-exec TLS: one load, no call (the
 * shim is loaded at start-up, never by a later dlopen). */
struct shim_thread {
    /* Byte offset (in gm_proc_slot.cell) of this thread's cell for the
     * process's only device, or -1: the allocation hooks then take
     * shim_charge_slow (first use, several devices, not enforcing). */
    int64_t fast;
    int32_t lane;   /* this thread's lane, -1 until its first charge */
    /* 1 while the caller handles a refusal for the limit itself: the spill
     * path (spill.c), which may yet serve it from the group's swap, and the
     * retries of a GPUMEM_OOM=wait (oom_wait.c), whose first refusal was
     * counted. Such a refusal is neither counted nor logged but leaves 2
     * here. */
    uint32_t quiet;
    /* The slack its lane last reserved beyond its charge: limit/256, at
     * most SHIM_LANE_SLACK_MAX (under a 16 MiB limit, 64 KiB). */
    uint64_t slack;
};
extern __thread struct shim_thread shim_tl __attribute__((tls_model("initial-exec")));
#define SHIM_LANE_SLACK_MAX (4ull << 20)
void shim_lanes_fork_child(void);

static ALWAYS_INLINE struct gm_cell *shim_cell(struct gm_proc_slot *s, uint64_t off)
{
    return (struct gm_cell *)((char *)s->cell + off);
}

/* shim_charge without its fast path (account.c): first use, several
 * devices, a reservation to raise, no group. gd_hint >= 0 names the group
 * device (else: the current context's). */
CUresult shim_charge_slow(int gd_hint, uint64_t bytes, int kind, uint64_t *v);

/* The fast path of shim_charge: this thread's cell for the process's only
 * device has room under its cap. Returns 1 with *v set and the allocation
 * counted, or 0 with nothing changed (a charge that did not fit is taken
 * back: shim_charge_slow adds it again and raises the reservation). */
static ALWAYS_INLINE int shim_charge_fast(uint64_t bytes, int kind, uint64_t *v)
{
    struct gm_proc_slot *s = shim_hot_slot();
    int64_t off = shim_tl.fast;
    if (unlikely(s == NULL || off < 0))
        return 0;
    struct gm_cell *c = shim_cell(s, (uint64_t)off);
    /* Added, then read back: only this thread adds to its cell (the shared
     * lane's cap is 0), others only subtract, so what it reads includes
     * its own bytes and is at most what the cell holds. */
    atomic_fetch_add(&c->charged, bytes);
    /* The cap is read after the add (seq_cst: a plain load on x86-64), so
     * that a thread giving this cell's reservation back, which clears the
     * cap and then reads the charge, counts these bytes if we pass. */
    if (unlikely(atomic_load_explicit(&c->charged, memory_order_relaxed) > atomic_load(&c->cap))) {
        atomic_fetch_sub(&c->charged, bytes);
        return 0;
    }
    atomic_fetch_add_explicit(&c->allocs, 1, memory_order_relaxed);
    *v = alloc_pack_cell(bytes, kind, (uint64_t)off);
    return 1;
}

/* Charges `bytes` for an allocation of `kind` that this thread is about to
 * ask the driver for, on the current device. Returns CUDA_SUCCESS with *v
 * the value for its table entry (0: not charged, pass it through — no
 * group, or no current context for the driver to complain about), or the
 * error to give the application (the limit, a group that failed closed). */
static ALWAYS_INLINE CUresult shim_charge(uint64_t bytes, int kind, uint64_t *v)
{
    if (likely(shim_charge_fast(bytes, kind, v)))
        return CUDA_SUCCESS;
    return shim_charge_slow(-1, bytes, kind, v);
}

/* Takes back a charge whose allocation the driver refused (v from
 * shim_charge; the reservation stays with the lane). */
void shim_uncharge(uint64_t v);

/* Changes a charged allocation's bytes (a pitch that came out other than
 * guessed): the new bytes are charged on the same cell. Returns
 * CUDA_ERROR_OUT_OF_MEMORY, with the old charge kept, when they do not fit. */
CUresult shim_recharge(uint64_t *v, uint64_t bytes);

/* A free left a cell's charge below its trim_below: its owner gives back
 * what it no longer needs (another thread's lane is left to that thread). */
void shim_cell_trim(uint64_t off);

/* A freed allocation's bytes leave the cell that charged them (its entry
 * says which). */
void shim_spill_release(uint64_t v); /* spill.c */
static ALWAYS_INLINE void shim_release(struct gm_proc_slot *s, uint64_t v)
{
    if (unlikely(alloc_spilled(v))) { /* its bytes are the swap's */
        shim_spill_release(v);
        return;
    }
    uint64_t off = alloc_cell_off(v), bytes = alloc_bytes(v);
    struct gm_cell *c = shim_cell(s, off);
    atomic_fetch_sub(&c->charged, bytes);
    atomic_fetch_add_explicit(&c->frees, 1, memory_order_relaxed);
    /* A hint (read after the subtraction): the trim itself reads afresh. */
    if (unlikely(atomic_load_explicit(&c->charged, memory_order_relaxed) <
                 atomic_load_explicit(&c->trim_below, memory_order_relaxed)))
        shim_cell_trim(off);
}

/* Counts a refusal of `bytes` on group device gd for gpumem ps (no log). */
void shim_count_refusal(int gd, uint64_t bytes);
/* ... and logs it (at most once a second) with the group's usage and limit. */
void shim_note_refusal(int gd, uint64_t bytes);

/* Charges that may be released by another thread than the one that made
 * them (contexts, memory pools): exact, on the shared lane. */
CUresult shim_reserve(int gd, uint64_t bytes);
void shim_unreserve(int gd, uint64_t bytes);
/* Counts an allocation or a free (of a context or a pool allocation) on
 * the shared lane of gd. */
void shim_count(int gd, int free_);

#endif
