#!/usr/bin/env bash
# ABI of include/gpumem/nvml.h against NVIDIA's nvml.h: $NVML_H, else the
# one tools/fetch-nvidia-driver.sh unpacks from Debian's libnvidia-ml-dev
# ($GPUMEM_NVIDIA_DIR/include, default /var/cache/gpumem/nvidia/include;
# tools/install-deps.sh runs it), else /usr/local/cuda/include/nvml.h or
# /usr/include/nvml.h. The same three checks as abi_cuda_h.sh:
#   1. layout of everything in tests/abi/nvml_abi_list.h, compiled against
#      each header; enum constants and macros an older nvml.h does not
#      declare yet (Debian's is CUDA 12.4's) are left out of the comparison
#      and named in one "skip abi_nvml_h/not_in_header" line;
#   2. coverage: the list checks everything our header declares
#      (NVML_API_VERSION excepted: it names the header's vintage, not ABI);
#   3. signatures: each GPUMEM_NVML_ENTRY_POINTS entry and nvmlErrorString
#      against NVIDIA's prototype of the same name (nvml.h compiled with
#      NVML_NO_UNVERSIONED_FUNC_DEFS, so every exported name is declared as
#      itself);
#   4. the same for the simulator's NVML_SIM_ENTRY rows (sim/nvml/entries.def:
#      what nvidia-smi needs beyond our header).
set -u
cd "${GPUMEM_TOP:-$(dirname "$0")/../..}"
CC=${CC:-cc}
nvml_h=${NVML_H:-}
if [ -z "$nvml_h" ]; then
    for f in "${GPUMEM_NVIDIA_DIR:-/var/cache/gpumem/nvidia}/include/nvml.h" /usr/local/cuda/include/nvml.h \
             /usr/include/nvml.h; do
        [ -f "$f" ] && nvml_h=$f && break
    done
fi
if [ -z "$nvml_h" ] || [ ! -f "$nvml_h" ]; then
    why="no nvml.h found (tools/fetch-nvidia-driver.sh fetches Debian's, or set NVML_H=/path/to/nvml.h)"
    if [ "${GPUMEM_REQUIRE_NVIDIA:-0}" = 1 ]; then echo "FAIL abi_nvml_h: $why"; else echo "skip abi_nvml_h: $why"; fi
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/nv" && cp "$nvml_h" "$tmp/nv/nvml.h"
CFLAGS_ABI="-std=c11 -D_GNU_SOURCE -w"

# 1. layout. Enum constants and macros NVIDIA's header does not declare
# (undeclared identifiers: it is older than ours) are named, and the rest of
# the list is compared without them; a missing type or member still fails.
cp tests/abi/nvml_abi_list.h "$tmp/list.h"
if ! $CC $CFLAGS_ABI -I"$tmp/nv" -Itests/abi -DABI_HEADER='<nvml.h>' -DABI_LIST='"'"$tmp/list.h"'"' \
        tests/abi/abi_dump.c -o "$tmp/nvidia" 2>"$tmp/nvidia.err"; then
    absent=$(grep -o "error: .[A-Za-z0-9_]*. undeclared" "$tmp/nvidia.err" | sed 's/error: .\([A-Za-z0-9_]*\). undeclared/\1/' | sort -u)
    if [ -n "$absent" ]; then
        grep -v -E "^ABI_(ENUM\([A-Za-z0-9_]+, *|MACRO\()($(echo $absent | tr ' ' '|'))\)" tests/abi/nvml_abi_list.h >"$tmp/list.h"
        echo "skip abi_nvml_h/not_in_header: $nvml_h is older than our header, not compared: $(echo $absent)"
    fi
fi
if ! $CC $CFLAGS_ABI -Iinclude -Itests/abi -DABI_HEADER='"gpumem/nvml.h"' -DABI_LIST='"'"$tmp/list.h"'"' \
        tests/abi/abi_dump.c -o "$tmp/ours" 2>"$tmp/ours.err"; then
    echo "FAIL abi_nvml_h/layout: the list does not compile against our header: $(head -c 600 "$tmp/ours.err")"
elif ! $CC $CFLAGS_ABI -I"$tmp/nv" -Itests/abi -DABI_HEADER='<nvml.h>' -DABI_LIST='"'"$tmp/list.h"'"' \
        tests/abi/abi_dump.c -o "$tmp/nvidia" 2>"$tmp/nvidia.err"; then
    echo "FAIL abi_nvml_h/layout: $nvml_h lacks names our header declares:" \
         "$(grep -o "error: .*" "$tmp/nvidia.err" | head -5 | tr '\n' ' ')"
