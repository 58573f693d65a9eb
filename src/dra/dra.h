/* gpumem-dra: a Kubernetes DRA driver (resource.k8s.io/v1) that publishes
 * each GPU with a consumable `memory` capacity and enforces every claim's
 * share with a gpumem group.
 *
 *   API server side  kube.c (HTTPS + service account), slice.c (one
 *                    ResourceSlice per node), claim.c (allocation results)
 *   node side        gpus.c (NVML), prepare.c (group + CDI spec + per-claim
 *                    checkpoint), cdi.c
 *
 * Functions outside main.c return 0 or -1 with a message in an error
 * buffer that quotes the bad input. */
#ifndef GPUMEM_DRA_H
#define GPUMEM_DRA_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "gpumem/group.h"

#define DRA_DEFAULT_DRIVER "gpumem.io"
#define DRA_MAX_GPUS       GM_MAX_DEVICES
#define DRA_ERRLEN         1024

/* ---- quantities (quantity.c) ------------------------------------------
 * Kubernetes resource.Quantity as bytes: "4Gi", "4096Mi", "4G" (decimal),
 * "1.5Gi", "4294967296", "4e9". Fractions of a byte round up, as
 * Quantity.Value() does. */
int dra_quantity_parse(const char *s, uint64_t *out, char *err, size_t errlen);
/* The canonical form for a whole number of bytes: the largest binary
 * suffix that divides it ("16Gi", "1536Mi", "100"). */
const char *dra_quantity_format(uint64_t bytes, char *buf, size_t len);

/* ---- GPUs (gpus.c) ----------------------------------------------------- */
struct dra_gpu {
    int index;
    char uuid[GM_UUID_LEN];     /* "GPU-..." lower case */
    char model[96];
    uint64_t memory;            /* bytes */
    int healthy;                /* 0: NVML answers GPU_IS_LOST or another error */
    char health_reason[96];     /* why not healthy */
};
struct dra_inventory {
    int n;
    struct dra_gpu gpu[DRA_MAX_GPUS];
    char driver_version[64];    /* semantic version ("550.163.1") for the attribute */
};
/* Opens NVML (lib: a path, NULL = the system's libnvidia-ml.so.1). */
int dra_nvml_open(const char *lib, char *err, size_t errlen);
/* Reads every GPU. A GPU seen before (in `prev`, may be NULL) that NVML no
 * longer answers for keeps its identity and turns unhealthy. */
int dra_inventory_read(struct dra_inventory *inv, const struct dra_inventory *prev, char *err, size_t errlen);
/* "550.163.01" -> "550.163.1": NVML's version as semver (leading zeros
 * dropped, missing parts 0). */
void dra_semver(const char *nvml_version, char *buf, size_t len);

/* ---- options (main.c fills, the rest reads) ---------------------------- */
enum dra_unhealthy { DRA_UNHEALTHY_TAINT, DRA_UNHEALTHY_REMOVE };
struct dra_options {
    char driver[64];            /* driver name: DNS subdomain, default gpumem.io */
    char node[254];             /* node name (pool name) */
    uint64_t unit;              /* request policy step and default, bytes */
    enum dra_unhealthy unhealthy;
    char state_dir[4096];       /* per-claim checkpoints */
    char cdi_dir[4096];         /* CDI specs */
    char shim[4096];            /* libgpumem.so on the host */
    char groups_dir[4096];      /* where groups are created (gm_state_dir) */
};

/* ---- the ResourceSlice (slice.c) --------------------------------------- */
/* The slice's spec for an inventory (no metadata, no generation). */
json_t *dra_slice_spec(const struct dra_options *o, const struct dra_inventory *inv, int64_t generation);
/* The ResourceSlice's object name: "<node>-<driver>" (dots kept). */
void dra_slice_name(const struct dra_options *o, char *buf, size_t len);

/* ---- API server (kube.c) ----------------------------------------------- */
struct kube;
/* In-cluster configuration: KUBERNETES_SERVICE_HOST/PORT, the service
 * account token and CA under sa_dir (default
 * /var/run/secrets/kubernetes.io/serviceaccount); `server` (https://host:port)
 * overrides the environment. */
struct kube *kube_open(const char *server, const char *sa_dir, char *err, size_t errlen);
void kube_close(struct kube *k);
/* method GET/POST/PUT/DELETE on path ("/apis/..."), body may be NULL.
 * Returns the HTTP status (or -1, err set, when no answer came) and the
 * decoded JSON answer in *out (NULL if none or not JSON). */
