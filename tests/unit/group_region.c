/* The group files: creation, validation (corrupt/truncated/foreign files are
 * refused), the limits seqlock, slot claim and reclaim of dead processes. */
#include "../testlib.h"
#include "gpumem/group.h"
#include "gpumem/procinfo.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[256];

static void fresh_group(uint64_t default_limit)
{
    static int n;
    char err[256];
    snprintf(dir, sizeof dir, "/tmp/gpumem-unit-%d-%d", (int)getpid(), n++);
    struct gm_limits l;
    gm_limits_init(&l);
    l.default_limit = default_limit;
    snprintf(l.name, sizeof l.name, "unit");
    if (gm_group_create(dir, &l, 0644, err, sizeof err) < 0)
        printf("# create: %s\n", err);
}

TEST(create_map_and_limits)
{
    char err[256];
    fresh_group(4ull << 30);
    const struct gm_limits *l = gm_limits_map(dir, err, sizeof err);
    CHECK(l != NULL);
    CHECK_EQ_U64(gm_limits_for(l, "GPU-anything"), 4ull << 30);
    struct gm_usage *u = gm_usage_map(dir, err, sizeof err);
    CHECK(u != NULL);
    CHECK(gm_group_create(dir, l, 0644, err, sizeof err) < 0); /* exists */
    gm_usage_unmap(u);
    gm_limits_unmap(l);
    CHECK_EQ_INT(gm_group_remove(dir), 0);
}

TEST(limit_update_is_seen_by_mappers)
{
    char err[256];
    fresh_group(4ull << 30);
    const struct gm_limits *l = gm_limits_map(dir, err, sizeof err);
    CHECK(l);
    struct gm_limits nl;
    CHECK_EQ_INT(gm_limits_read(l, &nl), 0);
    nl.default_limit = 1ull << 30;
    snprintf(nl.dev[0].uuid, GM_UUID_LEN, "GPU-x");
    nl.dev[0].limit = 2ull << 30;
    nl.ndev = 1;
    CHECK_EQ_INT(gm_limits_update(dir, &nl, err, sizeof err), 0);
    CHECK_EQ_U64(gm_limits_for(l, "GPU-y"), 1ull << 30);
    CHECK_EQ_U64(gm_limits_for(l, "GPU-x"), 2ull << 30);
    CHECK_EQ_U64(atomic_load(&l->seq) % 2, 0);
    gm_limits_unmap(l);
    gm_group_remove(dir);
}

static void corrupt(const char *file, off_t off, const char *bytes, size_t n, int truncate_to)
{
    char p[300];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    int fd = open(p, O_RDWR);
    if (truncate_to >= 0)
        (void)!ftruncate(fd, truncate_to);
    else
        (void)!pwrite(fd, bytes, n, off);
    close(fd);
}

TEST(corrupt_or_foreign_files_are_refused)
{
    char err[256];
    fresh_group(1ull << 30);
    corrupt("usage", 0, "XXXXXXXX", 8, -1);
    CHECK(gm_usage_map(dir, err, sizeof err) == NULL);
    CHECK(strstr(err, "not a gpumem usage region") != NULL);
    gm_group_remove(dir);

    fresh_group(1ull << 30);
    corrupt("usage", 0, NULL, 0, 4096);
    CHECK(gm_usage_map(dir, err, sizeof err) == NULL);
    CHECK(strstr(err, "truncated") != NULL);
    gm_group_remove(dir);

    fresh_group(1ull << 30);
    uint32_t v = 99;
    corrupt("limits", 8, (const char *)&v, sizeof v, -1);
    CHECK(gm_limits_map(dir, err, sizeof err) == NULL);
    CHECK(strstr(err, "layout version") != NULL);
    gm_group_remove(dir);
}

/* A child claims a slot and charges 123 MiB to it, then (with `and_lock`)
 * takes the admin lock, and only then writes one byte to the pipe and waits
 * to be killed: reading that byte, the parent knows the child holds all of
 * it, however slow the machine (no sleep, nothing timed). Returns the child's
 * pid, or -1 if it died or failed before it got there. */
