/* Helpers for gpumem's host-side programs (see include/gpumem/hostutil.h). */
#include "gpumem/hostutil.h"

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>

#include "gpumem/nvml.h"

int gm_mkdir_p(const char *dir)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return mkdir(tmp, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

const char *gm_nvml_index_uuid(const char *lib, unsigned index, char *buf, size_t len)
{
    /* Left loaded afterwards: unloading a driver library gains nothing. */
    void *h = dlopen(lib ? lib : "libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return NULL;
    PFN_nvmlInit_v2 init = (PFN_nvmlInit_v2)dlsym(h, "nvmlInit_v2");
    PFN_nvmlDeviceGetHandleByIndex_v2 by_index =
        (PFN_nvmlDeviceGetHandleByIndex_v2)dlsym(h, "nvmlDeviceGetHandleByIndex_v2");
    PFN_nvmlDeviceGetUUID get_uuid = (PFN_nvmlDeviceGetUUID)dlsym(h, "nvmlDeviceGetUUID");
    nvmlDevice_t dev;
    if (!init || !by_index || !get_uuid || init() != NVML_SUCCESS || by_index(index, &dev) != NVML_SUCCESS ||
        get_uuid(dev, buf, (unsigned)len) != NVML_SUCCESS)
        return NULL;
    for (char *c = buf + 4; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    return buf;
}
