/* Device memory as NVML reports it: the capacity of the simulated device and
 * the bytes every live process holds on it (allocations plus each context's
 * overhead, what the simulated libcuda charged), so NVML "used" always equals
 * CUDA's total - free for the same device.
 *
 * The simulated GPU reserves nothing for the driver or firmware: v2's
 * `reserved` is 0 and v1 and v2 report the same used bytes (on a real GPU v1
 * used = v2 reserved + v2 used). */
#include <stddef.h>

#include "nvml_sim.h"

struct mem_snapshot {
    unsigned long long total, used, free;
};

static nvmlReturn_t snapshot(nvmlDevice_t device, const void *out, struct mem_snapshot *m)
{
    const struct sim_device_info *d;
    int i;
    nvmlReturn_t r = nvml_sim_lookup(device, &d, &i);
    if (r != NVML_SUCCESS)
        return r;
    if (out == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    m->total = d->capacity;
    m->used = sim_device_used(i);
    /* Clamp: used never exceeds capacity in the simulator, but a report must
     * never show an underflowed free. */
    m->free = m->used < m->total ? m->total - m->used : 0;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)
{
    struct mem_snapshot m;
    nvmlReturn_t r = snapshot(device, memory, &m);
    if (r != NVML_SUCCESS)
        return r;
    memory->total = m.total;
    memory->free = m.free;
    memory->used = m.used;
    return NVML_SUCCESS;
}

/* The caller states the layout it passes in `version`; anything but
 * nvmlMemory_v2 is refused before a byte is written. */
nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory)
{
    struct mem_snapshot m;
    nvmlReturn_t r = snapshot(device, memory, &m);
    if (r != NVML_SUCCESS)
        return r;
    if (memory->version != nvmlMemory_v2)
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    memory->total = m.total;
    memory->reserved = 0;
    memory->free = m.free;
    memory->used = m.used;
    return NVML_SUCCESS;
}

/* BAR1 (the CPU-visible window on device memory): datacenter GPUs with a
 * resizable BAR map all of it, so the window is the capacity rounded up to a
 * power of two. Nothing maps device memory to the host here: used is 0. */
nvmlReturn_t nvmlDeviceGetBAR1MemoryInfo(nvmlDevice_t device, nvmlBAR1Memory_t *bar1Memory)
{
    struct mem_snapshot m;
    nvmlReturn_t r = snapshot(device, bar1Memory, &m);
    if (r != NVML_SUCCESS)
        return r;
    unsigned long long bar = 1;
    while (bar < m.total && bar < (1ULL << 62))
        bar <<= 1;
    bar1Memory->bar1Total = bar;
    bar1Memory->bar1Free = bar;
    bar1Memory->bar1Used = 0;
    return NVML_SUCCESS;
}
