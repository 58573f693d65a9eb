/* gpumem ps: one row per group and device, like `docker stats --no-stream`.
 * Reads the groups' files directly; needs no daemon. Dead processes' slots
 * are reclaimed on the way (that is what a reader of a group may do). */
#include "cli.h"
#include "gpumem/driver_limits.h"
#include "gpumem/nvml_mig.h"
#include "../daemon/policy.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpumem/hostutil.h"
#include "gpumem/procinfo.h"
#include "../daemon/daemon.h"
#include "ps_none.h"

static void ps_usage(FILE *out)
{
    fprintf(out, "Usage: gpumem ps [-a] [-p] [--format table|csv|json] [--no-headers]\n"
                 "\n"
                 "Lists groups (containers, gpumem run) with their GPU memory: one row per\n"
                 "group and GPU with its name (a container's Docker or Kubernetes name), the\n"
                 "group (its directory: a container's short id), its limit, what its\n"
                 "processes hold now, the peak, the share of the limit in use, how many\n"
                 "processes, how many allocations were refused for the limit, SWAP: what\n"
                 "the group spilled to host memory past its limit (\"-\" when it has no swap;\n"
                 "see gpumem run --swap), and who enforces it (ENFORCE: shim, or shim+driver\n"
                 "where gpumem-runtime also set NVIDIA's per-cgroup driver limit for the\n"
                 "container).\n"
                 "A GPU is shown by its NVML index (as nvidia-smi numbers it; \"-\" when NVML\n"
                 "does not list it), a MIG device by its GPU's index and its MIG device index\n"
                 "(0/1, as nvidia-smi -L lists them), and either by the first 12 characters\n"
                 "of its UUID (GPU-... or MIG-...), which\n"
                 "gpumem limit and gpumem inspect --gpu accept as they are. On a terminal\n"
                 "%%LIM is yellow from 80%% and red from 100%% (unless NO_COLOR is set).\n"
                 "\n"
                 "Options:\n"
                 "  -a, --all          include groups whose processes have all exited\n"
                 "  -p, --processes    add a row per process: its host pid, its pid in the\n"
                 "                     group (as the container sees it), command, held, peak\n"
                 "      --format FMT   table (default); csv (RFC 4180: a header line, one\n"
                 "                     line per group and GPU, bytes as integers, empty when\n"
                 "                     unknown or unlimited); json (bytes as integers; with\n"
                 "                     the GPU index, whole UUID, container, pod, namespace,\n"
                 "                     leak_suspected: null when no gpumem daemon runs, and\n"
                 "                     mig: index, gpu_instance, compute_instance, profile,\n"
                 "                     parent_uuid of a MIG device, else null)\n"
                 "      --no-headers   no header line (table and csv)\n"
                 "  -h, --help         show this help\n"
                 "\n"
                 "Processes that NVML lists on a GPU but that belong to no group (started\n"
                 "without gpumem, or that escaped it) follow the groups as \"(none)\": a row\n"
                 "per GPU with their count and the bytes NVML reports (json: \"group\": null).\n");
}

struct ps_opts {
    int all, procs, json, csv, no_headers;
    int color;                  /* a terminal, and NO_COLOR unset */
    struct dm_view daemon;      /* the daemon's leak state, when it runs */
};

/* A CSV field: quoted when it holds a comma, a quote or a line break. */
static void csv_field(const char *s, int last)
{
    if (strpbrk(s, ",\"\r\n")) {
        putchar('"');
        for (; *s; s++) {
            if (*s == '"')
                putchar('"');
            putchar(*s);
        }
        putchar('"');
    } else {
        fputs(s, stdout);
    }
    putchar(last ? '\n' : ',');
}

static void csv_u64(uint64_t v, int last)
{
    char b[32];
    snprintf(b, sizeof b, "%llu", (unsigned long long)v);
    csv_field(b, last);
}

/* A process's bytes held and peak, over the group's devices. */
static void proc_totals(const struct gm_proc_slot *s, uint32_t ndev, uint64_t *used, uint64_t *peak)
{
    *used = *peak = 0;
    for (uint32_t d = 0; d < ndev; d++) {
        *used += gm_slot_charged(s, (int)d);
        *peak += atomic_load(&s->peak[d]);
    }
}

