/* Who gets the memory when a GPU runs short (docs/policy.md): requests and
 * priorities as groups carry them, admission of new groups, the queue of
 * starts waiting for their request to fit, and the choice of victims to
 * reclaim from. Host side only (the CLI, gpumem-runtime, the daemon); the
 * shim reads none of this but a group's oom_wait_ms.
 *
 * Pure decisions (policy.c) take arrays and return answers, for the unit
 * tests and bench/policy_decide.c; the state directory's files (admission
 * lock, queue entries, the decision journal) are in admission.c. */
#ifndef GPUMEM_POLICY_H
#define GPUMEM_POLICY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "gpumem/group.h"
#include "gpumem/size.h"

/* ---- what a creator asks for (policy_env.c) --------------------------- */

/* Priorities: high, normal, low, or a number from -1000 to 1000 (high = 1,
 * normal = 0, low = -1, as enum gm_priority). Returns 0, or -1 with err
 * quoting s. */
#define GM_PRIO_MIN (-1000)
#define GM_PRIO_MAX 1000
int gm_parse_priority(const char *s, int32_t *out, char *err, size_t errlen);
/* "high", "normal", "low", or the number. */
const char *gm_priority_name(int32_t p, char *buf, size_t len);

/* GPUMEM_OOM: "fail" (the default: refuse at once) or "wait:SECONDS"
 * (decimals allowed, up to 86400). *ms = 0 for fail. */
int gm_parse_oom(const char *s, uint32_t *ms, char *err, size_t errlen);

/* A wait timeout ("--wait=30", "30s", "5m", "1h", or "" / "forever" for no
 * timeout): seconds into *secs (-1: forever). */
int gm_parse_timeout(const char *s, double *secs, char *err, size_t errlen);

/* The request a creator's environment asks for, in order of precedence:
 * GPUMEM_REQUEST (gpumem's size syntax, per-GPU forms allowed),
 * NVIDIA_GPU_MEMORY_REQUEST and NVIDIA_GPU_MEMORY_REQUESTS (one number of
 * MiB, every GPU). As gm_limit_from_env: 1 when asked for, 0 when not, -1
 * on a bad value (err names the variable and quotes it). */
int gm_request_from_env(const char *(*getenv_fn)(const char *name, void *ctx), void *ctx,
                        struct gm_limit_spec *out, char *err, size_t errlen);

/* Fills l's request entries from a parsed spec (as gm_limits_from_spec
 * does limits), then checks each request against its limit: a request
 * above the limit on a GPU is an error. */
int gm_requests_from_spec(struct gm_limits *l, const struct gm_limit_spec *spec,
                          const char *(*index_uuid)(int index, void *ctx), void *ctx, char *err, size_t errlen);
int gm_requests_check(const struct gm_limits *l, char *err, size_t errlen);

/* The policy a creator's environment asks for besides sizes: GPUMEM_PRIORITY
 * into l->priority and GPUMEM_OOM into l->oom_wait_ms (each left alone when
 * unset). 0, or -1 with err naming the variable. */
int gm_policy_from_env(const char *(*getenv_fn)(const char *name, void *ctx), void *ctx, struct gm_limits *l,
                       char *err, size_t errlen);

/* ---- decisions (policy.c) --------------------------------------------- */

/* One group as the decisions see it, on one GPU. */
struct gp_group {
    const char *name;
    int32_t priority;
    uint64_t request;       /* guaranteed bytes on this GPU (0: none) */
    uint64_t used;          /* bytes it holds there now */
    uint64_t created;       /* creation time: among equals the newest goes first */
    int busy;               /* already being reclaimed: not picked again */
};

/* Admission of a request on a GPU of `total` bytes where `requested` bytes
 * are already requested by others: 1 when it fits. */
static inline int gp_fits(uint64_t total, uint64_t requested, uint64_t want)
{
    return requested <= total && want <= total - requested;
}

/* Why a group is reclaimed. */
enum gp_reason {
    GP_BORROWED = 1,        /* it held more than its request */
    GP_LOWER_PRIORITY = 2,  /* it has a lower priority than the group in need */
};

struct gp_victim {
    int index;              /* into the groups given */
    enum gp_reason reason;
    uint64_t frees;         /* what reclaiming it gives back (by `measure`) */
};

/* What a victim's reclaim counts as freeing: its usage on the GPU (memory
 * for an allocation that found the GPU full), or its request (room for a
 * waiting start's request). */
enum gp_measure { GP_FREES_USED, GP_FREES_REQUEST };

/* Picks victims among n groups for a group of priority `prio` (index
 * `self`, never picked; -1 for a start still in the queue) that needs
 * `need` bytes on the GPU: first groups borrowing above their request
 * (used > request) of priority <= prio, lowest priority first, then most
 * borrowed; then groups of strictly lower priority, lowest first, then
 * largest. Never a group of higher priority, never a busy one. Stops once
 * the victims free `need`; fills at most max victims and returns how many,
 * or -1 (with none) when even all candidates together would not free
 * `need`: then nobody is disturbed. O(n log n). */
