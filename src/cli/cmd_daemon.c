/* gpumem daemon: the host agent. Serves Prometheus metrics over HTTP
 * (src/daemon/http.c), and every interval reclaims the slots of dead
 * processes and logs events (src/daemon/events.c) until SIGTERM/SIGINT. */
#include "cli.h"
#include "gpumem/hostutil.h"
#include "gpumem/ticks.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../daemon/daemon.h"
#include "../daemon/leak.h"
#include "../daemon/policy.h"
#include "../daemon/backstop.h"

static void daemon_usage(FILE *out)
{
    fprintf(out,
            "Usage: gpumem daemon [--listen ADDR:PORT] [--sim] [--interval SECONDS] [--log FILE]\n"
            "                     [--leak-window SECONDS] [--leak-long-window SECONDS]\n"
            "                     [--leak-min-growth SIZE] [--preempt-grace SECONDS]\n"
            "                     [--preempt-hook COMMAND] [--backstop off|alert|kill]\n"
            "                     [--backstop-interval SECONDS] [--backstop-grace SECONDS]\n"
            "                     [--backstop-tolerance SIZE] [--backstop-exempt CGROUP]...\n"
            "\n"
            "The gpumem host agent. It serves the GPU memory of every group (container,\n"
            "gpumem run) and every device as Prometheus metrics, and every interval it\n"
            "reclaims the slots of processes that died and logs events as JSON lines.\n"
            "Viewing needs no daemon (gpumem ps reads the groups directly); the daemon is\n"
            "for scraping, alerting and the event log.\n"
            "\n"
            "HTTP endpoints:\n"
            "  GET /metrics    Prometheus text format 0.0.4, collected afresh on each\n"
            "                  request: gpumem_group_{limit,used,peak}_bytes,\n"
            "                  gpumem_group_refusals_total, gpumem_group_processes,\n"
            "                  gpumem_group_accounting_drift_bytes,\n"
            "                  gpumem_group_leak_suspected, gpumem_group_swap_{used,limit}_bytes\n"
            "                  (labels group, container, pod, namespace, gpu, uuid);\n"
            "                  gpumem_device_{total,used,free}_bytes\n"
            "                  and gpumem_device_granted_limit_bytes (labels gpu, uuid).\n"
            "                  docs/monitoring.md describes each one.\n"
            "  GET /healthz    \"ok\" while the daemon runs.\n"
            "  Any other path answers 404, any other method 405.\n"
            "\n"
            "Events (one JSON object per line, with time, level and event):\n"
            "  refusal         a group's refusal counter grew: group, uuid, count, new,\n"
            "                  last_refused_size\n"
            "  threshold       a group's usage crossed %d%% of its limit on a device,\n"
            "                  direction \"up\" or \"down\"\n"
            "  first_spill     a group spilled to host memory for the first time (its\n"
            "                  swap, docs/spill.md): group, uuid, swap_used, swap_limit\n"
            "  reclaim         slots of dead processes were freed in a group\n"
            "  group_skipped   a group's files are corrupt or unreadable (it is left out\n"
            "                  of the metrics; warned once until it is readable again)\n"
            "  group_removed   the group of a container that no longer exists was removed\n"
            "                  (group, container_id, reason \"container gone\"), or that of a\n"
            "                  gpumem run that exited or was killed once no process of it\n"
            "                  is left (group, creator_pid, reason \"run group empty\")\n"
            "  leak_suspected  a process's usage on a device looks like a leak (below): group,\n"
            "                  uuid, gpu, pid, host_pid, comm, reason (idle_growth or\n"
            "                  long_growth), window_seconds, start_used, end_used, growth,\n"
            "                  rate_bytes_per_second, allocs, frees\n"
            "  leak_cleared    it no longer does: reason stopped_growing or exited\n"
            "  admitted, admission_refused, queued, admission_timeout\n"
            "                  a start with a request (gpumem run, gpumem-runtime) was\n"
            "                  admitted, refused, queued or gave up: group, by, pid, priority,\n"
            "                  request, waited_seconds, why (read from the decision journal\n"
            "                  STATE_DIR/.policy/decisions.jsonl, so none is lost while no\n"
            "                  daemon runs)\n"
            "  preempt         a victim was chosen and notified: victim, for, reason\n"
            "                  (borrowed or lower_priority), action, uuid, bytes, need,\n"
            "                  victim_priority, victim_request, victim_used, notice, grace\n"
            "  preempt_kill    its grace period ended: its processes were SIGKILLed\n"
            "  reclaim_done    the victim is gone (seconds, killed)\n"
            "  preempt_impossible  a group in need, but nobody it may take from holds enough\n"
            "  backstop        the backstop found memory the shim does not account (below):\n"
            "                  kind, reason, group (\"\" for none), uuid, gpu, pid, comm,\n"
            "                  cgroup, used, accounted, limit, policy, action (alert, killed,\n"
            "                  kill_failed), observed_seconds\n"
            "  backstop_cleared  an offence acted on is over (the process exited or is\n"
            "                  accounted again)\n"
            "  start, stop     with the address actually bound, and the signal\n"
            "\n"
            "Options:\n"
            "  --listen ADDR:PORT   where to serve HTTP (default 127.0.0.1:9400). ADDR is an\n"
            "                       IPv4 address, localhost, [IPv6], or empty (\":9400\") for\n"
            "                       every interface; port 0 picks a free port (the start\n"
            "                       event says which)\n"
            "  --sim                read devices from the simulated GPU's NVML (also implied\n"
            "                       by GPUMEM_SIM_DIR) instead of libnvidia-ml.so.1\n"
            "  --interval SECONDS   how often to reclaim and look for events (default 5;\n"
            "                       decimals allowed, 0.05 to 86400)\n"
            "  --log FILE           append events to FILE instead of stderr\n"
            "  --leak-window SECONDS       idle-growth window (default 600, 1 to 2592000)\n"
            "  --leak-long-window SECONDS  churn-blind window (default 3600, at least the\n"
            "                              --leak-window)\n"
            "  --leak-min-growth SIZE      least growth over a window to suspect a leak\n"
            "                              (default 256M; it must also be 10%% of the\n"
            "                              usage at the window's start)\n"
            "  --preempt-grace SECONDS     from a victim's notice to its SIGKILL (default 10,\n"
            "                              0 to 86400)\n"
            "  --preempt-hook COMMAND      run COMMAND (/bin/sh -c) to notify a victim instead\n"
            "                              of SIGTERM, with GPUMEM_VICTIM, GPUMEM_VICTIM_PIDS,\n"
            "                              GPUMEM_FOR, GPUMEM_REASON, GPUMEM_BYTES, GPUMEM_UUID,\n"
            "                              GPUMEM_GRACE in its environment (e.g. to checkpoint)\n"
            "  --backstop POLICY    what to do with device memory the shim does not account\n"
            "                       (below): off, alert (default: event, metric) or kill\n"
            "                       (SIGKILL the offending process, never one the shim\n"
            "                       accounts within the tolerance)\n"
            "  --backstop-interval SECONDS  how often the backstop looks (default 0.25;\n"
            "                       0.05 to 60)\n"
            "  --backstop-grace SECONDS     how long an offence must last, over two passes at\n"
            "                       least, before it is acted on (default 0.5; 0 to 60)\n"
            "  --backstop-tolerance SIZE    bytes the driver may hold for a process or group\n"
            "                       beyond what the shim counts (default 256M)\n"
            "  --backstop-exempt CGROUP     leave ungrouped processes of this cgroup (and\n"
            "                       those under it) alone: a display server, a system\n"
            "                       service (repeatable, up to 16)\n"
            "  -h, --help           show this help\n"
            "\n"
            "Preemption (docs/policy.md): a group within its request whose allocation the\n"
            "driver refused for a full GPU, or the first start waiting for a GPU whose\n"
            "request does not fit, makes the daemon reclaim: first groups borrowing above\n"
            "their request (lowest priority first), then groups of lower priority, never\n"
            "a higher one. Each decision is written to STATE_DIR/.policy/ before the\n"
            "victim is notified, so a restarted daemon carries it out.\n"
            "\n"
            "The backstop: the shim is cooperative (a static binary, a process that drops\n"
            "LD_PRELOAD, one that talks to the device directly escapes it), so every\n"
            "backstop interval the daemon joins NVML's processes (host pids) to the groups\n"
            "(by their processes' slots, a container's cgroup, a gpumem run's process tree)\n"
            "and acts on: a process holding device memory that no shim accounts\n"
            "(unaccounted), a process holding more than the shim counts for it by more than\n"
            "the tolerance (under_reported), a group holding more than its limit and than\n"
            "the shim counts by more than the tolerance (over_limit). With the defaults an\n"
            "offence is acted on within about 1 s of appearing (interval + grace + a pass).\n"
            "Processes in no group are counted in gpumem_ungrouped_processes.\n"
            "\n"
            "Leak detection: every interval the daemon samples each process's bytes per\n"
            "device and its allocation and free counters (a bounded ring per process;\n"
            "processes that exit are forgotten). A process is suspected when over the\n"
            "leak window its usage never decreased, grew by the minimum growth, grew in\n"
            "every quarter of the window, and it allocated but freed nothing (a training\n"
            "loop warming its cache frees too, and stops growing); or when the same holds\n"
            "over the long window whatever it freed.\n"
            "\n"
            "Without NVML (no driver) the daemon still serves group metrics; device metrics\n"
            "and drift are then absent and gpumem_nvml_up is 0.\n"
            "\n"
            "For gpumem top and gpumem ps it rewrites, every interval, the file\n"
            "$GPUMEM_STATE_DIR/.daemon-view: per group and GPU the leak state and the\n"
            "last 64 samples of usage and refusal counts (a sample per leak window/64,\n"
            "at most 5 s). It is removed when the daemon stops.\n"
            "\n"
            "Signals: SIGTERM and SIGINT stop it cleanly (exit status 0).\n"
            "\n"
            "One daemon runs per state directory: a second one exits with status 1,\n"
            "naming the pid of the first (it holds a lock on STATE_DIR/.daemon.lock).\n"
            "\n"
            "Environment:\n"
            "  GPUMEM_STATE_DIR   where groups live (see gpumem --help)\n"
            "  GPUMEM_SIM_DIR     the simulated GPU's libraries (implies --sim)\n"
            "\n"
            "Example:\n"
            "  gpumem daemon --listen :9400 --log /var/log/gpumem.jsonl\n",
            DM_THRESHOLD_PERCENT);
}

