/* An interposer like many in real processes (profilers, allocators): it
 * wraps next_fn and finds the wrapped one with dlsym(RTLD_NEXT). If the
 * shim's dlsym resolved RTLD_NEXT relative to itself, this would find
 * itself again and recurse. */
#define _GNU_SOURCE
#include <dlfcn.h>
int next_fn(void);
int next_fn(void)
{
    static int depth;
    if (depth++ > 3)
        return -1000; /* found ourselves again: the bug */
    int (*real)(void) = (int (*)(void))dlsym(RTLD_NEXT, "next_fn");
    int v = real ? 10 + real() : -1;
    depth--;
    return v;
}
