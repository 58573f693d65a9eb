/* The backstop's judgement and actions. Each pass (every --backstop-interval
 * seconds) joins NVML's processes to the groups (backstop_join.c) and finds
 * offences:
 *
 *   unaccounted     a process holds device memory and no shim accounts it:
 *                   in no group (reason no_group), or in a container's
 *                   cgroup (no_slot_in_cgroup) or a gpumem run's process
 *                   tree (no_slot_in_tree) without a slot of its own;
 *   under_reported  a process with a slot whose driver bytes pass the
 *                   shim's count of it by more than the tolerance;
 *   over_limit      a group whose processes hold more than its limit, per
 *                   the driver, by more than the tolerance, and more than
 *                   the shim accounts (a limit lowered under an honest
 *                   group's usage is not an escape).
 *
 * An offence is acted on once it has been seen on two passes at least
 * `grace` seconds apart, every pass in between included: what is in flight
 * (an allocation the driver made before the shim counted it, a free the
 * shim counted before the driver), a process starting or in its last
 * milliseconds, lasts less. A process is named by pid and start time, so a
 * reused pid is a new process and starts afresh. Under `kill` only a
 * process that is dishonest by itself is killed (bs_proc_dishonest), after
 * checking at the last moment that it is still the same process, through a
 * pidfd. Why each of these holds: docs/backstop.md. */
#include "backstop.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

enum { K_UNACCOUNTED, K_UNDER, K_OVER, K_COUNT };
static const char *const kind_name[K_COUNT] = {"unaccounted", "under_reported", "over_limit"};
enum { A_ALERT, A_KILLED, A_KILL_FAILED, A_COUNT };
static const char *const action_name[A_COUNT] = {"alert", "killed", "kill_failed"};

struct offence {
    int kind;
    unsigned pid;               /* process offences */
    uint64_t start;
    char group[GM_NAME_LEN + 1];/* over_limit (and the process's group, if any) */
    char uuid[GM_UUID_LEN];
    double first;               /* monotonic time of the first sighting */
    unsigned long last_pass;
    int sightings, acted;
};

/* What the last pass saw, for the metrics. */
struct seen_dev {
    int gpu;
    char uuid[GM_UUID_LEN];
    unsigned ungrouped;
    uint64_t ungrouped_used;
};
struct seen_group {
    struct dm_row id;           /* the identity fields only */
    uint64_t unaccounted;
};

static struct bs_config cfg = {BS_ALERT, BS_DEFAULT_INTERVAL, BS_DEFAULT_GRACE, BS_DEFAULT_TOLERANCE, {0}, 0};
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* the metrics' state below */
static struct offence *offs;
static size_t noffs, capoffs;
static unsigned long pass_no;
static double last_pass_seconds;
static uint64_t actions[K_COUNT][A_COUNT];
static struct seen_dev seen_devs[DM_MAX_NVML_DEVS];
static int nseen_devs;
static struct seen_group *seen_groups;
static size_t nseen_groups;
/* Processes killed on this pass (a group's offence names those its own
 * processes' offences killed a moment before). */
#define MAX_KILLED 64
static struct { unsigned pid; uint64_t start; } killed_now[MAX_KILLED];
static int nkilled_now;

static int killed_this_pass(unsigned pid, uint64_t start)
{
    for (int i = 0; i < nkilled_now; i++)
        if (killed_now[i].pid == pid && killed_now[i].start == start)
            return 1;
    return 0;
}

void bs_config_default(struct bs_config *c)
{
    memset(c, 0, sizeof *c);
    c->policy = BS_ALERT;
    c->interval = BS_DEFAULT_INTERVAL;
    c->grace = BS_DEFAULT_GRACE;
    c->tolerance = BS_DEFAULT_TOLERANCE;
}

int bs_parse_policy(const char *s, enum bs_policy *out)
{
    static const char *const names[] = {"off", "alert", "kill"};
    for (int i = 0; i < 3; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (enum bs_policy)i;
            return 0;
        }
    return -1;
}

