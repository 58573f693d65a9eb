/* The simulated GPU's machine-wide state: one mmap'ed file per device spec in
 * GPUMEM_SIM_STATE, shared by every process that loads the simulated driver
 * or NVML.
 *
 * Why it cannot be wedged: every process owns one slot (pid + start time)
 * and is the only writer of that slot's counters, so no lock is ever held
 * while charging. Capacity is enforced by "add to own slot, then sum every
 * slot, roll back if over": two racing processes can both roll back, never
 * both pass (each add is seq_cst and happens before the other's sum or
 * after it). The only lock, a robust process-shared mutex, guards claiming
 * and reclaiming slots; a holder killed inside it is recovered through
 * EOWNERDEAD, and both critical sections leave the slot consistent at every
 * store. A dead process is found by pid + start time (pids get reused) and
 * its slot zeroed, which returns its memory.
 *
 * Why thread credits: two threads of one process that both add to the same
 * counter bounce its cache line on every alloc and free, which caps the
 * alloc/free rate of two threads near that of one. So a thread charges the
 * shared counter in small chunks (CREDIT_CHUNK) and serves allocations from
 * its private credit; the exact bytes in use are kept per thread stripe
 * (each on its own cache line) and summed by readers (NVML, cuMemGetInfo).
 * The cost: up to CREDIT_MAX per thread may be charged before it is used. */
#include "simstate_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIM_MAGIC        0x4d49534d454d5047ULL   /* "GPMEMSIM" */
#define SIM_LAYOUT       5
#define SIM_STRIPES      16
#define CREDIT_CHUNK     (2ULL << 20)
#define CREDIT_MAX       (4ULL << 20)

struct sim_stripe {
    _Atomic uint64_t used[SIM_MAX_DEVICES];          /* whole cache lines */
};

struct sim_slot {
    _Atomic uint64_t owner;                          /* pid, 0 = free */
    _Atomic uint64_t start_time;                     /* /proc/<pid>/stat field 22 */
    _Atomic uint64_t cgroup;                         /* hash of its cgroup v2 path, 0 = none (cglimits.c) */
    uint64_t pad0[5];
    _Atomic uint64_t charged[SIM_MAX_DEVICES];       /* capacity accounting, incl. credits */
    struct sim_stripe stripe[SIM_STRIPES];           /* exact bytes in use, per thread stripe */
};

