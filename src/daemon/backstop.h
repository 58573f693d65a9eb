/* The backstop: the daemon's check that does not trust the shim. NVML's own
 * list of the processes on each GPU (host pids, bytes) is joined to the
 * groups (by their slots, by a container's cgroup, by a `gpumem run`'s
 * process tree) and set against the shim's accounting and each group's
 * limit; what the shim does not account is alerted on or killed
 * (docs/backstop.md).
 *
 *   backstop_proc.c  what /proc says of one host pid (and its parser)
 *   backstop_rules.c the rules, pure: dishonest, over the limit, exiting, exempt
 *   backstop_join.c  one pass: every GPU process joined to its group
 *   backstop.c       offences, persistence, actions, events, metrics */
#ifndef GPUMEM_DAEMON_BACKSTOP_H
#define GPUMEM_DAEMON_BACKSTOP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon.h"

/* ---- backstop_proc.c ------------------------------------------------ */

#define BS_PF_EXITING 0x4u /* include/linux/sched.h: the process is in do_exit() */

/* The fields of /proc/<pid>/stat the backstop reads. */
struct bs_stat {
    char state;                /* field 3; '?' unknown */
    pid_t ppid;                /* field 4 */
    unsigned flags;            /* field 9 (PF_*): the thread-group leader's */
    uint64_t threads;          /* field 20 */
    uint64_t start;            /* field 22; 0 = gone or unreadable */
};

/* Whether the process is on its way out with nothing left running: the
 * leader exiting (PF_EXITING) or a zombie, and no other thread. A leader
 * that called pthread_exit beside running threads reads the same letter
 * and flag: that process lives on and holds its memory. */
int bs_stat_exiting(const struct bs_stat *st);

struct bs_procinfo {
    pid_t pid;                 /* as this reader sees it (the host) */
    struct bs_stat st;
    pid_t inner;               /* last NSpid entry: the pid in its own namespace; 0 unknown */
    char comm[32];
    char cgroup[512];          /* where it is (bs_parse_cgroup) */
};

/* Parses the text of /proc/<pid>/stat: 0 and -1 when it does not parse.
 * comm may hold spaces and parentheses: fields resume after the last ')'. */
int bs_parse_stat(const char *text, struct bs_stat *st);
/* The cgroup path out of the text of /proc/<pid>/cgroup that names where
 * the process is: the unified hierarchy's ("0::") unless it is the root,
 * else the pids controller's unless it is the root, else the first other
 * v1 path that is not the root, else the root; "" when none, or when it
 * does not fit in len. */
void bs_parse_cgroup(const char *text, char *out, size_t len);
/* Reads all of it now; 0, or -1 when the process is gone. */
int bs_proc_read(pid_t pid, struct bs_procinfo *p);
/* 1 when `pid` is still the process that started at `start` and is not
 * exiting: read now, for the last check before acting. */
int bs_proc_same(pid_t pid, uint64_t start);

/* ---- backstop_join.c ------------------------------------------------- */

#define BS_USED_UNKNOWN UINT64_MAX /* NVML_VALUE_NOT_AVAILABLE */

enum bs_join {
    BS_JOIN_NONE = 0,          /* in no group */
    BS_JOIN_SLOT,              /* a shim's slot is this process */
    BS_JOIN_CGROUP,            /* in a container group's cgroup, without a slot */
    BS_JOIN_TREE,              /* a descendant of a group's process (or of its gpumem run), without a slot */
};

/* One process on one device, as NVML lists it, joined to its group. */
struct bs_gpuproc {
    unsigned host_pid;
    int dev;                   /* index into the view's devices */
    uint64_t used;             /* NVML's bytes; BS_USED_UNKNOWN */
    uint64_t start;            /* 0 when /proc could not say (gone) */
    int exiting;               /* in do_exit(), or a zombie */
    char comm[32];
    char cgroup[512];
    int group;                 /* index into the view's groups; -1 none */
    enum bs_join how;
    uint64_t accounted;        /* the shim's bytes for it on this device (BS_JOIN_SLOT) */
};

