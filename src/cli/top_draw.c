/* One frame of gpumem top: a title, a bar per device (NVML's physical
 * used/total beside the sum of limits granted on it), the groups with their
 * processes under the expanded ones, and a line of keys. Every row is
 * addressed and cleared explicitly, so a frame never depends on the last. */
#include "top.h"
#include "../daemon/policy.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SGR_RESET "\033[m"
#define SGR_REVERSE "\033[7m"
#define SGR_BOLD "\033[1m"
#define SGR_BOLD_REVERSE "\033[1;7m"
#define SGR_YELLOW "\033[33m"
#define SGR_RED "\033[1;31m"

/* The attribute of a share of a limit: yellow from 80%, red from 100%
 * (bold only, without colours). NULL below. */
static const char *pct_attr(const struct top_view *v, double pct)
{
    if (pct >= 100)
        return v->color ? SGR_RED : SGR_BOLD;
    if (pct >= 80)
        return v->color ? SGR_YELLOW : NULL;
    return NULL;
}

const char *top_size(uint64_t bytes, char *buf, size_t len)
{
    static const char units[] = "BKMGTPE";
    if (bytes == GM_UNLIMITED) {
        snprintf(buf, len, "none");
        return buf;
    }
    double v;
    int i = gm_size_scale(bytes, &v);
    if (i == 0)
        snprintf(buf, len, "%llu", (unsigned long long)bytes);
    else if (v == (double)(uint64_t)v)
        snprintf(buf, len, "%llu%c", (unsigned long long)v, units[i]);
    else if (v < 10)
        snprintf(buf, len, "%.2f%c", v, units[i]);
    else if (v < 100)
        snprintf(buf, len, "%.1f%c", v, units[i]);
    else
        snprintf(buf, len, "%.0f%c", v, units[i]);
    return buf;
}

/* A row being written: visible columns are counted so nothing passes the
 * width (text from the groups is ASCII-only by then; see clean()). */
struct row {
    struct gbuf *b;
    int col, width;
    const char *base;   /* attribute of the whole row, or NULL */
};

static void row_begin(struct row *r, struct gbuf *b, int y, int width, const char *base)
{
    *r = (struct row){b, 0, width, base};
    gbuf_printf(b, "\033[%d;1H" SGR_RESET, y + 1);
    if (base)
        gbuf_puts(b, base);
}

static void put(struct row *r, const char *attr, const char *text)
{
    int room = r->width - r->col;
    int n = (int)strlen(text);
    if (n > room)
        n = room;
    if (n <= 0)
        return;
    if (attr)
        gbuf_puts(r->b, attr);
    gbuf_printf(r->b, "%.*s", n, text);
    if (attr) {
        gbuf_puts(r->b, SGR_RESET);
        if (r->base)
            gbuf_puts(r->b, r->base);
    }
    r->col += n;
}

