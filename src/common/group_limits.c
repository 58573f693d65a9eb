/* The limits file: create, map, read under the seqlock, update in place. */
#include "gpumem/group.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *gm_state_dir(char *buf, size_t len)
{
    const char *env = getenv("GPUMEM_STATE_DIR");
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (env && *env)
        snprintf(buf, len, "%s", env);
    else if (geteuid() == 0)
        snprintf(buf, len, "/run/gpumem");
    else if (xdg && *xdg)
        snprintf(buf, len, "%s/gpumem", xdg);
    else
        snprintf(buf, len, "/tmp/gpumem-%u", (unsigned)geteuid());
    return buf;
}

int gm_valid_group_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= GM_NAME_LEN)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
            return -1;
    }
    return 0;
}

void gm_limits_init(struct gm_limits *l)
{
    memset(l, 0, sizeof *l);
    l->magic = GM_LIMITS_MAGIC;
    l->version = GM_LAYOUT_VERSION;
    l->size = sizeof *l;
    l->default_limit = GM_UNLIMITED;
}

int gm_dev_entry_add(struct gm_limit_dev *arr, uint32_t *n, const char *uuid, uint64_t bytes, const char *what,
                     char *err, size_t errlen)
{
    for (uint32_t i = 0; i < *n; i++)
        if (strcmp(arr[i].uuid, uuid) == 0) {
            snprintf(err, errlen, "device %s is given two %s", uuid, what);
            return -1;
        }
    if (*n == GM_MAX_DEVICES) {
        snprintf(err, errlen, "too many devices (at most %d)", GM_MAX_DEVICES);
        return -1;
    }
    snprintf(arr[*n].uuid, GM_UUID_LEN, "%s", uuid);
    arr[*n].limit = bytes;
    (*n)++;
    return 0;
}

static int set_dev(struct gm_limits *l, const char *uuid, uint64_t bytes, char *err, size_t errlen)
{
    return gm_dev_entry_add(l->dev, &l->ndev, uuid, bytes, "limits", err, errlen);
}

int gm_limits_from_spec(struct gm_limits *l, const struct gm_limit_spec *spec,
                        const char *(*index_uuid)(int index, void *ctx), void *ctx, char *err, size_t errlen)
{
    for (int i = 0; i < spec->n; i++) {
        const struct gm_limit_term *t = &spec->term[i];
        if (t->kind == GM_TERM_ALL) {
            l->default_limit = t->bytes;
        } else if (t->kind == GM_TERM_UUID) {
            if (set_dev(l, t->uuid, t->bytes, err, errlen) < 0)
                return -1;
        } else {
            const char *uuid = index_uuid ? index_uuid(t->index, ctx) : NULL;
            if (!uuid) {
                snprintf(err, errlen, "device %d: no such GPU", t->index);
                return -1;
            }
            if (set_dev(l, uuid, t->bytes, err, errlen) < 0)
                return -1;
        }
    }
    return 0;
}

static void *map_file(const char *dir, const char *file, int writable, size_t want, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || (size_t)st.st_size != want) {
        snprintf(err, errlen, "%s: size %lld, expected %zu (corrupt, truncated, or another gpumem version)", path,
                 (long long)st.st_size, want);
        close(fd);
        return NULL;
    }
    void *p = mmap(NULL, want, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        snprintf(err, errlen, "%s: mmap: %s", path, strerror(errno));
        return NULL;
    }
    return p;
}

/* What readers walk without further checks: the device entries in use, each
 * UUID a string within its field. Writers only ever store such entries, so
 * a reader racing `gpumem limit` sees valid ones too. */
static int limits_entries_valid(const struct gm_limits *l)
{
    if (l->ndev > GM_MAX_DEVICES)
        return 0;
    for (uint32_t i = 0; i < l->ndev; i++)
        if (!memchr(l->dev[i].uuid, '\0', GM_UUID_LEN))
            return 0;
    if (l->nreq > GM_MAX_DEVICES)
        return 0;
    for (uint32_t i = 0; i < l->nreq; i++)
        if (!memchr(l->req[i].uuid, '\0', GM_UUID_LEN))
            return 0;
    return 1;
}

