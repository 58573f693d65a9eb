/* cuInit, the driver version, and the environment switches of the simulated
 * driver (context overhead and fault injection, CUDA_VISIBLE_DEVICES), read
 * once at cuInit. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct sim_config sim_cfg = { .ctx_overhead = 300ULL << 20 };
_Atomic int sim_initialized;
static _Atomic long alloc_counter;
static pthread_once_t cfg_once = PTHREAD_ONCE_INIT, visible_once = PTHREAD_ONCE_INIT;

static void read_config(void)
{
    const char *v = getenv("GPUMEM_SIM_CTX_OVERHEAD");
    uint64_t bytes;
    if (v && *v) {
        if (sim_parse_size(v, &bytes) == 0) sim_cfg.ctx_overhead = bytes;
        else fprintf(stderr, "gpumem-sim: ignoring invalid GPUMEM_SIM_CTX_OVERHEAD \"%s\"\n", v);
    }
    if ((v = getenv("GPUMEM_SIM_FAIL_ALLOC_NTH")) && *v) sim_cfg.fail_alloc_nth = strtol(v, NULL, 10);
    if ((v = getenv("GPUMEM_SIM_FAIL_CTX")) && *v) sim_cfg.fail_ctx = atoi(v) != 0;
    if ((v = getenv("GPUMEM_SIM_ALLOC_DELAY_US")) && *v) sim_cfg.alloc_delay_us = (unsigned)strtoul(v, NULL, 10);
    if ((v = getenv("GPUMEM_SIM_POOL_GROWTH")) && *v) {
        if (sim_parse_size(v, &bytes) == 0) sim_cfg.pool_growth = bytes;
        else fprintf(stderr, "gpumem-sim: ignoring invalid GPUMEM_SIM_POOL_GROWTH \"%s\"\n", v);
    }
}

SIM_API CUresult cuInit(unsigned int flags)
{
    if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
    pthread_once(&cfg_once, read_config);
    if (sim_state_init() != 0) return CUDA_ERROR_NO_DEVICE;
    pthread_once(&visible_once, sim_visible_init);    /* CUDA_VISIBLE_DEVICES, once */
    if (sim_vdev_count() == 0) return CUDA_ERROR_NO_DEVICE;
    atomic_store(&sim_initialized, 1);
    return CUDA_SUCCESS;
}

SIM_API CUresult cuDriverGetVersion(int *driverVersion)
{
    if (!driverVersion) return CUDA_ERROR_INVALID_VALUE;
    *driverVersion = SIM_DRIVER_VERSION;     /* works before cuInit, like the real one */
    return CUDA_SUCCESS;
}

CUresult sim_check_init(void)
{
    return atomic_load_explicit(&sim_initialized, memory_order_acquire) ? CUDA_SUCCESS : CUDA_ERROR_NOT_INITIALIZED;
}

CUresult sim_check_device(CUdevice dev)
{
    CUresult r = sim_check_init();
    if (r) return r;
    return dev >= 0 && dev < sim_vdev_count() ? CUDA_SUCCESS : CUDA_ERROR_INVALID_DEVICE;
}

int sim_inject_alloc_failure(void)
{
    if (sim_cfg.alloc_delay_us) usleep(sim_cfg.alloc_delay_us);
    if (sim_cfg.fail_alloc_nth <= 0) return 0;
    return atomic_fetch_add(&alloc_counter, 1) + 1 == sim_cfg.fail_alloc_nth;
}
