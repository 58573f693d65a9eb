/* Waiting for memory instead of failing (oom_wait.c). */
#ifndef GPUMEM_SHIM_OOM_WAIT_H
#define GPUMEM_SHIM_OOM_WAIT_H

#include <stdint.h>

/* One allocation's wait: zero-initialised before its first attempt. */
struct shim_wait {
    uint64_t deadline_ns;   /* CLOCK_MONOTONIC; 0 until the first refusal */
    uint32_t nap_us;
    uint32_t pad;
};

/* After a refusal of `bytes` on group device gd (gpu_full: by the driver,
 * the GPU being full, which is reported to the daemon as pressure): 1 after
 * sleeping when the group waits (GPUMEM_OOM=wait) and its time is not up,
 * so the caller tries again; 0 when it should give the refusal. */
int shim_oom_wait(struct shim_wait *w, int gd, uint64_t bytes, int gpu_full)
    __attribute__((cold, noinline));
/* The allocation is done (succeeded, or refused for good). */
void shim_oom_wait_end(struct shim_wait *w) __attribute__((cold, noinline));
/* The driver refused an allocation of `bytes` on gd for want of memory. */
void shim_note_pressure(int gd, uint64_t bytes) __attribute__((cold, noinline));

#endif
