/* NVML, as nvidia-smi, pynvml and DCGM see it inside a group: the device's
 * memory is the group's limit, and the process list is the group's own
 * processes. Devices are matched by UUID, like everything else. */
#include "account.h"

#include <string.h>

#define EXPORT __attribute__((visibility("default")))

int shim_gd_for_nvml_device(nvmlDevice_t dev)
{
    char uuid[96];
    if (!real_nvml.nvmlDeviceGetUUID || real_nvml.nvmlDeviceGetUUID(dev, uuid, sizeof uuid) != NVML_SUCCESS)
        return -1;
    for (char *c = uuid; *c; c++)
        if (*c >= 'A' && *c <= 'F')
            *c = (char)(*c + 32);
    return gm_usage_device(g.usage, uuid);
}

static int nvml_gd(nvmlDevice_t dev)
{
    if (shim_mode() != SHIM_ENFORCE)
        return -1;
    return shim_gd_for_nvml_device(dev);
}

/* Rewrites (total, free) of `dev` to the group's view; 0 when there is one. */
static int group_view(nvmlDevice_t dev, unsigned long long *total, unsigned long long *free)
{
    int gd = nvml_gd(dev);
    if (gd < 0)
        return -1;
    uint64_t f = *free, t = *total;
    shim_view(gd, &f, &t);
    *total = t;
    *free = f;
    return 0;
}

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t dev, nvmlMemory_t *mem)
{
    if (shim_resolve_nvml() < 0 || !real_nvml.nvmlDeviceGetMemoryInfo)
        return NVML_ERROR_UNINITIALIZED;
    nvmlReturn_t r = ((PFN_nvmlDeviceGetMemoryInfo)real_nvml.nvmlDeviceGetMemoryInfo)(dev, mem);
    if (r == NVML_SUCCESS && group_view(dev, &mem->total, &mem->free) == 0)
        mem->used = mem->total - mem->free;
    return r;
}

/* v2 reports the driver's reserved memory apart: used excludes it. */
EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t dev, nvmlMemory_v2_t *mem)
{
    if (shim_resolve_nvml() < 0 || !real_nvml.nvmlDeviceGetMemoryInfo_v2)
        return NVML_ERROR_FUNCTION_NOT_FOUND;
    nvmlReturn_t r = ((PFN_nvmlDeviceGetMemoryInfo_v2)real_nvml.nvmlDeviceGetMemoryInfo_v2)(dev, mem);
    if (r == NVML_SUCCESS && group_view(dev, &mem->total, &mem->free) == 0) {
        unsigned long long taken = mem->total - mem->free;
        mem->used = taken > mem->reserved ? taken - mem->reserved : 0;
    }
    return r;
}

static int in_group(unsigned pid)
{
    uint32_t hw = atomic_load(&g.usage->slots_hw);
    for (uint32_t i = 0; i < hw; i++) {
        const struct gm_proc_slot *s = &g.usage->slot[i];
        int32_t p = atomic_load(&s->pid);
        if (p && ((unsigned)p == pid || (unsigned)s->host_pid == pid))
            return 1;
    }
    return 0;
}

/* Keeps only the group's processes, in place; *count becomes how many. */
#define FILTER(infos, count)                                  \
    do {                                                      \
        unsigned k_ = 0;                                      \
        for (unsigned i_ = 0; i_ < *(count); i_++)            \
            if (in_group((infos)[i_].pid))                    \
                (infos)[k_++] = (infos)[i_];                  \
        *(count) = k_;                                        \
    } while (0)

/* With a caller buffer too small for the whole list, NVML answers
 * INSUFFICIENT_SIZE with the full count; the group's share may still fit,
 * so ask again into a local buffer first. */
#define PROC_HOOK(sym, T)                                                               \
    EXPORT nvmlReturn_t sym(nvmlDevice_t dev, unsigned int *count, T *infos)            \
    {                                                                                   \
        if (shim_resolve_nvml() < 0 || !real_nvml.sym)                                  \
            return NVML_ERROR_FUNCTION_NOT_FOUND;                                       \
        PFN_##sym fn = (PFN_##sym)real_nvml.sym;                                        \
        if (nvml_gd(dev) < 0 || !count)                                                 \
            return fn(dev, count, infos);                                               \
        T local[256];                                                                   \
        unsigned n = 256;                                                               \
        nvmlReturn_t r = fn(dev, &n, local);                                            \
        if (r != NVML_SUCCESS)                                                          \
            return r == NVML_ERROR_INSUFFICIENT_SIZE ? fn(dev, count, infos) : r;       \
        FILTER(local, &n);                                                              \
        if (n > *count || (n && !infos)) {                                              \
            *count = n;                                                                 \
            return NVML_ERROR_INSUFFICIENT_SIZE;                                        \
        }                                                                               \
        memcpy(infos, local, n * sizeof *local);                                        \
        *count = n;                                                                     \
        return NVML_SUCCESS;                                                            \
    }

PROC_HOOK(nvmlDeviceGetComputeRunningProcesses, nvmlProcessInfo_v1_t)
PROC_HOOK(nvmlDeviceGetComputeRunningProcesses_v2, nvmlProcessInfo_v2_t)
PROC_HOOK(nvmlDeviceGetComputeRunningProcesses_v3, nvmlProcessInfo_t)
