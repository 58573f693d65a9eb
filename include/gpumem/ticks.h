/* A cheap clock for stamping allocations: one instruction on x86-64
 * (rdtsc) and AArch64 (cntvct_el0), so the shim can date every allocation
 * without a system call or even a vDSO call. Ticks only mean something on
 * the machine that read them; gm_ticks_per_ns() converts, calibrated
 * against CLOCK_MONOTONIC (src/common/ticks.c). The TSC is invariant and
 * shared by all cores on every x86-64 server CPU of the last 15 years, so a
 * reader in another process (gpumem inspect, the daemon) can age another
 * process's stamps. */
#ifndef GPUMEM_TICKS_H
#define GPUMEM_TICKS_H

#include <stdint.h>
#include <time.h>

static inline uint64_t gm_ticks(void)
{
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_ia32_rdtsc();
#elif defined(__aarch64__)
    uint64_t v;
    __asm__ volatile("mrs %0, cntvct_el0" : "=r"(v));
    return v;
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
#endif
}

/* Ticks per nanosecond. The first call on x86-64 measures it over at least
 * 10 ms since gm_ticks_anchor() (sleeping for the rest if needed), then the
 * value is cached. Never 0. */
double gm_ticks_per_ns(void);
/* Starts the calibration window early (e.g. at process start-up) so a later
 * gm_ticks_per_ns() need not wait. Cheap; safe to call more than once. */
void gm_ticks_anchor(void);

/* Seconds between a stamp and now (0 for a stamp from the future). */
double gm_ticks_age_s(uint64_t stamp);

#endif
