/* gpumem daemon, private interfaces: a growing text buffer, the device
 * truth from NVML, a snapshot of every group, the Prometheus rendering of a
 * snapshot, the event log, and the HTTP server. cmd_daemon.c ties them
 * together; `gpumem daemon --help` describes what an operator sees. */
#ifndef GPUMEM_DAEMON_H
#define GPUMEM_DAEMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "gpumem/group.h"

/* ---- buf.c: a text buffer that grows (never truncates) ---------------- */

struct gbuf {
    char *p;        /* NUL-terminated once anything was added */
    size_t len, cap;
    int oom;        /* an allocation failed: the content is incomplete */
};

void gbuf_printf(struct gbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void gbuf_puts(struct gbuf *b, const char *s);
/* A Prometheus label value: \ " and newline escaped. */
void gbuf_label(struct gbuf *b, const char *s);
/* A JSON string, quotes included. */
void gbuf_json(struct gbuf *b, const char *s);
void gbuf_free(struct gbuf *b);

/* A field of a shared file (never trusted to be terminated) into dst. */
void dm_copy_field(char *dst, size_t dstlen, const char *src, size_t srclen);
/* The array p of *cap elements, grown (doubled) when n reaches it; NULL
 * with *oom set when that fails (p is then still valid). */
void *dm_grow(void *p, size_t *cap, size_t n, size_t elem, int *oom);

/* ---- nvml_source.c: the device's own truth ---------------------------- */

#define DM_MAX_NVML_DEVS 64

struct dm_proc {
    unsigned int pid;                   /* host pid */
    unsigned long long used;
};

struct dm_device {
    unsigned int index;                 /* as NVML and nvidia-smi number it */
    char uuid[GM_UUID_LEN];             /* "GPU-..." lower case */
    char name[96];                      /* model name (nvmlDeviceGetName); "" when unknown */
    int mem_ok;                         /* total/used/free valid */
    unsigned long long total, used, free;
    int procs_ok;                       /* procs valid */
    struct dm_proc *procs;              /* sorted by pid */
    unsigned int nprocs;
    uint64_t granted;                   /* sum of group limits on this device */
    /* A MIG device (listed after its GPU; index is its GPU's): */
    int mig;                            /* 1 for a MIG device */
    unsigned int mig_index;             /* among its GPU's MIG devices (nvidia-smi -L) */
    unsigned int gi, ci;                /* GPU / compute instance ids */
    char profile[32];                   /* "3g.40gb": the name after " MIG " */
    char parent_uuid[GM_UUID_LEN];
};

/* Loads NVML (the simulated one from sim_dir when not NULL) and initialises
 * it. Returns 0, or -1 with err set; the daemon then serves group metrics
 * without device ones. */
int dm_nvml_open(const char *sim_dir, char *err, size_t errlen);
int dm_nvml_available(void);
/* Reads every device now. Returns the count (0 without NVML); free with
 * dm_nvml_release. */
int dm_nvml_read(struct dm_device *devs, int max);
void dm_nvml_release(struct dm_device *devs, int n);
/* What a device's process list says `pid` holds; -1 when it is not listed. */
long long dm_proc_used(const struct dm_device *d, unsigned int pid);

/* ---- collect.c: one pass over the groups ----------------------------- */

/* One group on one device it has used. */
struct dm_row {
    char group[GM_NAME_LEN + 1];
    char container[80], pod[GM_NAME_LEN], ns[GM_NAME_LEN];
    char uuid[GM_UUID_LEN];
    int gpu;                            /* NVML index, -1 when NVML does not list it */
    uint64_t limit;                     /* GM_UNLIMITED when none */
    uint64_t used, peak, refusals, last_refused;
    int procs;                          /* live processes holding bytes on it */
    int drift_ok;
    int64_t drift;                      /* shim's accounting - NVML's, same pids */
    int dev;                            /* index in the group's device table */
    int leak;                           /* a process of the group is leak-suspected here */
    /* Host-memory spill (docs/spill.md): bytes spilled from this device,
     * the group's allowance (one for all its devices), and when it first
     * spilled (CLOCK_REALTIME ns, 0 = never). */
    uint64_t swap_used, swap_limit, first_spill_ns;
};

struct dm_bad {
    char group[GM_NAME_LEN + 1];
    char why[320];
};

struct dm_reclaim {
    char group[GM_NAME_LEN + 1];
    int count;
};

/* One live process of a group (with dm_collect_procs), over all devices. */
struct dm_procrow {
    char group[GM_NAME_LEN + 1];
    int pid;                            /* as the group sees it */
    int host_pid;                       /* verified host pid; 0 when unknown */
    char comm[32];
    uint64_t used, peak, refusals;
    uint64_t swap_used;                 /* spilled to host memory, over its GPUs */
    /* For leak detection: the slot's identity and counters, per device of
     * the group's table (ndev of them). */
    uint64_t start_time, allocs, frees;
    /* Where its live-allocation table is (gpumem/live_peek.h), for the
     * oldest allocations a leak event names. */
    uint64_t table_addr;
    uint32_t table_layout;
    uint32_t ndev;
    uint64_t charged[GM_MAX_DEVICES];
};

struct dm_snapshot {
    struct dm_row *rows;
    size_t nrows, caprows;
    struct dm_device devs[DM_MAX_NVML_DEVS];
    int ndevs;
    int nvml;                           /* NVML was readable */
    char hostname[256];                 /* gethostname(2); "" when it fails */
    int ngroups;                        /* groups read */
    struct dm_bad *bad;                 /* groups skipped: corrupt or unreadable */
    size_t nbad, capbad;
    struct dm_reclaim *reclaimed;       /* with reclaim: slots freed per group */
    size_t nreclaimed, capreclaimed;
    struct dm_procrow *procs;           /* with dm_collect_procs: group order */
    size_t nprocs, capprocs;
    int oom;
};

/* Reads every group under state_dir (and NVML). With `reclaim`, frees the
 * slots of dead processes first. Rows are sorted by group, then uuid. */
void dm_collect(struct dm_snapshot *s, const char *state_dir, int reclaim);
/* The same, plus a row per live process in s->procs (gpumem top). */
void dm_collect_procs(struct dm_snapshot *s, const char *state_dir, int reclaim);
void dm_snapshot_free(struct dm_snapshot *s);

/* ---- metrics.c: Prometheus text format 0.0.4 ------------------------- */

#define DM_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
void dm_render_metrics(struct gbuf *b, const struct dm_snapshot *s);
/* "# HELP" and "# TYPE" of a family; a row's labels {group=...,uuid=...}. */
void dm_family(struct gbuf *b, const char *name, const char *type, const char *help);
void dm_group_labels(struct gbuf *b, const struct dm_row *r);

/* ---- events.c: JSON lines ------------------------------------------- */

#define DM_THRESHOLD_PERCENT 80

/* Where events go (stderr unless --log); line-buffered, thread-safe. */
void dm_log_open(FILE *f);
/* Writes {"time":...,"level":...,"event":EVENT<fields>}: `fields` is either
 * empty or starts with a comma and is valid JSON members. */
void dm_log(const char *level, const char *event, const char *fields);

/* Compares a snapshot with the previous one and logs refusals, threshold
 * crossings, reclaimed slots and groups skipped. The first call only sets
 * the baseline (but still reports groups already above the threshold). */
void dm_events_tick(const struct dm_snapshot *s);
void dm_events_reset(void);
/* A row's identity as JSON members: group, container, pod, namespace, uuid, gpu. */
void dm_row_fields(struct gbuf *f, const struct dm_row *r);

/* ---- leak_watch.c: leak detection (logic in leak.c) ----------------- */

struct lk_params;
void dm_leak_configure(const struct lk_params *p);
/* Feeds a snapshot taken with dm_collect_procs at monotonic time `now`:
 * logs leak_suspected / leak_cleared, and sets the rows' leak flags. */
void dm_leak_tick(struct dm_snapshot *s, double now);
/* Sets the rows' leak flags from the current state (scrapes). Call with
 * the collect lock held. */
void dm_leak_mark(struct dm_snapshot *s);
void dm_leak_reset(void);

/* ---- view_state.c: what the daemon knows, for gpumem top and ps ------ */

/* In the state directory (names starting with '.' are never groups). */
#define DM_VIEW_FILE ".daemon-view"
#define DM_HIST 64          /* samples of history per group and device */
#define DM_HIST_STEP 5.0    /* the daemon's most seconds per sample */

/* A group's usage on a device over time, oldest first: each sample the
 * highest usage seen within its step, and the refusal count at its end. */
struct dm_hist {
    char group[GM_NAME_LEN + 1];
    char uuid[GM_UUID_LEN];
    int leak;                           /* leak detection suspects it (daemon only) */
    size_t n;
    double t_last;                      /* when the newest sample began */
    uint64_t used[DM_HIST], refusals[DM_HIST];
};

void dm_hist_add(struct dm_hist *h, double t, uint64_t used, uint64_t refusals, double step);
/* Refusals within the history (the newest count less the oldest). */
uint64_t dm_hist_recent_refusals(const struct dm_hist *h);
struct dm_hist *dm_hist_find(struct dm_hist *a, size_t n, const char *group, const char *uuid);
/* Adds a snapshot's rows (at monotonic time `now`) to the table *a of *n
 * entries: rows seen before keep their history, the rest start one; groups
 * and devices no longer in the snapshot are dropped. Returns *a. */
struct dm_hist *dm_hist_track(struct dm_hist **a, size_t *n, const struct dm_snapshot *s, double now, double step);

/* The daemon, every interval: records the snapshot (leak flags set) and
 * rewrites DM_VIEW_FILE, a sample per `step` seconds (at least interval). Returns 0, or -1 when it cannot be written. */
int dm_view_write(const struct dm_snapshot *s, const char *state_dir, double interval, double step, double now);
void dm_view_remove(const char *state_dir);

struct dm_view {
    int ok;                             /* a fresh file from a running daemon */
    double interval, step;
    struct dm_hist *h;
    size_t n;
};
/* Reads DM_VIEW_FILE: 0 when a daemon wrote it recently (within three
 * intervals, or 10 s) and is still running; -1 otherwise (v->n is 0). */
int dm_view_read(const char *state_dir, struct dm_view *v);
void dm_view_free(struct dm_view *v);

/* ---- http.c: libmicrohttpd ------------------------------------------ */

/* Parses "ADDR:PORT" ("127.0.0.1:9400", ":9400" for every interface,
 * "[::1]:9400", "localhost:9400"). Port 0 picks a free one. */
int dm_parse_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *len, char *err, size_t errlen);
/* Starts serving /metrics and /healthz; returns the bound port or -1. */
int dm_http_start(const struct sockaddr_storage *ss, const char *state_dir, char *err, size_t errlen);
void dm_http_stop(void);

/* Serialises collection between the HTTP thread and the interval loop. */
void dm_collect_lock(void);
void dm_collect_unlock(void);

#endif
