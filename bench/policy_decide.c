/* Policy decisions at scale (docs/performance.md): for N groups (default
 * 1,000) on one GPU,
 *   pick   gp_pick_victims over N groups in memory (the daemon's choice of
 *          victims once it has read the groups)
 *   admit  gm_admit_check against a state directory of N real groups (what
 *          gpumem run and gpumem-runtime do under the admission lock: map
 *          and read every group's limits file)
 * Prints the median and the slowest of R runs (default 50) of each, in ms.
 * Usage: [TMPDIR=DIR] policy_decide [N] [RUNS] (DIR: where the groups are
 * made, default /tmp; /run/gpumem is a tmpfs, as /dev/shm is). */
#include "gpumem/policy.h"
#include "timing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GIB (1ull << 30)

static void report(const char *what, long long *ns, int runs)
{
    qsort(ns, (size_t)runs, sizeof *ns, cmp_ll);
    printf("%-6s median %.3f ms, slowest %.3f ms\n", what, ns[runs / 2] / 1e6, ns[runs - 1] / 1e6);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1000, runs = argc > 2 ? atoi(argv[2]) : 50;
    if (n < 1 || runs < 1)
        return 2;
    long long *ns = calloc((size_t)runs, sizeof *ns);
    struct gp_group *g = calloc((size_t)n, sizeof *g);
    struct gp_victim *v = calloc((size_t)n, sizeof *v);
    char (*names)[16] = calloc((size_t)n, sizeof *names);
    if (!ns || !g || !v || !names)
        return 1;
    srand(1);
    for (int i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], "g%d", i);
        uint64_t req = (uint64_t)(rand() % 64) << 20, used = req + ((uint64_t)(rand() % 64) << 20);
        g[i] = (struct gp_group){names[i], rand() % 3 - 1, req, rand() % 2 ? used : req / 2, (uint64_t)i, 0};
    }
    /* Need about half of what all candidates hold: most are sorted, many picked. */
    for (int r = 0; r < runs; r++) {
        long long t0 = now_ns();
        int k = gp_pick_victims(g, n, 0, 1, (uint64_t)n * (16ull << 20), GP_FREES_USED, v, n);
        ns[r] = now_ns() - t0;
        if (k < 0) {
            fprintf(stderr, "policy_decide: no victims found\n");
            return 1;
        }
    }
    printf("groups %d, runs %d\n", n, runs);
    report("pick", ns, runs);

    /* Under $TMPDIR (default /tmp): /run/gpumem is a tmpfs, so give a tmpfs
     * (TMPDIR=/dev/shm) for figures that compare with it. */
    const char *tmp = getenv("TMPDIR");
    char state[4096];
    snprintf(state, sizeof state, "%s/gpumem-bench-policy.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(state))
        return 1;
    const char *uuid = "GPU-00000000-0000-0000-0000-000000000000";
    for (int i = 0; i < n; i++) {
        struct gm_limits l;
        gm_limits_init(&l);
        snprintf(l.name, sizeof l.name, "g%d", i);
        l.request_default = 1ull << 20;
        char dir[sizeof state + 32], err[256];
        snprintf(dir, sizeof dir, "%s/g%d", state, i);
        if (gm_group_create(dir, &l, 0644, err, sizeof err) < 0) {
            fprintf(stderr, "policy_decide: %s\n", err);
            return 1;
        }
    }
    struct gm_gpu gpu;
    snprintf(gpu.uuid, sizeof gpu.uuid, "%s", uuid);
    gpu.total = 80 * GIB;
    struct gm_limits want;
    gm_limits_init(&want);
    snprintf(want.name, sizeof want.name, "new");
    want.request_default = GIB;
    char msg[1024];
    for (int r = 0; r < runs; r++) {
        long long t0 = now_ns();
        int fits = gm_admit_check(state, "new", &want, &gpu, 1, msg, sizeof msg);
        ns[r] = now_ns() - t0;
        if (fits != 1) {
            fprintf(stderr, "policy_decide: admission failed: %s\n", msg);
            return 1;
        }
    }
    report("admit", ns, runs);
    for (int i = 0; i < n; i++) {
        char dir[sizeof state + 32];
        snprintf(dir, sizeof dir, "%s/g%d", state, i);
        gm_group_remove(dir);
    }
    rmdir(state);
    return 0;
}
