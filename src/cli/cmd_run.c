/* gpumem run: a command and everything it starts, as one group under one
 * limit. */
#include "cli.h"
#include "gpumem/admit.h"
#include "gpumem/hostutil.h"
#include "gpumem/procinfo.h"
#include "gpumem/swap.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void run_usage(FILE *out)
{
    fprintf(out,
            "Usage: gpumem run [OPTIONS] -- COMMAND [ARG...]\n"
            "\n"
            "Runs COMMAND in a new group: it and every process it starts share one GPU\n"
            "memory limit, see the limit as their GPU's total memory (cuMemGetInfo,\n"
            "cudaMemGetInfo, torch.cuda.mem_get_info, nvidia-smi), and get\n"
            "CUDA_ERROR_OUT_OF_MEMORY for an allocation that would pass it.\n"
            "\n"
            "Options:\n"
            "  -l, --limit SIZE       limit on every GPU: 4G, 4096M, 4.5GiB (binary units)\n"
            "  -l, --limit DEV=SIZE   limit on one GPU, by index (as nvidia-smi numbers them)\n"
            "                         or by UUID (GPU-..., or MIG-... for a MIG device);\n"
            "                         repeat for several GPUs\n"
            "  -r, --request SIZE     guaranteed memory on every GPU (or DEV=SIZE, repeatable):\n"
            "                         the group is admitted only if the sum of requests on\n"
            "                         each GPU stays within its memory; above its request,\n"
            "                         up to its limit, it borrows what may be reclaimed\n"
            "  -p, --priority PRIO    high, normal (default), low, or a number (-1000..1000):\n"
            "                         who is reclaimed first and who waits first\n"
            "  -w, --wait[=TIMEOUT]   if the request does not fit now, wait in the queue\n"
            "                         (gpumem queue) until it does, at most TIMEOUT (30,\n"
            "                         30s, 5m, 1h; default forever), instead of failing\n"
            "      --oom POLICY       fail (default): an allocation past the limit or the\n"
            "                         GPU's free memory fails at once; wait:SECONDS: it\n"
            "                         waits that long for memory to be freed first\n"
            "  -n, --name NAME        name of the group (default run-<pid>)\n"
            "      --swap SIZE        let the group pass its GPU limit by up to SIZE of host\n"
            "                         memory (slower; see gpumem-run(1) and docs/spill.md)\n"
            "      --swap-promote     move spilled memory back to the GPU when room frees\n"
            "      --sim              use gpumem's simulated GPU instead of an NVIDIA driver\n"
            "      --keep             keep the group after its last process exits (remove it\n"
            "                         with gpumem rm)\n"
            "  -s, --summary          print peak usage and refusals when COMMAND exits\n"
            "  -h, --help             show this help\n"
            "\n"
            "Without --limit, the limit comes from GPUMEM_LIMIT, NVIDIA_GPU_MEMORY_LIMIT (MiB)\n"
            "or CUDA_DEVICE_MEMORY_LIMIT; with none of them the group is only accounted.\n"
            "Without --swap, the allowance comes from GPUMEM_SWAP (and GPUMEM_SWAP_PROMOTE=1\n"
            "for --swap-promote); with neither there is none.\n"
            "Without --request, --priority, --oom: GPUMEM_REQUEST (or NVIDIA_GPU_MEMORY_REQUEST,\n"
            "MiB), GPUMEM_PRIORITY, GPUMEM_OOM. These are read here, once, when the group is\n"
            "created; its processes never read them (docs/limits.md, docs/policy.md).\n"
            "\n"
            "A request that does not fit is refused (exit status 1) with how much the GPU\n"
            "has free of requests and which groups hold them, unless --wait.\n"
            "\n"
            "The group lives while any of its processes does: when COMMAND exits, gpumem run\n"
            "removes it unless processes COMMAND left running in the background still use\n"
            "the GPU through it; the last of them to exit removes it then (or, if it was\n"
            "killed, gpumem daemon, gpumem rm, or a gpumem run reusing the name does).\n"
            "A process counts from its first CUDA call: one that has made none when the\n"
            "last member exits finds the group gone (use --keep for such jobs).\n"
            "\n"
            "The exit status is COMMAND's (128+N if it died of signal N). SIGTERM, SIGHUP,\n"
            "SIGUSR1 and SIGUSR2 are forwarded to COMMAND.\n"
            "\n"
            "Examples:\n"
            "  gpumem run --limit 4G -- python train.py\n"
            "  gpumem run --limit 0=4G --limit 1=8G --name job7 -- ./worker\n"
            "  gpumem run --limit 8G --swap 4G -- python train.py\n"
            "  gpumem run --sim --limit 1G --summary -- ./my-cuda-test\n"
            "  gpumem run --request 8G --limit 12G --priority high --wait=10m -- ./serve\n");
}

