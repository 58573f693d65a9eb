/* The node's GPUs and their health, from NVML (loaded with dlopen: the real
 * libnvidia-ml.so.1, or the simulated one). The GPUs are those NVML lists
 * at start; a GPU is healthy while NVML still finds it by UUID and answers
 * its memory query. A GPU that fell off the bus (NVML_ERROR_GPU_IS_LOST),
 * vanished (NOT_FOUND) or fails otherwise turns its units Unhealthy, and
 * they come back when it answers again. GPUs that appear later need a
 * restart of the plugin (the kubelet re-reads the list then). */
#include "plugin.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "gpumem/nvml_load.h"

static struct {
    struct gm_nvml n;
    PFN_nvmlDeviceGetMinorNumber minor; /* optional: the /dev/nvidiaN node */
} nv;

int kp_gpus_open(const char *lib, char *err, size_t errlen)
{
    if (gm_nvml_load(lib, &nv.n, err, errlen) < 0)
        return -1;
    if (!nv.n.by_uuid) {
        snprintf(err, errlen, "%s lacks nvmlDeviceGetHandleByUUID, which gpumem-k8s needs", lib);
        return -1;
    }
    nv.minor = (PFN_nvmlDeviceGetMinorNumber)dlsym(nv.n.lib, "nvmlDeviceGetMinorNumber");
    return 0;
}

int kp_gpus_discover(struct kp_gpus *gs, uint64_t unit, char *err, size_t errlen)
{
    unsigned n = 0;
    memset(gs, 0, sizeof *gs);
    nvmlReturn_t r = nv.n.count(&n);
    if (r != NVML_SUCCESS) {
        snprintf(err, errlen, "nvmlDeviceGetCount_v2 failed with error %d", (int)r);
        return -1;
    }
    if (n > KP_MAX_GPUS) {
        fprintf(stderr, "gpumem-k8s: %u GPUs, only the first %d are advertised\n", n, KP_MAX_GPUS);
        n = KP_MAX_GPUS;
    }
    for (unsigned i = 0; i < n; i++) {
        nvmlDevice_t d;
        nvmlMemory_t m;
        struct kp_gpu *g = &gs->g[gs->n];
        if (nv.n.by_index(i, &d) != NVML_SUCCESS || nv.n.uuid(d, g->uuid, sizeof g->uuid) != NVML_SUCCESS ||
            nv.n.mem(d, &m) != NVML_SUCCESS) {
            fprintf(stderr, "gpumem-k8s: GPU %u does not answer NVML: left out\n", i);
            continue;
        }
        g->total = m.total;
        g->units = (unsigned)(m.total / unit);
        g->minor = UINT32_MAX;
        if (nv.minor && nv.minor(d, &g->minor) != NVML_SUCCESS)
            g->minor = UINT32_MAX;
        g->healthy = 1;
        gs->n++;
    }
    return 0;
}

int kp_gpus_poll(struct kp_gpus *gs)
{
    int changed = 0;
    for (int i = 0; i < gs->n; i++) {
        nvmlDevice_t d;
        nvmlMemory_t m;
        int ok = nv.n.by_uuid(gs->g[i].uuid, &d) == NVML_SUCCESS && nv.n.mem(d, &m) == NVML_SUCCESS;
        if (ok != gs->g[i].healthy) {
            fprintf(stderr, "gpumem-k8s: GPU %s is %s\n", gs->g[i].uuid, ok ? "healthy again" : "unhealthy");
            gs->g[i].healthy = ok;
            changed = 1;
        }
    }
    return changed;
}

int kp_gpu_find(const struct kp_gpus *gs, const char *uuid, size_t len)
{
    for (int i = 0; i < gs->n; i++)
        if (strlen(gs->g[i].uuid) == len && strncasecmp(gs->g[i].uuid, uuid, len) == 0)
            return i;
    return -1;
}
