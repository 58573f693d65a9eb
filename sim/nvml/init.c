/* nvmlInit / nvmlShutdown and the state every other entry point checks.
 *
 * Like NVIDIA's NVML, initialisation is reference-counted: each successful
 * nvmlInit* must be paired with one nvmlShutdown, and the library is usable
 * while the count is above zero. A shutdown with the count at zero answers
 * NVML_ERROR_UNINITIALIZED (what pynvml users see on a double shutdown). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "nvml_sim.h"

static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int init_refs;
static unsigned int device_count;   /* GPUs */
static unsigned int entry_count;    /* GPUs, then MIG devices (handles too) */
static struct nvmlDevice_st devices[SIM_MAX_DEVICES];

/* The device list is taken once, at the first successful init, as the real
 * library enumerates GPUs then; the simulated devices never change while a
 * state directory lives. */
static nvmlReturn_t init_with_flags(unsigned int flags)
{
    pthread_mutex_lock(&init_lock);
    if (atomic_load(&init_refs) == 0) {
        int n = 0, entries = 0;
        if (sim_state_init() == 0) {
            n = sim_device_count();
            entries = sim_entry_count();
        }
        else if (!(flags & NVML_INIT_FLAG_NO_GPUS)) {
            /* No usable state: the closest real situation is a machine
             * whose kernel driver is not loaded. */
            pthread_mutex_unlock(&init_lock);
            return NVML_ERROR_DRIVER_NOT_LOADED;
        }
        if (n < 0)
            n = 0;
        if (n > SIM_MAX_DEVICES)
            n = SIM_MAX_DEVICES;
        if (entries < n)
            entries = n;
        if (entries > SIM_MAX_DEVICES)
            entries = SIM_MAX_DEVICES;
        for (int i = 0; i < entries; i++)
            devices[i].index = i;
        device_count = (unsigned int)n;
        entry_count = (unsigned int)entries;
    }
    atomic_fetch_add(&init_refs, 1);
    pthread_mutex_unlock(&init_lock);
    return NVML_SUCCESS;
}

/* nvmlInit (v1) differs from _v2 only on real machines with a GPU it cannot
 * attach (v1 fails, v2 skips it); simulated devices are always attachable. */
nvmlReturn_t nvmlInit(void) { return init_with_flags(0); }
nvmlReturn_t nvmlInit_v2(void) { return init_with_flags(0); }
nvmlReturn_t nvmlInitWithFlags(unsigned int flags) { return init_with_flags(flags); }

nvmlReturn_t nvmlShutdown(void)
{
    nvmlReturn_t ret = NVML_SUCCESS;
    pthread_mutex_lock(&init_lock);
    if (atomic_load(&init_refs) == 0)
        ret = NVML_ERROR_UNINITIALIZED;
    else
        atomic_fetch_sub(&init_refs, 1);
    pthread_mutex_unlock(&init_lock);
    return ret;
}

nvmlReturn_t nvml_sim_check_init(void)
{
    return atomic_load(&init_refs) > 0 ? NVML_SUCCESS : NVML_ERROR_UNINITIALIZED;
}

unsigned int nvml_sim_device_count(void) { return device_count; }

nvmlDevice_t nvml_sim_handle(unsigned int i) { return &devices[i]; }

nvmlReturn_t nvml_sim_device_index(nvmlDevice_t device, int *index)
{
    if (nvml_sim_check_init() != NVML_SUCCESS)
        return NVML_ERROR_UNINITIALIZED;
    /* Compare addresses as integers: a foreign pointer is not an element of
     * devices[], and relational operators on it would be undefined. */
    uintptr_t p = (uintptr_t)device, base = (uintptr_t)devices;
    if (device == NULL || p < base || (p - base) % sizeof devices[0] != 0 ||
        (p - base) / sizeof devices[0] >= entry_count)
        return NVML_ERROR_INVALID_ARGUMENT;
    *index = (int)((p - base) / sizeof devices[0]);
    return NVML_SUCCESS;
}

/* A GPU fallen off the bus, on demand: the file lost-<index> in the state
 * directory (docs/simulated-gpu.md). Looked at on every device query, so a
 * test can take a GPU away from a running process and give it back. */
int nvml_sim_lost(int index)
{
    char path[4200];
    const char *dir = sim_state_dir();
    if (!dir)
        return 0;
    snprintf(path, sizeof path, "%s/lost-%d", dir, index);
    return access(path, F_OK) == 0;
}

nvmlReturn_t nvml_sim_lookup(nvmlDevice_t device, const struct sim_device_info **info, int *index)
{
    int i;
    nvmlReturn_t r = nvml_sim_device_index(device, &i);
    if (r != NVML_SUCCESS)
        return r;
    *info = sim_device(i);
    if (*info == NULL || nvml_sim_lost(i))
        return NVML_ERROR_GPU_IS_LOST;
    if (index)
        *index = i;
    return NVML_SUCCESS;
}

nvmlReturn_t nvml_sim_copy_string(char *buf, unsigned int length, const char *s)
{
    if (buf == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    size_t n = strlen(s);
    if ((size_t)length < n + 1)
        return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(buf, s, n + 1);
    return NVML_SUCCESS;
}