extern char **environ;

static pid_t child;

static int is_sanitizer_runtime(const char *path, size_t n)
{
    static const char *names[] = {"libasan", "libtsan", "libubsan", "liblsan", "libhwasan", "libmsan", "libclang_rt."};
    const char *base = path;
    for (size_t i = 0; i < n; i++)
        if (path[i] == '/')
            base = path + i + 1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strncmp(base, names[i], strlen(names[i])) == 0)
            return 1;
    return 0;
}

/* The shim goes first in LD_PRELOAD, so no other interposer of the driver
 * can come between the application and it; only sanitizer runtimes stay in
 * front of it, because they must be first in the initial library list. The
 * user's other entries follow, in their order. */
static int compose_preload(const char *shim, const char *user, char *out, size_t len)
{
    size_t used = 0;
    out[0] = '\0';
    for (int pass = 0; pass < 3; pass++) {
        if (pass == 1) {
            int n = snprintf(out + used, len - used, "%s%s", used ? ":" : "", shim);
            if (n < 0 || (size_t)n >= len - used)
                return -1;
            used += (size_t)n;
            continue;
        }
        for (const char *p = user ? user : ""; *p;) {
            size_t n = strcspn(p, ": ");
            if (n && is_sanitizer_runtime(p, n) == (pass == 0)) {
                int w = snprintf(out + used, len - used, "%s%.*s", used ? ":" : "", (int)n, p);
                if (w < 0 || (size_t)w >= len - used)
                    return -1;
                used += (size_t)w;
            }
            p += n;
            p += strspn(p, ": ");
        }
    }
    return 0;
}

static void forward(int sig)
{
    if (child > 0)
        kill(child, sig);
}

static const char *env_lookup(const char *name, void *ctx)
{
    (void)ctx;
    return getenv(name);
}

static void print_summary(const char *name, const struct gm_usage *u, const struct gm_limits *l)
{
    char a[32], b[32];
    uint32_t n = atomic_load(&u->ndev);
    fprintf(stderr, "gpumem: group %s:", name);
    if (n == 0)
        fprintf(stderr, " no GPU memory was allocated\n");
    else
        fputc('\n', stderr);
    for (uint32_t d = 0; d < n; d++) {
        uint64_t lim = gm_limits_for(l, u->dev[d].uuid);
        fprintf(stderr, "  %s  peak %s of %s, %llu refused allocation%s", u->dev[d].uuid,
                gm_format_size(atomic_load(&u->dev[d].peak), a, sizeof a), gm_format_size(lim, b, sizeof b),
                (unsigned long long)atomic_load(&u->dev[d].refusals),
                atomic_load(&u->dev[d].refusals) == 1 ? "" : "s");
        if (atomic_load(&u->dev[d].refusals))
            fprintf(stderr, " (last %s)", gm_format_size(atomic_load(&u->dev[d].last_refused_size), a, sizeof a));
        fputc('\n', stderr);
    }
}

/* The group's lifetime (gpumem/group.h, gm_group_collect). */

/* A group of this name left by a `gpumem run` that is gone, with no live
 * process, is removed so that the name can be used again. */
static void reuse_stale_group(const char *dir)
{
    char err[512], probe[PATH_MAX + GM_NAME_LEN + 16];
    snprintf(probe, sizeof probe, "%s/limits", dir);
    if (access(probe, F_OK) != 0)
        return;
    struct gm_usage *u = gm_usage_map(dir, err, sizeof err);
    if (!u)
        return;
    gm_group_collect(dir, u, NULL, 0);
    gm_usage_unmap(u);
}

