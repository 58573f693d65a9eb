/* NVML, as nvidia-smi, pynvml and DCGM see it inside a group: the device's
 * memory is the group's limit, and the process list is the group's own
 * processes. Devices are matched by UUID, like everything else. */
#include "account.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

int shim_gd_for_nvml_device(nvmlDevice_t dev)
{
    char uuid[96];
    if (!real_nvml.nvmlDeviceGetUUID || real_nvml.nvmlDeviceGetUUID(dev, uuid, sizeof uuid) != NVML_SUCCESS)
        return -1;
    for (char *c = uuid; *c; c++)
        if (*c >= 'A' && *c <= 'F')
            *c = (char)(*c + 32);
    return gm_usage_device(g.usage, uuid);
}

static int nvml_gd(nvmlDevice_t dev)
{
    if (shim_mode() != SHIM_ENFORCE)
        return -1;
    return shim_gd_for_nvml_device(dev);
}

/* Rewrites (total, free) of `dev` to the group's view; 0 when there is one. */
static int group_view(nvmlDevice_t dev, unsigned long long *total, unsigned long long *free)
{
    int gd = nvml_gd(dev);
    if (gd < 0)
        return -1;
    uint64_t f = *free, t = *total;
    shim_view(gd, &f, &t);
    *total = t;
    *free = f;
    return 0;
}

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t dev, nvmlMemory_t *mem)
{
    if (shim_resolve_nvml() < 0 || !real_nvml.nvmlDeviceGetMemoryInfo)
        return NVML_ERROR_UNINITIALIZED;
    nvmlReturn_t r = ((PFN_nvmlDeviceGetMemoryInfo)real_nvml.nvmlDeviceGetMemoryInfo)(dev, mem);
    if (r == NVML_SUCCESS && group_view(dev, &mem->total, &mem->free) == 0)
        mem->used = mem->total - mem->free;
    return r;
}

/* v2 reports the driver's reserved memory apart: used excludes it. */
EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t dev, nvmlMemory_v2_t *mem)
{
    if (shim_resolve_nvml() < 0 || !real_nvml.nvmlDeviceGetMemoryInfo_v2)
        return NVML_ERROR_FUNCTION_NOT_FOUND;
    nvmlReturn_t r = ((PFN_nvmlDeviceGetMemoryInfo_v2)real_nvml.nvmlDeviceGetMemoryInfo_v2)(dev, mem);
    if (r == NVML_SUCCESS && group_view(dev, &mem->total, &mem->free) == 0) {
        unsigned long long taken = mem->total - mem->free;
        mem->used = taken > mem->reserved ? taken - mem->reserved : 0;
    }
    return r;
}

static int in_group(unsigned pid)
{
    uint32_t hw = atomic_load(&g.usage->slots_hw);
    for (uint32_t i = 0; i < hw; i++) {
        const struct gm_proc_slot *s = &g.usage->slot[i];
        int32_t p = atomic_load(&s->pid);
        if (p && ((unsigned)p == pid || (unsigned)s->host_pid == pid))
            return 1;
    }
    return 0;
}

/* Keeps only the group's processes, in place; *count becomes how many. */
#define FILTER(infos, count)                                  \
    do {                                                      \
        unsigned k_ = 0;                                      \
        for (unsigned i_ = 0; i_ < *(count); i_++)            \
            if (in_group((infos)[i_].pid))                    \
                (infos)[k_++] = (infos)[i_];                  \
        *(count) = k_;                                        \
    } while (0)

/* With a caller buffer too small for the whole list, NVML answers
 * INSUFFICIENT_SIZE with the full count; the group's share may still fit,
 * so ask again into a local buffer first. */
#define PROC_HOOK(sym, T)                                                               \
    EXPORT nvmlReturn_t sym(nvmlDevice_t dev, unsigned int *count, T *infos)            \
    {                                                                                   \
        if (shim_resolve_nvml() < 0 || !real_nvml.sym)                                  \
            return NVML_ERROR_FUNCTION_NOT_FOUND;                                       \
        PFN_##sym fn = (PFN_##sym)real_nvml.sym;                                        \
        if (nvml_gd(dev) < 0 || !count)                                                 \
            return fn(dev, count, infos);                                               \
        T local[256];                                                                   \
        unsigned n = 256;                                                               \
        nvmlReturn_t r = fn(dev, &n, local);                                            \
        if (r != NVML_SUCCESS)                                                          \
            return r == NVML_ERROR_INSUFFICIENT_SIZE ? fn(dev, count, infos) : r;       \
        FILTER(local, &n);                                                              \
        if (n > *count || (n && !infos)) {                                              \
            *count = n;                                                                 \
            return NVML_ERROR_INSUFFICIENT_SIZE;                                        \
        }                                                                               \
        memcpy(infos, local, n * sizeof *local);                                        \
        *count = n;                                                                     \
        return NVML_SUCCESS;                                                            \
    }

PROC_HOOK(nvmlDeviceGetComputeRunningProcesses, nvmlProcessInfo_v1_t)
PROC_HOOK(nvmlDeviceGetComputeRunningProcesses_v2, nvmlProcessInfo_v2_t)
PROC_HOOK(nvmlDeviceGetComputeRunningProcesses_v3, nvmlProcessInfo_t)

