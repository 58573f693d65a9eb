/* System-wide queries: driver, NVML and CUDA versions. The driver version is
 * settable (GPUMEM_SIM_DRIVER_VERSION, default NVML_SIM_DRIVER_VERSION); the
 * CUDA version is the one the simulated libcuda.so.1 reports through
 * cuDriverGetVersion (13.0). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nvml_sim.h"

/* Digits and dots, starting and ending with a digit, no two dots in a row. */
static int valid_version(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n > 31 || v[0] == '.' || v[n - 1] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] == '.' ? v[i + 1] == '.' : (v[i] < '0' || v[i] > '9'))
            return 0;
    }
    return 1;
}

const char *nvml_sim_driver_version(void)
{
    const char *v = getenv("GPUMEM_SIM_DRIVER_VERSION");
    if (v == NULL || v[0] == '\0')
        return NVML_SIM_DRIVER_VERSION;
    if (!valid_version(v)) {
        static int warned;
        if (!warned) {
            warned = 1;
            fprintf(stderr, "gpumem sim: GPUMEM_SIM_DRIVER_VERSION='%s' is not a version like 550.163.01; "
                            "reporting %s\n", v, NVML_SIM_DRIVER_VERSION);
        }
        return NVML_SIM_DRIVER_VERSION;
    }
    return v;
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length)
{
    nvmlReturn_t r = nvml_sim_check_init();
    return r != NVML_SUCCESS ? r : nvml_sim_copy_string(version, length, nvml_sim_driver_version());
}

/* "<NVML API major>.<driver version>", the form real NVML reports: 12 up to
 * the r57x drivers (CUDA 12), 13 from r580 (CUDA 13). */
nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned int length)
{
    nvmlReturn_t r = nvml_sim_check_init();
    if (r != NVML_SUCCESS)
        return r;
    const char *drv = nvml_sim_driver_version();
    char buf[48];
    snprintf(buf, sizeof buf, "%d.%s", atoi(drv) >= 580 ? 13 : 12, drv);
    return nvml_sim_copy_string(version, length, buf);
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
    return r != NVML_SUCCESS ? r : nvml_sim_process_name(pid, name, length);
}

nvmlReturn_t nvml_sim_process_name(unsigned int pid, char *name, unsigned int length)
{
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