struct sim_shared {
    uint64_t magic;
    uint32_t layout;
    uint32_t size;
    uint64_t spec_hash;
    pthread_mutex_t lock;                            /* robust, process-shared */
    _Atomic uint32_t slot_hwm;                       /* slots [0, hwm) may be in use */
    _Atomic uint32_t cg_gen;                         /* bumped at every change of cglimits */
    uint32_t pad[14];
    struct sim_cglimit cglimits[SIM_MAX_CGLIMITS];   /* under `lock` */
    struct sim_slot slots[SIM_MAX_PROCS];
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_result = -1;
static struct sim_device_info devices[SIM_MAX_DEVICES];
static int ndevices;                 /* entries: GPUs, then MIG devices */
static int ngpus;
static struct sim_shared *shared;
static char state_dir[256];

/* This process's slot. Reset in a forked child, which must claim its own. */
static _Atomic int self_slot = -1;
static _Atomic pid_t self_pid;
static _Atomic unsigned proc_gen;
static pthread_mutex_t claim_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t credit_key;
static _Atomic unsigned next_stripe;

struct thread_credit {
    unsigned gen;                 /* proc_gen when filled: stale after fork */
    unsigned stripe;
    int registered;
    uint64_t credit[SIM_MAX_DEVICES];
};
static __thread struct thread_credit tcredit;

/* Start time of pid (/proc/<pid>/stat field 22), 0 when unknown; *gone set
 * when the process has no thread left (a zombie whose thread count, field
 * 20, is the leader alone). Like NVIDIA's driver, which frees a process's
 * memory when its last thread closes the device files, a process holds its
 * memory until then: a zombie leader beside running threads still does. */
static uint64_t read_start_time(pid_t pid, int *gone)
{
    char path[64], buf[1024];
    *gone = 0;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    /* The command name may hold spaces and parentheses: fields start after
     * the last ')'. Field 3 is the state; 20 the threads; 22 is starttime. */
    char *p = strrchr(buf, ')');
    if (!p || !p[1]) return 0;
    char state = p[2];
    p++;
    long threads = 0;
    for (int field = 2; field < 22 && *p; p++)
        if (*p == ' ' && ++field == 20) threads = strtol(p + 1, NULL, 10);
    *gone = state == 'X' || (state == 'Z' && threads <= 1);
    return strtoull(p, NULL, 10);
}

static int slot_is_dead(struct sim_slot *s)
{
    uint64_t owner = atomic_load(&s->owner);
    if (owner == 0) return 0;
    if (kill((pid_t)owner, 0) != 0 && errno == ESRCH) return 1;
    int gone;
    uint64_t st = read_start_time((pid_t)owner, &gone);
    return st != 0 && (st != atomic_load(&s->start_time) || gone);
}

static void zero_slot(struct sim_slot *s)
{
    for (int d = 0; d < SIM_MAX_DEVICES; d++) {
        atomic_store(&s->charged[d], 0);
        for (int t = 0; t < SIM_STRIPES; t++) atomic_store(&s->stripe[t].used[d], 0);
    }
}

static void shared_lock(void)
{
    int rc = pthread_mutex_lock(&shared->lock);
    if (rc == EOWNERDEAD) pthread_mutex_consistent(&shared->lock);  /* sections are idempotent */
}

static int reclaim_locked(void)
{
    int n = 0;
    uint32_t hwm = atomic_load(&shared->slot_hwm);
    for (uint32_t i = 0; i < hwm && i < SIM_MAX_PROCS; i++) {
        struct sim_slot *s = &shared->slots[i];
        if ((int)i == atomic_load(&self_slot)) continue;
        if (slot_is_dead(s)) {
            zero_slot(s);                    /* counters first: a crash here leaves a dead owner */
            atomic_store(&s->owner, 0);
            n++;
        }
    }
    return n;
}

int sim_reclaim_dead(void)
{
    if (sim_state_init() != 0) return 0;
    shared_lock();
    int n = reclaim_locked();
    pthread_mutex_unlock(&shared->lock);
    return n;
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) { h ^= (unsigned char)*s; h *= 0x100000001b3ULL; }
    return h;
}

static int claim_slot(void)
{
    pid_t pid = getpid();
    int gone;
    uint64_t st = read_start_time(pid, &gone);
    char cgpath[4096];
    uint64_t cg = sim_cgroup_path(cgpath, sizeof cgpath) == 0 ? hash_str(cgpath) : 0;
    shared_lock();
    int got = -1;
    for (int pass = 0; pass < 2 && got < 0; pass++) {
        if (pass == 1) reclaim_locked();
        for (int i = 0; i < SIM_MAX_PROCS; i++) {
            struct sim_slot *s = &shared->slots[i];
            if (atomic_load(&s->owner) != 0) continue;
            zero_slot(s);
            atomic_store(&s->start_time, st);
            atomic_store(&s->cgroup, cg);
            atomic_store(&s->owner, (uint64_t)pid);
            if (atomic_load(&shared->slot_hwm) < (uint32_t)i + 1) atomic_store(&shared->slot_hwm, (uint32_t)i + 1);
            got = i;
            break;
        }
    }
    pthread_mutex_unlock(&shared->lock);
    return got;
}

/* The slot of this process, claimed on first use (and again after fork). */
static struct sim_slot *my_slot(void)
{
    /* A forked child finds self_slot reset by after_fork_child(), so the hot
     * path needs no getpid() system call. */
    int idx = atomic_load_explicit(&self_slot, memory_order_acquire);
    if (idx >= 0) return &shared->slots[idx];
    pid_t pid = getpid();
    pthread_mutex_lock(&claim_lock);
    idx = atomic_load(&self_slot);
    if (idx < 0 || atomic_load(&self_pid) != pid) {
        idx = claim_slot();
        atomic_store(&self_pid, pid);
        atomic_store(&self_slot, idx);
    }
    pthread_mutex_unlock(&claim_lock);
    return idx >= 0 ? &shared->slots[idx] : NULL;
}

