/* The accounting hot path, inlined into every allocation hook.
 *
 * Reserve before the driver call, commit or roll back after it:
 *   1. add the bytes to this process's slot (seq_cst fetch_add);
 *   2. sum every slot's charge on that device (seq_cst loads);
 *   3. over the limit -> take the bytes back and refuse.
 * Two racing reservations cannot both pass when together they exceed the
 * limit: each one's add precedes its loads, so at least one sees the other's
 * add (store-load ordering of seq_cst). No lock, nothing a killed process can
 * leave held; the bytes of a killed process stay in its slot until reclaim
 * verifies (pid, start time) that it is gone. */
#ifndef GPUMEM_SHIM_ACCOUNT_H
#define GPUMEM_SHIM_ACCOUNT_H

#include "shim.h"

/* The driver's own rounding (as modelled by the simulated GPU, and close to
 * what NVIDIA's driver reports per process): small allocations are packed at
 * 512-byte granularity, larger ones take whole 2 MiB pages. */
static inline uint64_t shim_charge_size(uint64_t bytes)
{
    if (bytes <= (1u << 20))
        return (bytes + 511) & ~(uint64_t)511;
    return (bytes + (2u << 20) - 1) & ~(uint64_t)((2u << 20) - 1);
}

/* The limit for group device gd. The value is cached per process against
 * the limits file's seqlock counter, so the hot path is two loads and a
 * compare; `gpumem limit` bumps the counter and the next call re-reads. */
uint64_t shim_limit_reload(int gd, uint64_t seq);
static inline uint64_t shim_limit(int gd)
{
    uint64_t seq = atomic_load_explicit(&g.limits->seq, memory_order_acquire);
    if (likely(atomic_load_explicit(&g.lim[gd].seq, memory_order_acquire) == seq + 2))
        return atomic_load_explicit(&g.lim[gd].value, memory_order_relaxed);
    return shim_limit_reload(gd, seq);
}

CUresult shim_reserve_slow(int gd, uint64_t bytes, uint64_t limit);

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* This thread's lane in its process's slot (group.h); NULL until the
 * thread first charges or releases. Initial-exec TLS: one load, no call
 * (the shim is loaded at start-up, never by a later dlopen). A process has
 * one slot for life; a forked child starts again (shim_lanes_fork_child). */
extern __thread struct gm_lane *shim_tl_lane __attribute__((tls_model("initial-exec")));
struct gm_lane *shim_lane_claim(struct gm_proc_slot *s);
void shim_lanes_fork_child(void);
static ALWAYS_INLINE struct gm_lane *shim_lane(struct gm_proc_slot *s)
{
    struct gm_lane *l = shim_tl_lane;
    if (likely(l != NULL))
        return l;
    return shim_lane_claim(s);
}

/* Several processes or several lanes: the group's total is a sum. */
CUresult shim_reserve_shared(struct gm_proc_slot *s, struct gm_usage *u, int gd, uint64_t bytes, uint64_t limit);

static ALWAYS_INLINE void shim_raise_peak(_Atomic uint64_t *peak, uint64_t v)
{
    if (unlikely(v > atomic_load_explicit(peak, memory_order_relaxed))) {
        uint64_t p = atomic_load_explicit(peak, memory_order_relaxed);
        while (v > p && !atomic_compare_exchange_weak(peak, &p, v))
            ;
    }
}

/* Reserves `bytes` on gd. The slot and region pointers are passed in so the
 * compiler need not reload them after each atomic (which is a barrier). */
static ALWAYS_INLINE CUresult shim_reserve_in(struct gm_proc_slot *s, struct gm_usage *u, int gd, uint64_t bytes)
{
    uint64_t limit = shim_limit(gd);
    uint64_t mine = atomic_fetch_add(&shim_lane(s)->charged[gd], bytes) + bytes;
    /* A group of one process with one lane in use (only slot 0 and its lane
     * 0 ever claimed, both ours) has its total in hand: what the add
     * returned. A process or thread claiming a second slot or lane raises
     * slots_hw or lanes_hw before its own first add; if our loads still saw
     * 1, its sum will see our add. */
    if (unlikely(atomic_load(&u->slots_hw) != 1 || atomic_load(&s->lanes_hw) != 1))
        return shim_reserve_shared(s, u, gd, bytes, limit);
    if (unlikely(mine > limit))
        return shim_reserve_slow(gd, bytes, limit);
    /* Peaks: the group's (any process may raise it) and this process's. */
    shim_raise_peak(&u->dev[gd].peak, mine);
    if (unlikely(mine > atomic_load_explicit(&s->peak[gd], memory_order_relaxed)))
        atomic_store_explicit(&s->peak[gd], mine, memory_order_relaxed);
    return CUDA_SUCCESS;
}

static inline CUresult shim_reserve(int gd, uint64_t bytes) { return shim_reserve_in(g.slot, g.usage, gd, bytes); }

static inline void shim_unreserve(int gd, uint64_t bytes)
{
    atomic_fetch_sub(&shim_lane(g.slot)->charged[gd], bytes);
}

/* After the driver said yes. */
static ALWAYS_INLINE void shim_committed_in(struct gm_proc_slot *s)
{
    atomic_fetch_add_explicit(&shim_lane(s)->allocs, 1, memory_order_relaxed);
}
static inline void shim_committed(void) { shim_committed_in(g.slot); }

static ALWAYS_INLINE void shim_released_in(struct gm_proc_slot *s, int gd, uint64_t bytes)
{
    struct gm_lane *l = shim_lane(s);
    atomic_fetch_sub(&l->charged[gd], bytes);
    atomic_fetch_add_explicit(&l->frees, 1, memory_order_relaxed);
}
static inline void shim_released(int gd, uint64_t bytes) { shim_released_in(g.slot, gd, bytes); }

#endif
