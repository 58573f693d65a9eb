/* gpumem ps: the processes on a GPU that belong to no group, as a pseudo
 * group "(none)" after the groups: NVML's own list joined to the groups the
 * way the daemon's backstop joins it (src/daemon/backstop_join.c). A
 * process that bypassed gpumem shows here, whether or not a daemon runs. */
#include "cli.h"
#include "ps_none.h"

#include <string.h>

#include "gpumem/size.h"
#include "../daemon/backstop.h"

/* Per device: the ungrouped processes' count and bytes. */
static void totals(const struct bs_view *v, int d, unsigned *n, uint64_t *used)
{
    *n = 0;
    *used = 0;
    for (size_t i = 0; i < v->nprocs; i++) {
        const struct bs_gpuproc *p = &v->procs[i];
        if (p->dev != d || p->how != BS_JOIN_NONE || !p->start)
            continue;
        (*n)++;
        *used += p->used != BS_USED_UNKNOWN ? p->used : 0;
    }
}

static void json_procs(const struct bs_view *v)
{
    printf(",\"process_list\":[");
    int k = 0;
    for (size_t i = 0; i < v->nprocs; i++) {
        const struct bs_gpuproc *p = &v->procs[i];
        if (p->how != BS_JOIN_NONE || !p->start)
            continue;
        printf("%s{\"pid\":null,\"host_pid\":%u,\"command\":", k++ ? "," : "", p->host_pid);
        json_str(p->comm);
        printf(",\"gpu\":%u,\"used\":", v->devs[p->dev].index);
        if (p->used == BS_USED_UNKNOWN)
            printf("null}");
        else
            printf("%llu}", (unsigned long long)p->used);
    }
    printf("]");
}

static void show(const struct bs_view *v, enum ps_none_format fmt, int procs, int first)
{
    unsigned all = 0;
    for (size_t i = 0; i < v->nprocs; i++)
        all += v->procs[i].how == BS_JOIN_NONE && v->procs[i].start;
    if (!all)
        return;
    if (fmt == PS_NONE_JSON)
        printf("%s{\"group\":null,\"name\":\"(none)\",\"container_id\":\"\",\"container\":\"\",\"pod\":\"\","
               "\"namespace\":\"\",\"processes\":%u,\"devices\":[",
               first ? "" : ",", all);
    int shown = 0;
    for (int d = 0; d < v->ndevs; d++) {
        unsigned n;
        uint64_t used;
        totals(v, d, &n, &used);
        if (!n)
            continue;
        const struct dm_device *dev = &v->devs[d];
        char a[32];
        if (fmt == PS_NONE_JSON)
            printf("%s{\"gpu\":%u,\"uuid\":\"%s\",\"limit\":null,\"leak_suspected\":null,\"used\":%llu,"
                   "\"peak\":null,\"refusals\":null}",
                   shown ? "," : "", dev->index, dev->uuid, (unsigned long long)used);
        else if (fmt == PS_NONE_CSV)
            printf("(none),,%u,%s,,%llu,,,%u,\n", dev->index, dev->uuid, (unsigned long long)used, n);
        else
            printf("%-20s %-14s %3u %-12.*s %10s %10s %10s %6s %5u %8s\n", shown ? "" : "(none)", shown ? "" : "-",
                   dev->index, GPU_SHORT_LEN, dev->uuid, "-", gm_format_size(used, a, sizeof a), "-", "-", n, "-");
        shown++;
    }
    if (fmt == PS_NONE_JSON) {
        printf("]");
        if (procs)
            json_procs(v);
        printf("}");
        return;
    }
    for (size_t i = 0; fmt == PS_NONE_TABLE && procs && i < v->nprocs; i++) {
        const struct bs_gpuproc *p = &v->procs[i];
        if (p->how != BS_JOIN_NONE || !p->start)
            continue;
        char a[32] = "unknown";
        if (p->used != BS_USED_UNKNOWN)
            gm_format_size(p->used, a, sizeof a);
        printf("  host pid %-8u in no group (GPU %u)  %-16s used %10s\n", p->host_pid, v->devs[p->dev].index, p->comm,
               a);
    }
}

void ps_show_ungrouped(const char *state_dir, enum ps_none_format fmt, int procs, int first)
{
    char err[512];
    if (open_nvml_view(0, err, sizeof err) != 0)
        return; /* no NVML: nothing is known of processes outside the groups */
    struct dm_device devs[DM_MAX_NVML_DEVS];
    int n = dm_nvml_read(devs, DM_MAX_NVML_DEVS);
    struct bs_view v;
    bs_view_build(&v, devs, n, state_dir);
    show(&v, fmt, procs, first);
    bs_view_free(&v);
    dm_nvml_release(devs, n);
}
