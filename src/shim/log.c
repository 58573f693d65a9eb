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
    if (lv)
        for (int i = 0; i <= LOG_OFF; i++)
            if (strcmp(lv, names[i]) == 0)
                log_level = i;
    const char *file = shim_getenv("GPUMEM_LOG_FILE");
    if (file && *file) {
        int fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0)
            log_fd = fd;
    }
}

void shim_log(int level, const char *fmt, ...)
{
    static const char *tags[] = {"debug", "info", "warn", "error"};
    if (level < log_level || level >= LOG_OFF)
        return;
    if (level >= LOG_WARN && atomic_fetch_sub(&warnings_left, 1) <= 0)
        return;
    char buf[1024];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int n = snprintf(buf, sizeof buf, "gpumem: %s %lld.%03ld pid=%d tid=%ld: ", tags[level], (long long)ts.tv_sec,
                     ts.tv_nsec / 1000000, (int)getpid(), (long)syscall(SYS_gettid));
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 2)
        n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    ssize_t w = write(log_fd, buf, (size_t)n);
    (void)w;
}
