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
                                                      : NULL;
        if (!dst) {
            snprintf(err, errlen, "%s:%d: unknown key \"%s\" (runtime, shim, docker-root)", path, lineno, key);
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
    if (!*c->shim) {
        /* Next to this program: <prefix>/bin/gpumem-runtime -> <prefix>/lib/libgpumem.so */
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n > 0) {
            exe[n] = '\0';
            for (int i = 0; i < 2; i++) {
                char *slash = strrchr(exe, '/');
                if (slash)
                    *slash = '\0';
            }
            snprintf(c->shim, sizeof c->shim, "%.4000s/lib/libgpumem.so", exe);
            struct stat st;
            if (stat(c->shim, &st) != 0) {
                char alt[sizeof c->shim];
                snprintf(alt, sizeof alt, "%.4000s/lib/gpumem/libgpumem.so", exe);
                if (stat(alt, &st) == 0)
                    snprintf(c->shim, sizeof c->shim, "%s", alt);
            }
        }
    }
    if (!*c->docker_root)
        snprintf(c->docker_root, sizeof c->docker_root, "/var/lib/docker");
    return 0;
}
