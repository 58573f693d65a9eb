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
 * 64 stripes, each an open-addressing table (linear probing without
 * wrap-around, backward-shift deletion) of 32-byte entries under its own
 * spinlock, picked by the top bits of the key's hash. A stripe's array has
 * mask + 1 home slots, then a quarter as many more that a cluster may run
 * into, then one empty guard entry. A stripe is never more than a quarter
 * full, so no cluster reaches the guard: probes stop at an empty entry
 * without a bounds check, and never wrap. A reader in another
 * process takes no lock: it copies a stripe header, then the entries it
 * points at, and validates what it got (a stripe that grew meanwhile is
 * read again). */
#ifndef GPUMEM_LIVE_TABLE_H
#define GPUMEM_LIVE_TABLE_H

#include <stdatomic.h>
#include <stdint.h>

#define GM_LIVE_TABLE_LAYOUT 3
#define AT_STRIPES 64

/* What kind of allocation an entry is (the API that made it). */
enum alloc_kind { AK_MEM = 0, AK_PITCH, AK_MANAGED, AK_ASYNC, AK_VMM, AK_ARRAY, AK_MIPMAP, AK_CTX, AK_NKINDS };

struct at_entry {
    uint64_t key;   /* device pointer or handle; 0 = empty */
    uint64_t value; /* bytes << 22 | pool << 12 | lane << 10 | group device << 6 | ALLOC_CHARGED | ALLOC_SPILLED | kind */
    uint64_t born;  /* gm_ticks() when it was made (gpumem/ticks.h) */
    uint64_t site;  /* return address of the hooked call (its call site), 0 = unknown */
};

struct at_stripe {
    _Atomic int lock;
    uint32_t mask;      /* home slots - 1 (a power of two - 1) */
    int32_t room;       /* inserts left before the stripe grows (it stays at most a quarter full) */
    uint32_t pad;
    struct at_entry *e; /* mask + 1 + AT_OVERFLOW entries and a guard; a static empty guard until the first insert */
} __attribute__((aligned(64)));

/* The entries a stripe with this mask holds (its guard not counted). */
static inline uint64_t at_slots(uint32_t mask) { return ((uint64_t)mask + 1) * 5 / 4; }

struct at_table {
    struct at_stripe s[AT_STRIPES];
};

/* An entry's value. The bits below 12 are, once the kind's bits are
 * masked off, the byte offset of the accounting cell the bytes were
 * charged to (gm_proc_slot.cell, gpumem/group.h: lane * 1024 + device *
 * 64), so a free finds its counters with one mask. Bytes are what the
 * allocation is charged, except for AK_ASYNC: there the charge is its
 * pool's (the pool's record index is in `pool`) and bytes are only what
 * was asked for, rounded like a charge (10 bits: the shim's pool table has
 * 1024 records). Bytes have 42 bits (4 TiB): every charge passed a limit
 * below that. ALLOC_CHARGED is set in every value, so that 0 can mean "not
 * charged". */
#define ALLOC_BYTES_SHIFT 22
#define ALLOC_POOL_BITS 10
#define ALLOC_CHARGED 0x10u
/* The allocation was spilled to host memory (docs/spill.md): its bytes are
 * in its cell's `swapped`, not `charged`. Bit 3 was always 0 (kinds fit in
 * three bits), so tables of layout 3 without spills read the same. */
#define ALLOC_SPILLED 0x8u
#define ALLOC_KIND_MASK 0x7u
_Static_assert(AK_NKINDS <= 8, "a kind fits in three bits");
#define ALLOC_CELL_MASK 0xfc0u
static inline uint64_t alloc_cell_bits(unsigned lane, int gd) { return (uint64_t)(lane & 3) << 10 | (uint64_t)(gd & 0xf) << 6; }
/* The value of an allocation charged to the cell at byte offset `cell`. */
static inline uint64_t alloc_pack_cell(uint64_t bytes, int kind, uint64_t cell)
{
    return bytes << ALLOC_BYTES_SHIFT | cell | ALLOC_CHARGED | (uint64_t)kind;
}
static inline uint64_t alloc_pack_pool(uint64_t bytes, int kind, unsigned lane, int gd, unsigned pool)
{
    return alloc_pack_cell(bytes, kind, alloc_cell_bits(lane, gd)) | (uint64_t)(pool & ((1u << ALLOC_POOL_BITS) - 1)) << 12;
}
static inline uint64_t alloc_pack(uint64_t bytes, int kind, unsigned lane, int gd)
{
    return alloc_pack_pool(bytes, kind, lane, gd, 0);
}
static inline uint64_t alloc_bytes(uint64_t v) { return v >> ALLOC_BYTES_SHIFT; }
/* v with its bytes replaced. */
static inline uint64_t alloc_with_bytes(uint64_t v, uint64_t bytes)
{
    return bytes << ALLOC_BYTES_SHIFT | (v & ((1ull << ALLOC_BYTES_SHIFT) - 1));
}
/* The most an entry can say an allocation is charged (4 TiB, far past any
 * GPU): the shim refuses anything larger rather than truncate it. */
#define ALLOC_BYTES_MAX ((1ull << (64 - ALLOC_BYTES_SHIFT)) - 1)
static inline unsigned alloc_pool(uint64_t v) { return (unsigned)(v >> 12) & ((1u << ALLOC_POOL_BITS) - 1); }
static inline unsigned alloc_lane(uint64_t v) { return (unsigned)(v >> 10) & 3; }
static inline int alloc_gd(uint64_t v) { return (int)((v >> 6) & 0xf); }
static inline int alloc_kind(uint64_t v) { return (int)(v & ALLOC_KIND_MASK); }
static inline int alloc_spilled(uint64_t v) { return (v & ALLOC_SPILLED) != 0; }
static inline unsigned alloc_cell_off(uint64_t v) { return (unsigned)v & ALLOC_CELL_MASK; }

#endif
