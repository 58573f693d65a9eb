/* NVIDIA's per-cgroup memory limit calls (nvmlDeviceSetMemoryLimits_v1 /
 * nvmlDeviceGetMemoryLimits_v1), called directly, for
 * tests/integration/driver_limits.sh. NVML is reached with dlopen and dlsym
 * as tools do, so a library without the calls is reported, not a crash.
 *
 *   get UUID CGROUP                 "rc=RC soft=S hard=H used=U"
 *   set UUID CGROUP SOFT HARD       "rc=RC" (HARD "max": NVML_DEVICE_MEMORY_LIMIT_MAX)
 *
 * "rc=absent" when the library does not export the call. */
#include "gpumem/nvml.h"
#include "gpumem/nvml_memlimits.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 4 || (strcmp(argv[1], "get") && strcmp(argv[1], "set")) || (!strcmp(argv[1], "set") && argc < 6)) {
        fprintf(stderr, "usage: nvml_memlimits get UUID CGROUP | set UUID CGROUP SOFT HARD|max\n");
        return 2;
    }
    void *h = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    PFN_nvmlInit_v2 init = h ? (PFN_nvmlInit_v2)dlsym(h, "nvmlInit_v2") : NULL;
    PFN_nvmlDeviceGetHandleByUUID by_uuid = h ? (PFN_nvmlDeviceGetHandleByUUID)dlsym(h, "nvmlDeviceGetHandleByUUID") : NULL;
    PFN_nvmlDeviceSetMemoryLimits_v1 set =
        h ? (PFN_nvmlDeviceSetMemoryLimits_v1)dlsym(h, "nvmlDeviceSetMemoryLimits_v1") : NULL;
    PFN_nvmlDeviceGetMemoryLimits_v1 get =
        h ? (PFN_nvmlDeviceGetMemoryLimits_v1)dlsym(h, "nvmlDeviceGetMemoryLimits_v1") : NULL;
    nvmlDevice_t dev;
    if (!init || !by_uuid || init() != NVML_SUCCESS || by_uuid(argv[2], &dev) != NVML_SUCCESS) {
        printf("rc=nodevice\n");
        return 1;
    }
    if (!strcmp(argv[1], "get")) {
        nvmlGetMemoryLimits_v1_t g = {argv[3], 0, 0, 0};
        if (!get) {
            printf("rc=absent\n");
            return 0;
        }
        nvmlReturn_t r = get(dev, &g);
        printf("rc=%d soft=%llu hard=%llu used=%llu\n", (int)r, g.softLimit, g.hardLimit, g.currentUsed);
        return 0;
    }
    nvmlSetMemoryLimits_v1_t s = {argv[3], strtoull(argv[4], NULL, 10),
                                  !strcmp(argv[5], "max") ? NVML_DEVICE_MEMORY_LIMIT_MAX : strtoull(argv[5], NULL, 10)};
    if (!set) {
        printf("rc=absent\n");
        return 0;
    }
    printf("rc=%d\n", (int)set(dev, &s));
    return 0;
}
