/* The accounting slow paths: limit reloads and refusals (the hot path is
 * inline in account.h). */
#include "account.h"

#include <string.h>
#include <time.h>

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
    atomic_fetch_sub(&g.slot->charged[gd], bytes);
    if (gm_reclaim_dead(g.usage) > 0) {
        atomic_fetch_add(&g.slot->charged[gd], bytes);
        if (gm_usage_total(g.usage, gd) <= limit)
            return CUDA_SUCCESS;
        atomic_fetch_sub(&g.slot->charged[gd], bytes);
    }
    note_refusal(gd, bytes);
    shim_log(LOG_INFO, "refused %llu bytes on %s: group limit %llu", (unsigned long long)bytes,
             g.usage->dev[gd].uuid, (unsigned long long)limit);
    return CUDA_ERROR_OUT_OF_MEMORY;
}
