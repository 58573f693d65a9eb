/* The one size/limit parser: what it accepts, and that every bad value is
 * refused with a message quoting it. */
#include "../testlib.h"
#include "gpumem/size.h"

#include <stdlib.h>

static uint64_t ok_size(const char *s, enum gm_bare_unit bare, int *ok)
{
    uint64_t v = 0;
    char err[256];
    *ok = gm_parse_size(s, bare, &v, err, sizeof err) == 0;
    return v;
}

static int refused_quoting(const char *s, enum gm_bare_unit bare)
{
    uint64_t v;
    char err[256] = "";
    if (gm_parse_size(s, bare, &v, err, sizeof err) == 0)
        return 0;
    return strstr(err, s) != NULL || *s == '\0';
}

TEST(binary_units)
{
    int ok;
    CHECK_EQ_U64(ok_size("4G", GM_BARE_REJECT, &ok), 4ull << 30); CHECK(ok);
    CHECK_EQ_U64(ok_size("4GiB", GM_BARE_REJECT, &ok), 4ull << 30); CHECK(ok);
    CHECK_EQ_U64(ok_size("4gb", GM_BARE_REJECT, &ok), 4ull << 30); CHECK(ok);
    CHECK_EQ_U64(ok_size("4096M", GM_BARE_REJECT, &ok), 4ull << 30); CHECK(ok);
    CHECK_EQ_U64(ok_size("4.5G", GM_BARE_REJECT, &ok), (9ull << 30) / 2); CHECK(ok);
    CHECK_EQ_U64(ok_size("0.5G", GM_BARE_REJECT, &ok), 512ull << 20); CHECK(ok);
    CHECK_EQ_U64(ok_size("1536K", GM_BARE_REJECT, &ok), 1536ull << 10); CHECK(ok);
    CHECK_EQ_U64(ok_size("2T", GM_BARE_REJECT, &ok), 2ull << 40); CHECK(ok);
    CHECK_EQ_U64(ok_size("100B", GM_BARE_REJECT, &ok), 100); CHECK(ok);
}

TEST(bare_numbers_follow_the_variable)
{
    int ok;
    CHECK_EQ_U64(ok_size("4096", GM_BARE_MIB, &ok), 4ull << 30); CHECK(ok);
    CHECK_EQ_U64(ok_size("4096", GM_BARE_BYTES, &ok), 4096); CHECK(ok);
    ok_size("4096", GM_BARE_REJECT, &ok);
    CHECK(!ok);
}

TEST(garbage_is_refused_with_the_value_quoted)
{
    const char *bad[] = {"", "G", "abc", "-1G", "+4G", " 4G", "4G ", "4 G", "0x10G", "010G", "0", "0G", "0.0G",
                         "4.G", ".5G", "4Q", "4GiBB", "4.5B", "1.0000000001G", "99999999999999999999",
                         "16777216T", "17179869184G", "18446744073709551615", "4e3M", "NaN", "inf"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (!refused_quoting(bad[i], GM_BARE_BYTES)) {
            printf("FAIL garbage_is_refused_with_the_value_quoted: \"%s\" accepted or not quoted\n", bad[i]);
            test_current_failed = 1;
            return;
        }
    }
}

TEST(limit_specs)
{
    struct gm_limit_spec s;
    char err[256];
    CHECK(gm_parse_limit_spec("4G", GM_BARE_REJECT, &s, err, sizeof err) == 0);
    CHECK_EQ_INT(s.n, 1);
    CHECK_EQ_INT(s.term[0].kind, GM_TERM_ALL);
    CHECK(gm_parse_limit_spec("0=4G,1=8G", GM_BARE_REJECT, &s, err, sizeof err) == 0);
    CHECK_EQ_INT(s.n, 2);
    CHECK_EQ_INT(s.term[1].kind, GM_TERM_INDEX);
    CHECK_EQ_INT(s.term[1].index, 1);
    CHECK_EQ_U64(s.term[1].bytes, 8ull << 30);
    CHECK(gm_parse_limit_spec("GPU-0A1B2C3D-0000-1111-2222-333344445555=2G", GM_BARE_REJECT, &s, err, sizeof err) == 0);
    CHECK_EQ_INT(s.term[0].kind, GM_TERM_UUID);
    CHECK_STR(s.term[0].uuid, "GPU-0a1b2c3d-0000-1111-2222-333344445555");
    /* A MIG device by its MIG UUID (the prefix keeps its case, the hex is lowered). */
    CHECK(gm_parse_limit_spec("MIG-0A1B2C3D-0000-1111-2222-333344445555=2G,4G", GM_BARE_REJECT, &s, err, sizeof err) == 0);
    CHECK_EQ_INT(s.term[0].kind, GM_TERM_UUID);
    CHECK_STR(s.term[0].uuid, "MIG-0a1b2c3d-0000-1111-2222-333344445555");
}

