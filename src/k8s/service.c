/* The DevicePlugin service and its life beside the kubelet.
 *
 * One plugin per resource (memory units, and whole GPUs if asked), each on
 * its own socket in the kubelet's directory, all on one gRPC loop. For each:
 * serve, then Register with kubelet.sock (the kubelet may call back before
 * it answers, so the server runs first and Register never blocks the loop).
 * The tick watches for a kubelet restart: kubelet.sock replaced (another
 * inode), or our socket gone (a starting kubelet empties the directory);
 * either way the plugin serves on a fresh socket and registers again.
 * A Register that fails because nobody listens is retried every second; one
 * the kubelet refuses stops the plugin (the API says a plugin must then
 * exit; the DaemonSet restarts it). */
#include "plugin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define KP_MAX_STREAMS 32

struct kp_state;

struct kp_plugin {
    struct kp_state *st;
    int whole;                  /* whole GPUs, else memory units */
    const char *resource;
    char sock[4200];
    struct gk_server *srv;
    uint64_t ino;               /* our socket's identity while serving */
    int registered, registering;
    double retry_at;
    struct gk_stream *streams[KP_MAX_STREAMS];
    int nstreams;
};

struct kp_state {
    const struct kp_options *o;
    struct kp_gpus gpus;
    struct kp_use use;          /* what the groups on disk hold (sharing.c) */
    struct gk_loop *loop;
    struct kp_plugin p[2];
    int np;
    char kubelet_sock[4200];
    uint64_t kubelet_ino;
    volatile int *stop;
    int refused;
    double next_health, next_collect;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A file's identity: inode and change time (a new socket may reuse the
 * inode number of the one just removed). 0 when there is none. */
static uint64_t identity(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return 0;
    return ((uint64_t)st.st_ino * 1000003u) ^ ((uint64_t)st.st_ctim.tv_sec * 1000000000u + (uint64_t)st.st_ctim.tv_nsec) ^ 1;
}

/* ---- the device list ------------------------------------------------- */

