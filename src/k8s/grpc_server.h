/* A small gRPC layer over gRPC's C core (libgrpc) for protobuf-c messages:
 * serve unary and server-streaming methods on unix sockets, and make unary
 * client calls, all from one thread. protoc-c generates messages, not
 * services; this file is the service side, written once for every service
 * gpumem speaks to the kubelet (the device plugin here; the DRA driver
 * reuses it for its own services).
 *
 * How to use it
 *
 *   static void allocate(void *svc, const ProtobufCMessage *req, struct gk_reply *r)
 *   {
 *       const V1beta1__AllocateRequest *in = (const void *)req;
 *       V1beta1__AllocateResponse out = V1BETA1__ALLOCATE_RESPONSE__INIT;
 *       ...                                  // or: gk_reply_error(r, GRPC_STATUS_INVALID_ARGUMENT, "...%s", id); return;
 *       gk_reply_message(r, &out.base);      // packs a copy: free your message after
 *   }
 *   static const struct gk_method methods[] = {
 *       { "/pkg.Service/Allocate", &v1beta1__allocate_request__descriptor, .unary = allocate },
 *       { "/pkg.Service/Watch",    &v1beta1__empty__descriptor,            .stream = watch },
 *       { 0 }
 *   };
 *   struct gk_loop *loop = gk_loop_new(err, sizeof err);
 *   struct gk_server *s = gk_server_start(loop, "/path/x.sock", methods, svc, err, sizeof err);
 *   gk_loop_run(loop, tick, svc, 200);   // until tick returns nonzero (or gk_loop_stop)
 *   gk_server_stop(s);                    // any time; the socket file is removed
 *   gk_loop_free(loop);                   // stops what still runs, waits for the core
 *
 * - Everything runs on the thread of gk_loop_run: method handlers, stream
 *   callbacks, client-call completions and `tick`, which runs at least every
 *   tick_ms (the place for polling: health, files, a signal flag). No call
 *   of this API from another thread.
 * - A request that does not parse as the method's message is answered
 *   INVALID_ARGUMENT; an unknown method UNIMPLEMENTED; both without calling
 *   the service. A handler that neither replies nor fails answers INTERNAL.
 * - Server streaming: `stream` is called with the request and a struct
 *   gk_stream that stays valid until `closed` is called for it (the client
 *   went away, the server stopped, or gk_stream_finish). Send with
 *   gk_stream_send at any later time from the loop thread (from `tick`, for
 *   example); messages are queued and written in order.
 * - gk_call_unary: a client call to another unix socket, answered through
 *   `done` on the loop thread; it never blocks the loop, so the peer may
 *   call back into our servers before it answers (the kubelet's Register).
 * - A server socket path that exists is removed first (a stale socket of a
 *   killed process); the caller decides before whether that is right.
 */
#ifndef GPUMEM_K8S_GRPC_SERVER_H
#define GPUMEM_K8S_GRPC_SERVER_H

#include <stddef.h>

#include <grpc/status.h>
#include <protobuf-c/protobuf-c.h>

struct gk_loop;
struct gk_server;
struct gk_reply;
struct gk_stream;

struct gk_method {
    const char *path;                                 /* "/package.Service/Method" */
    const ProtobufCMessageDescriptor *request;        /* what the request must parse as */
    /* Exactly one of these. */
    void (*unary)(void *svc, const ProtobufCMessage *req, struct gk_reply *r);
    void (*stream)(void *svc, const ProtobufCMessage *req, struct gk_stream *s);
    /* Streams: called once when the stream ends, for any reason. */
    void (*closed)(void *svc, struct gk_stream *s);
};

struct gk_loop *gk_loop_new(char *err, size_t errlen);
/* Runs until tick returns nonzero or gk_loop_stop is called (from a
 * callback); may be called again. tick may be NULL. */
void gk_loop_run(struct gk_loop *loop, int (*tick)(void *arg), void *arg, int tick_ms);
void gk_loop_stop(struct gk_loop *loop);
/* Stops every server still running, cancels client calls, waits for the
 * core to hand back all of them (streams get `closed`, calls `done`), and
 * frees the loop. */
void gk_loop_free(struct gk_loop *loop);

/* Listens on unix:`socket_path`; methods ends with an entry whose path is
 * NULL and must outlive the server. NULL with err filled on failure. */
struct gk_server *gk_server_start(struct gk_loop *loop, const char *socket_path, const struct gk_method *methods,
                                  void *svc, char *err, size_t errlen);
/* Stops accepting, cancels its calls (streams get `closed`), removes the
 * socket file if it is still ours; the memory is released once the core is
 * done with it. */
void gk_server_stop(struct gk_server *s);
const char *gk_server_socket(const struct gk_server *s);

/* Unary replies: exactly one of these per call. */
void gk_reply_message(struct gk_reply *r, const ProtobufCMessage *msg);
void gk_reply_error(struct gk_reply *r, grpc_status_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Streams. */
int gk_stream_send(struct gk_stream *s, const ProtobufCMessage *msg);
void gk_stream_finish(struct gk_stream *s, grpc_status_code code, const char *detail);
void *gk_stream_data(struct gk_stream *s);             /* a pointer the service may keep with it */
void gk_stream_set_data(struct gk_stream *s, void *data);

/* A unary client call to unix:`socket_path`. done() gets the status, its
 * message ("" when OK) and the parsed response (NULL unless OK; freed
 * after done returns). Returns -1 with err filled if it could not start. */
typedef void (*gk_call_done)(void *arg, grpc_status_code code, const char *detail, const ProtobufCMessage *resp);
int gk_call_unary(struct gk_loop *loop, const char *socket_path, const char *method, const ProtobufCMessage *req,
                  const ProtobufCMessageDescriptor *resp_desc, int timeout_ms, gk_call_done done, void *arg,
                  char *err, size_t errlen);

/* Packs msg into a gRPC byte buffer, or parses one (NULL if it does not
 * parse). Exposed for the fuzz target and tests. */
ProtobufCMessage *gk_unpack(const ProtobufCMessageDescriptor *desc, const void *data, size_t len);

#endif
