/* Whole GPUs and memory units of the same GPUs (--gpu-resource): the
 * kubelet counts the two resources apart, so the plugin keeps them apart.
 * A GPU given whole to a container has its memory units reported
 * Unhealthy (no new pod is placed on them) and refused by Allocate; a GPU
 * with memory units in use has its whole-GPU device reported Unhealthy and
 * refused likewise. What is in use is read from the groups Allocate made
 * (their marker lists the device IDs), so it survives a restart of the
 * plugin and ends when collect.c removes a group. */
#include "plugin.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Marks the GPUs of one group's device IDs ("ids=a,b,c"). */
static void mark(const struct kp_gpus *gs, char *ids, struct kp_use *u)
{
    char err[256];
    for (char *save = NULL, *id = strtok_r(ids, ",\n", &save); id; id = strtok_r(NULL, ",\n", &save)) {
        int g;
        unsigned unit;
        if (kp_parse_unit_id(gs, id, &g, &unit, err, sizeof err) == 0)
            u->shared[g] = 1;
        else if (kp_parse_gpu_id(gs, id, &g, err, sizeof err) == 0)
            u->exclusive[g] = 1;
    }
}

void kp_use_scan(const struct kp_gpus *gs, struct kp_use *u)
{
    char state[PATH_MAX], path[PATH_MAX + 300];
    static char line[1 << 16];
    memset(u, 0, sizeof *u);
    DIR *d = opendir(gm_state_dir(state, sizeof state));
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (strncmp(de->d_name, "k8s-", 4) != 0)
            continue;
        snprintf(path, sizeof path, "%s/%s/" KP_MARKER, state, de->d_name);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "ids=", 4) == 0)
                mark(gs, line + 4, u);
        fclose(f);
    }
    if (d)
        closedir(d);
}

int kp_use_conflict(const struct kp_gpus *gs, const struct kp_use *u, int whole, const struct kp_grant *g, char *err,
                    size_t errlen)
{
    for (int i = 0; i < g->ngpu; i++) {
        int k = g->gpu[i];
        if (!whole && u->exclusive[k]) {
            snprintf(err, errlen, "GPU %s is allocated whole to a container: its memory units cannot be allocated",
                     gs->g[k].uuid);
            return -1;
        }
        if (whole && u->shared[k]) {
            snprintf(err, errlen, "GPU %s has memory units allocated: it cannot be allocated whole", gs->g[k].uuid);
            return -1;
        }
    }
    return 0;
}
