/* Finding gpumem's files and groups. */
#include "cli.h"

#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpumem/hostutil.h"
#include "../daemon/daemon.h"

static int exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

int exe_dir(char *buf, size_t len, int up)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    for (int i = 0; i <= up; i++) {
        char *slash = strrchr(exe, '/');
        if (!slash)
            return -1;
        *slash = '\0';
    }
    snprintf(buf, len, "%s", exe);
    return 0;
}

/* The shim: $GPUMEM_SHIM, else <prefix>/lib/libgpumem.so (the build tree)
 * or <prefix>/lib/gpumem/libgpumem.so (`make install`). */
int find_shim(char *buf, size_t len)
{
    const char *env = getenv("GPUMEM_SHIM");
    char pre[PATH_MAX];
    if (env && *env) {
        snprintf(buf, len, "%s", env);
        return exists(buf) ? 0 : -1;
    }
    if (exe_dir(pre, sizeof pre, 1) < 0)
        return -1;
    const char *cands[] = {"lib/libgpumem.so", "lib/gpumem/libgpumem.so"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(buf, len, "%s/%s", pre, cands[i]);
        if (exists(buf))
            return 0;
    }
    return -1;
}

/* The simulated GPU: $GPUMEM_SIM_DIR, else relative to this program's
 * directory's parent, <prefix>: sim/ in the build tree (build/bin/gpumem,
 * build/sim), libexec/gpumem/sim/ where `make install` puts it
 * (/usr/bin/gpumem, /usr/libexec/gpumem/sim), or lib/gpumem/sim/. */
int find_sim_dir(char *buf, size_t len)
{
    const char *env = getenv("GPUMEM_SIM_DIR");
    char pre[PATH_MAX], probe[PATH_MAX + 32];
    if (env && *env) {
        snprintf(buf, len, "%s", env);
    } else {
        if (exe_dir(pre, sizeof pre, 1) < 0)
            return -1;
        const char *cands[] = {"sim", "libexec/gpumem/sim", "lib/gpumem/sim"};
        for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++) {
            snprintf(buf, len, "%s/%s", pre, cands[i]);
            snprintf(probe, sizeof probe, "%s/libcuda.so.1", buf);
            if (exists(probe))
                return 0;
        }
    }
    snprintf(probe, sizeof probe, "%s/libcuda.so.1", buf);
    return exists(probe) ? 0 : -1;
}

int open_nvml_view(int sim, char *err, size_t errlen)
{
    const char *env_sim = getenv("GPUMEM_SIM_DIR");
    if (sim || (env_sim && *env_sim)) {
        char dir[PATH_MAX], why[400];
        if (find_sim_dir(dir, sizeof dir) < 0) {
            snprintf(err, errlen, "--sim: the simulated GPU was not found (build/sim, or set GPUMEM_SIM_DIR)");
            return -1;
        }
        if (dm_nvml_open(dir, why, sizeof why) < 0) {
            snprintf(err, errlen, "--sim: %s", why);
            return -1;
        }
        return 0;
    }
    return dm_nvml_open(NULL, err, errlen) < 0 ? 1 : 0;
}

/* A group whose recorded identity matches `who`: its name (a container's
 * Docker or Kubernetes name) or its container id (full, or a prefix of at
 * least 12 characters, as `docker ps` shows). 0 and buf filled when exactly
 * one matches. */
static int group_by_identity(const char *who, char *buf, size_t len)
{
    char state[PATH_MAX];
    gm_state_dir(state, sizeof state);
    DIR *d = opendir(state);
    if (!d)
        return -1;
    int found = 0;
    size_t wl = strlen(who);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || gm_valid_group_name(e->d_name) < 0)
            continue;
        char dir[PATH_MAX + 300], err[256];
        snprintf(dir, sizeof dir, "%s/%s", state, e->d_name);
        const struct gm_limits *l = gm_limits_map(dir, err, sizeof err);
        if (!l)
            continue;
        int match = strncmp(l->name, who, sizeof l->name) == 0 ||
                    (wl >= 12 && strncmp(l->container_id, who, wl) == 0 && wl < sizeof l->container_id);
        gm_limits_unmap(l);
        if (match && found++ == 0)
            snprintf(buf, len, "%s", dir);
    }
    closedir(d);
    return found == 1 ? 0 : -1;
}

int group_dir(const char *group, char *buf, size_t len)
{
    char probe[PATH_MAX + 16];
    if (strchr(group, '/')) {
        snprintf(buf, len, "%s", group);
    } else {
        char state[PATH_MAX];
        snprintf(buf, len, "%s/%s", gm_state_dir(state, sizeof state), group);
        snprintf(probe, sizeof probe, "%s/limits", buf);
        if (gm_valid_group_name(group) == 0 && exists(probe))
            return 0;
        return group_by_identity(group, buf, len);
    }
    snprintf(probe, sizeof probe, "%s/limits", buf);
    return exists(probe) ? 0 : -1;
}

const char *nvml_index_uuid(int index, void *sim)
{
    static char uuid[96];
    char path[PATH_MAX + 32];
    if (sim)
        snprintf(path, sizeof path, "%s/libnvidia-ml.so.1", (const char *)sim);
    return index < 0 ? NULL : gm_nvml_index_uuid(sim ? path : NULL, (unsigned)index, uuid, sizeof uuid);
}
