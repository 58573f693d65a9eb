#!/usr/bin/env bash
# ABI of include/gpumem/cuda.h against NVIDIA's cuda.h and cudaTypedefs.h
# (CUDA toolkit at /usr/local/cuda, or $CUDA_INCLUDE). Three checks:
#   1. layout: tests/abi/cuda_abi_list.h compiled against each header (they
#      cannot share a translation unit); sizes, alignments, member offsets,
#      sizes and kinds, enum and macro values must print the same. One
#      "ok abi_cuda_h/GROUP" per struct, enum group, typedefs and macros.
#   2. coverage: every typedef, struct, member, enum constant and numeric
#      macro our header declares is in the list (else FAIL; regenerate with
#      tests/abi/update_cuda_abi_list.sh).
#   3. signatures: each function-pointer typedef of ours (PFN_*, callbacks)
#      is compiled, renamed, next to NVIDIA's of the same name and must be
#      __builtin_types_compatible_p with it.
# Then it proves it can fail: the same checks on a copy of our header with a
# member's type, an enum value and a PFN parameter changed and an unlisted
# struct added must report each of those.
set -u
cd "${GPUMEM_TOP:-$(dirname "$0")/../..}"
CC=${CC:-cc}
cuda_inc=${CUDA_INCLUDE:-/usr/local/cuda/include}
if [ ! -f "$cuda_inc/cuda.h" ]; then
    # Debian has no small package with cuda.h: only nvidia-cuda-dev (a
    # 774 MB download in bookworm), whose CUDA 11.8 (trixie: 12.4) predates
    # the 12.5-13.0 signatures our header declares.
    echo "skip abi_cuda_h: $cuda_inc/cuda.h not found (a CUDA 13 toolkit's headers; set CUDA_INCLUDE)"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
CFLAGS_ABI="-std=c11 -D_GNU_SOURCE -w"

# check INCDIR OUTDIR: the three checks for INCDIR/gpumem/cuda.h.
check() {
    local inc=$1 out=$2 header=$1/gpumem/cuda.h
    mkdir -p "$out"
    # 1. layout (NVIDIA's side with __CUDA_API_VERSION_INTERNAL, which
    #    declares the 32-bit v1 types our header has for the v2000 hooks)
    if ! $CC $CFLAGS_ABI -I"$inc" -Itests/abi -DABI_HEADER='"gpumem/cuda.h"' tests/abi/abi_dump.c \
            -o "$out/ours" 2>"$out/ours.err"; then
        echo "FAIL abi_cuda_h/layout: the list does not compile against our header: $(head -c 600 "$out/ours.err")"
    elif ! $CC $CFLAGS_ABI -D__CUDA_API_VERSION_INTERNAL -I"$cuda_inc" -Itests/abi -DABI_HEADER='<cuda.h>' tests/abi/abi_dump.c \
            -o "$out/nvidia" 2>"$out/nvidia.err"; then
        echo "FAIL abi_cuda_h/layout: NVIDIA's cuda.h lacks names our header declares:" \
             "$(grep -o "error: .*" "$out/nvidia.err" | head -5 | tr '\n' ' ')"
    else
        "$out/ours" >"$out/ours.txt"
        "$out/nvidia" >"$out/nvidia.txt"
        local g a b
        for g in $(cut -f1 "$out/ours.txt" | awk '!seen[$0]++'); do
            a=$(awk -F'\t' -v g="$g" '$1 == g' "$out/ours.txt")
            b=$(awk -F'\t' -v g="$g" '$1 == g' "$out/nvidia.txt")
            if [ "$a" = "$b" ]; then
                echo "ok abi_cuda_h/$g"
            else
                echo "FAIL abi_cuda_h/$g: ours vs NVIDIA's:" \
                     "$(diff <(echo "$a") <(echo "$b") | grep '^[<>]' | tr '\t\n' ' ;')"
            fi
        done
    fi

    # 2. coverage
    cc -fpreprocessed -dD -E -P -x c "$header" | awk -f tests/abi/header_names.awk >"$out/names.txt"
    awk '$2 ~ /^(GPUMEM_|gpumem_)/ { next }
         $1 == "type"   { print "ABI_TYPE(" $2 ")" }
         $1 == "struct" { print "ABI_STRUCT(" $2 ")" }
         $1 == "field"  { print "ABI_FIELD(" $2 "," $3 ")" }
         $1 == "macro"  { print "ABI_MACRO(" $2 ")" }
         $1 == "const"  { print "ABI_ENUM(" $2 ")" }' "$out/names.txt" | sort -u >"$out/declared.txt"
    grep -o 'ABI_[A-Z]*([^)]*)' tests/abi/cuda_abi_list.h | tr -d ' ' |
        sed -E 's/^ABI_ENUM\([^,]*,/ABI_ENUM(/' | sort -u >"$out/listed.txt"
    local missing
    missing=$(comm -23 "$out/declared.txt" "$out/listed.txt")
    if [ -n "$missing" ]; then
        echo "FAIL abi_cuda_h/coverage: our header declares what tests/abi/cuda_abi_list.h does not check" \
             "(run tests/abi/update_cuda_abi_list.sh): $(echo "$missing" | head -20 | tr '\n' ' ')"
    else
        echo "ok abi_cuda_h/coverage ($(wc -l <"$out/declared.txt") declarations)"
    fi

    # 3. signatures of function-pointer typedefs
    cc -fpreprocessed -dD -E -P -x c "$header" | awk -v mode=pfn -f tests/abi/header_names.awk >"$out/pfn.txt"
    {
        echo '#include <stdio.h>'
        echo '#include <cuda.h>'
        echo '#include <cudaTypedefs.h>'
        local name decl
        while IFS=$'\t' read -r name decl; do
            case $name in GPUMEM_* | gpumem_*) continue ;; esac
            # the typedef, renamed; every type it names is NVIDIA's here
            echo "${decl/ $name / GPUMEM_ABI_$name }"
        done <"$out/pfn.txt"
        echo 'int main(void) {'
        while IFS=$'\t' read -r name decl; do
            case $name in GPUMEM_* | gpumem_*) continue ;; esac
            if grep -qw "$name" "$cuda_inc/cuda.h" "$cuda_inc/cudaTypedefs.h"; then
                echo "    printf(\"%s %d\\n\", \"$name\", __builtin_types_compatible_p(GPUMEM_ABI_$name, $name));"
            else
                echo "    printf(\"%s absent\\n\", \"$name\");"
            fi
        done <"$out/pfn.txt"
        echo '    return 0;'
        echo '}'
    } >"$out/pfn.c"
    # __CUDA_API_VERSION_INTERNAL exposes the PFN_*_v2000-style typedefs of
    # superseded signatures that cudaTypedefs.h otherwise hides.
    if ! $CC $CFLAGS_ABI -D__CUDA_API_VERSION_INTERNAL -I"$cuda_inc" "$out/pfn.c" -o "$out/pfn" \
            2>"$out/pfn.err"; then
        echo "FAIL abi_cuda_h/pfn_typedefs: does not compile: $(grep -o 'error: .*' "$out/pfn.err" | head -5 | tr '\n' ' ')"
    else
        local bad
        bad=$("$out/pfn" | awk '$2 != 1 { printf "%s%s", sep, ($2 == "absent" ? $1 " (not declared by NVIDIA)" : $1 " (signature differs)"); sep = "; " }')
        if [ -n "$bad" ]; then
            echo "FAIL abi_cuda_h/pfn_typedefs: $bad"
        else
            echo "ok abi_cuda_h/pfn_typedefs ($("$out/pfn" | wc -l) typedefs match cuda.h/cudaTypedefs.h)"
        fi
    fi
}

