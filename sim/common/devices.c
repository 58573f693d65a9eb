/* The simulated devices: parsed once per process from GPUMEM_SIM_DEVICES.
 *
 * Grammar: a comma-separated list of items `[N x][MODEL:]SIZE[/MIG]`, e.g.
 * "2x80G", "H200:141G,A100:40G", "2xA100:40G", "A100:80G/3g.40gb+2g.20gb"
 * (a GPU in MIG mode; the layout after '/' is parsed in mig.c). Sizes use
 * binary units. Every field a
 * tool may show (UUID, PCI bus id) is derived from the item and its index
 * only, so the same spec always yields the same devices in every process. */
#include "simstate_internal.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct model {
    const char *key;        /* as written in the spec, case-insensitive */
    const char *name;       /* what the driver reports */
    int cc_major, cc_minor, sms;
    unsigned pci_device_id;
};

/* Figures of the real boards, so tools see plausible values. */
static const struct model models[] = {
    { "B200", "NVIDIA B200", 10, 0, 148, 0x290110DE },
    { "H200", "NVIDIA H200", 9, 0, 132, 0x233510DE },
    { "H100", "NVIDIA H100 80GB HBM3", 9, 0, 132, 0x233010DE },
    { "L40S", "NVIDIA L40S", 8, 9, 142, 0x26B910DE },
    { "L4", "NVIDIA L4", 8, 9, 58, 0x27B810DE },
    { "A100", "NVIDIA A100-SXM4-80GB", 8, 0, 108, 0x20B210DE },
    { "A10", "NVIDIA A10", 8, 6, 72, 0x223610DE },
    { "T4", "Tesla T4", 7, 5, 40, 0x1EB810DE },
    { "V100", "Tesla V100-SXM2-32GB", 7, 0, 80, 0x1DB510DE },
};
static const struct model default_model = { "", "NVIDIA Simulated GPU", 9, 0, 132, 0x233010DE };

int sim_parse_size(const char *s, uint64_t *out)
{
    if (!s) return -1;
    while (isspace((unsigned char)*s)) s++;
    if (!isdigit((unsigned char)*s)) return -1;     /* no sign, no hex, no "." start */
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !isfinite(v) || v < 0) return -1;
    for (const char *p = s; p < end; p++)           /* plain decimal only */
        if (!isdigit((unsigned char)*p) && *p != '.') return -1;
    double mult = 1;
    switch (toupper((unsigned char)*end)) {
    case 'K': mult = 1024.0; end++; break;
    case 'M': mult = 1024.0 * 1024; end++; break;
    case 'G': mult = 1024.0 * 1024 * 1024; end++; break;
    case 'T': mult = 1024.0 * 1024 * 1024 * 1024; end++; break;
    default: break;
    }
    if (mult > 1) {
        if (toupper((unsigned char)end[0]) == 'I' && toupper((unsigned char)end[1]) == 'B') end += 2;
        else if (toupper((unsigned char)end[0]) == 'B') end++;
    } else if (toupper((unsigned char)end[0]) == 'B') {
        end++;
    }
    while (isspace((unsigned char)*end)) end++;
    if (*end) return -1;
    double bytes = v * mult;
    if (bytes >= 18446744073709551616.0) return -1;
    *out = (uint64_t)bytes;
    return 0;
}

/* FNV-1a, 64-bit: enough to give each device distinct, stable identifiers. */
uint64_t sim_fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) { h ^= p[i]; h *= 0x100000001b3ULL; }
    return h;
}

static void fill_device(struct sim_device_info *d, int index, const struct model *m, uint64_t capacity)
{
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", m->name);
    d->cc_major = m->cc_major;
    d->cc_minor = m->cc_minor;
    d->multiprocessors = m->sms;
    d->capacity = capacity;
    d->parent = -1;
    d->pool = index;
    d->pci_domain = 0;
    d->pci_bus = 0x18 + 0x11 * (unsigned)index;      /* spread like a real 8-GPU board */
    d->pci_device = 0;
    d->pci_device_id = m->pci_device_id;
    d->pci_subsystem_id = 0x16C110DE;
    snprintf(d->pci_bus_id, sizeof d->pci_bus_id, "%08X:%02X:%02X.0", d->pci_domain, d->pci_bus & 0xff,
             d->pci_device);

    uint64_t h1 = sim_fnv1a(0xcbf29ce484222325ULL, m->name, strlen(m->name));
    h1 = sim_fnv1a(h1, &capacity, sizeof capacity);
    h1 = sim_fnv1a(h1, &index, sizeof index);
    sim_make_uuid(d, h1, "gpumem-sim", "GPU");
}

void sim_make_uuid(struct sim_device_info *d, uint64_t h1, const char *salt, const char *prefix)
{
    uint64_t h2 = sim_fnv1a(h1 ^ 0x9e3779b97f4a7c15ULL, salt, strlen(salt));
    for (int i = 0; i < 8; i++) {
        d->uuid[i] = (uint8_t)(h1 >> (8 * i));
        d->uuid[8 + i] = (uint8_t)(h2 >> (8 * i));
    }
    d->uuid[6] = (uint8_t)((d->uuid[6] & 0x0f) | 0x40);   /* looks like a v4 UUID */
    d->uuid[8] = (uint8_t)((d->uuid[8] & 0x3f) | 0x80);
    sim_format_uuid(d->uuid_str, sizeof d->uuid_str, prefix, d->uuid);
}

void sim_format_uuid(char *out, size_t len, const char *prefix, const uint8_t *u)
{
    snprintf(out, len, "%s-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", prefix,
             u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

static const struct model *find_model(const char *key, size_t n)
{
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++)
        if (strlen(models[i].key) == n && strncasecmp(models[i].key, key, n) == 0) return &models[i];
    return NULL;
}

int sim_parse_devices(const char *spec, struct sim_device_info *out, int max)
{
    if (!spec) spec = "16G";
    int count = 0;
    char buf[512];
    if (strlen(spec) >= sizeof buf) return -1;
    snprintf(buf, sizeof buf, "%s", spec);
    if (strcmp(buf, "none") == 0 || buf[0] == 0) return 0;
    const char *layout[SIM_MAX_DEVICES];     /* per GPU: its MIG layout, or NULL */
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*item)) item++;
        long n = 1;
        char *x = strchr(item, 'x');
        char *colon = strchr(item, ':');
        if (x && (!colon || x < colon)) {
            char *end;
            errno = 0;
            n = strtol(item, &end, 10);
            if (end != x || errno || n < 1 || n > max) return -1;
            item = x + 1;
        }
        const struct model *m = &default_model;
        colon = strchr(item, ':');
        if (colon) {
            m = find_model(item, (size_t)(colon - item));
            if (!m) return -1;
            item = colon + 1;
        }
        char *slash = strchr(item, '/');
        if (slash) *slash = 0;
        uint64_t cap;
        if (sim_parse_size(item, &cap) != 0 || cap < (64u << 20)) return -1;
        for (long i = 0; i < n; i++) {
            if (count >= max) return -1;
            fill_device(&out[count], count, m, cap);
            layout[count] = slash ? slash + 1 : NULL;
            count++;
        }
    }
    /* MIG devices follow every GPU, so GPU entries keep NVML's indices. */
    int ngpu = count;
    for (int i = 0; i < ngpu; i++)
        if (layout[i] && sim_mig_append(layout[i], i, out, &count, max) != 0) return -1;
    return count;
}
