/* gpumem-k8s's command line. Every option has a default that fits a node
 * set up by deploy/kubernetes/; paths that depend on where gpumem is
 * installed (the shim, the simulated GPU) are found relative to this
 * program, as gpumem-runtime finds them. */
#include "plugin.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpumem/size.h"

void kp_usage(FILE *f)
{
    fputs("Usage: gpumem-k8s [OPTION]...\n"
          "The Kubernetes device plugin of gpumem: advertises each GPU's memory to the kubelet in\n"
          "units (gpumem.io/memory, 1 GiB each by default) and, when a pod is given some, makes a\n"
          "gpumem group with those bytes as its per-GPU limit and has the kubelet mount the shim\n"
          "and the group into the container, which is then held to that limit.\n"
          "\n"
          "  --resource NAME        the memory resource (default gpumem.io/memory)\n"
          "  --unit SIZE            bytes per unit, at least 128M (default 1G); binary units\n"
          "  --gpu-resource NAME    also advertise whole GPUs under NAME (e.g. gpumem.io/gpu); default none\n"
          "  --kubelet-dir DIR      the kubelet's device plugin directory (default /var/lib/kubelet/device-plugins):\n"
          "                         kubelet.sock there, our sockets gpumem-memory.sock and gpumem-gpu.sock\n"
          "  --checkpoint FILE      the kubelet's device manager checkpoint (default DIR/kubelet_internal_checkpoint)\n"
          "  --nvml LIB             the NVML library (default libnvidia-ml.so.1; with --sim the simulated one)\n"
          "  --sim[=DIR]            use the simulated GPU (DIR: its libraries; default next to gpumem) and mount\n"
          "                         it into containers, as gpumem-runtime's \"sim = on\"\n"
          "  --sim-state DIR        the simulated GPU's state on the host (default /dev/shm/gpumem-sim-<uid>)\n"
          "  --shim PATH            the shim to mount into containers (default: next to gpumem-k8s)\n"
          "  --nvidia-smi PATH      an nvidia-smi to mount read-only at /usr/bin/nvidia-smi (default none)\n"
          "  --dev-dir DIR          where the nvidia* device nodes are looked for (default /dev)\n"
          "  --health-interval MS   how often GPU health is read from NVML (default 1000)\n"
          "  --collect-interval S   how often unused groups are looked for (default 60)\n"
          "  --grace S              how long a group Allocate made may wait for the kubelet's\n"
          "                         checkpoint to name it (default 600)\n"
          "  -h, --help             this text\n"
          "      --version          the version\n"
          "\n"
          "Groups live in $GPUMEM_STATE_DIR (default /run/gpumem). SIGTERM or SIGINT stops the plugin\n"
          "and removes its sockets. See gpumem-k8s(1) and docs/k8s-plugin.md.\n",
          f);
}

static int parse_int(const char *opt, const char *v, int min, int max, int *out, char *err, size_t errlen)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < min || x > max) {
        snprintf(err, errlen, "%s \"%s\": expected a whole number from %d to %d", opt, v, min, max);
        return -1;
    }
    *out = (int)x;
    return 0;
}

/* <prefix> of <prefix>/bin/gpumem-k8s. */
static void prefix_dir(char *buf, size_t len)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    buf[0] = '\0';
    if (n <= 0)
        return;
    exe[n] = '\0';
    for (int i = 0; i < 2; i++) {
        char *s = strrchr(exe, '/');
        if (!s)
            return;
        *s = '\0';
    }
    snprintf(buf, len, "%s", exe);
}

static void first_existing(char *out, size_t len, const char *prefix, const char *a, const char *b)
{
    snprintf(out, len, "%s/%s", prefix, a);
    if (access(out, F_OK) != 0)
        snprintf(out, len, "%s/%s", prefix, b);
}

