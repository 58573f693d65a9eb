/* One backstop pass: every process NVML lists on a GPU, joined to the group
 * it belongs to, by what a process cannot forge from inside:
 *
 *   slot    its (pid in its own namespace, start time) is a live slot of a
 *           group: the shim in it accounts it (how much: the slot's bytes);
 *   cgroup  it has no slot but sits in a container group's cgroup (the path
 *           names the container's id, or is the cgroup of a process of the
 *           group's own slots);
 *   tree    it has no slot but descends from a process of a group's slots,
 *           or from the `gpumem run` that made the group (its marker's pid
 *           and start time): a child that dropped LD_PRELOAD;
 *   none    anything else.
 *
 * Nothing here reclaims, removes or writes: the pass only reads, so it may
 * run as often as the deadline needs beside the daemon's interval. */
#include "backstop.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gpumem/hostutil.h"
#include "gpumem/procinfo.h"

#define MAX_ANCESTORS 64
#define SLOT_CREATOR UINT32_MAX /* a key for a group's gpumem run, not a slot */

#define FIELD(dst, src) dm_copy_field((dst), sizeof(dst), (src), sizeof(src))

static void add_key(struct bs_view *v, int32_t pid, uint64_t start, int group, uint32_t slot)
{
    void *p = dm_grow(v->keys, &v->capkeys, v->nkeys, sizeof *v->keys, &v->oom);
    if (!p)
        return;
    v->keys = p;
    v->keys[v->nkeys++] = (struct bs_slotkey){pid, start, group, slot};
}

/* The group's device index for view device d; -1 when it never used it. */
static int group_dev(const struct gm_usage *u, const char *uuid)
{
    uint32_t n = atomic_load(&u->ndev);
    for (uint32_t i = 0; i < n && i < GM_MAX_DEVICES; i++)
        if (strncmp(u->dev[i].uuid, uuid, GM_UUID_LEN) == 0)
            return (int)i;
    return -1;
}

/* The groups' files stay mapped from one pass to the next: mapping and
 * unmapping a thousand regions every quarter second costs more than the
 * rest of the pass (each munmap flushes the TLBs of every CPU the daemon's
 * threads ran on). An entry is reused while its usage file is the same
 * inode; a group removed or made anew is mapped again. `gpumem limit`
 * rewrites limits in place (seqlock), so a kept mapping sees new limits.
 * One cache per process: bs_view_build is called by one thread. */
struct mapped {
    char name[GM_NAME_LEN + 1];
    dev_t dev;
    ino_t ino;
    const struct gm_limits *lm;
    struct gm_usage *u;
    pid_t creator;              /* the run marker's, once read */
    uint64_t creator_start;
};
static struct mapped *cache, *next_cache;
static size_t ncache, nnext, capnext, cache_pos;

static void unmap_entry(struct mapped *m)
{
    gm_limits_unmap(m->lm);
    gm_usage_unmap(m->u);
}

/* The entry for group `name` (whose usage file is st), mapped anew unless
 * the last pass's is still the same file; NULL when it cannot be mapped. */
static struct mapped *entry_for(const char *name, const char *dir, const struct stat *st, int *oom)
{
    struct mapped m = {0}, *old = NULL;
    while (cache_pos < ncache && strcmp(cache[cache_pos].name, name) < 0)
        unmap_entry(&cache[cache_pos++]); /* gone since the last pass */
    if (cache_pos < ncache && strcmp(cache[cache_pos].name, name) == 0)
        old = &cache[cache_pos++];
    if (old && old->dev == st->st_dev && old->ino == st->st_ino) {
        m = *old;
    } else {
        if (old)
            unmap_entry(old);
        char err[320];
        dm_copy_field(m.name, sizeof m.name, name, GM_NAME_LEN);
        m.dev = st->st_dev;
        m.ino = st->st_ino;
        m.lm = gm_limits_map(dir, err, sizeof err);
        m.u = m.lm ? gm_usage_map(dir, err, sizeof err) : NULL;
        if (!m.u) {
            gm_limits_unmap(m.lm);
            return NULL;
        }
    }
    void *p = dm_grow(next_cache, &capnext, nnext, sizeof *next_cache, oom);
    if (!p) {
        unmap_entry(&m);
        return NULL;
    }
    next_cache = p;
    next_cache[nnext] = m;
    return &next_cache[nnext++];
}

