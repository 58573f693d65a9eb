/* Prints what an NVML user (nvidia-smi, pynvml) sees for device 0:
 *   mem total=T free=F used=U
 *   mem2 total=T free=F used=U
 *   proc pid=P used=U          (one line per process, from the _v3 list) */
#include "gpumem/nvml.h"

#include <dlfcn.h>
#include <stdio.h>

int main(void)
{
    void *h = dlopen("libnvidia-ml.so.1", RTLD_NOW);
    if (!h)
        return fprintf(stderr, "nvml_view: %s\n", dlerror()), 1;
    PFN_nvmlInit_v2 init = (PFN_nvmlInit_v2)dlsym(h, "nvmlInit_v2");
    PFN_nvmlDeviceGetHandleByIndex_v2 by_index =
        (PFN_nvmlDeviceGetHandleByIndex_v2)dlsym(h, "nvmlDeviceGetHandleByIndex_v2");
    PFN_nvmlDeviceGetMemoryInfo mem = (PFN_nvmlDeviceGetMemoryInfo)dlsym(h, "nvmlDeviceGetMemoryInfo");
    PFN_nvmlDeviceGetMemoryInfo_v2 mem2 = (PFN_nvmlDeviceGetMemoryInfo_v2)dlsym(h, "nvmlDeviceGetMemoryInfo_v2");
    PFN_nvmlDeviceGetComputeRunningProcesses_v3 procs =
        (PFN_nvmlDeviceGetComputeRunningProcesses_v3)dlsym(h, "nvmlDeviceGetComputeRunningProcesses_v3");
    nvmlDevice_t dev;
    if (!init || init() != NVML_SUCCESS || by_index(0, &dev) != NVML_SUCCESS)
        return fprintf(stderr, "nvml_view: init failed\n"), 1;
    nvmlMemory_t m;
    if (mem(dev, &m) == NVML_SUCCESS)
        printf("mem total=%llu free=%llu used=%llu\n", m.total, m.free, m.used);
    nvmlMemory_v2_t m2 = {.version = nvmlMemory_v2};
    if (mem2(dev, &m2) == NVML_SUCCESS)
        printf("mem2 total=%llu free=%llu used=%llu\n", m2.total, m2.free, m2.used);
    nvmlProcessInfo_t p[64];
    unsigned n = 64;
    if (procs(dev, &n, p) == NVML_SUCCESS)
        for (unsigned i = 0; i < n; i++)
            printf("proc pid=%u used=%llu\n", p[i].pid, p[i].usedGpuMemory);
    return 0;
}
