/* The gRPC layer (see grpc_server.h for how to use it). One completion
 * queue per loop; every asynchronous operation carries a struct gk_tag
 * whose callback runs when the queue hands it back. Calls and servers are
 * reference counted by the batches they have in flight, so that nothing is
 * freed while the core may still complete an operation on it. */
#include "grpc_server.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

struct gk_tag {
    void (*fn)(struct gk_tag *t, int ok);
};

struct gk_loop {
    grpc_completion_queue *cq;
    int stop;
    struct gk_server *servers;  /* running or draining */
    struct gk_ccall *ccalls;    /* client calls in flight */
};

struct gk_server {
    struct gk_loop *loop;
    grpc_server *server;
    char path[108];
    dev_t dev;                  /* the socket we made, to remove only ours */
    ino_t ino;
    const struct gk_method *methods;
    void *svc;
    int refs;
    int stopping;
    struct gk_tag request_tag;
    grpc_call *new_call;
    grpc_call_details details;
    grpc_metadata_array request_md;
    struct gk_tag shutdown_tag;
    struct gk_stream *calls;    /* live calls, for stop */
    struct gk_server *next;
};

/* A server-side call; for streaming methods also the struct gk_stream the
 * service holds. */
struct gk_stream {
    struct gk_server *srv;
    grpc_call *call;
    const struct gk_method *m;
    int refs;                   /* batches in flight + 1 until the call is done */
    struct gk_tag recv_tag, send_tag, close_tag;
    grpc_byte_buffer *recv_buf;
    grpc_byte_buffer *sending_buf;
    int close_cancelled;
    int started;                /* the stream handler was called */
    int done;                   /* RECV_CLOSE_ON_SERVER completed */
    int md_sent;
    int sending;
    int status_sent;
    int finish_pending;         /* gk_stream_finish waiting for the queue */
    grpc_status_code finish_code;
    grpc_slice status_detail;
    grpc_byte_buffer **q;
    size_t qhead, qlen, qcap;
    void *data;
    struct gk_stream *prev, *next;
};

struct gk_reply {
    grpc_byte_buffer *buf;
    grpc_status_code code;
    char msg[512];
    int set;
};

struct gk_ccall {
    struct gk_tag tag;
    struct gk_loop *loop;
    grpc_channel *channel;
    grpc_call *call;
    grpc_byte_buffer *req, *resp;
    grpc_metadata_array init_md, trail_md;
    grpc_status_code status;
    grpc_slice detail;
    const ProtobufCMessageDescriptor *resp_desc;
    gk_call_done done;
    void *arg;
    struct gk_ccall *next;
};

