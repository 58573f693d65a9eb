/* Opt-in allocation tracing: GPUMEM_TRACE=1 records when and from where
 * (the return address of the hooked call) every device allocation was
 * made; GPUMEM_LEAK_REPORT=1 (or =PATH) prints, when the process exits,
 * every allocation it never freed, like LeakSanitizer: size, API, GPU, age
 * and call site (library and function, from dladdr). With both unset the
 * hot path pays one predictable branch on `shim_tracing`. */
#include "account.h"
#include "gpumem/procinfo.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct at_table trace_sites, trace_times;
int shim_tracing;
static int report_fd = -1;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void shim_trace_init(void)
{
    const char *t = shim_getenv("GPUMEM_TRACE"), *r = shim_getenv("GPUMEM_LEAK_REPORT");
    int report = r && *r && strcmp(r, "0") != 0;
    shim_tracing = (t && strcmp(t, "1") == 0) || report;
    if (!report)
        return;
    if (strcmp(r, "1") == 0)
        report_fd = 2;
    else if ((report_fd = open(r, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
        shim_log(LOG_WARN, "GPUMEM_LEAK_REPORT=%s: cannot open it; reporting to stderr", r);
    if (report_fd < 0)
        report_fd = 2;
}

void shim_trace_alloc(uint64_t key, const void *site)
{
    at_insert(&trace_sites, key, (uint64_t)(uintptr_t)site);
    at_insert(&trace_times, key, now_ns());
}

void shim_trace_free(uint64_t key)
{
    uint64_t v;
    at_remove(&trace_sites, key, &v);
    at_remove(&trace_times, key, &v);
}

static const char *kind_name(int kind)
{
    static const char *names[] = {"cuMemAlloc", "cuMemAllocPitch", "cuMemAllocManaged", "cuMemAllocAsync",
                                  "cuMemCreate", "cuArrayCreate", "cuMipmappedArrayCreate"};
    return kind >= 0 && kind < (int)(sizeof names / sizeof names[0]) ? names[kind] : "?";
}

static void put(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void put(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 1)
        n = (int)sizeof buf - 1;
    if (n > 0 && write(report_fd, buf, (size_t)n) < 0)
        return;
}

struct leak_sum {
    uint64_t count, bytes, now;
    int pass; /* 0: count, 1: print */
};

static void one_leak(uint64_t key, uint64_t value, void *ctx)
{
    struct leak_sum *sum = ctx;
    int kind = alloc_kind(value);
    if (kind == AK_CTX)
        return; /* contexts are not allocations the application can free */
    if (sum->pass == 0) {
        sum->count++;
        sum->bytes += kind == AK_ASYNC ? 0 : alloc_bytes(value);
        return;
    }
    uint64_t site = 0, t0 = 0;
    char size[32], where[512];
    (void)(at_remove(&trace_sites, key, &site) | at_remove(&trace_times, key, &t0));
    if (kind == AK_ASYNC)
        snprintf(size, sizeof size, "(in a pool)");
    else
        gm_format_size(alloc_bytes(value), size, sizeof size);
    Dl_info info;
    if (site && dladdr((void *)(uintptr_t)site, &info) && info.dli_fname) {
        const char *lib = strrchr(info.dli_fname, '/') ? strrchr(info.dli_fname, '/') + 1 : info.dli_fname;
        if (info.dli_sname)
            snprintf(where, sizeof where, "%s(%s+0x%lx)", lib, info.dli_sname,
                     (unsigned long)(site - (uintptr_t)info.dli_saddr));
        else
            snprintf(where, sizeof where, "%s+0x%lx", lib, (unsigned long)(site - (uintptr_t)info.dli_fbase));
    } else {
        snprintf(where, sizeof where, "%s", site ? "?" : "(not traced)");
    }
    put("  %12s  %-22s %s  age %.3f s  0x%llx  at %s\n", size, kind_name(kind), g.usage->dev[alloc_gd(value)].uuid,
        t0 ? (double)(sum->now - t0) / 1e9 : 0.0, (unsigned long long)key, where);
}

void shim_leak_report(void)
{
    if (report_fd < 0 || !g.usage)
        return;
    struct leak_sum sum = {0, 0, now_ns(), 0};
    at_foreach(&live_allocs, one_leak, &sum);
    char comm[32] = "", total[32];
    gm_proc_comm(getpid(), comm, sizeof comm);
    put("gpumem: leak report for pid %d (%s): %llu device allocation%s never freed, %s\n", (int)getpid(), comm,
        (unsigned long long)sum.count, sum.count == 1 ? "" : "s", gm_format_size(sum.bytes, total, sizeof total));
    sum.pass = 1;
    at_foreach(&live_allocs, one_leak, &sum);
}
