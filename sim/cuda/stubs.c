/* Entry points the simulated driver does not emulate (kernels, modules,
 * graphs, graphics interop, cuGetExportTable ...). They exist so that every
 * lookup a real program makes resolves, and answer CUDA_ERROR_NOT_SUPPORTED:
 * a caller that checks errors fails cleanly instead of crashing.
 *
 * Each stub is declared without parameters: in the x86-64 and AArch64 C ABIs
 * the caller passes and cleans up the arguments, so a function that ignores
 * them is safe to call through any of the real signatures. */
#include "internal.h"

#define SIM_ENTRY_STUB(name, ver, stream, sym) \
    SIM_API CUresult sym(void) { return CUDA_ERROR_NOT_SUPPORTED; }
#define SIM_ENTRY_EMU(name, ver, stream, sym)
#define SIM_ENTRY(name, ver, stream, sym, impl) SIM_ENTRY_##impl(name, ver, stream, sym)
#include "entries.def"
