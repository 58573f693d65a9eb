/* One claim at a time, as kubelet asks: the claim object from the API
 * server (kubelet sends only namespace, name and UID), checked against the
 * inventory, then prepared (prepare.c). Kubelet may call for several pods
 * at once; preparing is serialised (it is milliseconds of file work). */
#include "kubelet.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t node_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t claim_mu = PTHREAD_MUTEX_INITIALIZER;

void dra_node_lock(struct dra_node *n) { pthread_mutex_lock(&node_mu); }
void dra_node_unlock(struct dra_node *n) { pthread_mutex_unlock(&node_mu); }

/* Names are DNS labels/subdomains: nothing that could leave the URL path. */
static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '.'))
            return 0;
    return 1;
}

int dra_node_prepare(struct dra_node *n, const char *ns, const char *uid, const char *name, struct dra_claim *c,
                     char *cdi_id, size_t idlen, char *err, size_t errlen)
{
    static struct dra_inventory inv;
    if (!valid_name(ns) || !valid_name(name) || dra_valid_uid(uid) != 0) {
        snprintf(err, errlen, "claim \"%.64s/%.254s\" (uid \"%.64s\"): not a valid namespace, name and UID", ns, name,
                 uid);
        return -1;
    }
    pthread_mutex_lock(&claim_mu);
    dra_node_lock(n);
    inv = *n->inv;
    dra_node_unlock(n);
    /* Prepared before (a retry, or a restart): answered from the
     * checkpoint, without asking the API server. */
    char e[DRA_ERRLEN];
    int got = dra_checkpoint_read(n->o, uid, c, e, sizeof e);
    int rc = got < 0 ? -1 : 0;
    if (got < 0)
        snprintf(err, errlen, "claim %s/%s: %s", ns, name, e);
    else if (got == 0)
        rc = dra_claim_fetch(n->k, ns, name, uid, n->o, &inv, c, err, errlen);
    if (rc == 0)
        rc = dra_prepare(n->o, c, cdi_id, idlen, err, errlen);
    pthread_mutex_unlock(&claim_mu);
    return rc;
}

int dra_node_unprepare(struct dra_node *n, const char *uid, char *err, size_t errlen)
{
    pthread_mutex_lock(&claim_mu);
    int rc = dra_unprepare(n->o, uid, err, errlen);
    pthread_mutex_unlock(&claim_mu);
    return rc;
}

/* One line per event on stderr (kubectl logs): time, program, message. */
void dra_log(const char *fmt, ...)
{
    char ts[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s gpumem-dra: ", ts);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
