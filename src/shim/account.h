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

/* Reserves `bytes` on gd. The slot and region pointers are passed in so the
 * compiler need not reload them after each atomic (which is a barrier). */
static ALWAYS_INLINE CUresult shim_reserve_in(struct gm_proc_slot *s, struct gm_usage *u, int gd, uint64_t bytes)
{
    uint64_t limit = shim_limit(gd);
    uint64_t mine = atomic_fetch_add(&s->charged[gd], bytes) + bytes;
    /* A group of one process (only slot 0 ever claimed, and it is ours) has
     * its total in hand: what the add returned, which counts every thread's
     * bytes. A process claiming a second slot raises slots_hw before its
     * own add; if our load still saw 1, its sum will see our add. */
    uint64_t total = likely(atomic_load(&u->slots_hw) == 1) ? mine : gm_usage_total(u, gd);
    if (unlikely(total > limit))
        return shim_reserve_slow(gd, bytes, limit);
    /* Peaks: the group's (any process may raise it) and this process's. */
    if (unlikely(total > atomic_load_explicit(&u->dev[gd].peak, memory_order_relaxed))) {
        uint64_t p = atomic_load_explicit(&u->dev[gd].peak, memory_order_relaxed);
        while (total > p && !atomic_compare_exchange_weak(&u->dev[gd].peak, &p, total))
            ;
    }
    if (unlikely(mine > atomic_load_explicit(&s->peak[gd], memory_order_relaxed)))
        atomic_store_explicit(&s->peak[gd], mine, memory_order_relaxed);
    return CUDA_SUCCESS;
}

static inline CUresult shim_reserve(int gd, uint64_t bytes) { return shim_reserve_in(g.slot, g.usage, gd, bytes); }

static inline void shim_unreserve(int gd, uint64_t bytes)
{
    atomic_fetch_sub(&g.slot->charged[gd], bytes);
}

/* After the driver said yes. */
static ALWAYS_INLINE void shim_committed_in(struct gm_proc_slot *s)
{
    atomic_fetch_add_explicit(&s->allocs, 1, memory_order_relaxed);
}
static inline void shim_committed(void) { shim_committed_in(g.slot); }

static ALWAYS_INLINE void shim_released_in(struct gm_proc_slot *s, int gd, uint64_t bytes)
{
    atomic_fetch_sub(&s->charged[gd], bytes);
    atomic_fetch_add_explicit(&s->frees, 1, memory_order_relaxed);
}
static inline void shim_released(int gd, uint64_t bytes) { shim_released_in(g.slot, gd, bytes); }

#endif
