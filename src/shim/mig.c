/* Which UUID a CUDA device goes by in the group: "GPU-..." for a GPU,
 * "MIG-..." for a MIG device.
 *
 * CUDA gives only 16 bytes (cuDeviceGetUuid_v2); on a MIG device they are
 * the MIG UUID's (NVIDIA: "if the device is in MIG mode, returns its MIG
 * UUID"), and nothing in the bytes says which kind they are. nvidia-smi,
 * NVML and limits (`--limit MIG-<uuid>=4G`) name a MIG device "MIG-<same
 * hex>", so the group must too, or a MIG limit would never apply. The shim
 * takes "MIG-" when any of these says so, all without NVML (loading and
 * initialising NVML here cost every process's first allocation
 * milliseconds):
 *   - the group's limits or device table already name "MIG-<hex>";
 *   - cuDeviceGetUuid (the original, which gives the GPU's UUID on a MIG
 *     device: _v2 was added to give the MIG UUID) differs from _v2;
 *   - the device's name is NVIDIA's MIG device name, "<GPU> MIG <profile>".
 * Once per CUDA device per process, never on the allocation path.
 * tests/gpu/driver_paths.sh records the first two on real hardware. */
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

static int driver_says_mig(CUdevice dev, const CUuuid *u)
{
    CUuuid v1;
    if (real.cuDeviceGetUuid && (void *)real.cuDeviceGetUuid != (void *)real.cuDeviceGetUuid_v2 &&
        real.cuDeviceGetUuid(&v1, dev) == CUDA_SUCCESS && memcmp(v1.bytes, u->bytes, sizeof v1.bytes) != 0)
        return 1;
    char name[256];
    return real.cuDeviceGetName && real.cuDeviceGetName(name, (int)sizeof name, dev) == CUDA_SUCCESS &&
           strstr(name, " MIG ") != NULL;
}

void shim_uuid_name(CUdevice dev, const CUuuid *u, char *out)
{
    const unsigned char *b = (const unsigned char *)u->bytes;
    char hex[40], mig[GM_UUID_LEN];
    snprintf(hex, sizeof hex, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
    snprintf(mig, sizeof mig, "MIG-%s", hex);
    if (limits_name(mig) || driver_says_mig(dev, u))
        memcpy(out, mig, sizeof mig);
    else
        snprintf(out, GM_UUID_LEN, "GPU-%s", hex);
}
