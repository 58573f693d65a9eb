/* /proc readers used by the shim (slot claim, reclaim) and the CLI. They use
 * raw open/read into stack buffers: the shim calls them inside other
 * people's processes, where stdio and malloc are to be avoided. */
#include "gpumem/procinfo.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static ssize_t read_small(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n;
    do
        n = read(fd, buf, len - 1);
    while (n < 0 && errno == EINTR);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return n;
}

uint64_t gm_parse_proc_stat(const char *buf, char *state)
{
    /* comm (field 2) may hold spaces and parentheses: fields resume after the
     * last ')'. Field 3 is the state; start time is field 22. */
    *state = '?';
    const char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ')
        return 0;
    *state = p[2];
    p++;
    for (int field = 2; field < 22 && *p; p++)
        if (*p == ' ')
            field++;
    uint64_t v = 0;
    while (*p >= '0' && *p <= '9')
        v = v * 10 + (uint64_t)(*p++ - '0');
    return v;
}

uint64_t gm_proc_stat(pid_t pid, char *state)
{
    char path[48], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    *state = '?';
    if (read_small(path, buf, sizeof buf) <= 0)
        return 0;
    return gm_parse_proc_stat(buf, state);
}

uint64_t gm_proc_start_time(pid_t pid)
{
    char state;
    return gm_proc_stat(pid, &state);
}

void gm_proc_comm(pid_t pid, char *buf, size_t len)
{
    char path[48];
    snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
    buf[0] = '\0';
    if (read_small(path, buf, len) > 0)
        buf[strcspn(buf, "\n")] = '\0';
}

pid_t gm_parse_nspid(const char *status)
{
    const char *p = strstr(status, "\nNSpid:");
    if (!p)
        return 0;
    p += 7;
    pid_t last = 0;
    while (*p && *p != '\n') {
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p < '0' || *p > '9')
            break;
        pid_t v = 0;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (v > (INT32_MAX - (*p - '0')) / 10)
                return 0; /* no pid is that large: not a line to trust */
            v = v * 10 + (*p - '0');
        }
        last = v;
    }
    return last;
}

pid_t gm_proc_inner_pid(pid_t host)
{
    char path[48], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/status", (int)host);
    if (read_small(path, buf, sizeof buf) <= 0)
        return 0;
    return gm_parse_nspid(buf);
}

/* A slot written inside a container holds the pid as the container sees it;
 * a reader on the host (gpumem ps, the daemon) must not take it for dead.
 * Looks for a live process with that start time whose innermost pid is
 * `pid` (start times are clock ticks since boot, the same in every pid
 * namespace). getdents64 into a stack buffer: no malloc, as above. Two
 * processes with the same inner pid started in the same tick keep a dead
 * slot alive a little longer: the safe direction. */
static int alive_in_other_ns(pid_t pid, uint64_t start_time)
{
    int fd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char buf[4096];
    int found = 0;
    long n;
    while (!found && (n = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
        for (long off = 0; off < n && !found;) {
            /* struct linux_dirent64: ino (8), off (8), reclen (2), type (1), name */
            unsigned short reclen;
            memcpy(&reclen, buf + off + 16, sizeof reclen);
            const char *name = buf + off + 19;
            off += reclen;
            pid_t h = 0;
            const char *c = name;
            for (; *c >= '0' && *c <= '9'; c++)
                h = h * 10 + (*c - '0');
            if (*c || h <= 0 || h == pid)
                continue;
            char state;
            if (gm_proc_stat(h, &state) == start_time && state != 'Z' && state != 'X' && gm_proc_inner_pid(h) == pid)
                found = 1;
        }
    }
    close(fd);
    return found;
}

int gm_proc_alive(pid_t pid, uint64_t start_time)
{
    if (pid <= 0)
        return 0;
    char state;
    uint64_t st = gm_proc_stat(pid, &state);
    /* A zombie has exited: the driver has already taken its memory back. */
    if (st != 0 && st == start_time)
        return state != 'Z' && state != 'X';
    return start_time != 0 && alive_in_other_ns(pid, start_time);
}