static int parse_interval(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < 0.05 || v > 86400 || strspn(s, "0123456789.") != strlen(s))
        return -1;
    *out = v;
    return 0;
}

static int parse_seconds(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi || strspn(s, "0123456789.") != strlen(s))
        return -1;
    *out = v;
    return 0;
}

/* A size option; -1 after saying why. */
static int size_opt(const char *name, const char *arg, int bare, uint64_t *out)
{
    char e[256];
    if (gm_parse_size(arg, bare, out, e, sizeof e) < 0) {
        die(2, "%s: %s", name, e);
        return -1;
    }
    return 0;
}

static void bound_address(const struct sockaddr_storage *ss, int port, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "";
    if (ss->ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, host, sizeof host);
        snprintf(buf, len, "[%s]:%d", host, port);
    } else {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, host, sizeof host);
        snprintf(buf, len, "%s:%d", host, port);
    }
}

static double interval = 5, view_step = DM_HIST_STEP;
static struct bs_config bsc;
static void log_str(const char *level, const char *event, const char *key, const char *value);

static void tick(const char *state)
{
    struct dm_snapshot s;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    dm_collect_lock();
    dm_collect_procs(&s, state, 1);
    dm_leak_tick(&s, (double)now.tv_sec + now.tv_nsec / 1e9);
    dm_events_tick(&s);
    dm_collect_unlock();
    pl_tick(&s, state);
    static int warned;
    if (dm_view_write(&s, state, interval, view_step, (double)now.tv_sec + now.tv_nsec / 1e9) < 0 && !warned++) {
        char msg[PATH_MAX + 128];
        snprintf(msg, sizeof msg, "cannot write %s/%s: gpumem top and ps show no leak state", state, DM_VIEW_FILE);
        log_str("warn", "view_unwritable", "message", msg);
    }
    dm_snapshot_free(&s);
}

