/* CUDA_VISIBLE_DEVICES: which of the machine's devices this process sees,
 * and in which order. This file is the only place in sim/cuda that knows
 * physical device indices (sim/common's, which are NVML's): every CUdevice
 * the library takes or returns, and every device number stored in its
 * records (contexts, allocations, pools, VMM handles), is the visible
 * ordinal, translated here when it reaches the shared state. internal.h
 * poisons sim/common's per-device functions for the rest of sim/cuda.
 *
 * Semantics of NVIDIA's driver, read once at cuInit: a comma-separated list;
 * each entry is a device index (NVML order), a full UUID "GPU-..." or a
 * unique prefix of one. The first invalid, ambiguous or repeated entry ends
 * the list (devices before it stay visible). Set but empty: no device.
 * Unset: every device, in NVML order.
 *
 * MIG: CUDA runs on MIG devices, never on a GPU in MIG mode. An entry
 * "MIG-<uuid>" (or a unique prefix) names one MIG device; an index or GPU
 * UUID of a GPU in MIG mode stands for its MIG devices, in NVML's order;
 * unset shows every GPU not in MIG mode and every MIG device, each GPU's
 * in its place. (NVIDIA's CUDA 11 drivers enumerated a single MIG device;
 * the simulator shows them all, so a test can pick any.) */
#define SIM_VISIBLE_IMPL
#include "internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int vis_phys[SIM_MAX_DEVICES];   /* visible ordinal -> state entry */
static int vis_count;

/* The physical index an entry names, or -1. */
static int parse_entry(const char *s, size_t len, int ndev)
{
    while (len && isspace((unsigned char)*s)) { s++; len--; }
    while (len && isspace((unsigned char)s[len - 1])) len--;
    if (len == 0) return -1;
    if (isdigit((unsigned char)s[0])) {
        long v = 0;
        for (size_t i = 0; i < len; i++) {
            if (!isdigit((unsigned char)s[i])) return -1;
            v = v * 10 + (s[i] - '0');
            if (v >= ndev) return -1;
        }
        return (int)v;
    }
    int mig = len >= 4 && strncasecmp(s, "MIG-", 4) == 0;
    if (len < 4 || (strncasecmp(s, "GPU-", 4) != 0 && !mig)) return -1;
    int found = -1, from = mig ? ndev : 0, to = mig ? sim_entry_count() : ndev;
    for (int i = from; i < to; i++) {
        const char *u = sim_device(i)->uuid_str;
        if (len <= strlen(u) && strncasecmp(u, s, len) == 0) {
            if (found >= 0) return -1;              /* ambiguous prefix */
            found = i;
        }
    }
    return found;
}

/* Adds what entry `e` stands for: itself, or a MIG-mode GPU's MIG devices.
 * -1 when one is listed already (a duplicate ends the list). */
static int add_visible(int e)
{
    const struct sim_device_info *d = sim_device(e);
    int first = e, n = 1;
    if (d->mig_mode) {
        first = d->mig_first;
        n = d->mig_count;
    }
    for (int k = first; k < first + n; k++) {
        for (int i = 0; i < vis_count; i++)
            if (vis_phys[i] == k) return -1;
        if (vis_count < SIM_MAX_DEVICES) vis_phys[vis_count++] = k;
    }
    return 0;
}

void sim_visible_init(void)
{
    int ndev = sim_device_count();
    const char *env = getenv("CUDA_VISIBLE_DEVICES");
    vis_count = 0;
    if (!env) {
        for (int i = 0; i < ndev; i++) add_visible(i);
        return;
    }
    for (const char *p = env; *p && vis_count < SIM_MAX_DEVICES;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        int phys = parse_entry(p, len, ndev);
        if (phys < 0 || add_visible(phys) < 0) break;
        if (!comma) break;
        p = comma + 1;
    }
}

int sim_vdev_count(void) { return vis_count; }

int sim_vdev_phys(int dev) { return dev >= 0 && dev < vis_count ? vis_phys[dev] : -1; }

int sim_vdev_from_phys(int phys)
{
    for (int i = 0; i < vis_count; i++)
        if (vis_phys[i] == phys) return i;
    return -1;
}

const struct sim_device_info *sim_vdev(int dev) { return sim_device(sim_vdev_phys(dev)); }
const struct sim_device_info *sim_vdev_gpu(int dev)
{
    const struct sim_device_info *d = sim_vdev(dev);
    return d && d->parent >= 0 ? sim_device(d->parent) : d;
}
int sim_vdev_charge(int dev, uint64_t bytes) { return sim_charge(sim_vdev_phys(dev), bytes); }
void sim_vdev_release(int dev, uint64_t bytes) { sim_release(sim_vdev_phys(dev), bytes); }
uint64_t sim_vdev_used(int dev) { return sim_device_used(sim_vdev_phys(dev)); }