check include "$tmp/real"

# Self-test: a header with known ABI mistakes must be caught, each one.
mkdir -p "$tmp/mut/gpumem"
sed -e '0,/size_t Width;/s//unsigned int Width;/' \
    -e 's/CUDA_ERROR_OUT_OF_MEMORY = 2,/CUDA_ERROR_OUT_OF_MEMORY = 3,/' \
    -e 's/\(PFN_cuMemAlloc_v3020)(CUdeviceptr \*dptr, \)size_t bytesize/\1unsigned int bytesize/' \
    -e 's/^#endif/typedef struct CUabiSelftest_st { int a; } CUabiSelftest;\nenum { CU_ABI_SELFTEST = 1 };\n#endif/' \
    include/gpumem/cuda.h >"$tmp/mut/gpumem/cuda.h"
mutated=$(check "$tmp/mut" "$tmp/mutout")
[ -n "${ABI_SHOW_SELFTEST:-}" ] && grep "^FAIL" <<<"$mutated"
expect_caught() {
    local what=$1 pattern=$2
    if grep -q "^FAIL abi_cuda_h/$pattern" <<<"$mutated"; then
        echo "ok abi_cuda_h/selftest_catches_$what"
    else
        echo "FAIL abi_cuda_h/selftest_catches_$what: a header with this mistake passed"
    fi
}
if cmp -s include/gpumem/cuda.h "$tmp/mut/gpumem/cuda.h"; then
    echo "FAIL abi_cuda_h/selftest: could not mutate our header"
else
    expect_caught member_type 'CUDA_ARRAY_DESCRIPTOR:'
    expect_caught enum_value 'CUresult:.*CUDA_ERROR_OUT_OF_MEMORY'
    expect_caught pfn_parameter 'pfn_typedefs:.*PFN_cuMemAlloc_v3020'
    expect_caught unlisted_struct 'coverage:.*ABI_STRUCT(CUabiSelftest)'
    expect_caught unlisted_enum_constant 'coverage:.*ABI_ENUM(CU_ABI_SELFTEST)'
fi
