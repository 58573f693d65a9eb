/* gpumem-runtime: see runtime.h. Registered with Docker as
 *   "runtimes": {"gpumem": {"path": "/usr/local/bin/gpumem-runtime"}}
 * and called by containerd's shim exactly like runc. */
#include "runtime.h"
#include "gpumem/driver_limits.h"
#include "gpumem/admit.h"
#include "gpumem/hostutil.h"
#include "gpumem/swap.h"

#include <errno.h>
#include <limits.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* Errors go to stderr and, when the engine gave one, to the --log file in
 * its format: containerd reads the last error from there and Docker shows
 * it ("OCI runtime create failed: gpumem-runtime: ..."). */
static void fail_msg(const struct rt_args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_msg(const struct rt_args *a, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(msg, sizeof msg, "gpumem-runtime: ");
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", msg);
    if (!a->log || !*a->log)
        return;
    FILE *f = fopen(a->log, "ae");
    if (!f)
        return;
    char ts[64];
    time_t now = time(NULL);
    struct tm tm;
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    if (a->log_format && strcmp(a->log_format, "json") == 0) {
        json_t *j = json_pack("{s:s, s:s, s:s}", "level", "error", "msg", msg, "time", ts);
        char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
        if (s)
            fprintf(f, "%s\n", s);
        free(s);
        json_decref(j);
    } else {
        fprintf(f, "time=\"%s\" level=error msg=\"", ts);
        for (const char *p = msg; *p; p++)
            fprintf(f, *p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
        fputs("\"\n", f);
    }
    fclose(f);
}

static void group_path(const char *id, char *buf, size_t len)
{
    char state[PATH_MAX], name[GM_NAME_LEN];
    rt_group_name(id, name, sizeof name);
    snprintf(buf, len, "%s/%s", gm_state_dir(state, sizeof state), name);
}

/* A removed group leaves no driver limit behind. */
static void remove_group(const char *dir)
{
    gm_driver_limits_clear(dir);
    gm_group_remove(dir);
}

/* Removes the container's group, only if it is this container's: the
 * group named after its id, else (a pod's container, named after the pod:
 * pod_only) the one whose record names it and that carries a pod. A copy
 * of a Docker container's id-named group elsewhere (what an engine crash
 * can leave) is not a pod's: the daemon removes it once the container is
 * gone, never a second `delete` of the same id. */
static int remove_if_mine(const char *dir, const char *id, int pod_only)
{
    char err[256];
    const struct gm_limits *m = gm_limits_map(dir, err, sizeof err);
    if (!m)
        return 0;
    int mine = strncmp(m->container_id, id, sizeof m->container_id) == 0 && (!pod_only || m->pod[0]);
    gm_limits_unmap(m);
    if (mine)
        remove_group(dir);
    return mine;
}

static void remove_container_group(const char *id)
{
    char dir[PATH_MAX];
    group_path(id, dir, sizeof dir);
    if (!remove_if_mine(dir, id, 0) && rt_find_container_group(id, dir, sizeof dir) == 0)
        remove_if_mine(dir, id, 1);
}

/* On `create`: 0 = no group of ours to create (config.json untouched, or
 * pointed at the device plugin's group), 1 = group created at dir and
 * config.json rewritten, -1 = refused (reported, nothing left behind). */
static int prepare(const struct rt_args *a, const struct rt_config *c, char *dir, size_t dirlen)
{
    char err[1024];
    if (!a->id || !*a->id) {
        fail_msg(a, "create: no container id on the command line");
        return -1;
    }
    json_t *cfg = rt_bundle_load(a->bundle, err, sizeof err);
    if (!cfg) {
        fail_msg(a, "%s", err);
        return -1;
    }
    struct rt_k8s k;
    rt_k8s_read(cfg, &k);
    /* A pod's sandbox (pause) container runs no application. */
    if (rt_k8s_is_sandbox(&k)) {
        json_decref(cfg);
        return 0;
    }
    if (k.group) {
        int bad = rt_k8s_adopt(cfg, &k, a->id, dir, dirlen, err, sizeof err) < 0 ||
                  rt_bundle_save(a->bundle, cfg, err, sizeof err) < 0;
        if (bad)
            fail_msg(a, "container %.12s: %s", a->id, err);
        json_decref(cfg);
        return bad ? -1 : 0;
    }
    struct gm_limit_spec spec, rspec;
    int rc = gm_limit_from_env(rt_env_get, cfg, &spec, err, sizeof err);
    int rrc = rc < 0 ? 0 : gm_request_from_env(rt_env_get, cfg, &rspec, err, sizeof err);
    if (rc < 0 || rrc < 0 || (rc == 0 && rrc == 0)) {
        if (rc < 0 || rrc < 0)
            fail_msg(a, "container %.12s: %s", a->id, err);
        json_decref(cfg);
        return rc < 0 || rrc < 0 ? -1 : 0;
    }
    struct gm_limits l;
    gm_limits_init(&l);
    if (rc > 0 && gm_limits_from_spec(&l, &spec, rt_index_uuid, cfg, err, sizeof err) < 0) {
        fail_msg(a, "container %.12s: GPU memory limit: %s", a->id, err);
        json_decref(cfg);
        return -1;
    }
    uint64_t swap = 0;
    int promote = 0;
    if (gm_swap_from_env(rt_env_get, cfg, &swap, &promote, err, sizeof err) < 0) {
        fail_msg(a, "container %.12s: %s", a->id, err);
        json_decref(cfg);
        return -1;
    }
    l.swap = swap;
    l.swap_flags = promote && swap ? GM_SWAP_PROMOTE : 0;
    /* Request, priority, GPUMEM_OOM and GPUMEM_WAIT: read here, once, as
     * the limit is (docs/limits.md); the container never reads them. */
    double timeout = -1;
    const char *wait = rt_env_get("GPUMEM_WAIT", cfg);
    if ((rrc > 0 && gm_requests_from_spec(&l, &rspec, rt_index_uuid, cfg, err, sizeof err) < 0) ||
        gm_policy_from_env(rt_env_get, cfg, &l, err, sizeof err) < 0 ||
        (wait && gm_parse_timeout(wait, &timeout, err, sizeof err) < 0)) {
        fail_msg(a, "container %.12s: %s%s", a->id, wait && strstr(err, "timeout") == err ? "GPUMEM_WAIT: " : "", err);
        json_decref(cfg);
        return -1;
    }
    rt_identity(cfg, a->id, c, &l);
    l.created_unix = (uint64_t)time(NULL);

    struct stat st;
    char state[PATH_MAX], rootfs[PATH_MAX];
    if (stat(c->shim, &st) != 0) {
        fail_msg(a, "the shim %s: %s (set \"shim = /path\" in /etc/gpumem/runtime.conf)", c->shim, strerror(errno));
        json_decref(cfg);
        return -1;
    }
    if (rt_rootfs(a->bundle, cfg, rootfs, sizeof rootfs) < 0) {
        fail_msg(a, "bundle %s: root.path too long", a->bundle);
        json_decref(cfg);
        return -1;
    }
    if (gm_mkdir_p(gm_state_dir(state, sizeof state)) < 0) {
        fail_msg(a, "%s: %s", state, strerror(errno));
        json_decref(cfg);
        return -1;
    }
    char pod_group[GM_NAME_LEN], name[GM_NAME_LEN];
    if (rt_k8s_group_name(&k, pod_group, sizeof pod_group) == 0) {
        if (rt_k8s_unique_name(state, pod_group, a->id, name, sizeof name) < 0) {
            fail_msg(a, "container %.12s: groups %s and %s_<id> exist already", a->id, pod_group, pod_group);
            json_decref(cfg);
            return -1;
        }
        snprintf(l.name, sizeof l.name, "%s", name);
        snprintf(dir, dirlen, "%.4000s/%s", state, name);
    } else {
        group_path(a->id, dir, dirlen);
    }
    static struct gm_gpu gpus[GM_MAX_DEVICES];
    struct gm_admit ad = {.state = state, .dir = dir, .l = &l, .mode = 0666, .gpus = gpus,
                          .ngpus = gm_nvml_gpus(rt_nvml_lib, gpus, GM_MAX_DEVICES), .wait = wait != NULL,
                          .timeout = timeout, .creator = "gpumem-runtime"};
    int lock_fd = gm_admit_create(&ad, err, sizeof err);
    if (lock_fd < 0) {
        fail_msg(a, "container %.12s: %s%s", a->id, err,
                 lock_fd == -2 && !wait ? " (GPUMEM_WAIT=TIMEOUT queues it until it fits)" : "");
        json_decref(cfg);
        return -1;
    }
    /* The record is written before the admission is done: a runtime killed
     * before that leaves a group the next admission removes. */
    int recorded = rt_write_record(dir, a->id, a->bundle, a->root, err, sizeof err);
    gm_admit_done(state, lock_fd);
    if (recorded < 0 ||
        rt_write_preload(rootfs, dir, err, sizeof err) < 0 || rt_add_mounts(cfg, dir, c->shim, err, sizeof err) < 0 ||
        (*c->sim && rt_add_sim_mounts(cfg, c, err, sizeof err) < 0) ||
        (*c->nvidia_smi && rt_add_smi_mount(cfg, c, err, sizeof err) < 0) ||
        rt_bundle_save(a->bundle, cfg, err, sizeof err) < 0) {
        fail_msg(a, "container %.12s: %s", a->id, err);
        remove_group(dir);
        json_decref(cfg);
        return -1;
    }
    json_decref(cfg);
    return 1;
}

int main(int argc, char **argv)
{
    struct rt_args a;
    struct rt_config c;
    char err[1024], dir[PATH_MAX];
    rt_parse_args(argc, argv, &a);
    if (rt_config_load(&c, err, sizeof err) < 0) {
        fail_msg(&a, "%s", err);
        return 1;
    }
    argv[0] = c.runtime;
    /* Sim mode: device indices in limits are the simulated GPU's. */
    static char sim_nvml[sizeof c.sim + 32];
    if (*c.sim) {
        snprintf(sim_nvml, sizeof sim_nvml, "%s/libnvidia-ml.so.1", c.sim);
        rt_nvml_lib = sim_nvml;
        setenv("GPUMEM_SIM_STATE", c.sim_state, 1);
    }
    if (a.command && strcmp(a.command, "create") == 0) {
        int rc = prepare(&a, &c, dir, sizeof dir);
        if (rc < 0)
            return 1;
        if (rc > 0) {
            /* Wait for the real runtime, so a create that fails there
             * leaves no group behind either. */
            fflush(NULL);
            /* posix_spawn: vfork-like, cheaper than fork + exec. */
            pid_t pid;
            int err_spawn = posix_spawn(&pid, c.runtime, NULL, NULL, argv, environ);
            if (err_spawn != 0) {
                fail_msg(&a, "%s: %s", c.runtime, strerror(err_spawn));
                remove_group(dir);
                return 127;
            }
            int status;
            while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR) {
                    status = 1 << 8;
                    break;
                }
            int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            if (code != 0)
                remove_group(dir);
            else
                rt_driver_limits_created(&a, dir);
            return code;
        }
    } else if (a.command && strcmp(a.command, "delete") == 0 && a.id) {
        remove_container_group(a.id);
    } else if (a.command && strcmp(a.command, "start") == 0 && a.id) {
        group_path(a.id, dir, sizeof dir);
        rt_driver_limits_started(&a, dir);
    }
    execv(c.runtime, argv);
    fail_msg(&a, "%s: %s", c.runtime, strerror(errno));
    return 127;
}
