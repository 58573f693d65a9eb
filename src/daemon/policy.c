/* The daemon's side of the policy: reclaim for groups in need, and the
 * decision log (policy.h; docs/policy.md). */
#include "policy.h"
#include "daemon.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gpumem/admit.h"
#include "gpumem/hostutil.h"

static struct pl_config cfg = {.grace = 10, .hook = NULL, .pressure_age = 2};

void pl_configure(const struct pl_config *c) { cfg = *c; }

static double unix_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- counters for /metrics ---------------------------------------------- */

enum { C_ADMITTED, C_REFUSED, C_QUEUED, C_TIMEOUT, C_PREEMPT, C_KILL, C_DONE, C_IMPOSSIBLE, C_N };
static const char *const counter_event[C_N] = {"admitted", "admission_refused", "queued", "admission_timeout",
                                               "preempt", "preempt_kill", "reclaim_done", "preempt_impossible"};
static _Atomic uint64_t counters[C_N];

static void count_event(const char *event)
{
    for (int i = 0; i < C_N; i++)
        if (strcmp(event, counter_event[i]) == 0)
            atomic_fetch_add(&counters[i], 1);
}

static void log_event(const char *level, const char *event, const char *fields)
{
    count_event(event);
    dm_log(level, event, fields);
}

/* ---- reclaim records ---------------------------------------------------- */

static void record_path(const char *state, const char *victim, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s/reclaim-%s", state, GM_POLICY_DIR, victim);
}

static int record_save(const char *state, const struct pl_reclaim *r)
{
    char path[PATH_MAX + 100], text[1024], dir[PATH_MAX + 20], err[256];
    snprintf(dir, sizeof dir, "%s/%s", state, GM_POLICY_DIR);
    mkdir(dir, 0755);
    record_path(state, r->victim, path, sizeof path);
    snprintf(text, sizeof text, "victim=%s\nfor=%s\nreason=%s\naction=%s\nuuid=%s\nbytes=%llu\nnotified=%.3f\n"
                                "kill_at=%.3f\nkilled=%d\n",
             r->victim, r->for_group, r->reason, r->action, r->uuid, (unsigned long long)r->bytes, r->notified,
             r->kill_at, r->killed);
    return gm_write_file_atomic(path, text, err, sizeof err);
}

static void record_remove(const char *state, const char *victim)
{
    char path[PATH_MAX + 100];
    record_path(state, victim, path, sizeof path);
    unlink(path);
}

struct record_parse {
    struct pl_reclaim *r;
    int have;
};

static int record_kv(const char *k, const char *v, void *ctx)
{
    struct record_parse *rp = ctx;
    struct pl_reclaim *r = rp->r;
    if (strcmp(k, "victim") == 0) {
        if (gm_valid_group_name(v) < 0)
            return -1;
        snprintf(r->victim, sizeof r->victim, "%s", v);
        rp->have |= 1;
    } else if (strcmp(k, "for") == 0) {
        snprintf(r->for_group, sizeof r->for_group, "%.*s", GM_NAME_LEN, v);
    } else if (strcmp(k, "reason") == 0) {
        snprintf(r->reason, sizeof r->reason, "%.*s", (int)sizeof r->reason - 1, v);
    } else if (strcmp(k, "action") == 0) {
        snprintf(r->action, sizeof r->action, "%.*s", (int)sizeof r->action - 1, v);
    } else if (strcmp(k, "uuid") == 0) {
        snprintf(r->uuid, sizeof r->uuid, "%.*s", GM_UUID_LEN - 1, v);
    } else if (strcmp(k, "bytes") == 0) {
        r->bytes = strtoull(v, NULL, 10);
    } else if (strcmp(k, "notified") == 0) {
        r->notified = strtod(v, NULL);
    } else if (strcmp(k, "kill_at") == 0) {
        r->kill_at = strtod(v, NULL);
        rp->have |= 2;
    } else if (strcmp(k, "killed") == 0) {
        r->killed = atoi(v);
    }
    return 0;
}

int pl_reclaim_parse(const char *text, struct pl_reclaim *r)
{
    memset(r, 0, sizeof *r);
    struct record_parse rp = {r, 0};
    if (gm_kv_each(text, record_kv, &rp) != 0)
        return -1;
    return rp.have == 3 ? 0 : -1;
}

