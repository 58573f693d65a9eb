/* Fuzz target: GPUMEM_SIM_DEVICES, the simulated GPU's device list
 * (sim/common/devices.c: sim_parse_devices, and sim_parse_size for each
 * item's size). Checks what the simulated driver relies on: a count within
 * [0, max] or -1; every device at least 64 MiB with a NUL-terminated name,
 * a "GPU-" UUID string (a MIG device: "MIG-") of 8-4-4-4-12 lower-case hex
 * digits matching its 16 bytes, and a PCI bus id; GPUs first, then MIG
 * devices whose GPU is in MIG mode and lists them, charging a GPU
 * instance entry of the same GPU; the same spec gives the same devices every time
 * (every process of a machine must agree), and a smaller `max` gives the
 * same devices or a refusal, never other ones.
 * Extra source: FUZZ_EXTRA_sim_devices in the Makefile.
 *
 * libFuzzer options: -max_len=1024 */
#include "../../sim/common/simstate_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) ((c) ? (void)0 : (fprintf(stderr, "sim_devices fuzz: %s:%d: %s\n", __FILE__, __LINE__, #c), abort()))

static void check_device(const struct sim_device_info *d)
{
    CHECK(d->capacity >= 64u << 20);
    CHECK(memchr(d->name, '\0', sizeof d->name) && d->name[0]);
    CHECK(memchr(d->pci_bus_id, '\0', sizeof d->pci_bus_id) && strlen(d->pci_bus_id) == 16);
    const char *prefix = d->parent >= 0 ? "MIG" : "GPU";
    CHECK(strlen(d->uuid_str) == 40 && strncmp(d->uuid_str, prefix, 3) == 0);
    char want[48];
    const uint8_t *u = d->uuid;
    snprintf(want, sizeof want, "%s-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", prefix, u[0], u[1],
             u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
    CHECK(strcmp(d->uuid_str, want) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sim_device_info a[SIM_MAX_DEVICES], b[SIM_MAX_DEVICES];
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';

    uint64_t bytes;
    sim_parse_size(s, &bytes);

    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    int n = sim_parse_devices(s, a, SIM_MAX_DEVICES);
    CHECK(n >= -1 && n <= SIM_MAX_DEVICES);
    for (int i = 0; i < n; i++) {
        check_device(&a[i]);
        if (a[i].parent >= 0) {
            const struct sim_device_info *g = &a[a[i].parent];
            CHECK(a[i].parent < i && g->parent < 0 && g->mig_mode);
            CHECK(i >= g->mig_first && i < g->mig_first + g->mig_count);
            CHECK(a[i].pool <= i && a[a[i].pool].parent == a[i].parent && a[i].capacity <= g->capacity);
        } else {
            CHECK(a[i].pool == i && (i == 0 || a[i - 1].parent < 0));
        }
    }
    if (n >= 0) {
        CHECK(sim_parse_devices(s, b, SIM_MAX_DEVICES) == n);
        CHECK(memcmp(a, b, sizeof a) == 0);
    }
    int max = size ? 1 + data[0] % SIM_MAX_DEVICES : 1;
    memset(b, 0, sizeof b);
    int m = sim_parse_devices(s, b, max);
    if (n >= 0 && n <= max)
        CHECK(m == n && memcmp(a, b, sizeof a) == 0);
    else
        CHECK(m == -1);
    free(s);
    return 0;
}
