/* /proc readers used by the shim (slot claim, reclaim) and the CLI. They use
 * raw open/read into stack buffers: the shim calls them inside other
 * people's processes, where stdio and malloc are to be avoided.
 *
 * Host-side readers of many groups (gpumem ps, the daemon's collect) read
 * within a pass (gm_proc_cache_begin/end): the same few processes fill many
 * slots, so each pid's files are read once per pass, through one open /proc
 * directory, and /proc is scanned at most once for processes of other pid
 * namespaces. The pass cache is the only thing here that allocates; the
 * shim never opens one. */
#include "gpumem/procinfo.h"
#include "gpumem/group.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* path is absolute, or relative to dirfd (an open /proc). */
static ssize_t read_small(int dirfd, const char *path, char *buf, size_t len)
{
    int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n;
    do
        n = read(fd, buf, len - 1);
    while (n < 0 && errno == EINTR);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return n;
}

/* "/proc/<pid>/<file>", or "<pid>/<file>" relative to an open /proc. */
static void proc_path(char *buf, size_t len, int dirfd, pid_t pid, const char *file)
{
    snprintf(buf, len, "%s%d/%s", dirfd == AT_FDCWD ? "/proc/" : "", (int)pid, file);
}

uint64_t gm_parse_proc_stat(const char *buf, char *state)
{
    /* comm (field 2) may hold spaces and parentheses: fields resume after the
     * last ')'. Field 3 is the state, 20 the number of threads, 22 the start
     * time. */
    *state = '?';
    const char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ')
        return 0;
    char st = p[2];
    p++;
    uint64_t threads = 0;
    for (int field = 2; field < 22 && *p; p++) {
        if (*p == ' ' && ++field == 20)
            for (threads = 0; p[1] >= '0' && p[1] <= '9'; p++)
                threads = threads * 10 + (uint64_t)(p[1] - '0');
    }
    uint64_t v = 0;
    while (*p >= '0' && *p <= '9')
        v = v * 10 + (uint64_t)(*p++ - '0');
    /* The letter is the leader's. A zombie leader still counts itself among
     * the threads; beside other threads, the process lives on. */
    *state = st == 'Z' && threads > 1 ? GM_PROC_LEADER_GONE : st;
    return v;
}

/* /proc/<pid>/<file> into buf, NUL-terminated; 0 when it cannot be read. */
static int read_proc(int dirfd, pid_t pid, const char *file, char *buf, size_t len)
{
    char path[48];
    if (pid <= 0)
        return 0;
    proc_path(path, sizeof path, dirfd, pid, file);
    return read_small(dirfd, path, buf, len) > 0;
}

static uint64_t read_stat(int dirfd, pid_t pid, char *state)
{
    char buf[1024];
    *state = '?';
    return read_proc(dirfd, pid, "stat", buf, sizeof buf) ? gm_parse_proc_stat(buf, state) : 0;
}

/* read_stat, telling a process that is gone (1: no such /proc entry, or one
 * that does not parse) from /proc that could not be read (0: out of file
 * descriptors, no /proc mounted...), which proves nothing. */
static int read_stat_known(pid_t pid, char *state, uint64_t *start)
{
    errno = 0;
    *start = read_stat(AT_FDCWD, pid, state);
    return *start != 0 || errno == ENOENT || errno == ESRCH || errno == 0;
}

pid_t gm_parse_nspid(const char *status)
{
    const char *p = strstr(status, "\nNSpid:");
    if (!p)
        return 0;
    p += 7;
    pid_t last = 0;
    while (*p && *p != '\n') {
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p < '0' || *p > '9')
            break;
        pid_t v = 0;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (v > (INT32_MAX - (*p - '0')) / 10)
                return 0; /* no pid is that large: not a line to trust */
            v = v * 10 + (*p - '0');
        }
        last = v;
    }
    return last;
}

static pid_t read_inner_pid(int dirfd, pid_t host)
{
    char buf[2048];
    return read_proc(dirfd, host, "status", buf, sizeof buf) ? gm_parse_nspid(buf) : 0;
}

/* ---- the pass cache ------------------------------------------------- */

enum { PC_STAT = 1, PC_INNER = 2 };

struct pc_ent {
    int32_t pid;   /* 0 = empty */
    int32_t inner; /* with PC_INNER: gm_proc_inner_pid */
    uint64_t start; /* with PC_STAT: gm_proc_stat (0 = gone) */
    char state;
    unsigned char have;
};

/* A live process found by the one scan of /proc. */
struct pc_proc {
    uint64_t start;
    int32_t pid;
};