int pl_reclaims_load(const char *state, struct pl_reclaim **out)
{
    char dir[PATH_MAX + 20];
    snprintf(dir, sizeof dir, "%s/%s", state, GM_POLICY_DIR);
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "reclaim-", 8) != 0 || strstr(e->d_name, ".tmp"))
            continue;
        char path[PATH_MAX + 300], text[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct pl_reclaim r;
        if (gm_read_small(path, text, sizeof text) < 0 || pl_reclaim_parse(text, &r) < 0)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 8;
            struct pl_reclaim *m = realloc(*out, (size_t)cap * sizeof *m);
            if (!m)
                break;
            *out = m;
        }
        (*out)[n++] = r;
    }
    closedir(d);
    return n;
}

/* ---- the groups as the policy sees them --------------------------------- */

struct pl_grp {
    char name[GM_NAME_LEN + 1];         /* directory name */
    struct gm_limits l;
    int ndev;
    char uuid[GM_MAX_DEVICES][GM_UUID_LEN];
    uint64_t used[GM_MAX_DEVICES];
    uint64_t want_bytes, want_ns;
    uint32_t want_dev;
    int live;                           /* processes holding slots */
};

struct pl_view {
    struct pl_grp *g;
    size_t n, cap;
};

static void read_one(const char *name, const char *dir, void *ctx)
{
    struct pl_view *v = ctx;
    char err[320];
    const struct gm_limits *ml = gm_limits_map(dir, err, sizeof err);
    if (!ml)
        return;
    struct pl_grp x;
    memset(&x, 0, sizeof x);
    int ok = gm_limits_read(ml, &x.l) == 0;
    gm_limits_unmap(ml);
    struct gm_usage *u = ok ? gm_usage_map(dir, err, sizeof err) : NULL;
    if (!u)
        return;
    snprintf(x.name, sizeof x.name, "%s", name);
    uint32_t nd = atomic_load(&u->ndev);
    x.ndev = nd < GM_MAX_DEVICES ? (int)nd : GM_MAX_DEVICES;
    for (int d = 0; d < x.ndev; d++) {
        snprintf(x.uuid[d], GM_UUID_LEN, "%.*s", GM_UUID_LEN - 1, u->dev[d].uuid);
        x.used[d] = gm_usage_total(u, d);
    }
    x.want_bytes = atomic_load(&u->want_bytes);
    x.want_ns = atomic_load(&u->want_ns);
    x.want_dev = atomic_load(&u->want_dev);
    x.live = gm_usage_live_slots(u);
    gm_usage_unmap(u);
    if (v->n == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 64;
        struct pl_grp *m = realloc(v->g, cap * sizeof *m);
        if (!m)
            return;
        v->g = m;
        v->cap = cap;
    }
    v->g[v->n++] = x;
}

static uint64_t grp_used(const struct pl_grp *x, const char *uuid)
{
    for (int d = 0; d < x->ndev; d++)
        if (strcmp(x->uuid[d], uuid) == 0)
            return x->used[d];
    return 0;
}

static struct pl_grp *grp_find(struct pl_view *v, const char *name)
{
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->g[i].name, name) == 0)
            return &v->g[i];
    return NULL;
}

/* ---- acting on a victim ------------------------------------------------- */

/* How a victim gives memory back. The one place this is chosen: host
 * spill, once it exists, may answer "spill" here for a victim whose group
 * has a swap allowance (l->swap) instead of killing it. */
static const char *pl_reclaim_action(const struct pl_grp *victim)
{
    (void)victim;
    return "kill";
}

/* Host pids of a group's processes, from the snapshot, as "1 2 3". */
static int victim_pids(const struct dm_snapshot *s, const char *group, pid_t *pids, int max)
{
    int n = 0;
    for (size_t i = 0; i < s->nprocs && n < max; i++)
        if (strcmp(s->procs[i].group, group) == 0 && s->procs[i].host_pid > 0)
            pids[n++] = s->procs[i].host_pid;
    return n;
}

static pid_t hook_pids[64];
static int nhooks;

