/* Leak detection in the daemon: every interval the live processes of every
 * group (one observation per process and device it has used) go into the
 * table of leak.c, which keeps a bounded ring of samples for each and
 * judges them; transitions become leak_suspected / leak_cleared events, and
 * the rows of a snapshot get their gpumem_group_leak_suspected flags. */
#include "daemon.h"
#include "leak.h"

#include "gpumem/elfsym.h"
#include "gpumem/live_peek.h"
#include "gpumem/live_table.h"
#include "gpumem/ticks.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static struct lk_table table;
static struct lk_params params;
static int configured;

void dm_leak_configure(const struct lk_params *p)
{
    params = *p;
    configured = 1;
}

static const struct lk_params *get_params(void)
{
    if (!configured) {
        lk_params_default(&params);
        configured = 1;
    }
    return &params;
}

static const struct dm_row *row_of(const struct dm_snapshot *s, const char *group, int dev)
{
    for (size_t i = 0; i < s->nrows; i++)
        if (s->rows[i].dev == dev && strcmp(s->rows[i].group, group) == 0)
            return &s->rows[i];
    return NULL;
}

static const struct dm_procrow *proc_of(const struct dm_snapshot *s, const char *group, int pid)
{
    for (size_t i = 0; i < s->nprocs; i++)
        if (s->procs[i].pid == pid && strcmp(s->procs[i].group, group) == 0)
            return &s->procs[i];
    return NULL;
}

#define EVIDENCE_OLDEST 5

/* The evidence a leak event carries besides the numbers: the suspect's
 * oldest live allocations on that device, copied out of its memory. */
static void oldest_allocations(struct gbuf *f, const struct dm_procrow *p, int dev)
{
    struct gm_live_alloc *a;
    size_t n;
    if (!p || !p->host_pid) {
        gbuf_puts(f, ",\"oldest\":null,\"oldest_error\":\"host pid unknown\"");
        return;
    }
    if (gm_live_peek(p->host_pid, p->table_addr, p->table_layout, &a, &n) != 0) {
        gbuf_puts(f, ",\"oldest\":null,\"oldest_error\":");
        gbuf_json(f, gm_live_peek_strerror(errno));
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (a[i].gd == dev && a[i].kind != AK_CTX)
            a[k++] = a[i];
    gm_live_sort_oldest(a, k);
    struct gm_symbolizer *sym = NULL;
    gbuf_puts(f, ",\"oldest\":[");
    for (size_t i = 0; i < k && i < EVIDENCE_OLDEST; i++) {
        gbuf_printf(f, "%s{\"address\":\"0x%llx\",\"bytes\":%llu,\"api\":\"%s\",\"age_seconds\":%.1f,\"site\":",
                    i ? "," : "", (unsigned long long)a[i].key, (unsigned long long)a[i].bytes,
                    gm_alloc_kind_name(a[i].kind), gm_ticks_age_s(a[i].born));
        if (a[i].site && (sym || (sym = gm_symbolizer_open(p->host_pid)))) {
            char where[512];
            gbuf_json(f, gm_symbolize(sym, a[i].site, where, sizeof where));
        } else {
            gbuf_puts(f, "null");
        }
        gbuf_puts(f, "}");
    }
    gbuf_printf(f, "],\"live_allocations\":%zu", k);
    gm_symbolizer_close(sym);
    free(a);
}

static void on_change(void *ctx, const struct lk_track *t, int suspected, int exited)
{
    const struct dm_snapshot *s = ctx;
    const struct dm_row *r = row_of(s, t->group, t->dev);
    const struct dm_procrow *p = exited ? NULL : proc_of(s, t->group, t->pid);
    struct gbuf f = {0};
    gbuf_puts(&f, ",\"group\":");
    gbuf_json(&f, t->group);
    if (r) {
        gbuf_puts(&f, ",\"container\":");
        gbuf_json(&f, r->container);
        gbuf_puts(&f, ",\"pod\":");
        gbuf_json(&f, r->pod);
        gbuf_puts(&f, ",\"namespace\":");
        gbuf_json(&f, r->ns);
        gbuf_puts(&f, ",\"uuid\":");
        gbuf_json(&f, r->uuid);
        if (r->gpu >= 0)
            gbuf_printf(&f, ",\"gpu\":%d", r->gpu);
        else
            gbuf_puts(&f, ",\"gpu\":null");
    }
    gbuf_printf(&f, ",\"pid\":%d", (int)t->pid);
    if (p) {
        gbuf_printf(&f, ",\"host_pid\":%d,\"comm\":", p->host_pid);
        gbuf_json(&f, p->comm);
    }
    const struct lk_verdict *v = &t->last;
    if (suspected) {
        gbuf_printf(&f,
                    ",\"reason\":\"%s\",\"window_seconds\":%.1f,\"start_used\":%llu,\"end_used\":%llu,"
                    "\"growth\":%llu,\"rate_bytes_per_second\":%.0f,\"allocs\":%llu,\"frees\":%llu",
                    v->kind == LK_IDLE_GROWTH ? "idle_growth" : "long_growth", v->window,
                    (unsigned long long)v->start_used, (unsigned long long)v->end_used,
                    (unsigned long long)(v->end_used - v->start_used), v->rate, (unsigned long long)v->allocs,
                    (unsigned long long)v->frees);
        oldest_allocations(&f, p, t->dev);
        dm_log("warn", "leak_suspected", f.p);
    } else {
        gbuf_printf(&f, ",\"reason\":\"%s\"", exited ? "exited" : "stopped_growing");
        dm_log("info", "leak_cleared", f.p);
    }
    gbuf_free(&f);
}

void dm_leak_mark(struct dm_snapshot *s)
{
    for (size_t i = 0; i < s->nrows; i++)
        s->rows[i].leak = lk_table_suspected(&table, s->rows[i].group, s->rows[i].dev);
}

void dm_leak_tick(struct dm_snapshot *s, double now)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nprocs; i++)
        n += s->procs[i].ndev;
    struct lk_obs *obs = calloc(n ? n : 1, sizeof *obs);
    if (!obs)
        return;
    n = 0;
    for (size_t i = 0; i < s->nprocs; i++) {
        const struct dm_procrow *p = &s->procs[i];
        for (uint32_t d = 0; d < p->ndev; d++) {
            /* A device the process never used is not tracked. */
            if (p->charged[d] == 0 && p->allocs == 0)
                continue;
            struct lk_obs *o = &obs[n++];
            snprintf(o->group, sizeof o->group, "%s", p->group);
            o->pid = p->pid;
            o->start_time = p->start_time;
            o->dev = (int)d;
            o->used = p->charged[d];
            o->allocs = p->allocs;
            o->frees = p->frees;
        }
    }
    lk_table_update(&table, obs, n, now, get_params(), on_change, s);
    free(obs);
    dm_leak_mark(s);
}

void dm_leak_reset(void) { lk_table_free(&table); }