static void log_str(const char *level, const char *event, const char *key, const char *value)
{
    struct gbuf f = {0};
    gbuf_printf(&f, ",\"%s\":", key);
    gbuf_json(&f, value);
    dm_log(level, event, f.p);
    gbuf_free(&f);
}

/* One daemon per state directory: an exclusive flock on
 * <state>/.daemon.lock (the kernel drops it when the holder dies, however
 * it dies), which holds the holder's pid for the message a second one
 * prints. Returns the descriptor to keep open, or -1 after printing why. */
static int lock_state_dir(const char *state)
{
    char path[PATH_MAX + 16], pid[32] = "";
    if (gm_mkdir_p(state) < 0) {
        die(1, "cannot create the state directory %s: %s", state, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/.daemon.lock", state);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        die(1, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        ssize_t n = e == EWOULDBLOCK ? pread(fd, pid, sizeof pid - 1, 0) : -1;
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        if (e == EWOULDBLOCK)
            die(1, "another gpumem daemon (pid %s) is already running on %s (lock %s)", *pid ? pid : "unknown",
                state, path);
        else
            die(1, "%s: flock: %s", path, strerror(e));
        close(fd);
        return -1;
    }
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        die(1, "%s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int cmd_daemon(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, 0, 'l'}, {"sim", no_argument, 0, 's'},
        {"interval", required_argument, 0, 'i'}, {"log", required_argument, 0, 'o'},
        {"leak-window", required_argument, 0, 'w'}, {"leak-long-window", required_argument, 0, 'W'},
        {"leak-min-growth", required_argument, 0, 'g'}, {"help", no_argument, 0, 'h'},
        {"preempt-grace", required_argument, 0, 'P'},   {"preempt-hook", required_argument, 0, 'H'},
        {"backstop", required_argument, 0, 'B'}, {"backstop-interval", required_argument, 0, 'I'},
        {"backstop-grace", required_argument, 0, 'G'}, {"backstop-tolerance", required_argument, 0, 'T'},
        {"backstop-exempt", required_argument, 0, 'E'}, {0, 0, 0, 0},
    };
    struct pl_config pc = {.grace = 10, .hook = NULL, .pressure_age = 2};
    bs_config_default(&bsc);
    struct lk_params lp;
    lk_params_default(&lp);
    const char *listen = "127.0.0.1:9400", *log_path = NULL;
    int sim = 0, c;
    gm_ticks_anchor(); /* leak evidence ages allocations: start timing the clock now */
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'l': listen = optarg; break;
        case 's': sim = 1; break;
        case 'i':
            if (parse_interval(optarg, &interval) < 0)
                return die(2, "--interval \"%s\": expected seconds from 0.05 to 86400", optarg);
            break;
        case 'o': log_path = optarg; break;
        case 'w':
        case 'W': {
            double v;
            if (parse_seconds(optarg, 1, 30 * 86400.0, &v) < 0)
                return die(2, "--%s \"%s\": expected seconds from 1 to 2592000",
                           c == 'w' ? "leak-window" : "leak-long-window", optarg);
            *(c == 'w' ? &lp.window : &lp.long_window) = v;
            break;
        }
        case 'g':
            if (size_opt("--leak-min-growth", optarg, GM_BARE_REJECT, &lp.min_growth) < 0)
                return 2;
            break;
        case 'B':
            if (bs_parse_policy(optarg, &bsc.policy) < 0)
                return die(2, "--backstop \"%s\": expected off, alert or kill", optarg);
            break;
        case 'I':
        case 'G': {
            const char *name = c == 'I' ? "--backstop-interval" : "--backstop-grace";
            double lo = c == 'I' ? 0.05 : 0;
            if (parse_seconds(optarg, lo, 60, c == 'I' ? &bsc.interval : &bsc.grace) < 0)
                return die(2, "%s \"%s\": expected seconds from %g to 60", name, optarg, lo);
            break;
        }
        case 'P':
            if (parse_seconds(optarg, 0, 86400, &pc.grace) < 0)
                return die(2, "--preempt-grace \"%s\": expected seconds from 0 to 86400", optarg);
            break;
        case 'H':
            if (!*optarg)
                return die(2, "--preempt-hook: an empty command");
            pc.hook = optarg;
            break;
        case 'T': /* 0 is a tolerance (none), where the size parser refuses a 0 limit */
            if (strcmp(optarg, "0") == 0)
                bsc.tolerance = 0;
            else if (size_opt("--backstop-tolerance", optarg, GM_BARE_BYTES, &bsc.tolerance) < 0)
                return 2;
            break;
        case 'E':
            if (optarg[0] != '/')
                return die(2, "--backstop-exempt \"%s\": expected a cgroup path starting with / (as in "
                              "/proc/PID/cgroup)", optarg);
            if (bsc.nexempt == BS_MAX_EXEMPT)
                return die(2, "--backstop-exempt \"%s\": at most %d cgroups", optarg, BS_MAX_EXEMPT);
            bsc.exempt[bsc.nexempt++] = optarg;
            break;
        case 'h': daemon_usage(stdout); return 0;
        default: daemon_usage(stderr); return 2;
        }
    }
    if (optind < argc)
        return die(2, "unexpected argument \"%s\"", argv[optind]);
    bs_configure(&bsc);
    if (lp.long_window < lp.window)
        return die(2, "--leak-long-window (%g s) must not be shorter than --leak-window (%g s)", lp.long_window,
                   lp.window);
    dm_leak_configure(&lp);
    /* A pressure report counts while its waiter would still be retrying:
     * two intervals, at least 2 s. */
    pc.pressure_age = 2 * interval > 2 ? 2 * interval : 2;
    pl_configure(&pc);

    char err[512];
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (dm_parse_listen(listen, &ss, &sslen, err, sizeof err) < 0)
        return die(2, "%s", err);
    char state[PATH_MAX];
    gm_state_dir(state, sizeof state);
    int lock_fd = lock_state_dir(state);
    if (lock_fd < 0)
        return 1;
    FILE *log = stderr;
    if (log_path && !(log = fopen(log_path, "ae")))
        return die(1, "--log \"%s\": %s", log_path, strerror(errno));
    dm_log_open(log);

    int nv = open_nvml_view(sim, err, sizeof err);
    if (nv < 0)
        return die(1, "%s", err);
    if (nv > 0)
        log_str("warn", "nvml_unavailable", "message", err);

    /* Signals are taken synchronously by the loop; the HTTP thread,
     * started after this, inherits the mask. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* The history top shows spans the leak window (64 samples), at most
     * DM_HIST_STEP seconds a sample. */
    view_step = lp.window / DM_HIST < DM_HIST_STEP ? lp.window / DM_HIST : DM_HIST_STEP;
    int port = dm_http_start(&ss, state, err, sizeof err);
    if (port < 0) {
        die(1, "--listen \"%s\": %s", listen, err);
        log_str("error", "listen_failed", "message", err);
        return 1;
    }
    char where[INET6_ADDRSTRLEN + 16];
    bound_address(&ss, port, where, sizeof where);
    struct gbuf f = {0};
    gbuf_puts(&f, ",\"listen\":");
    gbuf_json(&f, where);
    gbuf_printf(&f,
                ",\"port\":%d,\"pid\":%d,\"interval\":%g,\"nvml\":%s,\"leak_window\":%g,"
                "\"leak_long_window\":%g,\"leak_min_growth\":%llu,\"backstop\":\"%s\",\"backstop_interval\":%g,"
                "\"backstop_grace\":%g,\"backstop_tolerance\":%llu,\"state_dir\":",
                port, (int)getpid(), interval, dm_nvml_available() ? "true" : "false", lp.window, lp.long_window,
                (unsigned long long)lp.min_growth, bs_policy_name(bsc.policy), bsc.interval, bsc.grace,
                (unsigned long long)bsc.tolerance);
    gbuf_json(&f, state);
    dm_log("info", "start", f.p);
    gbuf_free(&f);

    /* The backstop's passes, which only read, run on their own thread at
     * their own interval (without NVML there is nothing to compare). */
    if (dm_nvml_available() && bs_start(state) < 0)
        log_str("error", "backstop_unavailable", "message", "cannot start the backstop's thread");
    int sig = 0;
    while (!sig) {
        tick(state);
        struct timespec ts = {(time_t)interval, (long)((interval - floor(interval)) * 1e9)};
        siginfo_t si;
        int r = sigtimedwait(&stop, &si, &ts);
        if (r > 0)
            sig = r;
    }
    bs_stop();
    dm_http_stop();
    log_str("info", "stop", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    dm_events_reset();
    dm_leak_reset();
    bs_reset();
    dm_view_remove(state);
    if (log != stderr)
        fclose(log);
    close(lock_fd);
    return 0;
}
