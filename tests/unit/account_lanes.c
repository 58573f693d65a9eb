/* The shim's accounting (src/shim/account.c and account.h), in-process,
 * against a real group in a temporary directory: threads racing charges
 * on their lanes and on the shared lane, a reservation given back by
 * another thread's frees, a lane trimmed by its own, and the limit lowered
 * while threads raise. The test keeps its own count of what was granted:
 * a thread adds an allocation's bytes after the shim charged them and takes
 * them off before the shim releases them, so that count is never more than
 * the group holds, and it must never pass the limit.
 *
 * The shim's account.c is linked as it is; what the rest of the shim would
 * provide (its global state `g`, start-up, logging) is set up or stubbed
 * here. Built with TSan too (make TSAN=1 test-unit). */
#include "../../src/shim/account.h"
#include "../testlib.h"
#include "gpumem/procinfo.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

/* What the rest of the shim provides. */
struct shim g;
void shim_init_slow(void) {}
int shim_current_gd_slow(void) { return -1; }
void shim_log(int level, const char *fmt, ...)
{
    (void)level;
    (void)fmt;
}
void shim_log_once(enum shim_once cause, int level, const char *fmt, ...)
{
    (void)cause;
    (void)level;
    (void)fmt;
}
void shim_log_refusal(const char *fmt, ...) { (void)fmt; }
/* The spill path (spill.c) is tested through the shim (tests/integration/spill_*.sh). */
int shim_spill_promote(void);
int shim_spill_promote(void) { return 0; }
void shim_spill_release(uint64_t v) { (void)v; }

#define MiB (1ull << 20)

static char dir[256];
static int gd;

/* A fresh group with one device under `limit`, and this process enforcing
 * in it, as init.c would leave it. */
static int fresh_group(uint64_t limit)
{
    static int n;
    char err[256];
    snprintf(dir, sizeof dir, "/tmp/gpumem-unit-account-%d-%d", (int)getpid(), n++);
    struct gm_limits l;
    gm_limits_init(&l);
    l.default_limit = limit;
    snprintf(l.name, sizeof l.name, "unit");
    if (gm_group_create(dir, &l, 0644, err, sizeof err) < 0) {
        printf("# create: %s\n", err);
        return -1;
    }
    g.limits = gm_limits_map(dir, err, sizeof err);
    g.usage = g.limits ? gm_usage_map(dir, err, sizeof err) : NULL;
    if (!g.usage) {
        printf("# map: %s\n", err);
        return -1;
    }
    gd = gm_usage_device(g.usage, "GPU-00000000-0000-0000-0000-000000000001");
    pid_t pid = getpid();
    g.slot = gm_slot_claim(g.usage, pid, gm_proc_start_time(pid), "unit");
    if (gd < 0 || !g.slot)
        return -1;
    atomic_store(&g.ncu, 1);
    atomic_store(&g.gd_of[0], gd);
    atomic_store(&g.mode, SHIM_ENFORCE);
    atomic_store(&g.hot, g.slot);
    return 0;
}

static void drop_group(void)
{
    atomic_store(&g.hot, NULL);
    atomic_store(&g.mode, SHIM_UNINIT);
    gm_slot_release(g.usage, g.slot);
    g.slot = NULL;
    gm_usage_unmap(g.usage);
    gm_limits_unmap(g.limits);
    gm_group_remove(dir);
}

