/* The HTTP side, on libmicrohttpd (one internal polling thread): GET or
 * HEAD /metrics collects a fresh snapshot and renders it; /healthz answers
 * "ok"; any other path is 404, any other method 405. Collection is
 * serialised with the interval loop (dm_collect_lock).
 *
 * libmicrohttpd is loaded (dlopen) when the daemon starts its server, not
 * linked: it brings in gnutls and a dozen more libraries whose loading and
 * initialisers every other gpumem command would pay at each start
 * (docs/performance.md, "Start-up of the commands"). Its header still gives
 * the types. */
#include "daemon.h"
#include "policy.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* The libmicrohttpd ABI this was built against (soname major 12 since
 * 0.9.x); the unversioned name is a fallback for unusual installs. */
static const char *const mhd_libs[] = {"libmicrohttpd.so.12", "libmicrohttpd.so"};

_Static_assert(sizeof(void *) == sizeof(void (*)(void)), "dlsym results are function pointers");
static struct {
    struct MHD_Daemon *(*start_daemon)(unsigned int flags, uint16_t port, MHD_AcceptPolicyCallback apc,
                                       void *apc_cls, MHD_AccessHandlerCallback dh, void *dh_cls, ...);
    void (*stop_daemon)(struct MHD_Daemon *d);
    const union MHD_DaemonInfo *(*get_daemon_info)(struct MHD_Daemon *d, enum MHD_DaemonInfoType type, ...);
    struct MHD_Response *(*create_response_from_buffer)(size_t size, void *buffer, enum MHD_ResponseMemoryMode mode);
    enum MHD_Result (*add_response_header)(struct MHD_Response *r, const char *header, const char *content);
    enum MHD_Result (*queue_response)(struct MHD_Connection *c, unsigned int status, struct MHD_Response *r);
    void (*destroy_response)(struct MHD_Response *r);
} mhd_api;

/* Loads libmicrohttpd and finds its functions (once; left loaded). */
static int mhd_load(char *err, size_t errlen)
{
    if (mhd_api.start_daemon)
        return 0;
    void *h = NULL;
    const char *why = "";
    for (size_t i = 0; i < sizeof mhd_libs / sizeof mhd_libs[0] && !h; i++)
        if (!(h = dlopen(mhd_libs[i], RTLD_NOW | RTLD_LOCAL)) && i == 0) {
            const char *e = dlerror();
            why = e ? e : mhd_libs[i];
        }
    if (!h) {
        snprintf(err, errlen, "cannot load libmicrohttpd, the HTTP server (Debian: libmicrohttpd12): %s", why);
        return -1;
    }
    struct {
        const char *name;
        void *fn; /* the member (a function pointer) to fill */
    } fns[] = {
        {"MHD_start_daemon", &mhd_api.start_daemon},
        {"MHD_stop_daemon", &mhd_api.stop_daemon},
        {"MHD_get_daemon_info", &mhd_api.get_daemon_info},
        {"MHD_create_response_from_buffer", &mhd_api.create_response_from_buffer},
        {"MHD_add_response_header", &mhd_api.add_response_header},
        {"MHD_queue_response", &mhd_api.queue_response},
        {"MHD_destroy_response", &mhd_api.destroy_response},
    };
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        void *sym = dlsym(h, fns[i].name);
        if (!sym) {
            snprintf(err, errlen, "libmicrohttpd has no %s", fns[i].name);
            memset(&mhd_api, 0, sizeof mhd_api);
            return -1;
        }
        memcpy(fns[i].fn, &sym, sizeof sym); /* POSIX: a data pointer converts to a function pointer */
    }
    return 0;
}

static struct MHD_Daemon *mhd;
static const char *state_dir;
static pthread_mutex_t collect_mutex = PTHREAD_MUTEX_INITIALIZER;

void dm_collect_lock(void) { pthread_mutex_lock(&collect_mutex); }
void dm_collect_unlock(void) { pthread_mutex_unlock(&collect_mutex); }

