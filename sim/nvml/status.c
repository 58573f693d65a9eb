/* Device state nvidia-smi shows besides memory: plausible constants of an
 * idle datacenter GPU (persistence on, P0, 34 C, 70 W of a 700 W cap, ECC on
 * with no errors, default compute mode, no display, bare metal),
 * the architecture from the compute capability, PCIe 5 x16 from Hopper on
 * (4 x16 before). Nothing here changes with load: the simulated GPU runs no
 * kernels. What a real GPU would refuse is refused the same way: an unknown
 * sensor, clock or counter type is NVML_ERROR_INVALID_ARGUMENT. */
#include <stdlib.h>

#include "nvml_sim.h"

#define SIM_TEMPERATURE_C   34u
#define SIM_POWER_MW        70000u
#define SIM_POWER_LIMIT_MW  700000u
#define SIM_POWER_MIN_MW    200000u

static nvmlReturn_t check(nvmlDevice_t device, const void *out, const struct sim_device_info **d)
{
    const struct sim_device_info *info;
    nvmlReturn_t r = nvml_sim_lookup(device, &info, NULL);
    if (r != NVML_SUCCESS)
        return r;
    if (out == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (d)
        *d = info;
    return NVML_SUCCESS;
}

/* Answers `v` in *value for a valid device. */
static nvmlReturn_t constant(nvmlDevice_t device, unsigned int *value, unsigned int v)
{
    nvmlReturn_t r = check(device, value, NULL);
    if (r == NVML_SUCCESS)
        *value = v;
    return r;
}

/* An opaque event set that never delivers an event: the simulated GPU has
 * no Xid errors, clock changes or power events to report. */
nvmlReturn_t nvmlEventSetCreate(void **set)
{
    nvmlReturn_t r = nvml_sim_check_init();
    if (r != NVML_SUCCESS)
        return r;
    if (set == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    *set = malloc(1);
    return *set ? NVML_SUCCESS : NVML_ERROR_MEMORY;
}

nvmlReturn_t nvmlEventSetFree(void *set)
{
    nvmlReturn_t r = nvml_sim_check_init();
    if (r != NVML_SUCCESS)
        return r;
    if (set == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    free(set);
    return NVML_SUCCESS;
}

/* sensorType 0 is NVML_TEMPERATURE_GPU, the only sensor NVML defines. */
nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, unsigned int type, unsigned int *value)
{
    nvmlReturn_t r = check(device, value, NULL);
    if (r != NVML_SUCCESS)
        return r;
    if (type != 0)
        return NVML_ERROR_INVALID_ARGUMENT;
    *value = SIM_TEMPERATURE_C;
    return NVML_SUCCESS;
}

/* Milliwatts. */
nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *value)
{
    return constant(device, value, SIM_POWER_MW);
}
nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t device, unsigned int *value)
{
    return constant(device, value, SIM_POWER_LIMIT_MW);
}
nvmlReturn_t nvmlDeviceGetPowerManagementLimit(nvmlDevice_t device, unsigned int *value)
{
    return constant(device, value, SIM_POWER_LIMIT_MW);
}
nvmlReturn_t nvmlDeviceGetPowerManagementDefaultLimit(nvmlDevice_t device, unsigned int *value)
{
    return constant(device, value, SIM_POWER_LIMIT_MW);
}
nvmlReturn_t nvmlDeviceGetPowerManagementLimitConstraints(nvmlDevice_t device, unsigned int *minLimit,
                                                          unsigned int *maxLimit)
{
    nvmlReturn_t r = check(device, minLimit, NULL);
    if (r != NVML_SUCCESS)
        return r;
    if (maxLimit == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    *minLimit = SIM_POWER_MIN_MW;
    *maxLimit = SIM_POWER_LIMIT_MW;
    return NVML_SUCCESS;
}

/* NVML_FEATURE_ENABLED = 1, NVML_FEATURE_DISABLED = 0. */
nvmlReturn_t nvmlDeviceGetPowerManagementMode(nvmlDevice_t device, unsigned int *value)
{
    return constant(device, value, 1);
}
nvmlReturn_t nvmlDeviceGetPersistenceMode(nvmlDevice_t device, unsigned int *value)
{
    return constant(device, value, 1);
}
nvmlReturn_t nvmlDeviceGetDisplayMode(nvmlDevice_t device, unsigned int *value)
{
    return constant(device, value, 0);
}
nvmlReturn_t nvmlDeviceGetDisplayActive(nvmlDevice_t device, unsigned int *value)
{
    return constant(device, value, 0);
}

/* NVML_PSTATE_0: a GPU with a context stays in P0. */
nvmlReturn_t nvmlDeviceGetPerformanceState(nvmlDevice_t device, unsigned int *value)
{
    return constant(device, value, 0);
}
nvmlReturn_t nvmlDeviceGetPowerState(nvmlDevice_t device, unsigned int *value)
{
    return constant(device, value, 0);
}

/* NVML_COMPUTEMODE_DEFAULT. */
nvmlReturn_t nvmlDeviceGetComputeMode(nvmlDevice_t device, unsigned int *value)
{
    return constant(device, value, 0);
}

/* NVML_GPU_VIRTUALIZATION_MODE_NONE: bare metal. */
nvmlReturn_t nvmlDeviceGetVirtualizationMode(nvmlDevice_t device, unsigned int *value)
{
    return constant(device, value, 0);
}

nvmlReturn_t nvmlDeviceGetEccMode(nvmlDevice_t device, unsigned int *current, unsigned int *pending)
{
    nvmlReturn_t r = check(device, current, NULL);
    if (r != NVML_SUCCESS)
        return r;
    if (pending == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    *current = 1;
    *pending = 1;
    return NVML_SUCCESS;
}

/* errorType: corrected (0) or uncorrected (1); counterType: volatile (0) or
 * aggregate (1). Host memory makes no ECC errors. */
nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t device, unsigned int errorType, unsigned int counterType,
                                         unsigned long long *eccCounts)
{
    nvmlReturn_t r = check(device, eccCounts, NULL);
    if (r != NVML_SUCCESS)
        return r;
    if (errorType > 1 || counterType > 1)
        return NVML_ERROR_INVALID_ARGUMENT;
    *eccCounts = 0;
    return NVML_SUCCESS;
}

/* nvmlDeviceArchitecture_t from the compute capability. */
nvmlReturn_t nvmlDeviceGetArchitecture(nvmlDevice_t device, unsigned int *value)
{
    const struct sim_device_info *d;
    nvmlReturn_t r = check(device, value, &d);
    if (r != NVML_SUCCESS)
        return r;
    int cc = d->cc_major * 10 + d->cc_minor;
    *value = cc >= 100 ? 10u /* Blackwell */ : cc >= 90 ? 9u /* Hopper */ : cc >= 89 ? 8u /* Ada */
           : cc >= 80 ? 7u /* Ampere */ : cc >= 75 ? 6u /* Turing */ : cc >= 70 ? 5u /* Volta */ : 4u;
    return NVML_SUCCESS;
}

static unsigned int pcie_gen(const struct sim_device_info *d) { return d->cc_major >= 9 ? 5u : 4u; }

nvmlReturn_t nvmlDeviceGetCurrPcieLinkGeneration(nvmlDevice_t device, unsigned int *value)
{
    const struct sim_device_info *d;
    nvmlReturn_t r = check(device, value, &d);
    if (r == NVML_SUCCESS)
        *value = pcie_gen(d);
    return r;
}
nvmlReturn_t nvmlDeviceGetMaxPcieLinkGeneration(nvmlDevice_t device, unsigned int *value)
{
    return nvmlDeviceGetCurrPcieLinkGeneration(device, value);
}
nvmlReturn_t nvmlDeviceGetCurrPcieLinkWidth(nvmlDevice_t device, unsigned int *value)
{
    return constant(device, value, 16);
}
nvmlReturn_t nvmlDeviceGetMaxPcieLinkWidth(nvmlDevice_t device, unsigned int *value)
{
    return constant(device, value, 16);
}

/* MHz by nvmlClockType_t: graphics, SM, memory, video. Idle clocks now,
 * boost clocks at most. */
static nvmlReturn_t clock_mhz(nvmlDevice_t device, unsigned int type, unsigned int *value, int max)
{
    static const unsigned int idle[] = { 345, 345, 2619, 765 }, top[] = { 1980, 1980, 2619, 1755 };
    nvmlReturn_t r = check(device, value, NULL);
    if (r != NVML_SUCCESS)
        return r;
    if (type > 3)
        return NVML_ERROR_INVALID_ARGUMENT;
    *value = max ? top[type] : idle[type];
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t device, unsigned int type, unsigned int *value)
{
    return clock_mhz(device, type, value, 0);
}
nvmlReturn_t nvmlDeviceGetMaxClockInfo(nvmlDevice_t device, unsigned int type, unsigned int *value)
{
    return clock_mhz(device, type, value, 1);
}