static void putf(struct row *r, const char *attr, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void putf(struct row *r, const char *attr, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    put(r, attr, text);
}

static void row_end(struct row *r)
{
    if (r->base)
        while (r->col < r->width) {
            gbuf_puts(r->b, " ");
            r->col++;
        }
    gbuf_puts(r->b, SGR_RESET "\033[K");
}

/* Bytes a process or a container chose are shown, never obeyed: control
 * characters and anything outside ASCII become '?'. */
static void clean(char *dst, size_t len, const char *src)
{
    size_t i = 0;
    for (; src[i] && i + 1 < len; i++)
        dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
    dst[i] = '\0';
}

/* Which GPU a group's row is on: its NVML index, or for a MIG device its
 * GPU's index and its MIG device index ("0/1"), as gpumem ps shows it. */
static void gpu_cell(const struct top_view *v, const struct dm_row *row, char *buf, size_t len)
{
    if (row->gpu < 0)
        return;
    snprintf(buf, len, "%d", row->gpu);
    for (int i = 0; i < v->snap.ndevs; i++)
        if (v->snap.devs[i].mig && strcmp(v->snap.devs[i].uuid, row->uuid) == 0)
            snprintf(buf, len, "%d/%u", row->gpu, v->snap.devs[i].mig_index);
}

static void draw_device(struct row *r, const struct top_view *v, const struct dm_device *d)
{
    char a[16], b[16], g[16];
    if (d->mig) { /* under its GPU: "  0/1 3g.40gb" */
        char prof[16];
        clean(prof, sizeof prof, d->profile);
        putf(r, NULL, "  %u/%u %s", d->index, d->mig_index, prof);
    } else {
        putf(r, SGR_BOLD, "GPU%-2u", d->index);
    }
    /* Over-commit: limits granted on the device add up to more than it
     * has. Marked in the room the bar leaves, never clipped. */
    int over = d->mem_ok && d->granted != GM_UNLIMITED && d->granted > d->total;
    const char *over_attr = v->color ? SGR_RED : SGR_BOLD_REVERSE;
    if (!d->mem_ok) {
        putf(r, NULL, " memory N/A   granted %s", top_size(d->granted, g, sizeof g));
        return;
    }
    /* "GPU0  [|||...   ]  1.25G/16G  granted 2G": the bar takes what is left. */
    char tail[96];
    snprintf(tail, sizeof tail, " %6s/%-6s granted %s", top_size(d->used, a, sizeof a), top_size(d->total, b, sizeof b),
             top_size(d->granted, g, sizeof g));
    int bar = r->width - r->col - 3 - (int)strlen(tail) - (over ? 7 : 0);
    if (bar >= 10) {
        int fill = d->total ? (int)((double)d->used / (double)d->total * bar + 0.5) : 0;
        if (fill > bar)
            fill = bar;
        char pct[8];
        snprintf(pct, sizeof pct, "%.0f%%", d->total ? 100.0 * (double)d->used / (double)d->total : 0.0);
        put(r, NULL, " [");
        /* The percentage sits at the bar's right end, as in htop. */
        int plen = (int)strlen(pct);
        for (int i = 0; i < bar; i++) {
            char c[2] = {i < fill ? '|' : ' ', 0};
            if (i >= bar - plen)
                c[0] = pct[i - (bar - plen)];
            put(r, i < fill ? SGR_BOLD : NULL, c);
        }
        put(r, NULL, "]");
    }
    if (over && r->width - r->col < (int)strlen(tail) + 7) {
        /* Too narrow for all of it: the mark wins over the figures. */
        snprintf(tail, sizeof tail, " %s/%s", top_size(d->granted, g, sizeof g), top_size(d->total, b, sizeof b));
        put(r, NULL, tail);
    } else {
        put(r, NULL, tail);
    }
    if (over)
        put(r, over_attr, " (over)");
}

/* Column layout shared by the header, group rows and process rows:
 * marker, name, then " GPU USED LIMIT %LIM PEAK PROCS REFUSED LEAK", " SWAP"
 * while any group shown may spill to host memory, and the history sparkline
 * in what is left. */
#define NUM_WIDTH_BASE 55   /* 2 (marker) + the fixed columns, without the name */
#define SWAP_WIDTH 8
static int swap_shown;      /* this frame has the SWAP column (top_draw) */
#define NUM_WIDTH (NUM_WIDTH_BASE + (swap_shown ? SWAP_WIDTH : 0))
#define HIST_MIN 6      /* a narrower history column is left out */

static int name_width(int width)
{
    int w = width - NUM_WIDTH;
    return w < 8 ? 8 : w > 20 ? 20 : w;
}

static int hist_width(int width)
{
    int w = width - NUM_WIDTH - name_width(width) - 1;
    return w < HIST_MIN ? 0 : w;
}

/* ASCII, so any terminal and locale draws it: one character per sample,
 * from 0 ('_') to the highest usage in view ('#'). */
static void sparkline(struct row *r, const struct dm_hist *h, int w)
{
    static const char ramp[] = "_.-:=+*#";
    char s[256];
    if (w <= 0)
        return;
    if (w > (int)sizeof s - 1)
        w = (int)sizeof s - 1;
    size_t n = h ? h->n : 0, k0 = n > (size_t)w ? n - (size_t)w : 0;
    uint64_t max = 0;
    for (size_t k = k0; k < n; k++)
        if (h->used[k] > max)
            max = h->used[k];
    int len = 0;
    for (size_t k = k0; k < n; k++)
        s[len++] = max ? ramp[(size_t)((double)h->used[k] / (double)max * 7 + 0.5)] : ramp[0];
    s[len] = '\0';
    putf(r, NULL, " %-*s", w, len ? s : "-");
}

static void draw_header(struct row *r, const struct top_view *v)
{
    static const char *labels[] = {"GPU", "USED", "LIMIT", "%LIM", "PEAK", "PROCS", "REFUSED", "LEAK", "SWAP"};
    static const int widths[] = {3, 7, 7, 5, 7, 5, 7, 4, 7};
    int nw = name_width(r->width);
    char name[32];
    snprintf(name, sizeof name, "%sGROUP", v->sort == TOP_SORT_NAME ? "*" : "");
    putf(r, NULL, "  %-*s", nw, name);
    for (int i = 0; i < (swap_shown ? 9 : 8); i++) {
        int sorted = (i == 1 && v->sort == TOP_SORT_USED) || (i == 2 && v->sort == TOP_SORT_LIMIT) ||
                     (i == 3 && v->sort == TOP_SORT_PCT) || (i == 6 && v->sort == TOP_SORT_REFUSALS);
        char l[16];
        snprintf(l, sizeof l, "%s%s", sorted ? "*" : "", labels[i]);
        putf(r, NULL, " %*s", widths[i], l);
    }
    if (hist_width(r->width))
        putf(r, NULL, " %s", v->daemon.ok ? "HISTORY (daemon)" : "HISTORY");
}

/* One line of a group: its GPU `row` (NULL: it has used none yet); the
 * first line (`first`) carries its name and expansion mark. */
static void draw_group(struct row *r, const struct top_view *v, const struct top_group *g, const struct dm_row *row,
                       int first, int selected)
{
    char name[GM_NAME_LEN + 1], gpu[16] = "-", u[16], l[16], pk[16], pct[16] = "-", procs[16], ref[40];
    int nw = name_width(r->width);
    clean(name, sizeof name, first ? g->name : "");
    double p = -1;
    uint64_t used = 0, limit = 0, peak = 0, refusals = 0;
    const struct dm_hist *h = NULL;
    int from_daemon = 0;
    if (row) {
        used = row->used;
        limit = row->limit;
        peak = row->peak;
        refusals = row->refusals;
        gpu_cell(v, row, gpu, sizeof gpu);
        if (limit != GM_UNLIMITED && limit) {
            p = 100.0 * (double)used / (double)limit;
            snprintf(pct, sizeof pct, "%.0f%%", p);
        }
        snprintf(procs, sizeof procs, "%d", row->procs);
        h = top_history(v, g->name, row->uuid, &from_daemon);
    } else {
        snprintf(procs, sizeof procs, "%zu", g->nproc);
    }
    /* Refusals within the history shown, after the total: "3 +2". */
    uint64_t recent = h ? dm_hist_recent_refusals(h) : 0;
    if (recent)
        snprintf(ref, sizeof ref, "%llu +%llu", (unsigned long long)refusals, (unsigned long long)recent);
    else
        snprintf(ref, sizeof ref, "%llu", (unsigned long long)refusals);
    char mark = !first || g->nproc == 0 ? ' ' : top_is_expanded(v, g->name) ? '-' : '+';
    putf(r, NULL, "%c %-*.*s %3s %7s %7s", mark, nw, nw, name, gpu, top_size(used, u, sizeof u),
         top_size(row ? limit : g->limit, l, sizeof l));
    char cell[48];
    snprintf(cell, sizeof cell, " %5s", pct);
    put(r, pct_attr(v, p), cell);
    putf(r, NULL, " %7s %5s", top_size(peak, pk, sizeof pk), procs);
    put(r, NULL, " ");
    snprintf(cell, sizeof cell, "%7s", ref);
    put(r, refusals ? (selected ? SGR_BOLD : SGR_BOLD_REVERSE) : NULL, cell);
    /* LEAK: the daemon's leak detection; "-" without a daemon. */
    int leak = v->daemon.ok && h && from_daemon ? h->leak : -1;
    put(r, NULL, " ");
    put(r, leak == 1 ? (v->color ? SGR_RED : SGR_BOLD_REVERSE) : NULL, leak < 0 ? "   -" : leak ? " YES" : "  no");
    /* SWAP: spilled to host memory from this GPU; "-" when the group may not spill. */
    char sw[16] = "-";
    if (row && (row->swap_limit || row->swap_used))
        top_size(row->swap_used, sw, sizeof sw);
    if (swap_shown)
        putf(r, NULL, " %7s", sw);
    sparkline(r, h, hist_width(r->width));
}

static void draw_proc(struct row *r, const struct dm_procrow *p)
{
    char comm[32], who[96], u[16], pk[16], ref[24];
    int nw = name_width(r->width);
    clean(comm, sizeof comm, p->comm);
    if (p->host_pid && p->host_pid != p->pid)
        snprintf(who, sizeof who, "`- %d (host %d) %s", p->pid, p->host_pid, comm);
    else
        snprintf(who, sizeof who, "`- %d %s", p->pid, comm);
    snprintf(ref, sizeof ref, "%llu", (unsigned long long)p->refusals);
    /* A process's name takes the GPU column too; its bytes are over the
     * group's GPUs (gpumem ps -p --format json has them per process). */
    putf(r, NULL, "  %-*.*s %7s %7s %5s %7s %5s", nw + 4, nw + 4, who, top_size(p->used, u, sizeof u), "", "",
         top_size(p->peak, pk, sizeof pk), "");
    put(r, NULL, " ");
    char cell[32];
    snprintf(cell, sizeof cell, "%7s", ref);
    put(r, p->refusals ? SGR_BOLD : NULL, cell);
    put(r, NULL, "     ");
    char sw[16] = "";
    if (p->swap_used)
        top_size(p->swap_used, sw, sizeof sw);
    if (swap_shown)
        putf(r, NULL, " %7s", sw);
}

/* Below the groups: the selected group's history on each of its GPUs (up
 * to `max` lines), wide enough to see a leak grow or a spike. */
static int draw_history(struct gbuf *out, const struct top_view *v, int y, int width, int max)
{
    if (!v->ngroups || max <= 0)
        return 0;
    const struct top_group *g = &v->groups[v->sel];
    char name[GM_NAME_LEN + 1];
    clean(name, sizeof name, g->name);
    int n = 0;
    for (size_t i = 0; i < g->nrow && n < max; i++, n++) {
        const struct dm_row *row = &v->snap.rows[g->row0 + i];
        int from_daemon;
        const struct dm_hist *h = top_history(v, g->name, row->uuid, &from_daemon);
        double step = from_daemon ? v->daemon.step : v->delay > 1 ? v->delay : 1;
        struct row r;
        row_begin(&r, out, y + n, width, NULL);
        char gpu[16] = "?";
        gpu_cell(v, row, gpu, sizeof gpu);
        char head[160];
        snprintf(head, sizeof head, "%.20s GPU%s %s %.0fs:", name, gpu, from_daemon ? "daemon" : "seen",
                 h ? (double)h->n * step : 0.0);
        put(&r, SGR_BOLD, head);
        int w = width - r.col - 1;
        sparkline(&r, h, w > DM_HIST ? DM_HIST : w);
        row_end(&r);
    }
    return n;
}

static const char *const help_text[] = {
    "gpumem top: GPU memory by group (container), a line per group and GPU",
    "",
    "  GPU      NVML index of the GPU (as nvidia-smi numbers it)",
    "  USED     bytes the group holds on that GPU now; LIMIT its limit there",
    "  %LIM     USED of LIMIT: yellow from 80%, red from 100% (NO_COLOR: off)",
    "  PEAK     highest usage on the GPU; PROCS live processes holding memory",
    "  REFUSED  allocations refused for the limit; +N: within the history",
    "  LEAK     the daemon's leak detection: YES/no; - when no daemon runs",
    "  SWAP     bytes spilled to host memory past the limit (shown while a",
    "           group may spill); - for a group without swap",
    "  HISTORY  usage over time: the daemon's last minutes when it runs,",
    "           else what top has seen since it started ('_' 0 .. '#' max)",
    "  GPU lines: memory in use / total, limits granted; (over) when the",
    "           limits granted on a GPU add up to more than it has",
    "",
    "  j/k, arrows   move            Enter/e/Space  expand processes",
    "  s             cycle the sort  u/p/n/l/r      used/%lim/name/limit/refused",
    "  a             all groups      q              quit",
    "",
    "Any key returns.",
};

/* A body line: a group (proc < 0) or one of its processes. */
struct line {
    size_t group;
    long proc;
    size_t gpu;         /* which of the group's GPU lines */
};

void top_draw(struct top_view *v, struct gbuf *out)
{
    int rows = v->rows, width = v->cols - 1, y = 0;
    struct row r;
    swap_shown = 0;
    for (size_t i = 0; i < v->snap.nrows; i++)
        swap_shown |= v->snap.rows[i].swap_limit || v->snap.rows[i].swap_used;
    gbuf_puts(out, "\033[H");
    if (rows < 6 || v->cols < 40) {
        row_begin(&r, out, 0, width, NULL);
        put(&r, NULL, "gpumem top: terminal too small");
        row_end(&r);
        gbuf_puts(out, "\033[J");
        return;
    }
    /* Title. */
    size_t nprocs = 0;
    for (size_t i = 0; i < v->ngroups; i++)
        nprocs += v->groups[i].nproc;
    char clock[16] = "";
    time_t now = time(NULL);
    struct tm tm;
    if (localtime_r(&now, &tm))
        strftime(clock, sizeof clock, "%H:%M:%S", &tm);
    row_begin(&r, out, y++, width, NULL);
    put(&r, SGR_BOLD, "gpumem top");
    putf(&r, NULL, " - %zu group%s, %zu process%s - sort %s - every %gs - %s", v->ngroups,
         v->ngroups == 1 ? "" : "s", nprocs, nprocs == 1 ? "" : "es", top_sort_name(v->sort), v->delay, clock);
    row_end(&r);

    /* Devices: at most what leaves room for a few groups. */
    int maxdev = rows - 6;
    if (!v->snap.nvml) {
        row_begin(&r, out, y++, width, NULL);
        putf(&r, NULL, "GPUs: N/A (%s)", v->nvml_err[0] ? v->nvml_err : "NVML unavailable");
        row_end(&r);
    } else if (v->snap.ndevs == 0) {
        row_begin(&r, out, y++, width, NULL);
        put(&r, NULL, "GPUs: none found by NVML");
        row_end(&r);
    }
    for (int i = 0; i < v->snap.ndevs; i++) {
        row_begin(&r, out, y++, width, NULL);
        if (i == maxdev - 1 && v->snap.ndevs > maxdev) {
            putf(&r, NULL, "... %d more GPUs", v->snap.ndevs - i);
            row_end(&r);
            break;
        }
        draw_device(&r, v, &v->snap.devs[i]);
        row_end(&r);
    }
    if (v->snap.nbad) {
        row_begin(&r, out, y++, width, NULL);
        putf(&r, SGR_BOLD, "%zu group%s skipped: %s", v->snap.nbad, v->snap.nbad == 1 ? "" : "s", v->snap.bad[0].why);
        row_end(&r);
    }
    char pol[1024], state[PATH_MAX];
    pl_summary_line(gm_state_dir(state, sizeof state), pol, sizeof pol);
    if (*pol) { /* waiting starts and reclaims in progress (gpumem queue) */
        row_begin(&r, out, y++, width, NULL);
        putf(&r, SGR_BOLD, "policy: %s", pol);
        row_end(&r);
    }
    row_begin(&r, out, y++, width, NULL);
    row_end(&r);
    if (v->help) {
        for (size_t i = 0; i < sizeof help_text / sizeof help_text[0] && y < rows - 1; i++) {
            row_begin(&r, out, y++, width, NULL);
            put(&r, NULL, help_text[i]);
            row_end(&r);
        }
        for (; y < rows - 1; y++) {
            row_begin(&r, out, y, width, NULL);
            row_end(&r);
        }
        row_begin(&r, out, rows - 1, width, SGR_REVERSE);
        put(&r, NULL, " any key: back  q quit");
        row_end(&r);
        return;
    }
    row_begin(&r, out, y++, width, SGR_REVERSE);
    draw_header(&r, v);
    row_end(&r);

    /* Body: groups (a line per GPU), and the processes of expanded ones,
     * scrolled so the selection stays in view; under it, the selected
     * group's history when there is room. */
    size_t selrows = v->ngroups ? v->groups[v->sel].nrow : 0;
    int nhist = rows - 1 - y >= 12 && selrows ? (selrows > 2 ? 2 : (int)selrows) : 0;
    int body = rows - 1 - y - nhist;
    size_t nlines = 0, sel_line = 0;
    for (size_t i = 0; i < v->ngroups; i++)
        nlines += (v->groups[i].nrow ? v->groups[i].nrow : 1) +
                  (top_is_expanded(v, v->groups[i].name) ? v->groups[i].nproc : 0);
    struct line *lines = nlines ? calloc(nlines, sizeof *lines) : NULL;
    size_t k = 0;
    for (size_t i = 0; lines && i < v->ngroups; i++) {
        if (i == v->sel)
            sel_line = k;
        lines[k++] = (struct line){i, -1, 0};
        for (size_t d = 1; d < v->groups[i].nrow; d++)
            lines[k++] = (struct line){i, -1, d};
        if (top_is_expanded(v, v->groups[i].name))
            for (size_t j = 0; j < v->groups[i].nproc; j++)
                lines[k++] = (struct line){i, (long)(v->groups[i].proc0 + j), 0};
    }
    if (body > 0) {
        if (sel_line < v->scroll)
            v->scroll = sel_line;
        else if (sel_line >= v->scroll + (size_t)body)
            v->scroll = sel_line - (size_t)body + 1;
        if (v->scroll + (size_t)body > nlines)
            v->scroll = nlines > (size_t)body ? nlines - (size_t)body : 0;
    }
    if (!lines && v->ngroups == 0 && body > 0) {
        row_begin(&r, out, y++, width, NULL);
        put(&r, NULL, v->all ? "  no groups" : "  no groups with processes (a: show all)");
        row_end(&r);
    }
    for (size_t i = v->scroll; lines && i < nlines && y < rows - 1 - nhist; i++) {
        const struct line *ln = &lines[i];
        int selected = ln->proc < 0 && ln->group == v->sel;
        row_begin(&r, out, y++, width, selected ? SGR_REVERSE : NULL);
        const struct top_group *g = &v->groups[ln->group];
        if (ln->proc < 0)
            draw_group(&r, v, g, g->nrow ? &v->snap.rows[g->row0 + ln->gpu] : NULL, ln->gpu == 0, selected);
        else
            draw_proc(&r, &v->snap.procs[ln->proc]);
        row_end(&r);
    }
    free(lines);
    for (; y < rows - 1 - nhist; y++) {
        row_begin(&r, out, y, width, NULL);
        row_end(&r);
    }
    y += draw_history(out, v, y, width, nhist);
    row_begin(&r, out, rows - 1, width, SGR_REVERSE);
    putf(&r, NULL, " q quit  ? help  j/k move  Enter expand  s/u/p/n/l/r sort  a %s", v->all ? "live" : "all");
    row_end(&r);
}