const char *bs_policy_name(enum bs_policy p) { return p == BS_KILL ? "kill" : p == BS_ALERT ? "alert" : "off"; }

void bs_configure(const struct bs_config *c) { cfg = *c; }

/* An ungrouped process in an exempt cgroup (at or under one of the paths). */
static int exempt(const char *cgroup)
{
    for (int i = 0; i < cfg.nexempt; i++)
        if (bs_cgroup_under(cgroup, cfg.exempt[i]))
            return 1;
    return 0;
}

static struct offence *sight(int kind, unsigned pid, uint64_t start, const char *group, const char *uuid, double now)
{
    for (size_t i = 0; i < noffs; i++) {
        struct offence *o = &offs[i];
        if (o->kind == kind && o->pid == pid && o->start == start && !strcmp(o->group, group) && !strcmp(o->uuid, uuid)) {
            /* Every pass in between must have seen it too. */
            if (o->last_pass + 1 != pass_no) {
                o->first = now;
                o->sightings = 0;
                o->acted = 0;
            }
            o->last_pass = pass_no;
            o->sightings++;
            return o;
        }
    }
    if (noffs == capoffs) {
        size_t c = capoffs ? capoffs * 2 : 16;
        void *q = realloc(offs, c * sizeof *offs);
        if (!q)
            return NULL;
        offs = q;
        capoffs = c;
    }
    struct offence *o = &offs[noffs++];
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->pid = pid;
    o->start = start;
    snprintf(o->group, sizeof o->group, "%s", group);
    snprintf(o->uuid, sizeof o->uuid, "%s", uuid);
    o->first = now;
    o->last_pass = pass_no;
    o->sightings = 1;
    return o;
}

static int confirmed(const struct offence *o, double now)
{
    return o && !o->acted && o->sightings >= 2 && now - o->first >= cfg.grace;
}

/* SIGKILL to (pid, start) and nothing else: the pidfd is taken first, and
 * the process checked after, so a pid reused in between gets nothing. */
static int kill_exact(unsigned pid, uint64_t start, char *why, size_t len)
{
    if (!bs_proc_same((pid_t)pid, start)) {
        snprintf(why, len, "the process is gone or exiting");
        return -1;
    }
    int fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
    if (fd < 0 && errno != ENOSYS) {
        snprintf(why, len, "pidfd_open: %s", strerror(errno));
        return -1;
    }
    if (!bs_proc_same((pid_t)pid, start)) {
        if (fd >= 0)
            close(fd);
        snprintf(why, len, "the process is gone or exiting");
        return -1;
    }
    int r = fd >= 0 ? (int)syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0) : kill((pid_t)pid, SIGKILL);
    int e = errno;
    if (fd >= 0)
        close(fd);
    if (r < 0) {
        snprintf(why, len, "%s", strerror(e));
        return -1;
    }
    if (nkilled_now < MAX_KILLED) {
        killed_now[nkilled_now].pid = pid;
        killed_now[nkilled_now++].start = start;
    }
    return 0;
}

static void proc_fields(struct gbuf *f, const struct bs_view *v, const struct bs_gpuproc *p)
{
    gbuf_printf(f, ",\"pid\":%u,\"comm\":", p->host_pid);
    gbuf_json(f, p->comm);
    gbuf_puts(f, ",\"cgroup\":");
    gbuf_json(f, p->cgroup);
    if (p->used == BS_USED_UNKNOWN)
        gbuf_puts(f, ",\"used\":null");
    else
        gbuf_printf(f, ",\"used\":%llu", (unsigned long long)p->used);
    (void)v;
}

