/* One frame of gpumem top: a title, a bar per device (NVML's physical
 * used/total beside the sum of limits granted on it), the groups with their
 * processes under the expanded ones, and a line of keys. Every row is
 * addressed and cleared explicitly, so a frame never depends on the last. */
#include "top.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SGR_RESET "\033[m"
#define SGR_REVERSE "\033[7m"
#define SGR_BOLD "\033[1m"
#define SGR_BOLD_REVERSE "\033[1;7m"

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

static void draw_device(struct row *r, const struct dm_device *d)
{
    char a[16], b[16], g[16];
    putf(r, SGR_BOLD, "GPU%-2u", d->index);
    if (!d->mem_ok) {
        putf(r, NULL, " memory N/A   granted %s", top_size(d->granted, g, sizeof g));
        return;
    }
    /* "GPU0  [|||...   ]  1.25G/16G  granted 2G": the bar takes what is left. */
    char tail[96];
    snprintf(tail, sizeof tail, " %6s/%-6s granted %s", top_size(d->used, a, sizeof a), top_size(d->total, b, sizeof b),
             top_size(d->granted, g, sizeof g));
    int bar = r->width - r->col - 3 - (int)strlen(tail);
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
    put(r, NULL, tail);
    if (d->granted > d->total)
        put(r, SGR_BOLD, " (over)");
}

/* Column layout shared by the header, group rows and process rows. */
#define NUM_COLS " %7s %7s %5s %7s %5s %7s %4s"
#define NUM_WIDTH 51    /* 2 (marker) + the columns above, without the name */

static int name_width(int width)
{
    int w = width - NUM_WIDTH;
    return w < 8 ? 8 : w;
}

static void draw_header(struct row *r, const struct top_view *v)
{
    static const char *labels[] = {"USED", "LIMIT", "%LIM", "PEAK", "PROCS", "REFUSED", "LEAK"};
    static const int widths[] = {7, 7, 5, 7, 5, 7, 4};
    int nw = name_width(r->width);
    char name[32];
    snprintf(name, sizeof name, "%sGROUP", v->sort == TOP_SORT_NAME ? "*" : "");
    putf(r, NULL, "  %-*s", nw, name);
    for (int i = 0; i < 7; i++) {
        int sorted = (i == 0 && v->sort == TOP_SORT_USED) || (i == 1 && v->sort == TOP_SORT_LIMIT) ||
                     (i == 5 && v->sort == TOP_SORT_REFUSALS);
        char l[16];
        snprintf(l, sizeof l, "%s%s", sorted ? "*" : "", labels[i]);
        putf(r, NULL, " %*s", widths[i], l);
    }
}

static void draw_group(struct row *r, const struct top_view *v, const struct top_group *g, int selected)
{
    char name[GM_NAME_LEN + 1], u[16], l[16], pk[16], pct[16] = "-", procs[16], ref[24];
    int nw = name_width(r->width);
    clean(name, sizeof name, g->name);
    if (g->limit != GM_UNLIMITED && g->limit)
        snprintf(pct, sizeof pct, "%.0f%%", 100.0 * (double)g->used / (double)g->limit);
    snprintf(procs, sizeof procs, "%zu", g->nproc);
    snprintf(ref, sizeof ref, "%llu", (unsigned long long)g->refusals);
    char mark = g->nproc == 0 ? ' ' : top_is_expanded(v, g->name) ? '-' : '+';
    putf(r, NULL, "%c %-*.*s %7s %7s %5s %7s %5s", mark, nw, nw, name, top_size(g->used, u, sizeof u),
         top_size(g->limit, l, sizeof l), pct, top_size(g->peak, pk, sizeof pk), procs);
    put(r, NULL, " ");
    char cell[32];
    snprintf(cell, sizeof cell, "%7s", ref);
    put(r, g->refusals ? (selected ? SGR_BOLD : SGR_BOLD_REVERSE) : NULL, cell);
    put(r, NULL, "    -"); /* leak detection does not exist yet: not available */
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
    putf(r, NULL, "  %-*.*s %7s %7s %5s %7s %5s", nw, nw, who, top_size(p->used, u, sizeof u), "", "",
         top_size(p->peak, pk, sizeof pk), "");
    put(r, NULL, " ");
    char cell[32];
    snprintf(cell, sizeof cell, "%7s", ref);
    put(r, p->refusals ? SGR_BOLD : NULL, cell);
    put(r, NULL, "    -");
}

/* A body line: a group (proc < 0) or one of its processes. */
struct line {
    size_t group;
    long proc;
};

void top_draw(struct top_view *v, struct gbuf *out)
{
    int rows = v->rows, width = v->cols - 1, y = 0;
    struct row r;
    gbuf_puts(out, "\033[H");
    if (rows < 6 || width < 40) {
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
        draw_device(&r, &v->snap.devs[i]);
        row_end(&r);
    }
    if (v->snap.nbad) {
        row_begin(&r, out, y++, width, NULL);
        putf(&r, SGR_BOLD, "%zu group%s skipped: %s", v->snap.nbad, v->snap.nbad == 1 ? "" : "s", v->snap.bad[0].why);
        row_end(&r);
    }
    row_begin(&r, out, y++, width, NULL);
    row_end(&r);
    row_begin(&r, out, y++, width, SGR_REVERSE);
    draw_header(&r, v);
    row_end(&r);

    /* Body: groups, and the processes of expanded ones, scrolled so the
     * selection stays in view. */
    int body = rows - 1 - y;
    size_t nlines = 0, sel_line = 0;
    for (size_t i = 0; i < v->ngroups; i++)
        nlines += 1 + (top_is_expanded(v, v->groups[i].name) ? v->groups[i].nproc : 0);
    struct line *lines = nlines ? calloc(nlines, sizeof *lines) : NULL;
    size_t k = 0;
    for (size_t i = 0; lines && i < v->ngroups; i++) {
        if (i == v->sel)
            sel_line = k;
        lines[k++] = (struct line){i, -1};
        if (top_is_expanded(v, v->groups[i].name))
            for (size_t j = 0; j < v->groups[i].nproc; j++)
                lines[k++] = (struct line){i, (long)(v->groups[i].proc0 + j)};
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
    for (size_t i = v->scroll; lines && i < nlines && y < rows - 1; i++) {
        const struct line *ln = &lines[i];
        int selected = ln->proc < 0 && ln->group == v->sel;
        row_begin(&r, out, y++, width, selected ? SGR_REVERSE : NULL);
        if (ln->proc < 0)
            draw_group(&r, v, &v->groups[ln->group], selected);
        else
            draw_proc(&r, &v->snap.procs[ln->proc]);
        row_end(&r);
    }
    free(lines);
    for (; y < rows - 1; y++) {
        row_begin(&r, out, y, width, NULL);
        row_end(&r);
    }
    row_begin(&r, out, rows - 1, width, SGR_REVERSE);
    putf(&r, NULL, " q quit  j/k move  Enter/e expand  s/u/n/l/r sort  a %s", v->all ? "live only" : "all groups");
    row_end(&r);
}
