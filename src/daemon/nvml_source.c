/* The device's own truth, from NVML: memory per device and what each
 * process holds there. NVML is dlopen'ed (the simulated library with
 * --sim), so the daemon runs, and serves group metrics, on a machine
 * without a driver. */
#include "daemon.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "gpumem/nvml_load.h"

static struct {
    int ok;
    struct gm_nvml n; /* n.name optional: the model name label */
    PFN_nvmlDeviceGetComputeRunningProcesses_v3 procs_v3;
    PFN_nvmlDeviceGetComputeRunningProcesses procs_v1;
    /* optional: MIG devices of GPUs in MIG mode */
    PFN_nvmlDeviceGetMaxMigDeviceCount mig_max;
    PFN_nvmlDeviceGetMigDeviceHandleByIndex mig_by_index;
    PFN_nvmlDeviceGetGpuInstanceId gi;
    PFN_nvmlDeviceGetComputeInstanceId ci;
    /* Also listed (the backstop must see every process on the device):
     * graphics contexts, and MPS clients, whose memory the MPS server's
     * context holds on their behalf. Same entry layout as _v3. */
    PFN_nvmlDeviceGetComputeRunningProcesses_v3 graphics_v3, mps_v3;
} nv;

int dm_nvml_open(const char *sim_dir, char *err, size_t errlen)
{
    char path[4096];
    const char *lib = NULL;
    if (sim_dir) {
        snprintf(path, sizeof path, "%s/libnvidia-ml.so.1", sim_dir);
        lib = path;
    }
    if (gm_nvml_load(lib, &nv.n, err, errlen) < 0)
        return -1;
    void *h = nv.n.lib;
    nv.procs_v3 = (PFN_nvmlDeviceGetComputeRunningProcesses_v3)dlsym(h, "nvmlDeviceGetComputeRunningProcesses_v3");
    if (!nv.procs_v3) /* _v2 has the same entry layout */
        nv.procs_v3 = (PFN_nvmlDeviceGetComputeRunningProcesses_v3)dlsym(h, "nvmlDeviceGetComputeRunningProcesses_v2");
    nv.procs_v1 = (PFN_nvmlDeviceGetComputeRunningProcesses)dlsym(h, "nvmlDeviceGetComputeRunningProcesses");
    nv.mig_max = (PFN_nvmlDeviceGetMaxMigDeviceCount)dlsym(h, "nvmlDeviceGetMaxMigDeviceCount");
    nv.mig_by_index = (PFN_nvmlDeviceGetMigDeviceHandleByIndex)dlsym(h, "nvmlDeviceGetMigDeviceHandleByIndex");
    nv.gi = (PFN_nvmlDeviceGetGpuInstanceId)dlsym(h, "nvmlDeviceGetGpuInstanceId");
    nv.ci = (PFN_nvmlDeviceGetComputeInstanceId)dlsym(h, "nvmlDeviceGetComputeInstanceId");
    nv.graphics_v3 = (PFN_nvmlDeviceGetComputeRunningProcesses_v3)dlsym(h, "nvmlDeviceGetGraphicsRunningProcesses_v3");
    nv.mps_v3 = (PFN_nvmlDeviceGetComputeRunningProcesses_v3)dlsym(h, "nvmlDeviceGetMPSComputeRunningProcesses_v3");
    nv.ok = 1;
    return 0;
}

int dm_nvml_available(void) { return nv.ok; }

static int by_pid(const void *a, const void *b)
{
    unsigned int x = ((const struct dm_proc *)a)->pid, y = ((const struct dm_proc *)b)->pid;
    return x < y ? -1 : x > y;
}

/* One of the _v3 lists (graphics, MPS) appended to d->procs: NVML's count
 * protocol, as read_procs. A process in two lists is merged afterwards. */
static void add_list(nvmlDevice_t h, PFN_nvmlDeviceGetComputeRunningProcesses_v3 fn, struct dm_device *d)
{
    unsigned int n = 0;
    if (!fn || fn(h, &n, NULL) != NVML_ERROR_INSUFFICIENT_SIZE || n == 0)
        return;
    for (int tries = 0; tries < 4; tries++) {
        unsigned int room = n + 16;
        nvmlProcessInfo_t *in = calloc(room, sizeof *in);
        struct dm_proc *out = in ? realloc(d->procs, (d->nprocs + room) * sizeof *out) : NULL;
        if (!out) {
            free(in);
            return;
        }
        d->procs = out;
        n = room;
        nvmlReturn_t r = fn(h, &n, in);
        if (r == NVML_SUCCESS)
            for (unsigned int i = 0; i < n; i++)
                d->procs[d->nprocs++] = (struct dm_proc){in[i].pid, in[i].usedGpuMemory};
        free(in);
        if (r != NVML_ERROR_INSUFFICIENT_SIZE)
            return;
    }
}

/* Sorted by pid, a pid once: a process with a compute and a graphics
 * context is one process; NVML reports its memory in each list. */
static void merge_procs(struct dm_device *d)
{
    qsort(d->procs, d->nprocs, sizeof *d->procs, by_pid);
    unsigned int w = 0;
    for (unsigned int i = 0; i < d->nprocs; i++) {
        if (w && d->procs[w - 1].pid == d->procs[i].pid) {
            unsigned long long *a = &d->procs[w - 1].used, b = d->procs[i].used;
            if (*a == ULLONG_MAX || (b != ULLONG_MAX && b > *a)) /* a known figure over "not available" */
                *a = b;
            continue;
        }
        d->procs[w++] = d->procs[i];
    }
    d->nprocs = w;
}

