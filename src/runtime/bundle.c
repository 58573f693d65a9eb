/* The command line and the bundle's config.json. */
#include "runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* runc's global options that take a value (as "--opt value" or "--opt=value"). */
static int global_takes_value(const char *a)
{
    static const char *opts[] = {"--root", "--log", "--log-format", "--criu", "--rootless"};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (strcmp(a, opts[i]) == 0)
            return 1;
    return 0;
}

/* Options of `create` that take a value. */
static int create_takes_value(const char *a)
{
    static const char *opts[] = {"--bundle", "-b", "--console-socket", "--pid-file", "--preserve-fds"};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (strcmp(a, opts[i]) == 0)
            return 1;
    return 0;
}

static const char *opt_value(const char *arg, const char *name)
{
    size_t n = strlen(name);
    return strncmp(arg, name, n) == 0 && arg[n] == '=' ? arg + n + 1 : NULL;
}

void rt_parse_args(int argc, char **argv, struct rt_args *a)
{
    memset(a, 0, sizeof *a);
    int i = 1;
    for (; i < argc; i++) {
        const char *v;
        if ((v = opt_value(argv[i], "--log")))
            a->log = v;
        else if ((v = opt_value(argv[i], "--log-format")))
            a->log_format = v;
        else if ((v = opt_value(argv[i], "--root")))
            a->root = v;
        if (argv[i][0] != '-')
            break;
        if (global_takes_value(argv[i]) && i + 1 < argc) {
            if (strcmp(argv[i], "--log") == 0)
                a->log = argv[i + 1];
            else if (strcmp(argv[i], "--log-format") == 0)
                a->log_format = argv[i + 1];
            else if (strcmp(argv[i], "--root") == 0)
                a->root = argv[i + 1];
            i++;
        }
    }
    if (i >= argc)
        return;
    a->command = argv[i];
    if (i + 1 < argc && argv[argc - 1][0] != '-')
        a->id = argv[argc - 1];
    if (strcmp(a->command, "create") != 0)
        return;
    a->bundle = ".";
    for (int j = i + 1; j < argc - 1; j++) {
        const char *v;
        if ((v = opt_value(argv[j], "--bundle")) || (v = opt_value(argv[j], "-b"))) {
            a->bundle = v;
        } else if ((v = opt_value(argv[j], "--pid-file"))) {
            a->pid_file = v;
        } else if (create_takes_value(argv[j])) {
            if (strcmp(argv[j], "--bundle") == 0 || strcmp(argv[j], "-b") == 0)
                a->bundle = argv[j + 1];
            else if (strcmp(argv[j], "--pid-file") == 0)
                a->pid_file = argv[j + 1];
            j++;
        }
    }
}

json_t *rt_bundle_load(const char *bundle, char *err, size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", bundle);
    json_error_t je;
    json_t *cfg = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!cfg) {
        if (je.line <= 0)
            snprintf(err, errlen, "bundle %s: cannot read config.json: %s", bundle, je.text);
        else
            snprintf(err, errlen, "bundle %s: config.json line %d column %d: %s", bundle, je.line, je.column,
                     je.text);
        return NULL;
    }
    if (!json_is_object(cfg)) {
        snprintf(err, errlen, "bundle %s: config.json is not a JSON object", bundle);
        json_decref(cfg);
        return NULL;
    }
    return cfg;
}

/* Written next to the original and renamed over it: the real runtime reads
 * either the old file or the new one, never half of one. Not fsynced: the
 * real runtime reads it from the page cache at once, and a bundle does not
 * outlive a crash of the machine in any use (the engine makes it afresh). */
int rt_bundle_save(const char *bundle, json_t *cfg, char *err, size_t errlen)
{
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/config.json", bundle);
    snprintf(tmp, sizeof tmp, "%s/.config.json.gpumem.%d", bundle, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "bundle %s: %s: %s", bundle, tmp, strerror(errno));
        return -1;
    }
    int rc = json_dumpfd(cfg, fd, JSON_COMPACT);
    if (close(fd) < 0)
        rc = -1;
    if (rc < 0 || rename(tmp, path) < 0) {
        snprintf(err, errlen, "bundle %s: writing config.json: %s", bundle, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int rt_rootfs(const char *bundle, json_t *cfg, char *buf, size_t len)
{
    const char *p = json_string_value(json_object_get(json_object_get(cfg, "root"), "path"));
    if (!p || !*p)
        p = "rootfs";
    int n = p[0] == '/' ? snprintf(buf, len, "%s", p) : snprintf(buf, len, "%s/%s", bundle, p);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

int rt_replace_file(const char *path, const char *text, char *err, size_t errlen)
{
    char tmp[PATH_MAX + 64];
    snprintf(tmp, sizeof tmp, "%.*s.tmp", PATH_MAX, path);
    FILE *f = fopen(tmp, "we");
    if (!f) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        return -1;
    }
    /* No fsync: a group directory describes a live container (see
     * gm_group_create). */
    int bad = fputs(text, f) < 0;
    bad |= fflush(f) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int rt_write_record(const char *group_dir, const char *id, const char *bundle, const char *root, char *err,
                    size_t errlen)
{
    char abs_bundle[PATH_MAX], path[PATH_MAX + 32], text[3 * PATH_MAX];
    if (!realpath(bundle, abs_bundle)) {
        snprintf(err, errlen, "bundle %s: %s", bundle, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%.*s/container", PATH_MAX, group_dir);
    /* runc's default root; crun's differs, and the bundle tells anyway. */
    snprintf(text, sizeof text, "id=%.200s\nbundle=%s\nstate=%.4000s/%.200s\n", id, abs_bundle,
             root && *root ? root : "/run/runc", id);
    return rt_replace_file(path, text, err, errlen);
}