/* Sends the whole list to one stream (ListAndWatch has no deltas). */
static void send_list(struct kp_plugin *p, struct gk_stream *s)
{
    const struct kp_gpus *gs = &p->st->gpus;
    size_t n = 0;
    for (int i = 0; i < gs->n; i++)
        n += p->whole ? 1 : gs->g[i].units;
    V1beta1__Device *devs = calloc(n ? n : 1, sizeof *devs);
    V1beta1__Device **ptrs = calloc(n ? n : 1, sizeof *ptrs);
    char *ids = calloc(n ? n : 1, GM_UUID_LEN + 16);
    if (!devs || !ptrs || !ids) {
        gk_stream_finish(s, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    size_t k = 0;
    for (int i = 0; i < gs->n; i++) {
        unsigned count = p->whole ? 1 : gs->g[i].units;
        for (unsigned u = 0; u < count; u++, k++) {
            char *id = ids + k * (GM_UUID_LEN + 16);
            if (p->whole)
                snprintf(id, GM_UUID_LEN + 16, "%s", gs->g[i].uuid);
            else
                kp_unit_id(gs->g[i].uuid, u, id, GM_UUID_LEN + 16);
            v1beta1__device__init(&devs[k]);
            devs[k].id = id;
            int taken = p->whole ? p->st->use.shared[i] : p->st->use.exclusive[i];
            devs[k].health = gs->g[i].healthy && !taken ? "Healthy" : "Unhealthy";
            ptrs[k] = &devs[k];
        }
    }
    V1beta1__ListAndWatchResponse r = V1BETA1__LIST_AND_WATCH_RESPONSE__INIT;
    r.n_devices = n;
    r.devices = ptrs;
    gk_stream_send(s, &r.base);
out:
    free(devs);
    free(ptrs);
    free(ids);
}

static void broadcast(struct kp_state *st)
{
    for (int i = 0; i < st->np; i++)
        for (int k = 0; k < st->p[i].nstreams; k++)
            send_list(&st->p[i], st->p[i].streams[k]);
}

/* Re-reads what the groups hold; the lists go out again when that changed. */
static void rescan_use(struct kp_state *st)
{
    struct kp_use u;
    kp_use_scan(&st->gpus, &u);
    if (memcmp(&u, &st->use, sizeof u) != 0) {
        st->use = u;
        broadcast(st);
    }
}

/* ---- methods ----------------------------------------------------------- */

static void get_options(void *svc, const ProtobufCMessage *req, struct gk_reply *r)
{
    struct kp_plugin *p = svc;
    V1beta1__DevicePluginOptions o = V1BETA1__DEVICE_PLUGIN_OPTIONS__INIT;
    o.get_preferred_allocation_available = !p->whole;
    gk_reply_message(r, &o.base);
}

static void list_and_watch(void *svc, const ProtobufCMessage *req, struct gk_stream *s)
{
    struct kp_plugin *p = svc;
    if (p->nstreams == KP_MAX_STREAMS) {
        gk_stream_finish(s, GRPC_STATUS_RESOURCE_EXHAUSTED, "too many ListAndWatch streams");
        return;
    }
    p->streams[p->nstreams++] = s;
    send_list(p, s);
}

static void stream_closed(void *svc, struct gk_stream *s)
{
    struct kp_plugin *p = svc;
    for (int i = 0; i < p->nstreams; i++)
        if (p->streams[i] == s) {
            p->streams[i] = p->streams[--p->nstreams];
            break;
        }
}

static void preferred(void *svc, const ProtobufCMessage *req, struct gk_reply *r)
{
    struct kp_plugin *p = svc;
    const V1beta1__PreferredAllocationRequest *in = (const void *)req;
    V1beta1__PreferredAllocationResponse out = V1BETA1__PREFERRED_ALLOCATION_RESPONSE__INIT;
    V1beta1__ContainerPreferredAllocationResponse *cr = calloc(in->n_container_requests + 1, sizeof *cr);
    V1beta1__ContainerPreferredAllocationResponse **crp = calloc(in->n_container_requests + 1, sizeof *crp);
    size_t c;
    char err[512];
    if (!cr || !crp) {
        gk_reply_error(r, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (c = 0; c < in->n_container_requests; c++) {
        const V1beta1__ContainerPreferredAllocationRequest *q = in->container_requests[c];
        v1beta1__container_preferred_allocation_response__init(&cr[c]);
        crp[c] = &cr[c];
        const char **mine = calloc(q->n_available_deviceids + 1, sizeof *mine);
        size_t n = 0;
        if (!mine) {
            gk_reply_error(r, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
        cr[c].deviceids = (char **)mine;
        if (p->whole) {
            /* Whole GPUs: any of them is as good; the ones it must have, then the first others. */
            for (size_t i = 0; i < q->n_must_include_deviceids && n < (size_t)q->allocation_size; i++)
                mine[n++] = q->must_include_deviceids[i];
            for (size_t i = 0; i < q->n_available_deviceids && n < (size_t)q->allocation_size; i++) {
                int dupl = 0;
                for (size_t j = 0; j < q->n_must_include_deviceids; j++)
                    dupl |= strcmp(q->available_deviceids[i], q->must_include_deviceids[j]) == 0;
                if (!dupl)
                    mine[n++] = q->available_deviceids[i];
            }
        } else if (kp_prefer_units(&p->st->gpus, q->available_deviceids, q->n_available_deviceids,
                                   q->must_include_deviceids, q->n_must_include_deviceids, q->allocation_size, mine,
                                   &n, err, sizeof err) < 0) {
            gk_reply_error(r, GRPC_STATUS_INVALID_ARGUMENT, "container request %zu: %s", c, err);
            goto out;
        }
        cr[c].n_deviceids = n;
    }
    out.n_container_responses = in->n_container_requests;
    out.container_responses = crp;
    gk_reply_message(r, &out.base);
out:
    if (cr)
        for (size_t i = 0; i < in->n_container_requests; i++)
            free(cr[i].deviceids);
    free(cr);
    free(crp);
}

/* Removes the groups an Allocate made before one of its containers failed. */
static void undo(V1beta1__ContainerAllocateResponse *rs, size_t n)
{
    char state[4096], dir[4400];
    gm_state_dir(state, sizeof state);
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < rs[i].n_annotations; k++)
            if (strcmp(rs[i].annotations[k]->key, KP_ANNOT_GROUP) == 0) {
                snprintf(dir, sizeof dir, "%s/%s", state, rs[i].annotations[k]->value);
                gm_group_remove(dir);
            }
        kp_response_free(&rs[i]);
    }
}

static void allocate(void *svc, const ProtobufCMessage *req, struct gk_reply *r)
{
    struct kp_plugin *p = svc;
    const V1beta1__AllocateRequest *in = (const void *)req;
    size_t n = in->n_container_requests;
    char err[512];
    if (n == 0) {
        gk_reply_error(r, GRPC_STATUS_INVALID_ARGUMENT, "an Allocate request with no container requests");
        return;
    }
    V1beta1__ContainerAllocateResponse *rs = calloc(n, sizeof *rs);
    V1beta1__ContainerAllocateResponse **rp = calloc(n, sizeof *rp);
    if (!rs || !rp) {
        free(rs);
        free(rp);
        gk_reply_error(r, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    size_t done;
    double t0 = now_ms();
    for (done = 0; done < n; done++) {
        const V1beta1__ContainerAllocateRequest *q = in->container_requests[done];
        struct kp_grant g;
        v1beta1__container_allocate_response__init(&rs[done]);
        rp[done] = &rs[done];
        int rc = kp_grant_from_ids(&p->st->gpus, p->st->o->unit, p->whole, q->devices_ids, q->n_devices_ids, &g, err,
                                   sizeof err);
        if (rc < 0) {
            gk_reply_error(r, rc == -2 ? GRPC_STATUS_FAILED_PRECONDITION : GRPC_STATUS_INVALID_ARGUMENT,
                           "container request %zu: %s", done, err);
            break;
        }
        if (kp_use_conflict(&p->st->gpus, &p->st->use, p->whole, &g, err, sizeof err) < 0) {
            gk_reply_error(r, GRPC_STATUS_FAILED_PRECONDITION, "container request %zu: %s", done, err);
            break;
        }
        if (kp_allocate_container(p->st->o, &p->st->gpus, &g, q->devices_ids, q->n_devices_ids, &rs[done], err,
                                  sizeof err) < 0) {
            gk_reply_error(r, GRPC_STATUS_INTERNAL, "container request %zu: %s", done, err);
            break;
        }
        for (size_t k = 0; k < rs[done].n_annotations; k++)
            if (strcmp(rs[done].annotations[k]->key, KP_ANNOT_GROUP) == 0)
                fprintf(stderr, "gpumem-k8s: allocated %zu %s to group %s (%.2f ms)\n", q->n_devices_ids,
                        p->resource, rs[done].annotations[k]->value, now_ms() - t0);
    }
    if (done == n) {
        V1beta1__AllocateResponse out = V1BETA1__ALLOCATE_RESPONSE__INIT;
        out.n_container_responses = n;
        out.container_responses = rp;
        gk_reply_message(r, &out.base);
        for (size_t i = 0; i < n; i++)
            kp_response_free(&rs[i]);
    } else {
        undo(rs, done);
    }
    free(rs);
    free(rp);
    if (*p->st->o->gpu_resource)
        rescan_use(p->st);
}

static void pre_start(void *svc, const ProtobufCMessage *req, struct gk_reply *r)
{
    V1beta1__PreStartContainerResponse out = V1BETA1__PRE_START_CONTAINER_RESPONSE__INIT;
    gk_reply_message(r, &out.base);
}

static const struct gk_method methods[] = {
    { "/v1beta1.DevicePlugin/GetDevicePluginOptions", &v1beta1__empty__descriptor, .unary = get_options },
    { "/v1beta1.DevicePlugin/ListAndWatch", &v1beta1__empty__descriptor, .stream = list_and_watch,
      .closed = stream_closed },
    { "/v1beta1.DevicePlugin/GetPreferredAllocation", &v1beta1__preferred_allocation_request__descriptor,
      .unary = preferred },
    { "/v1beta1.DevicePlugin/Allocate", &v1beta1__allocate_request__descriptor, .unary = allocate },
    { "/v1beta1.DevicePlugin/PreStartContainer", &v1beta1__pre_start_container_request__descriptor,
      .unary = pre_start },
    { 0 },
};

/* ---- serving and registering ------------------------------------------- */

static void registered(void *arg, grpc_status_code code, const char *detail, const ProtobufCMessage *resp)
{
    struct kp_plugin *p = arg;
    p->registering = 0;
    if (code == GRPC_STATUS_OK) {
        p->registered = 1;
        fprintf(stderr, "gpumem-k8s: registered %s with the kubelet (%s)\n", p->resource, p->st->kubelet_sock);
    } else if (code == GRPC_STATUS_UNAVAILABLE || code == GRPC_STATUS_DEADLINE_EXCEEDED) {
        p->retry_at = now_ms() + 1000;
    } else {
        fprintf(stderr, "gpumem-k8s: the kubelet refused %s: %s (status %d)\n", p->resource, detail, (int)code);
        p->st->refused = 1;
    }
}

static void start_register(struct kp_plugin *p)
{
    char err[512];
    const char *base = strrchr(p->sock, '/') + 1;
    V1beta1__DevicePluginOptions opts = V1BETA1__DEVICE_PLUGIN_OPTIONS__INIT;
    opts.get_preferred_allocation_available = !p->whole;
    V1beta1__RegisterRequest q = V1BETA1__REGISTER_REQUEST__INIT;
    q.version = KP_API_VERSION;
    q.endpoint = (char *)base;
    q.resource_name = (char *)p->resource;
    q.options = &opts;
    p->st->kubelet_ino = identity(p->st->kubelet_sock);
    if (gk_call_unary(p->st->loop, p->st->kubelet_sock, "/v1beta1.Registration/Register", &q.base,
                      &v1beta1__empty__descriptor, 5000, registered, p, err, sizeof err) < 0) {
        fprintf(stderr, "gpumem-k8s: %s\n", err);
        p->retry_at = now_ms() + 1000;
        return;
    }
    p->registering = 1;
}

static int serve(struct kp_plugin *p, char *err, size_t errlen)
{
    p->srv = gk_server_start(p->st->loop, p->sock, methods, p, err, errlen);
    if (!p->srv)
        return -1;
    p->ino = identity(p->sock);
    p->registered = 0;
    p->retry_at = 0;
    return 0;
}

/* The kubelet restarted: our streams are dead ends; serve anew, register. */
static void restart(struct kp_plugin *p, const char *why)
{
    char err[512];
    fprintf(stderr, "gpumem-k8s: %s: serving %s again and registering\n", why, p->resource);
    gk_server_stop(p->srv);
    p->srv = NULL;
    if (serve(p, err, sizeof err) < 0) {
        fprintf(stderr, "gpumem-k8s: %s\n", err);
        p->retry_at = now_ms() + 1000;
    }
}

static int tick(void *arg)
{
    struct kp_state *st = arg;
    double now = now_ms();
    if (*st->stop || st->refused)
        return 1;
    if (now >= st->next_health) {
        st->next_health = now + st->o->health_ms;
        if (kp_gpus_poll(&st->gpus))
            broadcast(st);
    }
    if (now >= st->next_collect) {
        st->next_collect = now + st->o->collect_s * 1000.0;
        if (kp_collect(st->o, (long)time(NULL)) > 0 && *st->o->gpu_resource)
            rescan_use(st);
    }
    for (int i = 0; i < st->np; i++) {
        struct kp_plugin *p = &st->p[i];
        if (!p->srv) {
            if (now >= p->retry_at)
                restart(p, "not serving");
            continue;
        }
        if (p->registering)
            continue;
        if (identity(p->sock) != p->ino) {
            restart(p, "our socket was removed (the kubelet restarted?)");
            continue;
        }
        if (p->registered && identity(st->kubelet_sock) != st->kubelet_ino) {
            restart(p, "kubelet.sock was replaced (the kubelet restarted)");
            continue;
        }
        if (!p->registered && now >= p->retry_at)
            start_register(p);
    }
    return 0;
}

int kp_run(const struct kp_options *o, volatile int *stop)
{
    static struct kp_state st;
    char err[512];
    memset(&st, 0, sizeof st);
    st.o = o;
    st.stop = stop;
    if (kp_gpus_open(o->nvml, err, sizeof err) < 0 || kp_gpus_discover(&st.gpus, o->unit, err, sizeof err) < 0) {
        fprintf(stderr, "gpumem-k8s: %s\n", err);
        return 1;
    }
    for (int i = 0; i < st.gpus.n; i++)
        fprintf(stderr, "gpumem-k8s: GPU %s: %llu MiB, %u units of %llu MiB\n", st.gpus.g[i].uuid,
                (unsigned long long)(st.gpus.g[i].total >> 20), st.gpus.g[i].units,
                (unsigned long long)(o->unit >> 20));
    snprintf(st.kubelet_sock, sizeof st.kubelet_sock, "%s/kubelet.sock", o->dir);
    if (*o->gpu_resource)
        kp_use_scan(&st.gpus, &st.use);
    st.p[st.np].resource = o->resource;
    snprintf(st.p[st.np].sock, sizeof st.p[st.np].sock, "%s/gpumem-memory.sock", o->dir);
    st.np++;
    if (*o->gpu_resource) {
        st.p[st.np].resource = o->gpu_resource;
        st.p[st.np].whole = 1;
        snprintf(st.p[st.np].sock, sizeof st.p[st.np].sock, "%s/gpumem-gpu.sock", o->dir);
        st.np++;
    }
    if (!(st.loop = gk_loop_new(err, sizeof err))) {
        fprintf(stderr, "gpumem-k8s: %s\n", err);
        return 1;
    }
    for (int i = 0; i < st.np; i++) {
        st.p[i].st = &st;
        if (serve(&st.p[i], err, sizeof err) < 0) {
            fprintf(stderr, "gpumem-k8s: %s\n", err);
            gk_loop_free(st.loop);
            return 1;
        }
    }
    gk_loop_run(st.loop, tick, &st, 50);
    for (int i = 0; i < st.np; i++)
        gk_server_stop(st.p[i].srv);
    gk_loop_free(st.loop);
    fprintf(stderr, "gpumem-k8s: stopped\n");
    return st.refused ? 1 : 0;
}