static pid_t child_holding(struct gm_usage *u, int d, int and_lock)
{
    int p[2];
    if (pipe(p) < 0)
        return -1;
    pid_t child = fork();
    if (child == 0) {
        close(p[0]);
        struct gm_proc_slot *s = gm_slot_claim(u, getpid(), gm_proc_start_time(getpid()), "child");
        if (!s)
            _exit(1);
        atomic_store(&s->lanes_hw, 1); /* as the shim does before a lane's first add */
        atomic_fetch_add(&s->cell[GM_CELL_INDEX(0, d)].charged, 123 << 20);
        if (and_lock && gm_admin_lock(u) != 0)
            _exit(1);
        if (write(p[1], "h", 1) != 1)
            _exit(1);
        pause(); /* killed while holding bytes (and the lock) */
        _exit(0);
    }
    close(p[1]);
    char c;
    ssize_t n = child > 0 ? read(p[0], &c, 1) : -1; /* 0: it exited first */
    close(p[0]);
    if (n != 1) {
        if (child > 0) {
            kill(child, SIGKILL);
            waitpid(child, NULL, 0);
        }
        return -1;
    }
    return child;
}

TEST(slots_of_dead_processes_are_reclaimed)
{
    char err[256];
    fresh_group(1ull << 30);
    struct gm_usage *u = gm_usage_map(dir, err, sizeof err);
    CHECK(u);
    int d = gm_usage_device(u, "GPU-test");
    CHECK_EQ_INT(d, 0);
    CHECK_EQ_INT(gm_usage_device(u, "GPU-test"), 0);
    pid_t child = child_holding(u, d, 0);
    CHECK(child > 0);
    CHECK_EQ_U64(gm_usage_total(u, d), 123 << 20);
    CHECK_EQ_INT(gm_reclaim_dead(u), 0); /* alive: nothing to reclaim */
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    CHECK_EQ_INT(gm_reclaim_dead(u), 1);
    CHECK_EQ_U64(gm_usage_total(u, d), 0);
    gm_usage_unmap(u);
    gm_group_remove(dir);
}

static void lock_hung(int sig)
{
    static const char msg[] = "FAIL admin_lock_survives_a_killed_holder: gm_admin_lock still blocked after 60 s\n";
    (void)sig;
    if (write(1, msg, sizeof msg - 1) < 0) {}
    _exit(1);
}

/* The holder is known to hold the lock when it is killed (the pipe), so the
 * next locker really meets EOWNERDEAD: it must get the lock, not hang, and
 * its repair must reclaim the dead holder's slot and bytes. */
TEST(admin_lock_survives_a_killed_holder)
{
    char err[256];
    fresh_group(1ull << 30);
    struct gm_usage *u = gm_usage_map(dir, err, sizeof err);
    CHECK(u);
    int d = gm_usage_device(u, "GPU-test");
    CHECK_EQ_INT(d, 0);
    pid_t child = child_holding(u, d, 1);
    CHECK(child > 0);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    CHECK_EQ_U64(gm_usage_total(u, d), 123 << 20); /* nobody has reclaimed it yet */
    signal(SIGALRM, lock_hung); /* a hang guard, not a timing assertion */
    alarm(60);
    int rc = gm_admin_lock(u);
    alarm(0);
    CHECK_EQ_INT(rc, 0); /* EOWNERDEAD is repaired, not a hang */
    CHECK_EQ_U64(gm_usage_total(u, d), 0); /* the repair reclaimed the dead holder */
    gm_admin_unlock(u);
    struct gm_proc_slot *s = gm_slot_claim(u, getpid(), gm_proc_start_time(getpid()), "me");
    CHECK(s != NULL);
    gm_usage_unmap(u);
    gm_group_remove(dir);
}

TEST(pid_reuse_is_detected_by_start_time)
{
    CHECK(gm_proc_alive(getpid(), gm_proc_start_time(getpid())));
    CHECK(!gm_proc_alive(getpid(), gm_proc_start_time(getpid()) + 1));
    CHECK(!gm_proc_alive(0, 0));
}

TEST(group_names)
{
    CHECK_EQ_INT(gm_valid_group_name("web-1"), 0);
    CHECK_EQ_INT(gm_valid_group_name("a.b_c"), 0);
    CHECK(gm_valid_group_name("") != 0);
    CHECK(gm_valid_group_name("../etc") != 0);
    CHECK(gm_valid_group_name("-x") != 0);
    CHECK(gm_valid_group_name("a/b") != 0);
}

int main(void)
{
    RUN(create_map_and_limits);
    RUN(limit_update_is_seen_by_mappers);
    RUN(corrupt_or_foreign_files_are_refused);
    RUN(slots_of_dead_processes_are_reclaimed);
    RUN(admin_lock_survives_a_killed_holder);
    RUN(pid_reuse_is_detected_by_start_time);
    RUN(group_names);
    return test_summary();
}
