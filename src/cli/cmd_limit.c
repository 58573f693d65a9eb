/* gpumem limit GROUP [SIZE]: show or change a running group's limit. The
 * limits file is rewritten in place under its seqlock, so every process of
 * the group obeys the new limit at its next allocation. Lowering it below
 * current usage frees nothing: new allocations are refused until usage
 * falls. */
#include "cli.h"
#include "gpumem/driver_limits.h"
#include "gpumem/admit.h"
#include "gpumem/hostutil.h"
#include "../daemon/daemon.h"
#include "gpumem/swap.h"

#include <getopt.h>
#include <stdlib.h>

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static void limit_usage(FILE *out)
{
    fprintf(out, "Usage: gpumem limit [--request SPEC] [--priority PRIO] [--oom POLICY]\n"
                 "                    [--swap SIZE|none] [--swap-promote | --no-swap-promote]\n"
                 "                    GROUP [SIZE | none | DEV=SIZE[,DEV=SIZE...]]\n"
                 "\n"
                 "Without SIZE, shows GROUP's limits. With SIZE, changes them while the\n"
                 "group runs: SIZE alone sets the limit of every GPU without its own entry;\n"
                 "DEV=SIZE sets one GPU's, by UUID (GPU-..., MIG-... for a MIG device) or\n"
                 "index (as nvidia-smi numbers them). The next allocation in the group\n"
                 "obeys the new limit. Lowering a limit below what the group holds frees\n"
                 "nothing; new allocations are refused until usage falls below it.\n"
                 "A container whose NVIDIA per-cgroup driver limits gpumem-runtime set\n"
                 "(r615+) gets new driver limits too; the command says whether enforcement\n"
                 "is still shim+driver or, and why, the shim alone.\n"
                 "\n"
                 "none instead of a size removes a limit: alone, every GPU's (per-GPU entries\n"
                 "included), so the group is only accounted; DEV=none, that GPU's.\n"
                 "\n"
                 "The change is made in any case, with a warning on stderr for a GPU where the\n"
                 "new limit is below the group's measured cost of one CUDA context (no new\n"
                 "context fits), below what the group holds now, or above the GPU's memory\n"
                 "(as NVML reports it; the limit then never binds).\n"
                 "\n"
                 "Options (docs/policy.md):\n"
                 "  -r, --request SPEC   the guaranteed memory, in the same forms as SIZE (none:\n"
                 "                       no guarantee). A raise is admitted like a new group:\n"
                 "                       refused, changing nothing, if the sum of requests on\n"
                 "                       a GPU would pass its memory; a request above the\n"
                 "                       limit is refused\n"
                 "  -p, --priority PRIO  high, normal, low or a number (-1000..1000)\n"
                 "      --oom POLICY     fail, or wait:SECONDS (see gpumem run --help)\n"
                 "      --swap SIZE      lets the group pass its GPU limit by up to SIZE of\n"
                 "                       host memory in all (slower: see docs/spill.md); none\n"
                 "                       takes that away from new allocations (what is spilled\n"
                 "                       stays until freed)\n"
                 "      --swap-promote   move spilled memory back to the GPU when room frees;\n"
                 "                       --no-swap-promote stops that\n"
                 "\n"
                 "GROUP is a group (see gpumem ps): its name, a container's name or id (at\n"
                 "least 12 characters), or the path of a group directory.\n"
                 "\n"
                 "Examples:\n"
                 "  gpumem limit job7            show\n"
                 "  gpumem limit job7 8G         every GPU: 8 GiB\n"
                 "  gpumem limit job7 0=6G       GPU 0: 6 GiB\n"
                 "  gpumem limit job7 none       no limit: accounted only\n"
                 "  gpumem limit job7 --swap 4G  up to 4 GiB more in host memory\n"
                 "  gpumem limit --request 4G --priority high job7   guarantee 4 GiB on every GPU\n"
                 "  gpumem limit job7 GPU-fe90dcc9=6G   the same GPU by the UUID prefix gpumem ps\n"
                 "                               prints (any unique prefix of GPU-xxxx or more)\n");
}

/* SPEC with each GPU-... or MIG-... key that names a device by a prefix of its UUID (as
 * gpumem ps prints it) replaced by the whole UUID. */
