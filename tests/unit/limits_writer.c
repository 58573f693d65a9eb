/* Readers of the limits file against its writers (group_limits.c): a writer
 * midway through a rewrite is waited out, never taken for a torn file (a
 * false refusal); an odd counter left by a writer that died means refuse
 * until the next `gpumem limit` repairs it. And what /proc says of a process
 * whose main thread has ended (procinfo.c). */
#include "../testlib.h"
#include "gpumem/group.h"
#include "gpumem/procinfo.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[256];

static const struct gm_limits *fresh_group(uint64_t default_limit)
{
    static int n;
    char err[256];
    snprintf(dir, sizeof dir, "/tmp/gpumem-unit-lw-%d-%d", (int)getpid(), n++);
    struct gm_limits l;
    gm_limits_init(&l);
    l.default_limit = default_limit;
    if (gm_group_create(dir, &l, 0644, err, sizeof err) < 0)
        printf("# create: %s\n", err);
    return gm_limits_map(dir, err, sizeof err);
}

/* A child that starts a rewrite as `gpumem limit` does (flock, counter
 * odd), tells the parent through `ready`, then either finishes it after
 * `hold_ms` with the new default limit, or dies without finishing. */
static pid_t writer(int ready, int hold_ms, uint64_t new_limit, int die)
{
    pid_t p = fork();
    if (p != 0)
        return p;
    char path[300];
    snprintf(path, sizeof path, "%s/limits", dir);
    int fd = open(path, O_RDWR);
    struct gm_limits *l = mmap(NULL, sizeof *l, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (fd < 0 || l == MAP_FAILED || flock(fd, LOCK_EX) < 0)
        _exit(1);
    atomic_fetch_add(&l->seq, 1); /* odd: midway */
    if (write(ready, "x", 1) != 1 || die)
        _exit(0);
    struct timespec ts = {0, hold_ms * 1000000L};
    nanosleep(&ts, NULL);
    l->default_limit = new_limit;
    atomic_fetch_add(&l->seq, 1);
    _exit(0);
}

TEST(slow_writer_is_waited_out)
{
    const struct gm_limits *l = fresh_group(1ull << 30);
    CHECK(l);
    int fds[2];
    char c;
    CHECK(pipe(fds) == 0);
    pid_t p = writer(fds[1], 300, 2ull << 30, 0);
    CHECK(read(fds[0], &c, 1) == 1);
    /* Midway through the rewrite: the reader waits, then sees the new limit
     * (not 0, a refusal, and not the old one). */
    CHECK_EQ_U64(gm_limits_for(l, "GPU-a"), 2ull << 30);
    waitpid(p, NULL, 0);
    close(fds[0]);
    close(fds[1]);
    gm_limits_unmap(l);
    gm_group_remove(dir);
}

TEST(dead_writer_refuses_until_repaired)
{
    char err[256];
    const struct gm_limits *l = fresh_group(1ull << 30);
    CHECK(l);
    int fds[2];
    char c;
    CHECK(pipe(fds) == 0);
    pid_t p = writer(fds[1], 0, 0, 1);
    CHECK(read(fds[0], &c, 1) == 1);
    waitpid(p, NULL, 0);
    CHECK_EQ_U64(atomic_load(&l->seq) % 2, 1);
    CHECK_EQ_U64(gm_limits_for(l, "GPU-a"), 0);
    struct gm_limits copy;
    CHECK_EQ_INT(gm_limits_read(l, &copy), -1);
    /* The next `gpumem limit` repairs it. */
    struct gm_limits nl;
    gm_limits_init(&nl);
    nl.default_limit = 3ull << 30;
    CHECK_EQ_INT(gm_limits_update(dir, &nl, err, sizeof err), 0);
    CHECK_EQ_U64(gm_limits_for(l, "GPU-a"), 3ull << 30);
    close(fds[0]);
    close(fds[1]);
    gm_limits_unmap(l);
    gm_group_remove(dir);
}

/* /proc/<pid>/stat of a thread-group leader that has exited: a zombie
 * beside running threads is a live process, a zombie alone is not. */
TEST(zombie_leader_beside_threads_is_alive)
{
    char state;
    const char *beside = "123 (a b) Z 1 123 123 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 2 0 98765 0";
    const char *alone = "123 (a b) Z 1 123 123 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 98765 0";
    CHECK_EQ_U64(gm_parse_proc_stat(beside, &state), 98765);
    CHECK(state == GM_PROC_LEADER_GONE);
    CHECK_EQ_U64(gm_parse_proc_stat(alone, &state), 98765);
    CHECK(state == 'Z');
    CHECK(gm_proc_threads(getpid()) == 1);
}

TEST(no_evidence_is_not_death)
{
    /* A slot whose process could not read its start time, and a pid that
     * exists nowhere: the first is kept, the second is dead. */
    CHECK(gm_proc_alive(getpid(), GM_START_UNKNOWN));
    CHECK(gm_proc_alive(0x3ffffff0, GM_START_UNKNOWN));
    CHECK(!gm_proc_alive(0x3ffffff0, 12345));
    CHECK(!gm_proc_alive(getpid(), 0)); /* a half-written slot */
}

int main(void)
{
    RUN(slow_writer_is_waited_out);
    RUN(dead_writer_refuses_until_repaired);
    RUN(zombie_leader_beside_threads_is_alive);
    RUN(no_evidence_is_not_death);
    return test_summary();
}