static void after_fork_child(void)
{
    /* The child inherits the parent's slot index but is another process. */
    atomic_store(&self_slot, -1);
    atomic_fetch_add(&proc_gen, 1);
    pthread_mutex_init(&claim_lock, NULL);
}

static void thread_exit(void *arg)
{
    (void)arg;
    sim_flush_thread_credit();
}

static int valid_header(struct sim_shared *m, uint64_t spec_hash)
{
    return m->magic == SIM_MAGIC && m->layout == SIM_LAYOUT && m->size == sizeof(struct sim_shared) &&
           m->spec_hash == spec_hash;
}

/* Creates a fully initialised state file under a temporary name, then links
 * it into place, so no process ever maps a half-written file. */
static int create_state(const char *path, uint64_t spec_hash, int replace)
{
    char tmp[320];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d.XXXXXX", path, (int)getpid());
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) return -1;
    fchmod(fd, 0600);
    if (ftruncate(fd, sizeof(struct sim_shared)) != 0) goto fail;
    struct sim_shared *m = mmap(NULL, sizeof *m, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) goto fail;
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&m->lock, &a);
    pthread_mutexattr_destroy(&a);
    m->layout = SIM_LAYOUT;
    m->size = sizeof *m;
    m->spec_hash = spec_hash;
    atomic_thread_fence(memory_order_seq_cst);
    m->magic = SIM_MAGIC;
    msync(m, sizeof *m, MS_SYNC);
    munmap(m, sizeof *m);
    close(fd);
    int rc = replace ? rename(tmp, path) : link(tmp, path);
    if (!replace) unlink(tmp);
    if (rc != 0 && !(errno == EEXIST && !replace)) { unlink(tmp); return -1; }
    return 0;
fail:
    close(fd);
    unlink(tmp);
    return -1;
}

static struct sim_shared *map_state(const char *path, uint64_t spec_hash)
{
    for (int attempt = 0; attempt < 8; attempt++) {
        int fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            if (errno != ENOENT) return NULL;
            if (create_state(path, spec_hash, 0) != 0) return NULL;
            continue;
        }
        struct stat st;
        if (fstat(fd, &st) != 0) { close(fd); return NULL; }
        if ((size_t)st.st_size != sizeof(struct sim_shared)) {
            close(fd);
            create_state(path, spec_hash, 1);   /* wrong layout: replace atomically */
            continue;
        }
        struct sim_shared *m = mmap(NULL, sizeof *m, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        if (m == MAP_FAILED) return NULL;
        if (valid_header(m, spec_hash)) return m;
        munmap(m, sizeof *m);
        create_state(path, spec_hash, 1);
    }
    return NULL;
}

static void do_init(void)
{
    const char *spec = getenv("GPUMEM_SIM_DEVICES");
    int n = sim_parse_devices(spec, devices, SIM_MAX_DEVICES);
    if (n < 0) {
        fprintf(stderr, "gpumem-sim: invalid GPUMEM_SIM_DEVICES \"%s\" (expected e.g. 2x80G or H200:141G,A100:40G)\n",
                spec);
        return;
    }
    ndevices = n;
    ngpus = 0;
    while (ngpus < n && devices[ngpus].parent < 0) ngpus++;
    const char *dir = getenv("GPUMEM_SIM_STATE");
    if (dir && *dir) snprintf(state_dir, sizeof state_dir, "%s", dir);
    else snprintf(state_dir, sizeof state_dir, "/dev/shm/gpumem-sim-%u", (unsigned)getuid());
    if (mkdir(state_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "gpumem-sim: cannot create state directory %s: %s\n", state_dir, strerror(errno));
        return;
    }
    /* One file per device spec: processes configured with different devices
     * do not share (or corrupt) each other's counters. */
    char canon[SIM_MAX_DEVICES * 176 + 16];
    snprintf(canon, sizeof canon, "%d", n);
    for (int i = 0; i < n; i++) {
        size_t l = strlen(canon);
        snprintf(canon + l, sizeof canon - l, ";%.96s/%llu%s", devices[i].name, (unsigned long long)devices[i].capacity,
                 devices[i].parent >= 0 ? devices[i].uuid_str : "");
    }
    uint64_t h = hash_str(canon);
    char path[400];
    snprintf(path, sizeof path, "%s/state-v%d-%016llx", state_dir, SIM_LAYOUT, (unsigned long long)h);
    shared = map_state(path, h);
    if (!shared) {
        fprintf(stderr, "gpumem-sim: cannot map state file %s: %s\n", path, strerror(errno));
        return;
    }
    pthread_key_create(&credit_key, thread_exit);
    pthread_atfork(NULL, NULL, after_fork_child);
    init_result = 0;
}