/* Reaps hooks that finished (they run while the daemon goes on). */
static void reap_hooks(void)
{
    for (int i = 0; i < nhooks;) {
        if (waitpid(hook_pids[i], NULL, WNOHANG) == hook_pids[i]) {
            hook_pids[i] = hook_pids[--nhooks];
            continue;
        }
        i++;
    }
}

extern char **environ;

static void notify(const struct dm_snapshot *s, const struct pl_reclaim *r)
{
    pid_t pids[GM_MAX_PROCS];
    int n = victim_pids(s, r->victim, pids, GM_MAX_PROCS);
    if (!cfg.hook) {
        for (int i = 0; i < n; i++)
            kill(pids[i], SIGTERM);
        return;
    }
    /* The hook gets the decision in its environment: the daemon's own
     * plus these, built for posix_spawn (setenv would race the HTTP
     * thread's getenv). */
    char list[GM_MAX_PROCS * 12] = "";
    size_t o = 0;
    for (int i = 0; i < n && o < sizeof list - 12; i++)
        o += (size_t)snprintf(list + o, sizeof list - o, "%s%d", i ? " " : "", (int)pids[i]);
    char vars[7][GM_MAX_PROCS * 12 + 32];
    snprintf(vars[0], sizeof vars[0], "GPUMEM_VICTIM=%s", r->victim);
    snprintf(vars[1], sizeof vars[1], "GPUMEM_VICTIM_PIDS=%s", list);
    snprintf(vars[2], sizeof vars[2], "GPUMEM_FOR=%s", r->for_group);
    snprintf(vars[3], sizeof vars[3], "GPUMEM_REASON=%s", r->reason);
    snprintf(vars[4], sizeof vars[4], "GPUMEM_BYTES=%llu", (unsigned long long)r->bytes);
    snprintf(vars[5], sizeof vars[5], "GPUMEM_UUID=%s", r->uuid);
    snprintf(vars[6], sizeof vars[6], "GPUMEM_GRACE=%g", cfg.grace);
    size_t ne = 0;
    while (environ[ne])
        ne++;
    char **envp = calloc(ne + 8, sizeof *envp);
    if (!envp)
        return;
    size_t k = 0;
    for (size_t i = 0; i < ne; i++)
        if (strncmp(environ[i], "GPUMEM_VICTIM", 13) != 0 && strncmp(environ[i], "GPUMEM_FOR=", 11) != 0)
            envp[k++] = environ[i];
    for (int i = 0; i < 7; i++)
        envp[k++] = vars[i];
    char *argv[] = {"/bin/sh", "-c", (char *)cfg.hook, NULL};
    pid_t pid;
    if (posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, envp) == 0 && nhooks < 64)
        hook_pids[nhooks++] = pid;
    free(envp);
}

static void reclaim_fields(struct gbuf *f, const struct pl_reclaim *r)
{
    gbuf_puts(f, ",\"victim\":");
    gbuf_json(f, r->victim);
    gbuf_puts(f, ",\"for\":");
    gbuf_json(f, r->for_group);
    gbuf_puts(f, ",\"reason\":");
    gbuf_json(f, r->reason);
    gbuf_puts(f, ",\"action\":");
    gbuf_json(f, r->action);
    gbuf_puts(f, ",\"uuid\":");
    gbuf_json(f, r->uuid);
    gbuf_printf(f, ",\"bytes\":%llu", (unsigned long long)r->bytes);
}

/* Decided: recorded first (a daemon killed now still knows it), then the
 * victim is told. */
