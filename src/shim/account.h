/* The accounting hot path, inlined into every allocation hook.
 *
 * Each thread counts on its own lane of its process's slot (group.h) and
 * holds a small reservation there against the group's limit. An allocation
 * that fits in it adds its bytes to the lane's `charged` and compares with
 * the lane's `reserved`: two own cache lines, no other thread's. One that
 * does not fit raises the reservation (shim_lane_grow):
 *   1. store the lane's new reservation (seq_cst);
 *   2. sum every lane's reservation in the group (seq_cst loads);
 *   3. over the limit -> take it back (and the bytes) and refuse.
 * Two racing raises cannot both pass when together they exceed the limit:
 * each one's store precedes its loads, so at least one sees the other's.
 * No lock, nothing a killed process can leave held; a killed process's
 * lanes stay until reclaim verifies (pid, start time) that it is gone. */
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

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* This thread's lane (an owned one, or the shared one when all are taken);
 * NULL until its first charge or release. Initial-exec TLS: one load, no
 * call (the shim is loaded at start-up, never by a later dlopen). A process
 * has one slot for life; a forked child starts again. */
extern __thread struct gm_lane *shim_tl_lane __attribute__((tls_model("initial-exec")));
/* The same lane as an entry records it (alloc_with_lane(0, index)). */
extern __thread uint64_t shim_tl_lane_bits __attribute__((tls_model("initial-exec")));
struct gm_lane *shim_lane_claim(struct gm_proc_slot *s);
void shim_lanes_fork_child(void);
static ALWAYS_INLINE struct gm_lane *shim_lane(struct gm_proc_slot *s)
{
    struct gm_lane *l = shim_tl_lane;
    if (likely(l != NULL))
        return l;
    return shim_lane_claim(s);
}
static inline unsigned shim_lane_index(const struct gm_proc_slot *s, const struct gm_lane *l)
{
    return (unsigned)(l - s->lane);
}

/* `bytes` more are charged on lane l (already added: `charged` is the
 * lane's new total) and do not fit its reservation, or the limits changed
 * since it was taken. Raises it (or, on the shared lane, adds exactly) and
 * checks the group; on refusal takes the bytes back. */
CUresult shim_lane_grow(struct gm_proc_slot *s, struct gm_lane *l, int gd, uint64_t bytes, uint64_t charged);
/* An owned lane holds much more than it uses: give the rest back. */
void shim_lane_trim(struct gm_lane *l, int gd);

/* A lane reserves this much beyond what it uses, so that its next
 * allocations fit without a look at the group: limit/256, at most 4 MiB
 * (under a 16 MiB limit, 64 KiB). What this thread last took is in
 * shim_tl_slack; a free trims a lane holding more than twice that. */
#define SHIM_LANE_SLACK_MAX (4ull << 20)
extern __thread uint64_t shim_tl_slack __attribute__((tls_model("initial-exec")));

/* Reserves `bytes` on gd for an allocation of this thread (its entry will
 * record the lane). The slot is passed in so the compiler need not reload
 * it after the atomic (which is a barrier). */
static ALWAYS_INLINE CUresult shim_reserve_in(struct gm_proc_slot *s, int gd, uint64_t bytes)
{
    struct gm_lane *l = shim_lane(s);
    uint64_t seq = atomic_load_explicit(&g.limits->seq, memory_order_relaxed);
    uint64_t c = atomic_fetch_add(&l->charged[gd], bytes) + bytes;
    if (likely(c <= atomic_load_explicit(&l->reserved[gd], memory_order_relaxed) &&
               seq == atomic_load_explicit(&l->limits_seq, memory_order_relaxed)))
        return CUDA_SUCCESS;
    return shim_lane_grow(s, l, gd, bytes, c);
}

/* Charges taken back (the driver failed, or a pitch came out smaller) on
 * this thread's lane, where shim_reserve_in put them. */
static inline void shim_unreserve_own(int gd, uint64_t bytes)
{
    struct gm_lane *l = shim_lane(g.slot);
    if (shim_lane_index(g.slot, l) == GM_LANE_SHARED)
        atomic_fetch_sub(&l->reserved[gd], bytes); /* exact there: reserved first */
    atomic_fetch_sub(&l->charged[gd], bytes);
}

/* Charges that may be released by another thread than the one that made
 * them (contexts, memory pools): exact, on the shared lane. */
CUresult shim_reserve(int gd, uint64_t bytes);
void shim_unreserve(int gd, uint64_t bytes);

/* After the driver said yes (the allocation hooks count on their lane
 * directly: shim_reserve_in gave them one). */
static inline void shim_committed(void)
{
    atomic_fetch_add_explicit(&shim_lane(g.slot)->allocs, 1, memory_order_relaxed);
}

/* A freed allocation's bytes leave the lane that charged them (its entry
 * says which). On this thread's own lane a large unused reservation goes
 * back; another thread's lane is trimmed by that thread. */
static ALWAYS_INLINE void shim_released_in(struct gm_proc_slot *s, uint64_t value)
{
    int gd = alloc_gd(value);
    uint64_t bytes = alloc_bytes(value);
    struct gm_lane *l = &s->lane[alloc_lane(value)];
    if (unlikely(alloc_lane(value) == GM_LANE_SHARED))
        atomic_fetch_sub(&l->reserved[gd], bytes); /* exact there: reserved first */
    uint64_t c = atomic_fetch_sub(&l->charged[gd], bytes) - bytes;
    atomic_fetch_add_explicit(&l->frees, 1, memory_order_relaxed);
    if (unlikely(atomic_load_explicit(&l->reserved[gd], memory_order_relaxed) > c + 2 * shim_tl_slack))
        shim_lane_trim(l, gd);
}

#endif
