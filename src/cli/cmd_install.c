/* gpumem install docker / gpumem uninstall docker: registers gpumem-runtime
 * in Docker's daemon.json. The file is merged, never overwritten: every
 * other key stays as it was; an existing file is first copied to
 * daemon.json.gpumem-backup (none is made when there was no file); running
 * it twice changes nothing. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DAEMON_JSON "/etc/docker/daemon.json"

static void install_usage(FILE *out, int uninstall)
{
    if (uninstall) {
        fprintf(out, "Usage: gpumem uninstall docker [--config FILE] [--dry-run]\n"
                     "\n"
                     "Removes the \"gpumem\" runtime (and \"default-runtime\": \"gpumem\") from\n"
                     "Docker's daemon.json, keeping everything else. Restart dockerd afterwards.\n"
                     "\n"
                     "Options:\n"
                     "      --config FILE   daemon.json to edit (default " DAEMON_JSON ")\n"
                     "      --dry-run       print the resulting daemon.json, change nothing\n");
        return;
    }
    fprintf(out, "Usage: gpumem install docker [--default] [--dry-run] [--runtime-path PATH] [--config FILE]\n"
                 "\n"
                 "Registers gpumem-runtime with Docker as the runtime \"gpumem\", so that\n"
                 "  docker run --runtime=gpumem -e NVIDIA_GPU_MEMORY_LIMIT=4096 IMAGE\n"
                 "runs IMAGE under a 4096 MiB GPU memory limit. daemon.json is merged, never\n"
                 "overwritten; an existing one is first copied to daemon.json.gpumem-backup.\n"
                 "Restart dockerd afterwards (systemctl restart docker, or SIGHUP to reload\n"
                 "runtimes).\n"
                 "\n"
                 "Options:\n"
                 "      --default            make gpumem the default runtime (no --runtime needed)\n"
                 "      --runtime-path PATH  gpumem-runtime to register (default: next to gpumem)\n"
                 "      --config FILE        daemon.json to edit (default " DAEMON_JSON ")\n"
                 "      --dry-run            print the resulting daemon.json, change nothing\n");
}

static int runtime_next_to_us(char *buf, size_t len)
{
    char dir[PATH_MAX];
    if (exe_dir(dir, sizeof dir, 0) < 0)
        return -1;
    snprintf(buf, len, "%.4000s/gpumem-runtime", dir);
    return access(buf, X_OK);
}

static json_t *load(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT)
        return json_object();
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) {
        die(1, "%s: %s (line %d): fix it by hand, it is left as it is", path, je.text, je.line);
        return NULL;
    }
    if (!json_is_object(j)) {
        die(1, "%s: not a JSON object: left as it is", path);
        json_decref(j);
        return NULL;
    }
    return j;
}

/* 1 copied, 0 nothing to copy (no such file), -1 error. */
static int copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "re");
    if (!in)
        return errno == ENOENT ? 0 : -1;
    FILE *out = fopen(to, "we");
    if (!out) {
        fclose(in);
        return -1;
    }
    char buf[8192];
    size_t n;
    int rc = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            rc = -1;
    fclose(in);
    return fclose(out) != 0 ? -1 : rc < 0 ? -1 : 1;
}

/* Backup of an existing file (once per change; *backed_up says whether
 * one was made), then temp + rename. */
static int save(const char *path, json_t *j, int *backed_up)
{
    char tmp[PATH_MAX + 32], bak[PATH_MAX + 32], dir[PATH_MAX];
    snprintf(bak, sizeof bak, "%s.gpumem-backup", path);
    snprintf(tmp, sizeof tmp, "%s.gpumem-tmp", path);
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        mkdir(dir, 0755);
    }
    if ((*backed_up = copy_file(path, bak)) < 0)
        return die(1, "%s: cannot write backup: %s", bak, strerror(errno));
    if (json_dump_file(j, tmp, JSON_INDENT(4) | JSON_PRESERVE_ORDER) < 0 || rename(tmp, path) < 0) {
        unlink(tmp);
        return die(1, "%s: cannot write: %s", path, strerror(errno));
    }
    return 0;
}

