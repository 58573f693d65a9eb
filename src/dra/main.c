/* gpumem-dra: see dra.h and man/gpumem-dra.1. */
#include "dra.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kubelet.h"

static const char usage_text[] =
    "Usage: gpumem-dra [OPTIONS]\n"
    "\n"
    "A Kubernetes Dynamic Resource Allocation driver (resource.k8s.io/v1) that\n"
    "publishes each GPU of this node with a consumable \"memory\" capacity and\n"
    "holds every ResourceClaim to the memory the scheduler gave it, with a gpumem\n"
    "group. Runs on every GPU node (deploy/kubernetes/dra/daemonset.yaml).\n"
    "\n"
    "API server (in-cluster: KUBERNETES_SERVICE_HOST/PORT, the service account):\n"
    "  --node NAME              this node (default $NODE_NAME); the pool's name\n"
    "  --driver NAME            driver name (default gpumem.io)\n"
    "  --unit QUANTITY          memory request step and default (default 1Gi; a\n"
    "                           Kubernetes quantity, at least 1Mi)\n"
    "  --unhealthy taint|remove a GPU NVML reports lost is tainted NoSchedule\n"
    "                           (default) or left out of the ResourceSlice\n"
    "  --interval SECONDS       how often GPU health is read (default 10)\n"
    "  --api-server URL         https://HOST:PORT instead of the environment\n"
    "  --service-account DIR    token and ca.crt (default\n"
    "                           /var/run/secrets/kubernetes.io/serviceaccount)\n"
    "Node:\n"
    "  --state-dir DIR          per-claim checkpoints (default /var/lib/gpumem-dra)\n"
    "  --cdi-dir DIR            where CDI specs are written (default /var/run/cdi)\n"
    "  --groups-dir DIR         where gpumem groups are created (default the\n"
    "                           gpumem state directory, /run/gpumem as root)\n"
    "  --shim PATH              libgpumem.so on the host (default next to this\n"
    "                           program: ../lib/gpumem/libgpumem.so)\n"
    "  --nvml PATH              libnvidia-ml.so.1 to use (default the system's)\n"
    "Kubelet:\n"
    "  --registry-dir DIR       kubelet's plugin registry (default\n"
    "                           /var/lib/kubelet/plugins_registry)\n"
    "  --plugins-dir DIR        parent of the driver's socket directory (default\n"
    "                           /var/lib/kubelet/plugins)\n"
    "  --once                   publish the ResourceSlice once and exit\n"
    "  -h, --help               this text\n"
    "\n"
    "Exit status: 0 after SIGTERM or SIGINT (or --once done), 1 on a fatal error,\n"
    "2 on bad options.\n";

static volatile sig_atomic_t stop;
static void on_signal(int sig) { stop = sig; }

static int bad(const char *fmt, const char *v)
{
    fprintf(stderr, "gpumem-dra: ");
    fprintf(stderr, fmt, v);
    fprintf(stderr, " (gpumem-dra --help)\n");
    return 2;
}

/* A driver name is a DNS subdomain (lower case, dots), at most 63 long. */
static int valid_driver(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || s[0] == '.' || s[0] == '-' || s[n - 1] == '.' || s[n - 1] == '-')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '-'))
            return 0;
    return 1;
}

static void default_shim(char *buf, size_t len)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    struct stat st;
    if (n <= 0) {
        snprintf(buf, len, "/usr/local/lib/gpumem/libgpumem.so");
        return;
    }
    exe[n] = '\0';
    for (int i = 0; i < 2; i++) {
        char *s = strrchr(exe, '/');
        if (s)
            *s = '\0';
    }
    snprintf(buf, len, "%.4000s/lib/gpumem/libgpumem.so", exe);
    if (stat(buf, &st) != 0) {
        char build[4200];
        snprintf(build, sizeof build, "%.4000s/lib/libgpumem.so", exe);
        if (stat(build, &st) == 0)
            snprintf(buf, len, "%.4000s", build);
    }
}

