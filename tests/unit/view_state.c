/* The daemon's view file for gpumem top and ps (src/daemon/view_state.c,
 * included directly): the history ring keeps spikes within a step and stays
 * bounded, recent refusals, groups that left are dropped, and a file
 * round-trips only while it is fresh and its writer runs. */
#include "../testlib.h"
#include "../../src/daemon/view_state.c"

#include <stdlib.h>

static struct dm_row mkrow(const char *group, const char *uuid, uint64_t used, uint64_t refusals, int leak)
{
    struct dm_row r;
    memset(&r, 0, sizeof r);
    snprintf(r.group, sizeof r.group, "%s", group);
    snprintf(r.uuid, sizeof r.uuid, "%s", uuid);
    r.used = used;
    r.refusals = refusals;
    r.leak = leak;
    return r;
}

TEST(spike_within_a_step_is_kept)
{
    struct dm_hist h;
    memset(&h, 0, sizeof h);
    dm_hist_add(&h, 0.0, 100, 0, 1.0);
    dm_hist_add(&h, 0.3, 900, 1, 1.0); /* a spike, then back down */
    dm_hist_add(&h, 0.6, 100, 1, 1.0);
    CHECK_EQ_U64(h.n, 1);
    CHECK_EQ_U64(h.used[0], 900);
    CHECK_EQ_U64(h.refusals[0], 1);
    dm_hist_add(&h, 1.1, 200, 3, 1.0);
    CHECK_EQ_U64(h.n, 2);
    CHECK_EQ_U64(h.used[1], 200);
    CHECK_EQ_U64(dm_hist_recent_refusals(&h), 2);
}

TEST(ring_is_bounded_oldest_dropped)
{
    struct dm_hist h;
    memset(&h, 0, sizeof h);
    for (int i = 0; i < DM_HIST + 10; i++)
        dm_hist_add(&h, i, (uint64_t)i, 0, 1.0);
    CHECK_EQ_U64(h.n, DM_HIST);
    CHECK_EQ_U64(h.used[0], 10);
    CHECK_EQ_U64(h.used[DM_HIST - 1], DM_HIST + 9);
}

TEST(track_keeps_history_and_drops_gone_groups)
{
    struct dm_row rows[2] = {mkrow("a", "GPU-1", 10, 0, 0), mkrow("b", "GPU-1", 20, 0, 1)};
    struct dm_snapshot s;
    memset(&s, 0, sizeof s);
    s.rows = rows;
    s.nrows = 2;
    struct dm_hist *t = NULL;
    size_t n = 0;
    dm_hist_track(&t, &n, &s, 0, 1);
    rows[0].used = 30;
    dm_hist_track(&t, &n, &s, 2, 1);
    CHECK_EQ_U64(n, 2);
    CHECK_EQ_U64(dm_hist_find(t, n, "a", "GPU-1")->n, 2);
    CHECK_EQ_INT(dm_hist_find(t, n, "b", "GPU-1")->leak, 1);
    s.nrows = 1;
    dm_hist_track(&t, &n, &s, 4, 1);
    CHECK_EQ_U64(n, 1);
    CHECK(dm_hist_find(t, n, "b", "GPU-1") == NULL);
    CHECK_EQ_U64(dm_hist_find(t, n, "a", "GPU-1")->n, 3);
    free(t);
}

TEST(file_round_trips_while_fresh)
{
    char dir[] = "/tmp/gpumem-view-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    struct dm_row rows[1] = {mkrow("grp", "GPU-fe90dcc9-2f3b-45aa-aeb9-854a9f37e853", 1u << 30, 4, 1)};
    struct dm_snapshot s;
    memset(&s, 0, sizeof s);
    s.rows = rows;
    s.nrows = 1;
    CHECK_EQ_INT(dm_view_write(&s, dir, 0.5, 5, 0), 0);
    rows[0].used = 2u << 30;
    CHECK_EQ_INT(dm_view_write(&s, dir, 0.5, 5, 6), 0);
    struct dm_view v;
    memset(&v, 0, sizeof v);
    CHECK_EQ_INT(dm_view_read(dir, &v), 0);
    CHECK_EQ_U64(v.n, 1);
    CHECK_STR(v.h[0].group, "grp");
    CHECK_STR(v.h[0].uuid, "GPU-fe90dcc9-2f3b-45aa-aeb9-854a9f37e853");
    CHECK_EQ_INT(v.h[0].leak, 1);
    CHECK_EQ_U64(v.h[0].n, 2);
    CHECK_EQ_U64(v.h[0].used[1], 2u << 30);
    CHECK_EQ_U64(v.h[0].refusals[1], 4);
    /* A file left by a daemon that is gone (pid 0 is never valid) or
     * written long ago is not used. */
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, DM_VIEW_FILE);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fprintf(f, "gpumem-view 1 %d %lld 1 5\ngrp GPU-1 1 1 5 0\n", (int)getpid(), (long long)time(NULL) - 3600);
    fclose(f);
    CHECK_EQ_INT(dm_view_read(dir, &v), -1);
    CHECK_EQ_U64(v.n, 0);
    dm_view_remove(dir);
    CHECK_EQ_INT(dm_view_read(dir, &v), -1);
    dm_view_free(&v);
    rmdir(dir);
}

int main(void)
{
    RUN(spike_within_a_step_is_kept);
    RUN(ring_is_bounded_oldest_dropped);
    RUN(track_keeps_history_and_drops_gone_groups);
    RUN(file_round_trips_while_fresh);
    return test_summary();
}
