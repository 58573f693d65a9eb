/* NVML's MIG calls on the simulated GPU (layouts from GPUMEM_SIM_DEVICES,
 * sim/common/mig.c). A MIG device handle is an entry after the GPUs: memory
 * info, name, UUID ("MIG-..."), PCI info and the process list answer for
 * the instance through the ordinary calls, as NVIDIA's NVML does for MIG
 * device handles. */
#include <stddef.h>

#include "nvml_sim.h"

static nvmlReturn_t lookup_out(nvmlDevice_t device, const void *out, const struct sim_device_info **d, int *index)
{
    nvmlReturn_t r = nvml_sim_lookup(device, d, index);
    if (r == NVML_SUCCESS && out == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    return r;
}

/* MIG mode is a property of a GPU; the simulated one never has a pending
 * change. A MIG device handle is not a GPU: invalid argument, as NVIDIA's. */
nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int *currentMode, unsigned int *pendingMode)
{
    const struct sim_device_info *d;
    nvmlReturn_t r = lookup_out(device, currentMode, &d, NULL);
    if (r != NVML_SUCCESS)
        return r;
    if (pendingMode == NULL || d->parent >= 0)
        return NVML_ERROR_INVALID_ARGUMENT;
    *currentMode = *pendingMode = d->mig_mode ? NVML_DEVICE_MIG_ENABLE : NVML_DEVICE_MIG_DISABLE;
    return NVML_SUCCESS;
}

/* "The maximum number of MIG devices that can exist under the GPU": one per
 * compute slice in MIG mode, 0 otherwise. */
nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t device, unsigned int *count)
{
    const struct sim_device_info *d;
    nvmlReturn_t r = lookup_out(device, count, &d, NULL);
    if (r != NVML_SUCCESS)
        return r;
    if (d->parent >= 0)
        return NVML_ERROR_INVALID_ARGUMENT;
    *count = d->mig_mode ? 7u : 0u;
    return NVML_SUCCESS;
}

/* Indices below the maximum with no compute instance behind them are
 * NVML_ERROR_NOT_FOUND, as on a GPU whose instances do not fill it. */
nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t device, unsigned int index, nvmlDevice_t *migDevice)
{
    const struct sim_device_info *d;
    nvmlReturn_t r = lookup_out(device, migDevice, &d, NULL);
    if (r != NVML_SUCCESS)
        return r;
    if (d->parent >= 0 || !d->mig_mode)
        return d->parent >= 0 ? NVML_ERROR_INVALID_ARGUMENT : NVML_ERROR_NOT_SUPPORTED;
    if (index >= 7u)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (index >= (unsigned)d->mig_count)
        return NVML_ERROR_NOT_FOUND;
    *migDevice = nvml_sim_handle((unsigned)d->mig_first + index);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceIsMigDeviceHandle(nvmlDevice_t device, unsigned int *isMigDevice)
{
    const struct sim_device_info *d;
    nvmlReturn_t r = lookup_out(device, isMigDevice, &d, NULL);
    if (r == NVML_SUCCESS)
        *isMigDevice = d->parent >= 0;
    return r;
}

nvmlReturn_t nvmlDeviceGetDeviceHandleFromMigDeviceHandle(nvmlDevice_t migDevice, nvmlDevice_t *device)
{
    const struct sim_device_info *d;
    nvmlReturn_t r = lookup_out(migDevice, device, &d, NULL);
    if (r != NVML_SUCCESS)
        return r;
    if (d->parent < 0)
        return NVML_ERROR_INVALID_ARGUMENT;
    *device = nvml_sim_handle((unsigned)d->parent);
    return NVML_SUCCESS;
}

/* Instance ids exist for MIG device handles only. */
static nvmlReturn_t instance_id(nvmlDevice_t device, unsigned int *id, int compute)
{
    const struct sim_device_info *d;
    nvmlReturn_t r = lookup_out(device, id, &d, NULL);
    if (r != NVML_SUCCESS)
        return r;
    if (d->parent < 0)
        return NVML_ERROR_NOT_SUPPORTED;
    *id = compute ? d->ci_id : d->gi_id;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetGpuInstanceId(nvmlDevice_t device, unsigned int *id) { return instance_id(device, id, 0); }
nvmlReturn_t nvmlDeviceGetComputeInstanceId(nvmlDevice_t device, unsigned int *id) { return instance_id(device, id, 1); }