else
    "$tmp/ours" >"$tmp/ours.txt"
    "$tmp/nvidia" >"$tmp/nvidia.txt"
    for g in $(cut -f1 "$tmp/ours.txt" | awk '!seen[$0]++'); do
        a=$(awk -F'\t' -v g="$g" '$1 == g' "$tmp/ours.txt")
        b=$(awk -F'\t' -v g="$g" '$1 == g' "$tmp/nvidia.txt")
        if [ "$a" = "$b" ]; then
            echo "ok abi_nvml_h/$g"
        else
            echo "FAIL abi_nvml_h/$g: ours vs NVIDIA's:" \
                 "$(diff <(echo "$a") <(echo "$b") | grep '^[<>]' | tr '\t\n' ' ;')"
        fi
    done
fi

# 2. coverage
cc -fpreprocessed -dD -E -P -x c include/gpumem/nvml.h | awk -f tests/abi/header_names.awk |
    awk '$2 ~ /^(GPUMEM_|gpumem_)/ || $2 == "NVML_API_VERSION" { next }
         $1 == "type"   { print "ABI_TYPE(" $2 ")" }
         $1 == "struct" { print "ABI_STRUCT(" $2 ")" }
         $1 == "field"  { print "ABI_FIELD(" $2 "," $3 ")" }
         $1 == "macro"  { print "ABI_MACRO(" $2 ")" }
         $1 == "const"  { print "ABI_ENUM(" $2 ")" }' | sort -u >"$tmp/declared.txt"
grep -o 'ABI_[A-Z]*([^)]*)' tests/abi/nvml_abi_list.h | tr -d ' ' |
    sed -E 's/^ABI_ENUM\([^,]*,/ABI_ENUM(/' | sort -u >"$tmp/listed.txt"
missing=$(comm -23 "$tmp/declared.txt" "$tmp/listed.txt")
if [ -n "$missing" ]; then
    echo "FAIL abi_nvml_h/coverage: our header declares what tests/abi/nvml_abi_list.h does not check" \
         "(run tests/abi/update_cuda_abi_list.sh include/gpumem/nvml.h tests/abi/nvml_abi_list.h):" \
         "$(echo "$missing" | head -20 | tr '\n' ' ')"
else
    echo "ok abi_nvml_h/coverage ($(wc -l <"$tmp/declared.txt") declarations)"
fi

# 3. entry-point signatures: our list, expanded to "name<TAB>(params)"
printf '#include "gpumem/nvml.h"\n#define X(name, params) GPUMEM_ABI_EP name params\nGPUMEM_NVML_ENTRY_POINTS(X)\n' |
    $CC -E -P -Iinclude -x c - | sed 's/GPUMEM_ABI_EP/\n/g' | sed -n 's/^ *\(nvml[A-Za-z0-9_]*\) \(.*\)/\1\t\2/p' \
    >"$tmp/entries.txt"
{
    echo '#define NVML_NO_UNVERSIONED_FUNC_DEFS'
    echo '#include <stdio.h>'
    echo '#include <nvml.h>'
    while IFS=$'\t' read -r name params; do
        echo "typedef nvmlReturn_t (*GPUMEM_ABI_$name)$params;"
    done <"$tmp/entries.txt"
    echo 'typedef const char *(*GPUMEM_ABI_nvmlErrorString)(nvmlReturn_t result);'
    echo 'int main(void) {'
    { cut -f1 "$tmp/entries.txt"; echo nvmlErrorString; } | while read -r name; do
        if grep -qE "[ *]$name ?\(" "$nvml_h"; then
            echo "    printf(\"%s %d\\n\", \"$name\", __builtin_types_compatible_p(GPUMEM_ABI_$name, __typeof__(&$name)));"
        else
            echo "    printf(\"%s absent\\n\", \"$name\");"
        fi
    done
    echo '    return 0;'
    echo '}'
} >"$tmp/ep.c"
if ! $CC $CFLAGS_ABI -I"$tmp/nv" "$tmp/ep.c" -o "$tmp/ep" 2>"$tmp/ep.err"; then
    echo "FAIL abi_nvml_h/entry_points: does not compile: $(grep -o 'error: .*' "$tmp/ep.err" | head -5 | tr '\n' ' ')"
else
    bad=$("$tmp/ep" | awk '$2 != 1 { printf "%s%s", sep, ($2 == "absent" ? $1 " (not declared by NVIDIA)" : $1 " (signature differs)"); sep = "; " }')
    if [ -n "$bad" ]; then
        echo "FAIL abi_nvml_h/entry_points: $bad"
    else
        echo "ok abi_nvml_h/entry_points ($("$tmp/ep" | wc -l) match $nvml_h)"
    fi
fi

