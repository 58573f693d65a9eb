/* Host pids of a group's processes. A slot written inside a container holds
 * the pid as the container sees it; NVML (and everyone on the host) names
 * processes by host pid. A process is found by what cannot be forged from
 * inside: its start time (clock ticks since boot, the same in every pid
 * namespace) and the innermost entry of its NSpid line, preferably among
 * the processes of the container's cgroup.
 *
 * Host-side readers only (gpumem ps, the daemon): stdio and malloc are fine
 * here. The slot's host_pid is a hint written back for the next reader; it
 * is verified before every use, and the shim never reads it. */
#include "gpumem/group.h"
#include "gpumem/procinfo.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int live_state(char state) { return state != 'Z' && state != 'X' && state != '?'; }

int gm_host_pid_matches(pid_t host, pid_t pid, uint64_t start_time)
{
    if (host <= 0 || pid <= 0 || start_time == 0)
        return 0;
    char state;
    return gm_proc_stat(host, &state) == start_time && live_state(state) && gm_proc_inner_pid(host) == pid;
}

/* /sys/fs/cgroup[/<ctl>]<cg>/cgroup.procs, or "" when it does not fit (cut
 * short, it would name another file). */
static void procs_path(char *dst, size_t len, const char *ctl, const char *cg)
{
    int n = snprintf(dst, len, "/sys/fs/cgroup%s%s%s/cgroup.procs", *ctl ? "/" : "", ctl, strcmp(cg, "/") ? cg : "");
    if (n < 0 || (size_t)n >= len)
        dst[0] = '\0';
}

void gm_parse_cgroup_line(char *line, char *v2, size_t v2len, char *v1, size_t v1len)
{
    line[strcspn(line, "\n")] = '\0';
    char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2 || c2[1] != '/')
        return;
    *c1 = '\0'; /* line: the hierarchy id */
    *c2 = '\0';
    const char *ctl = c1 + 1, *cg = c2 + 1;
    if (strcmp(line, "0") == 0 && !*ctl)
        procs_path(v2, v2len, "", cg);
    else if (strcmp(ctl, "pids") == 0 || (strcmp(ctl, "memory") == 0 && !*v1))
        procs_path(v1, v1len, ctl, cg);
}

int gm_proc_cgroup_procs(pid_t host, char *buf, size_t len)
{
    char path[48], line[4096], v2[4096] = "", v1[4096] = "";
    snprintf(path, sizeof path, "/proc/%d/cgroup", (int)host);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        gm_parse_cgroup_line(line, v2, sizeof v2, v1, sizeof v1);
    fclose(f);
    /* Hybrid hosts list both; the v1 controller is where the engine puts
     * containers when the unified hierarchy holds no controllers. */
    const char *pick = *v1 && access(v1, R_OK) == 0 ? v1 : *v2 && access(v2, R_OK) == 0 ? v2 : NULL;
    if (!pick || strlen(pick) >= len)
        return -1;
    snprintf(buf, len, "%s", pick);
    return 0;
}

/* Candidates: a cgroup's processes, or every process. */
struct cand_iter {
    FILE *procs;
    DIR *dir;
};

static int cand_open(struct cand_iter *it, const char *cgroup_procs)
{
    memset(it, 0, sizeof *it);
    if (cgroup_procs && *cgroup_procs && (it->procs = fopen(cgroup_procs, "re")))
        return 0;
    it->dir = opendir("/proc");
    return it->dir ? 0 : -1;
}

static pid_t cand_next(struct cand_iter *it)
{
    if (it->procs) {
        int v;
        return fscanf(it->procs, "%d", &v) == 1 && v > 0 ? v : 0;
    }
    struct dirent *e;
    while ((e = readdir(it->dir))) {
        char *end;
        long v = strtol(e->d_name, &end, 10);
        if (*end == '\0' && v > 0 && v <= 0x7fffffff)
            return (pid_t)v;
    }
    return 0;
}

static void cand_close(struct cand_iter *it)
{
    if (it->procs)
        fclose(it->procs);
    if (it->dir)
        closedir(it->dir);
}

/* Looks for every wanted (pid, start time) in one pass over the
 * candidates; found[i] gets the host pid, or -1 when two processes match. */
static void find_many(const int32_t *pid, const uint64_t *start, int32_t *found, int n, const char *cgroup_procs)
{
    struct cand_iter it;
    if (n == 0 || cand_open(&it, cgroup_procs) < 0)
        return;
    pid_t h;
    while ((h = cand_next(&it)) > 0) {
        char state;
        uint64_t st = gm_proc_stat(h, &state);
        if (st == 0 || !live_state(state))
            continue;
        pid_t inner = -1;
        for (int i = 0; i < n; i++) {
            if (start[i] != st)
                continue;
            if (inner < 0)
                inner = gm_proc_inner_pid(h);
            if (inner == pid[i] && found[i] != h)
                found[i] = found[i] == 0 ? h : -1;
        }
    }
    cand_close(&it);
}

pid_t gm_host_pid_find(pid_t pid, uint64_t start_time, const char *cgroup_procs)
{
    int32_t p = pid, found = 0;
    uint64_t st = start_time;
    if (pid <= 0 || start_time == 0)
        return 0;
    find_many(&p, &st, &found, 1, cgroup_procs);
    return found > 0 ? found : 0;
}

int gm_resolve_host_pids(struct gm_usage *u, int32_t host[])
{
    int32_t want_pid[GM_MAX_PROCS] = {0}, found[GM_MAX_PROCS] = {0};
    uint64_t want_start[GM_MAX_PROCS] = {0};
    int want_slot[GM_MAX_PROCS];
    char cgroup[4096] = "";
    int n = 0;
    uint32_t hw = atomic_load(&u->slots_hw);
    if (hw > GM_MAX_PROCS)
        hw = GM_MAX_PROCS;
    for (uint32_t i = 0; i < GM_MAX_PROCS; i++)
        host[i] = 0;
    for (uint32_t i = 0; i < hw; i++) {
        struct gm_proc_slot *s = &u->slot[i];
        int32_t pid = atomic_load(&s->pid);
        uint64_t st = s->start_time;
        if (pid <= 0)
            continue;
        int32_t hint = __atomic_load_n(&s->host_pid, __ATOMIC_RELAXED);
        if (gm_host_pid_matches(hint, pid, st))
            host[i] = hint;
        else if (gm_host_pid_matches(pid, pid, st)) /* same pid namespace as this reader */
            host[i] = pid;
        if (host[i] && !*cgroup && gm_proc_cgroup_procs(host[i], cgroup, sizeof cgroup) < 0)
            cgroup[0] = '\0';
        if (!host[i] && st) {
            want_pid[n] = pid;
            want_start[n] = st;
            want_slot[n] = (int)i;
            found[n] = 0;
            n++;
        }
    }
    find_many(want_pid, want_start, found, n, *cgroup ? cgroup : NULL);
    int missing = 0;
    for (int k = 0; k < n; k++) {
        if (found[k] > 0)
            host[want_slot[k]] = found[k];
        else
            missing++;
    }
    for (uint32_t i = 0; i < hw; i++) {
        struct gm_proc_slot *s = &u->slot[i];
        /* A hint only: a slot reused meanwhile gets a wrong one, which the
         * next reader's check throws away. */
        if (host[i] && __atomic_load_n(&s->host_pid, __ATOMIC_RELAXED) != host[i] && atomic_load(&s->pid) != 0)
            __atomic_store_n(&s->host_pid, host[i], __ATOMIC_RELAXED);
    }
    return missing;
}
