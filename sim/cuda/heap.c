/* The simulated driver's own memory: backing for small device allocations
 * (and small host allocations and array storage), and the struct sim_alloc
 * records. None of it comes from the application's malloc heap: real device
 * memory is not in the host process's heap, and memory from malloc made the
 * sim's cost per allocation depend on what else the process had malloc'ed
 * (glibc's free and consolidation work), which a benchmark then charged to
 * whatever it was measuring.
 *
 * Layout: regions of 64 MiB mapped with MAP_NORESERVE (a page costs memory
 * only once touched), cut into 2 MiB slabs, each slab carved into blocks of
 * one size class. Classes: records (one cache-line multiple); 512-byte steps
 * up to 4 KiB; then four per doubling (5/4, 6/4, 7/4, 8/4 of a power of two)
 * up to SIM_SMALL_MAX, so a block is at most 25% larger than asked, and the
 * pages of that slack a program never touches never cost anything. Device
 * blocks are 512-byte aligned. What the device is charged is not affected:
 * that stays sim_round_alloc's size. Memory is not returned to the system:
 * a freed block goes back to its class.
 *
 * Threads: each thread keeps a free list per class, so an alloc or free is a
 * list push or pop with no lock and no atomic. Past 2 x batch blocks a
 * thread hands a batch to the class's shared list; with none left it takes a
 * batch back, or carves a new one from the class's slab: one mutex per
 * class, taken once per batch. A thread's lists return to the shared ones
 * when it exits. No system call in steady state (one mmap per 64 MiB).
 *
 * fork (fork.c): every class lock and the region lock are held across it,
 * so the child finds the shared lists consistent and its thread's own lists
 * intact (the other threads' lists are simply lost to it).
 *
 * Under AddressSanitizer, free blocks and the slack past the size asked for
 * are poisoned, so use after free and overruns into a free neighbour are
 * reported as with malloc; the list code unpoisons a header only while it
 * reads or writes it. */
#include "internal.h"

#include <string.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define SLAB        (2u << 20)
#define REGION      (64u << 20)
#define RECORD_SIZE ((sizeof(struct sim_alloc) + 63) & ~(size_t)63)
#define GRAIN_TOP   4096u                    /* 512-byte steps up to here */
#define NCLASS      41                       /* records, 8 grain classes, 32 geometric */
#define REC_CLASS   0

_Static_assert(SIM_SMALL_MAX == 1u << 20 && SIM_SMALL_GRAIN == 512, "the classes below assume these");

/* The head of a free block. */
struct blk {
    struct blk *next;            /* in its list */
    struct blk *next_batch;      /* shared lists: the next batch */
    size_t count;                /* shared lists: blocks in this batch */
};
#define HDR sizeof(struct blk)

/* Header access of a free (poisoned) block. */
static inline struct blk *next_of(struct blk *b)
{
    UNPOISON(b, HDR);
    struct blk *n = b->next;
    POISON(b, HDR);
    return n;
}

static inline void set_next(struct blk *b, struct blk *n)
{
    UNPOISON(b, HDR);
    b->next = n;
    POISON(b, HDR);
}

struct class_list {
    _Alignas(64) pthread_mutex_t lock;
    struct blk *batches;         /* whole batches, each a list */
    char *bump, *end;            /* the part of this class's slab never handed out */
};

static struct class_list classes[NCLASS] = { [0 ... NCLASS - 1] = { .lock = PTHREAD_MUTEX_INITIALIZER } };
static uint32_t csize[NCLASS], batch[NCLASS];
static pthread_mutex_t region_lock = PTHREAD_MUTEX_INITIALIZER;
static char *region_next, *region_end;
static pthread_once_t heap_once = PTHREAD_ONCE_INIT;
static pthread_key_t heap_key;

struct tcache {
    struct blk *head[NCLASS];
    uint32_t n[NCLASS];
    int registered;              /* heap_key set: the lists go back at thread exit */
};
static __thread struct tcache tcache;

static inline unsigned class_of(size_t size)
{
    if (size <= GRAIN_TOP) return size <= SIM_SMALL_GRAIN ? 1 : (unsigned)((size + SIM_SMALL_GRAIN - 1) >> 9);
    size_t s = size - 1;
    unsigned e = 63u - (unsigned)__builtin_clzll(s);      /* 12..19 */
    return 9 + (e - 12) * 4 + (unsigned)((s >> (e - 2)) & 3);
}

static void push_batch(unsigned c, struct blk *first, size_t count)
{
    pthread_mutex_lock(&classes[c].lock);
    UNPOISON(first, HDR);
    first->count = count;
    first->next_batch = classes[c].batches;
    POISON(first, HDR);
    classes[c].batches = first;
    pthread_mutex_unlock(&classes[c].lock);
}

static void thread_exit(void *arg)
{
    struct tcache *tc = arg;
    for (unsigned c = 0; c < NCLASS; c++) {
        if (tc->head[c]) push_batch(c, tc->head[c], tc->n[c]);
        tc->head[c] = NULL;
        tc->n[c] = 0;
    }
    tc->registered = 0;          /* a later free (another destructor) registers again */
}

