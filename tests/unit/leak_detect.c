/* Leak detection (src/daemon/leak.c, included directly: it is pure logic
 * with no daemon dependency): a planted leak is flagged, honest workloads
 * are not, a process that dies is evicted, the ring stays bounded. */
#include "../testlib.h"
#include "../../src/daemon/leak.c"

#define MiB (1ull << 20)
#define GiB (1ull << 30)

struct changes {
    int suspected, cleared, exited;
    struct lk_verdict v;
};

static void on_change(void *ctx, const struct lk_track *t, int suspected, int exited)
{
    struct changes *c = ctx;
    if (suspected) {
        c->suspected++;
        c->v = t->last;
    } else {
        c->cleared++;
        c->exited += exited;
    }
}

static struct lk_obs obs_of(const char *group, int pid, uint64_t used, uint64_t allocs, uint64_t frees)
{
    struct lk_obs o;
    memset(&o, 0, sizeof o);
    snprintf(o.group, sizeof o.group, "%s", group);
    o.pid = pid;
    o.start_time = 1000 + (uint64_t)pid;
    o.used = used;
    o.allocs = allocs;
    o.frees = frees;
    return o;
}

/* 8 MiB more every 10 s, allocations only: 480 MiB over 10 minutes. */
TEST(planted_leak_is_flagged)
{
    struct lk_table tb = {0};
    struct lk_params p;
    lk_params_default(&p);
    struct changes c = {0};
    int flagged_at = -1;
    for (int t = 0; t <= 900; t += 10) {
        struct lk_obs o = obs_of("leaky", 42, 512 * MiB + (uint64_t)t / 10 * 8 * MiB, 10 + (uint64_t)t / 10, 3);
        lk_table_update(&tb, &o, 1, t, &p, on_change, &c);
        if (c.suspected && flagged_at < 0)
            flagged_at = t;
    }
    CHECK_EQ_INT(c.suspected, 1);
    CHECK_EQ_INT(c.cleared, 0);
    CHECK(flagged_at >= 600 && flagged_at <= 630);
    CHECK_EQ_INT(c.v.kind, LK_IDLE_GROWTH);
    CHECK(c.v.window >= 600);
    CHECK(c.v.end_used - c.v.start_used >= 256 * MiB);
    CHECK(c.v.rate > 0.7 * MiB && c.v.rate < 0.9 * MiB); /* 0.8 MiB/s */
    CHECK_EQ_U64(c.v.frees, 0);
    CHECK(lk_table_suspected(&tb, "leaky", 0));
    CHECK(!lk_table_suspected(&tb, "other", 0));
    CHECK(!lk_table_suspected(&tb, "leaky", 1));
    /* It stops growing: cleared within a quarter window or so. */
    for (int t = 910; t <= 1200; t += 10) {
        struct lk_obs o = obs_of("leaky", 42, 512 * MiB + 90 * 8 * MiB, 100, 3);
        lk_table_update(&tb, &o, 1, t, &p, on_change, &c);
    }
    CHECK_EQ_INT(c.cleared, 1);
    CHECK_EQ_INT(c.exited, 0);
    CHECK(!lk_table_suspected(&tb, "leaky", 0));
    lk_table_free(&tb);
}

/* Small growth (under 256 MiB in the window) is not flagged. */
TEST(slow_growth_under_threshold_is_not_flagged)
{
    struct lk_table tb = {0};
    struct lk_params p;
    lk_params_default(&p);
    struct changes c = {0};
    for (int t = 0; t <= 1200; t += 10) {
        struct lk_obs o = obs_of("slow", 1, GiB + (uint64_t)t / 10 * 2 * MiB, (uint64_t)t, 0);
        lk_table_update(&tb, &o, 1, t, &p, on_change, &c);
    }
    CHECK_EQ_INT(c.suspected, 0);
    lk_table_free(&tb);
}

/* A steady workload: allocations and frees, usage flat (with jitter), 2 h. */
TEST(honest_steady_workload_is_not_flagged)
{
    struct lk_table tb = {0};
    struct lk_params p;
    lk_params_default(&p);
    struct changes c = {0};
    for (int t = 0; t <= 7200; t += 5) {
        uint64_t k = (uint64_t)t / 5;
        struct lk_obs o = obs_of("steady", 7, 4 * GiB + (k % 3) * 64 * MiB, 1000 * k + 5, 1000 * k);
        lk_table_update(&tb, &o, 1, t, &p, on_change, &c);
    }
    CHECK_EQ_INT(c.suspected, 0);
    lk_table_free(&tb);
}

/* A training loop warming its cache: grows with alloc/free churn for 5
 * minutes, then flat with churn. Not flagged, ever. */
TEST(cache_warmup_is_not_flagged)
{
    struct lk_table tb = {0};
    struct lk_params p;
    lk_params_default(&p);
    struct changes c = {0};
    for (int t = 0; t <= 3 * 3600; t += 5) {
        uint64_t k = (uint64_t)t / 5;
        uint64_t used = t < 300 ? 512 * MiB + k * 40 * MiB : 512 * MiB + 60 * 40 * MiB;
        struct lk_obs o = obs_of("train", 9, used, 50 * k + 1, 50 * k);
        lk_table_update(&tb, &o, 1, t, &p, on_change, &c);
    }
    CHECK_EQ_INT(c.suspected, 0);
    lk_table_free(&tb);
}