int sim_state_init(void)
{
    pthread_once(&init_once, do_init);
    return init_result;
}

const char *sim_state_dir(void)
{
    return sim_state_init() == 0 ? state_dir : NULL;
}

int sim_device_count(void)
{
    return sim_state_init() == 0 ? ngpus : 0;
}

int sim_entry_count(void)
{
    return sim_state_init() == 0 ? ndevices : 0;
}

/* The entry whose counters hold `dev`'s memory (a MIG device's GPU
 * instance), or -1 for an invalid index. */
static int pool_of(int dev)
{
    if (sim_state_init() != 0 || dev < 0 || dev >= ndevices) return -1;
    return devices[dev].pool;
}

const struct sim_device_info *sim_device(int index)
{
    if (sim_state_init() != 0 || index < 0 || index >= ndevices) return NULL;
    return &devices[index];
}

static struct thread_credit *my_credit(void)
{
    struct thread_credit *tc = &tcredit;
    unsigned gen = atomic_load_explicit(&proc_gen, memory_order_relaxed);
    if (tc->gen != gen || !tc->registered) {
        if (tc->gen != gen) memset(tc->credit, 0, sizeof tc->credit);   /* credit of the parent */
        tc->gen = gen;
        if (!tc->registered) {
            tc->stripe = atomic_fetch_add(&next_stripe, 1) % SIM_STRIPES;
            tc->registered = 1;
            pthread_setspecific(credit_key, tc);
        }
    }
    return tc;
}

/* NVIDIA's per-cgroup hard limit (emulated, nvmlDeviceSetMemoryLimits_v1):
 * whether the charges of every process in this process's cgroup, this one's
 * included, now pass a hard limit set for it on dev. The limit is looked up
 * again only when the table changed (cg_gen): one atomic load otherwise. */
static int over_cgroup_limit(struct sim_slot *s, int dev)
{
    static _Atomic uint32_t seen_gen = ~0u;
    static uint64_t hard[SIM_MAX_DEVICES];
    uint64_t cg = atomic_load_explicit(&s->cgroup, memory_order_relaxed);
    if (!cg) return 0;
    uint32_t gen = atomic_load(&shared->cg_gen);
    if (gen != atomic_load(&seen_gen)) {
        for (int d = 0; d < SIM_MAX_DEVICES; d++) hard[d] = UINT64_MAX;
        for (int i = 0; i < SIM_MAX_CGLIMITS; i++) {
            const struct sim_cglimit *c = &shared->cglimits[i];
            if (c->cgroup == cg && c->dev >= 0 && c->dev < SIM_MAX_DEVICES) hard[c->dev] = c->hard;
        }
        atomic_store(&seen_gen, gen);
    }
    if (hard[dev] == UINT64_MAX) return 0;
    uint64_t sum = 0;
    uint32_t hwm = atomic_load(&shared->slot_hwm);
    for (uint32_t i = 0; i < hwm && i < SIM_MAX_PROCS; i++)
        if (atomic_load(&shared->slots[i].cgroup) == cg && atomic_load(&shared->slots[i].owner))
            sum += atomic_load(&shared->slots[i].charged[dev]);
    return sum > hard[dev];
}

