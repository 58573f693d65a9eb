/* Host memory a process may still take (gpumem/hostmem.h). */
#include "gpumem/hostmem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* v1 reports "no limit" as PAGE_COUNTER_MAX pages, about 2^63: anything
 * from 2^62 up is no limit. */
#define V1_UNLIMITED (1ull << 62)

static int parse_u64(const char *s, const char **end, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = s;
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *end = p;
    *out = v;
    return 0;
}

uint64_t gm_meminfo_available(const char *text)
{
    static const char key[] = "MemAvailable:";
    for (const char *line = text; line && *line;) {
        if (strncmp(line, key, sizeof key - 1) == 0) {
            const char *p = line + sizeof key - 1, *end;
            while (*p == ' ' || *p == '\t')
                p++;
            uint64_t kb;
            if (parse_u64(p, &end, &kb) < 0 || strncmp(end, " kB", 3) != 0 || kb > UINT64_MAX / 1024)
                return GM_HOSTMEM_UNKNOWN;
            return kb * 1024;
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return GM_HOSTMEM_UNKNOWN;
}

int gm_cgroup_value(const char *text, uint64_t *out)
{
    const char *end;
    if (strcmp(text, "max") == 0 || strcmp(text, "max\n") == 0) {
        *out = GM_HOSTMEM_UNKNOWN;
        return 0;
    }
    uint64_t v;
    if (parse_u64(text, &end, &v) < 0 || (*end != '\0' && strcmp(end, "\n") != 0))
        return -1;
    *out = v >= V1_UNLIMITED ? GM_HOSTMEM_UNKNOWN : v;
    return 0;
}

static void copy_path(char *dst, size_t len, const char *p, size_t n)
{
    if (len == 0)
        return;
    if (n >= len)
        n = 0; /* too long to be a path we can use: none */
    memcpy(dst, p, n);
    dst[n] = '\0';
}

void gm_cgroup_paths(const char *text, char *v2, size_t v2len, char *v1, size_t v1len)
{
    copy_path(v2, v2len, "", 0);
    copy_path(v1, v1len, "", 0);
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        const char *c1 = memchr(line, ':', n);
        const char *c2 = c1 ? memchr(c1 + 1, ':', n - (size_t)(c1 + 1 - line)) : NULL;
        if (c2 && c2[1] == '/') {
            const char *ctl = c1 + 1, *path = c2 + 1;
            size_t ctl_len = (size_t)(c2 - ctl), path_len = n - (size_t)(path - line);
            if (c1 - line == 1 && line[0] == '0' && ctl_len == 0) {
                copy_path(v2, v2len, path, path_len);
            } else {
                /* "memory" among the comma-separated controllers */
                for (const char *p = ctl; p < c2;) {
                    const char *comma = memchr(p, ',', (size_t)(c2 - p));
                    size_t w = comma ? (size_t)(comma - p) : (size_t)(c2 - p);
                    if (w == 6 && memcmp(p, "memory", 6) == 0)
                        copy_path(v1, v1len, path, path_len);
                    p += w + 1;
                }
            }
        }
        line = nl ? nl + 1 : NULL;
    }
}

/* Reads a small file into buf (NUL-terminated); -1 when it cannot. */
static int read_small(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t got = 0;
    while (got + 1 < len) {
        ssize_t n = read(fd, buf + got, len - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    return got ? 0 : -1;
}

static int read_value(const char *dir, const char *file, uint64_t *v)
{
    char path[4096 + 64], buf[64];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, file) >= sizeof path)
        return -1;
    return read_small(path, buf, sizeof buf) < 0 ? -1 : gm_cgroup_value(buf, v);
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

/* The least room, over every level of the hierarchy at `base` from `path`
 * up to its root, of limit - usage. */
static uint64_t cgroup_room(const char *base, const char *path, const char *limit_file, const char *usage_file,
                            char *where, size_t wlen)
{
    char dir[4096 + 2048];
    uint64_t room = GM_HOSTMEM_UNKNOWN;
    if ((size_t)snprintf(dir, sizeof dir, "%s%s", base, path) >= sizeof dir)
        return room;
    /* In a cgroup namespace, /proc/self/cgroup may name a path the mount
     * does not show: the mount's root is then our own cgroup. */
    if (!exists(dir) && (size_t)snprintf(dir, sizeof dir, "%s", base) >= sizeof dir)
        return room;
    size_t base_len = strlen(base);
    for (;;) {
        uint64_t lim, use;
        if (read_value(dir, limit_file, &lim) == 0 && lim != GM_HOSTMEM_UNKNOWN &&
            read_value(dir, usage_file, &use) == 0) {
            uint64_t r = use >= lim ? 0 : lim - use;
            if (r < room) {
                room = r;
                snprintf(where, wlen, "%.4000s/%s", dir, limit_file);
            }
        }
        char *slash = strrchr(dir, '/');
        if (!slash || (size_t)(slash - dir) < base_len)
            break;
        *slash = '\0';
    }
    return room;
}

uint64_t gm_host_room(const char *root, char *why, size_t len)
{
    char path[4096 + 128], buf[8192], v2[2048], v1[2048], where[4200] = "";
    if (strcmp(root, "/") == 0)
        root = "";
    uint64_t room = GM_HOSTMEM_UNKNOWN;
    snprintf(path, sizeof path, "%s/proc/meminfo", root);
    if (read_small(path, buf, sizeof buf) == 0) {
        room = gm_meminfo_available(buf);
        if (room != GM_HOSTMEM_UNKNOWN)
            snprintf(where, sizeof where, "MemAvailable in /proc/meminfo");
    }
    snprintf(path, sizeof path, "%s/proc/self/cgroup", root);
    if (read_small(path, buf, sizeof buf) == 0) {
        gm_cgroup_paths(buf, v2, sizeof v2, v1, sizeof v1);
        char base[4096], w[4200];
        uint64_t r = GM_HOSTMEM_UNKNOWN;
        snprintf(base, sizeof base, "%s/sys/fs/cgroup", root);
        snprintf(path, sizeof path, "%s/cgroup.controllers", base);
        if (*v2 && exists(path))
            r = cgroup_room(base, strcmp(v2, "/") == 0 ? "" : v2, "memory.max", "memory.current", w, sizeof w);
        else if (*v1) {
            snprintf(base, sizeof base, "%s/sys/fs/cgroup/memory", root);
            r = cgroup_room(base, strcmp(v1, "/") == 0 ? "" : v1, "memory.limit_in_bytes", "memory.usage_in_bytes",
                            w, sizeof w);
        }
        if (r < room) {
            room = r;
            snprintf(where, sizeof where, "%s", w);
        }
    }
    if (why && len)
        snprintf(why, len, "%s", *where ? where : "no figure readable");
    return room;
}
