/* The host-memory figures the spill checks (src/common/hostmem.c): the
 * parsers, and gm_host_room over a fake /proc and /sys tree (v2 and v1
 * hierarchies, limits at several levels, a namespaced path, no limit). */
#include "../testlib.h"
#include "gpumem/group.h"
#include "gpumem/hostmem.h"
#include "gpumem/swap.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define MiB (1ull << 20)

TEST(meminfo)
{
    CHECK_EQ_U64(gm_meminfo_available("MemTotal:  100 kB\nMemFree:   10 kB\nMemAvailable:   2048 kB\n"), 2 * MiB);
    CHECK_EQ_U64(gm_meminfo_available("MemAvailable: 1 kB"), 1024);
    CHECK_EQ_U64(gm_meminfo_available("MemTotal: 5 kB\n"), GM_HOSTMEM_UNKNOWN);
    CHECK_EQ_U64(gm_meminfo_available("MemAvailable: lots kB\n"), GM_HOSTMEM_UNKNOWN);
    CHECK_EQ_U64(gm_meminfo_available("MemAvailable: 12 MB\n"), GM_HOSTMEM_UNKNOWN);
    CHECK_EQ_U64(gm_meminfo_available("MemAvailable: 99999999999999999999 kB\n"), GM_HOSTMEM_UNKNOWN);
    CHECK_EQ_U64(gm_meminfo_available(""), GM_HOSTMEM_UNKNOWN);
}

TEST(cgroup_values)
{
    uint64_t v = 0;
    CHECK(gm_cgroup_value("max\n", &v) == 0 && v == GM_HOSTMEM_UNKNOWN);
    CHECK(gm_cgroup_value("536870912\n", &v) == 0 && v == 512 * MiB);
    CHECK(gm_cgroup_value("9223372036854771712\n", &v) == 0 && v == GM_HOSTMEM_UNKNOWN); /* v1 "unlimited" */
    CHECK(gm_cgroup_value("12 \n", &v) < 0);
    CHECK(gm_cgroup_value("-1\n", &v) < 0);
    CHECK(gm_cgroup_value("", &v) < 0);
    CHECK(gm_cgroup_value("184467440737095516160\n", &v) < 0);
}

TEST(cgroup_paths)
{
    char v2[64], v1[64];
    gm_cgroup_paths("12:pids:/a\n4:memory:/docker/abc\n0::/system.slice/x.scope\n", v2, sizeof v2, v1, sizeof v1);
    CHECK_STR(v2, "/system.slice/x.scope");
    CHECK_STR(v1, "/docker/abc");
    gm_cgroup_paths("3:cpu,memory,blkio:/k\n", v2, sizeof v2, v1, sizeof v1);
    CHECK_STR(v2, "");
    CHECK_STR(v1, "/k");
    gm_cgroup_paths("5:memoryx:/no\n0::/\n", v2, sizeof v2, v1, sizeof v1);
    CHECK_STR(v2, "/");
    CHECK_STR(v1, "");
    gm_cgroup_paths("garbage\n:::\n0::relative\n", v2, sizeof v2, v1, sizeof v1);
    CHECK_STR(v2, "");
    CHECK_STR(v1, "");
    /* A path too long for the buffer: none, rather than a cut one. */
    gm_cgroup_paths("0::/a/very/long/path/that/does/not/fit\n", v2, 8, v1, sizeof v1);
    CHECK_STR(v2, "");
}

static char root[256];

