/* What a real NVIDIA driver supports of the paths gpumem's MIG and
 * driver-limit code relies on, for tests/gpu/driver_paths.sh (on hardware;
 * on the simulated GPU it checks the emulation answers the same way). Only
 * NVML and libcuda, reached with dlopen/dlsym as tools do. One fact per
 * line, "record KEY VALUE", for docs/gpu-validation.md:
 *
 *   nvml                 driver version, NVML version, GPU count
 *   gpu I                MIG mode (rc, current, pending), max MIG devices,
 *                        then per MIG device its UUID, GI/CI ids, memory,
 *                        name and whether nvmlDeviceGetHandleByUUID finds it
 *   memory_limits        whether nvmlDeviceSetMemoryLimits_v1 / Get are
 *                        exported, and Get's answer for this process's own
 *                        cgroup on each GPU and MIG device (never Set unless
 *                        argv[1] is "set CGROUP BYTES": then Set, Get, clear)
 *   cuda                 with CUDA_VISIBLE_DEVICES as given: each device's
 *                        cuDeviceGetUuid and _v2 bytes, total memory, name */
#include "gpumem/cuda.h"
#include "gpumem/nvml.h"
#include "gpumem/nvml_memlimits.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SYM(h, name) PFN_##name name = (PFN_##name)dlsym(h, #name)

static char self_cgroup[PATH_MAX];

static void find_self_cgroup(void)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    char line[PATH_MAX];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "0::", 3)) {
            line[strcspn(line, "\n")] = 0;
            snprintf(self_cgroup, sizeof self_cgroup, "/sys/fs/cgroup%.4000s", line + 3);
        }
    if (f)
        fclose(f);
}

static void limits_get(PFN_nvmlDeviceGetMemoryLimits_v1 get, nvmlDevice_t d, const char *label, const char *cg)
{
    nvmlGetMemoryLimits_v1_t g = {cg, 0, 0, 0};
    nvmlReturn_t r = get(d, &g);
    printf("record memory_limits.get %s cgroup=%s rc=%d soft=%llu hard=%llu used=%llu\n", label, cg, (int)r,
           g.softLimit, g.hardLimit, g.currentUsed);
}

