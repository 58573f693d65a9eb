/* gm_nvml_mig_info: see include/gpumem/nvml_mig.h. */
#include "gpumem/nvml_mig.h"

#include <ctype.h>
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "gpumem/nvml.h"

#define MIG_CACHE 32

static struct {
    char uuid[GM_UUID_LEN];
    int ok;
    struct gm_mig_info info;
} cache[MIG_CACHE];
static int cached;

static int ask(const char *lib, const char *uuid, struct gm_mig_info *info)
{
    void *h = dlopen(lib ? lib : "libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return -1;
#define SYM(name) PFN_##name name##_p = (PFN_##name)dlsym(h, #name)
    SYM(nvmlInit_v2);
    SYM(nvmlDeviceGetHandleByUUID);
    SYM(nvmlDeviceIsMigDeviceHandle);
    SYM(nvmlDeviceGetDeviceHandleFromMigDeviceHandle);
    SYM(nvmlDeviceGetIndex);
    SYM(nvmlDeviceGetUUID);
    SYM(nvmlDeviceGetName);
    SYM(nvmlDeviceGetMaxMigDeviceCount);
    SYM(nvmlDeviceGetMigDeviceHandleByIndex);
    SYM(nvmlDeviceGetGpuInstanceId);
    SYM(nvmlDeviceGetComputeInstanceId);
#undef SYM
    nvmlDevice_t mig, gpu;
    unsigned is_mig = 0, idx = 0, max = 0;
    char name[96] = "";
    if (!nvmlInit_v2_p || !nvmlDeviceGetHandleByUUID_p || !nvmlDeviceIsMigDeviceHandle_p ||
        !nvmlDeviceGetDeviceHandleFromMigDeviceHandle_p || !nvmlDeviceGetIndex_p || !nvmlDeviceGetUUID_p ||
        !nvmlDeviceGetName_p || !nvmlDeviceGetMaxMigDeviceCount_p || !nvmlDeviceGetMigDeviceHandleByIndex_p ||
        !nvmlDeviceGetGpuInstanceId_p || !nvmlDeviceGetComputeInstanceId_p || nvmlInit_v2_p() != NVML_SUCCESS)
        return -1;
    if (nvmlDeviceGetHandleByUUID_p(uuid, &mig) != NVML_SUCCESS ||
        nvmlDeviceIsMigDeviceHandle_p(mig, &is_mig) != NVML_SUCCESS || !is_mig ||
        nvmlDeviceGetDeviceHandleFromMigDeviceHandle_p(mig, &gpu) != NVML_SUCCESS ||
        nvmlDeviceGetIndex_p(gpu, &idx) != NVML_SUCCESS ||
        nvmlDeviceGetUUID_p(gpu, info->parent_uuid, sizeof info->parent_uuid) != NVML_SUCCESS)
        return -1;
    for (char *c = info->parent_uuid + (strlen(info->parent_uuid) >= 4 ? 4 : 0); *c; c++) /* "GPU-" stays */
        *c = (char)tolower((unsigned char)*c);
    info->gpu = (int)idx;
    info->index = -1;
    if (nvmlDeviceGetMaxMigDeviceCount_p(gpu, &max) == NVML_SUCCESS)
        for (unsigned k = 0; k < max && info->index < 0; k++) {
            nvmlDevice_t m;
            if (nvmlDeviceGetMigDeviceHandleByIndex_p(gpu, k, &m) == NVML_SUCCESS && m == mig)
                info->index = (int)k;
        }
    if (nvmlDeviceGetGpuInstanceId_p(mig, &info->gi) != NVML_SUCCESS)
        info->gi = ~0u;
    if (nvmlDeviceGetComputeInstanceId_p(mig, &info->ci) != NVML_SUCCESS)
        info->ci = ~0u;
    nvmlDeviceGetName_p(mig, name, sizeof name);
    const char *p = strstr(name, " MIG ");
    snprintf(info->profile, sizeof info->profile, "%s", p ? p + 5 : "");
    return 0;
}

int gm_nvml_mig_info(const char *lib, const char *uuid, struct gm_mig_info *info)
{
    if (!uuid || strncasecmp(uuid, "MIG-", 4) != 0)
        return -1;
    for (int i = 0; i < cached; i++)
        if (strcasecmp(cache[i].uuid, uuid) == 0) {
            *info = cache[i].info;
            return cache[i].ok ? 0 : -1;
        }
    memset(info, 0, sizeof *info);
    int ok = ask(lib, uuid, info) == 0;
    if (cached < MIG_CACHE) {
        snprintf(cache[cached].uuid, sizeof cache[cached].uuid, "%s", uuid);
        cache[cached].ok = ok;
        cache[cached].info = *info;
        cached++;
    }
    return ok ? 0 : -1;
}
