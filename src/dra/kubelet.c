/* The kubelet side, on the gRPC layer of src/k8s/grpc_server.h:
 *
 *   <registry_dir>/<driver>.sock       pluginregistration.Registration
 *       GetInfo -> {type: DRAPlugin, name: <driver>, endpoint: the socket
 *       below, supported_versions: [v1.DRAPlugin, v1beta1.DRAPlugin]};
 *       NotifyRegistrationStatus (logged)
 *   <plugins_dir>/<driver>/dra.sock    DRAPlugin, v1 and v1beta1 (the same
 *       messages): NodePrepareResources, NodeUnprepareResources
 *
 * The DRAPlugin socket is up before the registration socket appears, as
 * kubelet's plugin watcher calls it as soon as registration succeeds. Each
 * claim gets its own answer (an error string in its entry); the call as a
 * whole fails only for a request without claims. */
#include "kubelet.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dra.pb-c.h"
#include "grpc_server.h"
#include "gpumem/hostutil.h"
#include "pluginregistration.pb-c.h"

struct dra_kubelet {
    struct dra_node *node;
    struct gk_loop *loop;
    struct gk_server *reg, *dra;
    char dra_sock[4400], reg_sock[4400];
    pthread_t thread;
    atomic_int stop;
};

static void get_info(void *svc, const ProtobufCMessage *req, struct gk_reply *r)
{
    struct dra_kubelet *kl = svc;
    static char *versions[] = {"v1.DRAPlugin", "v1beta1.DRAPlugin"};
    Pluginregistration__PluginInfo info = PLUGINREGISTRATION__PLUGIN_INFO__INIT;
    info.type = "DRAPlugin";
    info.name = (char *)kl->node->o->driver;
    info.endpoint = kl->dra_sock;
    info.n_supported_versions = 2;
    info.supported_versions = versions;
    gk_reply_message(r, &info.base);
}

static void notify(void *svc, const ProtobufCMessage *req, struct gk_reply *r)
{
    const Pluginregistration__RegistrationStatus *st = (const void *)req;
    if (st->plugin_registered)
        dra_log("registered with kubelet");
    else
        dra_log("kubelet refused the registration: %s", st->error && *st->error ? st->error : "(no reason given)");
    Pluginregistration__RegistrationStatusResponse out = PLUGINREGISTRATION__REGISTRATION_STATUS_RESPONSE__INIT;
    gk_reply_message(r, &out.base);
}

