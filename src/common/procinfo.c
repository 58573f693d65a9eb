/* /proc readers used by the shim (slot claim, reclaim) and the CLI. They use
 * raw open/read into stack buffers: the shim calls them inside other
 * people's processes, where stdio and malloc are to be avoided. */
#include "gpumem/procinfo.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
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

/* Start time and state of `pid` from /proc/<pid>/stat; 0 if it is gone. */
static uint64_t stat_of(pid_t pid, char *state)
{
    char path[48], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    *state = '?';
    if (read_small(path, buf, sizeof buf) <= 0)
        return 0;
    /* comm (field 2) may hold spaces and parentheses: fields resume after the
     * last ')'. Field 3 is the state; start time is field 22. */
    char *p = strrchr(buf, ')');
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

uint64_t gm_proc_start_time(pid_t pid)
{
    char state;
    return stat_of(pid, &state);
}

void gm_proc_comm(pid_t pid, char *buf, size_t len)
{
    char path[48];
    snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
    buf[0] = '\0';
    if (read_small(path, buf, len) > 0)
        buf[strcspn(buf, "\n")] = '\0';
}

int gm_proc_alive(pid_t pid, uint64_t start_time)
{
    if (pid <= 0)
        return 0;
    char state;
    uint64_t st = stat_of(pid, &state);
    /* A zombie has exited: the driver has already taken its memory back. */
    return st != 0 && st == start_time && state != 'Z' && state != 'X';
}
