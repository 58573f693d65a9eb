/* One pass over the groups: for every group directory under the state dir,
 * its identity and limits (a consistent seqlock copy), and per device it has
 * used what its processes hold, its peak and refusals, set against what
 * NVML says the same processes hold. A group whose files cannot be read or
 * validated is listed as skipped, never trusted and never fatal. */
#include "daemon.h"
#include "gc.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpumem/hostutil.h"
#include "gpumem/procinfo.h"

#define copy_field dm_copy_field
#define COPY_FIELD(dst, src) dm_copy_field((dst), sizeof(dst), (src), sizeof(src))
#define grow dm_grow

static void add_bad(struct dm_snapshot *s, const char *group, const char *why)
{
    void *p = grow(s->bad, &s->capbad, s->nbad, sizeof *s->bad, &s->oom);
    if (!p)
        return;
    s->bad = p;
    struct dm_bad *b = &s->bad[s->nbad++];
    copy_field(b->group, sizeof b->group, group, GM_NAME_LEN);
    snprintf(b->why, sizeof b->why, "%s", why);
}

static void add_reclaimed(struct dm_snapshot *s, const char *group, int count)
{
    void *p = grow(s->reclaimed, &s->capreclaimed, s->nreclaimed, sizeof *s->reclaimed, &s->oom);
    if (!p)
        return;
    s->reclaimed = p;
    copy_field(s->reclaimed[s->nreclaimed].group, sizeof s->reclaimed[0].group, group, GM_NAME_LEN);
    s->reclaimed[s->nreclaimed++].count = count;
}

static struct dm_device *find_dev(struct dm_snapshot *s, const char *uuid)
{
    for (int i = 0; i < s->ndevs; i++)
        if (strcmp(s->devs[i].uuid, uuid) == 0)
            return &s->devs[i];
    return NULL;
}


/* host[i]: slot i's process's host pid, verified this pass (0 = unknown). */
static void add_rows(struct dm_snapshot *s, const char *name, const struct gm_limits *l, const struct gm_usage *u,
                     const int32_t *host)
{
    uint32_t ndev = atomic_load(&u->ndev), hw = atomic_load(&u->slots_hw);
    for (uint32_t d = 0; d < ndev && d < GM_MAX_DEVICES; d++) {
        void *p = grow(s->rows, &s->caprows, s->nrows, sizeof *s->rows, &s->oom);
        if (!p)
            return;
        s->rows = p;
        struct dm_row *r = &s->rows[s->nrows++];
        memset(r, 0, sizeof *r);
        copy_field(r->group, sizeof r->group, name, GM_NAME_LEN);
        if (l->container_name[0])
            COPY_FIELD(r->container, l->container_name);
        else
            COPY_FIELD(r->container, l->container_id);
        COPY_FIELD(r->pod, l->pod);
        COPY_FIELD(r->ns, l->pod_namespace);
        COPY_FIELD(r->uuid, u->dev[d].uuid);
        r->limit = gm_limits_for(l, r->uuid);
        r->used = gm_usage_total(u, (int)d);
        r->peak = atomic_load(&u->dev[d].peak);
        r->refusals = atomic_load(&u->dev[d].refusals);
        r->last_refused = atomic_load(&u->dev[d].last_refused_size);
        r->swap_used = gm_usage_swapped(u, (int)d);
        r->swap_limit = l->swap;
        r->first_spill_ns = atomic_load(&u->first_spill_ns);
        struct dm_device *dev = find_dev(s, r->uuid);
        r->gpu = dev ? (int)dev->index : -1;
        r->dev = (int)d;
        uint64_t shim = 0, truth = 0;
        for (uint32_t i = 0; i < hw && i < GM_MAX_PROCS; i++) {
            const struct gm_proc_slot *sl = &u->slot[i];
            int32_t pid = atomic_load(&sl->pid);
            if (pid == 0)
                continue;
            uint64_t held = gm_slot_charged(sl, (int)d);
            r->procs += held > 0;
            shim += held;
            long long nv = dev && host[i] > 0 ? dm_proc_used(dev, (unsigned int)host[i]) : -1;
            truth += nv > 0 ? (uint64_t)nv : 0;
        }
        if (dev && dev->procs_ok) {
            r->drift_ok = 1;
            r->drift = (int64_t)(shim - truth);
        }
    }
}

