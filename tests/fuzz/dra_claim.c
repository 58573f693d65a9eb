/* Fuzz target: what gpumem-dra reads from outside (src/dra/): a
 * ResourceClaim from the API server (dra_claim_parse), a Kubernetes
 * quantity (dra_quantity_parse) and its own checkpoint files, which a
 * crash or a person may have left damaged (dra_checkpoint_read). The
 * input is tried as each. Besides "no crash", it checks:
 *  - a parsed claim has 1..16 results, each on this node's pool, with
 *    memory in 1..the GPU's size and the UUID of the device it names;
 *  - a parsed quantity formats and parses back to the same bytes;
 *  - a refused quantity's message quotes it (when short enough).
 * libFuzzer options: -max_len=8192
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dra.h"

#define CHECK(c) ((c) ? (void)0 : (fprintf(stderr, "dra_claim fuzz: %s:%d: %s\n", __FILE__, __LINE__, #c), abort()))

static struct dra_options o;
static struct dra_inventory inv;

static void setup(void)
{
    if (o.unit)
        return;
    snprintf(o.driver, sizeof o.driver, "gpumem.io");
    snprintf(o.node, sizeof o.node, "node-a");
    o.unit = 1ULL << 30;
    const char *tmp = getenv("TMPDIR");
    snprintf(o.state_dir, sizeof o.state_dir, "%s/dra-fuzz-%d", tmp ? tmp : "/tmp", (int)getpid());
    inv.n = 2;
    for (int i = 0; i < 2; i++) {
        inv.gpu[i].index = i;
        snprintf(inv.gpu[i].uuid, sizeof inv.gpu[i].uuid, "gpu-0000000%d-1111-2222-3333-444444444444", i);
        inv.gpu[i].memory = 16ULL << 30;
        inv.gpu[i].healthy = 1;
    }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char err[DRA_ERRLEN];
    setup();
    json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (j) {
        struct dra_claim c;
        if (dra_claim_parse(j, NULL, &o, &inv, &c, err, sizeof err) == 0) {
            CHECK(c.n >= 1 && c.n <= DRA_MAX_GPUS);
            for (int i = 0; i < c.n; i++) {
                CHECK(strcmp(c.res[i].pool, "node-a") == 0);
                CHECK(c.res[i].memory >= 1 && c.res[i].memory <= 16ULL << 30);
                CHECK(strcmp(c.res[i].device, "gpu-0") == 0 || strcmp(c.res[i].device, "gpu-1") == 0);
                CHECK(strcmp(c.res[i].uuid, inv.gpu[c.res[i].device[4] - '0'].uuid) == 0);
            }
        } else {
            CHECK(strlen(err) > 0);
        }
        json_decref(j);
    }
    char s[256];
    if (size < sizeof s) {
        memcpy(s, data, size);
        s[size] = '\0';
        uint64_t v, back;
        char b[48];
        if (dra_quantity_parse(s, &v, err, sizeof err) == 0) {
            CHECK(dra_quantity_parse(dra_quantity_format(v, b, sizeof b), &back, err, sizeof err) == 0);
            CHECK(back == v);
        } else if (size < 60 && !memchr(data, '\0', size)) {
            CHECK(strstr(err, s) != NULL);
        }
    }
    /* The same bytes as a checkpoint file of claim "c". */
    char dir[4200], path[4300];
    snprintf(dir, sizeof dir, "%s/claims", o.state_dir);
    snprintf(path, sizeof path, "%s/c.json", dir);
    static int made;
    if (!made) {
        char cmd[4400];
        snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
        made = system(cmd) == 0;
    }
    FILE *f = fopen(path, "w");
    if (f) {
        fwrite(data, 1, size, f);
        fclose(f);
        struct dra_claim c;
        int r = dra_checkpoint_read(&o, "c", &c, err, sizeof err);
        CHECK(r == -1 || r == 1);
        if (r == 1)
            CHECK(c.n <= DRA_MAX_GPUS && strcmp(c.uid, "c") == 0);
    }
    return 0;
}