static int check_claims(size_t n, Dra__Claim **claims, struct gk_reply *r)
{
    if (n == 0) {
        gk_reply_error(r, GRPC_STATUS_INVALID_ARGUMENT, "no claims in the request");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (!claims[i]->uid || !*claims[i]->uid) {
            gk_reply_error(r, GRPC_STATUS_INVALID_ARGUMENT, "claim %zu (%s/%s) has no uid", i,
                           claims[i]->namespace_ ? claims[i]->namespace_ : "", claims[i]->name ? claims[i]->name : "");
            return -1;
        }
    return 0;
}

/* The answer for one claim; what it points to lives in `mem` (freed by the
 * caller after the reply is packed). */
struct prep_mem {
    Dra__NodePrepareResourcesResponse__ClaimsEntry entry;
    Dra__NodePrepareResourceResponse resp;
    Dra__Device dev[DRA_MAX_GPUS], *devp[DRA_MAX_GPUS];
    char *req[DRA_MAX_GPUS], *cdi[1];
    struct dra_claim c;
    char cdi_id[400], err[DRA_ERRLEN];
};

static void prepare(void *svc, const ProtobufCMessage *msg, struct gk_reply *r)
{
    struct dra_kubelet *kl = svc;
    const Dra__NodePrepareResourcesRequest *in = (const void *)msg;
    if (check_claims(in->n_claims, in->claims, r) < 0)
        return;
    struct prep_mem *m = calloc(in->n_claims, sizeof *m);
    Dra__NodePrepareResourcesResponse__ClaimsEntry **ents = calloc(in->n_claims, sizeof *ents);
    if (!m || !ents) {
        free(m);
        free(ents);
        gk_reply_error(r, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    for (size_t i = 0; i < in->n_claims; i++) {
        const Dra__Claim *cl = in->claims[i];
        struct prep_mem *p = &m[i];
        dra__node_prepare_resources_response__claims_entry__init(&p->entry);
        dra__node_prepare_resource_response__init(&p->resp);
        p->entry.key = cl->uid;
        p->entry.value = &p->resp;
        ents[i] = &p->entry;
        if (dra_node_prepare(kl->node, cl->namespace_ ? cl->namespace_ : "", cl->uid, cl->name ? cl->name : "",
                             &p->c, p->cdi_id, sizeof p->cdi_id, p->err, sizeof p->err) < 0) {
            dra_log("prepare %s: %s", cl->uid, p->err);
            p->resp.error = p->err;
            continue;
        }
        p->cdi[0] = p->cdi_id;
        for (int d = 0; d < p->c.n; d++) {
            dra__device__init(&p->dev[d]);
            p->req[d] = p->c.res[d].request;
            p->dev[d].n_request_names = 1;
            p->dev[d].request_names = &p->req[d];
            p->dev[d].pool_name = p->c.res[d].pool;
            p->dev[d].device_name = p->c.res[d].device;
            p->dev[d].n_cdi_device_ids = 1;
            p->dev[d].cdi_device_ids = p->cdi;
            p->devp[d] = &p->dev[d];
        }
        p->resp.n_devices = (size_t)p->c.n;
        p->resp.devices = p->devp;
        dra_log("prepared claim %s/%s (%s): %d device%s, %s", p->c.namespace_, p->c.name, cl->uid, p->c.n,
                p->c.n == 1 ? "" : "s", p->cdi_id);
    }
    Dra__NodePrepareResourcesResponse out = DRA__NODE_PREPARE_RESOURCES_RESPONSE__INIT;
    out.n_claims = in->n_claims;
    out.claims = ents;
    gk_reply_message(r, &out.base);
    free(ents);
    free(m);
}

static void unprepare(void *svc, const ProtobufCMessage *msg, struct gk_reply *r)
{
    struct dra_kubelet *kl = svc;
    const Dra__NodeUnprepareResourcesRequest *in = (const void *)msg;
    if (check_claims(in->n_claims, in->claims, r) < 0)
        return;
    size_t n = in->n_claims;
    Dra__NodeUnprepareResourcesResponse__ClaimsEntry *ent = calloc(n, sizeof *ent), **ents = calloc(n, sizeof *ents);
    Dra__NodeUnprepareResourceResponse *resp = calloc(n, sizeof *resp);
    char(*errs)[DRA_ERRLEN] = calloc(n, sizeof *errs);
    if (!ent || !ents || !resp || !errs) {
        gk_reply_error(r, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        dra__node_unprepare_resources_response__claims_entry__init(&ent[i]);
        dra__node_unprepare_resource_response__init(&resp[i]);
        ent[i].key = in->claims[i]->uid;
        ent[i].value = &resp[i];
        ents[i] = &ent[i];
        if (dra_node_unprepare(kl->node, in->claims[i]->uid, errs[i], sizeof errs[i]) < 0) {
            dra_log("unprepare %s: %s", in->claims[i]->uid, errs[i]);
            resp[i].error = errs[i];
        } else {
            dra_log("unprepared claim %s", in->claims[i]->uid);
        }
    }
    Dra__NodeUnprepareResourcesResponse o = DRA__NODE_UNPREPARE_RESOURCES_RESPONSE__INIT;
    o.n_claims = n;
    o.claims = ents;
    gk_reply_message(r, &o.base);
out:
    free(ent);
    free(ents);
    free(resp);
    free(errs);
}

#define DRA_V1      "/k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin/"
#define DRA_V1BETA1 "/k8s.io.kubelet.pkg.apis.dra.v1beta1.DRAPlugin/"
static const struct gk_method dra_methods[] = {
    {DRA_V1 "NodePrepareResources", &dra__node_prepare_resources_request__descriptor, .unary = prepare},
    {DRA_V1 "NodeUnprepareResources", &dra__node_unprepare_resources_request__descriptor, .unary = unprepare},
    {DRA_V1BETA1 "NodePrepareResources", &dra__node_prepare_resources_request__descriptor, .unary = prepare},
    {DRA_V1BETA1 "NodeUnprepareResources", &dra__node_unprepare_resources_request__descriptor, .unary = unprepare},
    {0}};
static const struct gk_method reg_methods[] = {
    {"/pluginregistration.Registration/GetInfo", &pluginregistration__info_request__descriptor, .unary = get_info},
    {"/pluginregistration.Registration/NotifyRegistrationStatus", &pluginregistration__registration_status__descriptor,
     .unary = notify},
    {0}};

static int tick(void *arg)
{
    struct dra_kubelet *kl = arg;
    return atomic_load(&kl->stop);
}

static void *serve(void *arg)
{
    struct dra_kubelet *kl = arg;
    gk_loop_run(kl->loop, tick, kl, 200);
    return NULL;
}

struct dra_kubelet *dra_kubelet_start(const struct dra_kubelet_options *ko, struct dra_node *n, char *err,
                                      size_t errlen)
{
    struct dra_kubelet *kl = calloc(1, sizeof *kl);
    char dir[4100];
    if (!kl) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    kl->node = n;
    snprintf(dir, sizeof dir, "%.4000s/%.64s", ko->plugins_dir, n->o->driver);
    snprintf(kl->dra_sock, sizeof kl->dra_sock, "%s/dra.sock", dir);
    snprintf(kl->reg_sock, sizeof kl->reg_sock, "%.4000s/%.64s.sock", ko->registry_dir, n->o->driver);
    if (gm_mkdir_p(dir) < 0 || gm_mkdir_p(ko->registry_dir) < 0) {
        snprintf(err, errlen, "%s: %s", gm_mkdir_p(dir) < 0 ? dir : ko->registry_dir, strerror(errno));
        free(kl);
        return NULL;
    }
    kl->loop = gk_loop_new(err, errlen);
    if (!kl->loop) {
        free(kl);
        return NULL;
    }
    /* A socket left by a killed driver is replaced (the layer removes it). */
    kl->dra = gk_server_start(kl->loop, kl->dra_sock, dra_methods, kl, err, errlen);
    if (kl->dra)
        kl->reg = gk_server_start(kl->loop, kl->reg_sock, reg_methods, kl, err, errlen);
    if (!kl->dra || !kl->reg || pthread_create(&kl->thread, NULL, serve, kl) != 0) {
        if (kl->dra && kl->reg)
            snprintf(err, errlen, "cannot start the kubelet thread");
        gk_loop_free(kl->loop);
        free(kl);
        return NULL;
    }
    dra_log("serving %s and %s", kl->reg_sock, kl->dra_sock);
    return kl;
}

void dra_kubelet_stop(struct dra_kubelet *kl)
{
    if (!kl)
        return;
    atomic_store(&kl->stop, 1);
    pthread_join(kl->thread, NULL);
    /* Stops both servers and removes their sockets (kubelet's plugin
     * watcher then unregisters the driver). */
    gk_loop_free(kl->loop);
    free(kl);
}
