/* Which UUID a CUDA device goes by in the group: "GPU-..." for a GPU,
 * "MIG-..." for a MIG device.
 *
 * CUDA gives only 16 bytes (cuDeviceGetUuid_v2); on a MIG device they are
 * the MIG UUID's (NVIDIA: "if the device is in MIG mode, returns its MIG
 * UUID"), and nothing in the bytes says which kind they are. nvidia-smi,
 * NVML and limits (`--limit MIG-<uuid>=4G`) name a MIG device "MIG-<same
 * hex>", so the group must too, or a MIG limit would never apply and two
 * instances would not be told apart from GPUs. The shim asks, in order:
 * does the group's limits or device table already name "MIG-<hex>" (no
 * driver call), else does NVML know a device by that UUID
 * (nvmlDeviceGetHandleByUUID accepts MIG UUIDs). Once per CUDA device per
 * process, never on the allocation path. Without NVML a device whose
 * limits do not name it as MIG is taken for a GPU, which only matters for
 * MIG devices limited by a default limit: they are still held to it. */
#include "account.h"

#include <stdio.h>
#include <string.h>

static int limits_name(const char *uuid)
{
    uint32_t n = g.limits->ndev < GM_MAX_DEVICES ? g.limits->ndev : GM_MAX_DEVICES;
    for (uint32_t i = 0; i < n; i++)
        if (strncmp(g.limits->dev[i].uuid, uuid, GM_UUID_LEN) == 0)
            return 1;
    for (int i = 0; i < GM_MAX_DEVICES; i++)
        if (strncmp(g.usage->dev[i].uuid, uuid, GM_UUID_LEN) == 0)
            return 1;
    return 0;
}

static int nvml_knows(const char *uuid)
{
    if (shim_resolve_nvml() < 0 || !real_nvml.nvmlInit_v2 || !real_nvml.nvmlDeviceGetHandleByUUID ||
        real_nvml.nvmlInit_v2() != NVML_SUCCESS)
        return 0;
    nvmlDevice_t dev;
    return real_nvml.nvmlDeviceGetHandleByUUID(uuid, &dev) == NVML_SUCCESS;
}

void shim_uuid_name(const CUuuid *u, char *out)
{
    const unsigned char *b = (const unsigned char *)u->bytes;
    char hex[40], mig[GM_UUID_LEN];
    snprintf(hex, sizeof hex, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
    snprintf(mig, sizeof mig, "MIG-%s", hex);
    if (limits_name(mig) || nvml_knows(mig))
        memcpy(out, mig, sizeof mig);
    else
        snprintf(out, GM_UUID_LEN, "GPU-%s", hex);
}
