/* The gRPC layer (src/k8s/grpc_server.c) against itself, in one loop: a
 * server with a unary method, client calls through gk_call_unary, and what
 * the layer promises for bad calls (an unknown method is UNIMPLEMENTED, a
 * request that does not parse is INVALID_ARGUMENT, a handler's error comes
 * back with its code and message), a stopped server removes its socket and
 * a call to it fails UNAVAILABLE. Streams are driven by the fake kubelet
 * (grpc-go) in tests/integration/k8s_plugin.sh.
 *
 *   grpc_selftest DIR     (a directory for the socket) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deviceplugin.pb-c.h"
#include "grpc_server.h"
#include "testlib.h"

static void options(void *svc, const ProtobufCMessage *req, struct gk_reply *r)
{
    V1beta1__DevicePluginOptions o = V1BETA1__DEVICE_PLUGIN_OPTIONS__INIT;
    o.get_preferred_allocation_available = 1;
    (*(int *)svc)++;
    gk_reply_message(r, &o.base);
}

static void refuse(void *svc, const ProtobufCMessage *req, struct gk_reply *r)
{
    const V1beta1__RegisterRequest *in = (const void *)req;
    gk_reply_error(r, GRPC_STATUS_INVALID_ARGUMENT, "resource \"%s\" refused", in->resource_name);
}

static void silent(void *svc, const ProtobufCMessage *req, struct gk_reply *r)
{
}

static const struct gk_method methods[] = {
    { "/t.S/Options", &v1beta1__empty__descriptor, .unary = options },
    { "/t.S/Refuse", &v1beta1__register_request__descriptor, .unary = refuse },
    { "/t.S/Silent", &v1beta1__empty__descriptor, .unary = silent },
    { "/t.S/Numa", &v1beta1__numanode__descriptor, .unary = silent },
    { 0 },
};

struct result {
    int done;
    grpc_status_code code;
    char detail[512];
    int preferred;
};

static void done(void *arg, grpc_status_code code, const char *detail, const ProtobufCMessage *resp)
{
    struct result *r = arg;
    r->done = 1;
    r->code = code;
    snprintf(r->detail, sizeof r->detail, "%s", detail);
    if (resp && resp->descriptor == &v1beta1__device_plugin_options__descriptor)
        r->preferred = ((const V1beta1__DevicePluginOptions *)resp)->get_preferred_allocation_available;
}

static struct gk_loop *loop;
static struct gk_server *srv;
static int calls;
static char sock[4096];

static int until_done(void *arg)
{
    return ((struct result *)arg)->done;
}

/* Makes one call and runs the loop until it is answered. */
static struct result call(const char *method, const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rd)
{
    struct result r = { 0 };
    char err[256];
    if (gk_call_unary(loop, sock, method, req, rd, 5000, done, &r, err, sizeof err) < 0) {
        r.done = 1;
        r.code = (grpc_status_code)-1;
        snprintf(r.detail, sizeof r.detail, "%s", err);
        return r;
    }
    gk_loop_run(loop, until_done, &r, 10);
    return r;
}

TEST(unary_reply)
{
    V1beta1__Empty e = V1BETA1__EMPTY__INIT;
    struct result r = call("/t.S/Options", &e.base, &v1beta1__device_plugin_options__descriptor);
    CHECK_EQ_INT(r.code, GRPC_STATUS_OK);
    CHECK_EQ_INT(r.preferred, 1);
    CHECK_EQ_INT(calls, 1);
}

TEST(unary_error_keeps_code_and_message)
{
    V1beta1__RegisterRequest q = V1BETA1__REGISTER_REQUEST__INIT;
    q.resource_name = "x.io/y";
    struct result r = call("/t.S/Refuse", &q.base, &v1beta1__empty__descriptor);
    CHECK_EQ_INT(r.code, GRPC_STATUS_INVALID_ARGUMENT);
    CHECK_STR(r.detail, "resource \"x.io/y\" refused");
}

TEST(unknown_method_unimplemented)
{
    V1beta1__Empty e = V1BETA1__EMPTY__INIT;
    struct result r = call("/t.S/Nope", &e.base, &v1beta1__empty__descriptor);
    CHECK_EQ_INT(r.code, GRPC_STATUS_UNIMPLEMENTED);
}

TEST(unparsable_request_invalid_argument)
{
    /* A string in field 1 where the method's message has an int64. */
    V1beta1__CDIDevice d = V1BETA1__CDIDEVICE__INIT;
    d.name = "not a number";
    struct result r = call("/t.S/Numa", &d.base, &v1beta1__empty__descriptor);
    CHECK_EQ_INT(r.code, GRPC_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(r.detail, "v1beta1.NUMANode") != NULL);
    CHECK_EQ_INT(calls, 1);
}

TEST(handler_without_reply_internal)
{
    V1beta1__Empty e = V1BETA1__EMPTY__INIT;
    struct result r = call("/t.S/Silent", &e.base, &v1beta1__empty__descriptor);
    CHECK_EQ_INT(r.code, GRPC_STATUS_INTERNAL);
}

TEST(stopped_server_removes_socket)
{
    gk_server_stop(srv);
    srv = NULL;
    CHECK(access(sock, F_OK) != 0);
    V1beta1__Empty e = V1BETA1__EMPTY__INIT;
    struct result r = call("/t.S/Options", &e.base, &v1beta1__device_plugin_options__descriptor);
    CHECK_EQ_INT(r.code, GRPC_STATUS_UNAVAILABLE);
}

TEST(stale_socket_replaced)
{
    /* A regular file where the socket goes, as a killed server leaves one. */
    FILE *f = fopen(sock, "w");
    CHECK(f != NULL);
    fclose(f);
    char err[256];
    srv = gk_server_start(loop, sock, methods, &calls, err, sizeof err);
    CHECK(srv != NULL);
    V1beta1__Empty e = V1BETA1__EMPTY__INIT;
    struct result r = call("/t.S/Options", &e.base, &v1beta1__device_plugin_options__descriptor);
    CHECK_EQ_INT(r.code, GRPC_STATUS_OK);
}

int main(int argc, char **argv)
{
    char err[256];
    if (argc != 2) {
        fprintf(stderr, "usage: grpc_selftest DIR\n");
        return 2;
    }
    snprintf(sock, sizeof sock, "%s/selftest.sock", argv[1]);
    loop = gk_loop_new(err, sizeof err);
    if (!loop || !(srv = gk_server_start(loop, sock, methods, &calls, err, sizeof err))) {
        printf("FAIL start: %s\n", err);
        return 1;
    }
    RUN(unary_reply);
    RUN(unary_error_keeps_code_and_message);
    RUN(unknown_method_unimplemented);
    RUN(unparsable_request_invalid_argument);
    RUN(handler_without_reply_internal);
    RUN(stopped_server_removes_socket);
    RUN(stale_socket_replaced);
    gk_loop_free(loop);
    return test_summary();
}
