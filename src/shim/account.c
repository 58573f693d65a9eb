/* The accounting slow paths: lanes, reservations, limit reloads and
 * refusals (the hot path is inline in account.h). */
#include "account.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

_Static_assert(GM_LANES <= 4 && GM_MAX_DEVICES <= 16, "an entry packs the lane in 2 bits and the device in 4");

__thread struct gm_lane *shim_tl_lane __attribute__((tls_model("initial-exec")));
__thread uint64_t shim_tl_slack __attribute__((tls_model("initial-exec")));
__thread uint64_t shim_tl_lane_bits __attribute__((tls_model("initial-exec")));
static pthread_key_t lane_key;
static pthread_once_t lane_key_once = PTHREAD_ONCE_INIT;

/* A thread that ends gives its lane back: the unused part of its
 * reservation first, then the lane itself (its live allocations stay
 * counted there until freed). */
static void lane_release(void *p)
{
    struct gm_lane *l = p;
    for (int d = 0; d < GM_MAX_DEVICES; d++) {
        uint64_t c = atomic_load(&l->charged[d]);
        if (atomic_load(&l->reserved[d]) > c)
            atomic_store(&l->reserved[d], c);
    }
    atomic_store(&l->owned, 0);
}

static void lane_key_init(void) { pthread_key_create(&lane_key, lane_release); }

/* A thread's first charge or release: a free owned lane, else the shared
 * one. lanes_hw is raised before the lane's first reservation, so a sum
 * that does not see it cannot have missed one. */
struct gm_lane *shim_lane_claim(struct gm_proc_slot *s)
{
    pthread_once(&lane_key_once, lane_key_init);
    struct gm_lane *l = &s->lane[GM_LANE_SHARED];
    for (unsigned i = 0; i < GM_LANE_SHARED; i++) {
        uint32_t free_ = 0;
        if (atomic_compare_exchange_strong(&s->lane[i].owned, &free_, 1)) {
            uint32_t hw = atomic_load(&s->lanes_hw);
            while (hw < i + 1 && !atomic_compare_exchange_weak(&s->lanes_hw, &hw, i + 1))
                ;
            l = &s->lane[i];
            pthread_setspecific(lane_key, l);
            break;
        }
    }
    shim_tl_lane_bits = alloc_with_lane(0, shim_lane_index(s, l));
    shim_tl_lane = l;
    return l;
}

/* In a forked child (one thread, a slot of its own to come). */
void shim_lanes_fork_child(void)
{
    shim_tl_lane = NULL;
    shim_tl_slack = 0;
    pthread_once(&lane_key_once, lane_key_init);
    pthread_setspecific(lane_key, NULL);
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
    shim_log(LOG_INFO, "refused %llu bytes on %s: group limit %llu", (unsigned long long)bytes,
             g.usage->dev[gd].uuid, (unsigned long long)shim_limit(gd));
}

static void raise_peak(_Atomic uint64_t *peak, uint64_t v)
{
    uint64_t p = atomic_load_explicit(peak, memory_order_relaxed);
    while (v > p && !atomic_compare_exchange_weak(peak, &p, v))
        ;
}

/* Sets lane l's reservation to `want` (owned lanes: only their thread
 * writes it) and checks the group; 1 when it fits the limit. */
static int try_reserve(struct gm_lane *l, int gd, uint64_t want, uint64_t limit)
{
    atomic_store(&l->reserved[gd], want);
    return gm_usage_reserved(g.usage, gd) <= limit;
}

CUresult shim_lane_grow(struct gm_proc_slot *s, struct gm_lane *l, int gd, uint64_t bytes, uint64_t charged)
{
    uint64_t seq = atomic_load(&g.limits->seq);
    uint64_t limit = shim_limit(gd);
    int shared = shim_lane_index(s, l) == GM_LANE_SHARED;
    uint64_t slack = limit / 256 < SHIM_LANE_SLACK_MAX ? limit / 256 : SHIM_LANE_SLACK_MAX;
    /* The shared lane is exact: reserved follows charged (added after it,
     * removed before it, so the fast-path test never passes there). An
     * owned lane takes what it needs plus some slack for the next
     * allocations, or failing that (near the limit) exactly what it needs.
     * Either way, failing that: the bytes of dead processes, and once more. */
    if (shared)
        atomic_fetch_add(&l->reserved[gd], bytes);
    else
        shim_tl_slack = slack;
    for (int tries = 0;; tries++) {
        if (shared ? gm_usage_reserved(g.usage, gd) <= limit
                   : try_reserve(l, gd, charged + slack, limit) || try_reserve(l, gd, charged, limit)) {
            if (!shared)
                atomic_store(&l->limits_seq, seq);
            /* The fast path does not look at the group (that would read the
             * other lanes), so peaks are raised here, whenever a reservation
             * changes: exact to within a lane's slack. */
            raise_peak(&g.usage->dev[gd].peak, gm_usage_total(g.usage, gd));
            raise_peak(&s->peak[gd], gm_slot_charged(s, gd));
            return CUDA_SUCCESS;
        }
        if (tries == 1 || gm_reclaim_dead(g.usage) == 0)
            break;
    }
    if (shared)
        atomic_fetch_sub(&l->reserved[gd], bytes);
    uint64_t c = atomic_fetch_sub(&l->charged[gd], bytes) - bytes;
    if (!shared)
        atomic_store(&l->reserved[gd], c);
    note_refusal(gd, bytes);
    return CUDA_ERROR_OUT_OF_MEMORY;
}

void shim_lane_trim(struct gm_lane *l, int gd)
{
    if (l != shim_tl_lane)
        return; /* another thread's lane: that thread trims it */
    uint64_t c = atomic_load(&l->charged[gd]);
    if (atomic_load(&l->reserved[gd]) > c + shim_tl_slack)
        atomic_store(&l->reserved[gd], c + shim_tl_slack);
}

CUresult shim_reserve(int gd, uint64_t bytes)
{
    struct gm_proc_slot *s = g.slot;
    struct gm_lane *l = &s->lane[GM_LANE_SHARED];
    uint64_t c = atomic_fetch_add(&l->charged[gd], bytes) + bytes;
    return shim_lane_grow(s, l, gd, bytes, c);
}

void shim_unreserve(int gd, uint64_t bytes)
{
    struct gm_lane *l = &g.slot->lane[GM_LANE_SHARED];
    atomic_fetch_sub(&l->reserved[gd], bytes);
    atomic_fetch_sub(&l->charged[gd], bytes);
}