/* Marks the group as this run's: removed once empty after we are done. */
static int mark_run_group(const char *dir, char *err, size_t errlen)
{
    return gm_run_marker_write(dir, getpid(), gm_proc_start_time(getpid()), err, errlen);
}

/* COMMAND exited: remove the group unless processes it left behind still
 * hold slots; the last of them removes it then. */
static void leave_run_group(const char *name, const char *dir)
{
    char err[512];
    pid_t pid;
    uint64_t start;
    /* Removed meanwhile (gpumem rm), and the name perhaps taken again by
     * another run: not ours any more. */
    if (!gm_run_marker_read(dir, &pid, &start) || pid != getpid())
        return;
    struct gm_usage *u = gm_usage_map(dir, err, sizeof err);
    if (!u) {
        gm_group_remove(dir);
        return;
    }
    if (gm_group_collect(dir, u, NULL, GM_COLLECT_CREATOR) == 0) {
        int n = gm_usage_live_slots(u);
        fprintf(stderr,
                "gpumem: group %s lives on: %d process%s still use%s it (gpumem ps -p); the last to exit "
                "removes it (gpumem rm --force %s ends them now)\n",
                name, n, n == 1 ? "" : "es", n == 1 ? "s" : "", name);
    }
    gm_usage_unmap(u);
}

/* Requests, priority and GPUMEM_OOM: options first, else the environment.
 * 0, or 2 after saying what is wrong. */
static int set_policy(struct gm_limits *l, const char *request_arg, const char *prio_arg, const char *oom_arg,
                      const char *simdir)
{
    char err[600];
    struct gm_limit_spec spec = {0};
    int rc = 1;
    if (*request_arg) {
        if (gm_parse_limit_spec(request_arg, GM_BARE_REJECT, &spec, err, sizeof err) < 0)
            return die(2, "--request: %s", err);
    } else if ((rc = gm_request_from_env(env_lookup, NULL, &spec, err, sizeof err)) < 0) {
        return die(2, "%s", err);
    }
    if (rc > 0 && gm_requests_from_spec(l, &spec, nvml_index_uuid, (void *)simdir, err, sizeof err) < 0)
        return die(2, "--request: %s", err);
    if (gm_policy_from_env(env_lookup, NULL, l, err, sizeof err) < 0)
        return die(2, "%s", err);
    if (prio_arg && gm_parse_priority(prio_arg, &l->priority, err, sizeof err) < 0)
        return die(2, "--priority: %s", err);
    if (oom_arg && gm_parse_oom(oom_arg, &l->oom_wait_ms, err, sizeof err) < 0)
        return die(2, "--oom: %s", err);
    return 0;
}

static void say_queued(const char *why, void *ctx)
{
    fprintf(stderr, "%s: group %s waits in the queue (gpumem queue): %s\n", die_name, (const char *)ctx, why);
}

/* Creates the group under admission control (gpumem/admit.h), its run
 * marker written before anyone else may look. 0, or 1 after saying why. */
static int create_admitted(const char *state, const char *dir, const struct gm_limits *l, const char *simdir,
                           int wait, double timeout, int keep)
{
    static struct gm_gpu gpus[GM_MAX_DEVICES];
    char lib[PATH_MAX + 32], msg[2048];
    if (simdir)
        snprintf(lib, sizeof lib, "%s/libnvidia-ml.so.1", simdir);
    int n = gm_nvml_gpus(simdir ? lib : NULL, gpus, GM_MAX_DEVICES);
    struct gm_admit a = {.state = state, .dir = dir, .l = l, .mode = 0644, .gpus = gpus, .ngpus = n,
                         .wait = wait, .timeout = timeout, .creator = "gpumem run", .note = say_queued,
                         .ctx = (void *)l->name};
    int fd = gm_admit_create(&a, msg, sizeof msg);
    if (fd == -2)
        return die(1, "group %s not started: %s%s", l->name, msg,
                   wait ? "" : " (--wait queues it until it fits)");
    if (fd < 0)
        return die(1, "%s", msg);
    if (!keep && mark_run_group(dir, msg, sizeof msg) < 0) {
        gm_group_remove(dir);
        gm_admit_done(state, fd);
        return die(1, "%s", msg);
    }
    gm_admit_done(state, fd);
    return 0;
}

