/* gpumem top: processes on a GPU that belong to no group, as a pseudo group
 * "(none)" (not a valid group name, so never a real one): a row per GPU
 * with their count and NVML's bytes, and their processes when expanded.
 * The join is the daemon backstop's (src/daemon/backstop_join.c), over the
 * NVML lists the snapshot already read. */
#include "top.h"

#include <string.h>

#include "../daemon/backstop.h"

void top_add_ungrouped(struct dm_snapshot *s, const char *state_dir)
{
    struct bs_view v;
    bs_view_build(&v, s->devs, s->ndevs, state_dir);
    for (int d = 0; d < s->ndevs; d++) {
        struct dm_row r;
        memset(&r, 0, sizeof r);
        for (size_t i = 0; i < v.nprocs; i++) {
            const struct bs_gpuproc *p = &v.procs[i];
            if (p->dev != d || p->how != BS_JOIN_NONE || !p->start)
                continue;
            r.procs++;
            r.used += p->used != BS_USED_UNKNOWN ? p->used : 0;
            void *q = dm_grow(s->procs, &s->capprocs, s->nprocs, sizeof *s->procs, &s->oom);
            if (!q)
                break;
            s->procs = q;
            struct dm_procrow *pr = &s->procs[s->nprocs++];
            memset(pr, 0, sizeof *pr);
            snprintf(pr->group, sizeof pr->group, "%s", TOP_NONE);
            pr->pid = (int)p->host_pid;
            pr->host_pid = (int)p->host_pid;
            snprintf(pr->comm, sizeof pr->comm, "%s", p->comm);
            pr->used = pr->peak = p->used != BS_USED_UNKNOWN ? p->used : 0;
        }
        if (!r.procs)
            continue;
        void *q = dm_grow(s->rows, &s->caprows, s->nrows, sizeof *s->rows, &s->oom);
        if (!q)
            break;
        s->rows = q;
        snprintf(r.group, sizeof r.group, "%s", TOP_NONE);
        snprintf(r.uuid, sizeof r.uuid, "%s", s->devs[d].uuid);
        r.gpu = (int)s->devs[d].index;
        r.limit = GM_UNLIMITED;
        r.peak = r.used;
        r.dev = d;
        s->rows[s->nrows++] = r;
    }
    bs_view_free(&v);
}