static void fill(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fill(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen)
        vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static gpr_timespec after_ms(int ms)
{
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

/* ---- messages <-> byte buffers --------------------------------------- */

static grpc_byte_buffer *pack(const ProtobufCMessage *msg)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    grpc_slice s = grpc_slice_malloc(n);
    protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

ProtobufCMessage *gk_unpack(const ProtobufCMessageDescriptor *desc, const void *data, size_t len)
{
    return protobuf_c_message_unpack(desc, NULL, len, data);
}

static ProtobufCMessage *unpack_buffer(const ProtobufCMessageDescriptor *desc, grpc_byte_buffer *bb)
{
    grpc_byte_buffer_reader r;
    if (!grpc_byte_buffer_reader_init(&r, bb))
        return NULL;
    grpc_slice s = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    ProtobufCMessage *m = gk_unpack(desc, GRPC_SLICE_START_PTR(s), GRPC_SLICE_LENGTH(s));
    grpc_slice_unref(s);
    return m;
}

/* ---- loop ------------------------------------------------------------ */

struct gk_loop *gk_loop_new(char *err, size_t errlen)
{
    struct gk_loop *l = calloc(1, sizeof *l);
    if (!l) {
        fill(err, errlen, "out of memory");
        return NULL;
    }
    grpc_init();
    l->cq = grpc_completion_queue_create_for_next(NULL);
    return l;
}

static void dispatch(grpc_event ev)
{
    if (ev.type == GRPC_OP_COMPLETE && ev.tag) {
        struct gk_tag *t = ev.tag;
        t->fn(t, ev.success);
    }
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

void gk_loop_run(struct gk_loop *l, int (*tick)(void *arg), void *arg, int tick_ms)
{
    double next_tick = now_ms();
    while (!l->stop) {
        double now = now_ms();
        if (tick && now >= next_tick) {
            if (tick(arg))
                break;
            next_tick = now_ms() + tick_ms;
            now = now_ms();
        }
        int wait = tick ? (int)(next_tick - now) + 1 : 1000;
        dispatch(grpc_completion_queue_next(l->cq, after_ms(wait < 1 ? 1 : wait), NULL));
    }
    l->stop = 0;
}

void gk_loop_stop(struct gk_loop *l)
{
    l->stop = 1;
}

void gk_loop_free(struct gk_loop *l)
{
    if (!l)
        return;
    for (struct gk_server *s = l->servers; s; s = s->next)
        if (!s->stopping)
            gk_server_stop(s);
    for (struct gk_ccall *c = l->ccalls; c; c = c->next)
        grpc_call_cancel(c->call, NULL);
    while (l->servers || l->ccalls)
        dispatch(grpc_completion_queue_next(l->cq, after_ms(1000), NULL));
    grpc_completion_queue_shutdown(l->cq);
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(l->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        dispatch(ev);
    }
    grpc_completion_queue_destroy(l->cq);
    free(l);
    grpc_shutdown();
}

/* ---- server ---------------------------------------------------------- */

static void server_unref(struct gk_server *s)
{
    if (--s->refs)
        return;
    grpc_server_destroy(s->server);
    grpc_call_details_destroy(&s->details);
    grpc_metadata_array_destroy(&s->request_md);
    for (struct gk_server **p = &s->loop->servers; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            break;
        }
    free(s);
}

static void call_unref(struct gk_stream *c)
{
    if (--c->refs)
        return;
    struct gk_server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->recv_buf)
        grpc_byte_buffer_destroy(c->recv_buf);
    for (size_t i = 0; i < c->qlen; i++)
        grpc_byte_buffer_destroy(c->q[(c->qhead + i) % c->qcap]);
    free(c->q);
    grpc_slice_unref(c->status_detail);
    grpc_call_unref(c->call);
    free(c);
    server_unref(s);
}

static int start_batch(struct gk_stream *c, const grpc_op *ops, size_t n, struct gk_tag *tag)
{
    c->refs++;
    if (grpc_call_start_batch(c->call, ops, n, tag, NULL) != GRPC_CALL_OK) {
        c->refs--;
        return -1;
    }
    return 0;
}

static void send_done(struct gk_tag *t, int ok);

/* Queues a packed message (destroyed on failure). */
static int enqueue(struct gk_stream *c, grpc_byte_buffer *bb)
{
    if (c->qlen == c->qcap) {
        size_t cap = c->qcap ? c->qcap * 2 : 4;
        grpc_byte_buffer **q = malloc(cap * sizeof *q);
        if (!q) {
            grpc_byte_buffer_destroy(bb);
            return -1;
        }
        for (size_t i = 0; i < c->qlen; i++)
            q[i] = c->q[(c->qhead + i) % c->qcap];
        free(c->q);
        c->q = q;
        c->qhead = 0;
        c->qcap = cap;
    }
    c->q[(c->qhead + c->qlen) % c->qcap] = bb;
    c->qlen++;
    return 0;
}

/* The next queued message, or the status once the queue is empty. */
static void pump(struct gk_stream *c)
{
    if (c->sending || c->status_sent || c->done)
        return;
    grpc_op ops[4];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    if (!c->md_sent) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        n++;
    }
    if (c->qlen) {
        c->sending_buf = c->q[c->qhead];
        c->qhead = (c->qhead + 1) % c->qcap;
        c->qlen--;
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = c->sending_buf;
        n++;
        /* The last message and the status in one batch (a unary reply). */
        if (!c->qlen && c->finish_pending) {
            ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
            ops[n].data.send_status_from_server.status = c->finish_code;
            ops[n].data.send_status_from_server.status_details = &c->status_detail;
            n++;
            c->status_sent = 1;
        }
    } else if (c->finish_pending) {
        ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[n].data.send_status_from_server.status = c->finish_code;
        ops[n].data.send_status_from_server.status_details = &c->status_detail;
        n++;
        c->status_sent = 1;
    } else {
        return;
    }
    c->md_sent = 1;
    c->sending = 1;
    if (start_batch(c, ops, n, &c->send_tag) < 0) {
        c->sending = 0;
        if (c->sending_buf) {
            grpc_byte_buffer_destroy(c->sending_buf);
            c->sending_buf = NULL;
        }
    }
}

static void send_done(struct gk_tag *t, int ok)
{
    struct gk_stream *c = (struct gk_stream *)((char *)t - offsetof(struct gk_stream, send_tag));
    c->sending = 0;
    if (c->sending_buf) {
        grpc_byte_buffer_destroy(c->sending_buf);
        c->sending_buf = NULL;
    }
    if (ok)
        pump(c);
    call_unref(c);
}

static void finish(struct gk_stream *c, grpc_status_code code, const char *detail)
{
    if (c->finish_pending || c->status_sent)
        return;
    c->finish_pending = 1;
    c->finish_code = code;
    grpc_slice_unref(c->status_detail);
    c->status_detail = grpc_slice_from_copied_string(detail ? detail : "");
    pump(c);
}

static void close_done(struct gk_tag *t, int ok)
{
    struct gk_stream *c = (struct gk_stream *)((char *)t - offsetof(struct gk_stream, close_tag));
    c->done = 1;
    if (c->started && c->m->closed)
        c->m->closed(c->srv->svc, c);
    call_unref(c);  /* the batch */
    call_unref(c);  /* the call's own reference */
}

static void recv_done(struct gk_tag *t, int ok)
{
    struct gk_stream *c = (struct gk_stream *)((char *)t - offsetof(struct gk_stream, recv_tag));
    ProtobufCMessage *req = NULL;
    if (!ok || c->done) {
        call_unref(c);
        return;
    }
    if (!c->m) {
        finish(c, GRPC_STATUS_UNIMPLEMENTED, "unknown method");
    } else if (!c->recv_buf) {
        finish(c, GRPC_STATUS_INVALID_ARGUMENT, "no request message");
    } else if (!(req = unpack_buffer(c->m->request, c->recv_buf))) {
        char msg[256];
        snprintf(msg, sizeof msg, "the request does not parse as %s", c->m->request->name);
        finish(c, GRPC_STATUS_INVALID_ARGUMENT, msg);
    } else if (c->m->unary) {
        struct gk_reply r = { .code = GRPC_STATUS_OK };
        c->m->unary(c->srv->svc, req, &r);
        if (!r.set)
            finish(c, GRPC_STATUS_INTERNAL, "the method gave no reply");
        else if (!r.buf)
            finish(c, r.code, r.msg);
        else if (enqueue(c, r.buf) < 0)
            finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        else
            finish(c, GRPC_STATUS_OK, "");
    } else {
        c->started = 1;
        c->m->stream(c->srv->svc, req, c);
    }
    if (req)
        protobuf_c_message_free_unpacked(req, NULL);
    call_unref(c);
}

static void request_next(struct gk_server *s);

static void request_done(struct gk_tag *t, int ok)
{
    struct gk_server *s = (struct gk_server *)((char *)t - offsetof(struct gk_server, request_tag));
    if (!ok || s->stopping) {
        if (ok && s->new_call) {
            grpc_call_cancel(s->new_call, NULL);
            grpc_call_unref(s->new_call);
        }
        server_unref(s);
        return;
    }
    struct gk_stream *c = calloc(1, sizeof *c);
    if (!c) {
        grpc_call_cancel(s->new_call, NULL);
        grpc_call_unref(s->new_call);
        request_next(s);
        server_unref(s);
        return;
    }
    c->srv = s;
    c->call = s->new_call;
    c->recv_tag.fn = recv_done;
    c->send_tag.fn = send_done;
    c->close_tag.fn = close_done;
    c->status_detail = grpc_empty_slice();
    c->refs = 1;
    s->refs++;
    c->next = s->calls;
    if (s->calls)
        s->calls->prev = c;
    s->calls = c;
    for (const struct gk_method *m = s->methods; m->path; m++)
        if (grpc_slice_str_cmp(s->details.method, m->path) == 0) {
            c->m = m;
            break;
        }
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->close_cancelled;
    if (start_batch(c, &op, 1, &c->close_tag) < 0) {
        call_unref(c);
    } else {
        memset(&op, 0, sizeof op);
        op.op = GRPC_OP_RECV_MESSAGE;
        op.data.recv_message.recv_message = &c->recv_buf;
        start_batch(c, &op, 1, &c->recv_tag);
    }
    request_next(s);
    server_unref(s);
}

static void request_next(struct gk_server *s)
{
    if (s->stopping)
        return;
    grpc_call_details_destroy(&s->details);
    grpc_metadata_array_destroy(&s->request_md);
    grpc_call_details_init(&s->details);
    grpc_metadata_array_init(&s->request_md);
    s->new_call = NULL;
    s->refs++;
    if (grpc_server_request_call(s->server, &s->new_call, &s->details, &s->request_md, s->loop->cq, s->loop->cq,
                                 &s->request_tag) != GRPC_CALL_OK)
        s->refs--;
}

static void shutdown_done(struct gk_tag *t, int ok)
{
    struct gk_server *s = (struct gk_server *)((char *)t - offsetof(struct gk_server, shutdown_tag));
    server_unref(s);
}

struct gk_server *gk_server_start(struct gk_loop *loop, const char *socket_path, const struct gk_method *methods,
                                  void *svc, char *err, size_t errlen)
{
    struct gk_server *s = calloc(1, sizeof *s);
    if (!s) {
        fill(err, errlen, "out of memory");
        return NULL;
    }
    if (strlen(socket_path) >= sizeof s->path) {
        fill(err, errlen, "socket path \"%s\" is longer than a unix socket allows (%zu)", socket_path,
             sizeof s->path - 1);
        free(s);
        return NULL;
    }
    snprintf(s->path, sizeof s->path, "%s", socket_path);
    s->loop = loop;
    s->methods = methods;
    s->svc = svc;
    s->request_tag.fn = request_done;
    s->shutdown_tag.fn = shutdown_done;
    grpc_call_details_init(&s->details);
    grpc_metadata_array_init(&s->request_md);
    if (unlink(s->path) < 0 && errno != ENOENT) {
        fill(err, errlen, "cannot remove the old socket %s: %s", s->path, strerror(errno));
        free(s);
        return NULL;
    }
    s->server = grpc_server_create(NULL, NULL);
    grpc_server_register_completion_queue(s->server, loop->cq, NULL);
    char addr[128];
    snprintf(addr, sizeof addr, "unix:%s", s->path);
    grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
    int port = grpc_server_add_http2_port(s->server, addr, creds);
    grpc_server_credentials_release(creds);
    if (!port) {
        fill(err, errlen, "cannot listen on %s (is its directory there and writable?)", s->path);
        grpc_server_destroy(s->server);
        grpc_call_details_destroy(&s->details);
        grpc_metadata_array_destroy(&s->request_md);
        free(s);
        return NULL;
    }
    grpc_server_start(s->server);
    struct stat st;
    if (stat(s->path, &st) == 0) {
        s->dev = st.st_dev;
        s->ino = st.st_ino;
    }
    s->refs = 1;
    s->next = loop->servers;
    loop->servers = s;
    request_next(s);
    return s;
}

void gk_server_stop(struct gk_server *s)
{
    if (!s || s->stopping)
        return;
    s->stopping = 1;
    struct stat st;
    if (stat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino)
        unlink(s->path);
    s->refs++;
    grpc_server_shutdown_and_notify(s->server, s->loop->cq, &s->shutdown_tag);
    grpc_server_cancel_all_calls(s->server);
    server_unref(s);    /* the running reference */
}

const char *gk_server_socket(const struct gk_server *s)
{
    return s->path;
}

/* ---- replies and streams --------------------------------------------- */

void gk_reply_message(struct gk_reply *r, const ProtobufCMessage *msg)
{
    if (r->set)
        return;
    r->set = 1;
    r->buf = pack(msg);
}

void gk_reply_error(struct gk_reply *r, grpc_status_code code, const char *fmt, ...)
{
    if (r->set)
        return;
    r->set = 1;
    r->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof r->msg, fmt, ap);
    va_end(ap);
}

