/* The usage region: creation, mapping, slots, reclaim of dead processes.
 *
 * Invariants that make it survive SIGKILL at any instruction:
 *  - a slot's counters are written only by its owner, with atomics;
 *  - slots never move, so no one holds a stale pointer;
 *  - claim and reclaim run under a robust mutex, so a claim can never race
 *    a reclaim of the same slot, and a holder's death is reported to the
 *    next locker, which re-runs reclaim (idempotent) before going on;
 *  - a slot whose pid is set but whose start time does not match the live
 *    process (including a claim that died half-way) counts as dead. */
#include "gpumem/group.h"
#include "gpumem/procinfo.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* dir/.NAME.tmp, created for writing with exactly `mode` (not the umask's). */
static int open_tmp(const char *dir, const char *name, mode_t mode, char *tmp, size_t tmplen, char *err,
                    size_t errlen)
{
    snprintf(tmp, tmplen, "%s/.%s.tmp", dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0 || fchmod(fd, mode) < 0) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        return -1;
    }
    return fd;
}

/* Closes fd and renames dir/.NAME.tmp into place, so a reader never maps a
 * half-written file. No fsync: a group describes live processes, and none
 * outlives a crash of the machine (the state directory is on tmpfs where
 * it matters, /run; fsync there is wasted work, elsewhere it cost ms). */
