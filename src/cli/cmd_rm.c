/* gpumem rm GROUP...: remove groups. A group with live processes is
 * refused (they are listed) unless --force, which SIGKILLs them first, each
 * by a pidfd opened on a pid whose start time matched the slot's, so that a
 * reused pid is never signalled. The removal itself is gm_group_collect's:
 * under the group's admin mutex, after reclaim, only when no slot is live. */
#include "cli.h"
#include "gpumem/driver_limits.h"
#include "gpumem/procinfo.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void rm_usage(FILE *out)
{
    fprintf(out, "Usage: gpumem rm [--force] GROUP...\n"
                 "\n"
                 "Removes each GROUP (see gpumem ps): its name, a container's name or id (at\n"
                 "least 12 characters), or the path of a group directory. A group is removed\n"
                 "only when none of its processes is alive; otherwise gpumem rm lists them\n"
                 "and fails, unless --force is given.\n"
                 "\n"
                 "Groups of gpumem run are removed by themselves once their last process\n"
                 "exits; gpumem rm is for groups made with --keep, and for ending a group at\n"
                 "once. A container's group is removed by gpumem-runtime when the container\n"
                 "is deleted; removing it earlier makes the container's later CUDA processes\n"
                 "fail closed (\"group ... no longer exists\").\n"
                 "\n"
                 "Options:\n"
                 "  -f, --force   kill the group's live processes (SIGKILL), wait for them to\n"
                 "                be gone (up to 10 s), then remove the group\n"
                 "  -h, --help    show this help\n"
                 "\n"
                 "Exit status: 0 when every GROUP was removed, 1 otherwise.\n"
                 "\n"
                 "Examples:\n"
                 "  gpumem rm job7\n"
                 "  gpumem rm --force job7\n");
}

/* SIGKILL to the process `host` only if it is still the one that started
 * at `start`. */
static int kill_verified(pid_t host, uint64_t start)
{
#if defined(SYS_pidfd_open) && defined(SYS_pidfd_send_signal)
    int fd = (int)syscall(SYS_pidfd_open, host, 0);
    if (fd >= 0) {
        /* The pidfd pins the process: checked after opening, the start
         * time names the process the signal goes to. */
        int rc = -1;
        if (gm_proc_start_time(host) == start)
            rc = (int)syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0);
        else
            errno = ESRCH;
        close(fd);
        return rc;
    }
    if (errno != ENOSYS)
        return -1;
#endif
    if (gm_proc_start_time(host) != start) {
        errno = ESRCH;
        return -1;
    }
    return kill(host, SIGKILL);
}

/* "pid 123 (python), pid 456 (worker)" for the live slots; their count. */
static int list_live(struct gm_usage *u, const int32_t *host, char *buf, size_t len)
{
    int n = 0;
    size_t used = 0;
    buf[0] = '\0';
    uint32_t hw = atomic_load(&u->slots_hw);
    for (uint32_t i = 0; i < hw && i < GM_MAX_PROCS; i++) {
        const struct gm_proc_slot *s = &u->slot[i];
        int32_t pid = atomic_load(&s->pid);
        if (pid == 0)
            continue;
        char comm[sizeof s->comm + 1];
        memcpy(comm, s->comm, sizeof s->comm);
        comm[sizeof s->comm] = '\0';
        int w = host[i] > 0 && host[i] != pid
                    ? snprintf(buf + used, len - used, "%spid %d (host pid %d, %s)", n ? ", " : "", pid, host[i], comm)
                    : snprintf(buf + used, len - used, "%spid %d (%s)", n ? ", " : "", pid, comm);
        if (w > 0 && (size_t)w < len - used)
            used += (size_t)w;
        n++;
    }
    return n;
}

static int kill_members(const char *name, struct gm_usage *u, const int32_t *host)
{
    int failed = 0;
    uint32_t hw = atomic_load(&u->slots_hw);
    for (uint32_t i = 0; i < hw && i < GM_MAX_PROCS; i++) {
        const struct gm_proc_slot *s = &u->slot[i];
        int32_t pid = atomic_load(&s->pid);
        if (pid == 0)
            continue;
        if (host[i] <= 0) {
            die(1, "%s: cannot kill pid %d: its host pid is not known here", name, pid);
            failed = 1;
        } else if (kill_verified(host[i], s->start_time) < 0 && errno != ESRCH) {
            die(1, "%s: cannot kill pid %d: %s", name, host[i], strerror(errno));
            failed = 1;
        }
    }
    return failed ? -1 : 0;
}

/* Until no slot is live (dead ones reclaimed), at most ~10 s. */
static int wait_empty(struct gm_usage *u)
{
    for (int i = 0; i < 200; i++) {
        gm_reclaim_dead(u);
        if (gm_usage_live_slots(u) == 0)
            return 0;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

static int rm_one(const char *arg, int force)
{
    char dir[PATH_MAX], err[512], who[4096];
    if (group_dir(arg, dir, sizeof dir) < 0)
        return die(1, "no group \"%s\" (see gpumem ps)", arg);
    struct gm_usage *u = gm_usage_map(dir, err, sizeof err);
    if (!u) {
        /* No process can account in a group whose usage cannot be mapped. */
        if (!force)
            return die(1, "%s: %s (gpumem rm --force %s removes it anyway)", arg, err, arg);
        gm_driver_limits_clear(dir);
        if (gm_group_remove(dir) < 0 && errno != ENOENT)
            return die(1, "%s: %s", dir, strerror(errno));
        return 0;
    }
    int32_t host[GM_MAX_PROCS];
    gm_reclaim_dead(u);
    gm_resolve_host_pids(u, host);
    int n = list_live(u, host, who, sizeof who);
    int rc = 0;
    if (n > 0 && !force) {
        rc = die(1, "group %s has %d live process%s: %s; gpumem rm --force %s kills %s", arg, n, n == 1 ? "" : "es",
                 who, arg, n == 1 ? "it" : "them");
    } else if (n > 0 && (kill_members(arg, u, host) < 0 || wait_empty(u) < 0)) {
        n = list_live(u, host, who, sizeof who);
        rc = die(1, "group %s: processes still alive: %s", arg, who);
    } else {
        gm_driver_limits_clear(dir); /* no driver limit outlives its group */
        int r = gm_group_collect(dir, u, NULL, GM_COLLECT_ANY);
        if (r < 0)
            rc = die(1, "group %s: cannot lock its usage region", arg);
        else if (r == 0)
            rc = die(1, "group %s: a process joined it meanwhile (or %s cannot be written); not removed", arg, dir);
    }
    gm_usage_unmap(u);
    return rc;
}

int cmd_rm(int argc, char **argv)
{
    static const struct option opts[] = {
        {"force", no_argument, 0, 'f'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int force = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "fh", opts, NULL)) != -1) {
        switch (c) {
        case 'f': force = 1; break;
        case 'h': rm_usage(stdout); return 0;
        default: rm_usage(stderr); return 2;
        }
    }
    if (optind >= argc) {
        rm_usage(stderr);
        return die(2, "rm: no group given");
    }
    int rc = 0;
    for (int i = optind; i < argc; i++)
        if (rm_one(argv[i], force) != 0)
            rc = 1;
    return rc;
}