/* After the walk: what was not seen is unmapped, the new table kept. */
static void cache_swap(void)
{
    while (cache_pos < ncache)
        unmap_entry(&cache[cache_pos++]);
    free(cache);
    cache = next_cache;
    ncache = nnext;
    next_cache = NULL;
    nnext = capnext = cache_pos = 0;
}

struct join_pass {
    struct bs_view *v;
    const char *state_dir;
};

static void read_one(const char *name, const char *dir, void *ctx)
{
    struct bs_view *v = ((struct join_pass *)ctx)->v;
    char path[PATH_MAX + 16];
    struct stat st;
    snprintf(path, sizeof path, "%s/usage", dir);
    if (stat(path, &st) < 0)
        return;
    struct mapped *m = entry_for(name, dir, &st, &v->oom);
    if (!m)
        return;
    struct gm_limits l;
    struct gm_usage *u = m->u;
    if (gm_limits_read(m->lm, &l) < 0 || atomic_load(&u->removed))
        return;
    void *p = dm_grow(v->groups, &v->capgroups, v->ngroups, sizeof *v->groups, &v->oom);
    void *q = p ? realloc(v->maps, v->capgroups * sizeof *v->maps) : NULL;
    if (!p || !q) {
        if (p)
            v->groups = p;
        v->oom = 1;
        return;
    }
    v->groups = p;
    v->maps = q;
    int gi = (int)v->ngroups++;
    struct bs_group *g = &v->groups[gi];
    memset(g, 0, sizeof *g);
    v->maps[gi] = u;
    dm_copy_field(g->name, sizeof g->name, name, GM_NAME_LEN);
    FIELD(g->container_id, l.container_id);
    if (l.container_name[0])
        FIELD(g->container, l.container_name);
    else
        FIELD(g->container, l.container_id);
    FIELD(g->pod, l.pod);
    FIELD(g->ns, l.pod_namespace);
    for (int d = 0; d < v->ndevs; d++) {
        g->limit[d] = gm_limits_for(&l, v->devs[d].uuid);
        int gd = group_dev(u, v->devs[d].uuid);
        g->shim[d] = gd >= 0 ? gm_usage_total(u, gd) : 0;
    }
    g->creator = m->creator;
    g->creator_start = m->creator_start;
    uint32_t hw = atomic_load(&u->slots_hw);
    for (uint32_t i = 0; i < hw && i < GM_MAX_PROCS; i++) {
        int32_t pid = atomic_load(&u->slot[i].pid);
        uint64_t start = u->slot[i].start_time;
        if (pid > 0 && start && start != GM_START_UNKNOWN)
            add_key(v, pid, start, gi, i);
    }
}

/* The run markers (gpumem run's pid and start time), read only when a
 * process is left to join by its tree, and once per group: a marker is
 * written when the group is made and never changes. */
static void add_creators(struct bs_view *v, const char *state_dir)
{
    for (size_t i = 0, c = 0; i < v->ngroups; i++) {
        while (c < ncache && strcmp(cache[c].name, v->groups[i].name) < 0)
            c++;
        if (c == ncache || strcmp(cache[c].name, v->groups[i].name) != 0)
            continue;
        struct mapped *m = &cache[c];
        if (!m->creator) {
            char dir[PATH_MAX + GM_NAME_LEN + 2];
            pid_t cp;
            uint64_t cs;
            snprintf(dir, sizeof dir, "%s/%s", state_dir, m->name);
            if (gm_run_marker_read(dir, &cp, &cs) && cp > 0 && cs) {
                m->creator = cp;
                m->creator_start = cs;
            }
        }
        if (m->creator) {
            v->groups[i].creator = m->creator;
            v->groups[i].creator_start = m->creator_start;
            add_key(v, m->creator, m->creator_start, (int)i, SLOT_CREATOR);
        }
    }
}

