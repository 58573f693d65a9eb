/* gpumem-dra's two timed paths, in-process, against an HTTPS API server
 * (bench/dra.sh starts tests/k8s/dra_apiserver.py and passes its URL):
 *
 *   publish   dra_slice_publish of a node's ResourceSlice for every GPU NVML
 *             shows (16 simulated ones in dra.sh): the first (GET 404 +
 *             POST), then rounds that each change one GPU's health (GET +
 *             PUT with the generation bumped)
 *   prepare   what NodePrepareResources does per claim (kubelet.c ->
 *             dra_node_prepare): GET the ResourceClaim, parse it, write the
 *             checkpoint, create the group, write the CDI spec; each claim
 *             unprepared after (not timed)
 *
 * usage: dra_bench URL SA_DIR NVML_LIB CLAIMS_DIR WORK_DIR ROUNDS
 * Prints "publish_first_ms=X", "publish_update_ms median=X p99=X",
 * "prepare_ms median=X p99=X". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "timing.h"
#include "dra.h"
#include "kubelet.h"

static double ms(long long ns) { return (double)ns / 1e6; }

static void report(const char *what, long long *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_ll);
    printf("%s median=%.2f p99=%.2f max=%.2f (n=%d)\n", what, ms(v[n / 2]), ms(v[(n * 99) / 100]), ms(v[n - 1]), n);
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: dra_bench URL SA_DIR NVML_LIB CLAIMS_DIR WORK_DIR ROUNDS\n");
        return 2;
    }
    char err[DRA_ERRLEN];
    int rounds = atoi(argv[6]);
    static struct dra_options o;
    static struct dra_inventory inv;
    snprintf(o.driver, sizeof o.driver, "gpumem.io");
    snprintf(o.node, sizeof o.node, "bench-node");
    o.unit = 1ULL << 30;
    snprintf(o.state_dir, sizeof o.state_dir, "%s/state", argv[5]);
    snprintf(o.cdi_dir, sizeof o.cdi_dir, "%s/cdi", argv[5]);
    snprintf(o.groups_dir, sizeof o.groups_dir, "%s/groups", argv[5]);
    snprintf(o.shim, sizeof o.shim, "/usr/lib/gpumem/libgpumem.so");
    struct kube *k = kube_open(argv[1], argv[2], err, sizeof err);
    if (!k || dra_nvml_open(argv[3], err, sizeof err) < 0 || dra_inventory_read(&inv, NULL, err, sizeof err) < 0) {
        fprintf(stderr, "dra_bench: %s\n", err);
        return 1;
    }
    printf("gpus=%d\n", inv.n);
    long long *t = calloc((size_t)rounds, sizeof *t);
    int changed;
    long long t0 = now_ns();
    if (dra_slice_publish(k, &o, &inv, &changed, err, sizeof err) < 0) {
        fprintf(stderr, "dra_bench: %s\n", err);
        return 1;
    }
    printf("publish_first_ms=%.2f\n", ms(now_ns() - t0));
    for (int i = 0; i < rounds; i++) {
        inv.gpu[inv.n - 1].healthy = i % 2 == 0 ? 0 : 1;
        t0 = now_ns();
        if (dra_slice_publish(k, &o, &inv, &changed, err, sizeof err) < 0 || !changed) {
            fprintf(stderr, "dra_bench: publish: %s\n", changed ? err : "nothing written");
            return 1;
        }
        t[i] = now_ns() - t0;
    }
    report("publish_update_ms", t, rounds);
    inv.gpu[inv.n - 1].healthy = 1;

    /* The claims dra.sh wrote: default/bench-<i>, uid ...-<i>, 1Gi of gpu-<i % n>. */
    struct dra_node node = {.o = &o, .k = k, .inv = &inv};
    for (int i = 0; i < rounds; i++) {
        char name[64], uid[64], id[400];
        struct dra_claim c;
        snprintf(name, sizeof name, "bench-%d", i);
        snprintf(uid, sizeof uid, "b0000000-0000-0000-0000-%012d", i);
        t0 = now_ns();
        if (dra_node_prepare(&node, "default", uid, name, &c, id, sizeof id, err, sizeof err) < 0) {
            fprintf(stderr, "dra_bench: prepare: %s\n", err);
            return 1;
        }
        t[i] = now_ns() - t0;
        if (dra_node_unprepare(&node, uid, err, sizeof err) < 0) {
            fprintf(stderr, "dra_bench: unprepare: %s\n", err);
            return 1;
        }
    }
    report("prepare_ms", t, rounds);
    free(t);
    kube_close(k);
    return 0;
}
