/* MIG in the simulated GPU: the layout of a GPU in MIG mode, from the text
 * after '/' in its GPUMEM_SIM_DEVICES item.
 *
 * Grammar: GPU instances joined by '+', each `<g>g.<m>gb` (g compute
 * slices, m GiB of memory, NVIDIA's profile names such as 3g.40gb),
 * optionally followed by its compute instances in parentheses, each `<c>c`
 * and joined by '+': "3g.40gb+4g.40gb(2c+2c)". Without parentheses a GPU
 * instance has one compute instance of all its slices. An empty layout is a
 * GPU in MIG mode with no instance. At most 7 compute slices per GPU (the
 * A100/H100/H200 figure), instance memory at most the GPU's.
 *
 * Each compute instance is one MIG device, as NVML and CUDA count them: a
 * device entry after the GPUs, named "<GPU name> MIG <profile>" and with a
 * "MIG-" UUID derived from its GPU's UUID and its instance ids (stable in
 * every process). The compute instances of one GPU instance share its
 * memory: all charge the entry of its first compute instance (`pool`).
 * GPU instance ids count from 1 and compute instance ids from 0 in layout
 * order (NVIDIA's depend on the placement; tools read them, never assume). */
#include "simstate_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define SIM_MIG_MAX_SLICES 7

/* An unsigned decimal of at most 4 digits at *p, advancing it; -1 if none. */
static long small_number(const char **p)
{
    long v = 0;
    int digits = 0;
    while (isdigit((unsigned char)**p) && digits < 5) {
        v = v * 10 + (**p - '0');
        (*p)++;
        digits++;
    }
    return digits == 0 || digits > 4 ? -1 : v;
}

static void fill_mig(struct sim_device_info *d, const struct sim_device_info *gpu, int gpu_index,
                     int pool, unsigned gi, unsigned ci, long g, long c, long gb, int several)
{
    char profile[32] = { 0 }, gpu_name[64];
    if (several)
        snprintf(profile, sizeof profile, "%ldc.%ldg.%ldgb", c % 10000, g % 10000, gb % 10000);
    else
        snprintf(profile, sizeof profile, "%ldg.%ldgb", g % 10000, gb % 10000);
    snprintf(gpu_name, sizeof gpu_name, "%.60s", gpu->name);
    memset(d, 0, sizeof *d);
    memcpy(d->profile, profile, sizeof profile);
    snprintf(d->name, sizeof d->name, "%.60s MIG %.30s", gpu_name, profile);
    d->cc_major = gpu->cc_major;
    d->cc_minor = gpu->cc_minor;
    d->multiprocessors = gpu->multiprocessors * (int)c / SIM_MIG_MAX_SLICES;
    if (d->multiprocessors < 1)
        d->multiprocessors = 1;
    d->capacity = (uint64_t)gb << 30;
    d->pci_domain = gpu->pci_domain;
    d->pci_bus = gpu->pci_bus;
    d->pci_device = gpu->pci_device;
    d->pci_device_id = gpu->pci_device_id;
    d->pci_subsystem_id = gpu->pci_subsystem_id;
    memcpy(d->pci_bus_id, gpu->pci_bus_id, sizeof d->pci_bus_id);
    d->parent = gpu_index;
    d->pool = pool;
    d->gi_id = gi;
    d->ci_id = ci;
    d->gi_slices = (int)g;
    d->ci_slices = (int)c;
    uint64_t h1 = sim_fnv1a(0xcbf29ce484222325ULL, gpu->uuid, sizeof gpu->uuid);
    h1 = sim_fnv1a(h1, &gi, sizeof gi);
    h1 = sim_fnv1a(h1, &ci, sizeof ci);
    sim_make_uuid(d, h1, "gpumem-sim-mig", "MIG");
}

int sim_mig_append(const char *layout, int gpu, struct sim_device_info *out, int *count, int max)
{
    struct sim_device_info *g_dev = &out[gpu];
    g_dev->mig_mode = 1;
    g_dev->mig_first = *count;
    g_dev->mig_count = 0;
    long slices = 0;
    uint64_t memory = 0;
    unsigned gi = 0;
    const char *p = layout;
    while (*p) {
        if (gi > 0 && *p++ != '+')
            return -1;
        long g = small_number(&p);
        if (g < 1 || *p++ != 'g' || *p++ != '.')
            return -1;
        long gb = small_number(&p);
        if (gb < 1 || strncmp(p, "gb", 2) != 0)
            return -1;
        p += 2;
        slices += g;
        memory += (uint64_t)gb << 30;
        if (slices > SIM_MIG_MAX_SLICES || memory > g_dev->capacity)
            return -1;
        gi++;
        long cis[SIM_MIG_MAX_SLICES];
        int ncis = 0;
        if (*p == '(') {
            long used = 0;
            p++;
            for (;;) {
                long c = small_number(&p);
                if (c < 1 || *p++ != 'c' || ncis >= SIM_MIG_MAX_SLICES || (used += c) > g)
                    return -1;
                cis[ncis++] = c;
                if (*p == ')')
                    break;
                if (*p++ != '+')
                    return -1;
            }
            p++;
        } else {
            cis[ncis++] = g;
        }
        int pool = *count;
        int several = ncis > 1 || cis[0] != g;
        for (int k = 0; k < ncis; k++) {
            if (*count >= max)
                return -1;
            fill_mig(&out[*count], g_dev, gpu, pool, gi, (unsigned)k, g, cis[k], gb, several);
            (*count)++;
            g_dev->mig_count++;
        }
    }
    return 0;
}
