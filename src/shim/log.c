/* Opt-in logging for the shim: GPUMEM_LOG=debug|info|warn|error|off
 * (default warn), GPUMEM_LOG_FILE=path (default stderr). Lines carry level,
 * time, pid/tid. Formatting goes to a stack buffer and out with one write(2):
 * no malloc, no stdio locks inside someone else's process. */
#include "shim.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int log_level = LOG_WARN;
static int log_fd = 2;
static _Atomic int warnings_left = 50; /* cap repeated warnings from hot paths */

/* The environment as the process started with it. glibc's getenv takes no
 * lock and allocates nothing; it is only called during start-up. (Reading
 * `environ` directly from here binds to the wrong copy in sanitizer builds,
 * where the dynamic loader's own `environ` can win the symbol lookup.) */
const char *shim_getenv(const char *name) { return getenv(name); }

void shim_log_init(void)
{
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    const char *lv = shim_getenv("GPUMEM_LOG");
    int bad = 0;
    if (lv) {
        bad = 1;
        for (int i = 0; i <= LOG_OFF; i++)
            if (strcmp(lv, names[i]) == 0) {
                log_level = i;
                bad = 0;
            }
    }
    const char *file = shim_getenv("GPUMEM_LOG_FILE");
    if (file && *file) {
        int fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0)
            log_fd = fd;
        else
            shim_log(LOG_WARN, "GPUMEM_LOG_FILE \"%.200s\": cannot open it; logging to stderr", file);
    }
    if (bad)
        shim_log(LOG_WARN, "GPUMEM_LOG \"%.40s\" is not one of debug, info, warn, error, off; using warn", lv);
}

static void vlog(int level, const char *fmt, va_list ap)
{
    static const char *tags[] = {"debug", "info", "warn", "error"};
    char buf[1024];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int n = snprintf(buf, sizeof buf, "gpumem: %s %lld.%03ld pid=%d tid=%ld: ", tags[level], (long long)ts.tv_sec,
                     ts.tv_nsec / 1000000, (int)getpid(), (long)syscall(SYS_gettid));
    n += vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    if (n > (int)sizeof buf - 2)
        n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    ssize_t w = write(log_fd, buf, (size_t)n);
    (void)w;
}

static void __attribute__((format(printf, 2, 3))) log_line(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

void shim_log(int level, const char *fmt, ...)
{
    if (level < log_level || level >= LOG_OFF)
        return;
    if (level >= LOG_WARN && atomic_fetch_sub(&warnings_left, 1) <= 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

void shim_log_once(enum shim_once cause, int level, const char *fmt, ...)
{
    static _Atomic unsigned char said[SHIM_ONCE_COUNT];
    if (level < log_level || level >= LOG_OFF || atomic_exchange(&said[cause], 1))
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

void shim_log_refusal(const char *fmt, ...)
{
    static _Atomic uint64_t next_ns, unsaid;
    if (LOG_WARN < log_level)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec, due = atomic_load(&next_ns);
    if (now < due || !atomic_compare_exchange_strong(&next_ns, &due, now + 1000000000ull)) {
        atomic_fetch_add(&unsaid, 1);
        return;
    }
    char buf[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    uint64_t more = atomic_exchange(&unsaid, 0);
    if (more)
        log_line(LOG_WARN, "%s (%llu more refused since the last such warning)", buf, (unsigned long long)more);
    else
        log_line(LOG_WARN, "%s", buf);
}
