/* The accounting slow paths: limit reloads and refusals (the hot path is
 * inline in account.h). */
#include "account.h"

#include <string.h>
#include <time.h>

__thread struct gm_lane *shim_tl_lane __attribute__((tls_model("initial-exec")));
static _Atomic unsigned next_lane;

/* A thread's first charge or release: the next lane, round robin. lanes_hw
 * is raised before the thread's first add (see shim_reserve_in). */
struct gm_lane *shim_lane_claim(struct gm_proc_slot *s)
{
    unsigned l = atomic_fetch_add(&next_lane, 1) % GM_LANES;
    uint32_t hw = atomic_load(&s->lanes_hw);
    while (hw < l + 1 && !atomic_compare_exchange_weak(&s->lanes_hw, &hw, l + 1))
        ;
    shim_tl_lane = &s->lane[l];
    return &s->lane[l];
}

/* In a forked child (one thread, a slot of its own to come). */
void shim_lanes_fork_child(void)
{
    shim_tl_lane = NULL;
    atomic_store(&next_lane, 0);
}

/* shim_reserve_in() for a group of several processes, or a process whose
 * threads use several lanes: the sum over every slot and lane in use; this
 * process's own total only for its peak. The add is already done. */
CUresult shim_reserve_shared(struct gm_proc_slot *s, struct gm_usage *u, int gd, uint64_t bytes, uint64_t limit)
{
    uint64_t total = gm_usage_total(u, gd);
    if (total > limit)
        return shim_reserve_slow(gd, bytes, limit);
    shim_raise_peak(&u->dev[gd].peak, total);
    uint64_t own = 0;
    uint32_t lanes = atomic_load(&s->lanes_hw);
    for (uint32_t l = 0; l < lanes && l < GM_LANES; l++)
        own += atomic_load_explicit(&s->lane[l].charged[gd], memory_order_relaxed);
    shim_raise_peak(&s->peak[gd], own);
    return CUDA_SUCCESS;
}

uint64_t shim_limit_reload(int gd, uint64_t seq)
{
    const struct gm_limits *l = g.limits;
    for (int tries = 0; tries < 1000; tries++, seq = atomic_load_explicit(&l->seq, memory_order_acquire)) {
        if (seq & 1)
            continue;
        uint64_t v = l->default_limit;
        uint32_t n = l->ndev < GM_MAX_DEVICES ? l->ndev : GM_MAX_DEVICES;
        for (uint32_t i = 0; i < n; i++)
            if (strncmp(l->dev[i].uuid, g.usage->dev[gd].uuid, GM_UUID_LEN) == 0) {
                v = l->dev[i].limit;
                break;
            }
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&l->seq, memory_order_relaxed) != seq)
            continue;
        /* Value before seq: a thread that sees the new seq sees its value. */
        atomic_store_explicit(&g.lim[gd].value, v, memory_order_relaxed);
        atomic_store_explicit(&g.lim[gd].seq, seq + 2, memory_order_release);
        return v;
    }
    return 0; /* a writer died mid-update: refuse until `gpumem limit` repairs it */
}

static void note_refusal(int gd, uint64_t bytes)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    atomic_fetch_add(&g.slot->refusals, 1);
    atomic_store(&g.slot->last_refused_size, bytes);
    atomic_store(&g.slot->last_activity_ns, (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
    atomic_fetch_add(&g.usage->dev[gd].refusals, 1);
    atomic_store(&g.usage->dev[gd].last_refused_size, bytes);
}

/* The reservation did not fit (its bytes are still added): take them back;
 * before refusing, give back the bytes of group members that died without
 * freeing (SIGKILL) and try once more if any were reclaimed. */
CUresult shim_reserve_slow(int gd, uint64_t bytes, uint64_t limit)
{
    _Atomic uint64_t *mine = &shim_lane(g.slot)->charged[gd];
    atomic_fetch_sub(mine, bytes);
    if (gm_reclaim_dead(g.usage) > 0) {
        atomic_fetch_add(mine, bytes);
        if (gm_usage_total(g.usage, gd) <= limit)
            return CUDA_SUCCESS;
        atomic_fetch_sub(mine, bytes);
    }
    note_refusal(gd, bytes);
    shim_log(LOG_INFO, "refused %llu bytes on %s: group limit %llu", (unsigned long long)bytes,
             g.usage->dev[gd].uuid, (unsigned long long)limit);
    return CUDA_ERROR_OUT_OF_MEMORY;
}