TEST(bad_limit_specs)
{
    const char *bad[] = {"0=4G,0=8G", "x=4G", "01=4G", "=4G", "0=", "GPU-123=4G", "4G,", ",4G", "0=4G;1=2G",
                         "-1=4G", "0=-4G", "MIG-123=4G", "MIG-GPU-0a1b2c3d-0000-1111-2222-333344445555/1/0=4G"};
    struct gm_limit_spec s;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "";
        if (gm_parse_limit_spec(bad[i], GM_BARE_REJECT, &s, err, sizeof err) == 0 || !strstr(err, bad[i])) {
            printf("FAIL bad_limit_specs: \"%s\" accepted or not quoted (%s)\n", bad[i], err);
            test_current_failed = 1;
            return;
        }
    }
}

static const char *fake_env(const char *name, void *ctx)
{
    const char **kv = ctx;
    for (; kv[0]; kv += 2)
        if (strcmp(kv[0], name) == 0)
            return kv[1];
    return NULL;
}

TEST(environment_variables)
{
    struct gm_limit_spec s;
    char err[256];
    const char *nvidia[] = {"NVIDIA_GPU_MEMORY_LIMIT", "4096", NULL};
    CHECK_EQ_INT(gm_limit_from_env(fake_env, nvidia, &s, err, sizeof err), 1);
    CHECK_EQ_U64(s.term[0].bytes, 4ull << 30);
    const char *plural[] = {"NVIDIA_GPU_MEMORY_LIMITS", "2048", NULL};
    CHECK_EQ_INT(gm_limit_from_env(fake_env, plural, &s, err, sizeof err), 1);
    CHECK_EQ_U64(s.term[0].bytes, 2ull << 30);
    const char *ours_first[] = {"NVIDIA_GPU_MEMORY_LIMIT", "4096", "GPUMEM_LIMIT", "1G", NULL};
    CHECK_EQ_INT(gm_limit_from_env(fake_env, ours_first, &s, err, sizeof err), 1);
    CHECK_EQ_U64(s.term[0].bytes, 1ull << 30);
    const char *hami[] = {"CUDA_DEVICE_MEMORY_LIMIT_1", "1024m", NULL};
    CHECK_EQ_INT(gm_limit_from_env(fake_env, hami, &s, err, sizeof err), 1);
    CHECK_EQ_INT(s.term[0].kind, GM_TERM_INDEX);
    CHECK_EQ_INT(s.term[0].index, 1);
    const char *bad[] = {"NVIDIA_GPU_MEMORY_LIMIT", "4096MiB!", NULL};
    CHECK_EQ_INT(gm_limit_from_env(fake_env, bad, &s, err, sizeof err), -1);
    CHECK(strstr(err, "NVIDIA_GPU_MEMORY_LIMIT=4096MiB!") != NULL);
    const char *none[] = {NULL};
    CHECK_EQ_INT(gm_limit_from_env(fake_env, none, &s, err, sizeof err), 0);
}

TEST(format)
{
    char b[32];
    CHECK_STR(gm_format_size(4ull << 30, b, sizeof b), "4 GiB");
    CHECK_STR(gm_format_size(1536ull << 20, b, sizeof b), "1.50 GiB");
    CHECK_STR(gm_format_size(100, b, sizeof b), "100 B");
    CHECK_STR(gm_format_size(GM_UNLIMITED, b, sizeof b), "unlimited");
    /* The unit it prints past PiB is one the parser takes. */
    CHECK_STR(gm_format_size(2ull << 60, b, sizeof b), "2 EiB");
    int ok;
    CHECK_EQ_U64(ok_size("2EiB", GM_BARE_REJECT, &ok), 2ull << 60); CHECK(ok);
    ok_size("16E", GM_BARE_REJECT, &ok); /* 2^64: too big */
    CHECK(!ok);
}

int main(void)
{
    RUN(binary_units);
    RUN(bare_numbers_follow_the_variable);
    RUN(garbage_is_refused_with_the_value_quoted);
    RUN(limit_specs);
    RUN(bad_limit_specs);
    RUN(environment_variables);
    RUN(format);
    return test_summary();
}
