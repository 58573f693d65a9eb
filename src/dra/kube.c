/* The API server, as a pod reaches it (in-cluster configuration): HTTPS to
 * https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, the server
 * checked against the service account's ca.crt, authenticated by its token
 * (re-read at every request: kubelet rotates projected tokens). One curl
 * handle, so the TLS connection is kept between requests, used by one
 * thread at a time (the health loop publishes while kubelet's calls fetch
 * claims). */
#include "dra.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

struct kube {
    pthread_mutex_t mu;     /* the handle and the buffers of kube_request */
    CURL *curl;
    char server[600];
    char token_path[4200];
    char ca_path[4200];
};

struct body {
    char *data;
    size_t len, cap;
};

static size_t on_data(char *p, size_t size, size_t n, void *ctx)
{
    struct body *b = ctx;
    size_t add = size * n;
    /* An API object is far below this; more is not an answer we can use. */
    if (b->len + add + 1 > (64u << 20))
        return 0;
    if (b->len + add + 1 > b->cap) {
        size_t cap = (b->len + add + 1) * 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return 0;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, add);
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}

struct kube *kube_open(const char *server, const char *sa_dir, char *err, size_t errlen)
{
    static int inited;
    if (!inited && curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        snprintf(err, errlen, "libcurl: cannot initialise");
        return NULL;
    }
    inited = 1;
    struct kube *k = calloc(1, sizeof *k);
    if (!k) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    const char *dir = sa_dir && *sa_dir ? sa_dir : SA_DIR;
    snprintf(k->token_path, sizeof k->token_path, "%s/token", dir);
    snprintf(k->ca_path, sizeof k->ca_path, "%s/ca.crt", dir);
    if (server && *server) {
        if (strncmp(server, "https://", 8) != 0) {
            snprintf(err, errlen, "API server \"%s\": expected https://HOST[:PORT]", server);
            free(k);
            return NULL;
        }
        snprintf(k->server, sizeof k->server, "%s", server);
        size_t n = strlen(k->server);
        while (n > 8 && k->server[n - 1] == '/')
            k->server[--n] = '\0';
    } else {
        const char *host = getenv("KUBERNETES_SERVICE_HOST"), *port = getenv("KUBERNETES_SERVICE_PORT");
        if (!host || !*host || !port || !*port) {
            snprintf(err, errlen, "not in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not "
                                  "set (give --api-server https://HOST:PORT)");
            free(k);
            return NULL;
        }
        int v6 = strchr(host, ':') != NULL;
        snprintf(k->server, sizeof k->server, "https://%s%.256s%s:%.16s", v6 ? "[" : "", host, v6 ? "]" : "", port);
    }
    FILE *ca = fopen(k->ca_path, "re");
    if (!ca) {
        snprintf(err, errlen, "service account CA %s: %s", k->ca_path, strerror(errno));
        free(k);
        return NULL;
    }
    fclose(ca);
    pthread_mutex_init(&k->mu, NULL);
    k->curl = curl_easy_init();
    if (!k->curl) {
        snprintf(err, errlen, "libcurl: no handle");
        free(k);
        return NULL;
    }
    return k;
}

void kube_close(struct kube *k)
{
    if (!k)
        return;
    curl_easy_cleanup(k->curl);
    free(k);
}

static int read_token(const char *path, char *buf, size_t len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        snprintf(err, errlen, "service account token %s: %s", path, strerror(errno));
        return -1;
    }
    size_t n = fread(buf, 1, len - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    if (!n || n == len - 1 || strpbrk(buf, "\r\n")) {
        snprintf(err, errlen, "service account token %s: %s", path, n ? "not a single line" : "empty");
        return -1;
    }
    return 0;
}

static long request_locked(struct kube *k, const char *method, const char *path, json_t *body, json_t **out,
                           char *err, size_t errlen)
{
    static char token[16384], auth[16384 + 32];
    char url[4800];
    struct body b = {0};
    char *payload = NULL;
    long status = -1;
    *out = NULL;
    if (read_token(k->token_path, token, sizeof token, err, errlen) < 0)
        return -1;
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    snprintf(url, sizeof url, "%s%s", k->server, path);
    struct curl_slist *h = curl_slist_append(NULL, auth);
    h = curl_slist_append(h, "Accept: application/json");
    if (body) {
        payload = json_dumps(body, JSON_COMPACT);
        h = curl_slist_append(h, "Content-Type: application/json");
    }
    CURL *c = k->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CAINFO, k->ca_path);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (payload) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "%s %s: %s", method, url, curl_easy_strerror(rc));
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (b.len)
            *out = json_loadb(b.data, b.len, 0, NULL);
    }
    curl_slist_free_all(h);
    free(payload);
    free(b.data);
    return status;
}

long kube_request(struct kube *k, const char *method, const char *path, json_t *body, json_t **out, char *err,
                  size_t errlen)
{
    pthread_mutex_lock(&k->mu);
    long st = request_locked(k, method, path, body, out, err, errlen);
    pthread_mutex_unlock(&k->mu);
    return st;
}

const char *kube_status_message(json_t *status)
{
    const char *m = json_string_value(json_object_get(status, "message"));
    return m ? m : "(no message)";
}
