/* gpumem inspect GROUP|PID: the live device allocations of a group's
 * processes, as torch.cuda.memory_summary() shows them for one PyTorch
 * process, for any process in any framework: by API, by size class, the
 * oldest and the largest, and the call sites that made them.
 *
 * Each process's table is copied out of its memory (gpumem/live_peek.h);
 * the process is not stopped and its shim does nothing extra for this. */
#include "cli.h"

#include "gpumem/elfsym.h"
#include "gpumem/live_peek.h"
#include "gpumem/live_table.h"
#include "gpumem/procinfo.h"
#include "gpumem/ticks.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static void inspect_usage(FILE *out)
{
    fprintf(out,
            "Usage: gpumem inspect [--format table|json] [--top N] [--gpu GPU] GROUP|PID\n"
            "\n"
            "Shows the live GPU allocations of every process of GROUP, or of one\n"
            "process (PID as the host sees it, e.g. from gpumem ps -p): how many and\n"
            "how much by API and by size class, the N oldest and the N largest with\n"
            "their age, and the call sites that made them (library and function).\n"
            "The processes are not stopped or slowed: their allocation tables are\n"
            "copied out of their memory, which needs root (or ptrace rights over\n"
            "them).\n"
            "\n"
            "GROUP is a group (see gpumem ps): its name, a container's name or id (at\n"
            "least 12 characters), or the path of a group directory.\n"
            "\n"
            "Options:\n"
            "  --format table|json  output format (default table); json: one object,\n"
            "                       bytes as integers, ages in seconds\n"
            "  -n, --top N          how many oldest/largest allocations and call\n"
            "                       sites to list (default 5, 0 for none)\n"
            "      --gpu GPU        only allocations on GPU: its index, UUID, or a\n"
            "                       prefix of it such as gpumem ps prints (GPU-fe90dcc9)\n"
            "  -h, --help           this help\n"
            "\n"
            "Examples:\n"
            "  gpumem inspect job7\n"
            "  gpumem inspect --top 20 4242\n"
            "  gpumem inspect --format json job7 | jq '.processes[].by_api'\n");
}

/* Size classes, as allocators think of them. */
static const struct {
    uint64_t max;
    const char *name;
} size_class[] = {
    {64ull << 10, "<= 64 KiB"}, {1ull << 20, "<= 1 MiB"},     {16ull << 20, "<= 16 MiB"},
    {256ull << 20, "<= 256 MiB"}, {4ull << 30, "<= 4 GiB"}, {UINT64_MAX, "> 4 GiB"},
};
#define NCLASSES (sizeof size_class / sizeof size_class[0])

struct target {
    struct gm_proc_slot *slot;
    pid_t host_pid;
};

struct opts {
    int json, top;
    int gd;             /* only this device of the group's table; -1: all */
};

struct site_sum {
    uint64_t site, count, bytes;
};

static int by_site_bytes(const void *a, const void *b)
{
    const struct site_sum *x = a, *y = b;
    return x->bytes > y->bytes ? -1 : x->bytes < y->bytes ? 1 : (x->site > y->site) - (x->site < y->site);
}

static int by_site(const void *a, const void *b)
{
    const struct gm_live_alloc *x = a, *y = b;
    return (x->site > y->site) - (x->site < y->site);
}

/* Call sites of the allocations, largest total first (a[] is
 * reordered). Returns how many, in *out (malloc'd). */
static size_t sum_sites(struct gm_live_alloc *a, size_t n, struct site_sum **out)
{
    *out = NULL;
    qsort(a, n, sizeof *a, by_site);
    size_t k = 0;
    struct site_sum *s = n ? calloc(n, sizeof *s) : NULL;
    for (size_t i = 0; s && i < n; i++) {
        if (!a[i].site)
            continue;
        if (!k || s[k - 1].site != a[i].site)
            s[k++].site = a[i].site;
        s[k - 1].count++;
        s[k - 1].bytes += a[i].bytes;
    }
    if (k > 1)
        qsort(s, k, sizeof *s, by_site_bytes);
    *out = s;
    return k;
}

static const char *uuid_of(const struct gm_usage *u, int gd)
{
    return gd >= 0 && gd < GM_MAX_DEVICES ? u->dev[gd].uuid : "?";
}