static int show_group(const char *name, const char *dir, const struct ps_opts *o, int *first)
{
    char err[512], a[32], b[32], c[32];
    const struct gm_limits *l = gm_limits_map(dir, err, sizeof err);
    struct gm_usage *u = l ? gm_usage_map(dir, err, sizeof err) : NULL;
    if (!u) {
        /* Not a group (no limits file: a directory being created, or
         * someone else's): passed over quietly. Asked only now, so a
         * listing of good groups pays no extra system call per group. */
        char probe[PATH_MAX + 320];
        snprintf(probe, sizeof probe, "%s/limits", dir);
        if (l || access(probe, F_OK) == 0)
            fprintf(stderr, "%s: warning: skipping group %s: %s\n", die_name, name, err);
        gm_limits_unmap(l);
        return -1;
    }
    gm_reclaim_dead(u);
    int nproc = gm_usage_live_slots(u);
    if (nproc == 0 && !o->all) {
        gm_usage_unmap(u);
        gm_limits_unmap(l);
        return 0;
    }
    uint32_t ndev = atomic_load(&u->ndev);
    /* The identity fields live in a shared file: never trusted to end. */
    char label[GM_NAME_LEN + 1];
    snprintf(label, sizeof label, "%.*s", (int)strnlen(l->name, sizeof l->name), l->name);
    if (!*label)
        snprintf(label, sizeof label, "%.*s", GM_NAME_LEN, name);
    /* Who enforces: the shim always; NVIDIA's driver too where gpumem-runtime
     * could set its per-cgroup limit (gpumem/driver_limits.h). */
    char enforce_why[512];
    const char *enforce = gm_driver_enforcement(dir, enforce_why, sizeof enforce_why);
    static int32_t host[GM_MAX_PROCS];
    if (o->procs)
        gm_resolve_host_pids(u, host);
    if (o->csv) {
        for (uint32_t d = 0; d < ndev || (d == 0 && ndev == 0); d++) {
            char gpu[16] = "", uuid[GM_UUID_LEN] = "", pct[16] = "";
            uint64_t lim = l->default_limit, used = 0, peak = 0, ref = 0;
            if (ndev) {
                snprintf(uuid, sizeof uuid, "%.*s", GM_UUID_LEN - 1, u->dev[d].uuid);
                if (gpu_label(uuid, gpu, sizeof gpu, NULL) == 0 && !strcmp(gpu, "-"))
                    gpu[0] = '\0';
                lim = gm_limits_for(l, uuid);
                used = gm_usage_total(u, (int)d);
                peak = atomic_load(&u->dev[d].peak);
                ref = atomic_load(&u->dev[d].refusals);
            }
            if (lim != GM_UNLIMITED && lim)
                snprintf(pct, sizeof pct, "%.1f", 100.0 * (double)used / (double)lim);
            csv_field(label, 0);
            csv_field(name, 0);
            csv_field(gpu, 0);
            csv_field(uuid, 0);
            if (lim == GM_UNLIMITED)
                csv_field("", 0);
            else
                csv_u64(lim, 0);
            csv_u64(used, 0);
            csv_u64(peak, 0);
            csv_field(pct, 0);
            csv_u64((uint64_t)nproc, 0);
            csv_u64(ref, 0);
            csv_u64(ndev ? gm_usage_swapped(u, (int)d) : 0, 0);
            csv_u64(l->swap, 0);
            csv_field(enforce, 1);
        }
    } else if (o->json) {
        char cid[sizeof l->container_id + 1], pod[GM_NAME_LEN + 1], ns[GM_NAME_LEN + 1], cname[GM_NAME_LEN + 1];
        snprintf(cid, sizeof cid, "%.*s", (int)strnlen(l->container_id, sizeof l->container_id), l->container_id);
        snprintf(pod, sizeof pod, "%.*s", (int)strnlen(l->pod, sizeof l->pod), l->pod);
        snprintf(ns, sizeof ns, "%.*s", (int)strnlen(l->pod_namespace, sizeof l->pod_namespace), l->pod_namespace);
        snprintf(cname, sizeof cname, "%.*s", (int)strnlen(l->container_name, sizeof l->container_name),
                 l->container_name);
        printf("%s{\"group\":", *first ? "" : ",");
        json_str(name);
        printf(",\"name\":");
        json_str(label);
        printf(",\"container_id\":");
        json_str(cid);
        /* As the daemon's labels: the container's name, else its id. */
        printf(",\"container\":");
        json_str(*cname ? cname : cid);
        printf(",\"pod\":");
        json_str(pod);
        printf(",\"namespace\":");
        json_str(ns);
        printf(",\"enforcement\":\"%s\",\"enforcement_reason\":", enforce);
        json_str(enforce_why);
        printf(",\"processes\":%d,\"swap_limit\":%llu,\"swap_used\":%llu,\"swap_promote\":%s,\"devices\":[", nproc,
               (unsigned long long)l->swap, (unsigned long long)gm_usage_swapped(u, -1),
               l->swap_flags & GM_SWAP_PROMOTE ? "true" : "false");
        for (uint32_t d = 0; d < ndev; d++) {
            uint64_t lim = gm_limits_for(l, u->dev[d].uuid);
            struct gm_mig_info mig;
            char glabel[16];
            int is_mig = gpu_label(u->dev[d].uuid, glabel, sizeof glabel, &mig);
            int gi = is_mig ? mig.gpu : gpu_index_of(u->dev[d].uuid);
            printf("%s{\"gpu\":", d ? "," : "");
            if (gi >= 0)
                printf("%d", gi);
            else
                printf("null");
            printf(",\"uuid\":\"%s\",\"mig\":", u->dev[d].uuid);
            if (is_mig) {
                printf("{\"index\":%d,\"gpu_instance\":%u,\"compute_instance\":%u,\"profile\":", mig.index,
                       mig.gi, mig.ci);
                json_str(mig.profile);
                printf(",\"parent_uuid\":");
                json_str(mig.parent_uuid);
                printf("}");
            } else
                printf("null");
            printf(",\"limit\":");
            if (lim == GM_UNLIMITED)
                printf("null");
            else
                printf("%llu", (unsigned long long)lim);
            struct dm_hist *h = dm_hist_find(o->daemon.h, o->daemon.n, name, u->dev[d].uuid);
            printf(",\"leak_suspected\":%s", !o->daemon.ok ? "null" : h && h->leak ? "true" : "false");
            printf(",\"used\":%llu,\"peak\":%llu,\"refusals\":%llu,\"swap_used\":%llu}",
                   (unsigned long long)gm_usage_total(u, (int)d), (unsigned long long)atomic_load(&u->dev[d].peak),
                   (unsigned long long)atomic_load(&u->dev[d].refusals),
                   (unsigned long long)gm_usage_swapped(u, (int)d));
        }
        printf("]");
        if (o->procs) {
            printf(",\"process_list\":[");
            int k = 0;
            uint32_t hw = atomic_load(&u->slots_hw);
            for (uint32_t i = 0; i < hw; i++) {
                const struct gm_proc_slot *s = &u->slot[i];
                if (!atomic_load(&s->pid))
                    continue;
                uint64_t used, peak;
                proc_totals(s, ndev, &used, &peak);
                printf("%s{\"pid\":%d,\"host_pid\":", k++ ? "," : "", (int)atomic_load(&s->pid));
                if (host[i])
                    printf("%d", (int)host[i]);
                else
                    printf("null");
                printf(",\"command\":");
                char comm[sizeof s->comm + 1];
                snprintf(comm, sizeof comm, "%.*s", (int)strnlen(s->comm, sizeof s->comm), s->comm);
                json_str(comm);
                printf(",\"used\":%llu,\"peak\":%llu,\"allocations\":%llu,\"frees\":%llu,\"refusals\":%llu"
                       ",\"swap_used\":%llu}",
                       (unsigned long long)used, (unsigned long long)peak,
                       (unsigned long long)gm_slot_allocs(s), (unsigned long long)gm_slot_frees(s),
                       (unsigned long long)atomic_load(&s->refusals), (unsigned long long)gm_slot_swapped(s));
            }
            printf("]");
        }
        printf("}");
        *first = 0;
    } else {
        if (ndev == 0)
            printf("%-20s %-14s %3s %-12s %10s %10s %10s %6s %5d %8s %10s %s\n", label, name, "-", "-",
                   gm_format_size(l->default_limit, a, sizeof a), "0 B", "0 B", "-", nproc, "0", l->swap ? "0 B" : "-",
                   enforce);
        for (uint32_t d = 0; d < ndev; d++) {
            uint64_t lim = gm_limits_for(l, u->dev[d].uuid), used = gm_usage_total(u, (int)d);
            char pct[16] = "-", cell[48];
            double p = -1;
            if (lim != GM_UNLIMITED && lim)
                snprintf(pct, sizeof pct, "%.1f%%", (p = 100.0 * (double)used / (double)lim));
            /* Yellow from 80%, red from 100%, as in gpumem top. */
            const char *sgr = !o->color || p < 80 ? NULL : p >= 100 ? "\033[1;31m" : "\033[33m";
            snprintf(cell, sizeof cell, "%s%6s%s", sgr ? sgr : "", pct, sgr ? "\033[m" : "");
            char shortid[16], gpu[16] = "-";
            snprintf(shortid, sizeof shortid, "%.*s", GPU_SHORT_LEN, u->dev[d].uuid);
            gpu_label(u->dev[d].uuid, gpu, sizeof gpu, NULL);
            /* SWAP: bytes spilled to host memory from this GPU; "-" without swap. */
            char swp[32] = "-";
            if (l->swap || gm_usage_swapped(u, (int)d))
                gm_format_size(gm_usage_swapped(u, (int)d), swp, sizeof swp);
            printf("%-20s %-14s %3s %-12s %10s %10s %10s %s %5d %8llu %10s %s\n", d ? "" : label, d ? "" : name, gpu,
                   shortid, gm_format_size(lim, a, sizeof a), gm_format_size(used, b, sizeof b),
                   gm_format_size(atomic_load(&u->dev[d].peak), c, sizeof c), cell, nproc,
                   (unsigned long long)atomic_load(&u->dev[d].refusals), swp, d ? "" : enforce);
        }
        if (o->procs) {
            uint32_t hw = atomic_load(&u->slots_hw);
            for (uint32_t i = 0; i < hw; i++) {
                const struct gm_proc_slot *s = &u->slot[i];
                if (!atomic_load(&s->pid))
                    continue;
                uint64_t used, peak;
                proc_totals(s, ndev, &used, &peak);
                char hp[16] = "-", comm[sizeof s->comm + 1];
                if (host[i])
                    snprintf(hp, sizeof hp, "%d", (int)host[i]);
                snprintf(comm, sizeof comm, "%.*s", (int)strnlen(s->comm, sizeof s->comm), s->comm);
                printf("  host pid %-8s pid in group %-8d %-16s used %10s  peak %10s  refusals %llu", hp,
                       (int)atomic_load(&s->pid), comm, gm_format_size(used, a, sizeof a),
                       gm_format_size(peak, b, sizeof b), (unsigned long long)atomic_load(&s->refusals));
                if (gm_slot_swapped(s))
                    printf("  swap %s", gm_format_size(gm_slot_swapped(s), c, sizeof c));
                printf("\n");
            }
        }
    }
    gm_usage_unmap(u);
    gm_limits_unmap(l);
    return 0;
}