/* nvidia-smi (550) takes its process lists not from the entry points above
 * but from a private table NVML hands out through nvmlInternalGetExportTable
 * (sim/nvml/export_table.c describes what is known of it): slots 213-215,
 * each called as (device, unsigned int *count, entries of 4128 bytes with the
 * pid in the first unsigned int). Without this hook a group's nvidia-smi
 * lists every process on the GPU. In a group, the table with that id is
 * handed out as a copy whose three slots filter like PROC_HOOK; every other
 * slot is NVIDIA's own, and other tables pass through unchanged. */
#define SMI_ENTRY_SIZE 4128u
#define SMI_MAX_SLOTS  1024u /* NVIDIA's 550 table has 250 slots */
typedef nvmlReturn_t (*smi_list_fn)(nvmlDevice_t, unsigned int *, void *);
static const unsigned char smi_table_id[16] = { 0xc4, 0xfe, 0x3e, 0x6c, 0xc9, 0x8f, 0x6c, 0x4e,
                                                0xa3, 0x27, 0xee, 0x69, 0x6e, 0x12, 0xf7, 0xc4 };
static smi_list_fn smi_real[3]; /* slots 213, 214, 215 */


/* The group's entries of the full list, copied into `infos`. */
static nvmlReturn_t smi_filtered(smi_list_fn fn, nvmlDevice_t dev, unsigned int *count, void *infos)
{
    if (!fn)
        return NVML_ERROR_NOT_SUPPORTED;
    if (nvml_gd(dev) < 0 || !count)
        return fn(dev, count, infos);
    unsigned n = 64;
    unsigned char *all = NULL;
    nvmlReturn_t r = NVML_ERROR_INSUFFICIENT_SIZE;
    /* The list may grow between asking its size and reading it. */
    for (int tries = 0; tries < 4 && r == NVML_ERROR_INSUFFICIENT_SIZE; tries++) {
        free(all);
        n = n < 64 ? 64 : n + 16;
        all = malloc((size_t)n * SMI_ENTRY_SIZE);
        if (!all)
            return NVML_ERROR_MEMORY;
        r = fn(dev, &n, all);
    }
    if (r != NVML_SUCCESS) {
        free(all);
        return r;
    }
    unsigned k = 0;
    for (unsigned i = 0; i < n; i++) {
        unsigned pid;
        memcpy(&pid, all + (size_t)i * SMI_ENTRY_SIZE, sizeof pid);
        if (in_group(pid)) {
            if (k != i)
                memmove(all + (size_t)k * SMI_ENTRY_SIZE, all + (size_t)i * SMI_ENTRY_SIZE, SMI_ENTRY_SIZE);
            k++;
        }
    }
    if (k > *count || (k && !infos)) {
        free(all);
        *count = k;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    if (k)
        memcpy(infos, all, (size_t)k * SMI_ENTRY_SIZE);
    free(all);
    *count = k;
    return NVML_SUCCESS;
}

static nvmlReturn_t smi_slot213(nvmlDevice_t dev, unsigned int *count, void *infos)
{
    return smi_filtered(smi_real[0], dev, count, infos);
}
static nvmlReturn_t smi_slot214(nvmlDevice_t dev, unsigned int *count, void *infos)
{
    return smi_filtered(smi_real[1], dev, count, infos);
}
static nvmlReturn_t smi_slot215(nvmlDevice_t dev, unsigned int *count, void *infos)
{
    return smi_filtered(smi_real[2], dev, count, infos);
}

/* A table is 8-byte words: its size in bytes, then function pointers. */
static uint64_t smi_copy[SMI_MAX_SLOTS];
static pthread_mutex_t smi_lock = PTHREAD_MUTEX_INITIALIZER;
static const void *smi_copy_of; /* the real table smi_copy was made from */

static const void *smi_group_table(const void *real_table)
{
    pthread_mutex_lock(&smi_lock);
    if (smi_copy_of != real_table) {
        uint64_t size;
        memcpy(&size, real_table, sizeof size);
        size_t words = size / 8 < SMI_MAX_SLOTS ? (size_t)(size / 8) : SMI_MAX_SLOTS;
        memset(smi_copy, 0, sizeof smi_copy);
        memcpy(smi_copy, real_table, words * 8);
        smi_copy[0] = (uint64_t)words * 8;
        smi_list_fn mine[3] = { smi_slot213, smi_slot214, smi_slot215 };
        for (int i = 0; i < 3; i++) {
            size_t w = 213 + (size_t)i;
            smi_real[i] = NULL;
            if (w < words && smi_copy[w]) {
                memcpy(&smi_real[i], &smi_copy[w], sizeof smi_real[i]);
                memcpy(&smi_copy[w], &mine[i], sizeof mine[i]);
            }
        }
        smi_copy_of = real_table;
    }
    pthread_mutex_unlock(&smi_lock);
    return smi_copy;
}

EXPORT nvmlReturn_t nvmlInternalGetExportTable(const void **table, const unsigned char *id)
{
    if (shim_resolve_nvml() < 0 || !real_nvml.nvmlInternalGetExportTable)
        return NVML_ERROR_FUNCTION_NOT_FOUND;
    nvmlReturn_t r = ((PFN_nvmlInternalGetExportTable)real_nvml.nvmlInternalGetExportTable)(table, id);
    if (r == NVML_SUCCESS && table && *table && id && shim_mode() == SHIM_ENFORCE &&
        memcmp(id, smi_table_id, sizeof smi_table_id) == 0)
        *table = smi_group_table(*table);
    return r;
}