int gk_stream_send(struct gk_stream *c, const ProtobufCMessage *msg)
{
    if (!msg || c->done || c->status_sent || c->finish_pending)
        return -1;
    if (enqueue(c, pack(msg)) < 0)
        return -1;
    pump(c);
    return 0;
}

void gk_stream_finish(struct gk_stream *c, grpc_status_code code, const char *detail)
{
    finish(c, code, detail);
}

void *gk_stream_data(struct gk_stream *c)
{
    return c->data;
}

void gk_stream_set_data(struct gk_stream *c, void *data)
{
    c->data = data;
}

/* ---- client calls ---------------------------------------------------- */

static void ccall_done(struct gk_tag *t, int ok)
{
    struct gk_ccall *c = (struct gk_ccall *)t;
    ProtobufCMessage *resp = NULL;
    char detail[512] = "";
    grpc_status_code code = ok ? c->status : GRPC_STATUS_UNAVAILABLE;
    if (ok) {
        char *d = grpc_slice_to_c_string(c->detail);
        snprintf(detail, sizeof detail, "%s", d);
        gpr_free(d);
    }
    if (code == GRPC_STATUS_OK) {
        if (!c->resp || !(resp = unpack_buffer(c->resp_desc, c->resp))) {
            code = GRPC_STATUS_INTERNAL;
            snprintf(detail, sizeof detail, "the response does not parse as %s", c->resp_desc->name);
        }
    }
    for (struct gk_ccall **p = &c->loop->ccalls; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    c->done(c->arg, code, detail, resp);
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    if (c->resp)
        grpc_byte_buffer_destroy(c->resp);
    grpc_byte_buffer_destroy(c->req);
    grpc_metadata_array_destroy(&c->init_md);
    grpc_metadata_array_destroy(&c->trail_md);
    grpc_slice_unref(c->detail);
    grpc_call_unref(c->call);
    grpc_channel_destroy(c->channel);
    free(c);
}

int gk_call_unary(struct gk_loop *loop, const char *socket_path, const char *method, const ProtobufCMessage *req,
                  const ProtobufCMessageDescriptor *resp_desc, int timeout_ms, gk_call_done done, void *arg,
                  char *err, size_t errlen)
{
    struct gk_ccall *c = calloc(1, sizeof *c);
    if (!c) {
        fill(err, errlen, "out of memory");
        return -1;
    }
    char addr[4200];
    snprintf(addr, sizeof addr, "unix:%s", socket_path);
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    c->channel = grpc_channel_create(addr, creds, NULL);
    grpc_channel_credentials_release(creds);
    grpc_slice m = grpc_slice_from_copied_string(method);
    c->call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, loop->cq, m, NULL,
                                       after_ms(timeout_ms), NULL);
    grpc_slice_unref(m);
    c->tag.fn = ccall_done;
    c->loop = loop;
    c->req = pack(req);
    c->resp_desc = resp_desc;
    c->done = done;
    c->arg = arg;
    grpc_metadata_array_init(&c->init_md);
    grpc_metadata_array_init(&c->trail_md);
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = c->req;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &c->init_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &c->resp;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &c->trail_md;
    ops[5].data.recv_status_on_client.status = &c->status;
    ops[5].data.recv_status_on_client.status_details = &c->detail;
    grpc_call_error e = grpc_call_start_batch(c->call, ops, 6, &c->tag, NULL);
    if (e != GRPC_CALL_OK) {
        fill(err, errlen, "cannot start the call %s on %s (error %d)", method, socket_path, (int)e);
        grpc_byte_buffer_destroy(c->req);
        grpc_metadata_array_destroy(&c->init_md);
        grpc_metadata_array_destroy(&c->trail_md);
        grpc_call_unref(c->call);
        grpc_channel_destroy(c->channel);
        free(c);
        return -1;
    }
    c->next = loop->ccalls;
    loop->ccalls = c;
    return 0;
}