/* A group (or none) on a device, as a row's identity. */
static void where_row(struct dm_row *r, const struct bs_view *v, int group, int dev)
{
    const struct bs_group *g = group >= 0 ? &v->groups[group] : NULL;
    memset(r, 0, sizeof *r);
    if (g) {
        snprintf(r->group, sizeof r->group, "%s", g->name);
        snprintf(r->container, sizeof r->container, "%s", g->container);
        snprintf(r->pod, sizeof r->pod, "%s", g->pod);
        snprintf(r->ns, sizeof r->ns, "%s", g->ns);
    }
    snprintf(r->uuid, sizeof r->uuid, "%s", v->devs[dev].uuid);
    r->gpu = (int)v->devs[dev].index;
}

static void where_fields(struct gbuf *f, const struct bs_view *v, int group, int dev)
{
    struct dm_row r;
    where_row(&r, v, group, dev);
    dm_row_fields(f, &r);
}

static const char *reason_of(const struct bs_gpuproc *p)
{
    switch (p->how) {
    case BS_JOIN_NONE: return "no_group";
    case BS_JOIN_CGROUP: return "no_slot_in_cgroup";
    case BS_JOIN_TREE: return "no_slot_in_tree";
    default: return "driver_holds_more";
    }
}

/* Acts on a confirmed process offence; returns the action taken. */
static int act_proc(struct gbuf *f, const struct bs_gpuproc *p)
{
    if (cfg.policy != BS_KILL)
        return A_ALERT;
    char why[160];
    if (kill_exact(p->host_pid, p->start, why, sizeof why) == 0)
        return A_KILLED;
    gbuf_puts(f, ",\"error\":");
    gbuf_json(f, why);
    return A_KILL_FAILED;
}

static void log_action(int kind, int action, struct gbuf *f, double observed)
{
    gbuf_printf(f, ",\"policy\":\"%s\",\"action\":\"%s\",\"observed_seconds\":%.3f", bs_policy_name(cfg.policy),
                action_name[action], observed);
    dm_log(action == A_ALERT ? "warn" : "error", "backstop", f->p);
    pthread_mutex_lock(&lock);
    actions[kind][action]++;
    pthread_mutex_unlock(&lock);
}

static void judge_procs(const struct bs_view *v, double now)
{
    for (size_t i = 0; i < v->nprocs; i++) {
        const struct bs_gpuproc *p = &v->procs[i];
        if (!p->start || p->exiting || (p->how == BS_JOIN_NONE && exempt(p->cgroup)))
            continue;
        if (!bs_proc_dishonest(p, cfg.tolerance))
            continue;
        int kind = p->how == BS_JOIN_SLOT ? K_UNDER : K_UNACCOUNTED;
        const char *group = p->group >= 0 ? v->groups[p->group].name : "";
        struct offence *o = sight(kind, p->host_pid, p->start, group, v->devs[p->dev].uuid, now);
        if (!confirmed(o, now))
            continue;
        o->acted = 1;
        struct gbuf f = {0};
        gbuf_printf(&f, ",\"kind\":\"%s\",\"reason\":\"%s\"", kind_name[kind], reason_of(p));
        where_fields(&f, v, p->group, p->dev);
        proc_fields(&f, v, p);
        gbuf_printf(&f, ",\"accounted\":%llu,\"tolerance\":%llu", (unsigned long long)p->accounted,
                    (unsigned long long)cfg.tolerance);
        int a = act_proc(&f, p);
        log_action(kind, a, &f, now - o->first);
        gbuf_free(&f);
    }
}

