/* Facts about processes read from /proc, without allocating. */
#ifndef GPUMEM_PROCINFO_H
#define GPUMEM_PROCINFO_H

#include <stdint.h>
#include <sys/types.h>

/* Start time of `pid` in clock ticks since boot (/proc/<pid>/stat field 22),
 * or 0 when the process does not exist. Together with the pid it names one
 * process for the life of the machine. */
uint64_t gm_proc_start_time(pid_t pid);

/* How many threads `pid` has (/proc/<pid>/stat field 20), 0 if unknown. */
unsigned gm_proc_threads(pid_t pid);

/* The process's short command name (/proc/<pid>/comm), "" if unknown. */
void gm_proc_comm(pid_t pid, char *buf, size_t len);

/* 0 when (pid, start_time) has gone, as /proc proves now: no such process,
 * another process with that pid, or a zombie with no thread left (or
 * start_time 0: a slot a dying claimer left half-written). 1 otherwise,
 * including when nothing can be proved (start_time GM_START_UNKNOWN, /proc
 * unreadable): a slot is never reclaimed on missing evidence. Reads /proc
 * now, never the pass cache below: what a reclaim decides by. */
int gm_proc_alive(pid_t pid, uint64_t start_time);

/* As gm_proc_alive, first trying `host_hint` (a slot's host_pid: verified
 * by start time and NSpid like any candidate, 0 = none) for a process of
 * another pid namespace; within a pass, from the pass cache, so the answer
 * may be as old as the pass. For listing, and for finding which groups
 * need a reclaim; the reclaim itself asks gm_proc_alive. */
int gm_proc_seems_alive(pid_t pid, uint64_t start_time, pid_t host_hint);

/* A pass over many groups (host-side readers: gpumem ps, the daemon's
 * collect; never the shim). Until gm_proc_cache_end, on the calling thread,
 * gm_proc_stat, gm_proc_start_time and gm_proc_inner_pid read each pid's
 * /proc file once (one openat relative to an open /proc, one read), and
 * gm_proc_seems_alive scans /proc at most once for processes of other pid
 * namespaces. Passes nest (the outermost end ends it). -1 when no cache
 * could be set up: every read then goes to /proc, with the same answers. */
int gm_proc_cache_begin(void);
void gm_proc_cache_end(void);

/* Start time (as gm_proc_start_time) and state letter (/proc/<pid>/stat
 * field 3, '?' when unknown) of `pid`; 0 if it is gone. The letter is the
 * thread-group leader's, except that a zombie leader beside threads that
 * still run (main called pthread_exit, or the process is midway through a
 * SIGKILL) reads GM_PROC_LEADER_GONE: that process lives and still holds
 * its device memory, which the driver gives back only when its last thread
 * has gone. 'Z' means no thread is left. */
#define GM_PROC_LEADER_GONE 'L'

uint64_t gm_proc_stat(pid_t pid, char *state);

/* The pid `host` (a pid as this reader sees it) has in its own innermost
 * pid namespace: the last number of the NSpid line of /proc/<host>/status;
 * 0 if unknown. */
pid_t gm_proc_inner_pid(pid_t host);

/* ---- parsers of /proc text, without I/O: the readers above and below
 * call them on what they read; tests/fuzz/procinfo.c calls them directly -- */

/* Start time and state letter from the text of /proc/<pid>/stat (as
 * gm_proc_stat); 0 and '?' when it does not parse. */
uint64_t gm_parse_proc_stat(const char *stat, char *state);

/* The last number of the NSpid line in the text of /proc/<pid>/status (as
 * gm_proc_inner_pid); 0 if there is none. */
pid_t gm_parse_nspid(const char *status);

/* One line of /proc/<pid>/cgroup (modified in place): "0::<path>" sets v2 to
 * that cgroup's cgroup.procs in the unified hierarchy; a v1 line of the pids
 * controller (else the first of memory) sets v1. Other lines change nothing. */
void gm_parse_cgroup_line(char *line, char *v2, size_t v2len, char *v1, size_t v1len);

/* ---- host pids (src/common/hostpid.c; host-side readers only: they use
 * stdio and malloc, never call them from the shim) ---------------------- */

/* 1 when `host` is a live process that started at `start_time` and is
 * `pid` in its innermost pid namespace. */
int gm_host_pid_matches(pid_t host, pid_t pid, uint64_t start_time);

/* The cgroup.procs file of `host`'s cgroup (v2: the unified hierarchy;
 * v1: the pids, else memory, controller), when it exists. 0 or -1. */
int gm_proc_cgroup_procs(pid_t host, char *buf, size_t len);

/* The host pid (as this reader sees pids) of the process that is `pid` in
 * its innermost pid namespace and started at `start_time`; 0 when none or
 * more than one matches. With `cgroup_procs` (a cgroup.procs path), only
 * that cgroup's processes are looked at; otherwise all of /proc. */
pid_t gm_host_pid_find(pid_t pid, uint64_t start_time, const char *cgroup_procs);

struct gm_usage;
/* For every slot of a group: its process's host pid, verified now, into
 * host[i] (0 = free slot or not found). A slot's host_pid hint is checked
 * and used first; new ones are looked for in the cgroup of a process of
 * the group already known, else in all of /proc, in one pass. Found pids
 * are written back into the slots' host_pid as hints for the next reader
 * (never trusted: always verified again). Returns how many slots are live
 * without a host pid found. */
int gm_resolve_host_pids(struct gm_usage *u, int32_t host[]);

#endif
