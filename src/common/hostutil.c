/* Helpers for gpumem's host-side programs (see include/gpumem/hostutil.h). */
#include "gpumem/hostutil.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "gpumem/group.h"
#include "gpumem/nvml_load.h"
#include "gpumem/policy.h"
#include "gpumem/procinfo.h"

int gm_mkdir_p(const char *dir)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return mkdir(tmp, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

const char *gm_nvml_index_uuid(const char *lib, unsigned index, char *buf, size_t len)
{
    struct gm_nvml n;
    char err[512];
    nvmlDevice_t dev;
    if (gm_nvml_load(lib, &n, err, sizeof err) < 0 || n.by_index(index, &dev) != NVML_SUCCESS ||
        n.uuid(dev, buf, (unsigned)len) != NVML_SUCCESS)
        return NULL;
    for (char *c = buf + 4; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    return buf;
}

void gm_each_group(const char *state_dir, void (*fn)(const char *name, const char *dir, void *ctx), void *ctx)
{
    struct dirent **ents = NULL;
    int n = scandir(state_dir, &ents, NULL, alphasort);
    /* The same processes fill many slots: /proc is read once per pid. */
    gm_proc_cache_begin();
    for (int i = 0; i < n; i++) {
        const char *name = ents[i]->d_name;
        char dir[PATH_MAX + 300];
        if (name[0] != '.' && gm_valid_group_name(name) == 0) {
            snprintf(dir, sizeof dir, "%s/%s", state_dir, name);
            fn(name, dir, ctx);
        }
        free(ents[i]);
    }
    gm_proc_cache_end();
    free(ents);
}

int gm_nvml_gpus(const char *lib, struct gm_gpu *gpus, int max)
{
    struct gm_nvml nv;
    char err[512];
    unsigned n = 0;
    if (gm_nvml_load(lib, &nv, err, sizeof err) < 0 || nv.count(&n) != NVML_SUCCESS)
        return 0;
    int k = 0;
    for (unsigned i = 0; i < n && k < max; i++) {
        nvmlDevice_t dev;
        nvmlMemory_t m;
        if (nv.by_index(i, &dev) != NVML_SUCCESS || nv.uuid(dev, gpus[k].uuid, GM_UUID_LEN) != NVML_SUCCESS ||
            nv.mem(dev, &m) != NVML_SUCCESS)
            continue;
        for (char *c = gpus[k].uuid + 4; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        gpus[k++].total = m.total;
    }
    return k;
}
