/* What /proc says of one host pid, for the backstop: identity (start time,
 * the pid in its own namespace), parent, whether it is exiting, its cgroup.
 * The text is partly the process's own (comm: any 15 bytes), so the parsers
 * are fuzzed (tests/fuzz/backstop_proc.c). */
#include "backstop.h"

#include "gpumem/procinfo.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int bs_parse_stat(const char *text, struct bs_stat *out)
{
    memset(out, 0, sizeof *out);
    out->state = '?';
    const char *p = strrchr(text, ')');
    if (!p || p[1] != ' ' || !p[2])
        return -1;
    char st = p[2];
    p += 3; /* at the space before field 4 */
    uint64_t field_val[23] = {0};
    int field = 3;
    while (*p == ' ' && field < 22) {
        field++;
        p++;
        uint64_t v = 0;
        int digits = 0;
        if (*p == '-') /* ppid 0 is printed as 0; negative fields (priority) are not ones we read */
            p++;
        while (*p >= '0' && *p <= '9') {
            if (v > (UINT64_MAX - 9) / 10)
                return -1;
            v = v * 10 + (uint64_t)(*p++ - '0');
            digits++;
        }
        if (!digits)
            return -1;
        field_val[field] = v;
    }
    if (field != 22)
        return -1;
    if (field_val[4] > 0x7fffffff)
        return -1;
    out->state = st;
    out->ppid = (pid_t)field_val[4];
    out->flags = (unsigned)field_val[9];
    out->threads = field_val[20];
    out->start = field_val[22];
    return 0;
}

void bs_parse_cgroup(const char *text, char *out, size_t len)
{
    /* Candidates: the unified hierarchy's path, the pids controller's, and
     * the first other v1 path that is not the root. */
    char unified[512] = "", pids[512] = "", other[512] = "";
    int have_unified = 0;
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        const char *c1 = memchr(line, ':', n);
        const char *c2 = c1 ? memchr(c1 + 1, ':', n - (size_t)(c1 + 1 - line)) : NULL;
        if (c2 && c2[1] == '/') {
            size_t plen = n - (size_t)(c2 + 1 - line);
            int is_unified = c1 == line + 1 && line[0] == '0' && c2 == c1 + 1;
            int is_pids = (size_t)(c2 - c1 - 1) == 4 && memcmp(c1 + 1, "pids", 4) == 0;
            char *dst = is_unified ? unified : is_pids ? pids : other;
            int root = plen == 1;
            if (plen < sizeof unified && (is_unified || is_pids || (!root && !*other))) {
                memcpy(dst, c2 + 1, plen);
                dst[plen] = '\0';
                have_unified |= is_unified;
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    /* Hybrid hosts (v1 controllers beside an empty unified hierarchy) put
     * containers in the v1 controllers and leave "0::/": the unified path
     * wins only when it says something. */
    const char *pick = have_unified && strcmp(unified, "/") != 0 ? unified
                       : pids[0] && strcmp(pids, "/") != 0     ? pids
                       : other[0]                              ? other
                       : have_unified                          ? unified
                                                               : pids;
    out[0] = '\0';
    if (strlen(pick) < len)
        snprintf(out, len, "%s", pick);
}

static int read_file(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t got = 0;
    ssize_t n;
    while (got < len - 1 && ((n = read(fd, buf + got, len - 1 - got)) > 0 || (n < 0 && errno == EINTR)))
        if (n > 0)
            got += (size_t)n;
    close(fd);
    buf[got] = '\0';
    return got > 0 ? 0 : -1;
}

int bs_proc_read(pid_t pid, struct bs_procinfo *p)
{
    char path[64], buf[4096];
    memset(p, 0, sizeof *p);
    p->pid = pid;
    p->st.state = '?';
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (pid <= 0 || read_file(path, buf, sizeof buf) < 0 || bs_parse_stat(buf, &p->st) < 0) {
        p->st.start = 0;
        return -1;
    }
    /* comm is the name between the first '(' and the last ')' */
    const char *o = strchr(buf, '('), *c = strrchr(buf, ')');
    if (o && c > o) {
        size_t n = (size_t)(c - o - 1) < sizeof p->comm - 1 ? (size_t)(c - o - 1) : sizeof p->comm - 1;
        memcpy(p->comm, o + 1, n);
        p->comm[n] = '\0';
    }
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    if (read_file(path, buf, sizeof buf) == 0)
        p->inner = gm_parse_nspid(buf);
    snprintf(path, sizeof path, "/proc/%d/cgroup", (int)pid);
    if (read_file(path, buf, sizeof buf) == 0)
        bs_parse_cgroup(buf, p->cgroup, sizeof p->cgroup);
    return 0;
}

int bs_proc_same(pid_t pid, uint64_t start)
{
    char path[64], buf[4096];
    struct bs_stat st;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (pid <= 0 || read_file(path, buf, sizeof buf) < 0 || bs_parse_stat(buf, &st) < 0)
        return 0;
    return st.start == start && !bs_stat_exiting(&st);
}
