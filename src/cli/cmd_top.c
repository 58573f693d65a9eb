/* gpumem top: a live full-screen view of GPU memory by group (container),
 * like nvtop and htop. The data is the daemon's one-pass collector
 * (src/daemon/collect.c) read afresh every interval: NVML's truth per
 * device, and per group what its processes hold. The terminal is in
 * top_term.c, the drawing in top_draw.c. Needs no daemon. */
#include "cli.h"
#include "top.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void top_usage(FILE *out)
{
    fprintf(out,
            "Usage: gpumem top [-d SECONDS] [-a] [--sim]\n"
            "\n"
            "A live, full-screen view of GPU memory by group (container, pod, gpumem run),\n"
            "refreshed every interval, in the spirit of nvtop and htop. It reads the groups'\n"
            "files and NVML directly; no daemon is needed. When gpumem daemon runs, top\n"
            "also shows its leak detection and its history (the daemon's view file).\n"
            "\n"
            "The screen:\n"
            "  GPU lines   per device, a bar of the physical memory in use out of its total,\n"
            "              as NVML reports it (all processes, in groups or not), then the\n"
            "              sum of the limits granted to groups on it; \"(over)\" when the\n"
            "              limits add up to more than the device has (never cut off).\n"
            "              N/A without NVML. A GPU in MIG mode is followed by its MIG\n"
            "              devices, each \"GPU/MIG-device profile\" (0/1 3g.40gb).\n"
            "  Groups      a line per group and GPU it has used, never summed across GPUs:\n"
            "              GPU (NVML index; 0/1 on a MIG device), USED (bytes its\n"
            "              processes hold there now),\n"
            "              LIMIT (\"none\" when unlimited), %%LIM (yellow from 80%%, red\n"
            "              from 100%%; NO_COLOR turns colours off), PEAK, PROCS, REFUSED\n"
            "              (allocations refused for the limit, highlighted when not 0;\n"
            "              \"+N\": N of them within the history), LEAK (the daemon's leak\n"
            "              detection: YES or no; \"-\" when no daemon runs), SWAP while\n"
            "              any group shown may spill (bytes it spilled to host memory\n"
            "              past its limit; \"-\" for a group without swap), and on wide\n"
            "              terminals HISTORY, a sparkline of its usage.\n"
            "              '+' marks a group that can be expanded, '-' an expanded one.\n"
            "  History     under the groups, the selected group's usage over time on\n"
            "              each GPU ('_' nothing .. '#' the most in view, a character per\n"
            "              sample): the daemon's last minutes when it runs (\"daemon\"),\n"
            "              else what top has seen since it started (\"seen\").\n"
            "  Processes   under an expanded group: pid (and host pid when it differs,\n"
            "              e.g. in a container), command, bytes held, peak, refusals.\n"
            "  The column the groups are sorted by is marked with '*'.\n"
            "\n"
            "Keys:\n"
            "  Up/Down, k/j        move the selection (PgUp/PgDn, Home/End, g/G too)\n"
            "  Enter, e, Space     expand or collapse the selected group's processes\n"
            "  s                   cycle the sort: used, %%lim, name, limit, refused\n"
            "  u, p (%%), n, l, r   sort by used, %%lim, name, limit, refused (a group by\n"
            "                      its worst GPU)\n"
            "  ?, h                this help on the screen (any key returns)\n"
            "  a                   show all groups / only groups with processes\n"
            "  q, Q, ^C            quit (the terminal is restored)\n"
            "\n"
            "Options:\n"
            "  -d, --delay SECONDS   refresh interval (default 1.0; decimals allowed,\n"
            "                        0.05 to 3600)\n"
            "  -a, --all             include groups whose processes have all exited\n"
            "      --sim             read devices from the simulated GPU's NVML (also implied\n"
            "                        by GPUMEM_SIM_DIR) instead of libnvidia-ml.so.1\n"
            "  -h, --help            show this help\n"
            "\n"
            "The terminal needs only ANSI escape sequences (any xterm-like terminal, SSH,\n"
            "tmux, screen, the Linux console) and at least 40x6 characters; the view\n"
            "follows resizes. Standard output must be a terminal: for scripts and logs use\n"
            "'gpumem ps' (or 'gpumem ps --format json').\n"
            "\n"
            "Exit status: 0 after q or SIGINT/SIGTERM/SIGHUP; 2 on a usage error or when\n"
            "standard output is not a terminal; 1 when the terminal cannot be set up.\n"
            "\n"
            "Environment:\n"
            "  GPUMEM_STATE_DIR   where groups live (see gpumem --help)\n"
            "  GPUMEM_SIM_DIR     the simulated GPU's libraries (implies --sim)\n"
            "  NO_COLOR           when set and not empty, no colours (bold and reverse stay)\n"
            "\n"
            "Examples:\n"
            "  gpumem top              refresh every second\n"
            "  gpumem top -d 0.5 -a    twice a second, with groups that have no processes\n");
}

