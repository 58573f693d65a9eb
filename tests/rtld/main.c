#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
int next_fn(void);
int main(int argc, char **argv)
{
    printf("next_fn=%d\n", next_fn());
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    int (*probe)(void) = h ? (int (*)(void))dlsym(h, "scope_probe") : NULL;
    printf("scope_probe=%d\n", probe ? probe() : -2);
    /* A handle lookup of an ordinary symbol is untouched too. */
    printf("handle_lookup=%s\n", h && dlsym(h, "scope_probe") == (void *)probe ? "same" : "different");
    (void)argc;
    return 0;
}