# 4. the simulator's own entry points (sim/nvml/entries.def, what nvidia-smi
# needs beyond our header): each NVML_SIM_ENTRY against NVIDIA's prototype.
# NVIDIA's enums are passed as unsigned int (compatible types for GCC and
# clang, whose enums without negative constants are unsigned int); the two
# opaque types the simulator spells its own way are renamed first.
sed -n 's/^NVML_SIM_ENTRY(\(nvml[A-Za-z0-9_]*\), *\((.*)\))$/\1\t\2/p' sim/nvml/entries.def |
    sed -e 's/struct nvml_sim_pci_info_ext \*/nvmlPciInfoExt_t */' -e 's/^\(nvmlEventSetCreate\t\)(void \*\*/\1(nvmlEventSet_t */' \
        -e 's/^\(nvmlEventSetFree\t\)(void \*/\1(nvmlEventSet_t /' >"$tmp/sim_entries.txt"
{
    echo '#define NVML_NO_UNVERSIONED_FUNC_DEFS'
    echo '#include <stdio.h>'
    echo '#include <nvml.h>'
    while IFS=$'\t' read -r name params; do
        echo "typedef nvmlReturn_t (*GPUMEM_SIM_$name)$params;"
    done <"$tmp/sim_entries.txt"
    echo 'int main(void) {'
    cut -f1 "$tmp/sim_entries.txt" | while read -r name; do
        echo "    printf(\"%s %d\\n\", \"$name\", __builtin_types_compatible_p(GPUMEM_SIM_$name, __typeof__(&$name)));"
    done
    echo '    return 0;'
    echo '}'
} >"$tmp/sim_ep.c"
if [ "$(wc -l <"$tmp/sim_entries.txt")" -lt 20 ]; then
    echo "FAIL abi_nvml_h/sim_entry_points: could not read sim/nvml/entries.def"
elif ! $CC $CFLAGS_ABI -I"$tmp/nv" "$tmp/sim_ep.c" -o "$tmp/sim_ep" 2>"$tmp/sim_ep.err"; then
    echo "FAIL abi_nvml_h/sim_entry_points: does not compile: $(grep -o 'error: .*' "$tmp/sim_ep.err" | head -5 | tr '\n' ' ')"
else
    bad=$("$tmp/sim_ep" | awk '$2 != 1 { printf "%s%s", sep, $1; sep = ", " }')
    if [ -n "$bad" ]; then
        echo "FAIL abi_nvml_h/sim_entry_points: signature differs from NVIDIA's: $bad"
    else
        echo "ok abi_nvml_h/sim_entry_points ($("$tmp/sim_ep" | wc -l) match $nvml_h)"
    fi
fi

# 5. NVIDIA's per-cgroup limits (include/gpumem/nvml_memlimits.h): declared
# from NVIDIA's documentation, apart from our checked header because the
# nvml.h Debian ships predates them (r615). Compared with NVIDIA's
# declarations (signatures, struct sizes and offsets, the MAX value) once a
# header that has them is given (NVML_H=...); skipped until then.
if ! grep -q 'nvmlDeviceSetMemoryLimits_v1' "$nvml_h"; then
    echo "skip abi_nvml_h/memory_limits: $nvml_h predates nvmlDeviceSetMemoryLimits_v1 (r615); our declarations are from NVIDIA's documentation"
else
    {
        echo '#define NVML_NO_UNVERSIONED_FUNC_DEFS'
        echo '#include <stddef.h>'
        echo '#include <stdio.h>'
        echo '#include <nvml.h>'
        echo '#define GPUMEM_NVML_MEMLIMITS_H'
        sed -n '/^#define NVML_DEVICE_MEMORY_LIMIT_MAX/d; /^typedef struct {/,/^#endif/p' include/gpumem/nvml_memlimits.h |
            sed -e 's/nvmlSetMemoryLimits_v1_t/ours_set_t/g' -e 's/nvmlGetMemoryLimits_v1_t/ours_get_t/g' \
                -e 's/PFN_nvml/ours_PFN_nvml/g' -e '/^#endif/d'
        echo 'int main(void) {'
        echo '    printf("%d %d\n", (int)(sizeof(ours_set_t) == sizeof(nvmlSetMemoryLimits_v1_t) && offsetof(ours_set_t, hardLimit) == offsetof(nvmlSetMemoryLimits_v1_t, hardLimit)),'
        echo '           (int)(sizeof(ours_get_t) == sizeof(nvmlGetMemoryLimits_v1_t) && offsetof(ours_get_t, currentUsed) == offsetof(nvmlGetMemoryLimits_v1_t, currentUsed)));'
        echo '    printf("%d\n", (int)((unsigned long long)NVML_DEVICE_MEMORY_LIMIT_MAX == 0xffffffffffffffffULL));'
        echo '    return 0;'
        echo '}'
    } >"$tmp/ml.c"
    if ! $CC $CFLAGS_ABI -I"$tmp/nv" "$tmp/ml.c" -o "$tmp/ml" 2>"$tmp/ml.err"; then
        echo "FAIL abi_nvml_h/memory_limits: does not compile: $(grep -o 'error: .*' "$tmp/ml.err" | head -5 | tr '\n' ' ')"
    elif [ "$("$tmp/ml" | tr '\n' ' ')" != "1 1 1 " ]; then
        echo "FAIL abi_nvml_h/memory_limits: layouts or NVML_DEVICE_MEMORY_LIMIT_MAX differ from $nvml_h: $("$tmp/ml" | tr '\n' ' ')"
    else
        echo "ok abi_nvml_h/memory_limits"
    fi
fi