/* Seconds as plain decimal digits ("1", "0.25"); no signs, exponents,
 * hex or trailing text. */
static int parse_delay(const char *s, double *out)
{
    char *end;
    if (!*s || strspn(s, "0123456789.") != strlen(s))
        return -1;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < 0.05 || v > 3600)
        return -1;
    *out = v;
    return 0;
}

const char *top_sort_name(enum top_sort s)
{
    static const char *names[] = {"used", "%lim", "name", "limit", "refused"};
    return s < TOP_SORT_N ? names[s] : "?";
}

int top_is_expanded(const struct top_view *v, const char *name)
{
    for (size_t i = 0; i < v->nexpanded; i++)
        if (strcmp(v->expanded[i], name) == 0)
            return 1;
    return 0;
}

static void toggle_expanded(struct top_view *v, const char *name)
{
    for (size_t i = 0; i < v->nexpanded; i++)
        if (strcmp(v->expanded[i], name) == 0) {
            memmove(&v->expanded[i], &v->expanded[i + 1], (v->nexpanded - i - 1) * sizeof *v->expanded);
            v->nexpanded--;
            return;
        }
    if (v->nexpanded == v->capexpanded) {
        size_t cap = v->capexpanded ? v->capexpanded * 2 : 16;
        void *p = realloc(v->expanded, cap * sizeof *v->expanded);
        if (!p)
            return;
        v->expanded = p;
        v->capexpanded = cap;
    }
    snprintf(v->expanded[v->nexpanded++], sizeof *v->expanded, "%s", name);
}

static int cmp_u64_desc(uint64_t a, uint64_t b) { return a > b ? -1 : a < b; }

static enum top_sort sort_key;
static int group_order(const void *a, const void *b)
{
    const struct top_group *x = a, *y = b;
    int c = 0;
    switch (sort_key) {
    case TOP_SORT_USED: c = cmp_u64_desc(x->used, y->used); break;
    case TOP_SORT_PCT: c = x->pct > y->pct ? -1 : x->pct < y->pct; break;
    case TOP_SORT_LIMIT: c = cmp_u64_desc(x->limit, y->limit); break;
    case TOP_SORT_REFUSALS: c = cmp_u64_desc(x->refusals, y->refusals); break;
    default: break;
    }
    return c ? c : strcmp(x->name, y->name);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct top_group *)a)->name, ((const struct top_group *)b)->name);
}

static struct top_group *add_group(struct top_view *v, const char *name)
{
    if (v->ngroups == v->capgroups) {
        size_t cap = v->capgroups ? v->capgroups * 2 : 64;
        void *p = realloc(v->groups, cap * sizeof *v->groups);
        if (!p)
            return NULL;
        v->groups = p;
        v->capgroups = cap;
    }
    struct top_group *g = &v->groups[v->ngroups++];
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s", name);
    return g;
}

/* A group's GPU lines in NVML order (those NVML does not list last). */
static int by_gpu(const void *a, const void *b)
{
    const struct dm_row *x = a, *y = b;
    unsigned gx = (unsigned)x->gpu, gy = (unsigned)y->gpu;
    return gx < gy ? -1 : gx > gy ? 1 : strcmp(x->uuid, y->uuid);
}

/* Groups from the collector's rows (one per group and device, sorted by
 * group) and process rows (contiguous per group). */