static void add_procs(struct dm_snapshot *s, const char *name, const struct gm_usage *u, const int32_t *host)
{
    uint32_t ndev = atomic_load(&u->ndev), hw = atomic_load(&u->slots_hw);
    for (uint32_t i = 0; i < hw && i < GM_MAX_PROCS; i++) {
        const struct gm_proc_slot *sl = &u->slot[i];
        int32_t pid = atomic_load(&sl->pid);
        if (pid == 0)
            continue;
        void *p = grow(s->procs, &s->capprocs, s->nprocs, sizeof *s->procs, &s->oom);
        if (!p)
            return;
        s->procs = p;
        struct dm_procrow *r = &s->procs[s->nprocs++];
        memset(r, 0, sizeof *r);
        copy_field(r->group, sizeof r->group, name, GM_NAME_LEN);
        r->pid = pid;
        r->host_pid = host[i]; /* checked by gm_resolve_host_pids; 0 = unknown */
        COPY_FIELD(r->comm, sl->comm);
        for (uint32_t d = 0; d < ndev && d < GM_MAX_DEVICES; d++) {
            r->used += gm_slot_charged(sl, (int)d);
            r->peak += atomic_load(&sl->peak[d]);
        }
        r->refusals = atomic_load(&sl->refusals);
        r->swap_used = gm_slot_swapped(sl);
        r->start_time = sl->start_time;
        r->allocs = gm_slot_allocs(sl);
        r->frees = gm_slot_frees(sl);
        r->table_addr = sl->table_addr;
        r->table_layout = sl->table_layout;
        r->ndev = ndev < GM_MAX_DEVICES ? ndev : GM_MAX_DEVICES;
        for (uint32_t d = 0; d < r->ndev; d++)
            r->charged[d] = gm_slot_charged(sl, (int)d);
    }
}

static void read_group(struct dm_snapshot *s, const char *name, const char *dir, int reclaim, int procs)
{
    char err[320];
    const struct gm_limits *lm = gm_limits_map(dir, err, sizeof err);
    if (!lm) {
        /* No limits file: not a group (one being created, or someone
         * else's directory), passed over quietly. Asked only now, so a
         * pass over good groups pays no extra system call per group. */
        char probe[PATH_MAX + 320];
        snprintf(probe, sizeof probe, "%s/limits", dir);
        if (access(probe, F_OK) == 0)
            add_bad(s, name, err);
        return;
    }
    struct gm_limits l;
    if (gm_limits_read(lm, &l) < 0) {
        gm_limits_unmap(lm);
        add_bad(s, name, "limits file stays mid-update (a writer died?)");
        return;
    }
    gm_limits_unmap(lm);
    struct gm_usage *u = gm_usage_map(dir, err, sizeof err);
    if (!u) {
        add_bad(s, name, err);
        return;
    }
    if (reclaim) {
        int n = gm_reclaim_dead(u);
        if (n > 0)
            add_reclaimed(s, name, n);
        if (dm_gc_group(name, dir, &l, u) || dm_gc_run_group(name, dir, u)) {
            gm_usage_unmap(u);
            return;
        }
    }
    /* NVML names processes by host pid; the slots by the group's own. */
    int32_t host[GM_MAX_PROCS];
    gm_resolve_host_pids(u, host);
    s->ngroups++;
    for (int i = 0; i < s->ndevs; i++) {
        uint64_t lim = gm_limits_for(&l, s->devs[i].uuid);
        if (lim != GM_UNLIMITED)
            s->devs[i].granted = s->devs[i].granted + lim < s->devs[i].granted ? UINT64_MAX
                                                                                : s->devs[i].granted + lim;
    }
    add_rows(s, name, &l, u, host);
    if (procs)
        add_procs(s, name, u, host);
    gm_usage_unmap(u);
}

static int row_order(const void *a, const void *b)
{
    const struct dm_row *x = a, *y = b;
    int c = strcmp(x->group, y->group);
    return c ? c : strcmp(x->uuid, y->uuid);
}

/* One group of the gm_each_group walk. */
struct collect_pass {
    struct dm_snapshot *s;
    int reclaim, procs;
};
static void read_one(const char *name, const char *dir, void *ctx)
{
    struct collect_pass *p = ctx;
    read_group(p->s, name, dir, p->reclaim, p->procs);
}

static void collect(struct dm_snapshot *s, const char *state_dir, int reclaim, int procs)
{
    memset(s, 0, sizeof *s);
    if (gethostname(s->hostname, sizeof s->hostname) < 0)
        s->hostname[0] = '\0';
    s->hostname[sizeof s->hostname - 1] = '\0';
    s->nvml = dm_nvml_available();
    s->ndevs = dm_nvml_read(s->devs, DM_MAX_NVML_DEVS);
    struct collect_pass pass = {s, reclaim, procs};
    gm_each_group(state_dir, read_one, &pass);
    if (s->nrows > 1)
        qsort(s->rows, s->nrows, sizeof *s->rows, row_order);
}

void dm_collect(struct dm_snapshot *s, const char *state_dir, int reclaim) { collect(s, state_dir, reclaim, 0); }

void dm_collect_procs(struct dm_snapshot *s, const char *state_dir, int reclaim) { collect(s, state_dir, reclaim, 1); }

void dm_snapshot_free(struct dm_snapshot *s)
{
    dm_nvml_release(s->devs, s->ndevs);
    free(s->rows);
    free(s->bad);
    free(s->reclaimed);
    free(s->procs);
    memset(s, 0, sizeof *s);
}
