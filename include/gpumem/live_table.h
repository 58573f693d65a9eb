/* The layout of a shimmed process's table of live device allocations.
 *
 * The table lives in the process's own memory (it is written on every
 * allocation, so it must be private and cheap). Its address and this
 * layout's version are published in the process's slot of the group's
 * usage region (group.h), so `gpumem inspect` and the daemon can read a
 * snapshot of it with process_vm_readv(2) — which needs the rights ptrace
 * needs (root, or the same user where Yama allows it) and costs the
 * process being read nothing. src/common/live_peek.c is the reader.
 *
 * 64 stripes, each an open-addressing table (linear probing, backward-shift
 * deletion) of 32-byte entries under its own spinlock, picked by the top
 * bits of the key's hash. A reader in another process takes no lock: it
 * copies a stripe header, then the entries it points at, and validates what
 * it got (a stripe that grew meanwhile is read again). */
#ifndef GPUMEM_LIVE_TABLE_H
#define GPUMEM_LIVE_TABLE_H

#include <stdatomic.h>
#include <stdint.h>

#define GM_LIVE_TABLE_LAYOUT 1
#define AT_STRIPES 64

/* What kind of allocation an entry is (the API that made it). */
enum alloc_kind { AK_MEM = 0, AK_PITCH, AK_MANAGED, AK_ASYNC, AK_VMM, AK_ARRAY, AK_MIPMAP, AK_CTX, AK_NKINDS };

struct at_entry {
    uint64_t key;   /* device pointer or handle; 0 = empty */
    uint64_t value; /* alloc_pack(): bytes << 18 | pool << 12 | kind << 8 | lane << 4 | group device */
    uint64_t born;  /* gm_ticks() when it was made (gpumem/ticks.h) */
    uint64_t site;  /* return address of the hooked call (GPUMEM_TRACE), else 0 */
};

struct at_stripe {
    _Atomic int lock;
    uint32_t mask;      /* capacity - 1 */
    uint32_t count;     /* live entries */
    uint32_t grow_at;   /* count at which the next insert grows the stripe */
    struct at_entry *e; /* never NULL: an empty static entry until the first insert */
} __attribute__((aligned(64)));

struct at_table {
    struct at_stripe s[AT_STRIPES];
};

/* An entry's value. Bytes are what the allocation is charged, except for
 * AK_ASYNC: there the charge is its pool's (the pool's record index is in
 * `pool`) and bytes are only what was asked for, rounded like a charge. */
static inline uint64_t alloc_pack_pool(uint64_t bytes, int kind, int gd, unsigned pool)
{
    return (bytes << 18) | ((uint64_t)(pool & 0x3f) << 12) | ((uint64_t)kind << 8) | (uint64_t)gd;
}
static inline uint64_t alloc_pack(uint64_t bytes, int kind, int gd) { return alloc_pack_pool(bytes, kind, gd, 0); }
/* The accounting lane (gpumem/group.h) the bytes were charged on. */
static inline uint64_t alloc_with_lane(uint64_t v, unsigned lane) { return v | (uint64_t)(lane & 3) << 4; }
static inline unsigned alloc_lane(uint64_t v) { return (unsigned)(v >> 4) & 3; }
static inline uint64_t alloc_bytes(uint64_t v) { return v >> 18; }
static inline unsigned alloc_pool(uint64_t v) { return (unsigned)(v >> 12) & 0x3f; }
static inline int alloc_kind(uint64_t v) { return (int)((v >> 8) & 0xf); }
static inline int alloc_gd(uint64_t v) { return (int)(v & 0xf); }

#endif
