#!/usr/bin/env bash
# The simulated libnvidia-ml.so.1 exports exactly the entry points of
# GPUMEM_NVML_ENTRY_POINTS (include/gpumem/nvml.h), those of
# sim/nvml/entries.def, the two of include/gpumem/nvml_memlimits.h,
# nvmlErrorString and nvmlInternalGetExportTable, as
# listed in sim/nvml/libnvidia-ml.map: nothing internal leaks (the sim_*
# state functions stay hidden) and nothing is missing.
set -u
cd "${GPUMEM_TOP:-$(dirname "$0")/../..}"
BUILD=${BUILD:-build}
lib=$BUILD/sim/libnvidia-ml.so.1
if [ ! -f "$lib" ]; then
    echo "FAIL nvml_exports: $lib not built"
    exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
{
    printf '#include "gpumem/nvml.h"\n#define X(name, params) name\nGPUMEM_EXPORTS_BEGIN GPUMEM_NVML_ENTRY_POINTS(X)\n' |
        cc -E -P -Iinclude -x c - | sed -n '/GPUMEM_EXPORTS_BEGIN/,$p' | tr ' ' '\n' | grep '^nvml'
    echo nvmlErrorString
    echo nvmlInternalGetExportTable
    grep -oE '^NVML_SIM_(ENTRY|STUB)\(nvml[A-Za-z0-9_]+' sim/nvml/entries.def | sed 's/.*(//'
    # NVIDIA's per-cgroup limits, declared apart (newer than the checked nvml.h)
    grep -oE 'PFN_nvml[A-Za-z0-9_]+' include/gpumem/nvml_memlimits.h | sed 's/^PFN_//'
} | sort -u >"$tmp/header"
grep -oE '^[[:space:]]+nvml[A-Za-z0-9_]+;' sim/nvml/libnvidia-ml.map | tr -d ' ;' | sort -u >"$tmp/map"
nm -D --defined-only "$lib" | awk '$2 ~ /^[TtWwDdBbRrVvi]$/ { print $3 }' | sed 's/@.*//' | sort -u >"$tmp/lib"

if diff -q "$tmp/header" "$tmp/map" >/dev/null; then
    echo "ok nvml_exports_map_matches_header"
else
    echo "FAIL nvml_exports_map_matches_header: $(diff "$tmp/header" "$tmp/map" | grep '^[<>]' | tr '\n' ' ')"
fi
if diff -q "$tmp/header" "$tmp/lib" >/dev/null; then
    echo "ok nvml_exports_exactly_the_entry_points ($(wc -l <"$tmp/lib") symbols)"
else
    echo "FAIL nvml_exports_exactly_the_entry_points: < header only, > library only:" \
         "$(diff "$tmp/header" "$tmp/lib" | grep '^[<>]' | tr '\n' ' ')"
fi
# NVIDIA's library has unversioned symbols; a version node here would make
# binaries linked against ours record a version the real one lacks.
if readelf -V "$lib" 2>/dev/null | grep -q 'Version definition'; then
    echo "FAIL nvml_exports_unversioned: $lib defines symbol versions"
else
    echo "ok nvml_exports_unversioned"
fi
if [ "$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')" = libnvidia-ml.so.1 ]; then
    echo "ok nvml_exports_soname"
else
    echo "FAIL nvml_exports_soname: soname is not libnvidia-ml.so.1"
fi