uint64_t gm_request_for(const struct gm_limits *copy, const char *uuid)
{
    uint32_t n = copy->nreq < GM_MAX_DEVICES ? copy->nreq : GM_MAX_DEVICES;
    for (uint32_t i = 0; i < n; i++)
        if (strncmp(copy->req[i].uuid, uuid, GM_UUID_LEN) == 0)
            return copy->req[i].limit;
    return copy->request_default;
}

/* Where each mapped limits file lives, so that a reader that finds a
 * rewrite in progress can ask whether its writer is still alive (it holds
 * the file's flock). A few entries: a process maps one group, the CLI and
 * the daemon one at a time. */
#define MAPPED_MAX 8
static struct mapped {
    const struct gm_limits *map;
    dev_t dev;
    ino_t ino;
    char path[512];
} mapped[MAPPED_MAX];
static pthread_mutex_t mapped_lock = PTHREAD_MUTEX_INITIALIZER;

static void mapped_add(const struct gm_limits *l, const char *dir)
{
    char path[sizeof mapped[0].path];
    struct stat st;
    int n = snprintf(path, sizeof path, "%s/limits", dir);
    if (n < 0 || (size_t)n >= sizeof path || stat(path, &st) != 0)
        return; /* not remembered: a stuck rewrite is then waited out for a while, then refused */
    pthread_mutex_lock(&mapped_lock);
    for (int i = 0; i < MAPPED_MAX; i++)
        if (!mapped[i].map) {
            mapped[i].map = l;
            mapped[i].dev = st.st_dev;
            mapped[i].ino = st.st_ino;
            memcpy(mapped[i].path, path, (size_t)n + 1);
            break;
        }
    pthread_mutex_unlock(&mapped_lock);
}

static void mapped_remove(const struct gm_limits *l)
{
    pthread_mutex_lock(&mapped_lock);
    for (int i = 0; i < MAPPED_MAX; i++)
        if (mapped[i].map == l)
            mapped[i].map = NULL;
    pthread_mutex_unlock(&mapped_lock);
}

enum writer { WRITER_ALIVE, WRITER_DEAD, WRITER_UNKNOWN };

/* Is anyone rewriting the limits file mapped at l? Writers hold its flock
 * (limits_write), which the kernel drops when they die. */
static enum writer writer_state(const struct gm_limits *l)
{
    char path[sizeof mapped[0].path] = "";
    dev_t dev = 0;
    ino_t ino = 0;
    pthread_mutex_lock(&mapped_lock);
    for (int i = 0; i < MAPPED_MAX; i++)
        if (mapped[i].map == l) {
            memcpy(path, mapped[i].path, sizeof path);
            dev = mapped[i].dev;
            ino = mapped[i].ino;
        }
    pthread_mutex_unlock(&mapped_lock);
    if (!path[0])
        return WRITER_UNKNOWN;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    enum writer w = WRITER_UNKNOWN;
    if (fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino) {
        if (flock(fd, LOCK_SH | LOCK_NB) == 0)
            w = WRITER_DEAD; /* (unlocked by the close) */
        else if (errno == EWOULDBLOCK)
            w = WRITER_ALIVE;
    }
    if (fd >= 0)
        close(fd);
    return w;
}

/* An even sequence number of l, waiting out a writer mid-update: -1 only
 * when the odd number was left by a writer that died (nobody holds the
 * lock), or when a rewrite goes on for so long (LIMITS_WAIT_NS; a writer
 * stopped by a signal) that the limit cannot be trusted. Never a guess
 * from a merely slow writer. */