static void print_alloc(const struct gm_usage *u, const struct gm_live_alloc *a, struct gm_symbolizer *sym, int json,
                        int first)
{
    char size[32], where[512] = "";
    if (a->site)
        gm_symbolize(sym, a->site, where, sizeof where);
    if (json) {
        printf("%s{\"address\":\"0x%llx\",\"bytes\":%llu,\"api\":\"%s\",\"uuid\":", first ? "" : ",",
               (unsigned long long)a->key, (unsigned long long)a->bytes, gm_alloc_kind_name(a->kind));
        json_str(uuid_of(u, a->gd));
        printf(",\"spilled\":%s,\"age_s\":%.3f,\"site\":", a->spilled ? "true" : "false", gm_ticks_age_s(a->born));
        if (a->site)
            json_str(where);
        else
            printf("null");
        putchar('}');
        return;
    }
    /* GPU UUIDs are long; their first block tells devices apart. A
     * spilled allocation (in host memory, charged to the group's swap:
     * docs/spill.md) is marked after its API. */
    char api[40];
    snprintf(api, sizeof api, "%s%s", gm_alloc_kind_name(a->kind), a->spilled ? " (host)" : "");
    printf("    0x%-14llx %10s  %-22s %-12.12s %9.1fs  %s\n", (unsigned long long)a->key,
           gm_format_size(a->bytes, size, sizeof size), api, uuid_of(u, a->gd), gm_ticks_age_s(a->born),
           a->site ? where : "-");
}

static void print_list(const char *title, const struct gm_usage *u, const struct gm_live_alloc *a, size_t n,
                       int top, struct gm_symbolizer *sym, int json)
{
    size_t k = n < (size_t)top ? n : (size_t)top;
    if (json) {
        printf(",\"%s\":[", title);
        for (size_t i = 0; i < k; i++)
            print_alloc(u, &a[i], sym, 1, i == 0);
        putchar(']');
        return;
    }
    if (!k)
        return;
    printf("  %s %zu:\n    %-16s %10s  %-22s %-12s %10s  %s\n", title, k, "ADDRESS", "SIZE", "API", "GPU", "AGE",
           "CALL SITE");
    for (size_t i = 0; i < k; i++)
        print_alloc(u, &a[i], sym, 0, 0);
}

/* One process: everything the report says about it. Returns 0, or -1 when
 * its table could not be read (said on stderr, and in JSON). */
