/* gpumem top, private interfaces: the terminal (top_term.c: raw mode,
 * the alternate screen, keys, signals), the model (cmd_top.c: groups built
 * from the daemon's one-pass collector, sorted, selected, expanded) and the
 * screen (top_draw.c: one frame of ANSI text from the model). */
#ifndef GPUMEM_TOP_H
#define GPUMEM_TOP_H

#include <stddef.h>
#include <stdint.h>

#include "../daemon/daemon.h"

/* ---- model ------------------------------------------------------------ */

/* A group: a line per GPU it has used (never summed across GPUs); its sort
 * keys are its worst GPU's. */
struct top_group {
    char name[GM_NAME_LEN + 1];
    uint64_t used, limit;               /* the most used / the largest limit on one GPU */
    uint64_t refusals;                  /* over its GPUs (a count) */
    double pct;                         /* the highest % of a limit on one GPU; -1: no limit */
    size_t row0, nrow;                  /* its GPUs: view.snap.rows[row0 ...] */
    size_t proc0, nproc;                /* its processes: view.snap.procs[proc0 ...] */
};

enum top_sort { TOP_SORT_USED, TOP_SORT_PCT, TOP_SORT_NAME, TOP_SORT_LIMIT, TOP_SORT_REFUSALS, TOP_SORT_N };

struct top_view {
    struct dm_snapshot snap;
    struct top_group *groups;
    size_t ngroups, capgroups;
    enum top_sort sort;
    size_t sel;                         /* index into groups */
    char sel_name[GM_NAME_LEN + 1];     /* keeps the selection across refreshes */
    char (*expanded)[GM_NAME_LEN + 1];  /* names of expanded groups */
    size_t nexpanded, capexpanded;
    size_t scroll;                      /* first body line shown */
    double delay;
    int all;                            /* show groups without processes too */
    char nvml_err[512];                 /* why there are no device figures */
    int rows, cols;
    int color;                          /* ANSI colours (NO_COLOR unset) */
    int help;                           /* the ? screen is shown */
    struct dm_view daemon;              /* the daemon's leak state and history, when it runs */
    struct dm_hist *own;                /* what top sampled itself since it started */
    size_t nown;
};

/* The history to show for a group on a GPU: the daemon's (longer) when it
 * has one, else top's own; NULL when neither. *from_daemon says which. */
const struct dm_hist *top_history(const struct top_view *v, const char *group, const char *uuid, int *from_daemon);

int top_is_expanded(const struct top_view *v, const char *name);
const char *top_sort_name(enum top_sort s);

/* ---- top_draw.c ------------------------------------------------------- */

/* Appends one whole frame (cursor addressing, every row rewritten) to `out`.
 * Nothing is written in the last column, so no terminal ever scrolls. */
void top_draw(struct top_view *v, struct gbuf *out);
/* Compact sizes for columns: "0", "512K", "300M", "1.25G". */
const char *top_size(uint64_t bytes, char *buf, size_t len);

/* ---- top_term.c ------------------------------------------------------- */

enum {
    TOP_KEY_UP = 256, TOP_KEY_DOWN, TOP_KEY_PGUP, TOP_KEY_PGDN, TOP_KEY_HOME, TOP_KEY_END, TOP_KEY_ENTER,
};
enum { TOP_EV_QUIT = 1, TOP_EV_RESIZE = 2 };

/* Raw input (no echo, no line editing; ^C still signals), the alternate
 * screen, hidden cursor; SIGINT/SIGTERM/SIGHUP/SIGWINCH/SIGTSTP caught.
 * Returns 0, or -1 with err set. */
int top_term_enter(char *err, size_t errlen);
/* Puts everything back as it was; safe to call twice and from atexit. */
void top_term_leave(void);
void top_term_size(int *rows, int *cols);
void top_term_write(const char *p, size_t n);
/* Waits up to timeout_ms for keys or signals. Fills keys (at most max) and
 * returns how many; *events gets TOP_EV_* bits. Handles ^Z itself (the
 * terminal is restored while stopped and the screen redrawn after). */
int top_term_wait(int timeout_ms, int *keys, int max, int *events);

/* top_none.c: the processes on a GPU in no group, appended to a snapshot
 * (after dm_collect_procs) as rows and processes of the pseudo group
 * TOP_NONE. */
#define TOP_NONE "(none)"
void top_add_ungrouped(struct dm_snapshot *s, const char *state_dir);

#endif