static int key_order(const void *a, const void *b)
{
    const struct bs_slotkey *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    if (x->pid != y->pid)
        return x->pid < y->pid ? -1 : 1;
    /* slots before creators, then by group: the first match is a slot */
    if ((x->slot == SLOT_CREATOR) != (y->slot == SLOT_CREATOR))
        return x->slot == SLOT_CREATOR ? 1 : -1;
    return x->group - y->group;
}

/* The first key of (pid, start); `slots_only` passes over creators. A slot
 * whose pid changed since it was read (reclaimed, reused) does not count. */
static const struct bs_slotkey *find_key(const struct bs_view *v, int32_t pid, uint64_t start, int slots_only)
{
    size_t lo = 0, hi = v->nkeys;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const struct bs_slotkey *k = &v->keys[mid];
        if (k->start < start || (k->start == start && k->pid < pid))
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < v->nkeys && v->keys[i].start == start && v->keys[i].pid == pid; i++) {
        const struct bs_slotkey *k = &v->keys[i];
        if (k->slot == SLOT_CREATOR) {
            if (!slots_only)
                return k;
            continue;
        }
        if (atomic_load(&v->maps[k->group]->slot[k->slot].pid) == pid)
            return k;
    }
    return NULL;
}

/* Per-pass cache of /proc reads: a process may be on several GPUs, and
 * ancestors are shared. */
struct pcache {
    struct bs_procinfo *p;
    size_t n, cap;
};

static const struct bs_procinfo *info_of(struct pcache *c, pid_t pid, int *oom)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->p[i].pid == pid)
            return &c->p[i];
    void *q = dm_grow(c->p, &c->cap, c->n, sizeof *c->p, oom);
    if (!q)
        return NULL;
    c->p = q;
    struct bs_procinfo *p = &c->p[c->n++];
    bs_proc_read(pid, p);
    return p;
}

static int32_t own_pid(const struct bs_procinfo *p) { return p->inner > 0 ? p->inner : p->pid; }

static int container_match(const struct bs_group *g, const char *cgroup)
{
    if (!*cgroup || !strcmp(cgroup, "/"))
        return 0;
    /* A container's id (docker, containerd: 64 hex) is in its cgroup's
     * path: /system.slice/docker-<id>.scope, /docker/<id>, .../cri-containerd-<id>.scope.
     * Shorter ids would match by accident. */
    if (strlen(g->container_id) >= 12 && strstr(cgroup, g->container_id))
        return 1;
    return g->container_id[0] && g->cgroup[0] && strcmp(g->cgroup, cgroup) == 0;
}

static void join_rest(struct bs_view *v, struct bs_gpuproc *gp, struct pcache *pc)
{
    for (size_t g = 0; g < v->ngroups; g++)
        if (container_match(&v->groups[g], gp->cgroup)) {
            gp->group = (int)g;
            gp->how = BS_JOIN_CGROUP;
            return;
        }
    const struct bs_procinfo *me = info_of(pc, (pid_t)gp->host_pid, &v->oom);
    pid_t a = me ? me->st.ppid : 0;
    for (int depth = 0; a > 1 && depth < MAX_ANCESTORS; depth++) {
        const struct bs_procinfo *ap = info_of(pc, a, &v->oom);
        if (!ap || !ap->st.start)
            return;
        const struct bs_slotkey *k = find_key(v, own_pid(ap), ap->st.start, 0);
        if (k) {
            gp->group = k->group;
            gp->how = BS_JOIN_TREE;
            return;
        }
        a = ap->st.ppid;
    }
}

/* The view's arrays, kept from one pass to the next: at a thousand groups
 * they pass malloc's mmap threshold, and allocating and freeing them every
 * pass would unmap (a TLB shootdown) every pass, as the mappings above. */