static int report(const char *group, const struct gm_usage *u, const struct target *t, const struct opts *o,
                  int first)
{
    struct gm_live_alloc *a;
    size_t n;
    char comm[sizeof t->slot->comm + 1], size[32];
    snprintf(comm, sizeof comm, "%.*s", (int)strnlen(t->slot->comm, sizeof t->slot->comm), t->slot->comm);
    int pid = (int)atomic_load(&t->slot->pid);
    int rc = gm_live_peek(t->host_pid, t->slot->table_addr, t->slot->table_layout, &a, &n);
    if (rc != 0) {
        const char *why = gm_live_peek_strerror(errno);
        fprintf(stderr, "%s: pid %d (%s): %s\n", die_name, (int)t->host_pid, comm, why);
        if (o->json) {
            printf("%s{\"pid\":%d,\"host_pid\":%d,\"comm\":", first ? "" : ",", pid, (int)t->host_pid);
            json_str(comm);
            printf(",\"error\":");
            json_str(why);
            putchar('}');
        }
        return -1;
    }
    if (o->gd >= 0) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (a[i].gd == o->gd)
                a[k++] = a[i];
        n = k;
    }
    uint64_t total = 0, api_count[AK_NKINDS] = {0}, api_bytes[AK_NKINDS] = {0};
    uint64_t cls_count[NCLASSES] = {0}, cls_bytes[NCLASSES] = {0}, cls_oldest[NCLASSES] = {0};
    size_t with_site = 0, spilled = 0;
    uint64_t spilled_bytes = 0;
    for (size_t i = 0; i < n; i++) {
        total += a[i].bytes;
        spilled += a[i].spilled != 0;
        spilled_bytes += a[i].spilled ? a[i].bytes : 0;
        api_count[a[i].kind]++;
        api_bytes[a[i].kind] += a[i].bytes;
        size_t c = 0;
        while (a[i].bytes > size_class[c].max)
            c++;
        cls_count[c]++;
        cls_bytes[c] += a[i].bytes;
        if (!cls_oldest[c] || a[i].born < cls_oldest[c])
            cls_oldest[c] = a[i].born;
        with_site += a[i].site != 0;
    }
    struct gm_symbolizer *sym = with_site ? gm_symbolizer_open(t->host_pid) : NULL;
    if (o->json) {
        printf("%s{\"pid\":%d,\"host_pid\":%d,\"comm\":", first ? "" : ",", pid, (int)t->host_pid);
        json_str(comm);
        printf(",\"count\":%zu,\"bytes\":%llu,\"spilled_count\":%zu,\"spilled_bytes\":%llu,\"by_api\":[", n,
               (unsigned long long)total, spilled, (unsigned long long)spilled_bytes);
        for (int k = 0, f = 1; k < AK_NKINDS; k++)
            if (api_count[k]) {
                printf("%s{\"api\":\"%s\",\"count\":%llu,\"bytes\":%llu}", f ? "" : ",", gm_alloc_kind_name(k),
                       (unsigned long long)api_count[k], (unsigned long long)api_bytes[k]);
                f = 0;
            }
        printf("],\"by_size\":[");
        for (size_t c = 0, f = 1; c < NCLASSES; c++)
            if (cls_count[c]) {
                printf("%s{\"class\":\"%s\",\"max_bytes\":", f ? "" : ",", size_class[c].name);
                if (size_class[c].max == UINT64_MAX)
                    printf("null");
                else
                    printf("%llu", (unsigned long long)size_class[c].max);
                printf(",\"count\":%llu,\"bytes\":%llu,\"oldest_age_s\":%.3f}", (unsigned long long)cls_count[c],
                       (unsigned long long)cls_bytes[c], gm_ticks_age_s(cls_oldest[c]));
                f = 0;
            }
        putchar(']');
    } else {
        printf("pid %d (%s)", (int)t->host_pid, comm);
        if (pid != t->host_pid)
            printf(", pid %d in its namespace", pid);
        printf(", group %s: %zu live allocation%s, %s\n", group, n, n == 1 ? "" : "s",
               gm_format_size(total, size, sizeof size));
        if (spilled)
            printf("  %zu of them spilled to host memory (marked (host)), %s\n", spilled,
                   gm_format_size(spilled_bytes, size, sizeof size));
        if (n) {
            printf("  %-24s %8s %10s\n", "BY API", "COUNT", "BYTES");
            for (int k = 0; k < AK_NKINDS; k++)
                if (api_count[k])
                    printf("  %-24s %8llu %10s\n", gm_alloc_kind_name(k), (unsigned long long)api_count[k],
                           gm_format_size(api_bytes[k], size, sizeof size));
            printf("  %-24s %8s %10s %10s\n", "BY SIZE", "COUNT", "BYTES", "OLDEST");
            for (size_t c = 0; c < NCLASSES; c++)
                if (cls_count[c])
                    printf("  %-24s %8llu %10s %9.1fs\n", size_class[c].name, (unsigned long long)cls_count[c],
                           gm_format_size(cls_bytes[c], size, sizeof size), gm_ticks_age_s(cls_oldest[c]));
        }
    }
    gm_live_sort_oldest(a, n);
    print_list("oldest", u, a, n, o->top, sym, o->json);
    gm_live_sort_largest(a, n);
    print_list("largest", u, a, n, o->top, sym, o->json);

    struct site_sum *s;
    size_t ns = sum_sites(a, n, &s), k = ns < (size_t)o->top ? ns : (size_t)o->top;
    char where[512];
    if (o->json) {
        printf(",\"sites\":[");
        for (size_t i = 0; i < k; i++) {
            printf("%s{\"site\":", i ? "," : "");
            json_str(gm_symbolize(sym, s[i].site, where, sizeof where));
            printf(",\"count\":%llu,\"bytes\":%llu}", (unsigned long long)s[i].count, (unsigned long long)s[i].bytes);
        }
        printf("]}");
    } else if (k) {
        printf("  call sites %zu of %zu:\n    %8s %10s  %s\n", k, ns, "COUNT", "BYTES", "SITE");
        for (size_t i = 0; i < k; i++)
            printf("    %8llu %10s  %s\n", (unsigned long long)s[i].count,
                   gm_format_size(s[i].bytes, size, sizeof size), gm_symbolize(sym, s[i].site, where, sizeof where));
    }
    free(s);
    gm_symbolizer_close(sym);
    free(a);
    return 0;
}

