/* Prints the ABI facts an entry list names (ABI_LIST, default
 * tests/abi/cuda_abi_list.h; tests/abi/nvml_abi_list.h for NVML), for
 * whichever header ABI_HEADER is: tests/integration/abi_cuda_h.sh builds this once against
 * include/gpumem/cuda.h and once against NVIDIA's cuda.h (the two declare
 * the same names, so they cannot share a translation unit) and diffs the
 * output. One line per fact: GROUP<TAB>ITEM<TAB>VALUE. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include ABI_HEADER
#ifndef ABI_LIST
#define ABI_LIST "cuda_abi_list.h"
#endif

/* The scalar kind of a member, so int vs unsigned or long vs long long
 * differences show even where sizes agree. Enums read as the integer type
 * the compiler gives them; arrays decay and read as "other". */
#define ABI_KIND(x) _Generic((x), \
    char: "char", signed char: "schar", unsigned char: "uchar", \
    short: "short", unsigned short: "ushort", int: "int", unsigned int: "uint", \
    long: "long", unsigned long: "ulong", long long: "llong", unsigned long long: "ullong", \
    float: "float", double: "double", default: "other")

#define ABI_TYPE(T) printf("typedefs\t%s\tsize %zu align %zu\n", #T, sizeof(T), _Alignof(T));
#define ABI_STRUCT(T) printf("%s\t(struct)\tsize %zu align %zu\n", #T, sizeof(T), _Alignof(T));
#define ABI_FIELD(T, m) printf("%s\t%s\toffset %zu size %zu %s\n", #T, #m, offsetof(T, m), \
                               sizeof(((T *)0)->m), ABI_KIND(((T *)0)->m));
#define ABI_ENUM(G, E) printf("%s\t%s\t%lld\n", #G, #E, (long long)(E));
#define ABI_MACRO(M) printf("macros\t%s\t%llu\n", #M, (unsigned long long)(uintptr_t)(M));

int main(void)
{
#include ABI_LIST
    return 0;
}