static int run_install(int argc, char **argv, int uninstall)
{
    static const struct option opts[] = {
        {"default", no_argument, 0, 'd'},        {"dry-run", no_argument, 0, 'n'},
        {"runtime-path", required_argument, 0, 'r'}, {"config", required_argument, 0, 'c'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0},
    };
    const char *config = DAEMON_JSON;
    char rpath[PATH_MAX] = "";
    int dflt = 0, dry = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dflt = 1; break;
        case 'n': dry = 1; break;
        case 'r':
            if (!realpath(optarg, rpath))
                return die(2, "--runtime-path \"%s\": %s", optarg, strerror(errno));
            break;
        case 'c': config = optarg; break;
        case 'h': install_usage(stdout, uninstall); return 0;
        default: install_usage(stderr, uninstall); return 2;
        }
    }
    if (optind >= argc || strcmp(argv[optind], "docker") != 0) {
        die(2, "say what to %s into: docker", uninstall ? "remove gpumem from" : "install gpumem");
        install_usage(stderr, uninstall);
        return 2;
    }
    if (uninstall && (dflt || *rpath))
        return die(2, "--default and --runtime-path are for install");
    if (!uninstall && !*rpath && runtime_next_to_us(rpath, sizeof rpath) < 0)
        return die(1, "gpumem-runtime was not found next to gpumem; give --runtime-path PATH");

    json_t *j = load(config);
    if (!j)
        return 1;
    json_t *before = json_deep_copy(j);
    json_t *runtimes = json_object_get(j, "runtimes");
    if (runtimes && !json_is_object(runtimes)) {
        json_decref(j);
        json_decref(before);
        return die(1, "%s: \"runtimes\" is not an object: left as it is", config);
    }
    const char *dr = json_string_value(json_object_get(j, "default-runtime"));
    if (uninstall) {
        if (runtimes) {
            json_object_del(runtimes, "gpumem");
            if (json_object_size(runtimes) == 0)
                json_object_del(j, "runtimes");
        }
        if (dr && strcmp(dr, "gpumem") == 0)
            json_object_del(j, "default-runtime");
    } else {
        if (!runtimes) {
            runtimes = json_object();
            json_object_set_new(j, "runtimes", runtimes);
        }
        json_t *entry = json_object_get(runtimes, "gpumem");
        if (!json_is_object(entry)) {
            entry = json_object();
            json_object_set_new(runtimes, "gpumem", entry);
        }
        /* Only "path": runtimeArgs the admin added stay. */
        json_object_set_new(entry, "path", json_string(rpath));
        if (dflt)
            json_object_set_new(j, "default-runtime", json_string("gpumem"));
    }
    int changed = !json_equal(before, j);
    json_decref(before);
    int rc = 0, backed_up = 0;
    if (dry) {
        char *s = json_dumps(j, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
        printf("%s\n", s ? s : "");
        free(s);
        fprintf(stderr, "%s: --dry-run: %s %s\n", die_name, config, changed ? "would change" : "is already up to date");
    } else if (!changed) {
        printf("%s: already up to date\n", config);
    } else if ((rc = save(config, j, &backed_up)) == 0) {
        const char *what = uninstall ? "gpumem runtime removed" : "gpumem runtime registered";
        if (backed_up)
            printf("%s: %s (previous version in %s.gpumem-backup)\n", config, what, config);
        else
            printf("%s: %s (new file: there was none before)\n", config, what);
        printf("Restart dockerd to apply it: systemctl restart docker (or: kill -HUP $(pidof dockerd))\n");
        if (!uninstall)
            printf("Then: docker run --runtime=gpumem -e NVIDIA_GPU_MEMORY_LIMIT=4096 IMAGE\n");
    }
    json_decref(j);
    return rc;
}

int cmd_install(int argc, char **argv) { return run_install(argc, argv, 0); }
int cmd_uninstall(int argc, char **argv) { return run_install(argc, argv, 1); }
