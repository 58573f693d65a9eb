/* Minimal unit-test harness: one line per case in the protocol tests/run.sh
 * counts ("ok NAME", "FAIL NAME: why", "skip NAME: why").
 *
 *   TEST(parses_units) { CHECK(x == 1); CHECK_EQ_U64(a, b); }
 *   int main(void) { RUN(parses_units); return test_summary(); }
 */
#ifndef GPUMEM_TESTLIB_H
#define GPUMEM_TESTLIB_H
#include <stdio.h>
#include <stdint.h>
#include <string.h>

static int test_failed_cases;
static int test_current_failed;
static const char *test_current_name;

#define TEST(name) static void test_##name(void)

#define CHECK(cond) do { if (!(cond)) { \
    printf("FAIL %s: %s:%d: %s\n", test_current_name, __FILE__, __LINE__, #cond); \
    test_current_failed = 1; return; } } while (0)

#define CHECK_EQ_U64(a, b) do { unsigned long long a_ = (a), b_ = (b); if (a_ != b_) { \
    printf("FAIL %s: %s:%d: %s == %llu, expected %llu\n", test_current_name, __FILE__, __LINE__, #a, a_, b_); \
    test_current_failed = 1; return; } } while (0)

#define CHECK_EQ_INT(a, b) do { long long a_ = (a), b_ = (b); if (a_ != b_) { \
    printf("FAIL %s: %s:%d: %s == %lld, expected %lld\n", test_current_name, __FILE__, __LINE__, #a, a_, b_); \
    test_current_failed = 1; return; } } while (0)

#define CHECK_STR(a, b) do { const char *a_ = (a), *b_ = (b); if (!a_ || strcmp(a_, b_) != 0) { \
    printf("FAIL %s: %s:%d: %s == \"%s\", expected \"%s\"\n", test_current_name, __FILE__, __LINE__, #a, a_ ? a_ : "(null)", b_); \
    test_current_failed = 1; return; } } while (0)

#define SKIP(why) do { printf("skip %s: %s\n", test_current_name, why); test_current_failed = -1; return; } while (0)

#define RUN(name) do { test_current_name = #name; test_current_failed = 0; fflush(stdout); \
    test_##name(); \
    if (test_current_failed == 0) printf("ok %s\n", #name); \
    else if (test_current_failed > 0) test_failed_cases++; \
    fflush(stdout); } while (0)

static inline int test_summary(void) { return test_failed_cases ? 1 : 0; }

#endif
