/* Charging device memory to the group.
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
#include "shim.h"

#include <string.h>
#include <time.h>

uint64_t shim_charge_size(uint64_t bytes)
{
    /* The driver's own rounding (as modelled by the simulated GPU, and close
     * to what NVIDIA's driver reports per process): small allocations are
     * packed at 512-byte granularity, larger ones take whole 2 MiB pages. */
    if (bytes <= (1u << 20))
        return (bytes + 511) & ~(uint64_t)511;
    return (bytes + (2u << 20) - 1) & ~(uint64_t)((2u << 20) - 1);
}

/* Index of gd's entry in the limits file, cached against the limits' seq.
 * `gpumem limit` rewrites values in place and only appends entries, so a
 * cached index stays right across value changes. */
static struct { _Atomic uint64_t seq; _Atomic int idx; } lim_idx[GM_MAX_DEVICES];

uint64_t shim_limit(int gd)
{
    const struct gm_limits *l = g.limits;
    for (int tries = 0; tries < 1000; tries++) {
        uint64_t seq = atomic_load_explicit(&l->seq, memory_order_acquire);
        if (unlikely(seq & 1))
            continue;
        int idx;
        if (likely(atomic_load_explicit(&lim_idx[gd].seq, memory_order_relaxed) == seq + 2)) {
            idx = atomic_load_explicit(&lim_idx[gd].idx, memory_order_relaxed);
        } else {
            idx = -1;
            uint32_t n = l->ndev < GM_MAX_DEVICES ? l->ndev : GM_MAX_DEVICES;
            for (uint32_t i = 0; i < n; i++)
                if (strncmp(l->dev[i].uuid, g.usage->dev[gd].uuid, GM_UUID_LEN) == 0)
                    idx = (int)i;
            atomic_store_explicit(&lim_idx[gd].idx, idx, memory_order_relaxed);
            atomic_store_explicit(&lim_idx[gd].seq, seq + 2, memory_order_relaxed);
        }
        uint64_t v = idx >= 0 ? l->dev[idx].limit : l->default_limit;
        atomic_thread_fence(memory_order_acquire);
        if (likely(atomic_load_explicit(&l->seq, memory_order_relaxed) == seq))
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

CUresult shim_reserve(int gd, uint64_t bytes)
{
    uint64_t limit = shim_limit(gd);
    for (int attempt = 0;; attempt++) {
        atomic_fetch_add(&g.slot->charged[gd], bytes);
        uint64_t total = gm_usage_total(g.usage, gd);
        if (likely(total <= limit)) {
            struct gm_usage_dev *dv = &g.usage->dev[gd];
            uint64_t peak = atomic_load_explicit(&dv->peak, memory_order_relaxed);
            while (unlikely(total > peak) && !atomic_compare_exchange_weak(&dv->peak, &peak, total))
                ;
            return CUDA_SUCCESS;
        }
        atomic_fetch_sub(&g.slot->charged[gd], bytes);
        /* Before refusing, give back the bytes of group members that died
         * without freeing (SIGKILL); retry once if any were reclaimed. */
        if (attempt > 0 || gm_reclaim_dead(g.usage) == 0)
            break;
    }
    note_refusal(gd, bytes);
    shim_log(LOG_INFO, "refused %llu bytes on %s: group limit %llu", (unsigned long long)bytes,
             g.usage->dev[gd].uuid, (unsigned long long)limit);
    return CUDA_ERROR_OUT_OF_MEMORY;
}

void shim_unreserve(int gd, uint64_t bytes) { atomic_fetch_sub(&g.slot->charged[gd], bytes); }

void shim_committed(int gd, uint64_t bytes)
{
    struct gm_proc_slot *s = g.slot;
    uint64_t mine = atomic_load_explicit(&s->charged[gd], memory_order_relaxed);
    if (unlikely(mine > atomic_load_explicit(&s->peak[gd], memory_order_relaxed)))
        atomic_store_explicit(&s->peak[gd], mine, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->allocs, 1, memory_order_relaxed);
    (void)bytes;
}

void shim_released(int gd, uint64_t bytes)
{
    atomic_fetch_sub(&g.slot->charged[gd], bytes);
    atomic_fetch_add_explicit(&g.slot->frees, 1, memory_order_relaxed);
}
