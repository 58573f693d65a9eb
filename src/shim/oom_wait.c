/* GPUMEM_OOM=wait:SECONDS (docs/shim.md, "Waiting for memory"): an
 * allocation refused for the group's limit, or by the driver because the
 * GPU is full, is tried again until the group's wait runs out, sleeping in
 * between. Slow path only: the fast path never comes here.
 *
 * While it sleeps the call holds nothing: its charge was taken back before
 * (account.c cell_grow, or shim_uncharge after the driver's refusal) and no
 * lock is held, so a process killed in the middle of a wait leaves nothing
 * charged and nobody blocked. */
#include "account.h"
#include "oom_wait.h"

#include <time.h>
#include <unistd.h>

static uint64_t now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void shim_note_pressure(int gd, uint64_t bytes)
{
    struct gm_usage *u = g.usage;
    if (!u || gd < 0 || gd >= GM_MAX_DEVICES)
        return;
    atomic_store(&u->want_bytes, bytes);
    atomic_store(&u->want_dev, (uint32_t)gd);
    atomic_store(&u->want_pid, (int32_t)getpid());
    atomic_store(&u->want_ns, now_ns(CLOCK_REALTIME));
}

int shim_oom_wait(struct shim_wait *w, int gd, uint64_t bytes, int gpu_full)
{
    if (gpu_full)
        shim_note_pressure(gd, bytes);
    /* The group's setting, as its creator stored it: a plain 32-bit load
     * (a torn read cannot happen; a concurrent `gpumem limit` is seen at
     * the next refusal). */
    uint32_t ms = g.limits ? *(const volatile uint32_t *)&g.limits->oom_wait_ms : 0;
    if (ms == 0)
        return 0;
    uint64_t now = now_ns(CLOCK_MONOTONIC);
    if (w->deadline_ns == 0) {
        w->deadline_ns = now + (uint64_t)ms * 1000000ull;
        w->nap_us = 1000;
        if (!gpu_full)
            shim_tl.quiet = 1; /* the retries are quiet: the first refusal was counted */
    }
    if (now >= w->deadline_ns) {
        shim_tl.quiet = 0;
        return 0;
    }
    /* Backoff from 1 ms to 50 ms: a free is noticed within 50 ms, and a
     * waiter costs at most 20 wake-ups a second. */
    uint64_t left_us = (w->deadline_ns - now) / 1000;
    uint64_t nap = w->nap_us < left_us ? w->nap_us : left_us;
    struct timespec ts = {(time_t)(nap / 1000000), (long)(nap % 1000000) * 1000};
    nanosleep(&ts, NULL);
    w->nap_us = w->nap_us * 2 < 50000 ? w->nap_us * 2 : 50000;
    return 1;
}

void shim_oom_wait_end(struct shim_wait *w)
{
    if (w->deadline_ns)
        shim_tl.quiet = 0;
}
