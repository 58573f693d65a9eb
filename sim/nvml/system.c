/* System-wide queries: driver, NVML and CUDA versions. The simulated GPU
 * poses as an r580 driver with CUDA 13.0, the versions the simulated
 * libcuda.so.1 reports through cuDriverGetVersion. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "nvml_sim.h"

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length)
{
    nvmlReturn_t r = nvml_sim_check_init();
    return r != NVML_SUCCESS ? r : nvml_sim_copy_string(version, length, NVML_SIM_DRIVER_VERSION);
}

/* "<NVML API major>.<driver version>", the form real NVML reports. */
nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned int length)
{
    nvmlReturn_t r = nvml_sim_check_init();
    return r != NVML_SUCCESS ? r
                             : nvml_sim_copy_string(version, length,
                                                    NVML_API_VERSION_STR "." NVML_SIM_DRIVER_VERSION);
}

/* NVIDIA answers this one without nvmlInit too (it asks libcuda, not the
 * GPUs), so no init check here. */
static nvmlReturn_t cuda_version(int *v)
{
    if (v == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    *v = NVML_SIM_CUDA_VERSION;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *cudaDriverVersion) { return cuda_version(cudaDriverVersion); }
nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *cudaDriverVersion) { return cuda_version(cudaDriverVersion); }

/* The process's command (argv[0], as nvidia-smi shows it), cropped to
 * `length` like NVIDIA's; NVML_ERROR_NOT_FOUND for a pid that does not
 * exist. */
nvmlReturn_t nvmlSystemGetProcessName(unsigned int pid, char *name, unsigned int length)
{
    nvmlReturn_t r = nvml_sim_check_init();
    if (r != NVML_SUCCESS)
        return r;
    if (name == NULL || length == 0)
        return NVML_ERROR_INVALID_ARGUMENT;
    char path[64], buf[256];
    size_t n = 0;
    snprintf(path, sizeof path, "/proc/%u/cmdline", pid);
    FILE *f = fopen(path, "re");
    if (f) {
        n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
    }
    buf[n] = '\0'; /* argv[0] ends at its NUL */
    if (buf[0] == '\0') {
        /* Kernel threads and zombies have no cmdline: fall back to comm. */
        snprintf(path, sizeof path, "/proc/%u/comm", pid);
        f = fopen(path, "re");
        if (f == NULL)
            return NVML_ERROR_NOT_FOUND;
        n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
    }
    snprintf(name, length, "%s", buf);
    return NVML_SUCCESS;
}