static void preempt(const struct dm_snapshot *s, const char *state, const struct pl_grp *victim,
                    const char *for_group, enum gp_reason why, const char *uuid, uint64_t bytes, uint64_t need,
                    const char *need_what)
{
    struct pl_reclaim r;
    memset(&r, 0, sizeof r);
    snprintf(r.victim, sizeof r.victim, "%s", victim->name);
    snprintf(r.for_group, sizeof r.for_group, "%.*s", GM_NAME_LEN, for_group);
    snprintf(r.reason, sizeof r.reason, "%s", why == GP_BORROWED ? "borrowed" : "lower_priority");
    snprintf(r.action, sizeof r.action, "%s", pl_reclaim_action(victim));
    snprintf(r.uuid, sizeof r.uuid, "%s", uuid);
    r.bytes = bytes;
    r.notified = unix_now();
    r.kill_at = r.notified + cfg.grace;
    if (record_save(state, &r) < 0) {
        struct gbuf f = {0};
        reclaim_fields(&f, &r);
        gbuf_puts(&f, ",\"message\":\"cannot write the reclaim record: not acted on\"");
        dm_log("error", "preempt_failed", f.p);
        gbuf_free(&f);
        return;
    }
    notify(s, &r);
    struct gbuf f = {0};
    char p[16];
    reclaim_fields(&f, &r);
    gbuf_printf(&f, ",\"victim_priority\":\"%s\",\"victim_request\":%llu,\"victim_used\":%llu,\"need\":%llu,"
                    "\"need_what\":\"%s\",\"notice\":\"%s\",\"grace_seconds\":%g",
                gm_priority_name(victim->l.priority, p, sizeof p),
                (unsigned long long)gm_request_for(&victim->l, uuid), (unsigned long long)grp_used(victim, uuid),
                (unsigned long long)need, need_what, cfg.hook ? "hook" : "SIGTERM", cfg.grace);
    log_event("warn", "preempt", f.p);
    gbuf_free(&f);
}

/* Moves each reclaim on: done when its victim is gone or holds nothing;
 * SIGKILL once its grace is over. */
static void advance(const struct dm_snapshot *s, const char *state, struct pl_view *v)
{
    struct pl_reclaim *r;
    int n = pl_reclaims_load(state, &r);
    double now = unix_now();
    for (int i = 0; i < n; i++) {
        const struct pl_grp *x = grp_find(v, r[i].victim);
        pid_t pids[GM_MAX_PROCS];
        int np = x ? victim_pids(s, r[i].victim, pids, GM_MAX_PROCS) : 0;
        if (!x || x->live == 0 || (np == 0 && grp_used(x, r[i].uuid) == 0)) {
            struct gbuf f = {0};
            reclaim_fields(&f, &r[i]);
            gbuf_printf(&f, ",\"seconds\":%.3f,\"killed\":%s", now - r[i].notified, r[i].killed ? "true" : "false");
            log_event("info", "reclaim_done", f.p);
            gbuf_free(&f);
            record_remove(state, r[i].victim);
            continue;
        }
        if (now < r[i].kill_at)
            continue;
        for (int k = 0; k < np; k++)
            kill(pids[k], SIGKILL);
        if (!r[i].killed) {
            r[i].killed = 1;
            record_save(state, &r[i]);
            struct gbuf f = {0};
            reclaim_fields(&f, &r[i]);
            gbuf_printf(&f, ",\"processes\":%d,\"grace_seconds\":%.3f", np, r[i].kill_at - r[i].notified);
            log_event("warn", "preempt_kill", f.p);
            gbuf_free(&f);
        }
    }
    free(r);
}

static int busy(const char *state, const char *name)
{
    char path[PATH_MAX + 100];
    record_path(state, name, path, sizeof path);
    return access(path, F_OK) == 0;
}

/* What reclaims in progress on uuid will still free (by `m`), and of those
 * for `for_group` alone. */
static uint64_t in_flight(const char *state, struct pl_view *v, const char *uuid, const char *for_group,
                          enum gp_measure m)
{
    struct pl_reclaim *r;
    int n = pl_reclaims_load(state, &r);
    uint64_t sum = 0;
    for (int i = 0; i < n; i++) {
        const struct pl_grp *x = grp_find(v, r[i].victim);
        if (!x || strcmp(r[i].uuid, uuid) != 0 || (for_group && strcmp(r[i].for_group, for_group) != 0))
            continue;
        sum += m == GP_FREES_USED ? grp_used(x, uuid) : gm_request_for(&x->l, uuid);
    }
    free(r);
    return sum;
}

/* Victims for `need` bytes on uuid for a group (index self, or -1 for a
 * queued start) of priority prio; acts on them. */
