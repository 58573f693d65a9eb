/* The policy's pure decisions (src/common/policy.c) and parsers
 * (policy_env.c, the queue entry format of admission.c): who is picked to
 * give memory back, in what order starts wait, what a creator may write. */
#include "../testlib.h"
#include "gpumem/policy.h"

#include <stdlib.h>

#define G (1ull << 30)

static int pick(const struct gp_group *g, int n, int self, int32_t prio, uint64_t need, enum gp_measure m,
                struct gp_victim *out)
{
    return gp_pick_victims(g, n, self, prio, need, m, out, n);
}

TEST(borrowers_first_lowest_priority_first)
{
    struct gp_group g[] = {
        {"me", 0, 8 * G, 2 * G, 1, 0},
        {"lo-borrow", -1, 1 * G, 5 * G, 2, 0},   /* borrows 4G */
        {"norm-borrow", 0, 1 * G, 6 * G, 3, 0},  /* borrows 5G */
        {"lo-inside", -1, 4 * G, 3 * G, 4, 0},   /* within its request */
    };
    struct gp_victim v[4];
    CHECK_EQ_INT(pick(g, 4, 0, 0, 3 * G, GP_FREES_USED, v), 1);
    CHECK_EQ_INT(v[0].index, 1); /* the low borrower, though the normal one borrows more */
    CHECK_EQ_INT(v[0].reason, GP_BORROWED);
    CHECK_EQ_INT(pick(g, 4, 0, 0, 10 * G, GP_FREES_USED, v), 2);
    CHECK_EQ_INT(v[1].index, 2);
    /* More than both borrowers hold: then the lower priority's guaranteed. */
    CHECK_EQ_INT(pick(g, 4, 0, 0, 12 * G, GP_FREES_USED, v), 3);
    CHECK_EQ_INT(v[2].index, 3);
    CHECK_EQ_INT(v[2].reason, GP_LOWER_PRIORITY);
}

TEST(never_a_higher_priority)
{
    struct gp_group g[] = {
        {"me", 0, 8 * G, 2 * G, 1, 0},
        {"high-borrow", 1, 1 * G, 9 * G, 2, 0},
        {"high", 1, 4 * G, 4 * G, 3, 0},
    };
    struct gp_victim v[3];
    CHECK_EQ_INT(pick(g, 3, 0, 0, 1 * G, GP_FREES_USED, v), -1);
    /* For a high one, the high borrower is fair game, the other high one's
     * guarantee is not (same priority). */
    CHECK_EQ_INT(pick(g, 3, 0, 1, 1 * G, GP_FREES_USED, v), 1);
    CHECK_EQ_INT(v[0].index, 1);
    CHECK_EQ_INT(pick(g, 3, 0, 1, 12 * G, GP_FREES_USED, v), -1);
}

TEST(all_or_nobody)
{
    struct gp_group g[] = {{"a", -1, 0, 1 * G, 1, 0}, {"b", -1, 0, 1 * G, 2, 0}};
    struct gp_victim v[2];
    /* Both together free 2G: asked 3G, nobody is disturbed. */
    CHECK_EQ_INT(pick(g, 2, -1, 0, 3 * G, GP_FREES_USED, v), -1);
    CHECK_EQ_INT(pick(g, 2, -1, 0, 0, GP_FREES_USED, v), 0);
}

TEST(busy_ones_are_not_picked_twice)
{
    struct gp_group g[] = {{"a", -1, 0, 4 * G, 1, 1}, {"b", -1, 0, 4 * G, 2, 0}};
    struct gp_victim v[2];
    CHECK_EQ_INT(pick(g, 2, -1, 0, 1 * G, GP_FREES_USED, v), 1);
    CHECK_EQ_INT(v[0].index, 1);
}

TEST(a_queued_start_takes_only_lower_requests)
{
    struct gp_group g[] = {
        {"norm-borrow", 0, 4 * G, 8 * G, 1, 0}, /* same priority: its request stays */
        {"low", -1, 6 * G, 1 * G, 2, 0},
    };
    struct gp_victim v[2];
    CHECK_EQ_INT(pick(g, 2, -1, 0, 5 * G, GP_FREES_REQUEST, v), 1);
    CHECK_EQ_INT(v[0].index, 1);
    CHECK_EQ_U64(v[0].frees, 6 * G);
    CHECK_EQ_INT(pick(g, 2, -1, 0, 7 * G, GP_FREES_REQUEST, v), -1);
}

TEST(queue_order_priority_then_arrival)
{
    struct gp_waiter a = {0, 100, 1}, b = {0, 200, 2}, c = {1, 300, 3}, d = {-1, 50, 4}, e = {0, 100, 5};
    CHECK(gp_queue_cmp(&a, &b) < 0);
    CHECK(gp_queue_cmp(&c, &a) < 0);  /* higher priority, later */
    CHECK(gp_queue_cmp(&a, &d) < 0);  /* lower priority, earlier */
    CHECK(gp_queue_cmp(&a, &e) < 0);  /* the same instant: by sequence */
    CHECK(gp_queue_cmp(&a, &a) == 0);
}

