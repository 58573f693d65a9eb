/* nvmlInternalGetExportTable: NVIDIA's private way into NVML, which
 * nvidia-smi asks before anything else, and without which it stops with
 * "Mismatch in versions between nvidia-smi and NVML".
 *
 * nvidia-smi (550) asks for one table, by a 16-byte id. A table starts with
 * its size in bytes, followed by function pointers; nvidia-smi calls a slot
 * only when the size covers it and the pointer is not NULL, and otherwise
 * prints N/A for what it wanted, so a short table with NULL slots is a
 * complete answer. Observed, by running NVIDIA's nvidia-smi 550.163.01 on the
 * simulated GPU with a table of logging functions (no NVIDIA code is used or
 * copied here):
 *   - slots 213, 214 and 215 are the running-process lists nvidia-smi shows
 *     (its default view, -q and --query-compute-apps take no other), each
 *     called as (device, unsigned int *count, entries): *count is the room
 *     in `entries` on entry (nvidia-smi passes 500 or 250), the number
 *     written on return; an error from any of the three makes it print no
 *     process at all. Processes of 213 are shown as compute ("C").
 *   - an entry is 4128 bytes: pid (unsigned int) at 0, used device memory in
 *     bytes (unsigned long long) at 8, GPU and compute instance ids
 *     (unsigned int, 0xFFFFFFFF outside MIG) at 16 and 20, 8 bytes at 24 we
 *     leave 0, and the process name (NUL-terminated) at 32.
 * Every other slot is NULL here. Other ids get NVML_ERROR_INVALID_ARGUMENT,
 * NVIDIA's answer for an id it does not know. */
#include <stddef.h>
#include <string.h>

#include "nvml_sim.h"

struct smi_process {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
    unsigned long long unknown;
    char name[4096];
};
_Static_assert(sizeof(struct smi_process) == 4128, "nvidia-smi reads 4128-byte process entries");
_Static_assert(offsetof(struct smi_process, name) == 32, "the process name is at 32");

#define SMI_TABLE_SLOTS 216 /* the size word and slots 1..215 */

static nvmlReturn_t smi_compute_processes(nvmlDevice_t device, unsigned int *count, struct smi_process *out)
{
    int dev;
    nvmlReturn_t r = nvml_sim_device_index(device, &dev);
    if (r != NVML_SUCCESS)
        return r;
    if (count == NULL || (*count > 0 && out == NULL))
        return NVML_ERROR_INVALID_ARGUMENT;
    struct sim_proc_usage procs[SIM_MAX_PROCS];
    int n = sim_device_processes(dev, procs, SIM_MAX_PROCS);
    if (n < 0)
        n = 0;
    if (n > SIM_MAX_PROCS)
        n = SIM_MAX_PROCS;
    if (*count < (unsigned int)n) {
        *count = (unsigned int)n;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    for (int i = 0; i < n; i++) {
        struct smi_process *p = &out[i];
        memset(p, 0, sizeof *p);
        p->pid = (unsigned int)procs[i].pid;
        p->usedGpuMemory = procs[i].used;
        p->gpuInstanceId = (unsigned int)NVML_VALUE_NOT_AVAILABLE;
        p->computeInstanceId = (unsigned int)NVML_VALUE_NOT_AVAILABLE;
        if (nvml_sim_process_name(p->pid, p->name, sizeof p->name) != NVML_SUCCESS)
            p->name[0] = '\0';
    }
    *count = (unsigned int)n;
    return NVML_SUCCESS;
}

/* The two other lists: nothing else runs on the simulated GPU. */
static nvmlReturn_t smi_no_processes(nvmlDevice_t device, unsigned int *count, struct smi_process *out)
{
    int dev;
    nvmlReturn_t r = nvml_sim_device_index(device, &dev);
    if (r != NVML_SUCCESS)
        return r;
    if (count == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    (void)out;
    *count = 0;
    return NVML_SUCCESS;
}

typedef nvmlReturn_t (*smi_list_fn)(nvmlDevice_t, unsigned int *, struct smi_process *);

static const struct {
    unsigned long long size;
    smi_list_fn slot[SMI_TABLE_SLOTS - 1]; /* slot[k - 1] is slot k */
} smi_table = {
    .size = SMI_TABLE_SLOTS * 8,
    .slot = { [213 - 1] = smi_compute_processes, [214 - 1] = smi_no_processes, [215 - 1] = smi_no_processes },
};
_Static_assert(sizeof smi_table == SMI_TABLE_SLOTS * 8, "a table is 8-byte words");

static const unsigned char smi_table_id[16] = { 0xc4, 0xfe, 0x3e, 0x6c, 0xc9, 0x8f, 0x6c, 0x4e,
                                                0xa3, 0x27, 0xee, 0x69, 0x6e, 0x12, 0xf7, 0xc4 };

nvmlReturn_t nvmlInternalGetExportTable(const void **table, const unsigned char *id)
{
    if (table == NULL || id == NULL || memcmp(id, smi_table_id, sizeof smi_table_id) != 0)
        return NVML_ERROR_INVALID_ARGUMENT;
    *table = &smi_table;
    return NVML_SUCCESS;
}
