/* The running-process lists. Compute processes are every live process that
 * holds bytes on the device in the simulated state (any process with a
 * context does: a context costs memory), with its pid and all it holds.
 * Nothing here draws graphics or runs under MPS, so those lists are empty.
 *
 * The count protocol is NVIDIA's: *infoCount is the room in `infos` on
 * entry and the number of entries on return; with too little room the call
 * answers NVML_ERROR_INSUFFICIENT_SIZE, writes no entry and sets *infoCount
 * to the room needed (so *infoCount = 0, infos = NULL asks for the count,
 * and answers NVML_SUCCESS when nothing runs). */
#include <stddef.h>

#include "nvml_sim.h"

/* Outside MIG both instance ids read NVML_VALUE_NOT_AVAILABLE; a MIG device
 * handle lists the processes of its GPU instance, with its ids. */
#define NO_INSTANCE ((unsigned int)NVML_VALUE_NOT_AVAILABLE)

enum proc_kind { PROC_COMPUTE, PROC_GRAPHICS, PROC_MPS };

/* Fills either layout: v1 entries (pid, usedGpuMemory) or v2 entries (plus
 * the MIG instance ids). */
static nvmlReturn_t list_processes(nvmlDevice_t device, unsigned int *infoCount, void *infos, int v2,
                                   enum proc_kind kind)
{
    int dev;
    nvmlReturn_t r = nvml_sim_device_index(device, &dev);
    if (r != NVML_SUCCESS)
        return r;
    if (infoCount == NULL || (*infoCount > 0 && infos == NULL))
        return NVML_ERROR_INVALID_ARGUMENT;

    struct sim_proc_usage procs[SIM_MAX_PROCS];
    int n = 0;
    if (kind == PROC_COMPUTE) {
        n = sim_device_processes(dev, procs, SIM_MAX_PROCS);
        if (n < 0)
            n = 0;
        if (n > SIM_MAX_PROCS) /* cannot happen: the table has SIM_MAX_PROCS slots */
            n = SIM_MAX_PROCS;
    }
    if (*infoCount < (unsigned int)n) {
        *infoCount = (unsigned int)n;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    for (int i = 0; i < n; i++) {
        if (v2) {
            const struct sim_device_info *d = sim_device(dev);
            nvmlProcessInfo_v2_t *p = (nvmlProcessInfo_v2_t *)infos + i;
            p->pid = (unsigned int)procs[i].pid;
            p->usedGpuMemory = procs[i].used;
            p->gpuInstanceId = d && d->parent >= 0 ? d->gi_id : NO_INSTANCE;
            p->computeInstanceId = d && d->parent >= 0 ? d->ci_id : NO_INSTANCE;
        } else {
            nvmlProcessInfo_v1_t *p = (nvmlProcessInfo_v1_t *)infos + i;
            p->pid = (unsigned int)procs[i].pid;
            p->usedGpuMemory = procs[i].used;
        }
    }
    *infoCount = (unsigned int)n;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t device, unsigned int *infoCount,
                                                  nvmlProcessInfo_v1_t *infos)
{
    return list_processes(device, infoCount, infos, 0, PROC_COMPUTE);
}
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t device, unsigned int *infoCount,
                                                     nvmlProcessInfo_v2_t *infos)
{
    return list_processes(device, infoCount, infos, 1, PROC_COMPUTE);
}
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *infoCount,
                                                     nvmlProcessInfo_t *infos)
{
    return list_processes(device, infoCount, infos, 1, PROC_COMPUTE);
}

nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses(nvmlDevice_t device, unsigned int *infoCount,
                                                   nvmlProcessInfo_v1_t *infos)
{
    return list_processes(device, infoCount, infos, 0, PROC_GRAPHICS);
}
nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v2(nvmlDevice_t device, unsigned int *infoCount,
                                                      nvmlProcessInfo_v2_t *infos)
{
    return list_processes(device, infoCount, infos, 1, PROC_GRAPHICS);
}
nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t device, unsigned int *infoCount,
                                                      nvmlProcessInfo_t *infos)
{
    return list_processes(device, infoCount, infos, 1, PROC_GRAPHICS);
}

nvmlReturn_t nvmlDeviceGetMPSComputeRunningProcesses(nvmlDevice_t device, unsigned int *infoCount,
                                                     nvmlProcessInfo_v1_t *infos)
{
    return list_processes(device, infoCount, infos, 0, PROC_MPS);
}
nvmlReturn_t nvmlDeviceGetMPSComputeRunningProcesses_v2(nvmlDevice_t device, unsigned int *infoCount,
                                                        nvmlProcessInfo_v2_t *infos)
{
    return list_processes(device, infoCount, infos, 1, PROC_MPS);
}
nvmlReturn_t nvmlDeviceGetMPSComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *infoCount,
                                                        nvmlProcessInfo_t *infos)
{
    return list_processes(device, infoCount, infos, 1, PROC_MPS);
}
