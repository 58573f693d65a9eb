/* The backstop's pure parts (src/daemon/backstop_rules.c and the /proc
 * parsers of backstop_proc.c, included directly): who is dishonest by
 * itself, when a group is over its limit, what counts as exiting (not a
 * leader that called pthread_exit beside running threads), exempt cgroups,
 * and /proc/<pid>/stat and cgroup text, hostile comm included. */
#include "../testlib.h"
#include "../../src/daemon/backstop_rules.c"
#include "../../src/daemon/backstop_proc.c"

#define MiB (1ull << 20)
#define TOL (256 * MiB)

static struct bs_gpuproc proc(enum bs_join how, uint64_t used, uint64_t accounted)
{
    struct bs_gpuproc p;
    memset(&p, 0, sizeof p);
    p.how = how;
    p.used = used;
    p.accounted = accounted;
    p.start = 1;
    p.group = how == BS_JOIN_NONE ? -1 : 0;
    return p;
}

TEST(unaccounted_processes_are_dishonest_whatever_they_hold)
{
    struct bs_gpuproc p = proc(BS_JOIN_NONE, 1, 0);
    CHECK(bs_proc_dishonest(&p, TOL));
    p = proc(BS_JOIN_CGROUP, 64 * MiB, 0);
    CHECK(bs_proc_dishonest(&p, TOL));
    p = proc(BS_JOIN_TREE, BS_USED_UNKNOWN, 0); /* NVML cannot say how much: it still has a context */
    CHECK(bs_proc_dishonest(&p, TOL));
    p = proc(BS_JOIN_NONE, 0, 0); /* listed, holding nothing */
    CHECK(!bs_proc_dishonest(&p, TOL));
}

TEST(a_slot_is_dishonest_only_beyond_the_tolerance)
{
    struct bs_gpuproc p = proc(BS_JOIN_SLOT, 512 * MiB, 512 * MiB);
    CHECK(!bs_proc_dishonest(&p, TOL));
    p = proc(BS_JOIN_SLOT, 512 * MiB + TOL, 512 * MiB); /* exactly the tolerance: not beyond it */
    CHECK(!bs_proc_dishonest(&p, TOL));
    p = proc(BS_JOIN_SLOT, 512 * MiB + TOL + 1, 512 * MiB);
    CHECK(bs_proc_dishonest(&p, TOL));
    p = proc(BS_JOIN_SLOT, 100 * MiB, 900 * MiB); /* in flight: the shim charged first */
    CHECK(!bs_proc_dishonest(&p, TOL));
    p = proc(BS_JOIN_SLOT, BS_USED_UNKNOWN, 0); /* unknown bytes prove nothing against a shim */
    CHECK(!bs_proc_dishonest(&p, TOL));
    p = proc(BS_JOIN_SLOT, 1, 0);
    CHECK(bs_proc_dishonest(&p, 0));
}

TEST(a_group_is_over_when_both_the_limit_and_the_shim_are_passed)
{
    uint64_t G = 1024 * MiB;
    CHECK(bs_group_over(G + TOL + 1, 0, G, TOL));
    CHECK(!bs_group_over(G + TOL, 0, G, TOL));
    /* `gpumem limit` lowered under an honest group: the shim counts it all. */
    CHECK(!bs_group_over(2 * G, 2 * G, G / 4, TOL));
    CHECK(!bs_group_over(2 * G + TOL, 2 * G, G / 4, TOL));
    CHECK(bs_group_over(2 * G + TOL + 1, 2 * G, G / 4, TOL));
    CHECK(!bs_group_over(UINT64_MAX, 0, GM_UNLIMITED, TOL));
    /* no wrap near 2^64 */
    CHECK(!bs_group_over(UINT64_MAX, 0, UINT64_MAX - 1, TOL));
    CHECK(!bs_group_over(UINT64_MAX, UINT64_MAX - 1, 0, TOL));
}

TEST(exiting_means_nothing_left_running)
{
    struct bs_stat st = {.state = 'R', .threads = 1, .start = 5};
    CHECK(!bs_stat_exiting(&st));
    st.flags = BS_PF_EXITING;
    CHECK(bs_stat_exiting(&st));
    st.threads = 3; /* the leader called pthread_exit; two threads run on */
    CHECK(!bs_stat_exiting(&st));
    st.flags = 0;
    st.state = 'Z';
    CHECK(!bs_stat_exiting(&st));
    st.threads = 1;
    CHECK(bs_stat_exiting(&st));
}

