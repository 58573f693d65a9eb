/* NVML loaded by path (see include/gpumem/nvml_load.h). */
#include "gpumem/nvml_load.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

int gm_nvml_load(const char *lib, struct gm_nvml *n, char *err, size_t errlen)
{
    const char *path = lib && *lib ? lib : "libnvidia-ml.so.1";
    memset(n, 0, sizeof *n);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(err, errlen, "cannot load %s: %s", path, dlerror());
        return -1;
    }
    PFN_nvmlInit_v2 init = (PFN_nvmlInit_v2)dlsym(h, "nvmlInit_v2");
    n->count = (PFN_nvmlDeviceGetCount_v2)dlsym(h, "nvmlDeviceGetCount_v2");
    n->by_index = (PFN_nvmlDeviceGetHandleByIndex_v2)dlsym(h, "nvmlDeviceGetHandleByIndex_v2");
    n->uuid = (PFN_nvmlDeviceGetUUID)dlsym(h, "nvmlDeviceGetUUID");
    n->mem = (PFN_nvmlDeviceGetMemoryInfo)dlsym(h, "nvmlDeviceGetMemoryInfo");
    n->by_uuid = (PFN_nvmlDeviceGetHandleByUUID)dlsym(h, "nvmlDeviceGetHandleByUUID");
    n->name = (PFN_nvmlDeviceGetName)dlsym(h, "nvmlDeviceGetName");
    n->version = (PFN_nvmlSystemGetDriverVersion)dlsym(h, "nvmlSystemGetDriverVersion");
    if (!init || !n->count || !n->by_index || !n->uuid || !n->mem) {
        snprintf(err, errlen, "%s lacks the NVML entry points gpumem needs (nvmlInit_v2, nvmlDeviceGetCount_v2, "
                              "nvmlDeviceGetHandleByIndex_v2, nvmlDeviceGetUUID, nvmlDeviceGetMemoryInfo)", path);
        return -1;
    }
    nvmlReturn_t r = init();
    if (r != NVML_SUCCESS) {
        snprintf(err, errlen, "%s: nvmlInit_v2 failed with error %d", path, (int)r);
        return -1;
    }
    n->lib = h;
    return 0;
}