int gp_pick_victims(const struct gp_group *g, int n, int self, int32_t prio, uint64_t need, enum gp_measure m,
                    struct gp_victim *out, int max);

/* Queue order: higher priority first, then earlier arrival, then lower
 * sequence (ties of the clock). <0 when a goes before b. */
struct gp_waiter {
    int32_t priority;
    uint64_t arrival_ns;
    uint64_t seq;
};
int gp_queue_cmp(const struct gp_waiter *a, const struct gp_waiter *b);

/* ---- state directory (admission.c) ------------------------------------ */

/* Files, all under the state directory (names starting with '.' are never
 * groups): */
#define GM_ADMIT_LOCK   ".admission.lock"   /* flock: one admission at a time */
#define GM_QUEUE_DIR    ".queue"            /* one file per waiting start */
#define GM_POLICY_DIR   ".policy"           /* reclaim records, journal */
#define GM_JOURNAL      ".policy/decisions.jsonl"

/* Takes the admission lock (blocking): the descriptor to close, or -1 with
 * err. The kernel drops it when its holder dies, however it dies, so a
 * creator killed mid-admission blocks nobody. */
int gm_admit_lock(const char *state, char *err, size_t errlen);
void gm_admit_unlock(int fd);

/* A GPU as admission sees it. */
struct gm_gpu {
    char uuid[GM_UUID_LEN];
    uint64_t total;
};

/* Who holds requests on a GPU: the groups of the state directory (and the
 * starts that were admitted but not yet created: none, since creation is
 * under the lock). */
struct gm_holder {
    char name[GM_NAME_LEN];
    int32_t priority;
    uint64_t request;
};

/* Under the admission lock: whether a group with limits `want` (in the
 * directory named `self`, which is not counted if it exists) fits every GPU of gpus[0..n).
 * 1: fits. 0: does not; msg says for the first GPU that does not fit how
 * much it has, how much is free of requests and who holds them (largest
 * first). -1: the state directory could not be read (msg says why). */
int gm_admit_check(const char *state, const char *self, const struct gm_limits *want, const struct gm_gpu *gpus,
                   int n, char *msg, size_t msglen);

/* Requests held on `uuid` by the groups of the state directory: the sum,
 * and up to max holders (largest first) in h; *nh their count. */
uint64_t gm_requests_on(const char *state, const char *uuid, const char *self, struct gm_holder *h, int max,
                        int *nh);

/* A start waiting in the queue: STATE/.queue/<id>, key=value lines. Its
 * owner (pid, start time) waits on it; one whose owner is dead is stale
 * and removed by whoever finds it. */
struct gm_queue_entry {
    char id[64];                /* file name: <arrival ns>-<pid> */
    char name[GM_NAME_LEN];     /* the group it will create */
    pid_t pid;
    uint64_t start_time;
    int32_t priority;
    uint64_t arrival_ns;        /* CLOCK_REALTIME */
    double timeout;             /* seconds, -1 = forever */
    uint64_t request_default;
    uint32_t nreq;
    struct gm_limit_dev req[GM_MAX_DEVICES];
    char why[256];              /* the last reason it could not start */
};

/* Writes the entry (tmp + rename); fills e->id. */
int gm_queue_add(const char *state, struct gm_queue_entry *e, char *err, size_t errlen);
/* Rewrites its `why` line. */
int gm_queue_update(const char *state, const struct gm_queue_entry *e);
void gm_queue_remove(const char *state, const char *id);
/* Every live entry, in queue order; stale ones are removed. *out is
 * malloc'ed (free it); returns the count, 0 when none. */
int gm_queue_list(const char *state, struct gm_queue_entry **out);
/* Parses one entry's text (the fuzz target's entry point). 0, or -1. */
int gm_queue_parse(const char *text, struct gm_queue_entry *e);
/* The request of an entry on uuid. */
uint64_t gm_queue_request(const struct gm_queue_entry *e, const char *uuid);

/* Small text files of the state directory (queue entries, reclaim
 * records): written whole (tmp + rename, so a reader never sees half of
 * one), read whole (NUL-terminated; -1 when unreadable), and walked as
 * key=value lines: fn is called for each and a nonzero return stops the
 * walk with that value; a line without '=' or longer than 511 is -1. */
int gm_write_file_atomic(const char *path, const char *text, char *err, size_t errlen);
ssize_t gm_read_small(const char *path, char *buf, size_t len);
int gm_kv_each(const char *text, int (*fn)(const char *key, const char *value, void *ctx), void *ctx);

/* Appends one decision (a JSON object without its braces' outside, e.g.
 * "\"event\":\"admitted\",...") with the time to GM_JOURNAL, where the
 * daemon reads it into its event log and metrics. O_APPEND of one line:
 * lines of concurrent writers never interleave. */
void gm_journal(const char *state, const char *json_members);

#endif
