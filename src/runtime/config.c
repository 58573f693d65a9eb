/* Which real runtime to run, and where gpumem's files are. */
#include "runtime.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_CONFIG "/etc/gpumem/runtime.conf"

static int is_exec(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0;
}

/* True when p is this very program (an install that points the real
 * runtime at gpumem-runtime itself would loop forever). */
static int is_self(const char *p)
{
    char a[PATH_MAX], b[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", a, sizeof a - 1);
    if (n <= 0 || !realpath(p, b))
        return 0;
    a[n] = '\0';
    return strcmp(a, b) == 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

static int read_file(struct rt_config *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char line[4200];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *s = trim(line);
        if (*s == '#' || *s == '\0')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%d: expected \"key = value\", got \"%s\"", path, lineno, s);
            fclose(f);
            return -1;
        }
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        char *dst = strcmp(key, "runtime") == 0       ? c->runtime
                    : strcmp(key, "shim") == 0        ? c->shim
                    : strcmp(key, "docker-root") == 0 ? c->docker_root
                    : strcmp(key, "sim") == 0         ? c->sim
                    : strcmp(key, "sim-state") == 0   ? c->sim_state
                    : strcmp(key, "nvidia-smi") == 0  ? c->nvidia_smi
                                                      : NULL;
        if (!dst) {
            snprintf(err, errlen, "%s:%d: unknown key \"%s\" (runtime, shim, docker-root, sim, sim-state, nvidia-smi)", path,
                     lineno, key);
            fclose(f);
            return -1;
        }
        snprintf(dst, sizeof c->runtime, "%s", val);
    }
    fclose(f);
    return 0;
}

/* nvidia-container-runtime first, so `--gpus` keeps working where the
 * NVIDIA toolkit is installed; then runc, then crun. */
static int search_path(char *buf, size_t len)
{
    static const char *names[] = {"nvidia-container-runtime", "runc", "crun"};
    const char *path = getenv("PATH");
    char dirs[8192];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(dirs, sizeof dirs, "%s:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                 path && *path ? path : "");
        for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
            snprintf(buf, len, "%s/%s", d, names[i]);
            if (is_exec(buf) && !is_self(buf))
                return 0;
        }
    }
    return -1;
}

/* buf = the first of prefix/a, prefix/b, prefix/c that exists ("" if none). */
static void first_existing(char *buf, size_t len, const char *prefix, const char *a, const char *b, const char *c)
{
    const char *cands[] = {a, b, c};
    struct stat st;
    for (size_t i = 0; i < 3; i++) {
        if (!*cands[i])
            continue;
        snprintf(buf, len, "%.4000s/%s", prefix, cands[i]);
        if (stat(buf, &st) == 0)
            return;
    }
    /* None: the first, so an error names where it was looked for. */
    snprintf(buf, len, "%.4000s/%s", prefix, a);
}

/* "sim = ...": 0 off, 1 on (find it), -1 a directory (or garbage). */
static int sim_word(const char *v)
{
    static const char *off[] = {"", "off", "no", "false", "0"}, *on[] = {"on", "yes", "true", "1"};
    for (size_t i = 0; i < sizeof off / sizeof off[0]; i++)
        if (strcmp(v, off[i]) == 0)
            return 0;
    for (size_t i = 0; i < sizeof on / sizeof on[0]; i++)
        if (strcmp(v, on[i]) == 0)
            return 1;
    return -1;
}

int rt_config_load(struct rt_config *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    const char *path = getenv("GPUMEM_RUNTIME_CONFIG");
    if (read_file(c, path && *path ? path : DEFAULT_CONFIG, err, errlen) < 0)
        return -1;
    if (*c->runtime) {
        if (!is_exec(c->runtime)) {
            snprintf(err, errlen, "real runtime \"%s\" (from %s) is not an executable", c->runtime,
                     path && *path ? path : DEFAULT_CONFIG);
            return -1;
        }
        if (is_self(c->runtime)) {
            snprintf(err, errlen, "real runtime \"%s\" is gpumem-runtime itself", c->runtime);
            return -1;
        }
    } else if (search_path(c->runtime, sizeof c->runtime) < 0) {
        snprintf(err, errlen, "no real OCI runtime found (nvidia-container-runtime, runc, crun in PATH); "
                              "set \"runtime = /path\" in %s", DEFAULT_CONFIG);
        return -1;
    }
    /* Relative to this program, <prefix>/bin/gpumem-runtime: the build
     * tree (<prefix>/lib/libgpumem.so, <prefix>/sim) or what `make install`
     * lays out (<prefix>/lib/gpumem/libgpumem.so, <prefix>/libexec/gpumem/sim). */
    char prefix[PATH_MAX] = "";
    ssize_t n = readlink("/proc/self/exe", prefix, sizeof prefix - 1);
    if (n > 0) {
        prefix[n] = '\0';
        for (int i = 0; i < 2; i++) {
            char *slash = strrchr(prefix, '/');
            if (slash)
                *slash = '\0';
        }
    }
    if (!*c->shim && *prefix)
        first_existing(c->shim, sizeof c->shim, prefix, "lib/libgpumem.so", "lib/gpumem/libgpumem.so", "");
    if (sim_word(c->sim) == 0) {
        c->sim[0] = '\0';
    } else if (sim_word(c->sim) == 1) {
        c->sim[0] = '\0';
        /* Checked when a container needs it (rt_add_sim_mounts). */
        first_existing(c->sim, sizeof c->sim, *prefix ? prefix : "/usr", "sim/libcuda.so.1",
                       "libexec/gpumem/sim/libcuda.so.1", "lib/gpumem/sim/libcuda.so.1");
        *strrchr(c->sim, '/') = '\0';
    } else if (c->sim[0] != '/') {
        snprintf(err, errlen, "sim = \"%s\": expected on, off or an absolute directory", c->sim);
        return -1;
    }
    if (*c->nvidia_smi && c->nvidia_smi[0] != '/') {
        snprintf(err, errlen, "nvidia-smi = \"%s\": expected an absolute path", c->nvidia_smi);
        return -1;
    }
    if (*c->sim && !*c->sim_state)
        snprintf(c->sim_state, sizeof c->sim_state, RT_SIM_STATE_FMT, (unsigned)getuid());
    if (!*c->docker_root)
        snprintf(c->docker_root, sizeof c->docker_root, "/var/lib/docker");
    return 0;
}
