/* Fuzz target: the policy's files in the state directory, which anyone who
 * can write there may have written: queue entries (gm_queue_parse,
 * src/common/admission.c), the daemon's reclaim records (pl_reclaim_parse,
 * src/daemon/policy.c), and the creator-side parsers of GPUMEM_PRIORITY,
 * GPUMEM_OOM and wait timeouts (policy_env.c). Besides "no crash", it checks
 * that a parsed entry holds a valid group name and pid, at most
 * GM_MAX_DEVICES requests with terminated UUIDs, a priority in range, and
 * that an OOM wait never exceeds a day.
 * libFuzzer options: -max_len=2048
 */
#include "gpumem/policy.h"
#include "../../src/daemon/policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) ((c) ? (void)0 : (fprintf(stderr, "policy fuzz: %s:%d: %s\n", __FILE__, __LINE__, #c), abort()))

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t n);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t n)
{
    char *s = malloc(n + 1);
    if (!s)
        return 0;
    memcpy(s, data, n);
    s[n] = '\0';
    struct gm_queue_entry e;
    if (gm_queue_parse(s, &e) == 0) {
        CHECK(gm_valid_group_name(e.name) == 0 && e.pid > 0);
        CHECK(e.nreq <= GM_MAX_DEVICES);
        for (uint32_t i = 0; i < e.nreq; i++)
            CHECK(memchr(e.req[i].uuid, '\0', GM_UUID_LEN) != NULL);
        CHECK(e.priority >= GM_PRIO_MIN && e.priority <= GM_PRIO_MAX);
        CHECK(memchr(e.why, '\0', sizeof e.why) != NULL);
    }
    struct pl_reclaim r;
    if (pl_reclaim_parse(s, &r) == 0)
        CHECK(gm_valid_group_name(r.victim) == 0 && memchr(r.uuid, '\0', sizeof r.uuid));
    char err[64];
    int32_t p;
    uint32_t ms;
    double t;
    if (gm_parse_priority(s, &p, err, sizeof err) == 0)
        CHECK(p >= GM_PRIO_MIN && p <= GM_PRIO_MAX);
    if (gm_parse_oom(s, &ms, err, sizeof err) == 0)
        CHECK(ms <= 86400u * 1000u);
    if (gm_parse_timeout(s, &t, err, sizeof err) == 0)
        CHECK(t == -1 || (t >= 0 && t <= 30 * 86400.0));
    free(s);
    return 0;
}