int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"limit", required_argument, 0, 'l'}, {"name", required_argument, 0, 'n'},
        {"sim", no_argument, 0, 'S'},         {"keep", no_argument, 0, 'k'},
        {"summary", no_argument, 0, 's'},     {"help", no_argument, 0, 'h'},
        {"swap", required_argument, 0, 'W'},  {"swap-promote", no_argument, 0, 'P'},
        {"request", required_argument, 0, 'r'}, {"priority", required_argument, 0, 'p'},
        {"wait", optional_argument, 0, 'w'},  {"oom", required_argument, 0, 'O'},
        {0, 0, 0, 0},
    };
    uint64_t swap = 0;
    int swap_given = 0, promote = 0;
    char limit_arg[1024] = "", request_arg[1024] = "", name[GM_NAME_LEN] = "", err[512];
    const char *prio_arg = NULL, *oom_arg = NULL;
    int sim = 0, keep = 0, summary = 0, wait = 0, c;
    double timeout = -1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+l:n:r:p:w::sh", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
        case 'r': {
            char *acc = c == 'l' ? limit_arg : request_arg;
            if (strlen(acc) + strlen(optarg) + 2 > sizeof limit_arg)
                return die(2, "too many --%s options", c == 'l' ? "limit" : "request");
            if (*acc)
                strcat(acc, ",");
            strcat(acc, optarg);
            break;
        }
        case 'p': prio_arg = optarg; break;
        case 'O': oom_arg = optarg; break;
        case 'w':
            wait = 1;
            if (optarg && gm_parse_timeout(optarg, &timeout, err, sizeof err) < 0)
                return die(2, "--wait: %s", err);
            break;
        case 'n':
            if (gm_valid_group_name(optarg) < 0)
                return die(2, "bad group name \"%s\": use letters, digits, '_', '.', '-' (at most %d)", optarg,
                           GM_NAME_LEN - 1);
            /* A group named self would sit at the container mount point,
             * which wins over GPUMEM_GROUP_DIR in every shimmed process. */
            if (strcmp(optarg, "self") == 0)
                return die(2, "bad group name \"self\": reserved (/run/gpumem/self is a container's own group)");
            snprintf(name, sizeof name, "%s", optarg);
            break;
        case 'S': sim = 1; break;
        case 'k': keep = 1; break;
        case 'W':
            if (gm_parse_swap(optarg, &swap, err, sizeof err) < 0)
                return die(2, "--swap: %s", err);
            swap_given = 1;
            break;
        case 'P': promote = 1; break;
        case 's': summary = 1; break;
        case 'h': run_usage(stdout); return 0;
        default: run_usage(stderr); return 2;
        }
    }
    if (optind >= argc) {
        die(2, "no command given (put it after --)");
        run_usage(stderr);
        return 2;
    }

    struct gm_limit_spec spec = {0};
    if (*limit_arg) {
        if (gm_parse_limit_spec(limit_arg, GM_BARE_REJECT, &spec, err, sizeof err) < 0)
            return die(2, "--limit: %s", err);
    } else {
        int rc = gm_limit_from_env(env_lookup, NULL, &spec, err, sizeof err);
        if (rc < 0)
            return die(2, "%s", err);
        if (rc == 0)
            fprintf(stderr, "%s: no limit given (--limit): the group is accounted but not limited\n", die_name);
    }

    if (!swap_given && gm_swap_from_env(env_lookup, NULL, &swap, &promote, err, sizeof err) < 0)
        return die(2, "%s", err);
    if (promote && swap == 0)
        return die(2, "--swap-promote: the group has no swap (give --swap SIZE)");

    /* The driver the command will use. */
    char simdir[PATH_MAX] = "", shim[PATH_MAX];
    if (sim) {
        if (find_sim_dir(simdir, sizeof simdir) < 0)
            return die(1, "--sim: the simulated GPU (libcuda.so.1) was not found next to gpumem; set GPUMEM_SIM_DIR");
    } else if (!library_present("libcuda.so.1")) {
        /* Only looked for, not loaded: the command's own processes load it
         * (and the first shimmed one fills the group's device table). */
        return die(1, "no NVIDIA driver on this machine (libcuda.so.1 cannot be loaded); "
                      "use --sim to run on gpumem's simulated GPU");
    }
    if (find_shim(shim, sizeof shim) < 0)
        return die(1, "the shim libgpumem.so was not found next to gpumem; set GPUMEM_SHIM");

    struct gm_limits l;
    gm_limits_init(&l);
    if (gm_limits_from_spec(&l, &spec, nvml_index_uuid, sim ? simdir : NULL, err, sizeof err) < 0)
        return die(2, "--limit: %s", err);
    if (set_policy(&l, request_arg, prio_arg, oom_arg, sim ? simdir : NULL) != 0)
        return 2;
    if (!*name)
        snprintf(name, sizeof name, "run-%d", (int)getpid());
    snprintf(l.name, sizeof l.name, "%s", name);
    l.swap = swap;
    l.swap_flags = promote ? GM_SWAP_PROMOTE : 0;
    l.created_unix = (uint64_t)time(NULL);

    char state[PATH_MAX], dir[PATH_MAX + GM_NAME_LEN + 1];
    gm_state_dir(state, sizeof state);
    if (gm_mkdir_p(state) < 0)
        return die(1, "cannot create the state directory %s: %s", state, strerror(errno));
    snprintf(dir, sizeof dir, "%s/%s", state, name);
    reuse_stale_group(dir);
    if (create_admitted(state, dir, &l, sim ? simdir : NULL, wait, timeout, keep) != 0)
        return 1;

    /* The command's environment: the group, the shim (kept in front of any
     * LD_PRELOAD the user had), and the simulated driver when asked for. */
    setenv("GPUMEM_GROUP_DIR", dir, 1);
    char preload[4 * PATH_MAX];
    if (compose_preload(shim, getenv("LD_PRELOAD"), preload, sizeof preload) < 0)
        return die(1, "LD_PRELOAD is too long");
    setenv("LD_PRELOAD", preload, 1);
    if (sim) {
        const char *lp = getenv("LD_LIBRARY_PATH");
        char libpath[2 * PATH_MAX];
        snprintf(libpath, sizeof libpath, "%s%s%s", simdir, lp && *lp ? ":" : "", lp && *lp ? lp : "");
        setenv("LD_LIBRARY_PATH", libpath, 1);
    }

    struct sigaction sa = {0};
    sa.sa_handler = forward;
    sigemptyset(&sa.sa_mask);
    int fwd[] = {SIGTERM, SIGHUP, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < sizeof fwd / sizeof fwd[0]; i++)
        sigaction(fwd[i], &sa, NULL);
    /* Like system(3): the terminal's ^C and ^\ reach the command directly. */
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);

    /* posix_spawn (vfork-like: the parent's page tables are not copied, and
     * nothing is copied on write after it) rather than fork + exec. */
    posix_spawnattr_t attr;
    sigset_t dfl;
    sigemptyset(&dfl);
    sigaddset(&dfl, SIGINT);
    sigaddset(&dfl, SIGQUIT);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setsigdefault(&attr, &dfl);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[optind], NULL, &attr, argv + optind, environ);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        if (!keep)
            gm_group_remove(dir);
        fprintf(stderr, "%s: cannot run \"%s\": %s\n", die_name, argv[optind], strerror(rc));
        return rc == ENOENT ? 127 : 126;
    }
    child = pid;
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);

    if (summary) {
        const struct gm_limits *ml = gm_limits_map(dir, err, sizeof err);
        struct gm_usage *u = ml ? gm_usage_map(dir, err, sizeof err) : NULL;
        if (u)
            print_summary(name, u, ml);
        else
            fprintf(stderr, "%s: --summary: %s\n", die_name, err);
        gm_usage_unmap(u);
        gm_limits_unmap(ml);
    }
    if (!keep)
        leave_run_group(name, dir);
    return code;
}
