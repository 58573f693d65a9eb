/* Reading another process's live-allocation table (gpumem/live_table.h)
 * from outside it, for `gpumem inspect` and the daemon's leak evidence.
 * The process is not stopped or signalled: its table is copied with
 * process_vm_readv(2), which needs ptrace rights over it (root, or the
 * same user where kernel.yama.ptrace_scope allows it). */
#ifndef GPUMEM_LIVE_PEEK_H
#define GPUMEM_LIVE_PEEK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct gm_live_alloc {
    uint64_t key;   /* device pointer or handle */
    uint64_t bytes; /* charged (for pool allocations: asked for, rounded) */
    uint64_t born;  /* gm_ticks() stamp */
    uint64_t site;  /* call site in that process, 0 = unknown */
    int kind;       /* enum alloc_kind */
    int gd;         /* group device index */
    int spilled;    /* 1: in host memory, charged to the group's swap (docs/spill.md) */
};

/* Copies the live allocations of process `pid`, whose table its slot says
 * is at `table_addr` with layout `layout` (gm_proc_slot.table_addr and
 * .table_layout). On success returns 0 with *out (malloc'd, caller frees;
 * NULL when empty) and *n. On failure returns -1 with errno: EPERM (no
 * ptrace rights), ESRCH (gone), ENOENT (the slot publishes no table),
 * EPROTO (a table layout this gpumem does not know), ENOMEM. */
int gm_live_peek(pid_t pid, uint64_t table_addr, uint32_t layout, struct gm_live_alloc **out, size_t *n);

/* What a gm_live_peek errno means, for people. */
const char *gm_live_peek_strerror(int err);

/* The API that makes allocations of `kind` ("cuMemAlloc", ...; "?" if unknown). */
const char *gm_alloc_kind_name(int kind);

/* Sorts by birth, oldest first / by size, largest first. */
void gm_live_sort_oldest(struct gm_live_alloc *a, size_t n);
void gm_live_sort_largest(struct gm_live_alloc *a, size_t n);

#endif