static int probe_nvml(int argc, char **argv)
{
    void *h = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        printf("record nvml absent %s\n", dlerror());
        return 1;
    }
    SYM(h, nvmlInit_v2);
    SYM(h, nvmlSystemGetDriverVersion);
    SYM(h, nvmlSystemGetNVMLVersion);
    SYM(h, nvmlDeviceGetCount_v2);
    SYM(h, nvmlDeviceGetHandleByIndex_v2);
    SYM(h, nvmlDeviceGetHandleByUUID);
    SYM(h, nvmlDeviceGetUUID);
    SYM(h, nvmlDeviceGetName);
    SYM(h, nvmlDeviceGetMemoryInfo);
    SYM(h, nvmlDeviceGetMigMode);
    SYM(h, nvmlDeviceGetMaxMigDeviceCount);
    SYM(h, nvmlDeviceGetMigDeviceHandleByIndex);
    SYM(h, nvmlDeviceIsMigDeviceHandle);
    SYM(h, nvmlDeviceGetDeviceHandleFromMigDeviceHandle);
    SYM(h, nvmlDeviceGetGpuInstanceId);
    SYM(h, nvmlDeviceGetComputeInstanceId);
    SYM(h, nvmlDeviceSetMemoryLimits_v1);
    SYM(h, nvmlDeviceGetMemoryLimits_v1);
    if (!nvmlInit_v2 || !nvmlDeviceGetCount_v2 || !nvmlDeviceGetHandleByIndex_v2 || !nvmlDeviceGetUUID ||
        nvmlInit_v2() != NVML_SUCCESS) {
        printf("record nvml init_failed\n");
        return 1;
    }
    char v[96] = "?", nv[96] = "?";
    unsigned n = 0;
    if (nvmlSystemGetDriverVersion)
        nvmlSystemGetDriverVersion(v, sizeof v);
    if (nvmlSystemGetNVMLVersion)
        nvmlSystemGetNVMLVersion(nv, sizeof nv);
    nvmlDeviceGetCount_v2(&n);
    printf("record nvml driver=%s nvml=%s gpus=%u\n", v, nv, n);
    printf("record memory_limits.exported set=%s get=%s\n", nvmlDeviceSetMemoryLimits_v1 ? "yes" : "no",
           nvmlDeviceGetMemoryLimits_v1 ? "yes" : "no");
    printf("record mig.exported mode=%s max=%s by_index=%s is_mig=%s parent=%s gi=%s ci=%s\n",
           nvmlDeviceGetMigMode ? "yes" : "no", nvmlDeviceGetMaxMigDeviceCount ? "yes" : "no",
           nvmlDeviceGetMigDeviceHandleByIndex ? "yes" : "no", nvmlDeviceIsMigDeviceHandle ? "yes" : "no",
           nvmlDeviceGetDeviceHandleFromMigDeviceHandle ? "yes" : "no", nvmlDeviceGetGpuInstanceId ? "yes" : "no",
           nvmlDeviceGetComputeInstanceId ? "yes" : "no");
    for (unsigned i = 0; i < n; i++) {
        nvmlDevice_t d;
        char uuid[96] = "", name[96] = "";
        if (nvmlDeviceGetHandleByIndex_v2(i, &d) != NVML_SUCCESS)
            continue;
        nvmlDeviceGetUUID(d, uuid, sizeof uuid);
        if (nvmlDeviceGetName)
            nvmlDeviceGetName(d, name, sizeof name);
        unsigned cur = 99, pend = 99, max = 0;
        int rm = nvmlDeviceGetMigMode ? (int)nvmlDeviceGetMigMode(d, &cur, &pend) : -1;
        int rx = nvmlDeviceGetMaxMigDeviceCount ? (int)nvmlDeviceGetMaxMigDeviceCount(d, &max) : -1;
        printf("record gpu %u uuid=%s name=\"%s\" mig_mode_rc=%d current=%u pending=%u max_mig_rc=%d max=%u\n", i,
               uuid, name, rm, cur, pend, rx, max);
        if (nvmlDeviceGetMemoryLimits_v1)
            limits_get(nvmlDeviceGetMemoryLimits_v1, d, uuid, self_cgroup);
        if (nvmlDeviceSetMemoryLimits_v1 && nvmlDeviceGetMemoryLimits_v1 && argc >= 4 && !strcmp(argv[1], "set") &&
            cur != NVML_DEVICE_MIG_ENABLE) {
            nvmlSetMemoryLimits_v1_t s = {argv[2], 0, strtoull(argv[3], NULL, 10)};
            printf("record memory_limits.set %s cgroup=%s hard=%llu rc=%d\n", uuid, argv[2], s.hardLimit,
                   (int)nvmlDeviceSetMemoryLimits_v1(d, &s));
            limits_get(nvmlDeviceGetMemoryLimits_v1, d, uuid, argv[2]);
            nvmlSetMemoryLimits_v1_t c = {argv[2], 0, NVML_DEVICE_MEMORY_LIMIT_MAX};
            printf("record memory_limits.clear %s rc=%d\n", uuid, (int)nvmlDeviceSetMemoryLimits_v1(d, &c));
            limits_get(nvmlDeviceGetMemoryLimits_v1, d, uuid, argv[2]);
        }
        for (unsigned k = 0; k < max && nvmlDeviceGetMigDeviceHandleByIndex; k++) {
            nvmlDevice_t m, parent = NULL, back = NULL;
            int r = (int)nvmlDeviceGetMigDeviceHandleByIndex(d, k, &m);
            if (r != NVML_SUCCESS) {
                printf("record mig %u.%u rc=%d\n", i, k, r);
                continue;
            }
            unsigned gi = 99, ci = 99, is = 9;
            nvmlMemory_t mem = {0, 0, 0};
            nvmlDeviceGetUUID(m, uuid, sizeof uuid);
            if (nvmlDeviceGetName)
                nvmlDeviceGetName(m, name, sizeof name);
            if (nvmlDeviceGetGpuInstanceId)
                nvmlDeviceGetGpuInstanceId(m, &gi);
            if (nvmlDeviceGetComputeInstanceId)
                nvmlDeviceGetComputeInstanceId(m, &ci);
            if (nvmlDeviceIsMigDeviceHandle)
                nvmlDeviceIsMigDeviceHandle(m, &is);
            if (nvmlDeviceGetMemoryInfo)
                nvmlDeviceGetMemoryInfo(m, &mem);
            if (nvmlDeviceGetDeviceHandleFromMigDeviceHandle)
                nvmlDeviceGetDeviceHandleFromMigDeviceHandle(m, &parent);
            int rb = nvmlDeviceGetHandleByUUID ? (int)nvmlDeviceGetHandleByUUID(uuid, &back) : -1;
            printf("record mig %u.%u uuid=%s name=\"%s\" gi=%u ci=%u is_mig=%u parent_ok=%d total=%llu "
                   "by_uuid_rc=%d same_handle=%d\n",
                   i, k, uuid, name, gi, ci, is, parent == d, mem.total, rb, back == m);
            if (nvmlDeviceGetMemoryLimits_v1)
                limits_get(nvmlDeviceGetMemoryLimits_v1, m, uuid, self_cgroup);
        }
    }
    return 0;
}