static int expand_gpus(const char *spec, const struct gm_limits *l, char *out, size_t len, char *err, size_t errlen)
{
    static char known[GM_MAX_DEVICES][GM_UUID_LEN];
    int n = 0;
    for (uint32_t i = 0; i < l->ndev && i < GM_MAX_DEVICES; i++)
        snprintf(known[n++], GM_UUID_LEN, "%.*s", GM_UUID_LEN - 1, l->dev[i].uuid);
    size_t o = 0;
    out[0] = '\0';
    for (const char *p = spec; *p;) {
        size_t plen = strcspn(p, ","), klen = strcspn(p, "=,");
        char key[128], uuid[GM_UUID_LEN];
        if (klen < plen && klen < sizeof key && (strncasecmp(p, "GPU-", 4) == 0 || strncasecmp(p, "MIG-", 4) == 0)) {
            snprintf(key, sizeof key, "%.*s", (int)klen, p);
            if (gpu_resolve(key, (const char (*)[GM_UUID_LEN])known, n, uuid, sizeof uuid, err, errlen) < 0)
                return -1;
            o += (size_t)snprintf(out + o, o < len ? len - o : 0, "%s%.*s", uuid, (int)(plen - klen), p + klen);
        } else {
            o += (size_t)snprintf(out + o, o < len ? len - o : 0, "%.*s", (int)plen, p);
        }
        p += plen;
        if (*p == ',') {
            o += (size_t)snprintf(out + o, o < len ? len - o : 0, ",");
            p++;
        }
    }
    if (o >= len) {
        snprintf(err, errlen, "\"%s\": too long", spec);
        return -1;
    }
    return 0;
}

static void show(const char *name, const struct gm_limits *l)
{
    char a[32], p[16];
    printf("%s: default %s\n", name, gm_format_size(l->default_limit, a, sizeof a));
    for (uint32_t i = 0; i < l->ndev && i < GM_MAX_DEVICES; i++)
        printf("%s: %s %s\n", name, l->dev[i].uuid, gm_format_size(l->dev[i].limit, a, sizeof a));
    if (l->swap)
        printf("%s: swap %s%s\n", name, gm_format_size(l->swap, a, sizeof a),
               l->swap_flags & GM_SWAP_PROMOTE ? " (promote)" : "");
    if (l->request_default)
        printf("%s: request default %s\n", name, gm_format_size(l->request_default, a, sizeof a));
    for (uint32_t i = 0; i < l->nreq && i < GM_MAX_DEVICES; i++)
        printf("%s: request %s %s\n", name, l->req[i].uuid, gm_format_size(l->req[i].limit, a, sizeof a));
    if (l->priority != GM_PRIO_NORMAL)
        printf("%s: priority %s\n", name, gm_priority_name(l->priority, p, sizeof p));
    if (l->oom_wait_ms)
        printf("%s: oom wait:%g\n", name, l->oom_wait_ms / 1000.0);
}

/* --swap SIZE, --swap=SIZE, --swap-promote, --no-swap-promote, taken out of
 * argv (the rest keep their order). *promote: -1 not given. Returns the
 * new argc, or -1 after a message. */
static int swap_options(int argc, char **argv, int *swap_given, uint64_t *swap, int *promote)
{
    char err[512];
    int n = 1;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        if (strcmp(argv[i], "--swap") == 0) {
            if (i + 1 >= argc)
                return die(2, "--swap: no SIZE given"), -1;
            v = argv[++i];
        } else if (strncmp(argv[i], "--swap=", 7) == 0) {
            v = argv[i] + 7;
        } else if (strcmp(argv[i], "--swap-promote") == 0) {
            *promote = 1;
            continue;
        } else if (strcmp(argv[i], "--no-swap-promote") == 0) {
            *promote = 0;
            continue;
        } else {
            argv[n++] = argv[i];
            continue;
        }
        if (gm_parse_swap(v, swap, err, sizeof err) < 0)
            return die(2, "--swap: %s", err), -1;
        *swap_given = 1;
    }
    return n;
}

/* --request: the new requests replace the old ones (none: no guarantee),
 * admitted under the admission lock like a new group. 0, or the exit
 * status after saying why. */
static int change_requests(const char *dir, struct gm_limits *l, const char *spec_text, int *lock_fd)
{
    char err[2048], full[1024];
    struct gm_limit_spec spec;
    if (expand_gpus(spec_text, l, full, sizeof full, err, sizeof err) < 0)
        return die(2, "--request: %s", err);
    if (gm_parse_limit_change(full, &spec, err, sizeof err) < 0)
        return die(2, "--request: %s", err);
    char simdir[PATH_MAX];
    void *sim = find_sim_dir(simdir, sizeof simdir) == 0 && getenv("GPUMEM_SIM_DIR") ? simdir : NULL;
    l->request_default = 0;
    l->nreq = 0;
    memset(l->req, 0, sizeof l->req);
    if (gm_requests_from_spec(l, &spec, nvml_index_uuid, sim, err, sizeof err) < 0)
        return die(2, "--request: %s", err);
    char state[PATH_MAX], lib[PATH_MAX + 32];
    gm_state_dir(state, sizeof state);
    if (sim)
        snprintf(lib, sizeof lib, "%s/libnvidia-ml.so.1", simdir);
    static struct gm_gpu gpus[GM_MAX_DEVICES];
    int n = gm_nvml_gpus(sim ? lib : NULL, gpus, GM_MAX_DEVICES);
    if ((*lock_fd = gm_admit_begin(state, err, sizeof err)) < 0)
        return die(1, "%s", err);
    const char *self = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
    int fits = gm_admit_check(state, self, l, gpus, n, err, sizeof err);
    if (fits <= 0) {
        gm_admit_done(state, *lock_fd);
        *lock_fd = -1;
        return die(1, "--request: %s", err);
    }
    return 0;
}