TEST(exempt_cgroups_are_whole_path_components)
{
    CHECK(bs_cgroup_under("/system.slice/display-manager.service", "/system.slice/display-manager.service"));
    CHECK(bs_cgroup_under("/system.slice/x.service/sub", "/system.slice/x.service/"));
    CHECK(bs_cgroup_under("/system.slice/x.service/sub", "/system.slice"));
    CHECK(!bs_cgroup_under("/system.slice2/x", "/system.slice"));
    CHECK(!bs_cgroup_under("/user.slice", "/system.slice"));
    CHECK(bs_cgroup_under("/anything", "/"));
    CHECK(!bs_cgroup_under("", "/"));
    CHECK(!bs_cgroup_under("/a", ""));
}

TEST(stat_lines_parse_after_the_last_parenthesis)
{
    struct bs_stat st;
    const char *line = "4242 (evil) S 1 2 3 4 -1 4194560 5 6 7 8 9 10 11 12 20 0 3 0 987654 1 2 3\n";
    CHECK_EQ_INT(bs_parse_stat(line, &st), 0);
    CHECK_EQ_INT(st.state, 'S');
    CHECK_EQ_INT(st.ppid, 1);
    CHECK_EQ_U64(st.flags, 4194560);
    CHECK_EQ_U64(st.threads, 3);
    CHECK_EQ_U64(st.start, 987654);
    /* A comm that fakes a stat line of its own. */
    const char *fake = "77 (x) Z 9 9 9 9 9 4 9 9) R 12 2 3 4 -1 0 5 6 7 8 9 10 11 12 20 0 1 0 555 1 2 3\n";
    CHECK_EQ_INT(bs_parse_stat(fake, &st), 0);
    CHECK_EQ_INT(st.state, 'R');
    CHECK_EQ_INT(st.ppid, 12);
    CHECK_EQ_U64(st.start, 555);
    CHECK_EQ_INT(bs_parse_stat("", &st), -1);
    CHECK_EQ_INT(bs_parse_stat("1 (x) S 1 2", &st), -1);
    CHECK_EQ_INT(bs_parse_stat("1 (x) S 99999999999 2 3 4 -1 0 5 6 7 8 9 10 11 12 20 0 1 0 555", &st), -1);
    CHECK_EQ_INT(st.state, '?');
    CHECK_EQ_U64(st.start, 0);
}

TEST(cgroup_text_gives_the_unified_path)
{
    char out[64];
    bs_parse_cgroup("0::/system.slice/docker-abc.scope\n", out, sizeof out);
    CHECK_STR(out, "/system.slice/docker-abc.scope");
    /* A hybrid host: the container is in the v1 controllers, "0::/" says nothing. */
    bs_parse_cgroup("12:pids:/docker/abc\n11:memory:/docker/abc\n0::/\n", out, sizeof out);
    CHECK_STR(out, "/docker/abc");
    bs_parse_cgroup("4:memory:/docker/abd\n12:pids:/docker/abc\n", out, sizeof out);
    CHECK_STR(out, "/docker/abc");
    bs_parse_cgroup("8:pids:/\n4:memory:/process_api/x\n0::/\n", out, sizeof out);
    CHECK_STR(out, "/process_api/x");
    bs_parse_cgroup("8:pids:/\n4:memory:/\n0::/\n", out, sizeof out);
    CHECK_STR(out, "/");
    bs_parse_cgroup("0::/user.slice\n12:pids:/docker/abc\n", out, sizeof out);
    CHECK_STR(out, "/user.slice");
    bs_parse_cgroup("garbage", out, sizeof out);
    CHECK_STR(out, "");
    char small[8];
    bs_parse_cgroup("0::/far/too/long/a/path\n", small, sizeof small); /* cut short it would name another */
    CHECK_STR(small, "");
}

TEST(this_process_reads_as_itself)
{
    struct bs_procinfo p;
    CHECK_EQ_INT(bs_proc_read(getpid(), &p), 0);
    CHECK(p.st.start > 0);
    CHECK_EQ_INT(p.st.ppid, getppid());
    CHECK(!bs_stat_exiting(&p.st));
    CHECK(bs_proc_same(getpid(), p.st.start));
    CHECK(!bs_proc_same(getpid(), p.st.start + 1));
    CHECK_EQ_INT(bs_proc_read(0, &p), -1);
}

int main(void)
{
    RUN(unaccounted_processes_are_dishonest_whatever_they_hold);
    RUN(a_slot_is_dishonest_only_beyond_the_tolerance);
    RUN(a_group_is_over_when_both_the_limit_and_the_shim_are_passed);
    RUN(exiting_means_nothing_left_running);
    RUN(exempt_cgroups_are_whole_path_components);
    RUN(stat_lines_parse_after_the_last_parenthesis);
    RUN(cgroup_text_gives_the_unified_path);
    RUN(this_process_reads_as_itself);
    return test_summary();
}
