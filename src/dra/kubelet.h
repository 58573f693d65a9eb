/* The kubelet side of gpumem-dra: the plugin registration service and the
 * DRAPlugin service (kubelet.c), over the node logic (node.c) that turns a
 * claim reference into a prepared claim. */
#ifndef GPUMEM_DRA_KUBELET_H
#define GPUMEM_DRA_KUBELET_H

#include <pthread.h>

#include "dra.h"

struct dra_kubelet_options {
    char registry_dir[4096];    /* <dir>/<driver>.sock: pluginregistration/v1 */
    char plugins_dir[4096];     /* <dir>/<driver>/dra.sock: DRAPlugin */
};

/* What the services share with the main loop: the options, the API server
 * and the current inventory (the main loop replaces it under the lock). */
struct dra_node {
    const struct dra_options *o;
    struct kube *k;
    struct dra_inventory *inv;
};
void dra_node_lock(struct dra_node *n);
void dra_node_unlock(struct dra_node *n);

/* One claim of NodePrepareResources: fetched from the API server, checked
 * against this node, prepared. On success `c` holds its results (one
 * device each, all with the same CDI device ID `cdi_id`). */
int dra_node_prepare(struct dra_node *n, const char *ns, const char *uid, const char *name, struct dra_claim *c,
                     char *cdi_id, size_t idlen, char *err, size_t errlen);
/* One claim of NodeUnprepareResources (from its checkpoint only). */
int dra_node_unprepare(struct dra_node *n, const char *uid, char *err, size_t errlen);

/* Starts serving both sockets on a thread of its own; NULL with err set
 * when a socket cannot be made. */
struct dra_kubelet;
struct dra_kubelet *dra_kubelet_start(const struct dra_kubelet_options *ko, struct dra_node *n, char *err,
                                      size_t errlen);
void dra_kubelet_stop(struct dra_kubelet *kl);

void dra_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
