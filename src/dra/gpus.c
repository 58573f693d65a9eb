/* The node's GPUs, from NVML: identity for the ResourceSlice, health for
 * its taints. NVML is dlopen'ed (the system's, or the simulated GPU's).
 *
 * Health: a GPU whose memory query fails (NVML_ERROR_GPU_IS_LOST after an
 * Xid 79 "fallen off the bus", or any other error) is unhealthy. A GPU
 * that NVML no longer lists at all keeps the identity it had at the last
 * read, so its device in the slice can be tainted rather than vanish
 * silently. */
#include "dra.h"

#include <ctype.h>
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "gpumem/nvml_load.h"

static struct {
    int ok;
    struct gm_nvml n;
    PFN_nvmlErrorString error_string;
} nv;

int dra_nvml_open(const char *lib, char *err, size_t errlen)
{
    if (gm_nvml_load(lib, &nv.n, err, errlen) < 0)
        return -1;
    if (!nv.n.name || !nv.n.version) {
        snprintf(err, errlen, "NVML %s: no nvmlDeviceGetName or nvmlSystemGetDriverVersion",
                 lib && *lib ? lib : "libnvidia-ml.so.1");
        return -1;
    }
    nv.error_string = (PFN_nvmlErrorString)dlsym(nv.n.lib, "nvmlErrorString");
    nv.ok = 1;
    return 0;
}

void dra_semver(const char *v, char *buf, size_t len)
{
    unsigned long part[3] = {0, 0, 0};
    const char *p = v;
    for (int i = 0; i < 3 && p && *p; i++) {
        if (!isdigit((unsigned char)*p))
            break;
        unsigned long x = 0;
        while (isdigit((unsigned char)*p)) {
            if (x < 100000000UL)
                x = x * 10 + (unsigned long)(*p - '0');
            p++;
        }
        part[i] = x;
        if (*p != '.')
            break;
        p++;
    }
    snprintf(buf, len, "%lu.%lu.%lu", part[0], part[1], part[2]);
}

static void set_unhealthy(struct dra_gpu *g, const char *what, nvmlReturn_t r)
{
    g->healthy = 0;
    const char *msg = nv.error_string ? nv.error_string(r) : NULL;
    snprintf(g->health_reason, sizeof g->health_reason, "%s: %s", what, msg ? msg : "NVML error");
}

int dra_inventory_read(struct dra_inventory *inv, const struct dra_inventory *prev, char *err, size_t errlen)
{
    memset(inv, 0, sizeof *inv);
    if (!nv.ok) {
        snprintf(err, errlen, "NVML is not open");
        return -1;
    }
    char version[80] = "";
    if (nv.n.version(version, sizeof version) != NVML_SUCCESS)
        snprintf(version, sizeof version, "0");
    dra_semver(version, inv->driver_version, sizeof inv->driver_version);
    unsigned count = 0;
    nvmlReturn_t r = nv.n.count(&count);
    if (r != NVML_SUCCESS) {
        snprintf(err, errlen, "nvmlDeviceGetCount_v2: error %d", (int)r);
        return -1;
    }
    if (count > DRA_MAX_GPUS)
        count = DRA_MAX_GPUS;
    for (unsigned i = 0; i < count; i++) {
        struct dra_gpu *g = &inv->gpu[inv->n];
        nvmlDevice_t h;
        g->index = (int)i;
        g->healthy = 1;
        if (nv.n.by_index(i, &h) != NVML_SUCCESS || nv.n.uuid(h, g->uuid, sizeof g->uuid) != NVML_SUCCESS)
            continue; /* no identity: counted as missing below if it had one */
        for (char *c = g->uuid + 4; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        if (nv.n.name(h, g->model, sizeof g->model) != NVML_SUCCESS)
            snprintf(g->model, sizeof g->model, "unknown");
        nvmlMemory_t m;
        r = nv.n.mem(h, &m);
        if (r == NVML_SUCCESS)
            g->memory = m.total;
        else
            set_unhealthy(g, "nvmlDeviceGetMemoryInfo", r);
        /* A lost GPU cannot say its size: the last one known. */
        for (int j = 0; prev && j < prev->n; j++)
            if (strcmp(prev->gpu[j].uuid, g->uuid) == 0 && !g->memory)
                g->memory = prev->gpu[j].memory;
        inv->n++;
    }
    for (int j = 0; prev && j < prev->n && inv->n < DRA_MAX_GPUS; j++) {
        int found = 0;
        for (int i = 0; i < inv->n && !found; i++)
            found = strcmp(inv->gpu[i].uuid, prev->gpu[j].uuid) == 0;
        if (!found) {
            inv->gpu[inv->n] = prev->gpu[j];
            inv->gpu[inv->n].healthy = 0;
            snprintf(inv->gpu[inv->n].health_reason, sizeof inv->gpu[0].health_reason, "no longer listed by NVML");
            inv->n++;
        }
    }
    return 0;
}