static int valid_resource(const char *r)
{
    /* domain/name, as the kubelet wants an extended resource: both parts
     * non-empty, DNS characters. */
    const char *slash = strchr(r, '/');
    if (!slash || slash == r || !slash[1] || strchr(slash + 1, '/') || strlen(r) > 250)
        return 0;
    for (const char *p = r; *p; p++)
        if (!(*p == '/' || *p == '.' || *p == '-' || *p == '_' || (*p >= 'a' && *p <= 'z') ||
              (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
            return 0;
    return 1;
}

int kp_parse_options(int argc, char **argv, struct kp_options *o, char *err, size_t errlen)
{
    enum { O_RES = 256, O_UNIT, O_GPU, O_DIR, O_CKPT, O_NVML, O_SIM, O_SIMSTATE, O_SHIM, O_SMI, O_HEALTH,
           O_COLLECT, O_GRACE, O_VERSION, O_DEVDIR };
    static const struct option opts[] = {
        {"resource", required_argument, 0, O_RES},
        {"unit", required_argument, 0, O_UNIT},
        {"gpu-resource", required_argument, 0, O_GPU},
        {"kubelet-dir", required_argument, 0, O_DIR},
        {"checkpoint", required_argument, 0, O_CKPT},
        {"nvml", required_argument, 0, O_NVML},
        {"sim", optional_argument, 0, O_SIM},
        {"sim-state", required_argument, 0, O_SIMSTATE},
        {"shim", required_argument, 0, O_SHIM},
        {"nvidia-smi", required_argument, 0, O_SMI},
        {"health-interval", required_argument, 0, O_HEALTH},
        {"collect-interval", required_argument, 0, O_COLLECT},
        {"grace", required_argument, 0, O_GRACE},
        {"dev-dir", required_argument, 0, O_DEVDIR},
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, O_VERSION},
        {0, 0, 0, 0},
    };
    char prefix[PATH_MAX];
    int sim = 0;
    memset(o, 0, sizeof *o);
    snprintf(o->dir, sizeof o->dir, "/var/lib/kubelet/device-plugins");
    snprintf(o->resource, sizeof o->resource, "gpumem.io/memory");
    snprintf(o->dev_dir, sizeof o->dev_dir, "/dev");
    o->unit = 1ull << 30;
    o->health_ms = 1000;
    o->collect_s = 60;
    o->grace_s = 600;
    prefix_dir(prefix, sizeof prefix);
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        const char *v = optarg;
        switch (c) {
        case O_RES: snprintf(o->resource, sizeof o->resource, "%s", v); break;
        case O_GPU: snprintf(o->gpu_resource, sizeof o->gpu_resource, "%s", v); break;
        case O_DIR: snprintf(o->dir, sizeof o->dir, "%s", v); break;
        case O_CKPT: snprintf(o->checkpoint, sizeof o->checkpoint, "%s", v); break;
        case O_NVML: snprintf(o->nvml, sizeof o->nvml, "%s", v); break;
        case O_SIMSTATE: snprintf(o->sim_state, sizeof o->sim_state, "%s", v); break;
        case O_SHIM: snprintf(o->shim, sizeof o->shim, "%s", v); break;
        case O_SMI: snprintf(o->nvidia_smi, sizeof o->nvidia_smi, "%s", v); break;
        case O_DEVDIR: snprintf(o->dev_dir, sizeof o->dev_dir, "%s", v); break;
        case O_SIM:
            sim = 1;
            if (v)
                snprintf(o->sim, sizeof o->sim, "%s", v);
            break;
        case O_UNIT: {
            char e[256];
            if (gm_parse_size(v, GM_BARE_REJECT, &o->unit, e, sizeof e) < 0) {
                snprintf(err, errlen, "--unit: %s", e);
                return -1;
            }
            if (o->unit < KP_MIN_UNIT || o->unit % (1u << 20)) {
                snprintf(err, errlen, "--unit \"%s\": expected a whole number of MiB, at least 128M", v);
                return -1;
            }
            break;
        }
        case O_HEALTH:
            if (parse_int("--health-interval", v, 10, 3600000, &o->health_ms, err, errlen) < 0)
                return -1;
            break;
        case O_COLLECT:
            if (parse_int("--collect-interval", v, 1, 86400, &o->collect_s, err, errlen) < 0)
                return -1;
            break;
        case O_GRACE:
            if (parse_int("--grace", v, 0, 86400 * 7, &o->grace_s, err, errlen) < 0)
                return -1;
            break;
        case 'h': return 1;
        case O_VERSION: return 2;
        default:
            snprintf(err, errlen, "unknown option \"%s\" (try --help)", argv[optind - 1]);
            return -1;
        }
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument \"%s\" (try --help)", argv[optind]);
        return -1;
    }
    if (!valid_resource(o->resource)) {
        snprintf(err, errlen, "--resource \"%s\": expected DOMAIN/NAME such as gpumem.io/memory", o->resource);
        return -1;
    }
    if (*o->gpu_resource && (!valid_resource(o->gpu_resource) || strcmp(o->gpu_resource, o->resource) == 0)) {
        snprintf(err, errlen, "--gpu-resource \"%s\": expected DOMAIN/NAME other than --resource", o->gpu_resource);
        return -1;
    }
    if (sim && !*o->sim)
        first_existing(o->sim, sizeof o->sim, prefix, "sim", "libexec/gpumem/sim");
    if (!*o->nvml)
        snprintf(o->nvml, sizeof o->nvml, sim ? "%s/libnvidia-ml.so.1" : "libnvidia-ml.so.1", o->sim);
    if (sim && !*o->sim_state) {
        const char *e = getenv("GPUMEM_SIM_STATE");
        if (e && *e)
            snprintf(o->sim_state, sizeof o->sim_state, "%s", e);
        else
            snprintf(o->sim_state, sizeof o->sim_state, "/dev/shm/gpumem-sim-%u", (unsigned)getuid());
    }
    if (!*o->shim)
        first_existing(o->shim, sizeof o->shim, prefix, "lib/libgpumem.so", "lib/gpumem/libgpumem.so");
    if (!*o->checkpoint)
        snprintf(o->checkpoint, sizeof o->checkpoint, "%s/kubelet_internal_checkpoint", o->dir);
    if (strlen(o->dir) > 80) {
        snprintf(err, errlen, "--kubelet-dir \"%s\": too long for a unix socket path", o->dir);
        return -1;
    }
    return 0;
}
