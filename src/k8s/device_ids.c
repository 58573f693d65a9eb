/* Device IDs. The kubelet counts devices, so memory is advertised as one
 * device per unit of each GPU: "<GPU UUID>-m<index>" (GPU-8a4f...-m17),
 * which says which GPU a unit is on without any table (and stays the same
 * across restarts of the plugin, as the kubelet's checkpoint needs). Whole
 * GPUs are their UUID. The kubelet hands back only IDs we advertised, but
 * anything could call the socket: every ID is parsed strictly and a bad one
 * is quoted in the error. */
#include "plugin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kp_unit_id(const char *uuid, unsigned index, char *buf, size_t len)
{
    snprintf(buf, len, "%s-m%u", uuid, index);
}

int kp_parse_unit_id(const struct kp_gpus *gs, const char *id, int *gpu, unsigned *unit, char *err, size_t errlen)
{
    const char *m = strrchr(id, '-');
    if (!m || m[1] != 'm' || !m[2] || strlen(m + 2) > 6 || strspn(m + 2, "0123456789") != strlen(m + 2) ||
        (m[2] == '0' && m[3])) {
        snprintf(err, errlen, "device ID \"%.200s\" is not a memory unit (expected GPU-<uuid>-m<index>)", id);
        return -1;
    }
    int g = kp_gpu_find(gs, id, (size_t)(m - id));
    if (g < 0) {
        snprintf(err, errlen, "device ID \"%.200s\" names a GPU this node does not have", id);
        return -1;
    }
    unsigned long u = strtoul(m + 2, NULL, 10);
    if (u >= gs->g[g].units) {
        snprintf(err, errlen, "device ID \"%.200s\": %s has %u units", id, gs->g[g].uuid, gs->g[g].units);
        return -1;
    }
    *gpu = g;
    *unit = (unsigned)u;
    return 0;
}

int kp_parse_gpu_id(const struct kp_gpus *gs, const char *id, int *gpu, char *err, size_t errlen)
{
    int g = kp_gpu_find(gs, id, strlen(id));
    if (g < 0) {
        snprintf(err, errlen, "device ID \"%.200s\" names a GPU this node does not have", id);
        return -1;
    }
    *gpu = g;
    return 0;
}
