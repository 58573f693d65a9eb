/* libFuzzer target: any bytes as an ELF image for the symbolizer's pure
 * parsers (src/common/elfsym.c). An answer must be a string inside the
 * input; anything else is for the sanitizers to catch. Built with
 * clang -fsanitize=fuzzer,address,undefined and the common sources, run
 * with tests/fuzz/corpus/elf_symbol/ as its seeds. */
#include "gpumem/elfsym.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_symbol(const uint8_t *data, size_t size, uint64_t vaddr)
{
    const char *name;
    uint64_t off;
    if (gm_elf_symbol_at(data, size, vaddr, &name, &off) != 0)
        return;
    const uint8_t *n = (const uint8_t *)name;
    if (n < data || n >= data + size || !memchr(n, '\0', (size_t)(data + size - n)))
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Addresses: the entry point, the last 8 bytes, and the vaddrs of 32
     * file offsets spread over the input (as a process's mappings give
     * them), so that the seeds' functions are looked up. */
    uint64_t probe, vaddr;
    if (size >= 32) {
        memcpy(&probe, data + 24, sizeof probe); /* e_entry */
        check_symbol(data, size, probe);
    }
    if (size >= 8) {
        memcpy(&probe, data + size - 8, sizeof probe);
        check_symbol(data, size, probe);
    }
    for (uint64_t off = 0; off < size; off += size / 32 + 1)
        if (gm_elf_offset_to_vaddr(data, size, off, &vaddr) == 0)
            check_symbol(data, size, vaddr);
    return 0;
}
