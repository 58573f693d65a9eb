/* Live leak detection: pure logic over per-process usage samples, with no
 * dependency on the rest of the daemon (tests/unit/leak_detect.c includes
 * leak.c directly). src/daemon/leak_watch.c feeds it from snapshots.
 *
 * Per tracked process and device the daemon keeps a fixed ring of samples
 * (time, bytes held, the process's alloc and free counters). Samples closer
 * together than the ring's spacing are merged into the newest entry, which
 * remembers whether usage dipped in between, so monotonicity is judged over
 * every sample taken while memory stays bounded.
 *
 * A process is suspected when, over the last `window` seconds, its usage
 *  - never decreased, grew by at least min_growth and min_growth_pct of its
 *    usage at the window's start, grew in each quarter of the window (it
 *    keeps growing: one big allocation followed by a hold is not a leak),
 *  - and it was idle otherwise: allocs grew, frees did not grow at all;
 * or when the same holds over `long_window` seconds regardless of frees. */
#ifndef GPUMEM_DAEMON_LEAK_H
#define GPUMEM_DAEMON_LEAK_H

#include <stddef.h>
#include <stdint.h>

#define LK_RING 128          /* samples kept per tracked process and device */

struct lk_sample {
    double t;                /* seconds, monotonic */
    uint64_t used, allocs, frees;
    int dipped;              /* usage decreased since the previous entry */
};

struct lk_params {
    double window;           /* idle-growth window, seconds (default 600) */
    double long_window;      /* churn-blind window, seconds (default 3600) */
    uint64_t min_growth;     /* bytes (default 256 MiB) */
    unsigned min_growth_pct; /* of the usage at the window's start (default 10) */
};

#define LK_WINDOW_DEFAULT 600.0
#define LK_LONG_WINDOW_DEFAULT 3600.0
#define LK_MIN_GROWTH_DEFAULT (256ull << 20)
#define LK_MIN_GROWTH_PCT_DEFAULT 10u

void lk_params_default(struct lk_params *p);

enum lk_kind { LK_NONE = 0, LK_IDLE_GROWTH = 1, LK_LONG_GROWTH = 2 };

struct lk_verdict {
    enum lk_kind kind;       /* LK_NONE: not suspected */
    double window;           /* seconds actually spanned */
    uint64_t start_used, end_used;
    double rate;             /* bytes per second over the window */
    uint64_t allocs, frees;  /* counter increases over the window */
};

/* Judges samples s[0..n-1] (oldest first). Returns the verdict's kind. */
enum lk_kind lk_judge(const struct lk_sample *s, size_t n, const struct lk_params *p, struct lk_verdict *v);
/* One window only (need_idle: frees must not have grown). */
int lk_judge_window(const struct lk_sample *s, size_t n, double window, int need_idle, const struct lk_params *p,
                    struct lk_verdict *v);

/* A fixed ring of samples. */
struct lk_ring {
    struct lk_sample e[LK_RING];
    unsigned head, count;    /* e[head] is the oldest when count == LK_RING */
};

/* The spacing that lets the ring cover the long window with room to spare,
 * and the short window with at least 16 entries where the ratio allows. */
double lk_spacing(const struct lk_params *p);
void lk_ring_add(struct lk_ring *r, double t, uint64_t used, uint64_t allocs, uint64_t frees, double spacing);
/* Copies the ring oldest first into out[LK_RING]; returns the count. */
size_t lk_ring_linear(const struct lk_ring *r, struct lk_sample *out);

/* ---- the table of tracked processes ----------------------------------- */

#define LK_GROUP_LEN 65

/* One observation: a live process's usage on one device now. */
struct lk_obs {
    char group[LK_GROUP_LEN];
    int32_t pid;
    uint64_t start_time;
    int dev;                 /* index in the group's device table */
    uint64_t used, allocs, frees;
};

struct lk_track {
    char group[LK_GROUP_LEN];
    int32_t pid;
    uint64_t start_time;
    int dev;
    int suspected;
    unsigned gen;            /* the update that last saw it */
    struct lk_verdict last;  /* the verdict when it became suspected (or the latest) */
    struct lk_ring ring;
};

struct lk_table {
    struct lk_track **t;     /* sorted by (group, pid, start_time, dev) */
    size_t n, cap;
    unsigned gen;
    int oom;
};

/* What changed for one tracked process: became suspected (1) or cleared
 * (0; `exited` when it is gone). */
typedef void (*lk_change_fn)(void *ctx, const struct lk_track *t, int suspected, int exited);

/* Adds the observations taken at time `now`, judges every tracked process,
 * and evicts the ones not observed (dead, or no longer holding a slot).
 * Calls `change` for each transition. */
void lk_table_update(struct lk_table *tb, const struct lk_obs *obs, size_t nobs, double now,
                     const struct lk_params *p, lk_change_fn change, void *ctx);
/* Whether any tracked process of `group` is suspected on device `dev`. */
int lk_table_suspected(const struct lk_table *tb, const char *group, int dev);
void lk_table_free(struct lk_table *tb);

#endif
