/* Loaded with dlopen(RTLD_LOCAL): its dependency next_a is in its local
 * scope only, where dlsym(RTLD_DEFAULT) must still find dep_fn. */
#define _GNU_SOURCE
#include <dlfcn.h>
int scope_probe(void);
int scope_probe(void)
{
    int (*f)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "dep_fn");
    return f ? f() : -1;
}