static void put(const char *rel, const char *text)
{
    char path[512], dir[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    snprintf(dir, sizeof dir, "%s", path);
    for (char *p = dir + strlen(root) + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(dir, 0755);
            *p = '/';
        }
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void fresh_root(void)
{
    char cmd[300];
    if (*root) {
        snprintf(cmd, sizeof cmd, "rm -rf %s", root);
        if (system(cmd) != 0)
            return;
    }
    snprintf(root, sizeof root, "/tmp/gpumem-hostmem-XXXXXX");
    if (!mkdtemp(root))
        *root = '\0';
}

TEST(room_v2_least_level_and_memavailable)
{
    fresh_root();
    char why[512];
    put("proc/meminfo", "MemAvailable: 4194304 kB\n"); /* 4 GiB */
    put("proc/self/cgroup", "0::/a/b\n");
    put("sys/fs/cgroup/cgroup.controllers", "memory\n");
    put("sys/fs/cgroup/a/memory.max", "1073741824\n");         /* 1 GiB, 768 MiB used */
    put("sys/fs/cgroup/a/memory.current", "805306368\n");
    put("sys/fs/cgroup/a/b/memory.max", "max\n");
    put("sys/fs/cgroup/a/b/memory.current", "1\n");
    CHECK_EQ_U64(gm_host_room(root, why, sizeof why), 256 * MiB);
    CHECK(strstr(why, "/sys/fs/cgroup/a/memory.max") != NULL);
    put("sys/fs/cgroup/a/memory.max", "max\n");
    CHECK_EQ_U64(gm_host_room(root, why, sizeof why), 4096 * MiB);
    CHECK_STR(why, "MemAvailable in /proc/meminfo");
    /* Usage over the limit: no room, not an underflow. */
    put("sys/fs/cgroup/a/b/memory.max", "100\n");
    put("sys/fs/cgroup/a/b/memory.current", "200\n");
    CHECK_EQ_U64(gm_host_room(root, why, sizeof why), 0);
}

TEST(room_v1_and_namespaced_path)
{
    fresh_root();
    char why[512];
    put("proc/meminfo", "MemAvailable: 4194304 kB\n");
    put("proc/self/cgroup", "4:memory:/docker/c1\n0::/\n");
    put("sys/fs/cgroup/memory/memory.limit_in_bytes", "536870912\n"); /* mount root: 512 MiB, 12 used */
    put("sys/fs/cgroup/memory/memory.usage_in_bytes", "12582912\n");
    /* /docker/c1 is not in the mount (a cgroup namespace): its root is ours. */
    CHECK_EQ_U64(gm_host_room(root, why, sizeof why), 500 * MiB);
    put("sys/fs/cgroup/memory/docker/c1/memory.limit_in_bytes", "209715200\n");
    put("sys/fs/cgroup/memory/docker/c1/memory.usage_in_bytes", "10485760\n");
    CHECK_EQ_U64(gm_host_room(root, why, sizeof why), 190 * MiB);
    CHECK(strstr(why, "docker/c1/memory.limit_in_bytes") != NULL);
}

TEST(room_unknown)
{
    fresh_root();
    char why[64];
    CHECK_EQ_U64(gm_host_room(root, why, sizeof why), GM_HOSTMEM_UNKNOWN);
    CHECK_STR(why, "no figure readable");
}

TEST(swap_words)
{
    uint64_t v = 1;
    char err[256];
    CHECK(gm_parse_swap("none", &v, err, sizeof err) == 0 && v == 0);
    CHECK(gm_parse_swap("0", &v, err, sizeof err) == 0 && v == 0);
    CHECK(gm_parse_swap("8G", &v, err, sizeof err) == 0 && v == 8ull << 30);
    CHECK(gm_parse_swap("8", &v, err, sizeof err) < 0 && strstr(err, "\"8\""));
    CHECK(gm_parse_switch("on", err, sizeof err) == 1 && gm_parse_switch("FALSE", err, sizeof err) == 0);
    CHECK(gm_parse_switch("maybe", err, sizeof err) < 0 && strstr(err, "\"maybe\""));
}

TEST(swap_headroom)
{
    static struct gm_limits l;
    static struct gm_usage u;
    atomic_store(&u.slots_hw, 2);
    atomic_store(&u.slot[0].cell[GM_CELL_INDEX(0, 0)].swapped, 100 * MiB);
    atomic_store(&u.slot[1].cell[GM_CELL_INDEX(GM_LANE_SHARED, 3)].swapped, 50 * MiB);
    l.swap = 0;
    CHECK_EQ_U64(gm_swap_headroom(&l, &u), 0);
    l.swap = 1024 * MiB;
    CHECK_EQ_U64(gm_swap_headroom(&l, &u), 874 * MiB);
    CHECK_EQ_U64(gm_usage_swapped(&u, 3), 50 * MiB);
    l.swap = 100 * MiB; /* lowered below what is spilled: none, not an underflow */
    CHECK_EQ_U64(gm_swap_headroom(&l, &u), 0);
}

int main(void)
{
    RUN(meminfo);
    RUN(cgroup_values);
    RUN(cgroup_paths);
    RUN(room_v2_least_level_and_memavailable);
    RUN(room_v1_and_namespaced_path);
    RUN(room_unknown);
    RUN(swap_words);
    RUN(swap_headroom);
    if (*root) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", root);
        if (system(cmd) != 0)
            return 1;
    }
    return test_summary();
}
