/* The Prometheus exposition (text format 0.0.4) of a snapshot. Every family
 * has its HELP and TYPE and all its series together; bytes are the base
 * unit; a value that is not known (no limit, no NVML, a device NVML does
 * not list) is left out rather than reported as 0. */
#include "daemon.h"
#include "backstop.h"

#include <string.h>

#ifndef GPUMEM_VERSION /* the Makefile defines it */
#define GPUMEM_VERSION "unknown"
#endif

void dm_family(struct gbuf *b, const char *name, const char *type, const char *help)
{
    gbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void dm_group_labels(struct gbuf *b, const struct dm_row *r)
{
    gbuf_puts(b, "{group=\"");
    gbuf_label(b, r->group);
    gbuf_puts(b, "\",container=\"");
    gbuf_label(b, r->container);
    gbuf_puts(b, "\",pod=\"");
    gbuf_label(b, r->pod);
    gbuf_puts(b, "\",namespace=\"");
    gbuf_label(b, r->ns);
    if (r->gpu >= 0)
        gbuf_printf(b, "\",gpu=\"%d", r->gpu);
    else
        gbuf_puts(b, "\",gpu=\"");
    gbuf_puts(b, "\",uuid=\"");
    gbuf_label(b, r->uuid);
    gbuf_puts(b, "\"}");
}

static void device_labels(struct gbuf *b, const struct dm_device *d)
{
    gbuf_printf(b, "{gpu=\"%u\",uuid=\"", d->index);
    gbuf_label(b, d->uuid);
    gbuf_puts(b, "\"}");
}

enum row_field { F_LIMIT, F_USED, F_PEAK, F_REFUSALS, F_PROCS, F_DRIFT, F_LEAK, F_SWAP_USED, F_SWAP_LIMIT };

static void group_family(struct gbuf *b, const struct dm_snapshot *s, const char *name, const char *type,
                         const char *help, enum row_field f)
{
    dm_family(b, name, type, help);
    for (size_t i = 0; i < s->nrows; i++) {
        const struct dm_row *r = &s->rows[i];
        if ((f == F_LIMIT && r->limit == GM_UNLIMITED) || (f == F_DRIFT && !r->drift_ok))
            continue;
        gbuf_puts(b, name);
        dm_group_labels(b, r);
        switch (f) {
        case F_LIMIT: gbuf_printf(b, " %llu\n", (unsigned long long)r->limit); break;
        case F_USED: gbuf_printf(b, " %llu\n", (unsigned long long)r->used); break;
        case F_PEAK: gbuf_printf(b, " %llu\n", (unsigned long long)r->peak); break;
        case F_REFUSALS: gbuf_printf(b, " %llu\n", (unsigned long long)r->refusals); break;
        case F_PROCS: gbuf_printf(b, " %d\n", r->procs); break;
        case F_DRIFT: gbuf_printf(b, " %lld\n", (long long)r->drift); break;
        case F_LEAK: gbuf_printf(b, " %d\n", r->leak); break;
        case F_SWAP_USED: gbuf_printf(b, " %llu\n", (unsigned long long)r->swap_used); break;
        case F_SWAP_LIMIT: gbuf_printf(b, " %llu\n", (unsigned long long)r->swap_limit); break;
        }
    }
}

enum dev_field { D_TOTAL, D_USED, D_FREE, D_GRANTED };

static void device_family(struct gbuf *b, const struct dm_snapshot *s, const char *name, const char *help,
                          enum dev_field f)
{
    dm_family(b, name, "gauge", help);
    for (int i = 0; i < s->ndevs; i++) {
        const struct dm_device *d = &s->devs[i];
        if (f != D_GRANTED && !d->mem_ok)
            continue;
        unsigned long long v = f == D_TOTAL ? d->total : f == D_USED ? d->used : f == D_FREE ? d->free : d->granted;
        gbuf_puts(b, name);
        device_labels(b, d);
        gbuf_printf(b, " %llu\n", v);
    }
}

/* Starts an info series: NAME{gpu="I",uuid="U",KEY="VALUE (the quote
 * still open). */
static void info_open(struct gbuf *b, const char *name, const struct dm_device *d, const char *key, const char *value)
{
    gbuf_printf(b, "%s{gpu=\"%u\",uuid=\"", name, d->index);
    gbuf_label(b, d->uuid);
    gbuf_printf(b, "\",%s=\"", key);
    gbuf_label(b, value);
}

/* One series per NVML device (MIG devices too, whose model is "<GPU> MIG
 * <profile>"), value 1, naming its model and the host: joined
 * onto the device and group series by (gpu, uuid) where a query needs them
 * (the dcgm-exporter names in deploy/prometheus/gpumem-compat.yml do). */
static void device_info(struct gbuf *b, const struct dm_snapshot *s)
{
    dm_family(b, "gpumem_device_info", "gauge", "1 for each device NVML lists, with its model name and the host's name.");
    for (int i = 0; i < s->ndevs; i++) {
        info_open(b, "gpumem_device_info", &s->devs[i], "model", s->devs[i].name);
        gbuf_puts(b, "\",hostname=\"");
        gbuf_label(b, s->hostname);
        gbuf_puts(b, "\"} 1\n");
    }
}

/* One series per MIG device NVML lists (its device series carry its GPU's
 * index and its own "MIG-" UUID): its GPU, instance profile and ids, joined
 * onto the group and device series by uuid. */
static void mig_device_info(struct gbuf *b, const struct dm_snapshot *s)
{
    dm_family(b, "gpumem_mig_device_info", "gauge",
           "1 for each MIG device NVML lists, with its GPU (index and UUID), instance profile and GPU/compute "
           "instance ids.");
    for (int i = 0; i < s->ndevs; i++) {
        const struct dm_device *d = &s->devs[i];
        if (!d->mig)
            continue;
        info_open(b, "gpumem_mig_device_info", d, "parent_uuid", d->parent_uuid);
        gbuf_puts(b, "\",profile=\"");
        gbuf_label(b, d->profile);
        gbuf_printf(b, "\",mig_device=\"%u\",gpu_instance=\"%u\",compute_instance=\"%u\"} 1\n", d->mig_index, d->gi,
                    d->ci);
    }
}

void dm_render_metrics(struct gbuf *b, const struct dm_snapshot *s)
{
    group_family(b, s, "gpumem_group_limit_bytes", "gauge",
                 "GPU memory limit of the group on the device (absent when the group has no limit there).", F_LIMIT);
    group_family(b, s, "gpumem_group_used_bytes", "gauge",
                 "GPU memory the group's processes hold on the device, as the shim accounts it.", F_USED);
    group_family(b, s, "gpumem_group_peak_bytes", "gauge",
                 "Highest GPU memory the group has held on the device since it was created.", F_PEAK);
    group_family(b, s, "gpumem_group_refusals_total", "counter",
                 "Allocations refused because they would have passed the group's limit on the device.",
                 F_REFUSALS);
    group_family(b, s, "gpumem_group_processes", "gauge",
                 "Live processes of the group holding GPU memory on the device.", F_PROCS);
    group_family(b, s, "gpumem_group_accounting_drift_bytes", "gauge",
                 "The shim's accounting of the group's processes minus what NVML reports for the same "
                 "processes on the device (absent without NVML).",
                 F_DRIFT);
    group_family(b, s, "gpumem_group_leak_suspected", "gauge",
                 "1 when leak detection suspects a process of the group on the device (usage growing "
                 "monotonically while idle, or over the long window), else 0.",
                 F_LEAK);
    group_family(b, s, "gpumem_group_swap_used_bytes", "gauge",
                 "Bytes the group's allocations past its limit on the device hold in host memory (spilled: "
                 "managed memory placed on the host, charged to the group's swap, not to the device).",
                 F_SWAP_USED);
    group_family(b, s, "gpumem_group_swap_limit_bytes", "gauge",
                 "The group's host-memory spill allowance, one for all its devices (repeated on each device's "
                 "series); 0 when it may not spill.",
                 F_SWAP_LIMIT);
    device_family(b, s, "gpumem_device_total_bytes", "Physical memory of the device (NVML).", D_TOTAL);
    device_family(b, s, "gpumem_device_used_bytes", "Used memory of the device, all processes (NVML).", D_USED);
    device_family(b, s, "gpumem_device_free_bytes", "Free memory of the device (NVML).", D_FREE);
    device_family(b, s, "gpumem_device_granted_limit_bytes",
                  "Sum of the limits of every group that may allocate on the device.", D_GRANTED);
    device_info(b, s);
    mig_device_info(b, s);
    dm_family(b, "gpumem_build_info", "gauge", "1, with the daemon's version and the name of the host it runs on.");
    gbuf_puts(b, "gpumem_build_info{version=\"");
    gbuf_label(b, GPUMEM_VERSION);
    gbuf_puts(b, "\",hostname=\"");
    gbuf_label(b, s->hostname);
    gbuf_puts(b, "\"} 1\n");
    dm_family(b, "gpumem_groups", "gauge", "Groups read on this scrape.");
    gbuf_printf(b, "gpumem_groups %d\n", s->ngroups);
    dm_family(b, "gpumem_groups_skipped", "gauge",
           "Groups skipped on this scrape because their files are corrupt or unreadable.");
    gbuf_printf(b, "gpumem_groups_skipped %zu\n", s->nbad);
    dm_family(b, "gpumem_nvml_up", "gauge", "1 when NVML was loaded and answered, else 0.");
    gbuf_printf(b, "gpumem_nvml_up %d\n", s->nvml);
    bs_render_metrics(b);
}