static int all_digits(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

/* Processes of one group (all of them, or the one with host pid `only`). */
static size_t targets_of(struct gm_usage *u, pid_t only, struct target *t)
{
    static int32_t host[GM_MAX_PROCS];
    gm_reclaim_dead(u);
    gm_resolve_host_pids(u, host);
    size_t k = 0;
    uint32_t hw = atomic_load(&u->slots_hw);
    for (uint32_t i = 0; i < hw && i < GM_MAX_PROCS; i++) {
        if (!atomic_load(&u->slot[i].pid) || !host[i])
            continue;
        if (only && host[i] != only)
            continue;
        t[k++] = (struct target){&u->slot[i], host[i]};
    }
    return k;
}

/* The group whose processes include host pid `pid`: its name in buf. */
static int group_of_pid(pid_t pid, char *buf, size_t len)
{
    char state[PATH_MAX], dir[PATH_MAX + 256], err[512];
    static struct target t[GM_MAX_PROCS];
    DIR *d = opendir(gm_state_dir(state, sizeof state));
    if (!d)
        return -1;
    int found = -1;
    for (struct dirent *e; found < 0 && (e = readdir(d));) {
        if (e->d_name[0] == '.' || gm_valid_group_name(e->d_name) != 0)
            continue;
        snprintf(dir, sizeof dir, "%s/%s", state, e->d_name);
        struct gm_usage *u = gm_usage_map(dir, err, sizeof err);
        if (!u)
            continue;
        if (targets_of(u, pid, t) > 0 && strlen(e->d_name) < len) {
            memcpy(buf, e->d_name, strlen(e->d_name) + 1);
            found = 0;
        }
        gm_usage_unmap(u);
    }
    closedir(d);
    return found;
}

int cmd_inspect(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"format", required_argument, NULL, 'f'},
        {"top", required_argument, NULL, 'n'},
        {"gpu", required_argument, NULL, 'g'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct opts o = {0, 5, -1};
    const char *gpu = NULL;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "n:h", longopts, NULL)) != -1;) {
        char *end;
        switch (c) {
        case 'f':
            if (strcmp(optarg, "json") != 0 && strcmp(optarg, "table") != 0)
                return die(2, "--format \"%s\": expected table or json", optarg);
            o.json = strcmp(optarg, "json") == 0;
            break;
        case 'n': {
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || v < 0 || v > 100000)
                return die(2, "--top \"%s\": expected a count from 0 to 100000", optarg);
            o.top = (int)v;
            break;
        }
        case 'g': gpu = optarg; break;
        case 'h':
            inspect_usage(stdout);
            return 0;
        default:
            inspect_usage(stderr);
            return 2;
        }
    }
    if (argc - optind != 1) {
        if (argc - optind == 0)
            die(2, "no GROUP or PID given");
        else
            die(2, "unexpected argument \"%s\"", argv[optind + 1]);
        inspect_usage(stderr);
        return 2;
    }
    const char *what = argv[optind];
    gm_ticks_anchor(); /* the ages need the tick rate: start measuring it now */

    pid_t only = 0;
    char name[GM_NAME_LEN + 1], dir[PATH_MAX], err[512];
    snprintf(name, sizeof name, "%s", what);
    if (all_digits(what) && group_dir(what, dir, sizeof dir) != 0) {
        long v = strtol(what, NULL, 10);
        if (v <= 0 || v > INT32_MAX)
            return die(2, "\"%s\" is not a process id", what);
        only = (pid_t)v;
        if (group_of_pid(only, name, sizeof name) != 0)
            return die(1, "process %ld is in no gpumem group (see gpumem ps -p)", v);
    }
    if (group_dir(name, dir, sizeof dir) < 0)
        return die(1, "no group \"%s\" (see gpumem ps)", what);
    struct gm_usage *u = gm_usage_map(dir, err, sizeof err);
    if (!u)
        return die(1, "%s", err);
    if (gpu) {
        static char known[GM_MAX_DEVICES][GM_UUID_LEN];
        char uuid[GM_UUID_LEN];
        uint32_t nd = atomic_load(&u->ndev);
        for (uint32_t d = 0; d < nd && d < GM_MAX_DEVICES; d++)
            snprintf(known[d], GM_UUID_LEN, "%.*s", GM_UUID_LEN - 1, u->dev[d].uuid);
        if (gpu_resolve(gpu, (const char (*)[GM_UUID_LEN])known, (int)nd, uuid, sizeof uuid, err, sizeof err) < 0) {
            gm_usage_unmap(u);
            return die(2, "--gpu: %s", err);
        }
        for (uint32_t d = 0; d < nd && d < GM_MAX_DEVICES; d++)
            if (strcmp(known[d], uuid) == 0)
                o.gd = (int)d;
        if (o.gd < 0) {
            gm_usage_unmap(u);
            return die(1, "--gpu: group %s has not used %s", name, uuid);
        }
    }

    static struct target t[GM_MAX_PROCS];
    size_t k = targets_of(u, only, t);
    int failed = 0;
    if (o.json) {
        printf("{\"group\":");
        json_str(name);
        printf(",\"processes\":[");
    } else if (!k) {
        printf("group %s: no live processes\n", name);
    }
    for (size_t i = 0; i < k; i++) {
        if (!o.json && i)
            putchar('\n');
        failed += report(name, u, &t[i], &o, i == 0) != 0;
    }
    if (o.json)
        printf("]}\n");
    gm_usage_unmap(u);
    return failed && (size_t)failed == k ? 1 : 0;
}
