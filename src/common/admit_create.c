/* Creating a group that carries a request: admitted under the admission
 * lock, or queued until it fits (gpumem run --wait, gpumem-runtime with
 * GPUMEM_WAIT). See gpumem/admit.h. */
#include "gpumem/admit.h"
#include "gpumem/procinfo.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* STATE/.policy/admitting names the group being created while a creator
 * holds the lock. Found by the next holder, it means that creator died
 * before it was done: the half-made group is removed (if nothing uses it). */
static void pending_path(const char *state, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s/admitting", state, GM_POLICY_DIR);
}

static void repair_pending(const char *state)
{
    char path[PATH_MAX + 40], dir[PATH_MAX + 80] = "";
    pending_path(state, path, sizeof path);
    if (gm_read_small(path, dir, sizeof dir) < 0)
        return;
    dir[strcspn(dir, "\n")] = '\0';
    if (*dir) {
        char err[256];
        struct gm_usage *u = gm_usage_map(dir, err, sizeof err);
        if (u) {
            gm_group_collect(dir, u, NULL, GM_COLLECT_ANY);
            gm_usage_unmap(u);
        } else {
            gm_group_remove(dir);
        }
    }
    unlink(path);
}

static int set_pending(const char *state, const char *dir)
{
    char path[PATH_MAX + 40], pdir[PATH_MAX + 20], err[256];
    snprintf(pdir, sizeof pdir, "%s/%s", state, GM_POLICY_DIR);
    mkdir(pdir, 0755);
    pending_path(state, path, sizeof path);
    return gm_write_file_atomic(path, dir, err, sizeof err);
}

int gm_admit_begin(const char *state, char *err, size_t errlen)
{
    int fd = gm_admit_lock(state, err, errlen);
    if (fd >= 0)
        repair_pending(state);
    return fd;
}

void gm_admit_done(const char *state, int fd)
{
    if (fd == GM_ADMIT_NO_LOCK)
        return;
    char path[PATH_MAX + 40];
    pending_path(state, path, sizeof path);
    unlink(path);
    gm_admit_unlock(fd);
}