static void heap_init(void)
{
    for (unsigned c = 0; c < NCLASS; c++) {
        size_t sz;
        if (c == REC_CLASS) sz = RECORD_SIZE;
        else if (c <= 8) sz = (size_t)c * SIM_SMALL_GRAIN;
        else sz = (size_t)(5 + (c - 9) % 4) << (12 + (c - 9) / 4 - 2);
        size_t b = (64u << 10) / sz;
        csize[c] = (uint32_t)sz;
        batch[c] = (uint32_t)(b < 1 ? 1 : b > 32 ? 32 : b);     /* a thread keeps at most 2 x batch */
    }
    pthread_key_create(&heap_key, thread_exit);
}

/* The region lock is taken inside a class lock: last. */
void sim_heap_fork(enum sim_fork_phase phase)
{
    for (int c = 0; c < NCLASS; c++) sim_mutex_fork(&classes[c].lock, phase);
    sim_mutex_fork(&region_lock, phase);
}

static void register_thread(struct tcache *tc)
{
    pthread_once(&heap_once, heap_init);
    pthread_setspecific(heap_key, tc);
    tc->registered = 1;
}

/* A new 2 MiB slab (2 MiB aligned), or NULL. */
static char *new_slab(void)
{
    pthread_mutex_lock(&region_lock);
    if (region_next == region_end) {
        char *m = mmap(NULL, REGION + SLAB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                       -1, 0);
        if (m == MAP_FAILED) { pthread_mutex_unlock(&region_lock); return NULL; }
        char *r = (char *)(((uintptr_t)m + SLAB - 1) & ~(uintptr_t)(SLAB - 1));
        if (r > m) munmap(m, (size_t)(r - m));
        munmap(r + REGION, (size_t)(m + SLAB - r));      /* r < m + SLAB: never empty */
        region_next = r;
        region_end = r + REGION;
    }
    char *s = region_next;
    region_next += SLAB;
    pthread_mutex_unlock(&region_lock);
    return s;
}

/* Up to batch[c] new blocks from the class's slab, as a list (class lock
 * held). Returns how many. */
static size_t carve(unsigned c, struct blk **out)
{
    struct class_list *k = &classes[c];
    size_t sz = csize[c];
    if ((size_t)(k->end - k->bump) < sz) {     /* what is left cannot hold one */
        char *s = new_slab();
        if (!s) { *out = NULL; return 0; }
        k->bump = s;
        k->end = s + SLAB;
    }
    size_t n = (size_t)(k->end - k->bump) / sz;
    if (n > batch[c]) n = batch[c];
    struct blk *head = NULL;
    for (size_t i = n; i-- > 0;) {             /* from the top: the list runs up */
        struct blk *b = (struct blk *)(void *)(k->bump + i * sz);
        b->next = head;                        /* fresh memory, not poisoned yet */
        POISON(b, sz);
        head = b;
    }
    k->bump += n * sz;
    *out = head;
    return n;
}

/* The thread's list of class c is empty: fill it from the shared list or the
 * slab. Returns its head, or NULL when no memory could be mapped. */
static __attribute__((noinline)) struct blk *refill(struct tcache *tc, unsigned c)
{
    if (!tc->registered) register_thread(tc);
    struct class_list *k = &classes[c];
    size_t n;
    struct blk *b;
    pthread_mutex_lock(&k->lock);
    if ((b = k->batches) != NULL) {
        UNPOISON(b, HDR);
        k->batches = b->next_batch;
        n = b->count;
        POISON(b, HDR);
    } else {
        n = carve(c, &b);
    }
    pthread_mutex_unlock(&k->lock);
    tc->head[c] = b;
    tc->n[c] = (uint32_t)n;
    return b;
}

/* The thread's list of class c is over 2 x batch (or the thread is not yet
 * registered): hand the most recently freed batch to the shared list. */
static __attribute__((noinline)) void spill(struct tcache *tc, unsigned c)
{
    if (!tc->registered) register_thread(tc);
    if (tc->n[c] <= 2 * batch[c]) return;
    size_t k = batch[c];
    struct blk *first = tc->head[c], *last = first;
    for (size_t i = 1; i < k; i++) last = next_of(last);
    tc->head[c] = next_of(last);
    tc->n[c] -= (uint32_t)k;
    set_next(last, NULL);
    push_batch(c, first, k);
}

static inline void *take(unsigned c, size_t size)
{
    struct tcache *tc = &tcache;
    struct blk *b = tc->head[c];
    if (__builtin_expect(b == NULL, 0) && (b = refill(tc, c)) == NULL) return NULL;
    tc->head[c] = next_of(b);
    tc->n[c]--;
    UNPOISON(b, size);               /* the slack past size stays poisoned */
    return b;
}

static inline void give(unsigned c, void *p)
{
    struct tcache *tc = &tcache;
    struct blk *b = p;
    POISON(b, csize[c]);
    set_next(b, tc->head[c]);
    tc->head[c] = b;
    if (__builtin_expect(++tc->n[c] > 2 * batch[c] || !tc->registered, 0)) spill(tc, c);
}

void *sim_heap_alloc(size_t size)
{
    if (size == 0 || size > SIM_SMALL_MAX) return NULL;
    return take(class_of(size), size);
}

void *sim_heap_calloc(size_t size)
{
    void *p = sim_heap_alloc(size);
    if (p) memset(p, 0, size);
    return p;
}

void sim_heap_free(void *p, size_t size)
{
    if (p) give(class_of(size), p);
}

struct sim_alloc *sim_record_alloc(void)
{
    return take(REC_CLASS, sizeof(struct sim_alloc));
}

void sim_record_free(struct sim_alloc *a)
{
    if (a) give(REC_CLASS, a);
}