static void judge_groups(const struct bs_view *v, const uint64_t *real, double now)
{
    for (size_t g = 0; g < v->ngroups; g++)
        for (int d = 0; d < v->ndevs; d++) {
            const struct bs_group *gr = &v->groups[g];
            uint64_t r = real[g * (size_t)v->ndevs + (size_t)d];
            if (!bs_group_over(r, gr->shim[d], gr->limit[d], cfg.tolerance))
                continue;
            struct offence *o = sight(K_OVER, 0, 0, gr->name, v->devs[d].uuid, now);
            if (!confirmed(o, now))
                continue;
            o->acted = 1;
            struct gbuf f = {0};
            gbuf_printf(&f, ",\"kind\":\"over_limit\"");
            where_fields(&f, v, (int)g, d);
            gbuf_printf(&f, ",\"real\":%llu,\"accounted\":%llu,\"limit\":%llu,\"tolerance\":%llu",
                        (unsigned long long)r, (unsigned long long)gr->shim[d], (unsigned long long)gr->limit[d],
                        (unsigned long long)cfg.tolerance);
            /* Under kill: the group's processes that are dishonest by
             * themselves; never one the shim accounts within tolerance. */
            int action = A_ALERT, killed = 0, failed = 0;
            gbuf_puts(&f, ",\"killed\":[");
            for (size_t i = 0; cfg.policy == BS_KILL && i < v->nprocs; i++) {
                const struct bs_gpuproc *p = &v->procs[i];
                if (p->group != (int)g || p->dev != d || !p->start || !bs_proc_dishonest(p, cfg.tolerance))
                    continue;
                char why[160];
                if (killed_this_pass(p->host_pid, p->start) || kill_exact(p->host_pid, p->start, why, sizeof why) == 0)
                    gbuf_printf(&f, "%s%u", killed++ ? "," : "", p->host_pid);
                else
                    failed++;
            }
            gbuf_puts(&f, "]");
            if (killed)
                action = A_KILLED;
            else if (failed)
                action = A_KILL_FAILED;
            else if (cfg.policy == BS_KILL)
                gbuf_puts(&f, ",\"note\":\"no process of the group holds more than the tolerance beyond the "
                              "shim's count of it: alert only\"");
            log_action(K_OVER, action, &f, now - o->first);
            gbuf_free(&f);
        }
}

/* Offences not seen on this pass are over; acted-on ones say so. */
static void expire(double now)
{
    size_t w = 0;
    for (size_t i = 0; i < noffs; i++) {
        struct offence *o = &offs[i];
        if (o->last_pass == pass_no) {
            offs[w++] = *o;
            continue;
        }
        if (o->acted) {
            struct gbuf f = {0};
            gbuf_printf(&f, ",\"kind\":\"%s\",\"group\":", kind_name[o->kind]);
            gbuf_json(&f, o->group);
            gbuf_puts(&f, ",\"uuid\":");
            gbuf_json(&f, o->uuid);
            if (o->pid)
                gbuf_printf(&f, ",\"pid\":%u", o->pid);
            gbuf_printf(&f, ",\"lasted_seconds\":%.3f", now - o->first);
            dm_log("info", "backstop_cleared", f.p);
            gbuf_free(&f);
        }
    }
    noffs = w;
}

/* The last pass's figures, for the metrics. */
static void remember(const struct bs_view *v, const uint64_t *unacc, const unsigned *nprocs_in)
{
    pthread_mutex_lock(&lock);
    nseen_devs = v->ndevs;
    for (int d = 0; d < v->ndevs; d++) {
        struct seen_dev *s = &seen_devs[d];
        memset(s, 0, sizeof *s);
        s->gpu = (int)v->devs[d].index;
        snprintf(s->uuid, sizeof s->uuid, "%s", v->devs[d].uuid);
    }
    for (size_t i = 0; i < v->nprocs; i++)
        if (v->procs[i].how == BS_JOIN_NONE && v->procs[i].start) {
            seen_devs[v->procs[i].dev].ungrouped++;
            if (v->procs[i].used != BS_USED_UNKNOWN)
                seen_devs[v->procs[i].dev].ungrouped_used += v->procs[i].used;
        }
    size_t n = 0;
    for (size_t k = 0; k < v->ngroups * (size_t)v->ndevs; k++)
        n += nprocs_in[k] > 0;
    free(seen_groups);
    seen_groups = n ? calloc(n, sizeof *seen_groups) : NULL;
    nseen_groups = 0;
    for (size_t k = 0; seen_groups && k < v->ngroups * (size_t)v->ndevs; k++) {
        if (!nprocs_in[k])
            continue;
        struct seen_group *s = &seen_groups[nseen_groups++];
        where_row(&s->id, v, (int)(k / (size_t)v->ndevs), (int)(k % (size_t)v->ndevs));
        s->unaccounted = unacc[k];
    }
    pthread_mutex_unlock(&lock);
}