static struct bs_view kept;

void bs_view_build(struct bs_view *v, const struct dm_device *devs, int ndevs, const char *state_dir)
{
    memset(v, 0, sizeof *v);
    v->groups = kept.groups;
    v->capgroups = kept.capgroups;
    v->maps = kept.maps;
    v->keys = kept.keys;
    v->capkeys = kept.capkeys;
    v->procs = kept.procs;
    v->capprocs = kept.capprocs;
    memset(&kept, 0, sizeof kept);
    v->devs = devs;
    v->ndevs = ndevs;
    size_t total = 0;
    for (int d = 0; d < ndevs; d++)
        total += devs[d].procs_ok ? devs[d].nprocs : 0;
    if (total == 0)
        return; /* nothing on any GPU: nothing to join (and no group walk) */
    struct join_pass pass = {v, state_dir};
    gm_each_group(state_dir, read_one, &pass);
    cache_swap();
    if (v->nkeys > 1)
        qsort(v->keys, v->nkeys, sizeof *v->keys, key_order);
    while (v->capprocs < total) {
        void *p = dm_grow(v->procs, &v->capprocs, v->capprocs, sizeof *v->procs, &v->oom);
        if (!p)
            return;
        v->procs = p;
    }
    memset(v->procs, 0, total * sizeof *v->procs);
    struct pcache pc = {0};
    /* First every process a slot accounts for (which also teaches a
     * container group its cgroup), then the others. */
    for (int d = 0; d < ndevs; d++) {
        if (!devs[d].procs_ok)
            continue;
        for (unsigned i = 0; i < devs[d].nprocs; i++) {
            struct bs_gpuproc *gp = &v->procs[v->nprocs++];
            gp->host_pid = devs[d].procs[i].pid;
            gp->dev = d;
            gp->used = devs[d].procs[i].used == (unsigned long long)-1 ? BS_USED_UNKNOWN : devs[d].procs[i].used;
            gp->group = -1;
            const struct bs_procinfo *p = info_of(&pc, (pid_t)gp->host_pid, &v->oom);
            if (!p)
                continue;
            gp->start = p->st.start;
            gp->exiting = bs_stat_exiting(&p->st);
            snprintf(gp->comm, sizeof gp->comm, "%s", p->comm);
            snprintf(gp->cgroup, sizeof gp->cgroup, "%s", p->cgroup);
            const struct bs_slotkey *k = p->st.start ? find_key(v, own_pid(p), p->st.start, 1) : NULL;
            if (!k)
                continue;
            gp->group = k->group;
            gp->how = BS_JOIN_SLOT;
            const struct gm_usage *u = v->maps[k->group];
            int gd = group_dev(u, devs[d].uuid);
            gp->accounted = gd >= 0 ? gm_slot_charged(&u->slot[k->slot], gd) : 0;
            struct bs_group *g = &v->groups[k->group];
            if (g->container_id[0] && !g->cgroup[0] && strcmp(p->cgroup, "/") != 0)
                snprintf(g->cgroup, sizeof g->cgroup, "%s", p->cgroup);
        }
    }
    int rest = 0;
    for (size_t i = 0; i < v->nprocs; i++)
        rest += v->procs[i].how == BS_JOIN_NONE && v->procs[i].start;
    if (rest) {
        add_creators(v, state_dir);
        if (v->nkeys > 1)
            qsort(v->keys, v->nkeys, sizeof *v->keys, key_order);
    }
    for (size_t i = 0; i < v->nprocs; i++)
        if (v->procs[i].how == BS_JOIN_NONE && v->procs[i].start)
            join_rest(v, &v->procs[i], &pc);
    free(pc.p);
}

void bs_view_free(struct bs_view *v)
{
    /* Kept for the next pass, as the mappings the view named are. */
    free(kept.groups);
    free(kept.maps);
    free(kept.keys);
    free(kept.procs);
    kept = *v;
    memset(v, 0, sizeof *v);
}