/* One big allocation, then held: not a leak. */
TEST(holder_is_not_flagged)
{
    struct lk_table tb = {0};
    struct lk_params p;
    lk_params_default(&p);
    struct changes c = {0};
    for (int t = 0; t <= 7200; t += 5) {
        struct lk_obs o = obs_of("hold", 3, t < 60 ? 128 * MiB : 8 * GiB, t < 60 ? 0 : 1, 0);
        lk_table_update(&tb, &o, 1, t, &p, on_change, &c);
    }
    CHECK_EQ_INT(c.suspected, 0);
    lk_table_free(&tb);
}

/* Growth with churn, monotonic for over the long window: flagged as long. */
TEST(long_monotonic_growth_with_churn_is_flagged)
{
    struct lk_table tb = {0};
    struct lk_params p;
    lk_params_default(&p);
    struct changes c = {0};
    int flagged_at = -1;
    for (int t = 0; t <= 4000; t += 10) {
        uint64_t k = (uint64_t)t / 10;
        struct lk_obs o = obs_of("creep", 5, GiB + k * MiB, 20 * k + 1, 10 * k);
        lk_table_update(&tb, &o, 1, t, &p, on_change, &c);
        if (c.suspected && flagged_at < 0)
            flagged_at = t;
    }
    CHECK_EQ_INT(c.suspected, 1);
    CHECK(flagged_at >= 3600 && flagged_at <= 3700);
    CHECK_EQ_INT(c.v.kind, LK_LONG_GROWTH);
    lk_table_free(&tb);
}

/* A dip between stored samples (merged into the ring's newest entry)
 * still breaks monotonicity. */
TEST(dip_between_samples_breaks_monotonic)
{
    struct lk_params p;
    lk_params_default(&p);
    struct lk_ring r;
    memset(&r, 0, sizeof r);
    double sp = lk_spacing(&p);
    uint64_t used = GiB;
    for (int t = 0; t <= 700; t++) { /* 1 s samples, far closer than the spacing */
        used += MiB;
        if (t == 400)
            used -= 2 * MiB;
        lk_ring_add(&r, t, used, (uint64_t)t + 1, 0, sp);
    }
    struct lk_sample s[LK_RING];
    size_t n = lk_ring_linear(&r, s);
    CHECK(n < 700);
    CHECK_EQ_INT(lk_judge(s, n, &p, NULL), LK_NONE);
    /* The same without the dip is flagged. */
    memset(&r, 0, sizeof r);
    used = GiB;
    for (int t = 0; t <= 700; t++) {
        used += MiB;
        lk_ring_add(&r, t, used, (uint64_t)t + 1, 0, sp);
    }
    n = lk_ring_linear(&r, s);
    CHECK_EQ_INT(lk_judge(s, n, &p, NULL), LK_IDLE_GROWTH);
}

/* The ring never holds more than LK_RING samples, however long it runs. */
TEST(ring_is_bounded)
{
    struct lk_ring r;
    memset(&r, 0, sizeof r);
    for (int t = 0; t < 100000; t++)
        lk_ring_add(&r, t, 1, 1, 1, 1.0);
    CHECK_EQ_INT(r.count, LK_RING);
    struct lk_sample s[LK_RING];
    CHECK_EQ_INT(lk_ring_linear(&r, s), LK_RING);
    CHECK(s[0].t < s[LK_RING - 1].t);
    CHECK(s[LK_RING - 1].t == 99999);
}

/* A process that dies is evicted (and a suspected one is cleared as
 * exited); others stay tracked. */
TEST(dead_process_is_evicted)
{
    struct lk_table tb = {0};
    struct lk_params p;
    lk_params_default(&p);
    p.window = 60;
    p.long_window = 600;
    p.min_growth = 64 * MiB;
    struct changes c = {0};
    for (int t = 0; t <= 90; t += 2) {
        struct lk_obs o[2] = {
            obs_of("g", 10, (uint64_t)(t + 2) * 16 * MiB, (uint64_t)t + 1, 0),
            obs_of("g", 11, GiB, 1, 0),
        };
        lk_table_update(&tb, o, 2, t, &p, on_change, &c);
    }
    CHECK_EQ_INT(c.suspected, 1);
    CHECK_EQ_INT(tb.n, 2);
    struct lk_obs only = obs_of("g", 11, GiB, 1, 0);
    lk_table_update(&tb, &only, 1, 92, &p, on_change, &c);
    CHECK_EQ_INT(tb.n, 1);
    CHECK_EQ_INT(tb.t[0]->pid, 11);
    CHECK_EQ_INT(c.cleared, 1);
    CHECK_EQ_INT(c.exited, 1);
    CHECK(!lk_table_suspected(&tb, "g", 0));
    /* The pid reused by a new process (another start time) starts afresh. */
    struct lk_obs reused[2] = {obs_of("g", 10, GiB, 1, 0), only};
    reused[0].start_time = 99999;
    lk_table_update(&tb, reused, 2, 94, &p, on_change, &c);
    CHECK_EQ_INT(tb.n, 2);
    lk_table_update(&tb, NULL, 0, 96, &p, on_change, &c);
    CHECK_EQ_INT(tb.n, 0);
    lk_table_free(&tb);
}

int main(void)
{
    RUN(planted_leak_is_flagged);
    RUN(slow_growth_under_threshold_is_not_flagged);
    RUN(honest_steady_workload_is_not_flagged);
    RUN(cache_warmup_is_not_flagged);
    RUN(holder_is_not_flagged);
    RUN(long_monotonic_growth_with_churn_is_flagged);
    RUN(dip_between_samples_breaks_monotonic);
    RUN(ring_is_bounded);
    RUN(dead_process_is_evicted);
    return test_summary();
}