/* The compute process list, with NVML's count protocol (ask, then retry if
 * processes started in between), then the graphics and MPS ones. */
static void read_procs(nvmlDevice_t h, struct dm_device *d)
{
    unsigned int room = 64;
    for (int tries = 0; tries < 4; tries++) {
        unsigned int n = room;
        nvmlReturn_t r = NVML_ERROR_NOT_SUPPORTED;
        struct dm_proc *out = calloc(room ? room : 1, sizeof *out);
        if (!out)
            return;
        if (nv.procs_v3) {
            nvmlProcessInfo_t *in = calloc(room ? room : 1, sizeof *in);
            if (in && (r = nv.procs_v3(h, &n, in)) == NVML_SUCCESS)
                for (unsigned int i = 0; i < n; i++)
                    out[i] = (struct dm_proc){in[i].pid, in[i].usedGpuMemory};
            free(in);
        } else if (nv.procs_v1) {
            nvmlProcessInfo_v1_t *in = calloc(room ? room : 1, sizeof *in);
            if (in && (r = nv.procs_v1(h, &n, in)) == NVML_SUCCESS)
                for (unsigned int i = 0; i < n; i++)
                    out[i] = (struct dm_proc){in[i].pid, in[i].usedGpuMemory};
            free(in);
        }
        if (r == NVML_SUCCESS) {
            d->procs = out;
            d->nprocs = n;
            d->procs_ok = 1;
            add_list(h, nv.graphics_v3, d);
            add_list(h, nv.mps_v3, d);
            merge_procs(d);
            return;
        }
        free(out);
        if (r != NVML_ERROR_INSUFFICIENT_SIZE)
            return;
        room = n + 16;
    }
}

/* One device's identity, memory and processes: 0, or -1 when NVML cannot
 * name it. */
static int read_device(nvmlDevice_t h, unsigned int index, struct dm_device *d)
{
    memset(d, 0, sizeof *d);
    if (nv.n.uuid(h, d->uuid, sizeof d->uuid) != NVML_SUCCESS)
        return -1;
    if (strncmp(d->uuid, "GPU-", 4) == 0 || strncmp(d->uuid, "MIG-", 4) == 0) /* groups key by lower-case UUID */
        for (char *c = d->uuid + 4; *c; c++)
            if (*c >= 'A' && *c <= 'F')
                *c = (char)(*c + 32);
    d->index = index;
    if (!nv.n.name || nv.n.name(h, d->name, sizeof d->name) != NVML_SUCCESS)
        d->name[0] = '\0';
    d->name[sizeof d->name - 1] = '\0';
    nvmlMemory_t m;
    if (nv.n.mem(h, &m) == NVML_SUCCESS) {
        d->mem_ok = 1;
        d->total = m.total;
        d->used = m.used;
        d->free = m.free;
    }
    read_procs(h, d);
    return 0;
}

/* The MIG devices of GPU `gpu` (handle h), after it in devs: their memory
 * is their GPU instance's, and groups on them are keyed by "MIG-" UUIDs. */
static int read_mig_devices(nvmlDevice_t h, const struct dm_device *gpu, struct dm_device *devs, int room)
{
    unsigned int max = 0;
    int n = 0;
    if (!nv.mig_max || !nv.mig_by_index || nv.mig_max(h, &max) != NVML_SUCCESS)
        return 0;
    for (unsigned int k = 0; k < max && n < room; k++) {
        nvmlDevice_t m;
        struct dm_device *d = &devs[n];
        if (nv.mig_by_index(h, k, &m) != NVML_SUCCESS || read_device(m, gpu->index, d) < 0)
            continue;
        d->mig = 1;
        d->mig_index = k;
        if (!nv.gi || nv.gi(m, &d->gi) != NVML_SUCCESS)
            d->gi = ~0u;
        if (!nv.ci || nv.ci(m, &d->ci) != NVML_SUCCESS)
            d->ci = ~0u;
        const char *p = strstr(d->name, " MIG ");
        snprintf(d->profile, sizeof d->profile, "%s", p ? p + 5 : "");
        memcpy(d->parent_uuid, gpu->uuid, sizeof d->parent_uuid);
        n++;
    }
    return n;
}

int dm_nvml_read(struct dm_device *devs, int max)
{
    unsigned int count = 0;
    if (!nv.ok || nv.n.count(&count) != NVML_SUCCESS)
        return 0;
    int n = 0;
    for (unsigned int i = 0; i < count && n < max; i++) {
        nvmlDevice_t h;
        if (nv.n.by_index(i, &h) != NVML_SUCCESS || read_device(h, i, &devs[n]) < 0)
            continue;
        n++;
        n += read_mig_devices(h, &devs[n - 1], &devs[n], max - n);
    }
    return n;
}

void dm_nvml_release(struct dm_device *devs, int n)
{
    for (int i = 0; i < n; i++) {
        free(devs[i].procs);
        devs[i].procs = NULL;
        devs[i].nprocs = 0;
    }
}

long long dm_proc_used(const struct dm_device *d, unsigned int pid)
{
    struct dm_proc key = {pid, 0};
    const struct dm_proc *p = d->procs ? bsearch(&key, d->procs, d->nprocs, sizeof key, by_pid) : NULL;
    return p ? (long long)p->used : -1;
}