/* One group of the gm_each_group walk. */
struct ps_pass {
    const struct ps_opts *o;
    int first;
};
static void show_one(const char *name, const char *dir, void *ctx)
{
    struct ps_pass *p = ctx;
    show_group(name, dir, p->o, &p->first);
}

int cmd_ps(int argc, char **argv)
{
    static const struct option opts[] = {
        {"all", no_argument, 0, 'a'}, {"processes", no_argument, 0, 'p'}, {"format", required_argument, 0, 'f'},
        {"no-headers", no_argument, 0, 'H'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    struct ps_opts o = {0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "aph", opts, NULL)) != -1) {
        switch (c) {
        case 'a': o.all = 1; break;
        case 'p': o.procs = 1; break;
        case 'f':
            o.json = strcmp(optarg, "json") == 0;
            o.csv = strcmp(optarg, "csv") == 0;
            if (!o.json && !o.csv && strcmp(optarg, "table") != 0)
                return die(2, "--format \"%s\": expected table, csv or json", optarg);
            break;
        case 'H': o.no_headers = 1; break;
        case 'h': ps_usage(stdout); return 0;
        default: ps_usage(stderr); return 2;
        }
    }
    if (optind < argc)
        return die(2, "unexpected argument \"%s\"", argv[optind]);
    if (o.csv && o.procs)
        return die(2, "--processes is for the table and json formats (csv has one line per group and GPU)");
    char state[PATH_MAX];
    gm_state_dir(state, sizeof state);
    const char *nc = getenv("NO_COLOR");
    o.color = !o.json && !o.csv && isatty(STDOUT_FILENO) && !(nc && *nc);
    if (o.json)
        dm_view_read(state, &o.daemon);
    if (o.json)
        printf("[");
    else if (o.csv && !o.no_headers)
        printf("name,group,gpu,uuid,limit,used,peak,percent,processes,refusals,swap_used,swap_limit,enforcement\n");
    else if (!o.csv && !o.no_headers)
        printf("%-20s %-14s %3s %-12s %10s %10s %10s %6s %5s %8s %10s %s\n", "NAME", "GROUP", "GPU", "UUID", "LIMIT",
               "USED", "PEAK", "%LIM", "PROCS", "REFUSED", "SWAP", "ENFORCE");
    struct ps_pass pass = {&o, 1};
    gm_each_group(state, show_one, &pass);
    ps_show_ungrouped(state, o.json ? PS_NONE_JSON : o.csv ? PS_NONE_CSV : PS_NONE_TABLE, o.procs, pass.first);
    if (o.json)
        printf("]\n");
    /* Waiting starts and reclaims in progress, under the table. */
    char pol[1024];
    if (!o.json && !o.csv && !o.no_headers && (pl_summary_line(state, pol, sizeof pol), *pol))
        printf("policy: %s\n", pol);
    dm_view_free(&o.daemon);
    return 0;
}