static int lower_limit(uint64_t limit)
{
    char err[256];
    struct gm_limits nl;
    if (gm_limits_read(g.limits, &nl) < 0)
        return -1;
    nl.default_limit = limit;
    if (gm_limits_update(dir, &nl, err, sizeof err) < 0) {
        printf("# update: %s\n", err);
        return -1;
    }
    return 0;
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* ---- racing threads ----------------------------------------------------- */

#define RACERS 6

static struct race {
    uint64_t before, after;         /* the limit before and after the change */
    pthread_barrier_t start;
    _Atomic uint64_t granted;       /* bytes granted and not yet given back */
    _Atomic int changed;            /* the lower limit is in place */
    _Atomic int stop;
    _Atomic int running;
    _Atomic uint64_t grants, refusals;
    _Atomic uint64_t mine[RACERS], mine_after[RACERS]; /* grants per thread, before and after the change */
    _Atomic uint64_t over;          /* the largest `granted` seen past its limit */
    _Atomic uint64_t uncharged;     /* successes that charged nothing */
} race;

static void note_over(uint64_t granted)
{
    uint64_t o = atomic_load(&race.over);
    while (granted > o && !atomic_compare_exchange_weak(&race.over, &o, granted))
        ;
}

/* Allocates and frees at random, up to 16 allocations of 64 KiB..2 MiB live
 * at once (about 15 MiB on average), until told to stop (or a bound on its
 * steps). */
static void *racer(void *arg)
{
    int id = (int)(uintptr_t)arg;
    uint64_t seed = 0x9E3779B97F4A7C15ull * (uint64_t)(id + 1), live[16];
    int n = 0;
    pthread_barrier_wait(&race.start);
    for (long step = 0; step < 2000000 && !atomic_load(&race.stop); step++) {
        uint64_t r = xorshift(&seed);
        if (n == 16 || (n > 0 && r % 3 == 0)) {
            int j = (int)((r >> 8) % (unsigned)n);
            uint64_t v = live[j];
            live[j] = live[--n];
            atomic_fetch_sub(&race.granted, alloc_bytes(v));
            shim_release(g.slot, v);
            continue;
        }
        uint64_t bytes = shim_charge_size((64u << 10) + (r >> 16) % (2 * MiB)), v;
        /* Read before the charge: a charge that starts after the change
         * completed is held to the new limit. */
        int after = atomic_load(&race.changed);
        if (shim_charge(bytes, AK_MEM, &v) != CUDA_SUCCESS) {
            atomic_fetch_add(&race.refusals, 1);
            continue;
        }
        if (v == 0) {
            atomic_fetch_add(&race.uncharged, 1);
            continue;
        }
        uint64_t now = atomic_fetch_add(&race.granted, bytes) + bytes;
        if (now > (after ? race.after : race.before))
            note_over(now);
        atomic_fetch_add(&race.grants, 1);
        atomic_fetch_add_explicit(after ? &race.mine_after[id] : &race.mine[id], 1, memory_order_relaxed);
        live[n++] = v;
    }
    while (n > 0) {
        uint64_t v = live[--n];
        atomic_fetch_sub(&race.granted, alloc_bytes(v));
        shim_release(g.slot, v);
    }
    atomic_fetch_sub(&race.running, 1);
    return NULL;
}

/* Until every racer has made `each` grants (in mine or mine_after), or
 * they have all ended. */
static void wait_grants(_Atomic uint64_t *counts, uint64_t each)
{
    for (;;) {
        int short_ = 0;
        for (int i = 0; i < RACERS; i++)
            short_ |= atomic_load(&counts[i]) < each;
        if (!short_ || atomic_load(&race.running) == 0)
            return;
        usleep(1000);
    }
}

/* Starts RACERS racers at once (the first three get owned lanes, the rest
 * go to the shared lane), and stops them once each has made `each` grants.
 * With `lower` set: once each has made `each` grants, lowers the limit to
 * race.after, and stops them once each has made `each` more under it. */
static int run_racers(int lower, uint64_t each)
{
    pthread_t t[RACERS];
    memset(&race.granted, 0, sizeof race - offsetof(struct race, granted));
    atomic_store(&race.running, RACERS);
    pthread_barrier_init(&race.start, NULL, RACERS);
    for (int i = 0; i < RACERS; i++)
        if (pthread_create(&t[i], NULL, racer, (void *)(uintptr_t)i) != 0)
            return -1;
    wait_grants(race.mine, each);
    int rc = 0;
    if (lower) {
        rc = lower_limit(race.after);
        atomic_store(&race.changed, 1);
        if (rc == 0)
            wait_grants(race.mine_after, each);
    }
    atomic_store(&race.stop, 1);
    for (int i = 0; i < RACERS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&race.start);
    return rc;
}

static uint64_t fewest(_Atomic uint64_t *counts)
{
    uint64_t m = UINT64_MAX;
    for (int i = 0; i < RACERS; i++)
        if (atomic_load(&counts[i]) < m)
            m = atomic_load(&counts[i]);
    return m;
}

TEST(racing_lanes_never_pass_the_limit)
{
    if (fresh_group(64 * MiB) < 0)
        SKIP("cannot create a group under /tmp");
    race.before = race.after = 64 * MiB;
    /* Six threads of about 15 MiB each against 64 MiB: three owned lanes,
     * three on the shared lane, refused often. */
    int rc = run_racers(0, 3000);
    uint64_t total = gm_usage_total(g.usage, gd), reserved = gm_usage_reserved(g.usage, gd);
    uint64_t grants = atomic_load(&race.grants), refusals = atomic_load(&race.refusals), least = fewest(race.mine);
    uint64_t over = atomic_load(&race.over), uncharged = atomic_load(&race.uncharged);
    printf("# %llu grants (at least %llu each), %llu refusals\n", (unsigned long long)grants,
           (unsigned long long)least, (unsigned long long)refusals);
    drop_group();
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_U64(over, 0);
    CHECK_EQ_U64(uncharged, 0);
    CHECK(least >= 3000);
    CHECK(refusals > 0); /* the limit was reached */
    CHECK_EQ_U64(total, 0);
    CHECK_EQ_U64(reserved, 0); /* every lane's thread ended: nothing held */
}

TEST(a_lowered_limit_holds_for_racing_raises)
{
    if (fresh_group(256 * MiB) < 0)
        SKIP("cannot create a group under /tmp");
    race.before = 256 * MiB;
    race.after = 48 * MiB;
    /* About 90 MiB live when the limit drops to 48 MiB. */
    int rc = run_racers(1, 3000);
    uint64_t over = atomic_load(&race.over), least = fewest(race.mine_after);
    uint64_t total = gm_usage_total(g.usage, gd);
    printf("# %llu grants (at least %llu each under the lower limit), %llu refusals\n",
           (unsigned long long)atomic_load(&race.grants), (unsigned long long)least,
           (unsigned long long)atomic_load(&race.refusals));
    drop_group();
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_U64(over, 0);
    CHECK(least >= 3000); /* grants went on under the new limit */
    CHECK_EQ_U64(total, 0);
}

/* ---- one lane, step by step ------------------------------------------------ */

/* A thread that charges on command; the main thread looks and frees in
 * between (it never charges, so it owns no lane). */
static struct {
    pthread_barrier_t step;
    int count;                  /* allocations of 1 MiB to make at the next step */
    uint64_t v[64];
    int made;
    int refused;
    uint64_t off;               /* its cell's offset in the slot */
    int free_own;               /* frees to make itself at the next step */
} lane;

static struct gm_cell *lane_cell(void) { return shim_cell(g.slot, lane.off); }

/* Step 1: allocate lane.count x 1 MiB. Step 2: wait (main looks, may free).
 * Step 3: allocate lane.count more, then free lane.free_own of the newest
 * itself. Step 4: wait (main looks), then end. */
static void *stepper(void *arg)
{
    (void)arg;
    for (int phase = 0; phase < 2; phase++) {
        for (int i = 0; i < lane.count; i++) {
            uint64_t v;
            if (shim_charge(MiB, AK_MEM, &v) != CUDA_SUCCESS || v == 0) {
                lane.refused++;
                continue;
            }
            lane.off = alloc_cell_off(v);
            lane.v[lane.made++] = v;
        }
        for (; lane.free_own > 0 && lane.made > 0; lane.free_own--)
            shim_release(g.slot, lane.v[--lane.made]);
        pthread_barrier_wait(&lane.step);
        pthread_barrier_wait(&lane.step);
    }
    return NULL;
}

TEST(another_threads_frees_give_the_reservation_back)
{
    if (fresh_group(256 * MiB) < 0) /* slack: 1 MiB */
        SKIP("cannot create a group under /tmp");
    memset(&lane, 0, sizeof lane);
    pthread_barrier_init(&lane.step, NULL, 2);
    lane.count = 32;
    pthread_t t;
    CHECK_EQ_INT(pthread_create(&t, NULL, stepper, NULL), 0);
    pthread_barrier_wait(&lane.step); /* it holds 32 MiB */
    struct gm_cell *c = lane_cell();
    uint64_t made = (uint64_t)lane.made, held = atomic_load(&c->reserved);
    uint64_t cap = atomic_load(&c->cap), sum_before = gm_usage_reserved(g.usage, gd);
    /* This thread frees them all: not its cell. */
    for (int i = 0; i < lane.made; i++)
        shim_release(g.slot, lane.v[i]);
    lane.made = 0;
    uint64_t cap_after = atomic_load(&c->cap), sum_after = gm_usage_reserved(g.usage, gd);
    uint64_t held_after = atomic_load(&c->reserved);
    lane.count = 1;
    pthread_barrier_wait(&lane.step); /* it allocates 1 MiB again */
    pthread_barrier_wait(&lane.step);
    uint64_t cap_again = atomic_load(&c->cap), sum_again = gm_usage_reserved(g.usage, gd);
    int refused = lane.refused;
    pthread_barrier_wait(&lane.step);
    pthread_join(t, NULL);
    for (int i = 0; i < lane.made; i++)
        shim_release(g.slot, lane.v[i]);
    pthread_barrier_destroy(&lane.step);
    drop_group();
    CHECK_EQ_U64(made, 32);
    CHECK_EQ_INT(refused, 0);
    CHECK(held >= 32 * MiB && held <= 33 * MiB);
    CHECK(cap >= 32 * MiB);
    CHECK(sum_before >= 32 * MiB);
    /* Given back at once: the group's sum counts its charge (0) alone, but
     * its reservation stays until its own thread lowers it. */
    CHECK_EQ_U64(cap_after, GM_CAP_GIVEN_BACK);
    CHECK_EQ_U64(sum_after, 0);
    CHECK_EQ_U64(held_after, held);
    /* Its next allocation takes a new, small reservation. */
    CHECK(cap_again > GM_CAP_GIVEN_BACK && cap_again <= 2 * MiB);
    CHECK(sum_again >= MiB && sum_again <= 2 * MiB);
}

TEST(own_frees_trim_the_reservation)
{
    if (fresh_group(256 * MiB) < 0) /* slack: 1 MiB */
        SKIP("cannot create a group under /tmp");
    memset(&lane, 0, sizeof lane);
    pthread_barrier_init(&lane.step, NULL, 2);
    lane.count = 40;
    pthread_t t;
    CHECK_EQ_INT(pthread_create(&t, NULL, stepper, NULL), 0);
    pthread_barrier_wait(&lane.step);
    struct gm_cell *c = lane_cell();
    uint64_t held = atomic_load(&c->reserved);
    /* Step 3: it frees 36 of its 40 (and allocates none). */
    lane.count = 0;
    lane.free_own = 36;
    pthread_barrier_wait(&lane.step);
    pthread_barrier_wait(&lane.step);
    uint64_t charged = atomic_load(&c->charged), trimmed = atomic_load(&c->reserved);
    uint64_t cap = atomic_load(&c->cap), below = atomic_load(&c->trim_below);
    uint64_t sum = gm_usage_reserved(g.usage, gd);
    int made = lane.made;
    pthread_barrier_wait(&lane.step);
    pthread_join(t, NULL);
    for (int i = 0; i < lane.made; i++)
        shim_release(g.slot, lane.v[i]);
    pthread_barrier_destroy(&lane.step);
    drop_group();
    CHECK_EQ_INT(made, 4);
    CHECK(held >= 40 * MiB);
    CHECK_EQ_U64(charged, 4 * MiB);
    /* Its own frees trim it to one slack past its charge whenever it holds
     * more than two (docs/shim.md); the cap comes down with it. */
    CHECK(trimmed >= charged + MiB && trimmed <= charged + 2 * MiB);
    CHECK(cap <= trimmed);
    CHECK(below <= trimmed);
    CHECK_EQ_U64(sum, trimmed);
}

TEST(a_lowered_limit_reaches_a_lane_at_its_next_allocation)
{
    if (fresh_group(256 * MiB) < 0) /* slack: 1 MiB */
        SKIP("cannot create a group under /tmp");
    memset(&lane, 0, sizeof lane);
    pthread_barrier_init(&lane.step, NULL, 2);
    lane.count = 31; /* reserves 32 MiB: room for one more on its fast path */
    pthread_t t;
    CHECK_EQ_INT(pthread_create(&t, NULL, stepper, NULL), 0);
    pthread_barrier_wait(&lane.step);
    struct gm_cell *c = lane_cell();
    uint64_t cap = atomic_load(&c->cap);
    int rc = lower_limit(16 * MiB);
    uint64_t cap_cleared = atomic_load(&c->cap);
    lane.count = 1;
    pthread_barrier_wait(&lane.step);
    pthread_barrier_wait(&lane.step);
    int made = lane.made, refused = lane.refused;
    uint64_t charged = atomic_load(&c->charged), refusals = atomic_load(&g.usage->dev[gd].refusals);
    pthread_barrier_wait(&lane.step);
    pthread_join(t, NULL);
    for (int i = 0; i < lane.made; i++)
        shim_release(g.slot, lane.v[i]);
    pthread_barrier_destroy(&lane.step);
    drop_group();
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_U64(cap, 32 * MiB);
    CHECK_EQ_U64(cap_cleared, 0);
    /* The 32nd MiB fit the old cap, but the lane met the new limit. */
    CHECK_EQ_INT(made, 31);
    CHECK_EQ_INT(refused, 1);
    CHECK_EQ_U64(charged, 31 * MiB);
    CHECK_EQ_U64(refusals, 1);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    RUN(racing_lanes_never_pass_the_limit);
    RUN(a_lowered_limit_holds_for_racing_raises);
    RUN(another_threads_frees_give_the_reservation_back);
    RUN(own_frees_trim_the_reservation);
    RUN(a_lowered_limit_reaches_a_lane_at_its_next_allocation);
    return test_summary();
}
