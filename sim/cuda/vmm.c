/* Virtual memory management: physical allocations (cuMemCreate), address
 * reservations, mapping, access, and sharing by POSIX file descriptor.
 *
 * A physical allocation is a memfd (lazily backed, charged at cuMemCreate),
 * so it can be mapped at several addresses and in several processes, and
 * exported as an fd. Reservations are PROT_NONE mmaps; cuMemMap maps the
 * memfd there, still inaccessible until cuMemSetAccess, as on a GPU. The
 * physical memory is released when its handle is released and it is no
 * longer mapped. Granularity: 2 MiB, minimum and recommended. */
#include "internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PHYS_MAGIC 0x50485953u

struct sim_phys {
    uint32_t magic;
    int dev;
    int fd;
    int charged;              /* 0 for imported handles: the exporter owns the bytes */
    _Atomic int refs;         /* handle references + mappings */
    size_t size;
    CUmemAllocationProp prop;
};

struct resv { uintptr_t base; size_t size; struct resv *next; };
struct mapping {
    uintptr_t base;
    size_t size;
    struct sim_phys *phys;
    unsigned access;          /* CUmemAccess_flags */
    struct mapping *next;
};

static pthread_mutex_t vmm_lock = PTHREAD_MUTEX_INITIALIZER;
static struct resv *reservations;
static struct mapping *mappings;

static int phys_ok(const struct sim_phys *p)
{
    return p && p->magic == PHYS_MAGIC && atomic_load(&p->refs) > 0;
}

static void phys_put(struct sim_phys *p)
{
    if (atomic_fetch_sub(&p->refs, 1) != 1) return;
    close(p->fd);
    if (p->charged) sim_vdev_release(p->dev, p->size);
    p->magic = 0;             /* kept as a tombstone: stale handles stay checkable */
}

static int check_prop(const CUmemAllocationProp *prop)
{
    return prop && prop->type == CU_MEM_ALLOCATION_TYPE_PINNED && prop->location.type == CU_MEM_LOCATION_TYPE_DEVICE &&
           prop->location.id >= 0 && prop->location.id < sim_vdev_count();
}