/* The limit on `uuid` in a local copy: its entry, else the default. */
static uint64_t limit_on(const struct gm_limits *l, const char *uuid)
{
    for (uint32_t i = 0; i < l->ndev && i < GM_MAX_DEVICES; i++)
        if (strncmp(l->dev[i].uuid, uuid, GM_UUID_LEN) == 0)
            return l->dev[i].limit;
    return l->default_limit;
}

static void warn_limit(const char *group, const char *uuid, uint64_t lim, const char *what, uint64_t bytes,
                       const char *consequence)
{
    char a[32], b[32];
    fprintf(stderr, "gpumem: warning: %s: %s: the new limit %s is %s (%s): %s\n", group, uuid,
            gm_format_size(lim, a, sizeof a), what, gm_format_size(bytes, b, sizeof b), consequence);
}

/* Warnings for limits that changed (`was` -> `now`): below the measured
 * context cost or the current usage of a device the group used, above the
 * memory of a device NVML knows (skipped without NVML). */
static void warn_changes(const char *group, const char *dir, const struct gm_limits *was, const struct gm_limits *now)
{
    char err[512];
    struct gm_usage *u = gm_usage_map(dir, err, sizeof err);
    uint32_t n = u ? atomic_load(&u->ndev) : 0;
    for (uint32_t d = 0; d < n && d < GM_MAX_DEVICES; d++) {
        char uuid[GM_UUID_LEN + 1];
        snprintf(uuid, sizeof uuid, "%.*s", GM_UUID_LEN, u->dev[d].uuid);
        uint64_t lim = limit_on(now, uuid);
        if (lim == limit_on(was, uuid) || lim == GM_UNLIMITED)
            continue;
        uint64_t ctx = atomic_load(&u->dev[d].ctx_overhead), used = gm_usage_total(u, (int)d);
        if (ctx && lim < ctx)
            warn_limit(group, uuid, lim, "below the measured cost of one CUDA context there", ctx,
                       "no new context of the group fits");
        else if (lim < used)
            warn_limit(group, uuid, lim, "below what the group holds there now", used,
                       "nothing is freed; its allocations are refused until usage falls below it");
    }
    gm_usage_unmap(u);
    if (open_nvml_view(0, err, sizeof err) != 0)
        return;
    static struct dm_device devs[DM_MAX_NVML_DEVS];
    int nd = dm_nvml_read(devs, DM_MAX_NVML_DEVS);
    for (int i = 0; i < nd; i++) {
        uint64_t lim = limit_on(now, devs[i].uuid);
        if (devs[i].mem_ok && lim != limit_on(was, devs[i].uuid) && lim != GM_UNLIMITED && lim > devs[i].total)
            warn_limit(group, devs[i].uuid, lim, "above the GPU's memory", devs[i].total, "it never binds there");
    }
    dm_nvml_release(devs, nd);
}