/* Adds n to this slot's charge for dev unless the device would overflow. */
static int try_charge(struct sim_slot *s, int dev, uint64_t n)
{
    uint64_t cap = devices[dev].capacity;
    if (n > cap) return -1;
    atomic_fetch_add(&s->charged[dev], n);
    uint64_t total = 0;
    uint32_t hwm = atomic_load(&shared->slot_hwm);
    for (uint32_t i = 0; i < hwm && i < SIM_MAX_PROCS; i++) {
        total += atomic_load(&shared->slots[i].charged[dev]);
        if (total > cap) break;
    }
    if (total > cap || over_cgroup_limit(s, dev)) {
        atomic_fetch_sub(&s->charged[dev], n);
        return -1;
    }
    return 0;
}

int sim_charge(int dev, uint64_t bytes)
{
    if ((dev = pool_of(dev)) < 0) return -1;
    struct sim_slot *s = my_slot();
    if (!s) return -1;
    struct thread_credit *tc = my_credit();
    if (tc->credit[dev] < bytes) {
        uint64_t need = bytes - tc->credit[dev];
        if (try_charge(s, dev, need + CREDIT_CHUNK) == 0) {
            tc->credit[dev] += need + CREDIT_CHUNK;
        } else if (try_charge(s, dev, need) == 0 || (sim_reclaim_dead() > 0 && try_charge(s, dev, need) == 0)) {
            tc->credit[dev] += need;
        } else {
            return -1;
        }
    }
    tc->credit[dev] -= bytes;
    atomic_fetch_add_explicit(&s->stripe[tc->stripe].used[dev], bytes, memory_order_relaxed);
    return 0;
}

void sim_release(int dev, uint64_t bytes)
{
    if ((dev = pool_of(dev)) < 0 || bytes == 0) return;
    struct sim_slot *s = my_slot();
    if (!s) return;
    struct thread_credit *tc = my_credit();
    /* Stripes may wrap below zero when another thread frees: the sum of all
     * stripes is still exact in modular arithmetic. */
    atomic_fetch_sub_explicit(&s->stripe[tc->stripe].used[dev], bytes, memory_order_relaxed);
    tc->credit[dev] += bytes;
    if (tc->credit[dev] > CREDIT_MAX) {
        uint64_t give = tc->credit[dev] - CREDIT_CHUNK;
        uint64_t cur = atomic_load(&s->charged[dev]);
        if (give > cur) give = cur;    /* never underflow (e.g. frees after fork) */
        atomic_fetch_sub(&s->charged[dev], give);
        tc->credit[dev] -= give;
    }
}

void sim_flush_thread_credit(void)
{
    if (init_result != 0) return;
    struct thread_credit *tc = &tcredit;
    if (tc->gen != atomic_load(&proc_gen)) { memset(tc->credit, 0, sizeof tc->credit); return; }
    int idx = atomic_load(&self_slot);
    if (idx < 0 || atomic_load(&self_pid) != getpid()) return;
    struct sim_slot *s = &shared->slots[idx];
    for (int d = 0; d < ndevices; d++) {
        uint64_t give = tc->credit[d], cur = atomic_load(&s->charged[d]);
        if (give > cur) give = cur;
        if (give) atomic_fetch_sub(&s->charged[d], give);
        tc->credit[d] = 0;
    }
}

static uint64_t slot_used(struct sim_slot *s, int dev)
{
    uint64_t sum = 0;
    for (int t = 0; t < SIM_STRIPES; t++) sum += atomic_load_explicit(&s->stripe[t].used[dev], memory_order_relaxed);
    return sum;
}

uint64_t sim_device_used(int dev)
{
    if ((dev = pool_of(dev)) < 0) return 0;
    if (devices[dev].mig_mode) {        /* a GPU in MIG mode: what its instances hold */
        uint64_t sum = 0;
        for (int i = devices[dev].mig_first; i < devices[dev].mig_first + devices[dev].mig_count; i++)
            if (devices[i].pool == i) sum += sim_device_used(i);
        return sum;
    }
    sim_reclaim_dead();
    uint64_t total = 0;
    uint32_t hwm = atomic_load(&shared->slot_hwm);
    for (uint32_t i = 0; i < hwm && i < SIM_MAX_PROCS; i++)
        if (atomic_load(&shared->slots[i].owner)) total += slot_used(&shared->slots[i], dev);
    return total > devices[dev].capacity ? devices[dev].capacity : total;
}