static void decide(const struct dm_snapshot *s, const char *state, struct pl_view *v, const char *uuid, int self,
                   const char *for_group, int32_t prio, uint64_t need, enum gp_measure m, const char *need_what)
{
    struct gp_group *gg = calloc(v->n ? v->n : 1, sizeof *gg);
    struct gp_victim *out = calloc(v->n ? v->n : 1, sizeof *out);
    if (!gg || !out) {
        free(gg);
        free(out);
        return;
    }
    for (size_t i = 0; i < v->n; i++) {
        const struct pl_grp *x = &v->g[i];
        gg[i] = (struct gp_group){x->name, x->l.priority, gm_request_for(&x->l, uuid), grp_used(x, uuid),
                                  x->l.created_unix, busy(state, x->name) || x->live == 0};
    }
    int k = gp_pick_victims(gg, (int)v->n, self, prio, need, m, out, (int)v->n);
    static char last_impossible[GM_NAME_LEN + 1];
    if (k < 0) {
        if (strcmp(last_impossible, for_group) != 0) { /* once per group in need, not every interval */
            struct gbuf f = {0};
            gbuf_puts(&f, ",\"for\":");
            gbuf_json(&f, for_group);
            gbuf_puts(&f, ",\"uuid\":");
            gbuf_json(&f, uuid);
            gbuf_printf(&f, ",\"need\":%llu,\"need_what\":\"%s\",\"why\":\"not enough memory held by groups it "
                            "may take from (borrowers of its priority or lower, groups of lower priority)\"",
                        (unsigned long long)need, need_what);
            log_event("info", "preempt_impossible", f.p);
            gbuf_free(&f);
            snprintf(last_impossible, sizeof last_impossible, "%s", for_group);
        }
    } else {
        last_impossible[0] = '\0';
    }
    for (int i = 0; i < k; i++)
        preempt(s, state, &v->g[out[i].index], for_group, out[i].reason, uuid, out[i].frees, need, need_what);
    free(gg);
    free(out);
}

static const struct dm_device *dev_of(const struct dm_snapshot *s, const char *uuid)
{
    for (int i = 0; i < s->ndevs; i++)
        if (strcmp(s->devs[i].uuid, uuid) == 0)
            return &s->devs[i];
    return NULL;
}

/* Groups whose allocation within their request found the GPU full. */
static void pressure_needs(const struct dm_snapshot *s, const char *state, struct pl_view *v)
{
    double now = unix_now();
    for (size_t i = 0; i < v->n; i++) {
        struct pl_grp *x = &v->g[i];
        if (x->want_ns == 0 || x->want_dev >= (uint32_t)x->ndev || now - x->want_ns / 1e9 > cfg.pressure_age)
            continue;
        const char *uuid = x->uuid[x->want_dev];
        const struct dm_device *d = dev_of(s, uuid);
        uint64_t req = gm_request_for(&x->l, uuid), used = grp_used(x, uuid);
        if (!d || !d->mem_ok || used + x->want_bytes > req || d->free >= x->want_bytes)
            continue; /* beyond its request it only borrows: nobody is reclaimed for that */
        uint64_t need = x->want_bytes - d->free, coming = in_flight(state, v, uuid, x->name, GP_FREES_USED);
        if (coming >= need)
            continue;
        decide(s, state, v, uuid, (int)i, x->name, x->l.priority, need - coming, GP_FREES_USED, "memory");
    }
}

/* The first waiting start on each GPU, when its request does not fit. */
static void queue_needs(const struct dm_snapshot *s, const char *state, struct pl_view *v)
{
    struct gm_queue_entry *q;
    int n = gm_queue_list(state, &q);
    for (int di = 0; di < s->ndevs; di++) {
        const struct dm_device *d = &s->devs[di];
        if (!d->mem_ok)
            continue;
        for (int i = 0; i < n; i++) {
            uint64_t want = gm_queue_request(&q[i], d->uuid);
            if (want == 0)
                continue;
            uint64_t held = gm_requests_on(state, d->uuid, NULL, NULL, 0, NULL);
            if (!gp_fits(d->total, held, want)) {
                uint64_t need = held + want - d->total;
                uint64_t coming = in_flight(state, v, d->uuid, q[i].name, GP_FREES_REQUEST);
                if (coming < need)
                    decide(s, state, v, d->uuid, -1, q[i].name, q[i].priority, need - coming, GP_FREES_REQUEST,
                           "request");
            }
            break; /* only the first on each GPU: the rest wait behind it */
        }
    }
    free(q);
}

/* ---- the journal of admissions ----------------------------------------- */