struct bs_group {
    char name[GM_NAME_LEN + 1];
    char container_id[81];
    char container[80], pod[GM_NAME_LEN], ns[GM_NAME_LEN]; /* as struct dm_row */
    pid_t creator;             /* gpumem run's pid, from its marker; 0 none */
    uint64_t creator_start;
    char cgroup[512];          /* learned from a process of its own slots; "" unknown */
    uint64_t limit[DM_MAX_NVML_DEVS];   /* per device of the view; GM_UNLIMITED */
    uint64_t shim[DM_MAX_NVML_DEVS];    /* the shim's accounting of the whole group there */
};

struct bs_slotkey {
    int32_t pid;               /* as the group sees it */
    uint64_t start;
    int group;
    uint32_t slot;
};

struct bs_view {
    const struct dm_device *devs;
    int ndevs;
    struct bs_group *groups;
    size_t ngroups, capgroups;
    struct gm_usage **maps;    /* each group's region, mapped for the pass */
    struct bs_slotkey *keys;   /* live slots, sorted by (start, pid) */
    size_t nkeys, capkeys;
    struct bs_gpuproc *procs;  /* device order, then NVML's (pid) order */
    size_t nprocs, capprocs;
    int oom;
};

/* Joins every process NVML lists on `devs` (read just before) to the
 * groups under state_dir. Never reclaims or removes anything. */
void bs_view_build(struct bs_view *v, const struct dm_device *devs, int ndevs, const char *state_dir);
void bs_view_free(struct bs_view *v);

/* ---- backstop.c ------------------------------------------------------ */

enum bs_policy { BS_OFF = 0, BS_ALERT, BS_KILL };

#define BS_DEFAULT_INTERVAL 0.25
#define BS_DEFAULT_GRACE 0.5
#define BS_DEFAULT_TOLERANCE (256ULL << 20)
#define BS_MAX_EXEMPT 16

struct bs_config {
    enum bs_policy policy;
    double interval;           /* seconds between passes */
    double grace;              /* an offence must last this long, over two passes at least */
    uint64_t tolerance;        /* bytes the driver may hold beyond the shim's count (see docs) */
    const char *exempt[BS_MAX_EXEMPT]; /* cgroup paths whose ungrouped processes are left alone */
    int nexempt;
};

void bs_config_default(struct bs_config *c);
/* "off", "alert", "kill": 0, or -1. */
int bs_parse_policy(const char *s, enum bs_policy *out);
const char *bs_policy_name(enum bs_policy p);

void bs_configure(const struct bs_config *c);
/* One pass at monotonic time `now`: reads NVML, joins, judges, acts, logs.
 * Returns the seconds the pass took. */
double bs_tick(const char *state_dir, double now);
/* Runs bs_tick every interval on a thread of its own (nothing when the
 * policy is off); bs_stop ends it. 0, or -1 when no thread could start. */
int bs_start(const char *state_dir);
void bs_stop(void);
/* The backstop's series (pass duration, ungrouped processes, unaccounted
 * bytes, detections): nothing when it is off or has not run. */
void bs_render_metrics(struct gbuf *b);
void bs_reset(void);

/* ---- backstop_rules.c ------------------------------------------------ */

/* Judging, pure (tests/unit/backstop_rules.c): whether a process is
 * dishonest on its own, and whether a group's real usage passes its limit.
 * `real` and `shim` are the group's bytes per NVML and per the shim. */
int bs_proc_dishonest(const struct bs_gpuproc *p, uint64_t tolerance);
int bs_group_over(uint64_t real, uint64_t shim, uint64_t limit, uint64_t tolerance);
/* 1 when `cgroup` is `prefix` or under it ("/a" holds "/a/b", not "/ab"). */
int bs_cgroup_under(const char *cgroup, const char *prefix);

#endif
