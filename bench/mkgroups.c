/* Synthetic groups for bench/scrape.sh: N groups (bench-0000, ...) under
 * $GPUMEM_STATE_DIR, each with a 4 GiB limit and one slot per given pid
 * (the pids must be live, or the first reader reclaims their slots), each
 * slot holding (k+1) x 64 MiB on device UUID. Written the way the shim
 * writes them (gm_group_create, gm_usage_device, gm_slot_claim, atomics),
 * so readers see what thousands of real processes would leave; a process
 * in another pid namespace (a container) by the pid it has there.
 *
 *   mkgroups N UUID PID...                                               */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpumem/group.h"
#include "gpumem/procinfo.h"

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: mkgroups N UUID PID...\n");
        return 2;
    }
    int n = atoi(argv[1]);
    const char *uuid = argv[2];
    char state[PATH_MAX], dir[PATH_MAX + 64], err[512];
    gm_state_dir(state, sizeof state);
    for (int g = 0; g < n; g++) {
        struct gm_limits l;
        gm_limits_init(&l);
        l.default_limit = 4ULL << 30;
        snprintf(l.name, sizeof l.name, "bench-%04d", g);
        snprintf(l.container_name, sizeof l.container_name, "worker-%d", g);
        snprintf(l.pod, sizeof l.pod, "train-%d", g / 4);
        snprintf(l.pod_namespace, sizeof l.pod_namespace, "ml");
        snprintf(dir, sizeof dir, "%s/%s", state, l.name);
        if (gm_group_create(dir, &l, 0666, err, sizeof err) < 0) {
            fprintf(stderr, "mkgroups: %s\n", err);
            return 1;
        }
        struct gm_usage *u = gm_usage_map(dir, err, sizeof err);
        if (!u) {
            fprintf(stderr, "mkgroups: %s\n", err);
            return 1;
        }
        int d = gm_usage_device(u, uuid);
        uint64_t total = 0;
        for (int k = 3; k < argc && d >= 0; k++) {
            /* The pid as the process sees it (the last of its NSpid line),
             * as the shim writes it in a container; the start time is the
             * same in every pid namespace. */
            pid_t host = (pid_t)atoi(argv[k]), pid = gm_proc_inner_pid(host);
            struct gm_proc_slot *s = gm_slot_claim(u, pid > 0 ? pid : host, gm_proc_start_time(host), "bench");
            if (!s)
                break;
            uint64_t held = (uint64_t)(k - 2) * (64ULL << 20);
            atomic_store(&s->lanes_hw, 1);
            atomic_store(&s->cell[GM_CELL_INDEX(0, d)].charged, held);
            atomic_store(&s->peak[d], held);
            atomic_store(&s->cell[GM_CELL_INDEX(0, d)].allocs, 1);
            total += held;
        }
        if (d >= 0)
            atomic_store(&u->dev[d].peak, total);
        gm_usage_unmap(u);
    }
    return 0;
}