uint64_t sim_device_charged(int dev)
{
    if ((dev = pool_of(dev)) < 0) return 0;
    uint64_t total = 0;
    uint32_t hwm = atomic_load(&shared->slot_hwm);
    for (uint32_t i = 0; i < hwm && i < SIM_MAX_PROCS; i++) total += atomic_load(&shared->slots[i].charged[dev]);
    return total;
}

int sim_device_processes(int dev, struct sim_proc_usage *out, int max)
{
    if ((dev = pool_of(dev)) < 0) return 0;
    sim_reclaim_dead();
    int n = 0;
    uint32_t hwm = atomic_load(&shared->slot_hwm);
    for (uint32_t i = 0; i < hwm && i < SIM_MAX_PROCS; i++) {
        struct sim_slot *s = &shared->slots[i];
        uint64_t owner = atomic_load(&s->owner);
        if (!owner) continue;
        uint64_t used = slot_used(s, dev);
        if (used == 0) continue;
        if (n < max && out) {
            out[n].pid = (pid_t)owner;
            out[n].used = used;
        }
        n++;
    }
    return n;
}

uint64_t sim_self_used(int dev)
{
    if ((dev = pool_of(dev)) < 0) return 0;
    int idx = atomic_load(&self_slot);
    if (idx < 0 || atomic_load(&self_pid) != getpid()) return 0;
    return slot_used(&shared->slots[idx], dev);
}

/* ---- NVIDIA's per-cgroup limits, emulated (see simstate.h) ---- */

/* The entry of (dev, cg); with cg = 0, a free entry. */
static struct sim_cglimit *find_cglimit(int dev, uint64_t cg)
{
    for (int i = 0; i < SIM_MAX_CGLIMITS; i++)
        if (shared->cglimits[i].cgroup == cg && (cg == 0 || shared->cglimits[i].dev == dev))
            return &shared->cglimits[i];
    return NULL;
}

int sim_cglimit_set(int dev, const char *cgroup_path, uint64_t soft, uint64_t hard)
{
    if (sim_state_init() != 0 || dev < 0 || dev >= ndevices) return -1;
    uint64_t cg = hash_str(cgroup_path);
    int clear = soft == 0 && hard == UINT64_MAX, rc = 0;
    shared_lock();
    struct sim_cglimit *c = find_cglimit(dev, cg);
    if (!c && !clear) c = find_cglimit(dev, 0);
    if (clear) {
        if (c) memset(c, 0, sizeof *c);
    } else if (!c) {
        rc = -1;                                     /* table full */
    } else {
        c->cgroup = cg;
        c->dev = dev;
        c->soft = soft;
        c->hard = hard;
        snprintf(c->path, sizeof c->path, "%s", cgroup_path);
    }
    atomic_fetch_add(&shared->cg_gen, 1);
    pthread_mutex_unlock(&shared->lock);
    return rc;
}

void sim_cglimit_get(int dev, const char *cgroup_path, uint64_t *soft, uint64_t *hard, uint64_t *used)
{
    *soft = 0;
    *hard = UINT64_MAX;
    *used = 0;
    if (sim_state_init() != 0 || dev < 0 || dev >= ndevices) return;
    uint64_t cg = hash_str(cgroup_path);
    sim_reclaim_dead();
    shared_lock();
    struct sim_cglimit *c = find_cglimit(dev, cg);
    if (c) {
        *soft = c->soft;
        *hard = c->hard;
    }
    pthread_mutex_unlock(&shared->lock);
    uint32_t hwm = atomic_load(&shared->slot_hwm);
    for (uint32_t i = 0; i < hwm && i < SIM_MAX_PROCS; i++)
        if (atomic_load(&shared->slots[i].owner) && atomic_load(&shared->slots[i].cgroup) == cg)
            *used += slot_used(&shared->slots[i], dev);
}