static void build_groups(struct top_view *v)
{
    const struct dm_snapshot *s = &v->snap;
    v->ngroups = 0;
    for (size_t i = 0; i < s->nrows; i++) {
        const struct dm_row *row = &s->rows[i];
        struct top_group *g = v->ngroups && strcmp(v->groups[v->ngroups - 1].name, row->group) == 0
                                  ? &v->groups[v->ngroups - 1]
                                  : add_group(v, row->group);
        if (!g)
            return;
        if (g->nrow++ == 0) {
            g->row0 = i;
            g->pct = -1;
        }
        if (row->used > g->used)
            g->used = row->used;
        if (row->limit > g->limit)
            g->limit = row->limit;
        g->refusals += row->refusals;
        if (row->limit != GM_UNLIMITED && row->limit) {
            double pct = 100.0 * (double)row->used / (double)row->limit;
            if (pct > g->pct)
                g->pct = pct;
        }
    }
    for (size_t i = 0; i < v->ngroups; i++)
        qsort(&v->snap.rows[v->groups[i].row0], v->groups[i].nrow, sizeof *v->snap.rows, by_gpu);
    size_t ndev_groups = v->ngroups;
    qsort(v->groups, ndev_groups, sizeof *v->groups, by_name);
    for (size_t i = 0; i < s->nprocs;) {
        size_t j = i;
        while (j < s->nprocs && strcmp(s->procs[j].group, s->procs[i].group) == 0)
            j++;
        struct top_group key;
        snprintf(key.name, sizeof key.name, "%s", s->procs[i].group);
        struct top_group *g = bsearch(&key, v->groups, ndev_groups, sizeof *v->groups, by_name);
        if (!g && (g = add_group(v, key.name)) != NULL) {
            g->limit = 0; /* not used a device yet: no limit applies anywhere yet */
            g->pct = -1;
        }
        if (g) {
            g->proc0 = i;
            g->nproc = j - i;
        }
        i = j;
    }
    if (!v->all) {
        size_t k = 0;
        for (size_t i = 0; i < v->ngroups; i++)
            if (v->groups[i].nproc || v->groups[i].used)
                v->groups[k++] = v->groups[i];
        v->ngroups = k;
    }
    sort_key = v->sort;
    qsort(v->groups, v->ngroups, sizeof *v->groups, group_order);
    /* The selection follows its group; if that left, stay at its place. */
    size_t sel = v->sel;
    for (size_t i = 0; i < v->ngroups; i++)
        if (strcmp(v->groups[i].name, v->sel_name) == 0) {
            sel = i;
            break;
        }
    v->sel = v->ngroups == 0 ? 0 : sel < v->ngroups ? sel : v->ngroups - 1;
    if (v->ngroups)
        snprintf(v->sel_name, sizeof v->sel_name, "%s", v->groups[v->sel].name);
}

static double now_s(void);

const struct dm_hist *top_history(const struct top_view *v, const char *group, const char *uuid, int *from_daemon)
{
    const struct dm_hist *h = v->daemon.ok ? dm_hist_find(v->daemon.h, v->daemon.n, group, uuid) : NULL;
    *from_daemon = h != NULL;
    return h ? h : dm_hist_find(v->own, v->nown, group, uuid);
}

static void refresh(struct top_view *v, const char *state)
{
    dm_snapshot_free(&v->snap);
    dm_collect_procs(&v->snap, state, 1);
    top_add_ungrouped(&v->snap, state);
    /* top's own history: a sample per refresh, at most one a second. */
    dm_hist_track(&v->own, &v->nown, &v->snap, now_s(), v->delay > 1 ? v->delay : 1);
    dm_view_read(state, &v->daemon);
    build_groups(v);
}

static void resort(struct top_view *v, enum top_sort s)
{
    v->sort = s;
    sort_key = s;
    qsort(v->groups, v->ngroups, sizeof *v->groups, group_order);
    for (size_t i = 0; i < v->ngroups; i++)
        if (strcmp(v->groups[i].name, v->sel_name) == 0)
            v->sel = i;
}

static void move_sel(struct top_view *v, long delta)
{
    if (!v->ngroups)
        return;
    long s = (long)v->sel + delta;
    s = s < 0 ? 0 : s >= (long)v->ngroups ? (long)v->ngroups - 1 : s;
    v->sel = (size_t)s;
    snprintf(v->sel_name, sizeof v->sel_name, "%s", v->groups[v->sel].name);
}

