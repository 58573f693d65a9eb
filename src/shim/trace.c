/* The leak report: GPUMEM_LEAK_REPORT=1 (or =PATH) prints, when the process
 * exits, every allocation it never freed, like LeakSanitizer: size, API,
 * GPU, age and call site (library and function, from dladdr). Every entry
 * of the live table carries its birth stamp and call site (the hooked
 * call's return address: one load, cheaper than a branch on whether to
 * record it), so there is nothing to switch on beforehand. */
#include "account.h"
#include "gpumem/live_peek.h"
#include "gpumem/procinfo.h"
#include "gpumem/ticks.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int report_fd = -1;

void shim_trace_init(void)
{
    const char *r = shim_getenv("GPUMEM_LEAK_REPORT");
    if (!r || !*r || strcmp(r, "0") == 0)
        return;
    if (strcmp(r, "1") == 0)
        report_fd = 2;
    else if ((report_fd = open(r, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
        shim_log(LOG_WARN, "GPUMEM_LEAK_REPORT=%s: cannot open it; reporting to stderr", r);
    if (report_fd < 0)
        report_fd = 2;
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
    uint64_t count, bytes;
    int pass; /* 0: count, 1: print */
};

static void one_leak(const struct at_entry *e, void *ctx)
{
    struct leak_sum *sum = ctx;
    uint64_t key = e->key, value = e->value, site = e->site;
    int kind = alloc_kind(value);
    if (kind == AK_CTX)
        return; /* contexts are not allocations the application can free */
    if (sum->pass == 0) {
        sum->count++;
        sum->bytes += alloc_bytes(value);
        return;
    }
    char size[32], where[512];
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
        snprintf(where, sizeof where, "%s", site ? "?" : "(unknown)");
    }
    put("  %12s  %-22s %s  age %.3f s  0x%llx  at %s\n", size, gm_alloc_kind_name(kind), g.usage->dev[alloc_gd(value)].uuid,
        gm_ticks_age_s(e->born), (unsigned long long)key, where);
}

void shim_leak_report(void)
{
    if (report_fd < 0 || !g.usage)
        return;
    struct leak_sum sum = {0, 0, 0};
    at_foreach(&live_allocs, one_leak, &sum);
    char comm[32] = "", total[32];
    gm_proc_comm(getpid(), comm, sizeof comm);
    put("gpumem: leak report for pid %d (%s): %llu device allocation%s never freed, %s\n", (int)getpid(), comm,
        (unsigned long long)sum.count, sum.count == 1 ? "" : "s", gm_format_size(sum.bytes, total, sizeof total));
    sum.pass = 1;
    at_foreach(&live_allocs, one_leak, &sum);
}