#define LIMITS_WAIT_NS (10ull * 1000000000ull)
static int limits_seq(const struct gm_limits *l, uint64_t *seq)
{
    uint64_t waited = 0;
    for (int tries = 0;; tries++) {
        uint64_t s = atomic_load_explicit(&l->seq, memory_order_acquire);
        if (!(s & 1)) {
            *seq = s;
            return 0;
        }
        if (tries < 100) { /* a live writer is done in microseconds */
            sched_yield();
            continue;
        }
        enum writer w = writer_state(l);
        if (w == WRITER_DEAD && atomic_load(&l->seq) == s)
            return -1;
        if (waited >= LIMITS_WAIT_NS)
            return -1;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
        waited += 1000000;
    }
}

const struct gm_limits *gm_limits_map(const char *dir, char *err, size_t errlen)
{
    struct gm_limits *l = map_file(dir, "limits", 0, sizeof *l, err, errlen);
    if (l && (l->magic != GM_LIMITS_MAGIC || l->version != GM_LAYOUT_VERSION || l->size != sizeof *l ||
              !limits_entries_valid(l))) {
        snprintf(err, errlen, "%s/limits: not a gpumem limits file of layout version %d", dir, GM_LAYOUT_VERSION);
        munmap(l, sizeof *l);
        return NULL;
    }
    if (l)
        mapped_add(l, dir);
    return l;
}

void gm_limits_unmap(const struct gm_limits *l)
{
    if (l) {
        mapped_remove(l);
        munmap((void *)l, sizeof *l);
    }
}

int gm_limits_read(const struct gm_limits *l, struct gm_limits *copy)
{
    for (;;) {
        uint64_t s1;
        if (limits_seq(l, &s1) < 0)
            return -1;
        memcpy(copy, (const void *)l, sizeof *copy);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&l->seq, memory_order_relaxed) == s1)
            return 0;
    }
}

uint64_t gm_limits_for(const struct gm_limits *l, const char *uuid)
{
    for (;;) {
        uint64_t s1;
        if (limits_seq(l, &s1) < 0)
            return 0; /* a writer died mid-update: fail closed until `gpumem limit` repairs it */
        uint64_t v = l->default_limit;
        uint32_t n = l->ndev < GM_MAX_DEVICES ? l->ndev : GM_MAX_DEVICES;
        for (uint32_t i = 0; i < n; i++)
            if (strncmp(l->dev[i].uuid, uuid, GM_UUID_LEN) == 0) {
                v = l->dev[i].limit;
                break;
            }
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&l->seq, memory_order_relaxed) == s1)
            return v;
    }
}

static int limits_write(const char *dir, const struct gm_limits *nl, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/limits", dir);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX) < 0) { /* one writer at a time; released by the kernel if we die */
        snprintf(err, errlen, "%s: flock: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    struct gm_limits *l = mmap(NULL, sizeof *l, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (l == MAP_FAILED) {
        snprintf(err, errlen, "%s: mmap: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    /* A writer that died mid-update left seq odd: we are the repair. */
    uint64_t seq = atomic_load(&l->seq) | 1;
    atomic_store(&l->seq, seq);
    atomic_thread_fence(memory_order_seq_cst);
    size_t off = offsetof(struct gm_limits, default_limit);
    memcpy((char *)l + off, (const char *)nl + off, sizeof *l - off);
    atomic_store(&l->seq, seq + 1);
    /* No msync: every reader maps the same page cache; writing it back to
     * the disk would only wait (milliseconds off tmpfs) for nothing. */
    munmap(l, sizeof *l);
    close(fd);
    return 0;
}

int gm_limits_update(const char *dir, const struct gm_limits *nl, char *err, size_t errlen)
{
    /* Mapped first: a limit the running processes would not notice is not
     * written at all. */
    struct gm_usage *u = gm_usage_map(dir, err, errlen);
    if (!u)
        return -1;
    int rc = limits_write(dir, nl, err, errlen);
    /* The new seq is visible before any cap is cleared: a lane that sets
     * its cap after this reads the seq again (account.c lane_publish). */
    if (rc == 0)
        gm_usage_clear_caps(u);
    gm_usage_unmap(u);
    return rc;
}