static const char *base_name(const char *dir)
{
    const char *b = strrchr(dir, '/');
    return b ? b + 1 : dir;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void journal(const struct gm_admit *a, const char *event, const char *why, double waited)
{
    char m[1600], esc[600], p[16], r[32];
    size_t o = 0;
    for (const char *c = why ? why : ""; *c && o + 7 < sizeof esc; c++) {
        if (*c == '"' || *c == '\\')
            esc[o++] = '\\';
        if ((unsigned char)*c < 0x20)
            continue;
        esc[o++] = *c;
    }
    esc[o] = '\0';
    uint64_t req = a->l->request_default;
    for (int i = 0; i < a->ngpus; i++) {
        uint64_t x = gm_request_for(a->l, a->gpus[i].uuid);
        req = x > req ? x : req;
    }
    snprintf(m, sizeof m,
             "\"event\":\"%s\",\"group\":\"%s\",\"by\":\"%s\",\"pid\":%d,\"priority\":\"%s\",\"request\":%llu,"
             "\"request_human\":\"%s\",\"waited_seconds\":%.3f,\"why\":\"%s\"",
             event, a->l->name, a->creator, (int)getpid(), gm_priority_name(a->l->priority, p, sizeof p),
             (unsigned long long)req, gm_format_size(req, r, sizeof r), waited, esc);
    gm_journal(a->state, m);
}

static int has_request(const struct gm_limits *l)
{
    if (l->request_default)
        return 1;
    for (uint32_t i = 0; i < l->nreq; i++)
        if (l->req[i].limit)
            return 1;
    return 0;
}

/* Whether entry `o` (ahead of us in the queue) wants a GPU we want. */
static int contends(const struct gm_admit *a, const struct gm_queue_entry *o)
{
    for (int i = 0; i < a->ngpus; i++)
        if (gm_request_for(a->l, a->gpus[i].uuid) && gm_queue_request(o, a->gpus[i].uuid))
            return 1;
    return 0;
}

/* 1 with why set when a start queued before `my_id` ("": everyone
 * queued) wants a GPU we want. */
static int queue_ahead(const struct gm_admit *a, const char *my_id, char *why, size_t len)
{
    struct gm_queue_entry *q;
    int n = gm_queue_list(a->state, &q);
    for (int i = 0; i < n && strcmp(q[i].id, my_id) != 0; i++)
        if (contends(a, &q[i])) {
            char p[16];
            snprintf(why, len, "behind %s (priority %s, pid %d) in the queue (gpumem queue)", q[i].name,
                     gm_priority_name(q[i].priority, p, sizeof p), (int)q[i].pid);
            free(q);
            return 1;
        }
    free(q);
    return 0;
}

/* Under the lock: 1 when our turn has come and it fits (why empty), else
 * 0 with why saying what we wait for. */
static int my_turn(const struct gm_admit *a, const char *my_id, char *why, size_t len)
{
    if (queue_ahead(a, my_id, why, len))
        return 0;
    return gm_admit_check(a->state, base_name(a->dir), a->l, a->gpus, a->ngpus, why, len);
}

int gm_admit_create(const struct gm_admit *a, char *msg, size_t msglen)
{
    char err[512] = "cannot record the admission in progress";
    if (!has_request(a->l)) {
        /* Nothing to admit: no lock, no journal (a plain start costs what
         * it did before requests existed). */
        if (gm_group_create(a->dir, a->l, a->mode, msg, msglen) < 0)
            return -1;
        return GM_ADMIT_NO_LOCK;
    }
    int fd = gm_admit_begin(a->state, msg, msglen);
    if (fd < 0)
        return -1;
    if (!a->wait) {
        /* Starts waiting for a GPU we want are ahead of us: the room they
         * wait for (and what the daemon reclaims for them) is theirs. */
        int fits = queue_ahead(a, "", msg, msglen)
                       ? 0
                       : gm_admit_check(a->state, base_name(a->dir), a->l, a->gpus, a->ngpus, msg, msglen);
        if (fits <= 0) {
            journal(a, "admission_refused", msg, 0);
            gm_admit_unlock(fd);
            return fits < 0 ? -1 : -2;
        }
    } else {
        struct gm_queue_entry e = {0};
        snprintf(e.name, sizeof e.name, "%s", a->l->name);
        e.pid = getpid();
        e.start_time = gm_proc_start_time(e.pid);
        e.priority = a->l->priority;
        e.timeout = a->timeout;
        e.request_default = a->l->request_default;
        e.nreq = a->l->nreq;
        memcpy(e.req, a->l->req, sizeof e.req);
        if (gm_queue_add(a->state, &e, msg, msglen) < 0) {
            gm_admit_unlock(fd);
            return -1;
        }
        double t0 = now_s(), nap = 0.02;
        int said = 0;
        for (;;) {
            char why[1024];
            if (my_turn(a, e.id, why, sizeof why) > 0)
                break;
            if (strncmp(why, e.why, sizeof e.why - 1) != 0) {
                snprintf(e.why, sizeof e.why, "%.*s", (int)sizeof e.why - 1, why);
                gm_queue_update(a->state, &e);
            }
            double waited = now_s() - t0;
            if (a->timeout >= 0 && waited >= a->timeout) {
                gm_queue_remove(a->state, e.id);
                snprintf(msg, msglen, "gave up after waiting %.0f s in the queue: %s", waited, why);
                journal(a, "admission_timeout", why, waited);
                gm_admit_unlock(fd);
                return -2;
            }
            if (!said++) {
                journal(a, "queued", why, 0);
                if (a->note)
                    a->note(why, a->ctx);
            }
            gm_admit_unlock(fd);
            /* Backoff to half a second: a freed request is seen within it. */
            struct timespec ts = {0, (long)(nap * 1e9)};
            nanosleep(&ts, NULL);
            nap = nap * 2 < 0.5 ? nap * 2 : 0.5;
            if ((fd = gm_admit_begin(a->state, msg, msglen)) < 0)
                return -1;
        }
        gm_queue_remove(a->state, e.id);
        snprintf(msg, msglen, "waited %.1f s", now_s() - t0);
    }
    if (set_pending(a->state, a->dir) < 0 || gm_group_create(a->dir, a->l, a->mode, err, sizeof err) < 0) {
        snprintf(msg, msglen, "%s", err);
        gm_admit_done(a->state, fd);
        return -1;
    }
    journal(a, "admitted", a->wait ? msg : "fits", 0);
    return fd;
}