SIM_API CUresult cuMemGetAllocationGranularity(size_t *granularity, const CUmemAllocationProp *prop,
                                               CUmemAllocationGranularity_flags option)
{
    if (!granularity || !prop) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = sim_check_init();
    if (r) return r;
    if (!check_prop(prop) || (unsigned)option > 1) return CUDA_ERROR_INVALID_VALUE;
    *granularity = SIM_PAGE;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size, const CUmemAllocationProp *prop,
                             unsigned long long flags)
{
    if (!handle || !prop || flags) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = sim_check_init();
    if (r) return r;
    if (!check_prop(prop) || size == 0 || size % SIM_PAGE) return CUDA_ERROR_INVALID_VALUE;
    if (prop->requestedHandleTypes & ~(unsigned)CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR) return CUDA_ERROR_NOT_SUPPORTED;
    int dev = prop->location.id;
    if (size > sim_vdev(dev)->capacity || sim_inject_alloc_failure()) return CUDA_ERROR_OUT_OF_MEMORY;
    struct sim_phys *p = calloc(1, sizeof *p);
    if (!p) return CUDA_ERROR_OUT_OF_MEMORY;
    if (sim_vdev_charge(dev, size) != 0) { free(p); return CUDA_ERROR_OUT_OF_MEMORY; }
    char name[32];
    snprintf(name, sizeof name, "gpumem-vmm-%d", sim_vdev_phys(dev));   /* physical, for importers */
    p->fd = memfd_create(name, MFD_CLOEXEC);
    if (p->fd < 0 || ftruncate(p->fd, (off_t)size) != 0) {
        if (p->fd >= 0) close(p->fd);
        sim_vdev_release(dev, size);
        free(p);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    p->magic = PHYS_MAGIC;
    p->dev = dev;
    p->charged = 1;
    p->size = size;
    p->prop = *prop;
    atomic_store(&p->refs, 1);
    *handle = (CUmemGenericAllocationHandle)(uintptr_t)p;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuMemRelease(CUmemGenericAllocationHandle handle)
{
    CUresult r = sim_check_init();
    if (r) return r;
    struct sim_phys *p = (struct sim_phys *)(uintptr_t)handle;
    if (!phys_ok(p)) return CUDA_ERROR_INVALID_VALUE;
    phys_put(p);
    return CUDA_SUCCESS;
}

SIM_API CUresult cuMemAddressReserve(CUdeviceptr *ptr, size_t size, size_t alignment, CUdeviceptr addr,
                                     unsigned long long flags)
{
    if (!ptr || size == 0 || size % SIM_PAGE || flags) return CUDA_ERROR_INVALID_VALUE;
    if (alignment & (alignment - 1)) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = sim_check_init();
    if (r) return r;
    if (alignment < SIM_PAGE) alignment = SIM_PAGE;
    size_t len = size + alignment;
    void *m = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return CUDA_ERROR_OUT_OF_MEMORY;
    uintptr_t base = ((uintptr_t)m + alignment - 1) & ~(uintptr_t)(alignment - 1);
    if (base > (uintptr_t)m) munmap(m, base - (uintptr_t)m);
    uintptr_t end = (uintptr_t)m + len;
    if (end > base + size) munmap((void *)(base + size), end - (base + size));
    struct resv *v = malloc(sizeof *v);
    if (!v) { munmap((void *)base, size); return CUDA_ERROR_OUT_OF_MEMORY; }
    v->base = base;
    v->size = size;
    pthread_mutex_lock(&vmm_lock);
    v->next = reservations;
    reservations = v;
    pthread_mutex_unlock(&vmm_lock);
    *ptr = base;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuMemAddressFree(CUdeviceptr ptr, size_t size)
{
    CUresult r = sim_check_init();
    if (r) return r;
    pthread_mutex_lock(&vmm_lock);
    for (struct mapping *m = mappings; m; m = m->next)
        if (m->base >= ptr && m->base < ptr + size) { pthread_mutex_unlock(&vmm_lock); return CUDA_ERROR_INVALID_VALUE; }
    for (struct resv **pp = &reservations; *pp; pp = &(*pp)->next) {
        struct resv *v = *pp;
        if (v->base == ptr && v->size == size) {
            *pp = v->next;
            pthread_mutex_unlock(&vmm_lock);
            munmap((void *)v->base, v->size);
            free(v);
            return CUDA_SUCCESS;
        }
    }
    pthread_mutex_unlock(&vmm_lock);
    return CUDA_ERROR_INVALID_VALUE;
}

static int in_reservation(uintptr_t p, size_t size)
{
    for (struct resv *v = reservations; v; v = v->next)
        if (p >= v->base && p + size <= v->base + v->size) return 1;
    return 0;
}

SIM_API CUresult cuMemMap(CUdeviceptr ptr, size_t size, size_t offset, CUmemGenericAllocationHandle handle,
                          unsigned long long flags)
{
    CUresult r = sim_check_init();
    if (r) return r;
    struct sim_phys *p = (struct sim_phys *)(uintptr_t)handle;
    if (!phys_ok(p)) return CUDA_ERROR_INVALID_HANDLE;
    if (flags || size == 0 || size % SIM_PAGE || offset % SIM_PAGE || ptr % SIM_PAGE || offset + size > p->size)
        return CUDA_ERROR_INVALID_VALUE;
    struct mapping *m = malloc(sizeof *m);
    if (!m) return CUDA_ERROR_OUT_OF_MEMORY;
    pthread_mutex_lock(&vmm_lock);
    if (!in_reservation(ptr, size)) r = CUDA_ERROR_INVALID_VALUE;
    for (struct mapping *o = mappings; o && !r; o = o->next)
        if (ptr < o->base + o->size && o->base < ptr + size) r = CUDA_ERROR_ALREADY_MAPPED;
    if (!r && mmap((void *)ptr, size, PROT_NONE, MAP_SHARED | MAP_FIXED, p->fd, (off_t)offset) == MAP_FAILED)
        r = CUDA_ERROR_OUT_OF_MEMORY;
    if (!r) {
        *m = (struct mapping){ .base = ptr, .size = size, .phys = p, .access = CU_MEM_ACCESS_FLAGS_PROT_NONE,
                               .next = mappings };
        mappings = m;
        atomic_fetch_add(&p->refs, 1);
    }
    pthread_mutex_unlock(&vmm_lock);
    if (r) free(m);
    return r;
}

SIM_API CUresult cuMemUnmap(CUdeviceptr ptr, size_t size)
{
    CUresult r = sim_check_init();
    if (r) return r;
    if (size == 0 || size % SIM_PAGE) return CUDA_ERROR_INVALID_VALUE;
    struct mapping *gone = NULL;
    int found = 0;
    pthread_mutex_lock(&vmm_lock);
    for (struct mapping **pp = &mappings; *pp;) {
        struct mapping *m = *pp;
        if (m->base >= ptr && m->base + m->size <= ptr + size) {
            *pp = m->next;
            m->next = gone;
            gone = m;
            found = 1;
        } else {
            pp = &m->next;
        }
    }
    pthread_mutex_unlock(&vmm_lock);
    if (!found) return CUDA_ERROR_INVALID_VALUE;
    while (gone) {
        struct mapping *m = gone;
        gone = m->next;
        /* Put the reservation back in place of the mapping. */
        mmap((void *)m->base, m->size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
        phys_put(m->phys);
        free(m);
    }
    return CUDA_SUCCESS;
}

SIM_API CUresult cuMemSetAccess(CUdeviceptr ptr, size_t size, const CUmemAccessDesc *desc, size_t count)
{
    CUresult r = sim_check_init();
    if (r) return r;
    if (!desc || count == 0 || size == 0) return CUDA_ERROR_INVALID_VALUE;
    unsigned flags = CU_MEM_ACCESS_FLAGS_PROT_NONE;
    for (size_t i = 0; i < count; i++) {
        if (desc[i].location.type != CU_MEM_LOCATION_TYPE_DEVICE) return CUDA_ERROR_INVALID_VALUE;
        if (sim_check_device(desc[i].location.id)) return CUDA_ERROR_INVALID_DEVICE;
        if (desc[i].flags != CU_MEM_ACCESS_FLAGS_PROT_NONE && desc[i].flags != CU_MEM_ACCESS_FLAGS_PROT_READ &&
            desc[i].flags != CU_MEM_ACCESS_FLAGS_PROT_READWRITE)
            return CUDA_ERROR_INVALID_VALUE;
        flags |= desc[i].flags;        /* host memory: the widest access any device gets */
    }
    int prot = flags == CU_MEM_ACCESS_FLAGS_PROT_READWRITE ? PROT_READ | PROT_WRITE
             : flags == CU_MEM_ACCESS_FLAGS_PROT_READ ? PROT_READ : PROT_NONE;
    pthread_mutex_lock(&vmm_lock);
    /* The whole range must be mapped. */
    size_t covered = 0;
    for (struct mapping *m = mappings; m; m = m->next)
        if (m->base >= ptr && m->base + m->size <= ptr + size) covered += m->size;
    if (covered != size) r = CUDA_ERROR_INVALID_VALUE;
    else {
        for (struct mapping *m = mappings; m; m = m->next)
            if (m->base >= ptr && m->base + m->size <= ptr + size) {
                mprotect((void *)m->base, m->size, prot);
                m->access = flags;
            }
    }
    pthread_mutex_unlock(&vmm_lock);
    return r;
}

static struct mapping *mapping_at(uintptr_t p)
{
    for (struct mapping *m = mappings; m; m = m->next)
        if (p >= m->base && p < m->base + m->size) return m;
    return NULL;
}

SIM_API CUresult cuMemGetAccess(unsigned long long *flags, const CUmemLocation *location, CUdeviceptr ptr)
{
    if (!flags || !location) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = sim_check_init();
    if (r) return r;
    pthread_mutex_lock(&vmm_lock);
    struct mapping *m = mapping_at(ptr);
    if (m) *flags = m->access;
    pthread_mutex_unlock(&vmm_lock);
    return m ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

int sim_vmm_covers(uintptr_t p, size_t len, int *dev)
{
    int ok = 0;
    pthread_mutex_lock(&vmm_lock);
    if (!mappings) { pthread_mutex_unlock(&vmm_lock); return 0; }
    uintptr_t at = p, end = p + (len ? len : 1);
    while (at < end) {
        struct mapping *m = mapping_at(at);
        if (!m || m->access == CU_MEM_ACCESS_FLAGS_PROT_NONE) break;
        if (at == p) *dev = m->phys->dev;
        at = m->base + m->size;
    }
    ok = at >= end;
    pthread_mutex_unlock(&vmm_lock);
    return ok;
}

SIM_API CUresult cuMemRetainAllocationHandle(CUmemGenericAllocationHandle *handle, void *addr)
{
    if (!handle) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = sim_check_init();
    if (r) return r;
    pthread_mutex_lock(&vmm_lock);
    struct mapping *m = mapping_at((uintptr_t)addr);
    if (m) {
        atomic_fetch_add(&m->phys->refs, 1);
        *handle = (CUmemGenericAllocationHandle)(uintptr_t)m->phys;
    }
    pthread_mutex_unlock(&vmm_lock);
    return m ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

SIM_API CUresult cuMemGetAllocationPropertiesFromHandle(CUmemAllocationProp *prop, CUmemGenericAllocationHandle handle)
{
    if (!prop) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = sim_check_init();
    if (r) return r;
    struct sim_phys *p = (struct sim_phys *)(uintptr_t)handle;
    if (!phys_ok(p)) return CUDA_ERROR_INVALID_VALUE;
    *prop = p->prop;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuMemExportToShareableHandle(void *shareableHandle, CUmemGenericAllocationHandle handle,
                                              CUmemAllocationHandleType handleType, unsigned long long flags)
{
    if (!shareableHandle || flags) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = sim_check_init();
    if (r) return r;
    struct sim_phys *p = (struct sim_phys *)(uintptr_t)handle;
    if (!phys_ok(p)) return CUDA_ERROR_INVALID_VALUE;
    if (handleType != CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR) return CUDA_ERROR_NOT_SUPPORTED;
    if (!(p->prop.requestedHandleTypes & CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR)) return CUDA_ERROR_INVALID_VALUE;
    int fd = fcntl(p->fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return CUDA_ERROR_OUT_OF_MEMORY;
    *(int *)shareableHandle = fd;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuMemImportFromShareableHandle(CUmemGenericAllocationHandle *handle, void *osHandle,
                                                CUmemAllocationHandleType shHandleType)
{
    if (!handle) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = sim_check_init();
    if (r) return r;
    if (shHandleType != CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR) return CUDA_ERROR_NOT_SUPPORTED;
    int src = (int)(intptr_t)osHandle;
    /* Only our own memfds: their name says which device they belong to. */
    char link[64], target[128];
    snprintf(link, sizeof link, "/proc/self/fd/%d", src);
    ssize_t n = readlink(link, target, sizeof target - 1);
    int phys;
    if (n <= 0) return CUDA_ERROR_INVALID_VALUE;
    target[n] = 0;
    if (sscanf(target, "/memfd:gpumem-vmm-%d", &phys) != 1) return CUDA_ERROR_INVALID_VALUE;
    int dev = sim_vdev_from_phys(phys);
    if (dev < 0) return CUDA_ERROR_INVALID_DEVICE;
    struct stat st;
    if (fstat(src, &st) != 0 || st.st_size <= 0) return CUDA_ERROR_INVALID_VALUE;
    struct sim_phys *p = calloc(1, sizeof *p);
    if (!p) return CUDA_ERROR_OUT_OF_MEMORY;
    p->fd = fcntl(src, F_DUPFD_CLOEXEC, 0);
    if (p->fd < 0) { free(p); return CUDA_ERROR_OUT_OF_MEMORY; }
    p->magic = PHYS_MAGIC;
    p->dev = dev;
    p->size = (size_t)st.st_size;
    p->prop = (CUmemAllocationProp){ .type = CU_MEM_ALLOCATION_TYPE_PINNED,
                                     .requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR,
                                     .location = { CU_MEM_LOCATION_TYPE_DEVICE, dev } };
    atomic_store(&p->refs, 1);
    *handle = (CUmemGenericAllocationHandle)(uintptr_t)p;
    return CUDA_SUCCESS;
}