TEST(fits)
{
    CHECK(gp_fits(16 * G, 8 * G, 8 * G));
    CHECK(!gp_fits(16 * G, 8 * G, 8 * G + 1));
    CHECK(!gp_fits(16 * G, 17 * G, 0 + 1));
    CHECK(!gp_fits(16 * G, UINT64_MAX, UINT64_MAX));
}

TEST(priority_and_oom_parsing)
{
    int32_t p;
    uint32_t ms;
    double t;
    char err[256];
    CHECK(gm_parse_priority("high", &p, err, sizeof err) == 0 && p == 1);
    CHECK(gm_parse_priority("low", &p, err, sizeof err) == 0 && p == -1);
    CHECK(gm_parse_priority("-500", &p, err, sizeof err) == 0 && p == -500);
    CHECK(gm_parse_priority("1001", &p, err, sizeof err) < 0 && strstr(err, "\"1001\""));
    CHECK(gm_parse_priority("010", &p, err, sizeof err) < 0);
    CHECK(gm_parse_priority("urgent", &p, err, sizeof err) < 0 && strstr(err, "\"urgent\""));
    CHECK(gm_parse_oom("wait:2.5", &ms, err, sizeof err) == 0 && ms == 2500);
    CHECK(gm_parse_oom("fail", &ms, err, sizeof err) == 0 && ms == 0);
    CHECK(gm_parse_oom("wait:", &ms, err, sizeof err) < 0 && strstr(err, "\"wait:\""));
    CHECK(gm_parse_oom("wait:-1", &ms, err, sizeof err) < 0);
    CHECK(gm_parse_oom("wait:100000", &ms, err, sizeof err) < 0);
    CHECK(gm_parse_timeout("5m", &t, err, sizeof err) == 0 && t == 300);
    CHECK(gm_parse_timeout("", &t, err, sizeof err) == 0 && t == -1);
    CHECK(gm_parse_timeout("soon", &t, err, sizeof err) < 0 && strstr(err, "\"soon\""));
}

static const char *env_of(const char *name, void *ctx)
{
    const char **kv = ctx;
    for (; *kv; kv += 2)
        if (strcmp(kv[0], name) == 0)
            return kv[1];
    return NULL;
}

TEST(request_from_env_and_checked_against_the_limit)
{
    const char *env[] = {"NVIDIA_GPU_MEMORY_REQUESTS", "2048", "NVIDIA_GPU_MEMORY_REQUEST", "1024", NULL};
    struct gm_limit_spec spec;
    char err[512];
    CHECK_EQ_INT(gm_request_from_env(env_of, env, &spec, err, sizeof err), 1);
    CHECK_EQ_U64(spec.term[0].bytes, 1ull << 30); /* the singular wins, in MiB */
    struct gm_limits l;
    gm_limits_init(&l);
    l.default_limit = 512ull << 20;
    CHECK(gm_requests_from_spec(&l, &spec, NULL, NULL, err, sizeof err) < 0);
    CHECK(strstr(err, "above the limit") != NULL);
    const char *bad[] = {"GPUMEM_REQUEST", "4096", NULL};
    CHECK_EQ_INT(gm_request_from_env(env_of, bad, &spec, err, sizeof err), -1);
    CHECK(strstr(err, "GPUMEM_REQUEST=4096") != NULL);
}

TEST(queue_entry_roundtrip_and_garbage)
{
    struct gm_queue_entry e;
    CHECK(gm_queue_parse("name=job\npid=42\nstart=7\npriority=high\narrival=99\ntimeout=-1.000\nrequest=0\n"
                         "request.GPU-abc=1024\nwhy=behind x\n",
                         &e) == 0);
    CHECK_STR(e.name, "job");
    CHECK_EQ_INT(e.pid, 42);
    CHECK_EQ_INT(e.priority, 1);
    CHECK_EQ_U64(gm_queue_request(&e, "GPU-abc"), 1024);
    CHECK_EQ_U64(gm_queue_request(&e, "GPU-other"), 0);
    CHECK_STR(e.why, "behind x");
    CHECK(gm_queue_parse("pid=42\n", &e) < 0);             /* no name */
    CHECK(gm_queue_parse("name=../x\npid=1\n", &e) < 0);   /* not a group name */
    CHECK(gm_queue_parse("name=a\npid=0\n", &e) < 0);
    CHECK(gm_queue_parse("name=a\npid=1\ngarbage\n", &e) < 0);
}

int main(void)
{
    RUN(borrowers_first_lowest_priority_first);
    RUN(never_a_higher_priority);
    RUN(all_or_nobody);
    RUN(busy_ones_are_not_picked_twice);
    RUN(a_queued_start_takes_only_lower_requests);
    RUN(queue_order_priority_then_arrival);
    RUN(fits);
    RUN(priority_and_oom_parsing);
    RUN(request_from_env_and_checked_against_the_limit);
    RUN(queue_entry_roundtrip_and_garbage);
    return test_summary();
}