double bs_tick(const char *state_dir, double now)
{
    if (cfg.policy == BS_OFF)
        return 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_mutex_lock(&lock);
    pass_no++;
    pthread_mutex_unlock(&lock);
    struct dm_device devs[DM_MAX_NVML_DEVS];
    int ndevs = dm_nvml_read(devs, DM_MAX_NVML_DEVS);
    struct bs_view v;
    bs_view_build(&v, devs, ndevs, state_dir);
    size_t cells = v.ngroups * (size_t)(ndevs > 0 ? ndevs : 1);
    uint64_t *real = calloc(cells ? cells : 1, sizeof *real);
    uint64_t *unacc = calloc(cells ? cells : 1, sizeof *unacc);
    unsigned *nin = calloc(cells ? cells : 1, sizeof *nin);
    if (real && unacc && nin && !v.oom) {
        for (size_t i = 0; i < v.nprocs; i++) {
            const struct bs_gpuproc *p = &v.procs[i];
            if (p->group < 0)
                continue;
            size_t k = (size_t)p->group * (size_t)ndevs + (size_t)p->dev;
            nin[k]++;
            if (p->used == BS_USED_UNKNOWN)
                continue;
            real[k] += p->used;
            uint64_t acc = p->how == BS_JOIN_SLOT ? p->accounted : 0;
            unacc[k] += p->used > acc ? p->used - acc : 0;
        }
        nkilled_now = 0;
        judge_procs(&v, now);
        judge_groups(&v, real, now);
        expire(now);
        remember(&v, unacc, nin);
    }
    free(real);
    free(unacc);
    free(nin);
    bs_view_free(&v);
    dm_nvml_release(devs, ndevs);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    pthread_mutex_lock(&lock);
    last_pass_seconds = took;
    pthread_mutex_unlock(&lock);
    return took;
}

void bs_render_metrics(struct gbuf *b)
{
    pthread_mutex_lock(&lock);
    if (cfg.policy == BS_OFF || pass_no == 0) {
        pthread_mutex_unlock(&lock);
        return;
    }
    dm_family(b, "gpumem_backstop_passes_total", "counter", "Backstop passes run (NVML's processes joined to groups).");
    gbuf_printf(b, "gpumem_backstop_passes_total %lu\n", pass_no);
    dm_family(b, "gpumem_backstop_pass_seconds", "gauge", "How long the last backstop pass took.");
    gbuf_printf(b, "gpumem_backstop_pass_seconds %.6f\n", last_pass_seconds);
    dm_family(b, "gpumem_backstop_actions_total", "counter",
           "Offences the backstop acted on, by kind (unaccounted, under_reported, over_limit) and action "
           "(alert, killed, kill_failed).");
    for (int k = 0; k < K_COUNT; k++)
        for (int a = 0; a < A_COUNT; a++)
            gbuf_printf(b, "gpumem_backstop_actions_total{kind=\"%s\",action=\"%s\"} %llu\n", kind_name[k],
                        action_name[a], (unsigned long long)actions[k][a]);
    if (nseen_devs > 0) {
        dm_family(b, "gpumem_ungrouped_processes", "gauge",
               "Processes NVML lists on the device that belong to no group (shown as (none) by gpumem ps and top).");
        for (int d = 0; d < nseen_devs; d++) {
            gbuf_printf(b, "gpumem_ungrouped_processes{gpu=\"%d\",uuid=\"", seen_devs[d].gpu);
            gbuf_label(b, seen_devs[d].uuid);
            gbuf_printf(b, "\"} %u\n", seen_devs[d].ungrouped);
        }
        dm_family(b, "gpumem_ungrouped_used_bytes", "gauge",
               "GPU memory NVML reports for the processes on the device that belong to no group.");
        for (int d = 0; d < nseen_devs; d++) {
            gbuf_printf(b, "gpumem_ungrouped_used_bytes{gpu=\"%d\",uuid=\"", seen_devs[d].gpu);
            gbuf_label(b, seen_devs[d].uuid);
            gbuf_printf(b, "\"} %llu\n", (unsigned long long)seen_devs[d].ungrouped_used);
        }
    }
    if (nseen_groups > 0) {
        dm_family(b, "gpumem_group_unaccounted_bytes", "gauge",
               "GPU memory NVML reports for the group's processes on the device beyond what the shim accounts "
               "for each of them (processes of the group without a shim count whole).");
        for (size_t i = 0; i < nseen_groups; i++) {
            gbuf_puts(b, "gpumem_group_unaccounted_bytes");
            dm_group_labels(b, &seen_groups[i].id);
            gbuf_printf(b, " %llu\n", (unsigned long long)seen_groups[i].unaccounted);
        }
    }
    pthread_mutex_unlock(&lock);
}

