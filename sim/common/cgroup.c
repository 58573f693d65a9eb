/* Cgroup v2 paths for the emulated per-cgroup memory limits (simstate.h):
 * which cgroup a process is in, and whether a path is a cgroup v2 one. On a
 * unified (v2) machine the hierarchy is mounted at /sys/fs/cgroup; on a
 * hybrid one at /sys/fs/cgroup/unified; on a v1-only one not at all. */
#include "simstate_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>

#define CGROUP2_MAGIC 0x63677270

int sim_cgroup_is_v2(const char *path)
{
    struct statfs st;
    return statfs(path, &st) == 0 && (unsigned long)st.f_type == CGROUP2_MAGIC;
}

/* The mount point of the cgroup2 file system (field 5 of the mountinfo line
 * whose type, after " - ", is cgroup2). Mount points with escaped
 * characters (\040) are not expected for it. */
static int cgroup2_mount(char *buf, size_t len)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f) return -1;
    char line[4096];
    int found = -1;
    while (found < 0 && fgets(line, sizeof line, f)) {
        char *sep = strstr(line, " - ");
        if (!sep || strncmp(sep + 3, "cgroup2 ", 8) != 0) continue;
        char *p = line;
        for (int field = 0; field < 4 && p; field++) {
            p = strchr(p, ' ');
            if (p) p++;
        }
        if (!p) continue;
        size_t n = strcspn(p, " ");
        if (n < len) {
            memcpy(buf, p, n);
            buf[n] = 0;
            found = 0;
        }
    }
    fclose(f);
    return found;
}

int sim_cgroup_path(char *buf, size_t len)
{
    char mount[PATH_MAX], rel[PATH_MAX] = "", line[PATH_MAX + 8], joined[2 * PATH_MAX + 2];
    if (cgroup2_mount(mount, sizeof mount) < 0) return -1;
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "0::", 3) == 0) {
            snprintf(rel, sizeof rel, "%.4000s", line + 3);
            rel[strcspn(rel, "\n")] = 0;
        }
    fclose(f);
    if (!rel[0]) return -1;
    snprintf(joined, sizeof joined, "%s%s", mount, strcmp(rel, "/") == 0 ? "" : rel);
    char real[PATH_MAX];
    if (!realpath(joined, real) || strlen(real) >= len) return -1;
    memcpy(buf, real, strlen(real) + 1);
    return 0;
}
