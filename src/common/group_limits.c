/* The limits file: create, map, read under the seqlock, update in place. */
#include "gpumem/group.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
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

static int set_dev(struct gm_limits *l, const char *uuid, uint64_t bytes, char *err, size_t errlen)
{
    for (uint32_t i = 0; i < l->ndev; i++)
        if (strcmp(l->dev[i].uuid, uuid) == 0) {
            snprintf(err, errlen, "device %s is given two limits", uuid);
            return -1;
        }
    if (l->ndev == GM_MAX_DEVICES) {
        snprintf(err, errlen, "too many devices (at most %d)", GM_MAX_DEVICES);
        return -1;
    }
    snprintf(l->dev[l->ndev].uuid, GM_UUID_LEN, "%s", uuid);
    l->dev[l->ndev].limit = bytes;
    l->ndev++;
    return 0;
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
    return 1;
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
    return l;
}

void gm_limits_unmap(const struct gm_limits *l)
{
    if (l)
        munmap((void *)l, sizeof *l);
}

int gm_limits_read(const struct gm_limits *l, struct gm_limits *copy)
{
    for (int tries = 0; tries < 10000; tries++) {
        uint64_t s1 = atomic_load_explicit(&l->seq, memory_order_acquire);
        if (s1 & 1) {
            sched_yield();
            continue;
        }
        memcpy(copy, (const void *)l, sizeof *copy);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&l->seq, memory_order_relaxed) == s1)
            return 0;
    }
    return -1;
}

uint64_t gm_limits_for(const struct gm_limits *l, const char *uuid)
{
    for (int tries = 0; tries < 1000; tries++) {
        uint64_t s1 = atomic_load_explicit(&l->seq, memory_order_acquire);
        if (s1 & 1)
            continue;
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
    return 0; /* a writer died mid-update: fail closed until `gpumem limit` repairs it */
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
    msync(l, sizeof *l, MS_SYNC);
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
