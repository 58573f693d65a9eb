/* gpumem top: processes on a GPU that belong to no group, as a pseudo group
 * "(none)" (not a valid group name, so never a real one): a row per GPU
 * with their count and NVML's bytes, and their processes when expanded.
 * The join is the daemon backstop's (src/daemon/backstop_join.c), over the
 * NVML lists the snapshot already read. */
#include "top.h"

#include <stdlib.h>
#include <string.h>

#include "../daemon/backstop.h"

static int ungrouped(const struct bs_gpuproc *p) { return p->how == BS_JOIN_NONE && p->start; }

/* Room for `more` elements after n in *arr (capacity *cap): 0, or -1. */
static int reserve(void **arr, size_t *cap, size_t n, size_t more, size_t elem)
{
    if (n + more <= *cap)
        return 0;
    void *q = realloc(*arr, (n + more) * elem);
    if (!q)
        return -1;
    *arr = q;
    *cap = n + more;
    return 0;
}

void top_add_ungrouped(struct dm_snapshot *s, const char *state_dir)
{
    struct bs_view v;
    bs_view_build(&v, s->devs, s->ndevs, state_dir);
    size_t nproc = 0;
    for (size_t i = 0; i < v.nprocs; i++)
        nproc += ungrouped(&v.procs[i]);
    if (nproc == 0 || reserve((void **)&s->procs, &s->capprocs, s->nprocs, nproc, sizeof *s->procs) < 0 ||
        reserve((void **)&s->rows, &s->caprows, s->nrows, (size_t)s->ndevs, sizeof *s->rows) < 0) {
        s->oom |= nproc != 0;
        bs_view_free(&v);
        return;
    }
    for (int d = 0; d < s->ndevs; d++) {
        struct dm_row r = {.gpu = (int)s->devs[d].index, .limit = GM_UNLIMITED, .dev = d};
        snprintf(r.group, sizeof r.group, "%s", TOP_NONE);
        snprintf(r.uuid, sizeof r.uuid, "%s", s->devs[d].uuid);
        for (size_t i = 0; i < v.nprocs; i++) {
            const struct bs_gpuproc *p = &v.procs[i];
            if (p->dev != d || !ungrouped(p))
                continue;
            uint64_t used = p->used != BS_USED_UNKNOWN ? p->used : 0;
            r.procs++;
            r.used += used;
            struct dm_procrow pr = {.pid = (int)p->host_pid, .host_pid = (int)p->host_pid, .used = used, .peak = used};
            snprintf(pr.group, sizeof pr.group, "%s", TOP_NONE);
            snprintf(pr.comm, sizeof pr.comm, "%s", p->comm);
            s->procs[s->nprocs++] = pr;
        }
        r.peak = r.used;
        if (r.procs)
            s->rows[s->nrows++] = r;
    }
    bs_view_free(&v);
}