long kube_request(struct kube *k, const char *method, const char *path, json_t *body, json_t **out, char *err,
                  size_t errlen);
/* The API server's message from a Status object ("" if none). */
const char *kube_status_message(json_t *status);

/* Creates or updates this node's ResourceSlice so that it describes `inv`;
 * the pool generation is bumped whenever the devices change. *changed is
 * set to 1 when something was written. */
int dra_slice_publish(struct kube *k, const struct dra_options *o, const struct dra_inventory *inv, int *changed,
                      char *err, size_t errlen);

/* ---- claims (claim.c) -------------------------------------------------- */
struct dra_result {
    char request[64];
    char pool[254];
    char device[64];
    char share_id[64];
    uint64_t memory;            /* consumedCapacity.memory, bytes */
    char uuid[GM_UUID_LEN];     /* the GPU, from the inventory */
};
struct dra_claim {
    char uid[64];
    char namespace_[64];
    char name[254];
    char pod[254];              /* status.reservedFor[] pod, "" if none */
    int n;
    struct dra_result res[DRA_MAX_GPUS];
};
/* Reads the allocation results of `driver` from a ResourceClaim object and
 * matches each device against the inventory of this node: results of other
 * drivers are skipped; a claim with none of ours, a result on another pool
 * or for a device this node does not have, or one without consumed memory
 * capacity is an error naming the claim and the bad value. `uid`, if not
 * NULL, must be the object's metadata.uid. */
int dra_claim_parse(json_t *obj, const char *uid, const struct dra_options *o, const struct dra_inventory *inv,
                    struct dra_claim *c, char *err, size_t errlen);
/* GET namespaces/<ns>/resourceclaims/<name> and dra_claim_parse. */
int dra_claim_fetch(struct kube *k, const char *ns, const char *name, const char *uid, const struct dra_options *o,
                    const struct dra_inventory *inv, struct dra_claim *c, char *err, size_t errlen);

/* ---- prepare / unprepare (prepare.c, cdi.c, checkpoint.c) ---------------- */
/* The CDI device ID of a claim: "<driver>/claim=<uid>". */
void dra_cdi_id(const struct dra_options *o, const char *uid, char *buf, size_t len);
/* Writes <cdi_dir>/<driver>-claim_<uid>.json (tmp + rename). */
int dra_cdi_write(const struct dra_options *o, const struct dra_claim *c, const char *group_dir, char *err,
                  size_t errlen);
void dra_cdi_path(const struct dra_options *o, const char *uid, char *buf, size_t len);

/* Checkpoint: <state_dir>/claims/<uid>.json, the claim as prepared. */
int dra_checkpoint_write(const struct dra_options *o, const struct dra_claim *c, char *err, size_t errlen);
/* 1 and *c filled when a checkpoint exists, 0 when none, -1 when unreadable. */
int dra_checkpoint_read(const struct dra_options *o, const char *uid, struct dra_claim *c, char *err, size_t errlen);
int dra_checkpoint_remove(const struct dra_options *o, const char *uid);
/* Writes j to path through path.tmp + fsync + rename (mode 0644), so a
 * crash leaves the old file or the new one, never half of one. */
int dra_write_json(const char *path, json_t *j, char *err, size_t errlen);
/* A claim UID as kubelet and the API server give it (also a safe file
 * name): [0-9a-zA-Z-], 1..63 characters. 0 when valid. */
int dra_valid_uid(const char *uid);

/* The group of a claim: <groups_dir>/dra-<uid>. */
void dra_group_dir(const struct dra_options *o, const char *uid, char *buf, size_t len);

/* Prepares a parsed claim: checkpoint, group (limit = consumed memory on
 * each allocated GPU), CDI spec. Idempotent: a claim already prepared gets
 * the same answer. cdi_id receives the CDI device ID. */
int dra_prepare(const struct dra_options *o, const struct dra_claim *c, char *cdi_id, size_t idlen, char *err,
                size_t errlen);
/* Unprepares claim `uid` from its checkpoint: removes the CDI spec, the
 * group once no process uses it (else the last one out, or the daemon,
 * removes it), then the checkpoint. A claim not prepared is no error. */
int dra_unprepare(const struct dra_options *o, const char *uid, char *err, size_t errlen);

#endif