static void hex(const CUuuid *u, char *out)
{
    for (int i = 0; i < 16; i++)
        sprintf(out + 2 * i, "%02x", (unsigned char)u->bytes[i]);
}

static int probe_cuda(void)
{
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        printf("record cuda absent %s\n", dlerror());
        return 1;
    }
    CUresult (*init)(unsigned) = (CUresult(*)(unsigned))dlsym(h, "cuInit");
    CUresult (*count)(int *) = (CUresult(*)(int *))dlsym(h, "cuDeviceGetCount");
    CUresult (*get)(CUdevice *, int) = (CUresult(*)(CUdevice *, int))dlsym(h, "cuDeviceGet");
    CUresult (*uuid1)(CUuuid *, CUdevice) = (CUresult(*)(CUuuid *, CUdevice))dlsym(h, "cuDeviceGetUuid");
    CUresult (*uuid2)(CUuuid *, CUdevice) = (CUresult(*)(CUuuid *, CUdevice))dlsym(h, "cuDeviceGetUuid_v2");
    CUresult (*total)(size_t *, CUdevice) = (CUresult(*)(size_t *, CUdevice))dlsym(h, "cuDeviceTotalMem_v2");
    CUresult (*name)(char *, int, CUdevice) = (CUresult(*)(char *, int, CUdevice))dlsym(h, "cuDeviceGetName");
    if (!init || !count || !get || !uuid1 || !uuid2 || !total || !name) {
        printf("record cuda missing_symbols\n");
        return 1;
    }
    int n = 0, ri = (int)init(0), rc = (int)count(&n);
    const char *cvd = getenv("CUDA_VISIBLE_DEVICES");
    printf("record cuda visible=%s init_rc=%d count_rc=%d count=%d\n", cvd ? cvd : "(unset)", ri, rc, n);
    for (int i = 0; i < n; i++) {
        CUdevice d;
        CUuuid a, b;
        char ha[33] = "", hb[33] = "", nm[128] = "";
        size_t t = 0;
        get(&d, i);
        int r1 = (int)uuid1(&a, d), r2 = (int)uuid2(&b, d);
        if (!r1)
            hex(&a, ha);
        if (!r2)
            hex(&b, hb);
        total(&t, d);
        name(nm, sizeof nm, d);
        printf("record cuda %d uuid_v1=%s uuid_v2=%s total=%zu name=\"%s\"\n", i, ha, hb, t, nm);
    }
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    find_self_cgroup();
    if (argc >= 2 && !strcmp(argv[1], "cuda"))
        return probe_cuda();
    return probe_nvml(argc, argv);
}
