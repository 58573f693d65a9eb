/* What the start-up benchmarks (startup.c, cmdtime.c) share: a monotonic
 * clock in nanoseconds and sorting of samples for their quantiles. */
#ifndef GPUMEM_BENCH_TIMING_H
#define GPUMEM_BENCH_TIMING_H

#include <stdlib.h>
#include <time.h>

static inline long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

#endif
