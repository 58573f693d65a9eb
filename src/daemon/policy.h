/* gpumem daemon, reclaim and the decision log (policy.c; docs/policy.md).
 *
 * Every interval the daemon looks for groups in need: a group within its
 * request whose allocation the driver refused because the GPU was full
 * (the shim's pressure report in its usage region), and the first waiting
 * start on each GPU whose request does not fit. For each, it picks victims
 * (gp_pick_victims), records each decision in a file before acting on it,
 * notifies the victim (SIGTERM, or the configured hook), and SIGKILLs it
 * when the grace period is over. Records live in STATE/.policy/, so a
 * daemon killed and restarted finishes what the last one decided. The
 * admissions that gpumem run and gpumem-runtime journal are read into the
 * event log and counted in the metrics. */
#ifndef GPUMEM_DAEMON_POLICY_H
#define GPUMEM_DAEMON_POLICY_H

#include <stdint.h>

#include "gpumem/policy.h"

/* One reclaim in progress: STATE/.policy/reclaim-<victim>. */
struct pl_reclaim {
    char victim[GM_NAME_LEN + 1];       /* the victim's group directory name */
    char for_group[GM_NAME_LEN + 1];    /* who it is for (a group, or a queued start) */
    char reason[32];                    /* "borrowed", "lower_priority" */
    char action[16];                    /* "kill" (pl_reclaim_action) */
    char uuid[GM_UUID_LEN];
    uint64_t bytes;                     /* what it is expected to free */
    double notified;                    /* unix time of the notice */
    double kill_at;                     /* unix time of the SIGKILL */
    int killed;
};

/* One record's text (the fuzz target's entry point): 0, or -1. */
int pl_reclaim_parse(const char *text, struct pl_reclaim *r);
/* Every record, malloc'ed in *out (free it); the count. */
int pl_reclaims_load(const char *state, struct pl_reclaim **out);

struct pl_config {
    double grace;                       /* seconds from notice to SIGKILL */
    const char *hook;                   /* shell command instead of SIGTERM; NULL: SIGTERM */
    double pressure_age;                /* a pressure report older than this is stale (s) */
};
void pl_configure(const struct pl_config *c);

struct dm_snapshot;
struct gbuf;
/* One interval: the journal into the event log, reclaims moved on, new
 * needs decided. `s` is a snapshot with processes (dm_collect_procs). */
void pl_tick(const struct dm_snapshot *s, const char *state);
/* The policy's metric families (counters since the daemon started, and the
 * queue and reclaims as they are now). */
void pl_render_metrics(struct gbuf *b, const char *state);

/* One line for gpumem ps/top under their table: the queue and reclaims, or
 * nothing when both are empty. */
void pl_summary_line(const char *state, char *buf, size_t len);

#endif