/* Applies one key; returns 1 to quit. */
static int key(struct top_view *v, int k)
{
    long page = v->rows > 10 ? v->rows - 10 : 1;
    if (v->help) { /* any key leaves the help screen; q still quits */
        v->help = 0;
        return k == 'q' || k == 'Q';
    }
    switch (k) {
    case '?': case 'h': v->help = 1; break;
    case 'q': case 'Q': return 1;
    case TOP_KEY_UP: case 'k': move_sel(v, -1); break;
    case TOP_KEY_DOWN: case 'j': move_sel(v, 1); break;
    case TOP_KEY_PGUP: move_sel(v, -page); break;
    case TOP_KEY_PGDN: move_sel(v, page); break;
    case TOP_KEY_HOME: case 'g': move_sel(v, -(long)v->ngroups); break;
    case TOP_KEY_END: case 'G': move_sel(v, (long)v->ngroups); break;
    case TOP_KEY_ENTER: case 'e': case ' ':
        if (v->ngroups)
            toggle_expanded(v, v->groups[v->sel].name);
        break;
    case 's': resort(v, (enum top_sort)((v->sort + 1) % TOP_SORT_N)); break;
    case 'u': resort(v, TOP_SORT_USED); break;
    case 'p': case '%': resort(v, TOP_SORT_PCT); break;
    case 'n': resort(v, TOP_SORT_NAME); break;
    case 'l': resort(v, TOP_SORT_LIMIT); break;
    case 'r': resort(v, TOP_SORT_REFUSALS); break;
    case 'a':
        v->all = !v->all;
        build_groups(v);
        break;
    default: break;
    }
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int cmd_top(int argc, char **argv)
{
    static const struct option opts[] = {
        {"delay", required_argument, 0, 'd'}, {"all", no_argument, 0, 'a'}, {"sim", no_argument, 0, 'S'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    die_name = "gpumem top";
    struct top_view v;
    memset(&v, 0, sizeof v);
    v.delay = 1.0;
    const char *nc = getenv("NO_COLOR");
    v.color = !(nc && *nc);
    int sim = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:ah", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            if (parse_delay(optarg, &v.delay) < 0)
                return die(2, "--delay \"%s\": expected seconds from 0.05 to 3600 (e.g. 1 or 0.5)", optarg);
            break;
        case 'a': v.all = 1; break;
        case 'S': sim = 1; break;
        case 'h': top_usage(stdout); return 0;
        default: top_usage(stderr); return 2;
        }
    }
    if (optind < argc)
        return die(2, "unexpected argument \"%s\"", argv[optind]);
    if (!isatty(STDOUT_FILENO))
        return die(2, "stdout is not a terminal; use gpumem ps for a snapshot");

    char err[512];
    int nv = open_nvml_view(sim, err, sizeof err);
    if (nv < 0)
        return die(1, "%s", err);
    if (nv > 0)
        snprintf(v.nvml_err, sizeof v.nvml_err, "%s", err);
    char state[PATH_MAX];
    gm_state_dir(state, sizeof state);

    if (top_term_enter(err, sizeof err) < 0)
        return die(1, "%s", err);
    atexit(top_term_leave);
    top_term_size(&v.rows, &v.cols);

    struct gbuf frame = {0};
    double next = 0;
    int quit = 0;
    while (!quit) {
        double t = now_s();
        if (t >= next) {
            refresh(&v, state);
            next = t + v.delay;
        }
        frame.len = 0;
        top_draw(&v, &frame);
        if (frame.p && !frame.oom)
            top_term_write(frame.p, frame.len);
        int keys[64], ev = 0;
        int wait_ms = (int)ceil((next - now_s()) * 1000);
        int n = top_term_wait(wait_ms > 0 ? wait_ms : 0, keys, 64, &ev);
        for (int i = 0; i < n && !quit; i++)
            quit = key(&v, keys[i]);
        if (ev & TOP_EV_QUIT)
            quit = 1;
        if (ev & TOP_EV_RESIZE) {
            top_term_size(&v.rows, &v.cols);
            frame.len = 0;
            gbuf_puts(&frame, "\033[2J");
            top_term_write(frame.p, frame.len);
        }
    }
    top_term_leave();
    gbuf_free(&frame);
    dm_snapshot_free(&v.snap);
    free(v.groups);
    free(v.expanded);
    free(v.own);
    dm_view_free(&v.daemon);
    return 0;
}
