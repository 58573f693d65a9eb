/* Converting gm_ticks() to time (include/gpumem/ticks.h). */
#include "gpumem/ticks.h"

#include <errno.h>
#include <stdatomic.h>

static _Atomic uint64_t anchor_ticks, anchor_ns;
static _Atomic double per_ns; /* 0 until calibrated */

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void gm_ticks_anchor(void)
{
    if (atomic_load_explicit(&anchor_ns, memory_order_acquire))
        return;
    uint64_t t = gm_ticks();
    atomic_store_explicit(&anchor_ticks, t, memory_order_relaxed);
    atomic_store_explicit(&anchor_ns, mono_ns(), memory_order_release);
}

double gm_ticks_per_ns(void)
{
    double r = atomic_load_explicit(&per_ns, memory_order_relaxed);
    if (r > 0)
        return r;
#if defined(__x86_64__) || defined(__i386__)
    enum { WINDOW_NS = 10 * 1000 * 1000 };
    gm_ticks_anchor();
    uint64_t t0 = atomic_load_explicit(&anchor_ticks, memory_order_relaxed);
    uint64_t n0 = atomic_load_explicit(&anchor_ns, memory_order_acquire);
    uint64_t n1 = mono_ns();
    if (n1 - n0 < WINDOW_NS) {
        uint64_t left = WINDOW_NS - (n1 - n0);
        struct timespec d = {0, (long)left};
        while (nanosleep(&d, &d) != 0 && errno == EINTR)
            ;
        n1 = mono_ns();
    }
    uint64_t t1 = gm_ticks();
    r = n1 > n0 && t1 > t0 ? (double)(t1 - t0) / (double)(n1 - n0) : 1.0;
#elif defined(__aarch64__)
    uint64_t hz;
    __asm__ volatile("mrs %0, cntfrq_el0" : "=r"(hz));
    r = hz ? (double)hz / 1e9 : 1.0;
#else
    r = 1.0;
#endif
    if (!(r > 0))
        r = 1.0;
    atomic_store_explicit(&per_ns, r, memory_order_relaxed);
    return r;
}

double gm_ticks_age_s(uint64_t stamp)
{
    uint64_t now = gm_ticks();
    return now > stamp ? (double)(now - stamp) / gm_ticks_per_ns() / 1e9 : 0.0;
}
