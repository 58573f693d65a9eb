/* NVIDIA's per-cgroup device memory limits (drivers r615 and later),
 * emulated: nvmlDeviceSetMemoryLimits_v1 / nvmlDeviceGetMemoryLimits_v1
 * (include/gpumem/nvml_memlimits.h). The limits live in the machine-wide
 * simulated state, so the simulated libcuda.so.1 refuses an allocation that
 * would take a cgroup's processes past its hard limit (simstate.h).
 *
 * Refusals, as the reference describes the real calls: a driver older than
 * r615 has no such call (GPUMEM_SIM_DRIVER_VERSION below 615 answers
 * NVML_ERROR_FUNCTION_NOT_FOUND, the code NVML gives for a function the
 * driver lacks); MIG device handles are not supported, nor (our reading) a
 * GPU in MIG mode, whose memory is its instances'; setting needs root
 * (NVML_ERROR_NO_PERMISSION); the path must be a cgroup v2 directory
 * (missing: NVML_ERROR_NOT_FOUND; a cgroup v1 or other file system:
 * NVML_ERROR_NOT_SUPPORTED); soft above hard is an invalid argument. */
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include "nvml_sim.h"

static nvmlReturn_t check(nvmlDevice_t device, const char *name_space, char *real, int *index)
{
    const struct sim_device_info *d;
    nvmlReturn_t r = nvml_sim_lookup(device, &d, index);
    if (r != NVML_SUCCESS)
        return r;
    if (atoi(nvml_sim_driver_version()) < 615)
        return NVML_ERROR_FUNCTION_NOT_FOUND;
    if (d->parent >= 0 || d->mig_mode)
        return NVML_ERROR_NOT_SUPPORTED;
    if (name_space == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (realpath(name_space, real) == NULL)
        return NVML_ERROR_NOT_FOUND;
    if (!sim_cgroup_is_v2(real))
        return NVML_ERROR_NOT_SUPPORTED;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceSetMemoryLimits_v1(nvmlDevice_t device, nvmlSetMemoryLimits_v1_t *limits)
{
    char real[PATH_MAX];
    int index;
    if (limits == NULL)
        return nvml_sim_check_init() != NVML_SUCCESS ? NVML_ERROR_UNINITIALIZED : NVML_ERROR_INVALID_ARGUMENT;
    nvmlReturn_t r = check(device, limits->nameSpace, real, &index);
    if (r != NVML_SUCCESS)
        return r;
    if (geteuid() != 0)
        return NVML_ERROR_NO_PERMISSION;
    if (limits->softLimit > limits->hardLimit)
        return NVML_ERROR_INVALID_ARGUMENT;
    return sim_cglimit_set(index, real, limits->softLimit, limits->hardLimit) == 0 ? NVML_SUCCESS
                                                                                   : NVML_ERROR_INSUFFICIENT_RESOURCES;
}

nvmlReturn_t nvmlDeviceGetMemoryLimits_v1(nvmlDevice_t device, nvmlGetMemoryLimits_v1_t *limits)
{
    char real[PATH_MAX];
    int index;
    if (limits == NULL)
        return nvml_sim_check_init() != NVML_SUCCESS ? NVML_ERROR_UNINITIALIZED : NVML_ERROR_INVALID_ARGUMENT;
    nvmlReturn_t r = check(device, limits->nameSpace, real, &index);
    if (r != NVML_SUCCESS)
        return r;
    uint64_t soft, hard, used;
    sim_cglimit_get(index, real, &soft, &hard, &used);
    limits->softLimit = soft;
    limits->hardLimit = hard == UINT64_MAX ? NVML_DEVICE_MEMORY_LIMIT_MAX : hard;
    limits->currentUsed = used;
    return NVML_SUCCESS;
}
