/* The accounting slow paths: lanes, reservations, limit reloads and
 * refusals (the hot path is inline in account.h). */
#include "account.h"
#include "spill.h"
#include "oom_wait.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

_Static_assert(GM_LANES <= 4 && GM_MAX_DEVICES <= 16, "an entry packs the lane in 2 bits and the device in 4");
_Static_assert(offsetof(struct gm_proc_slot, cell) % 64 == 0, "cells are cache lines");

__thread struct shim_thread shim_tl __attribute__((tls_model("initial-exec"))) = {.fast = -1, .lane = -1};
static pthread_key_t lane_key;
static pthread_once_t lane_key_once = PTHREAD_ONCE_INIT;

/* A thread that ends gives its lane back: the unused part of its
 * reservation first, then the lane itself (its live allocations stay
 * counted there until freed). */
static void lane_release(void *p)
{
    struct gm_proc_slot *s = g.slot;
    int lane = (int)(intptr_t)p - 1;
    shim_tl.fast = -1;
    shim_tl.lane = -1;
    if (!s || lane < 0 || lane >= GM_LANE_SHARED)
        return;
    for (int d = 0; d < GM_MAX_DEVICES; d++) {
        struct gm_cell *c = &s->cell[GM_CELL_INDEX(lane, d)];
        atomic_store(&c->cap, 0);
        atomic_store(&c->trim_below, 0);
        atomic_store(&c->reserved, 0); /* the sum counts its charge, which stays */
    }
    atomic_store(&s->lane_owned[lane], 0);
}

static void lane_key_init(void) { pthread_key_create(&lane_key, lane_release); }

/* A thread's first charge: a free owned lane, else the shared one.
 * lanes_hw is raised before the lane's first reservation, so a sum that
 * does not see it cannot have missed one. */
static int lane_claim(struct gm_proc_slot *s)
{
    if (shim_tl.lane >= 0)
        return shim_tl.lane;
    pthread_once(&lane_key_once, lane_key_init);
    int lane = GM_LANE_SHARED;
    for (unsigned i = 0; i < GM_LANE_SHARED; i++) {
        uint32_t free_ = 0;
        if (atomic_compare_exchange_strong(&s->lane_owned[i], &free_, 1)) {
            uint32_t hw = atomic_load(&s->lanes_hw);
            while (hw < i + 1 && !atomic_compare_exchange_weak(&s->lanes_hw, &hw, i + 1))
                ;
            lane = (int)i;
            pthread_setspecific(lane_key, (void *)(intptr_t)(i + 1));
            break;
        }
    }
    shim_tl.lane = lane;
    return lane;
}

/* In a forked child (one thread, a slot of its own to come). */
void shim_lanes_fork_child(void)
{
    shim_tl.fast = -1;
    shim_tl.lane = -1;
    shim_tl.slack = 0;
    pthread_once(&lane_key_once, lane_key_init);
    pthread_setspecific(lane_key, NULL);
}

/* Counted for gpumem ps, and said once a second at most: who, where, how
 * much, and the command that would change it. */
