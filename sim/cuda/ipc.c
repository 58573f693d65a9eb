/* Legacy CUDA IPC memory handles, across real processes.
 *
 * Exporting an allocation moves its backing into a memfd in place: a new
 * shared file mapping replaces the anonymous one at the same address, with
 * the resident pages copied (mincore), so untouched memory stays free. The
 * handle names the exporter's pid and fd; the importer opens
 * /proc/<pid>/fd/<fd> (same user, as the real driver's sharing needs too),
 * checks that it is that allocation's memfd, and maps it. The exporter keeps
 * the charge: imported memory is not charged again.
 *
 * Only allocations on their own pages (> 1 MiB) can be exported; smaller
 * ones share the sim's slab pages (heap.c) and answer CUDA_ERROR_NOT_SUPPORTED. */
#include "internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct ipc_handle {
    char magic[8];            /* "GPUMEMIP" */
    int32_t pid;
    int32_t fd;
    uint64_t id;
    uint64_t size;            /* what was allocated */
    uint64_t mapped;          /* length of the memfd */
    int32_t dev;              /* physical: another process may number it differently */
};
_Static_assert(sizeof(struct ipc_handle) <= CU_IPC_HANDLE_SIZE, "IPC handle too large");

static int move_to_memfd(struct sim_alloc *a)
{
    char name[48];
    snprintf(name, sizeof name, "gpumem-ipc-%d-%llu", sim_vdev_phys(a->dev), a->id);
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0) return -1;
    if (ftruncate(fd, (off_t)a->mapped) != 0) { close(fd); return -1; }
    unsigned char *tmp = mmap(NULL, a->mapped, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (tmp == MAP_FAILED) { close(fd); return -1; }
    size_t page = (size_t)sysconf(_SC_PAGESIZE), npages = a->mapped / page;
    unsigned char *vec = malloc(npages ? npages : 1);
    if (vec && mincore((void *)a->base, a->mapped, vec) == 0) {
        for (size_t i = 0; i < npages; i++)
            if (vec[i] & 1) memcpy(tmp + i * page, (void *)(a->base + i * page), page);
    } else {
        memcpy(tmp, (void *)a->base, a->mapped);
    }
    free(vec);
    munmap(tmp, a->mapped);
    if (mmap((void *)a->base, a->mapped, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED) {
        close(fd);
        return -1;
    }
    a->ipc_fd = fd;
    return 0;
}

SIM_API CUresult cuIpcGetMemHandle(CUipcMemHandle *pHandle, CUdeviceptr dptr)
{
    if (!pHandle) return CUDA_ERROR_INVALID_VALUE;
    struct sim_ctx *c;
    CUresult r = sim_ctx_current(&c);
    if (r) return r;
    struct sim_alloc found;
    if (sim_registry_find(dptr, 1, &found) != 0 || found.kind != SIM_KIND_DEVICE || found.pool)
        return CUDA_ERROR_INVALID_VALUE;
    if (!found.mmapped) return CUDA_ERROR_NOT_SUPPORTED;
    struct sim_alloc *a = sim_registry_remove(found.base, 1u << SIM_KIND_DEVICE);
    if (!a) return CUDA_ERROR_INVALID_VALUE;
    if (a->ipc_fd < 0 && move_to_memfd(a) != 0) r = CUDA_ERROR_OUT_OF_MEMORY;
    struct ipc_handle h = { .magic = "GPUMEMIP", .pid = (int32_t)getpid(), .fd = a->ipc_fd, .id = a->id,
                            .size = a->size, .mapped = a->mapped, .dev = sim_vdev_phys(a->dev) };
    sim_registry_insert(a);
    if (r) return r;
    memset(pHandle, 0, sizeof *pHandle);
    memcpy(pHandle->reserved, &h, sizeof h);
    return CUDA_SUCCESS;
}

static CUresult ipc_open(CUdeviceptr *pdptr, CUipcMemHandle handle, unsigned int Flags)
{
    if (!pdptr || (Flags & ~(unsigned)CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS)) return CUDA_ERROR_INVALID_VALUE;
    struct sim_ctx *c;
    CUresult r = sim_ctx_current(&c);
    if (r) return r;
    struct ipc_handle h;
    memcpy(&h, handle.reserved, sizeof h);
    if (memcmp(h.magic, "GPUMEMIP", 8) != 0) return CUDA_ERROR_INVALID_VALUE;
    if (h.pid == (int32_t)getpid()) return CUDA_ERROR_INVALID_CONTEXT;   /* the driver refuses self-import */
    char path[64], target[128], want[64];
    snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)h.pid, (int)h.fd);
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n <= 0) return CUDA_ERROR_INVALID_HANDLE;
    target[n] = 0;
    snprintf(want, sizeof want, "/memfd:gpumem-ipc-%d-%llu ", (int)h.dev, (unsigned long long)h.id);
    if (strncmp(target, want, strlen(want)) != 0) return CUDA_ERROR_INVALID_HANDLE;
    int dev = sim_vdev_from_phys(h.dev);          /* the handle names the physical device */
    if (dev < 0) return CUDA_ERROR_INVALID_DEVICE;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return CUDA_ERROR_INVALID_HANDLE;
    struct stat st;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size != h.mapped) { close(fd); return CUDA_ERROR_INVALID_HANDLE; }
    void *m = mmap(NULL, h.mapped, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return CUDA_ERROR_OUT_OF_MEMORY;
    struct sim_alloc *a = sim_record_alloc();
    if (!a) { munmap(m, h.mapped); return CUDA_ERROR_OUT_OF_MEMORY; }
    *a = (struct sim_alloc){ .base = (uintptr_t)m, .size = h.size, .mapped = h.mapped, .dev = dev,
                             .kind = SIM_KIND_IPC, .mmapped = 1, .ipc_fd = -1, .id = h.id, .ctx = c };
    sim_registry_insert(a);
    *pdptr = a->base;
    return CUDA_SUCCESS;
}
SIM_API CUresult cuIpcOpenMemHandle(CUdeviceptr *pdptr, CUipcMemHandle handle, unsigned int Flags)
{ return ipc_open(pdptr, handle, Flags); }
SIM_API CUresult cuIpcOpenMemHandle_v2(CUdeviceptr *pdptr, CUipcMemHandle handle, unsigned int Flags)
{ return ipc_open(pdptr, handle, Flags); }

SIM_API CUresult cuIpcCloseMemHandle(CUdeviceptr dptr)
{
    struct sim_ctx *c;
    CUresult r = sim_ctx_current(&c);
    if (r) return r;
    struct sim_alloc *a = sim_registry_remove(dptr, 1u << SIM_KIND_IPC);
    if (!a) return CUDA_ERROR_INVALID_VALUE;
    sim_free_record(a);
    return CUDA_SUCCESS;
}