/* Lines of GM_JOURNAL after the offset the last daemon reached (kept in
 * .policy/journal.offset), into the event log. */
static void read_journal(const char *state)
{
    char path[PATH_MAX + 40], opath[PATH_MAX + 40];
    snprintf(path, sizeof path, "%s/%s", state, GM_JOURNAL);
    snprintf(opath, sizeof opath, "%s/%s/journal.offset", state, GM_POLICY_DIR);
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    long off = 0;
    FILE *o = fopen(opath, "re");
    if (o) {
        if (fscanf(o, "%ld", &off) != 1)
            off = 0;
        fclose(o);
    }
    fseek(f, 0, SEEK_END);
    if (ftell(f) < off) /* rotated or truncated: from the start */
        off = 0;
    fseek(f, off, SEEK_SET);
    char line[4096];
    long done = off;
    while (fgets(line, sizeof line, f)) {
        size_t len = strlen(line);
        if (len == 0 || line[len - 1] != '\n')
            break; /* a line being written: next time */
        done += (long)len;
        json_t *j = json_loads(line, 0, NULL);
        const char *ev = j ? json_string_value(json_object_get(j, "event")) : NULL;
        if (ev) {
            char event[64];
            snprintf(event, sizeof event, "%s", ev);
            json_object_del(j, "event");
            json_object_del(j, "time");
            char *body = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
            /* {"a":1,...} -> ,"a":1,... */
            if (body && strlen(body) > 2) {
                body[strlen(body) - 1] = '\0';
                body[0] = ',';
                log_event(strcmp(event, "admitted") == 0 || strcmp(event, "queued") == 0 ? "info" : "warn", event,
                          body);
            }
            free(body);
        }
        json_decref(j);
    }
    fclose(f);
    if (done != off) {
        char tmp[PATH_MAX + 60];
        snprintf(tmp, sizeof tmp, "%s.tmp", opath);
        FILE *w = fopen(tmp, "we");
        if (w) {
            fprintf(w, "%ld\n", done);
            if (fclose(w) == 0)
                rename(tmp, opath);
        }
    }
}

void pl_tick(const struct dm_snapshot *s, const char *state)
{
    reap_hooks();
    read_journal(state);
    struct pl_view v = {0};
    gm_each_group(state, read_one, &v);
    advance(s, state, &v);
    pressure_needs(s, state, &v);
    queue_needs(s, state, &v);
    free(v.g);
}

void pl_render_metrics(struct gbuf *b, const char *state)
{
    gbuf_puts(b, "# HELP gpumem_policy_decisions_total Admission and preemption decisions since the daemon started, "
                 "by event (docs/policy.md).\n# TYPE gpumem_policy_decisions_total counter\n");
    for (int i = 0; i < C_N; i++)
        gbuf_printf(b, "gpumem_policy_decisions_total{event=\"%s\"} %llu\n", counter_event[i],
                    (unsigned long long)atomic_load(&counters[i]));
    struct gm_queue_entry *q;
    int n = gm_queue_list(state, &q);
    free(q);
    struct pl_reclaim *r;
    int nr = pl_reclaims_load(state, &r);
    free(r);
    gbuf_printf(b, "# HELP gpumem_queue_waiting Starts waiting for their request to fit.\n"
                   "# TYPE gpumem_queue_waiting gauge\ngpumem_queue_waiting %d\n"
                   "# HELP gpumem_reclaims_in_progress Groups notified to give memory back, not yet gone.\n"
                   "# TYPE gpumem_reclaims_in_progress gauge\ngpumem_reclaims_in_progress %d\n",
                n, nr);
}

void pl_summary_line(const char *state, char *buf, size_t len)
{
    struct gm_queue_entry *q;
    int n = gm_queue_list(state, &q);
    struct pl_reclaim *r;
    int nr = pl_reclaims_load(state, &r);
    size_t o = 0;
    buf[0] = '\0';
    if (n > 0)
        o += (size_t)snprintf(buf + o, len - o, "%d start%s waiting (first: %s; gpumem queue)", n, n == 1 ? "" : "s",
                              q[0].name);
    for (int i = 0; i < nr && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%sreclaiming %s for %s (%s)", o ? "; " : "", r[i].victim,
                              r[i].for_group, r[i].reason);
    free(q);
    free(r);
}