struct pcache {
    int depth;
    int procfd;
    uint32_t mask, used; /* open addressing on pid, power-of-two size */
    struct pc_ent *tab;
    int scanned;         /* 1: all[] holds every live process, by start time */
    struct pc_proc *all;
    size_t nall, capall;
};

static _Thread_local struct pcache *pc;

static struct pc_ent *pc_slot(struct pc_ent *tab, uint32_t mask, pid_t pid)
{
    uint32_t h = ((uint32_t)pid * 2654435761u) & mask;
    while (tab[h].pid && tab[h].pid != pid)
        h = (h + 1) & mask;
    return &tab[h];
}

/* The entry for pid (added empty if new); NULL when memory ran out, and the
 * caller then reads /proc itself. */
static struct pc_ent *pc_get(pid_t pid)
{
    if ((pc->used + 1) * 2 > pc->mask + 1) {
        uint32_t mask = pc->mask * 2 + 1;
        struct pc_ent *tab = calloc((size_t)mask + 1, sizeof *tab);
        if (!tab)
            return NULL;
        for (uint32_t i = 0; i <= pc->mask; i++)
            if (pc->tab[i].pid)
                *pc_slot(tab, mask, pc->tab[i].pid) = pc->tab[i];
        free(pc->tab);
        pc->tab = tab;
        pc->mask = mask;
    }
    struct pc_ent *e = pc_slot(pc->tab, pc->mask, pid);
    if (!e->pid) {
        e->pid = pid;
        pc->used++;
    }
    return e;
}

int gm_proc_cache_begin(void)
{
    if (pc) {
        pc->depth++;
        return 0;
    }
    struct pcache *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    c->mask = 1023;
    c->tab = calloc((size_t)c->mask + 1, sizeof *c->tab);
    c->procfd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (!c->tab || c->procfd < 0) {
        if (c->procfd >= 0)
            close(c->procfd);
        free(c->tab);
        free(c);
        return -1;
    }
    c->depth = 1;
    pc = c;
    return 0;
}

void gm_proc_cache_end(void)
{
    if (!pc || --pc->depth > 0)
        return;
    close(pc->procfd);
    free(pc->tab);
    free(pc->all);
    free(pc);
    pc = NULL;
}

/* ---- readers -------------------------------------------------------- */

uint64_t gm_proc_stat(pid_t pid, char *state)
{
    struct pc_ent *e = pc && pid > 0 ? pc_get(pid) : NULL;
    if (!e)
        return read_stat(AT_FDCWD, pid, state);
    if (!(e->have & PC_STAT)) {
        e->start = read_stat(pc->procfd, pid, &e->state);
        e->have |= PC_STAT;
    }
    *state = e->state;
    return e->start;
}

unsigned gm_proc_threads(pid_t pid)
{
    char buf[1024];
    if (!read_proc(AT_FDCWD, pid, "stat", buf, sizeof buf))
        return 0;
    const char *p = strrchr(buf, ')');
    for (int field = 2; p && *p && field < 20; p++)
        if (*p == ' ')
            field++;
    unsigned n = 0;
    while (p && *p >= '0' && *p <= '9' && n < 1u << 24)
        n = n * 10 + (unsigned)(*p++ - '0');
    return n;
}

uint64_t gm_proc_start_time(pid_t pid)
{
    char state;
    return gm_proc_stat(pid, &state);
}

void gm_proc_comm(pid_t pid, char *buf, size_t len)
{
    char path[48];
    proc_path(path, sizeof path, AT_FDCWD, pid, "comm");
    buf[0] = '\0';
    if (read_small(AT_FDCWD, path, buf, len) > 0)
        buf[strcspn(buf, "\n")] = '\0';
}

pid_t gm_proc_inner_pid(pid_t host)
{
    struct pc_ent *e = pc && host > 0 ? pc_get(host) : NULL;
    if (!e)
        return read_inner_pid(AT_FDCWD, host);
    if (!(e->have & PC_INNER)) {
        e->inner = read_inner_pid(pc->procfd, host);
        e->have |= PC_INNER;
    }
    return e->inner;
}

/* A zombie has exited, and none of its threads runs any more (a zombie
 * leader beside running threads reads GM_PROC_LEADER_GONE): the driver has
 * taken its memory back. */
static int live_state(char state) { return state != 'Z' && state != 'X'; }

/* Calls fn for every process in /proc until it returns nonzero, which is
 * returned (0 when none did; -1 when /proc cannot be read). getdents64 into
 * a stack buffer: no malloc, as above. */