void shim_count_refusal(int gd, uint64_t bytes)
{
    if (shim_tl.quiet)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    atomic_fetch_add(&g.slot->refusals, 1);
    atomic_store(&g.slot->last_refused_size, bytes);
    atomic_store(&g.slot->last_activity_ns, (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
    atomic_fetch_add(&g.usage->dev[gd].refusals, 1);
    atomic_store(&g.usage->dev[gd].last_refused_size, bytes);
}

void shim_note_refusal(int gd, uint64_t bytes)
{
    shim_count_refusal(gd, bytes);
    int cu = -1;
    for (int i = 0; i < GM_MAX_CU_DEVICES && cu < 0; i++)
        if (atomic_load_explicit(&g.gd_of[i], memory_order_relaxed) == gd)
            cu = i;
    char asked[40], used[32], limit[32];
    uint64_t lim = shim_limit(gd);
    gm_format_size(bytes > ALLOC_BYTES_MAX ? ALLOC_BYTES_MAX + 1 : bytes, asked, sizeof asked);
    if (bytes > ALLOC_BYTES_MAX) /* the most one allocation can be charged */
        memmove(asked + 5, asked, strlen(asked) + 1), memcpy(asked, "over ", 5);
    gm_format_size(gm_usage_total(g.usage, gd), used, sizeof used);
    if (lim == GM_UNLIMITED)
        snprintf(limit, sizeof limit, "no");
    else
        gm_format_size(lim, limit, sizeof limit);
    shim_log_refusal("out of memory: refused %s on GPU %d (%s) in group %.64s: the group uses %s of its %s limit "
                     "(to change it: gpumem limit %.64s SIZE)",
                     asked, cu, g.usage->dev[gd].uuid, g.limits->name, used, limit, g.limits->name);
}

static void raise_peak(_Atomic uint64_t *peak, uint64_t v)
{
    uint64_t p = atomic_load_explicit(peak, memory_order_relaxed);
    while (v > p && !atomic_compare_exchange_weak(peak, &p, v))
        ;
}

/* Sets an owned cell's reservation to `want` (only its thread writes it)
 * and checks the group; 1 when it fits the limit. */
static int try_reserve(struct gm_cell *c, int gd, uint64_t want, uint64_t limit)
{
    atomic_store(&c->reserved, want);
    return gm_usage_reserved(g.usage, gd) <= limit;
}

/* An owned cell's reservation is settled: open the fast path up to it.
 * The cap is stored before the limits' seq is read again, and `gpumem
 * limit` bumps the seq before it clears caps (group_limits.c), so either
 * we see the new seq here or it clears this cap after us. */
static void cell_publish(struct gm_cell *c, uint64_t reserved, uint64_t slack, uint64_t seq)
{
    atomic_store(&c->trim_below, reserved > 2 * slack ? reserved - 2 * slack : 0);
    /* Never above ALLOC_BYTES_MAX: a SHIM_TOO_BIG charge always comes to
     * the slow path (an unlimited group's reservations can grow large). */
    uint64_t cap = reserved < ALLOC_BYTES_MAX ? reserved : ALLOC_BYTES_MAX;
    atomic_store(&c->cap, cap > GM_CAP_GIVEN_BACK ? cap : 0);
    if (atomic_load(&g.limits->seq) != seq)
        atomic_store(&c->cap, 0);
}

/* Makes room for `bytes` more on cell `off`, to which they are already
 * added (`charged` is its new total), or takes them back. The shared lane
 * is exact (its charge is what the sum counts). An owned lane takes what
 * it needs plus some slack for the next allocations, or failing that
 * (near the limit) exactly what it needs. Either way, failing that: the
 * bytes of dead processes, and once more. */
static CUresult cell_grow(struct gm_proc_slot *s, uint64_t off, uint64_t bytes, uint64_t charged)
{
    struct gm_cell *c = shim_cell(s, off);
    int gd = alloc_gd(off), shared = alloc_lane(off) == GM_LANE_SHARED;
    uint64_t seq = atomic_load(&g.limits->seq);
    uint64_t limit = shim_limit(gd);
    uint64_t slack = limit / 256 < SHIM_LANE_SLACK_MAX ? limit / 256 : SHIM_LANE_SLACK_MAX;
    if (!shared) {
        shim_tl.slack = slack;
        atomic_store(&c->cap, 0); /* until the new reservation is settled */
    }
    for (int tries = 0;; tries++) {
        uint64_t held;
        if (shared ? gm_usage_reserved(g.usage, gd) <= limit
                   : try_reserve(c, gd, held = charged + slack, limit) || try_reserve(c, gd, held = charged, limit)) {
            if (!shared)
                cell_publish(c, held, slack, seq);
            /* The fast path does not look at the group (that would read the
             * other lanes), so peaks are raised here, whenever a reservation
             * changes: exact to within a lane's slack. The sum of charges
             * also holds other threads' charges in flight, some of which
             * will be refused: what the group held never passed the limit,
             * so neither does its peak. */
            uint64_t total = gm_usage_total(g.usage, gd), mine = gm_slot_charged(s, gd);
            raise_peak(&g.usage->dev[gd].peak, total < limit ? total : limit);
            raise_peak(&s->peak[gd], mine < limit ? mine : limit);
            return CUDA_SUCCESS;
        }
        if (tries == 1 || gm_reclaim_dead(g.usage) == 0)
            break;
    }
    uint64_t now = atomic_fetch_sub(&c->charged, bytes) - bytes;
    if (!shared) {
        atomic_store(&c->reserved, now);
        atomic_store(&c->trim_below, 0);
    }
    if (shim_tl.quiet)
        shim_tl.quiet = 2; /* the spill path decides (spill.c) */
    else
        shim_note_refusal(gd, bytes);
    return CUDA_ERROR_OUT_OF_MEMORY;
}

/* Adds `bytes` to cell `off`, raising its reservation when they do not
 * fit under its cap (or taking them back and refusing). */
static CUresult cell_add(struct gm_proc_slot *s, uint64_t off, uint64_t bytes)
{
    if (unlikely(bytes > ALLOC_BYTES_MAX)) { /* SHIM_TOO_BIG: more than any GPU has */
        shim_note_refusal(alloc_gd(off), bytes);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    struct gm_cell *c = shim_cell(s, off);
    uint64_t charged = atomic_fetch_add(&c->charged, bytes) + bytes;
    if (charged > atomic_load(&c->cap))
        return cell_grow(s, off, bytes, charged);
    return CUDA_SUCCESS;
}

/* A charge refused for the limit, under GPUMEM_OOM=wait: tried again as
 * the group's processes free (oom_wait.c). One that could never fit (more
 * than the limit on its own) is refused at once. */
static CUresult __attribute__((noinline, cold)) charge_wait(struct gm_proc_slot *s, uint64_t off, int gd,
                                                             uint64_t bytes)
{
    /* quiet: the spill path asked (spill.c); it serves the allocation from
     * the group's swap instead, and does not wait. */
    if (shim_tl.quiet || bytes > ALLOC_BYTES_MAX || bytes > shim_limit(gd) || !g.limits || !g.limits->oom_wait_ms)
        return CUDA_ERROR_OUT_OF_MEMORY;
    struct shim_wait w = {0};
    CUresult r = CUDA_ERROR_OUT_OF_MEMORY;
    while (r != CUDA_SUCCESS && shim_oom_wait(&w, gd, bytes, 0))
        r = cell_add(s, off, bytes);
    shim_oom_wait_end(&w);
    return r;
}

CUresult shim_charge_slow(int gd_hint, uint64_t bytes, int kind, uint64_t *v)
{
    *v = 0;
    struct gm_proc_slot *s = shim_hot_slot();
    if (!s) {
        int m = shim_mode(); /* first call: start-up; else passthrough or fail-closed */
        if (m != SHIM_ENFORCE || !(s = g.slot))
            return m == SHIM_FAIL_CLOSED ? CUDA_ERROR_OUT_OF_MEMORY : CUDA_SUCCESS;
    }
    int gd = gd_hint >= 0 ? gd_hint : shim_current_gd();
    if (gd < 0) /* none: the driver refuses the call itself */
        return gd == SHIM_GD_REFUSE ? CUDA_ERROR_OUT_OF_MEMORY : CUDA_SUCCESS;
    uint64_t off = alloc_cell_bits((unsigned)lane_claim(s), gd);
    /* With one visible device (the common case in a container) the current
     * device is always that one: later allocations go the fast way. */
    if (shim_ncu() == 1 && gd == atomic_load_explicit(&g.gd_of[0], memory_order_relaxed))
        shim_tl.fast = (int64_t)off;
    CUresult r = cell_add(s, off, bytes);
    if (r != CUDA_SUCCESS && (r = charge_wait(s, off, gd, bytes)) != CUDA_SUCCESS)
        return r;
    atomic_fetch_add_explicit(&shim_cell(s, off)->allocs, 1, memory_order_relaxed);
    *v = alloc_pack_cell(bytes, kind, off);
    return CUDA_SUCCESS;
}

void shim_uncharge(uint64_t v)
{
    struct gm_cell *c = shim_cell(g.slot, alloc_cell_off(v));
    atomic_fetch_sub(alloc_spilled(v) ? &c->swapped : &c->charged, alloc_bytes(v));
    atomic_fetch_sub_explicit(&c->allocs, 1, memory_order_relaxed);
}

CUresult shim_recharge(uint64_t *v, uint64_t bytes)
{
    uint64_t off = alloc_cell_off(*v), old = alloc_bytes(*v);
    if (bytes > ALLOC_BYTES_MAX)
        return CUDA_ERROR_OUT_OF_MEMORY; /* more than an entry can hold */
    if (bytes > old) {
        if (cell_add(g.slot, off, bytes - old) != CUDA_SUCCESS)
            return CUDA_ERROR_OUT_OF_MEMORY;
    } else {
        atomic_fetch_sub(&shim_cell(g.slot, off)->charged, old - bytes);
    }
    *v = alloc_with_bytes(*v, bytes);
    return CUDA_SUCCESS;
}

static void cell_trim(uint64_t off)
{
    struct gm_proc_slot *s = g.slot;
    if (!s)
        return;
    struct gm_cell *c = shim_cell(s, off);
    uint64_t cap = atomic_load(&c->cap);
    if ((int)alloc_lane(off) != shim_tl.lane || shim_tl.lane == GM_LANE_SHARED) {
        /* Another thread's cell. Only its thread lowers its reservation
         * (its fast path trusts the cap it read), but the reservation stops
         * counting at once: with the cap at GM_CAP_GIVEN_BACK the cell has
         * no fast path and the group's sum counts its charge alone. A
         * thread that passed its fast path under the old cap had added its
         * bytes before reading the cap, and the sum reads the charge after
         * the cap, so they are counted (group.h gm_usage_reserved). */
        if (cap > GM_CAP_GIVEN_BACK)
            atomic_compare_exchange_strong(&c->cap, &cap, GM_CAP_GIVEN_BACK);
        return;
    }
    uint64_t slack = shim_tl.slack, want = atomic_load(&c->charged) + slack;
    if (atomic_load(&c->reserved) <= want)
        return;
    /* The cap comes down first, and only from what we set (a cap cleared by
     * `gpumem limit`, or given back, stays so). */
    if (cap > want)
        atomic_compare_exchange_strong(&c->cap, &cap, want > GM_CAP_GIVEN_BACK ? want : 0);
    atomic_store(&c->reserved, want);
    atomic_store(&c->trim_below, want > 2 * slack ? want - 2 * slack : 0);
}

void shim_cell_trim(uint64_t off)
{
    cell_trim(off);
    /* Room freed on the device (and given back just now): spilled
     * allocations may come back (spill.c; a quick test without any). */
    shim_spill_promote();
}

CUresult shim_reserve(int gd, uint64_t bytes)
{
    return cell_add(g.slot, alloc_cell_bits(GM_LANE_SHARED, gd), bytes); /* cap 0: always checked */
}

void shim_unreserve(int gd, uint64_t bytes)
{
    atomic_fetch_sub(&g.slot->cell[GM_CELL_INDEX(GM_LANE_SHARED, gd)].charged, bytes);
}

void shim_count(int gd, int free_)
{
    struct gm_cell *c = &g.slot->cell[GM_CELL_INDEX(GM_LANE_SHARED, gd)];
    atomic_fetch_add_explicit(free_ ? &c->frees : &c->allocs, 1, memory_order_relaxed);
}