int cmd_limit(int argc, char **argv)
{
    static const struct option opts[] = {
        {"request", required_argument, 0, 'r'}, {"priority", required_argument, 0, 'p'},
        {"oom", required_argument, 0, 'O'},     {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *req_arg = NULL, *prio_arg = NULL, *oom_arg = NULL;
    int c;
    for (int i = 1; i < argc; i++)
        if (is_help(argv[i])) {
            limit_usage(stdout);
            return 0;
        }
    int swap_given = 0, promote = -1;
    uint64_t swap = 0;
    if ((argc = swap_options(argc, argv, &swap_given, &swap, &promote)) < 0)
        return 2;
    int swap_change = swap_given || promote >= 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+r:p:h", opts, NULL)) != -1) {
        switch (c) {
        case 'r': req_arg = optarg; break;
        case 'p': prio_arg = optarg; break;
        case 'O': oom_arg = optarg; break;
        case 'h': limit_usage(stdout); return 0;
        default: limit_usage(stderr); return 2;
        }
    }
    argv += optind - 1;
    argc -= optind - 1;
    if (argc < 2 || argc > 3) {
        if (argc < 2)
            die(2, "no GROUP given");
        else
            die(2, "unexpected argument \"%s\"", argv[3]);
        limit_usage(stderr);
        return 2;
    }
    char dir[PATH_MAX], err[512];
    if (group_dir(argv[1], dir, sizeof dir) < 0)
        return die(1, "no group \"%s\" (see gpumem ps)", argv[1]);
    const struct gm_limits *ml = gm_limits_map(dir, err, sizeof err);
    if (!ml)
        return die(1, "%s", err);
    struct gm_limits l;
    if (gm_limits_read(ml, &l) < 0) {
        /* A writer died mid-update: start from what is there; we repair it. */
        memcpy(&l, (const void *)ml, sizeof l);
    }
    gm_limits_unmap(ml);
    if (argc == 2 && !swap_change && !req_arg && !prio_arg && !oom_arg) {
        show(argv[1], &l);
        return 0;
    }
    if (prio_arg && gm_parse_priority(prio_arg, &l.priority, err, sizeof err) < 0)
        return die(2, "--priority: %s", err);
    if (oom_arg && gm_parse_oom(oom_arg, &l.oom_wait_ms, err, sizeof err) < 0)
        return die(2, "--oom: %s", err);
    struct gm_limits was = l;
    if (swap_given)
        l.swap = swap;
    if (promote >= 0)
        l.swap_flags = promote ? l.swap_flags | GM_SWAP_PROMOTE : l.swap_flags & ~GM_SWAP_PROMOTE;
    struct gm_limit_spec spec = {0};
    char full[1024];
    if (argc == 3 && expand_gpus(argv[2], &l, full, sizeof full, err, sizeof err) < 0)
        return die(2, "%s", err);
    if (argc == 3 && gm_parse_limit_change(full, &spec, err, sizeof err) < 0)
        return die(2, "%s", err);
    for (int i = 0; i < spec.n; i++) /* the default first: none drops every entry, then DEV= terms apply */
        if (spec.term[i].kind == GM_TERM_ALL) {
            l.default_limit = spec.term[i].bytes;
            if (spec.term[i].bytes == GM_UNLIMITED)
                l.ndev = 0;
        }
    for (int i = 0; i < spec.n; i++) {
        const struct gm_limit_term *t = &spec.term[i];
        if (t->kind == GM_TERM_ALL)
            continue;
        const char *uuid = t->uuid;
        if (t->kind == GM_TERM_INDEX && !(uuid = nvml_index_uuid(t->index, NULL))) {
            char simdir[PATH_MAX];
            if (find_sim_dir(simdir, sizeof simdir) < 0 || !(uuid = nvml_index_uuid(t->index, simdir)))
                return die(1, "GPU %d: no such device (or no NVML); give its UUID instead", t->index);
        }
        uint32_t k;
        for (k = 0; k < l.ndev; k++)
            if (strcmp(l.dev[k].uuid, uuid) == 0)
                break;
        if (k == l.ndev) {
            if (l.ndev == GM_MAX_DEVICES)
                return die(1, "too many devices (at most %d)", GM_MAX_DEVICES);
            snprintf(l.dev[k].uuid, GM_UUID_LEN, "%s", uuid);
            l.ndev++;
        }
        l.dev[k].limit = t->bytes;
    }
    if (gm_requests_check(&l, err, sizeof err) < 0)
        return die(1, "%s (lower the request first: gpumem limit --request)", err);
    int lock_fd = -1;
    if (req_arg) {
        int rc = change_requests(dir, &l, req_arg, &lock_fd);
        if (rc)
            return rc;
    }
    int wrc = gm_limits_update(dir, &l, err, sizeof err);
    if (lock_fd >= 0) {
        char state[PATH_MAX];
        gm_admit_done(gm_state_dir(state, sizeof state), lock_fd);
    }
    if (wrc < 0)
        return die(1, "%s", err);
    warn_changes(argv[1], dir, &was, &l);
    show(argv[1], &l);
    /* A container whose driver limits were set (gpumem-runtime): the
     * driver's follow, for its cgroup. */
    char why[1024] = "";
    int d = gm_driver_limits_reapply(dir, why, sizeof why);
    if (d == 1)
        printf("%s: driver limits updated (enforcement shim+driver)\n", argv[1]);
    else if (d == 0)
        printf("%s: enforcement shim (driver limits not set: %s)\n", argv[1], why);
    else if (d < 0 && why[0])
        fprintf(stderr, "gpumem: warning: %s: %s\n", argv[1], why);
    return 0;
}