static int for_each_proc(int (*fn)(pid_t h, void *arg), void *arg)
{
    int fd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char buf[4096];
    int r = 0;
    long n;
    while (!r && (n = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
        for (long off = 0; off < n && !r;) {
            /* struct linux_dirent64: ino (8), off (8), reclen (2), type (1), name */
            unsigned short reclen;
            memcpy(&reclen, buf + off + 16, sizeof reclen);
            const char *name = buf + off + 19;
            off += reclen;
            pid_t h = 0;
            const char *c = name;
            for (; *c >= '0' && *c <= '9'; c++)
                h = h * 10 + (*c - '0');
            if (!*c && h > 0)
                r = fn(h, arg);
        }
    }
    close(fd);
    return r;
}

struct ns_want {
    pid_t pid;
    uint64_t start;
};

static int ns_match_now(pid_t h, void *arg)
{
    const struct ns_want *w = arg;
    char state;
    return h != w->pid && read_stat(AT_FDCWD, h, &state) == w->start && live_state(state) &&
           read_inner_pid(AT_FDCWD, h) == w->pid;
}

/* A slot written inside a container holds the pid as the container sees it;
 * a reader on the host (gpumem ps, the daemon) must not take it for dead.
 * Looks for a live process with that start time whose innermost pid is
 * `pid` (start times are clock ticks since boot, the same in every pid
 * namespace). Two processes with the same inner pid started in the same
 * tick keep a dead slot alive a little longer: the safe direction. */
static int alive_in_other_ns(pid_t pid, uint64_t start_time)
{
    struct ns_want w = {pid, start_time};
    return for_each_proc(ns_match_now, &w) != 0; /* -1: /proc unreadable, proves nothing */
}

static int pc_add_proc(pid_t h, void *arg)
{
    char state;
    uint64_t st = gm_proc_stat(h, &state);
    if (st == 0 || !live_state(state))
        return 0;
    if (pc->nall == pc->capall) {
        size_t cap = pc->capall ? pc->capall * 2 : 1024;
        struct pc_proc *p = realloc(pc->all, cap * sizeof *p);
        if (!p)
            return -1;
        pc->all = p;
        pc->capall = cap;
    }
    pc->all[pc->nall++] = (struct pc_proc){st, h};
    return 0;
}

static int by_start(const void *a, const void *b)
{
    const struct pc_proc *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* alive_in_other_ns from the pass cache: /proc is read once per pass, then
 * only the processes that started in the same tick are looked at. */
static int alive_in_other_ns_cached(pid_t pid, uint64_t start_time)
{
    if (!pc->scanned) {
        pc->nall = 0;
        if (for_each_proc(pc_add_proc, NULL) != 0)
            return alive_in_other_ns(pid, start_time);
        qsort(pc->all, pc->nall, sizeof *pc->all, by_start);
        pc->scanned = 1;
    }
    size_t lo = 0, hi = pc->nall;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (pc->all[mid].start < start_time)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < pc->nall && pc->all[lo].start == start_time; lo++)
        if (pc->all[lo].pid != pid && gm_proc_inner_pid(pc->all[lo].pid) == pid)
            return 1;
    return 0;
}

/* Within a pass (and `cached`), from the pass cache; otherwise from /proc now. */
static uint64_t stat_of(pid_t pid, char *state, int cached)
{
    return cached ? gm_proc_stat(pid, state) : read_stat(AT_FDCWD, pid, state);
}

/* Dead only on evidence: a process that holds memory must never be
 * reclaimed. A slot whose process could not read its start time
 * (GM_START_UNKNOWN), or /proc that cannot be read now, proves nothing. A
 * start time of 0 is a slot caught mid-claim or mid-clear by its holder's
 * death: no process has it. */
static int alive(pid_t pid, uint64_t start_time, pid_t host_hint, int cached)
{
    if (pid <= 0 || start_time == 0)
        return 0;
    if (start_time == GM_START_UNKNOWN)
        return 1;
    char state;
    uint64_t st;
    if (cached) {
        st = gm_proc_stat(pid, &state);
    } else if (!read_stat_known(pid, &state, &st)) {
        return 1;
    }
    if (st == start_time)
        return live_state(state);
    /* A host pid a reader found before: checked like any candidate. */
    if (host_hint > 0 && host_hint != pid && stat_of(host_hint, &state, cached) == start_time &&
        live_state(state) && (cached ? gm_proc_inner_pid(host_hint) : read_inner_pid(AT_FDCWD, host_hint)) == pid)
        return 1;
    return cached && pc ? alive_in_other_ns_cached(pid, start_time) : alive_in_other_ns(pid, start_time);
}

int gm_proc_alive(pid_t pid, uint64_t start_time) { return alive(pid, start_time, 0, 0); }

int gm_proc_seems_alive(pid_t pid, uint64_t start_time, pid_t host_hint)
{
    return alive(pid, start_time, host_hint, 1);
}
