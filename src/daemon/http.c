/* The HTTP side, on libmicrohttpd (one internal polling thread): GET or
 * HEAD /metrics collects a fresh snapshot and renders it; /healthz answers
 * "ok"; any other path is 404, any other method 405. Collection is
 * serialised with the interval loop (dm_collect_lock). */
#include "daemon.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

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
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body,
                                                             must_free ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        if (must_free)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
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
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (ss->ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    errno = 0;
    mhd = MHD_start_daemon(flags, 0, NULL, NULL, handle, NULL, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                           MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)ss, MHD_OPTION_CONNECTION_TIMEOUT,
                           (unsigned int)10, MHD_OPTION_END);
    if (!mhd) {
        snprintf(err, errlen, "cannot listen: %s", errno ? strerror(errno) : "libmicrohttpd refused to start");
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(mhd, MHD_DAEMON_INFO_BIND_PORT);
    return info ? info->port : 0;
}

void dm_http_stop(void)
{
    if (mhd)
        MHD_stop_daemon(mhd);
    mhd = NULL;
}