int dm_parse_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *len, char *err, size_t errlen)
{
    char host[128];
    const char *port_s;
    memset(ss, 0, sizeof *ss);
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        if (!close || close[1] != ':' || (size_t)(close - spec - 1) >= sizeof host)
            goto bad;
        snprintf(host, sizeof host, "%.*s", (int)(close - spec - 1), spec + 1);
        port_s = close + 2;
    } else {
        const char *colon = strrchr(spec, ':');
        if (!colon || (size_t)(colon - spec) >= sizeof host || memchr(spec, ':', (size_t)(colon - spec)))
            goto bad;
        snprintf(host, sizeof host, "%.*s", (int)(colon - spec), spec);
        port_s = colon + 1;
    }
    /* The port: 1 to 5 decimal digits, at most 65535 (0: any free port). */
    size_t nd = strspn(port_s, "0123456789");
    if (nd == 0 || nd > 5 || port_s[nd] != '\0') {
        snprintf(err, errlen, "--listen \"%s\": the port must be a number from 0 to 65535", spec);
        return -1;
    }
    long port = strtol(port_s, NULL, 10);
    if (port > 65535) {
        snprintf(err, errlen, "--listen \"%s\": port %ld is out of range (0-65535)", spec, port);
        return -1;
    }
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (spec[0] == '[') {
        if (inet_pton(AF_INET6, host, &v6->sin6_addr) != 1)
            goto bad;
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *len = sizeof *v6;
        return 0;
    }
    if (host[0] == '\0')
        v4->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (strcmp(host, "localhost") == 0)
        v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else if (inet_pton(AF_INET, host, &v4->sin_addr) != 1)
        goto bad;
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    *len = sizeof *v4;
    return 0;
bad:
    snprintf(err, errlen,
             "--listen \"%s\": expected ADDR:PORT (an IPv4 address, localhost, [IPv6] or nothing for every "
             "interface, then a port), e.g. 127.0.0.1:9400 or :9400",
             spec);
    return -1;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned int status, const char *type, char *body,
                             size_t len, int must_free)
{
    struct MHD_Response *r = mhd_api.create_response_from_buffer(len, body,
                                                             must_free ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        if (must_free)
            free(body);
        return MHD_NO;
    }
    mhd_api.add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        mhd_api.add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ret = mhd_api.queue_response(c, status, r);
    mhd_api.destroy_response(r);
    return ret;
}

#define TEXT "text/plain; charset=utf-8"

static enum MHD_Result serve_metrics(struct MHD_Connection *c)
{
    struct dm_snapshot s;
    struct gbuf b = {0};
    dm_collect_lock();
    dm_collect(&s, state_dir, 0);
    dm_leak_mark(&s);
    dm_collect_unlock();
    dm_render_metrics(&b, &s);
    pl_render_metrics(&b, state_dir);
    int oom = b.oom || s.oom;
    dm_snapshot_free(&s);
    if (oom || !b.p) {
        gbuf_free(&b);
        static char msg[] = "out of memory while rendering metrics\n";
        return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, TEXT, msg, strlen(msg), 0);
    }
    return reply(c, MHD_HTTP_OK, DM_METRICS_CONTENT_TYPE, b.p, b.len, 1);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **state)
{
    static char ok[] = "ok\n", notfound[] = "not found: try /metrics or /healthz\n",
                notallowed[] = "method not allowed: use GET\n";
    int known = strcmp(url, "/metrics") == 0 || strcmp(url, "/healthz") == 0;
    if (!known)
        return reply(c, MHD_HTTP_NOT_FOUND, TEXT, notfound, strlen(notfound), 0);
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, TEXT, notallowed, strlen(notallowed), 0);
    if (strcmp(url, "/healthz") == 0)
        return reply(c, MHD_HTTP_OK, TEXT, ok, strlen(ok), 0);
    return serve_metrics(c);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = '\0';
    struct gbuf f = {0};
    gbuf_puts(&f, ",\"message\":");
    gbuf_json(&f, msg);
    dm_log("warn", "http", f.p);
    gbuf_free(&f);
}

int dm_http_start(const struct sockaddr_storage *ss, const char *dir, char *err, size_t errlen)
{
    state_dir = dir;
    if (mhd_load(err, errlen) < 0)
        return -1;
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (ss->ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    errno = 0;
    mhd = mhd_api.start_daemon(flags, 0, NULL, NULL, handle, NULL, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                           MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)ss, MHD_OPTION_CONNECTION_TIMEOUT,
                           (unsigned int)10, MHD_OPTION_END);
    if (!mhd) {
        snprintf(err, errlen, "cannot listen: %s", errno ? strerror(errno) : "libmicrohttpd refused to start");
        return -1;
    }
    const union MHD_DaemonInfo *info = mhd_api.get_daemon_info(mhd, MHD_DAEMON_INFO_BIND_PORT);
    return info ? info->port : 0;
}

void dm_http_stop(void)
{
    if (mhd)
        mhd_api.stop_daemon(mhd);
    mhd = NULL;
}
