/* Creating a group under admission control (docs/policy.md): its request
 * must fit each GPU beside the requests of every other group, checked and
 * the group created under the state directory's admission lock, so two
 * creators racing cannot both take the last room. A creator killed at any
 * point leaves nothing that holds a request: the lock goes with it, a
 * queue entry of a dead waiter is dropped by whoever reads the queue, and a
 * group created but not finished is removed by the next admission. */
#ifndef GPUMEM_ADMIT_H
#define GPUMEM_ADMIT_H

#include <sys/types.h>

#include "gpumem/policy.h"

struct gm_admit {
    const char *state;          /* the state directory */
    const char *dir;            /* the group's directory, to create */
    const struct gm_limits *l;  /* its limits, requests and priority (l->name set) */
    mode_t mode;                /* of its usage file */
    const struct gm_gpu *gpus;  /* the machine's GPUs */
    int ngpus;
    int wait;                   /* queue until it fits, rather than refuse */
    double timeout;             /* with wait: seconds, -1 = forever */
    const char *creator;        /* "gpumem run", "gpumem-runtime": for the journal */
    /* Called once when the start has to wait, with why. */
    void (*note)(const char *why, void *ctx);
    void *ctx;
};

/* Admits and creates the group. Returns the admission lock (>= 0), still
 * held so that the caller can finish the group (its run marker, a
 * container record) before anyone can take it for half-made: then call
 * gm_admit_done (a group without any request is created without the lock:
 * GM_ADMIT_NO_LOCK, which gm_admit_done accepts too). -2: refused, or the wait timed out (msg says how much is
 * free and who holds it); -1: an error (msg). Every outcome is a line in
 * the decision journal. */
#define GM_ADMIT_NO_LOCK 1000000 /* no request: created without the lock */
int gm_admit_create(const struct gm_admit *a, char *msg, size_t msglen);
void gm_admit_done(const char *state, int fd);

/* The admission lock, after repairing what a creator that died holding it
 * left (the daemon takes it so before it reads requests). */
int gm_admit_begin(const char *state, char *err, size_t errlen);

#endif
