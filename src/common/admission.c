/* Admission's files in the state directory: the lock that makes admission
 * one at a time, the sum of requests per GPU, the queue of waiting starts,
 * and the journal of decisions (gpumem/policy.h). */
#include "gpumem/policy.h"
#include "gpumem/procinfo.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int gm_admit_lock(const char *state, char *err, size_t errlen)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", state, GM_ADMIT_LOCK);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    while (flock(fd, LOCK_EX) < 0)
        if (errno != EINTR) {
            snprintf(err, errlen, "%s: flock: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
    return fd;
}

void gm_admit_unlock(int fd)
{
    if (fd >= 0)
        close(fd); /* drops the flock */
}

static int holder_cmp(const void *a, const void *b)
{
    uint64_t x = ((const struct gm_holder *)a)->request, y = ((const struct gm_holder *)b)->request;
    return x > y ? -1 : x < y;
}

/* A copy of a group's limits by pread, not mmap: three system calls per
 * group, which is what admission over a thousand groups costs. A copy torn
 * by a `gpumem limit` in progress (odd or changed seq) is read again. */
static int limits_copy(const char *dir, struct gm_limits *l)
{
    char path[PATH_MAX + 320];
    snprintf(path, sizeof path, "%s/limits", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = -1;
    for (int tries = 0; tries < 100 && rc < 0; tries++) {
        uint64_t seq;
        if (pread(fd, l, sizeof *l, 0) != (ssize_t)sizeof *l || l->magic != GM_LIMITS_MAGIC ||
            l->version != GM_LAYOUT_VERSION || l->size != sizeof *l || l->nreq > GM_MAX_DEVICES)
            break;
        seq = atomic_load_explicit(&l->seq, memory_order_relaxed);
        uint64_t again;
        if (!(seq & 1) && pread(fd, &again, sizeof again, offsetof(struct gm_limits, seq)) == sizeof again &&
            again == seq)
            rc = 0;
    }
    close(fd);
    return rc;
}

uint64_t gm_requests_on(const char *state, const char *uuid, const char *self, struct gm_holder *h, int max,
                        int *nh)
{
    uint64_t sum = 0;
    int n = 0, kept = 0;
    DIR *d = opendir(state);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.' || gm_valid_group_name(e->d_name) < 0 || (self && strcmp(e->d_name, self) == 0))
            continue;
        char dir[PATH_MAX + 300];
        snprintf(dir, sizeof dir, "%s/%s", state, e->d_name);
        struct gm_limits l;
        /* Not a group (yet): a creator killed before its limits existed holds nothing. */
        uint64_t r = limits_copy(dir, &l) == 0 ? gm_request_for(&l, uuid) : 0;
        if (r == 0)
            continue;
        sum += r;
        n++;
        if (h && kept < max) {
            snprintf(h[kept].name, sizeof h[kept].name, "%.*s", GM_NAME_LEN - 1, e->d_name);
            h[kept].priority = l.priority;
            h[kept].request = r;
            kept++;
        } else if (h && max > 0 && r > h[max - 1].request) {
            h[max - 1] = (struct gm_holder){.priority = l.priority, .request = r};
            snprintf(h[max - 1].name, sizeof h[max - 1].name, "%.*s", GM_NAME_LEN - 1, e->d_name);
        }
        if (h && kept > 0)
            qsort(h, (size_t)kept, sizeof *h, holder_cmp);
    }
    if (d)
        closedir(d);
    if (nh)
        *nh = n;
    return sum;
}

int gm_admit_check(const char *state, const char *self, const struct gm_limits *want, const struct gm_gpu *gpus,
                   int n, char *msg, size_t msglen)
{
    for (int i = 0; i < n; i++) {
        uint64_t req = gm_request_for(want, gpus[i].uuid);
        if (req == 0)
            continue;
        struct gm_holder h[5];
        int nh = 0;
        uint64_t held = gm_requests_on(state, gpus[i].uuid, self, h, 5, &nh);
        if (gp_fits(gpus[i].total, held, req))
            continue;
        char a[32], b[32], c[32];
        uint64_t free_ = held < gpus[i].total ? gpus[i].total - held : 0;
        int o = snprintf(msg, msglen,
                         "request %s does not fit on %s: it has %s, of which %s is not requested by anyone; "
                         "%d group%s hold%s requests there",
                         gm_format_size(req, a, sizeof a), gpus[i].uuid, gm_format_size(gpus[i].total, b, sizeof b),
                         gm_format_size(free_, c, sizeof c), nh, nh == 1 ? "" : "s", nh == 1 ? "s" : "");
        for (int k = 0; k < nh && k < 5 && o > 0 && (size_t)o < msglen; k++) {
            char p[16];
            o += snprintf(msg + o, msglen - (size_t)o, "%s%s %s (%s)", k ? ", " : ": ", h[k].name,
                          gm_format_size(h[k].request, a, sizeof a), gm_priority_name(h[k].priority, p, sizeof p));
        }
        if (nh > 5 && o > 0 && (size_t)o < msglen)
            snprintf(msg + o, msglen - (size_t)o, ", and %d more", nh - 5);
        return 0;
    }
    return 1;
}

/* ---- the queue ---------------------------------------------------------- */

static void queue_dir(const char *state, char *buf, size_t len) { snprintf(buf, len, "%s/%s", state, GM_QUEUE_DIR); }

int gm_write_file_atomic(const char *path, const char *text, char *err, size_t errlen)
{
    char tmp[PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        return -1;
    }
    size_t n = strlen(text);
    int ok = write(fd, text, n) == (ssize_t)n;
    close(fd);
    if (!ok || rename(tmp, path) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

static void entry_text(const struct gm_queue_entry *e, char *buf, size_t len)
{
    int o = snprintf(buf, len,
                     "name=%s\npid=%d\nstart=%llu\npriority=%d\narrival=%llu\ntimeout=%.3f\nrequest=%llu\n", e->name,
                     (int)e->pid, (unsigned long long)e->start_time, (int)e->priority,
                     (unsigned long long)e->arrival_ns, e->timeout, (unsigned long long)e->request_default);
    for (uint32_t i = 0; i < e->nreq && i < GM_MAX_DEVICES && o > 0 && (size_t)o < len; i++)
        o += snprintf(buf + o, len - (size_t)o, "request.%s=%llu\n", e->req[i].uuid,
                      (unsigned long long)e->req[i].limit);
    if (o > 0 && (size_t)o < len)
        snprintf(buf + o, len - (size_t)o, "why=%s\n", e->why);
}

int gm_queue_add(const char *state, struct gm_queue_entry *e, char *err, size_t errlen)
{
    char dir[PATH_MAX], path[PATH_MAX + 80], text[4096];
    queue_dir(state, dir, sizeof dir);
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    e->arrival_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    snprintf(e->id, sizeof e->id, "%020llu-%d", (unsigned long long)e->arrival_ns, (int)e->pid);
    snprintf(path, sizeof path, "%s/%s", dir, e->id);
    entry_text(e, text, sizeof text);
    return gm_write_file_atomic(path, text, err, errlen);
}

int gm_queue_update(const char *state, const struct gm_queue_entry *e)
{
    char dir[PATH_MAX], path[PATH_MAX + 80], text[4096], err[256];
    queue_dir(state, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/%s", dir, e->id);
    entry_text(e, text, sizeof text);
    return gm_write_file_atomic(path, text, err, sizeof err);
}

void gm_queue_remove(const char *state, const char *id)
{
    char dir[PATH_MAX], path[PATH_MAX + 80];
    queue_dir(state, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/%s", dir, id);
    unlink(path);
}

static int parse_u64(const char *s, uint64_t *v)
{
    if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 20)
        return -1;
    errno = 0;
    unsigned long long x = strtoull(s, NULL, 10);
    if (errno)
        return -1;
    *v = x;
    return 0;
}

ssize_t gm_read_small(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t k = read(fd, buf, len - 1);
    close(fd);
    buf[k > 0 ? k : 0] = '\0';
    return k;
}

int gm_kv_each(const char *text, int (*fn)(const char *key, const char *value, void *ctx), void *ctx)
{
    for (const char *p = text; *p;) {
        size_t n = strcspn(p, "\n");
        char line[512];
        if (n >= sizeof line)
            return -1;
        memcpy(line, p, n);
        line[n] = '\0';
        p += n + (p[n] == '\n');
        char *eq = strchr(line, '=');
        if (!eq)
            return -1;
        *eq = '\0';
        int rc = fn(line, eq + 1, ctx);
        if (rc)
            return rc;
    }
    return 0;
}

struct entry_parse {
    struct gm_queue_entry *e;
    int have;
};

static int entry_kv(const char *k, const char *v, void *ctx)
{
    struct entry_parse *ep = ctx;
    struct gm_queue_entry *e = ep->e;
    uint64_t u;
    if (strcmp(k, "name") == 0) {
        if (gm_valid_group_name(v) < 0)
            return -1;
        snprintf(e->name, sizeof e->name, "%s", v);
        ep->have |= 1;
    } else if (strcmp(k, "pid") == 0) {
        if (parse_u64(v, &u) < 0 || u == 0 || u > INT32_MAX)
            return -1;
        e->pid = (pid_t)u;
        ep->have |= 2;
    } else if (strcmp(k, "start") == 0) {
        if (parse_u64(v, &u) < 0)
            return -1;
        e->start_time = u;
    } else if (strcmp(k, "priority") == 0) {
        char err[128];
        if (gm_parse_priority(v, &e->priority, err, sizeof err) < 0)
            return -1;
    } else if (strcmp(k, "arrival") == 0) {
        if (parse_u64(v, &u) < 0)
            return -1;
        e->arrival_ns = u;
    } else if (strcmp(k, "timeout") == 0) {
        char *end;
        double t = strtod(v, &end);
        if (end == v || *end || !(t >= -1 && t <= 30 * 86400.0))
            return -1;
        e->timeout = t;
    } else if (strcmp(k, "request") == 0) {
        if (parse_u64(v, &u) < 0)
            return -1;
        e->request_default = u;
    } else if (strncmp(k, "request.", 8) == 0) {
        if (e->nreq == GM_MAX_DEVICES || strlen(k + 8) >= GM_UUID_LEN || parse_u64(v, &u) < 0)
            return -1;
        snprintf(e->req[e->nreq].uuid, GM_UUID_LEN, "%s", k + 8);
        e->req[e->nreq++].limit = u;
    } else if (strcmp(k, "why") == 0) {
        snprintf(e->why, sizeof e->why, "%s", v);
    } /* unknown keys: from a newer gpumem, ignored */
    return 0;
}

int gm_queue_parse(const char *text, struct gm_queue_entry *e)
{
    memset(e, 0, sizeof *e);
    e->timeout = -1;
    struct entry_parse ep = {e, 0};
    if (gm_kv_each(text, entry_kv, &ep) != 0)
        return -1;
    return ep.have == 3 ? 0 : -1;
}

uint64_t gm_queue_request(const struct gm_queue_entry *e, const char *uuid)
{
    for (uint32_t i = 0; i < e->nreq && i < GM_MAX_DEVICES; i++)
        if (strncmp(e->req[i].uuid, uuid, GM_UUID_LEN) == 0)
            return e->req[i].limit;
    return e->request_default;
}

static int entry_cmp(const void *pa, const void *pb)
{
    const struct gm_queue_entry *a = pa, *b = pb;
    struct gp_waiter x = {a->priority, a->arrival_ns, (uint64_t)a->pid}, y = {b->priority, b->arrival_ns, (uint64_t)b->pid};
    return gp_queue_cmp(&x, &y);
}

int gm_queue_list(const char *state, struct gm_queue_entry **out)
{
    char dir[PATH_MAX];
    queue_dir(state, dir, sizeof dir);
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || strstr(de->d_name, ".tmp") || strlen(de->d_name) >= sizeof(*out)->id)
            continue;
        char path[PATH_MAX + 300], text[4096];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (gm_read_small(path, text, sizeof text) < 0)
            continue;
        struct gm_queue_entry e;
        if (gm_queue_parse(text, &e) < 0 || !gm_proc_alive(e.pid, e.start_time)) {
            unlink(path); /* its waiter is gone (or the file is garbage): it waits for nothing */
            continue;
        }
        snprintf(e.id, sizeof e.id, "%s", de->d_name);
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            struct gm_queue_entry *m = realloc(*out, (size_t)cap * sizeof *m);
            if (!m)
                break;
            *out = m;
        }
        (*out)[n++] = e;
    }
    closedir(d);
    if (n > 1)
        qsort(*out, (size_t)n, sizeof **out, entry_cmp);
    return n;
}

void gm_journal(const char *state, const char *json_members)
{
    char dir[PATH_MAX], path[PATH_MAX + 40], line[2048];
    snprintf(dir, sizeof dir, "%s/%s", state, GM_POLICY_DIR);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/%s", state, GM_JOURNAL);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int n = snprintf(line, sizeof line, "{\"time\":%lld.%03ld,%s}\n", (long long)ts.tv_sec, ts.tv_nsec / 1000000,
                     json_members);
    if (n < 0 || (size_t)n >= sizeof line)
        return;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    ssize_t w = write(fd, line, (size_t)n);
    (void)w;
    close(fd);
}
