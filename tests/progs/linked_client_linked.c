/* Links libcuda directly (-lcuda), as many programs do: the shim must
 * enforce through plain symbol interposition. Allocates A MiB, then B MiB,
 * and prints the second result code. */
#include "gpumem/cuda.h"

#include <stdio.h>
#include <stdlib.h>

CUresult cuInit(unsigned int);
CUresult cuDevicePrimaryCtxRetain(CUcontext *, CUdevice);
CUresult cuCtxSetCurrent(CUcontext);
CUresult cuMemAlloc_v2(CUdeviceptr *, size_t);

int main(int argc, char **argv)
{
    CUcontext c;
    CUdeviceptr a, b;
    if (argc < 3 || cuInit(0) || cuDevicePrimaryCtxRetain(&c, 0) || cuCtxSetCurrent(c))
        return 1;
    printf("first=%d\n", cuMemAlloc_v2(&a, (size_t)atoi(argv[1]) << 20));
    printf("second=%d\n", cuMemAlloc_v2(&b, (size_t)atoi(argv[2]) << 20));
    return 0;
}
