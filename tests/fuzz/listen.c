/* Fuzz target: `gpumem daemon --listen ADDR:PORT` (dm_parse_listen in
 * src/daemon/http.c). An accepted address is IPv4 (ADDR empty, localhost or
 * dotted) or IPv6 in brackets, with a port of 0 to 65535, and prints back
 * to a spec that parses to the same socket address; a refusal quotes the
 * spec and fits the buffer it is given, however small.
 * Extra sources: FUZZ_EXTRA_listen in the Makefile (the daemon's sources,
 * which http.c needs to link).
 *
 * libFuzzer options: -max_len=512 */
#include "../../src/daemon/daemon.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) ((c) ? (void)0 : (fprintf(stderr, "listen fuzz: %s:%d: %s\n", __FILE__, __LINE__, #c), abort()))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *spec = malloc(size + 1);
    memcpy(spec, data, size);
    spec[size] = '\0';
    struct sockaddr_storage ss;
    socklen_t len = 0;
    char err[1024] = "";
    if (dm_parse_listen(spec, &ss, &len, err, sizeof err) < 0) {
        size_t n = strlen(spec);
        CHECK(strncmp(err, "--listen \"", 10) == 0);
        CHECK(n > 900 || (strncmp(err + 10, spec, n) == 0 && err[10 + n] == '"'));
        size_t small = 1 + (size ? data[size - 1] % 32 : 0);
        char *e = malloc(small);
        memset(e, 'x', small);
        CHECK(dm_parse_listen(spec, &ss, &len, e, small) < 0 && memchr(e, '\0', small));
        free(e);
        free(spec);
        return 0;
    }
    char addr[INET6_ADDRSTRLEN], again[128];
    unsigned port;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)&ss;
        CHECK(len == sizeof *v4 && spec[0] != '[');
        CHECK(inet_ntop(AF_INET, &v4->sin_addr, addr, sizeof addr));
        port = ntohs(v4->sin_port);
        snprintf(again, sizeof again, "%s:%u", addr, port);
    } else {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&ss;
        CHECK(ss.ss_family == AF_INET6 && len == sizeof *v6 && spec[0] == '[');
        CHECK(inet_ntop(AF_INET6, &v6->sin6_addr, addr, sizeof addr));
        port = ntohs(v6->sin6_port);
        snprintf(again, sizeof again, "[%s]:%u", addr, port);
    }
    /* The port is the spec's last digits. */
    const char *colon = strrchr(spec, ':');
    CHECK(colon && strtoul(colon + 1, NULL, 10) == port);
    struct sockaddr_storage ss2;
    socklen_t len2 = 0;
    CHECK(dm_parse_listen(again, &ss2, &len2, err, sizeof err) == 0);
    CHECK(len2 == len && memcmp(&ss, &ss2, len) == 0);
    free(spec);
    return 0;
}