static int publish(int fd, const char *tmp, const char *dir, const char *name, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (close(fd) < 0 || rename(tmp, path) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t len, off_t off)
{
    const char *p = buf;
    while (len) {
        ssize_t n = pwrite(fd, p, len, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

/* The usage region: its full size allocated by the filesystem (fallocate:
 * no zeros written from here, and a full tmpfs refuses the group now
 * rather than raising SIGBUS later in an application whose shim touches a
 * slot), then its header written. Everything after the header reads as
 * zeros, which is what a fresh region holds. Where the filesystem cannot
 * fallocate, the file is extended sparse. */
static int create_usage(const char *dir, mode_t mode, char *err, size_t errlen)
{
    /* Static: the region is large. Only its header (the first page) is
     * ever touched here; the rest stays untouched zero pages. */
    static struct gm_usage u;
    const size_t head = offsetof(struct gm_usage, dev);
    memset(&u, 0, head);
    u.magic = GM_USAGE_MAGIC;
    u.version = GM_LAYOUT_VERSION;
    u.size = sizeof u;
    u.max_devices = GM_MAX_DEVICES;
    u.max_procs = GM_MAX_PROCS;
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&u.admin, &a);
    pthread_mutexattr_destroy(&a);

    char tmp[4096];
    int fd = open_tmp(dir, "usage", mode, tmp, sizeof tmp, err, errlen);
    if (fd < 0)
        return -1;
    int rc = fallocate(fd, 0, 0, (off_t)sizeof u) < 0 ? errno : 0;
    if (rc == EOPNOTSUPP || rc == ENOSYS) /* no fallocate on this filesystem */
        rc = ftruncate(fd, (off_t)sizeof u) < 0 ? errno : 0;
    if (rc != 0 || write_full(fd, &u, head, 0) < 0) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(rc ? rc : errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    return publish(fd, tmp, dir, "usage", err, errlen);
}

/* dir/NAME holding data, put in place whole. */
static int create_file(const char *dir, const char *name, const void *data, size_t len, mode_t mode, char *err,
                       size_t errlen)
{
    char tmp[4096];
    int fd = open_tmp(dir, name, mode, tmp, sizeof tmp, err, errlen);
    if (fd < 0)
        return -1;
    if (write_full(fd, data, len, 0) < 0) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    return publish(fd, tmp, dir, name, err, errlen);
}

int gm_group_create(const char *dir, const struct gm_limits *l, mode_t usage_mode, char *err, size_t errlen)
{
    if (mkdir(dir, 0755) < 0) {
        snprintf(err, errlen, errno == EEXIST ? "group %s already exists" : "%s: %s", dir, strerror(errno));
        return -1;
    }
    /* usage first: a process that finds `limits` can rely on `usage`. */
    if (create_usage(dir, usage_mode, err, errlen) < 0 || create_file(dir, "limits", l, sizeof *l, 0644, err, errlen) < 0) {
        gm_group_remove(dir);
        return -1;
    }
    return 0;
}

int gm_group_remove(const char *dir)
{
    /* The two files every group has and the marker of a `gpumem run` group,
     * then the directory: that is all for a group of `gpumem run`. Only
     * when the directory is not yet empty, the rest of gpumem's own files: gpumem-runtime's (ld.so.preload,
     * container, origin: the device plugin's name of a group it renamed, driver-limits: the NVIDIA driver
     * limits it set), gpumem-k8s's (k8s: made by Allocate)
     * and what a creation that died left; anything else in it stays, and so does the directory. */
    static const char *files[] = {"limits",     "usage",      GM_RUN_MARKER,        "ld.so.preload",
                                  "container",  ".limits.tmp", ".usage.tmp",         ".ld.so.preload.tmp",
                                  ".container.tmp", "events",  "info",               "." GM_RUN_MARKER ".tmp",
                                  "k8s",        ".k8s.tmp",    "origin",             "origin.tmp",
                                  "driver-limits",  ".driver-limits.tmp"};
    char path[4096];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        if (i == 3) {
            if (rmdir(dir) == 0)
                return 0;
            if (errno == ENOENT)
                return -1;
        }
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    return rmdir(dir);
}

struct gm_usage *gm_usage_map(const char *dir, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/usage", dir);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || (size_t)st.st_size != sizeof(struct gm_usage)) {
        snprintf(err, errlen, "%s: size %lld, expected %zu (corrupt, truncated, or another gpumem version)", path,
                 (long long)st.st_size, sizeof(struct gm_usage));
        close(fd);
        return NULL;
    }
    struct gm_usage *u = mmap(NULL, sizeof *u, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (u == MAP_FAILED) {
        snprintf(err, errlen, "%s: mmap: %s", path, strerror(errno));
        return NULL;
    }
    if (u->magic != GM_USAGE_MAGIC || u->version != GM_LAYOUT_VERSION || u->size != sizeof *u ||
        u->max_devices != GM_MAX_DEVICES || u->max_procs != GM_MAX_PROCS ||
        atomic_load(&u->slots_hw) > GM_MAX_PROCS || atomic_load(&u->ndev) > GM_MAX_DEVICES) {
        snprintf(err, errlen, "%s: not a gpumem usage region of layout version %d (corrupt or another version)", path,
                 GM_LAYOUT_VERSION);
        munmap(u, sizeof *u);
        return NULL;
    }
    return u;
}

void gm_usage_unmap(struct gm_usage *u)
{
    if (u)
        munmap(u, sizeof *u);
}

void gm_usage_clear_caps(struct gm_usage *u)
{
    uint32_t hw = atomic_load(&u->slots_hw);
    for (uint32_t i = 0; i < hw && i < GM_MAX_PROCS; i++)
        for (int c = 0; c < GM_LANES * GM_MAX_DEVICES; c++)
        {
            /* A cap of GM_CAP_GIVEN_BACK already sends its thread to the
             * group (and keeps its reservation out of the sum). */
            uint64_t cap = atomic_load(&u->slot[i].cell[c].cap);
            while (cap > GM_CAP_GIVEN_BACK && !atomic_compare_exchange_weak(&u->slot[i].cell[c].cap, &cap, 0))
                ;
        }
}

static void reclaim_locked(struct gm_usage *u, int *count);

int gm_admin_lock(struct gm_usage *u)
{
    int rc = pthread_mutex_lock(&u->admin);
    if (rc == EOWNERDEAD) {
        /* The holder died inside a claim or reclaim. Both are repaired by a
         * reclaim pass: a half-claimed slot has no matching start time. */
        int n = 0;
        reclaim_locked(u, &n);
        pthread_mutex_consistent(&u->admin);
        rc = 0;
    }
    return rc;
}

void gm_admin_unlock(struct gm_usage *u) { pthread_mutex_unlock(&u->admin); }

int gm_usage_device(struct gm_usage *u, const char *uuid)
{
    uint32_t n = atomic_load(&u->ndev);
    for (uint32_t i = 0; i < n; i++)
        if (strncmp(u->dev[i].uuid, uuid, GM_UUID_LEN) == 0)
            return (int)i;
    if (gm_admin_lock(u) != 0)
        return -1;
    int found = -1;
    n = atomic_load(&u->ndev);
    for (uint32_t i = 0; i < n && found < 0; i++)
        if (strncmp(u->dev[i].uuid, uuid, GM_UUID_LEN) == 0)
            found = (int)i;
    if (found < 0 && n < GM_MAX_DEVICES) {
        snprintf(u->dev[n].uuid, GM_UUID_LEN, "%s", uuid);
        atomic_store(&u->ndev, n + 1); /* publish after the uuid is written */
        found = (int)n;
    }
    gm_admin_unlock(u);
    return found;
}

static void clear_slot(struct gm_proc_slot *s)
{
    for (int d = 0; d < GM_MAX_DEVICES; d++)
        atomic_store(&s->peak[d], 0);
    for (int i = 0; i < GM_LANES * GM_MAX_DEVICES; i++) {
        struct gm_cell *c = &s->cell[i];
        atomic_store(&c->charged, 0);
        atomic_store(&c->cap, 0);
        atomic_store(&c->reserved, 0);
        atomic_store(&c->trim_below, 0);
        atomic_store(&c->allocs, 0);
        atomic_store(&c->frees, 0);
        atomic_store(&c->swapped, 0);
    }
    for (int l = 0; l < GM_LANES; l++)
        atomic_store(&s->lane_owned[l], 0);
    atomic_store(&s->lanes_hw, 0);
    atomic_store(&s->refusals, 0);
    atomic_store(&s->last_refused_size, 0);
    atomic_store(&s->last_activity_ns, 0);
    s->host_pid = 0;
    s->table_addr = 0;
    s->table_layout = 0;
    s->start_time = 0;
    s->comm[0] = '\0';
    atomic_store(&s->pid, 0); /* last: the slot is free only once it is clean */
}

static void reclaim_locked(struct gm_usage *u, int *count)
{
    uint32_t hw = atomic_load(&u->slots_hw);
    for (uint32_t i = 0; i < hw && i < GM_MAX_PROCS; i++) {
        struct gm_proc_slot *s = &u->slot[i];
        int32_t pid = atomic_load(&s->pid);
        if (pid == 0 || gm_proc_alive(pid, s->start_time))
            continue;
        clear_slot(s);
        (*count)++;
    }
}

/* A first look without the mutex: does any slot's process seem to have
 * gone? Usually none has, and then the region is not written at all (no
 * lock, no page dirtied, no file time updated). Anything that seems dead,
 * a slot mid-claim or one a dead holder left half-cleared included, sends
 * the caller to the mutex, where reclaim_locked decides from /proc afresh. */
static int any_seems_dead(const struct gm_usage *u)
{
    uint32_t hw = atomic_load(&u->slots_hw);
    for (uint32_t i = 0; i < hw && i < GM_MAX_PROCS; i++) {
        const struct gm_proc_slot *s = &u->slot[i];
        int32_t pid = atomic_load(&s->pid);
        if (pid == 0)
            continue;
        /* Plain fields written under the mutex (claim: before the pid). */
        uint64_t start = __atomic_load_n(&s->start_time, __ATOMIC_RELAXED);
        int32_t hint = __atomic_load_n(&s->host_pid, __ATOMIC_RELAXED);
        if (!gm_proc_seems_alive(pid, start, hint))
            return 1;
    }
    return 0;
}

int gm_reclaim_dead(struct gm_usage *u)
{
    int n = 0;
    if (!any_seems_dead(u) || gm_admin_lock(u) != 0)
        return 0;
    reclaim_locked(u, &n);
    gm_admin_unlock(u);
    return n;
}

struct gm_proc_slot *gm_slot_claim(struct gm_usage *u, pid_t pid, uint64_t start_time, const char *comm)
{
    if (gm_admin_lock(u) != 0)
        return NULL;
    struct gm_proc_slot *got = NULL;
    /* A removed group's files are gone: a slot here would be seen by no
     * one (gm_group_collect decides removal under this mutex). */
    for (int pass = 0; pass < 2 && !got && !atomic_load(&u->removed); pass++) {
        if (pass == 1) {
            int n = 0;
            reclaim_locked(u, &n);
        }
        for (uint32_t i = 0; i < GM_MAX_PROCS; i++) {
            struct gm_proc_slot *s = &u->slot[i];
            if (atomic_load(&s->pid) != 0)
                continue;
            clear_slot(s); /* a straggler thread of the last owner may have left counts */
            s->start_time = start_time;
            snprintf(s->comm, sizeof s->comm, "%s", comm ? comm : "");
            /* The high-water mark first: a claimer that dies right after
             * storing its pid leaves a slot that reclaim (which looks
             * below slots_hw) still finds. The shim's one-process fast
             * path (account.h) needs it raised before this process's
             * first charge, which this also gives. */
            if (i + 1 > atomic_load(&u->slots_hw))
                atomic_store(&u->slots_hw, i + 1);
            atomic_store(&s->pid, pid);
            got = s;
            break;
        }
    }
    gm_admin_unlock(u);
    return got;
}

void gm_slot_release(struct gm_usage *u, struct gm_proc_slot *s)
{
    if (gm_admin_lock(u) != 0)
        return;
    clear_slot(s);
    gm_admin_unlock(u);
}

/* ---- lifetime --------------------------------------------------------- */

int gm_run_marker_write(const char *dir, pid_t pid, uint64_t start, char *err, size_t errlen)
{
    char text[64];
    int n = snprintf(text, sizeof text, "pid=%d\nstart=%llu\n", (int)pid, (unsigned long long)start);
    return create_file(dir, GM_RUN_MARKER, text, (size_t)n, 0644, err, errlen);
}

int gm_run_marker_read(const char *dir, pid_t *pid, uint64_t *start)
{
    char path[4096], text[128];
    snprintf(path, sizeof path, "%s/" GM_RUN_MARKER, dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0)
        return 0;
    text[n] = '\0';
    int p = 0;
    unsigned long long st = 0;
    if (sscanf(text, "pid=%d\nstart=%llu", &p, &st) != 2 || p <= 0)
        return 0;
    *pid = p;
    *start = st;
    return 1;
}

static int may_go(const char *dir, struct gm_usage *u, int how)
{
    if (how & GM_COLLECT_ANY)
        return 1;
    pid_t pid;
    uint64_t start;
    if (!gm_run_marker_read(dir, &pid, &start))
        return 0; /* a container's group, or --keep: not ours to remove */
    return (how & GM_COLLECT_CREATOR) || atomic_load(&u->creator_left) || !gm_proc_alive(pid, start);
}

int gm_group_collect(const char *dir, struct gm_usage *u, struct gm_proc_slot *mine, int how)
{
    if (gm_admin_lock(u) != 0)
        return -1;
    if (mine)
        clear_slot(mine);
    int n = 0, removed = 0;
    reclaim_locked(u, &n);
    /* Only a caller that may unlink the files marks the group removed. */
    int can = access(dir, W_OK | X_OK) == 0;
    if (can && (atomic_load(&u->removed) || (gm_usage_live_slots(u) == 0 && may_go(dir, u, how)))) {
        /* First the flag, then the files: a process that mapped them
         * before now finds the flag at its claim, under this mutex. */
        atomic_store(&u->removed, 1);
        (void)gm_group_remove(dir); /* the files go even if rmdir finds strangers */
        removed = 1;
    } else if (how & GM_COLLECT_CREATOR) {
        atomic_store(&u->creator_left, 1);
    }
    gm_admin_unlock(u);
    return removed;
}