void bs_reset(void)
{
    pthread_mutex_lock(&lock);
    free(offs);
    offs = NULL;
    noffs = capoffs = 0;
    free(seen_groups);
    seen_groups = NULL;
    nseen_groups = 0;
    nseen_devs = 0;
    pass_no = 0;
    memset(actions, 0, sizeof actions);
    pthread_mutex_unlock(&lock);
}

/* ---- the backstop's own thread -------------------------------------- */

/* Its passes run on their own thread, so that nothing else the daemon does
 * (an interval's reclaim and events over every group, a scrape) can hold
 * them past the deadline. */
static pthread_t thread;
static int running;
static pthread_mutex_t stop_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_cond;
static int stopping;
static char state_path[4096];

static void *loop(void *arg)
{
    (void)arg;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    pthread_mutex_lock(&stop_lock);
    while (!stopping) {
        pthread_mutex_unlock(&stop_lock);
        double now = (double)next.tv_sec + (double)next.tv_nsec / 1e9;
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        bs_tick(state_path, (double)t.tv_sec + (double)t.tv_nsec / 1e9);
        /* The next pass an interval after this one began; at once if the
         * pass took longer. */
        now += cfg.interval;
        clock_gettime(CLOCK_MONOTONIC, &t);
        double cur = (double)t.tv_sec + (double)t.tv_nsec / 1e9;
        if (now < cur)
            now = cur;
        next.tv_sec = (time_t)now;
        next.tv_nsec = (long)((now - (double)next.tv_sec) * 1e9);
        pthread_mutex_lock(&stop_lock);
        while (!stopping && pthread_cond_timedwait(&stop_cond, &stop_lock, &next) == 0)
            ;
    }
    pthread_mutex_unlock(&stop_lock);
    return NULL;
}

int bs_start(const char *state_dir)
{
    if (cfg.policy == BS_OFF || running)
        return 0;
    snprintf(state_path, sizeof state_path, "%s", state_dir);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&stop_cond, &ca);
    pthread_condattr_destroy(&ca);
    stopping = 0;
    if (pthread_create(&thread, NULL, loop, NULL) != 0)
        return -1;
    pthread_setname_np(thread, "gpumem-backstop"); /* top -H, ps -L: what it costs */
    running = 1;
    return 0;
}

void bs_stop(void)
{
    if (!running)
        return;
    pthread_mutex_lock(&stop_lock);
    stopping = 1;
    pthread_cond_signal(&stop_cond);
    pthread_mutex_unlock(&stop_lock);
    pthread_join(thread, NULL);
    pthread_cond_destroy(&stop_cond);
    running = 0;
}
