/* Finding gpumem's files and groups. */
#include "cli.h"
#include "gpumem/nvml_mig.h"

#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <strings.h>
#include <ctype.h>
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

/* ---- is a library there, without loading it ---------------------------- */

/* Our own ELF header (GNU ld, gold and lld all define __ehdr_start). */
extern const ElfW(Ehdr) __ehdr_start;

/* A shared object of this process's class and machine at `path`. */
static int usable_library(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ElfW(Ehdr) h;
    ssize_t n = pread(fd, &h, sizeof h, 0);
    close(fd);
    return n == (ssize_t)sizeof h && memcmp(h.e_ident, ELFMAG, SELFMAG) == 0 &&
           h.e_ident[EI_CLASS] == __ehdr_start.e_ident[EI_CLASS] && h.e_machine == __ehdr_start.e_machine &&
           h.e_type == ET_DYN;
}

/* In /etc/ld.so.cache (glibc's format "glibc-ld.so.cache1.1", alone or
 * after the old one): an entry named soname whose file is usable. */
#define CACHE_MAGIC "glibc-ld.so.cache1.1"
struct cache_head {
    char magic[20];
    uint32_t nlibs, len_strings;
    uint8_t flags, pad[3];
    uint32_t extension_offset, unused[3];
};
struct cache_entry {
    int32_t flags;
    uint32_t key, value;        /* string offsets from the header */
    uint32_t osversion;
    uint64_t hwcap;
};
static int in_ld_cache(const char *soname)
{
    int fd = open("/etc/ld.so.cache", O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return 0;
    if (fstat(fd, &st) < 0 || st.st_size < (off_t)sizeof(struct cache_head)) {
        close(fd);
        return 0;
    }
    size_t size = (size_t)st.st_size;
    const char *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return 0;
    int found = 0;
    const char *at = memmem(map, size, CACHE_MAGIC, sizeof CACHE_MAGIC - 1);
    if (at && (size_t)(at - map) + sizeof(struct cache_head) <= size) {
        struct cache_head h;
        memcpy(&h, at, sizeof h);
        size_t avail = size - (size_t)(at - map), nlen = strlen(soname);
        for (uint32_t i = 0; i < h.nlibs && !found; i++) {
            struct cache_entry e;
            size_t off = sizeof h + (size_t)i * sizeof e;
            if (off + sizeof e > avail)
                break;
            memcpy(&e, at + off, sizeof e);
            if (e.key >= avail || e.value >= avail || avail - e.key <= nlen ||
                memcmp(at + e.key, soname, nlen + 1) != 0 || !memchr(at + e.value, '\0', avail - e.value))
                continue;
            found = usable_library(at + e.value);
        }
    }
    munmap((void *)map, size);
    return found;
}

int library_present(const char *soname)
{
    char path[PATH_MAX];
    const char *llp = getenv("LD_LIBRARY_PATH");
    for (const char *p = llp ? llp : ""; *p;) {
        size_t n = strcspn(p, ":;");
        if (n && n + strlen(soname) + 2 <= sizeof path) {
            snprintf(path, sizeof path, "%.*s/%s", (int)n, p, soname);
            if (usable_library(path))
                return 1;
        }
        p += n;
        p += strspn(p, ":;");
    }
    if (in_ld_cache(soname))
        return 1;
    /* Not seen (a path with $ORIGIN, an unusual system directory...): ask
     * the dynamic loader, which does load it. */
    void *h = dlopen(soname, RTLD_LAZY | RTLD_LOCAL);
    if (h)
        dlclose(h);
    return h != NULL;
}

int gpu_list(const char (**uuids)[GM_UUID_LEN])
{
    static char list[GM_MAX_DEVICES][GM_UUID_LEN];
    static int n = -1;
    if (n < 0) {
        n = 0;
        char sim[PATH_MAX];
        const char *env = getenv("GPUMEM_SIM_DIR");
        void *where = env && *env && find_sim_dir(sim, sizeof sim) == 0 ? sim : NULL;
        const char *u;
        while (n < GM_MAX_DEVICES && (u = nvml_index_uuid(n, where)) != NULL)
            snprintf(list[n++], GM_UUID_LEN, "%s", u);
    }
    *uuids = (const char (*)[GM_UUID_LEN])list;
    return n;
}

int gpu_index_of(const char *uuid)
{
    const char (*l)[GM_UUID_LEN];
    int n = gpu_list(&l);
    for (int i = 0; i < n; i++)
        if (strcasecmp(l[i], uuid) == 0)
            return i;
    return -1;
}

int gpu_label(const char *uuid, char *buf, size_t len, struct gm_mig_info *mig)
{
    struct gm_mig_info m;
    char sim[PATH_MAX], lib[PATH_MAX + 32];
    const char *env = getenv("GPUMEM_SIM_DIR");
    int gi = gpu_index_of(uuid);
    snprintf(buf, len, "-");
    if (gi >= 0) {
        snprintf(buf, len, "%d", gi);
        return 0;
    }
    const char *libp = NULL;
    if (env && *env && find_sim_dir(sim, sizeof sim) == 0) {
        snprintf(lib, sizeof lib, "%s/libnvidia-ml.so.1", sim);
        libp = lib;
    }
    if (gm_nvml_mig_info(libp, uuid, &m) < 0)
        return 0;
    if (m.index >= 0)
        snprintf(buf, len, "%d/%d", m.gpu, m.index);
    else
        snprintf(buf, len, "%d/-", m.gpu);
    if (mig)
        *mig = m;
    return 1;
}

int gpu_resolve(const char *name, const char (*known)[GM_UUID_LEN], int n, char *uuid, size_t len, char *err,
                size_t errlen)
{
    const char (*l)[GM_UUID_LEN];
    int nl = gpu_list(&l);
    if (*name && strspn(name, "0123456789") == strlen(name)) {
        long i = strtol(name, NULL, 10);
        if (strlen(name) > 3 || i >= nl) {
            snprintf(err, errlen, "GPU %s: no such device (or no NVML); give its UUID instead", name);
            return -1;
        }
        snprintf(uuid, len, "%s", l[i]);
        return 0;
    }
    size_t nlen = strlen(name);
    if (nlen < 8 || (strncasecmp(name, "GPU-", 4) != 0 && strncasecmp(name, "MIG-", 4) != 0)) {
        snprintf(err, errlen, "GPU \"%s\": expected an index, a GPU-<uuid> or MIG-<uuid>, or a prefix (at least GPU-xxxx)",
                 name);
        return -1;
    }
    const char *match = NULL;
    int count = 0;
    for (int pass = 0; pass < 2; pass++) {
        const char (*set)[GM_UUID_LEN] = pass ? l : known;
        int ns = pass ? nl : n;
        for (int i = 0; i < ns; i++) {
            if (strncasecmp(set[i], name, nlen) != 0 || (match && strcasecmp(match, set[i]) == 0))
                continue;
            if (strlen(set[i]) == nlen) { /* the whole UUID: no ambiguity */
                snprintf(uuid, len, "%s", set[i]);
                return 0;
            }
            match = set[i];
            count++;
        }
    }
    if (count == 1) {
        snprintf(uuid, len, "%s", match);
        return 0;
    }
    if (count == 0 && nlen == 40) { /* a whole UUID nobody lists yet */
        snprintf(uuid, len, "%s", name);
        for (char *c = uuid + 4; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        return 0;
    }
    snprintf(err, errlen, count ? "GPU \"%s\" is ambiguous: give more of its UUID" : "GPU \"%s\": no such device",
             name);
    return -1;
}