int main(int argc, char **argv)
{
    static struct dra_options o;
    static struct dra_kubelet_options ko;
    char err[DRA_ERRLEN];
    const char *server = NULL, *sa = NULL, *nvml = NULL;
    int interval = 10, once = 0;
    snprintf(o.driver, sizeof o.driver, "%s", DRA_DEFAULT_DRIVER);
    o.unit = 1ULL << 30;
    snprintf(o.state_dir, sizeof o.state_dir, "/var/lib/gpumem-dra");
    snprintf(o.cdi_dir, sizeof o.cdi_dir, "/var/run/cdi");
    gm_state_dir(o.groups_dir, sizeof o.groups_dir);
    default_shim(o.shim, sizeof o.shim);
    snprintf(ko.registry_dir, sizeof ko.registry_dir, "/var/lib/kubelet/plugins_registry");
    snprintf(ko.plugins_dir, sizeof ko.plugins_dir, "/var/lib/kubelet/plugins");
    const char *node = getenv("NODE_NAME");
    if (node)
        snprintf(o.node, sizeof o.node, "%s", node);

    enum { O_NODE = 256, O_DRIVER, O_UNIT, O_UNHEALTHY, O_INTERVAL, O_SERVER, O_SA, O_STATE, O_CDI, O_GROUPS, O_SHIM,
           O_NVML, O_REGISTRY, O_PLUGINS, O_ONCE };
    static const struct option opts[] = {
        {"node", 1, 0, O_NODE},         {"driver", 1, 0, O_DRIVER},       {"unit", 1, 0, O_UNIT},
        {"unhealthy", 1, 0, O_UNHEALTHY}, {"interval", 1, 0, O_INTERVAL}, {"api-server", 1, 0, O_SERVER},
        {"service-account", 1, 0, O_SA}, {"state-dir", 1, 0, O_STATE},    {"cdi-dir", 1, 0, O_CDI},
        {"groups-dir", 1, 0, O_GROUPS}, {"shim", 1, 0, O_SHIM},           {"nvml", 1, 0, O_NVML},
        {"registry-dir", 1, 0, O_REGISTRY}, {"plugins-dir", 1, 0, O_PLUGINS}, {"once", 0, 0, O_ONCE},
        {"help", 0, 0, 'h'},            {0, 0, 0, 0}};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        case O_NODE: snprintf(o.node, sizeof o.node, "%s", optarg); break;
        case O_DRIVER:
            if (!valid_driver(optarg))
                return bad("--driver \"%s\": expected a DNS subdomain of at most 63 characters (gpumem.io)", optarg);
            snprintf(o.driver, sizeof o.driver, "%s", optarg);
            break;
        case O_UNIT:
            if (dra_quantity_parse(optarg, &o.unit, err, sizeof err) < 0)
                return bad("--unit: %s", err);
            if (o.unit < (1u << 20))
                return bad("--unit \"%s\": less than 1Mi", optarg);
            break;
        case O_UNHEALTHY:
            if (strcmp(optarg, "taint") == 0)
                o.unhealthy = DRA_UNHEALTHY_TAINT;
            else if (strcmp(optarg, "remove") == 0)
                o.unhealthy = DRA_UNHEALTHY_REMOVE;
            else
                return bad("--unhealthy \"%s\": expected taint or remove", optarg);
            break;
        case O_INTERVAL:
            errno = 0;
            interval = (int)strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || interval < 1 || interval > 3600)
                return bad("--interval \"%s\": expected whole seconds, 1 to 3600", optarg);
            break;
        case O_SERVER: server = optarg; break;
        case O_SA: sa = optarg; break;
        case O_STATE: snprintf(o.state_dir, sizeof o.state_dir, "%s", optarg); break;
        case O_CDI: snprintf(o.cdi_dir, sizeof o.cdi_dir, "%s", optarg); break;
        case O_GROUPS: snprintf(o.groups_dir, sizeof o.groups_dir, "%s", optarg); break;
        case O_SHIM: snprintf(o.shim, sizeof o.shim, "%s", optarg); break;
        case O_NVML: nvml = optarg; break;
        case O_REGISTRY: snprintf(ko.registry_dir, sizeof ko.registry_dir, "%s", optarg); break;
        case O_PLUGINS: snprintf(ko.plugins_dir, sizeof ko.plugins_dir, "%s", optarg); break;
        case O_ONCE: once = 1; break;
        default:
            return bad("unknown option \"%s\"", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return bad("unexpected argument \"%s\"", argv[optind]);
    if (!*o.node)
        return bad("%sno node name: give --node or set NODE_NAME (the downward API's spec.nodeName)", "");
    struct stat st;
    if (stat(o.shim, &st) != 0) {
        fprintf(stderr, "gpumem-dra: the shim %s: %s (--shim PATH)\n", o.shim, strerror(errno));
        return 1;
    }
    if (dra_nvml_open(nvml, err, sizeof err) < 0) {
        fprintf(stderr, "gpumem-dra: %s\n", err);
        return 1;
    }
    struct kube *k = kube_open(server, sa, err, sizeof err);
    if (!k) {
        fprintf(stderr, "gpumem-dra: %s\n", err);
        return 1;
    }
    struct sigaction sa_term = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa_term, NULL);
    sigaction(SIGINT, &sa_term, NULL);
    signal(SIGPIPE, SIG_IGN);

    static struct dra_inventory inv, prev;
    int have_prev = 0, published = 0, rc = 0;
    struct dra_node node_ctx = {.o = &o, .k = k, .inv = &inv};
    struct dra_kubelet *kl = NULL;
    if (!once) {
        kl = dra_kubelet_start(&ko, &node_ctx, err, sizeof err);
        if (!kl) {
            fprintf(stderr, "gpumem-dra: %s\n", err);
            kube_close(k);
            return 1;
        }
    }
    while (!stop) {
        struct dra_inventory now;
        if (dra_inventory_read(&now, have_prev ? &prev : NULL, err, sizeof err) < 0) {
            dra_log("GPUs: %s", err);
        } else {
            for (int i = 0; i < now.n; i++) {
                const struct dra_gpu *g = &now.gpu[i];
                int was = 1;
                for (int j = 0; have_prev && j < prev.n; j++)
                    if (strcmp(prev.gpu[j].uuid, g->uuid) == 0)
                        was = prev.gpu[j].healthy;
                if (was && !g->healthy)
                    dra_log("gpu-%d %s is unhealthy: %s", g->index, g->uuid, g->health_reason);
                else if (!was && g->healthy)
                    dra_log("gpu-%d %s is healthy again", g->index, g->uuid);
            }
            dra_node_lock(&node_ctx);
            inv = now;
            dra_node_unlock(&node_ctx);
            prev = now;
            have_prev = 1;
            int changed = 0;
            if (dra_slice_publish(k, &o, &now, &changed, err, sizeof err) < 0) {
                dra_log("%s", err);
                rc = 1;
            } else {
                rc = 0;
                if (changed || !published)
                    dra_log("ResourceSlice of node %s: %d GPU%s%s", o.node, now.n, now.n == 1 ? "" : "s",
                            changed ? " (written)" : " (up to date)");
                published = 1;
            }
        }
        if (once)
            break;
        for (int i = 0; i < interval * 10 && !stop; i++)
            usleep(100000);
    }
    dra_kubelet_stop(kl);
    kube_close(k);
    return once ? rc : 0;
}
