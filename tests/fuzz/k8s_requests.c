/* Fuzz target: what gpumem-k8s parses of what reaches its socket and its
 * directory, through the plugin's own functions on a fixed node of two
 * GPUs (16 and 8 units of 1 GiB):
 *
 *   byte 0 % 4 == 0  an AllocateRequest (protobuf): gk_unpack, then each
 *                    container's IDs through kp_grant_from_ids, memory units
 *   byte 0 % 4 == 1  the same for whole-GPU IDs
 *   byte 0 % 4 == 2  a PreferredAllocationRequest: kp_prefer_units
 *   byte 0 % 4 == 3  the kubelet's checkpoint (JSON, base64 protobuf inside):
 *                    kp_checkpoint_groups
 *
 * Checks: a grant has a GPU at most once, its bytes are the units times the
 * unit (or the whole GPU), and sum to what was asked; a refusal says why; a
 * preferred answer has exactly allocation_size IDs, each one available,
 * none twice, and includes every must-include ID; the checkpoint's group
 * list is a well-formed NUL-separated list inside its buffer.
 * Extra sources and libraries: FUZZ_EXTRA_k8s_requests in the Makefile.
 *
 * libFuzzer options: -max_len=16384 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

#define CHECK(c) ((c) ? (void)0 : (fprintf(stderr, "k8s_requests fuzz: %s:%d: %s\n", __FILE__, __LINE__, #c), abort()))

#define UNIT (1ull << 30)
static struct kp_gpus gs = {
    .n = 2,
    .g = {
        {.uuid = "GPU-fe90dcc9-2f3b-45aa-aeb9-854a9f37e853", .total = 16 * UNIT, .units = 16, .healthy = 1},
        {.uuid = "GPU-8f4d1220-38e7-4f4a-bbc0-1d1b3cb3293e", .total = 8 * UNIT, .units = 8, .healthy = 0},
    },
};

static void allocate(const uint8_t *d, size_t n, int whole)
{
    V1beta1__AllocateRequest *q = (V1beta1__AllocateRequest *)gk_unpack(&v1beta1__allocate_request__descriptor, d, n);
    if (!q)
        return;
    for (size_t c = 0; c < q->n_container_requests; c++) {
        const V1beta1__ContainerAllocateRequest *cr = q->container_requests[c];
        struct kp_grant g;
        char err[512] = "";
        int rc = kp_grant_from_ids(&gs, UNIT, whole, cr->devices_ids, cr->n_devices_ids, &g, err, sizeof err);
        if (rc < 0) {
            CHECK(err[0] != '\0');
            continue;
        }
        CHECK(rc == 0 && g.ngpu >= 1 && g.ngpu <= gs.n);
        uint64_t sum = 0;
        for (int i = 0; i < g.ngpu; i++) {
            for (int j = 0; j < i; j++)
                CHECK(g.gpu[i] != g.gpu[j]);
            CHECK(gs.g[g.gpu[i]].healthy);
            CHECK(whole ? g.bytes[i] == gs.g[g.gpu[i]].total : g.bytes[i] % UNIT == 0 && g.bytes[i] > 0);
            sum += whole ? 1 : g.bytes[i] / UNIT;
        }
        CHECK(sum == cr->n_devices_ids);
    }
    protobuf_c_message_free_unpacked(&q->base, NULL);
}

static void prefer(const uint8_t *d, size_t n)
{
    V1beta1__PreferredAllocationRequest *q =
        (V1beta1__PreferredAllocationRequest *)gk_unpack(&v1beta1__preferred_allocation_request__descriptor, d, n);
    if (!q)
        return;
    for (size_t c = 0; c < q->n_container_requests; c++) {
        const V1beta1__ContainerPreferredAllocationRequest *r = q->container_requests[c];
        const char **out = calloc(r->n_available_deviceids + 1, sizeof *out);
        size_t got = 0;
        char err[512] = "";
        CHECK(out);
        if (kp_prefer_units(&gs, r->available_deviceids, r->n_available_deviceids, r->must_include_deviceids,
                            r->n_must_include_deviceids, r->allocation_size, out, &got, err, sizeof err) < 0) {
            CHECK(err[0] != '\0');
        } else {
            CHECK(got == (size_t)r->allocation_size);
            for (size_t i = 0; i < got; i++) {
                int found = 0;
                for (size_t k = 0; k < r->n_available_deviceids; k++)
                    found |= out[i] == r->available_deviceids[k];
                CHECK(found);
                for (size_t j = 0; j < i; j++)
                    CHECK(strcmp(out[i], out[j]) != 0);
            }
            for (size_t m = 0; m < r->n_must_include_deviceids; m++) {
                int found = 0;
                for (size_t i = 0; i < got; i++)
                    found |= strcmp(out[i], r->must_include_deviceids[m]) == 0;
                CHECK(found);
            }
        }
        free(out);
    }
    protobuf_c_message_free_unpacked(&q->base, NULL);
}

static void checkpoint(const uint8_t *d, size_t n)
{
    static char buf[4096];
    memset(buf, 0x5a, sizeof buf);
    if (kp_checkpoint_groups((const char *)d, n, buf, sizeof buf) < 0)
        return;
    /* Names, each NUL-terminated, then an empty one, within the buffer. */
    size_t i = 0;
    while (buf[i]) {
        size_t l = strnlen(buf + i, sizeof buf - i);
        CHECK(i + l < sizeof buf);
        i += l + 1;
        CHECK(i < sizeof buf);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] % 4) {
    case 0: allocate(data + 1, size - 1, 0); break;
    case 1: allocate(data + 1, size - 1, 1); break;
    case 2: prefer(data + 1, size - 1); break;
    default: checkpoint(data + 1, size - 1); break;
    }
    return 0;
}
