#!/usr/bin/env bash
# The shim against NVIDIA's real driver library (Debian's libcuda1 and
# libnvidia-ml1, unpacked by tools/fetch-nvidia-driver.sh into
# $GPUMEM_NVIDIA_DIR, default /var/cache/gpumem/nvidia; no GPU needed: the
# driver answers cuGetProcAddress before cuInit). tests/progs/lookup_replay
# replays every lookup cudart 13 makes (tests/data/cudart13-driver-lookups.txt),
# then one lookup per hooked.def entry and per function the shim calls
# itself, three ways: bare, under the shim in a group, under the shim
# outside any group. Checks:
#   - result and status of every lookup are the driver's own, under the shim;
#   - in a group, where the driver hands out one of hooked.def's symbols the
#     application gets the shim's hook of that very symbol, and everywhere
#     else the driver's own pointer; outside a group, the driver's own
#     pointer for all but cuGetProcAddress itself;
#   - every name the shim resolves by name at start-up (hooked.def, the
#     functions it calls itself in init.c, nvml_hooked.def) is exported by
#     the real libraries, or the shim's debug log says it was resolved
#     through cuGetProcAddress, or is newer than the driver.
# Skips when the libraries are not there, unless GPUMEM_REQUIRE_NVIDIA=1 (CI),
# which makes that a failure.
. tests/integration/lib.sh
NV=${GPUMEM_NVIDIA_DIR:-/var/cache/gpumem/nvidia}
LIST=tests/data/cudart13-driver-lookups.txt
REPLAY="$APP_PROGS/lookup_replay"
if [ ! -e "$NV/lib/libcuda.so.1" ] || [ ! -e "$NV/lib/libnvidia-ml.so.1" ]; then
    why="NVIDIA's libcuda.so.1/libnvidia-ml.so.1 not in $NV/lib (tools/fetch-nvidia-driver.sh fetches them)"
    if [ "${GPUMEM_REQUIRE_NVIDIA:-0}" = 1 ]; then fail realdrv "$why"; else skip realdrv "$why"; fi
    exit 0
fi
pkgs=$(awk '{ printf "%s%s %s%s", sep, $1, $2, ($3 ? " (" $3 ")" : ""); sep = ", " }' "$NV/VERSION" 2>/dev/null)

# One lookup per hooked.def entry ("name ver=V flags=F", with the symbol it
# stands for in $T/hooked.syms) and per function init.c resolves with
# resolve(h, "symbol", "name", version, per_thread).
{
    sed -n 's/^HOOK(\([A-Za-z0-9_]*\), *\([A-Za-z0-9_]*\), *\([0-9]*\), *\([01]\)).*/\1 \2 \3 \4/p' src/shim/hooked.def
    grep -o 'resolve(h, "[A-Za-z0-9_]*", "[A-Za-z0-9_]*", [0-9]*, [01])' src/shim/init.c |
        sed 's/resolve(h, "\([^"]*\)", "\([^"]*\)", \([0-9]*\), \([01]\))/\1 \2 \3 \4/'
} >"$T/resolved.txt"
awk '{ print $2 " ver=" $3 " flags=" ($4 == 1 ? 2 : 0) }' "$T/resolved.txt" >"$T/own-lookups.txt"
sed -n 's/^HOOK(\([A-Za-z0-9_]*\),.*/\1/p' src/shim/hooked.def >"$T/hooked.syms"
sed -n 's/^HOOK([A-Za-z0-9_]*, *\([A-Za-z0-9_]*\),.*/\1/p' src/shim/hooked.def | sort -u >"$T/hooked.names"
if [ "$(wc -l <"$T/hooked.syms")" -lt 30 ] || [ "$(wc -l <"$T/resolved.txt")" -le "$(wc -l <"$T/hooked.syms")" ]; then
    fail realdrv/parse_sources "could not read hooked.def or init.c's resolve() calls"
fi

"$GPUMEM" run --sim --limit 4G --name rd --keep -- true
replay() { # MODE LIST OUT: MODE = bare, group or nogroup
    local mode=$1 list=$2 out=$3
    case $mode in
    bare) LD_PRELOAD="$ASAN_RT" LD_LIBRARY_PATH="$NV/lib" "$REPLAY" "$list" >"$out" 2>"$out.err" ;;
    group) GPUMEM_LOG=debug GPUMEM_GROUP_DIR="$GPUMEM_STATE_DIR/rd" LD_PRELOAD="$SHIM_PRELOAD" \
        LD_LIBRARY_PATH="$NV/lib" "$REPLAY" "$list" >"$out" 2>"$out.err" ;;
    nogroup) env -u GPUMEM_GROUP_DIR LD_PRELOAD="$SHIM_PRELOAD" LD_LIBRARY_PATH="$NV/lib" \
        "$REPLAY" "$list" >"$out" 2>"$out.err" ;;
    esac
}

# compare NAME LIST: the three replays of LIST, compared.
compare() {
    local name=$1 list=$2 m
    for m in bare group nogroup; do
        if ! replay $m "$list" "$T/$name.$m" || [ ! -s "$T/$name.$m" ]; then
            fail "realdrv_lookups/$name" "lookup_replay ($m) failed: $(head -c 400 "$T/$name.$m.err" | tr '\n' '|')"
            return
        fi
    done
    local want n
    want=$(grep -c '^[A-Za-z0-9_]* ver=[0-9]* flags=[0-9]*$' "$list")
    n=$(grep -vc '^#' "$T/$name.bare")
    if [ "$n" != "$want" ]; then
        fail "realdrv_lookups/$name" "replayed $n of $want lookups"
        return
    fi
    if [ "$name" = cudart13 ]; then
        version=$(sed -n 's/^# driver .* version \([0-9]*\) .*/\1/p' "$T/$name.bare")
        ok "realdrv_lookups/driver_loads ($pkgs; cuDriverGetVersion $version; of $n lookups $(grep -c ' driver:cu' "$T/$name.bare") found at a named export, $(grep -c ' driver:+' "$T/$name.bare") elsewhere, $(grep -c ' null$' "$T/$name.bare") not found)"
    fi
    # Line by line: NAME VER FLAGS rc=R status=S WHERE, in the same order.
    local diffs
    diffs=$(paste -d'\t' <(grep -v '^#' "$T/$name.bare") <(grep -v '^#' "$T/$name.group") <(grep -v '^#' "$T/$name.nogroup") |
        awk -F'\t' -v hs="$T/hooked.syms" -v hn="$T/hooked.names" -v out="$T/$name.counts" '
            BEGIN { while ((getline l < hs) > 0) sym[l] = 1; while ((getline l < hn) > 0) nm[l] = 1 }
            {
                split($1, b, " "); split($2, g, " "); split($3, o, " ")
                key = b[1] "@" b[2] "/" b[3]
                if (b[1] != g[1] || b[2] != g[2] || b[3] != g[3] || b[1] != o[1]) { print "order " key; next }
                if (b[4] != g[4] || b[5] != g[5]) print "status " key ": bare " b[4] " " b[5] ", shim " g[4] " " g[5]
                if (b[4] != o[4] || b[5] != o[5]) print "status(no group) " key ": bare " b[4] " " b[5] ", shim " o[4] " " o[5]
                w = b[6]; s = substr(w, 8)
                if (w ~ /^driver:/ && (s in sym)) want = "shim:" s
                else if (w ~ /^driver:\+/ && (b[1] in nm)) want = "shim:*"
                else want = w
                if (want == "shim:*" ? g[6] !~ /^shim:/ : g[6] != want) print "pointer " key ": bare " w ", shim " g[6] ", want " want
                if (want ~ /^shim:/) hooked++
                if (b[1] in nm && w != "null") { relevant++; if (g[6] ~ /^shim:/) relevant_hooked++ }
                wo = (b[1] == "cuGetProcAddress" && w ~ /^driver:/) ? "shim:" s : w
                if (o[6] != wo) print "pointer(no group) " key ": bare " w ", shim " o[6] ", want " wo
                total++
            }
            END { print total + 0, hooked + 0, relevant + 0, relevant_hooked + 0 > out }')
    local total hooked relevant relevant_hooked
    read -r total hooked relevant relevant_hooked <"$T/$name.counts"
    if grep -q '^status' <<<"$diffs"; then
        fail "realdrv_lookups/${name}_same_status" "$(grep '^status' <<<"$diffs" | head -10 | tr '\n' ';')"
    else
        ok "realdrv_lookups/${name}_same_status ($total lookups: result and status as the bare driver's)"
    fi
    if grep -q '^pointer [^(]' <<<"$diffs" || grep -q '^order' <<<"$diffs"; then
        fail "realdrv_lookups/${name}_hooks" "$(grep -E '^(pointer [^(]|order)' <<<"$diffs" | head -10 | tr '\n' ';')"
    else
        ok "realdrv_lookups/${name}_hooks (in a group: $hooked hooks, $((total - hooked)) of the driver's own; $relevant_hooked of $relevant found lookups of hooked.def's names hooked)"
    fi
    if [ "$relevant" != "$relevant_hooked" ]; then
        fail "realdrv_lookups/${name}_every_memory_entry_hooked" "$relevant_hooked of $relevant"
    fi
    if grep -q '^pointer(no group)' <<<"$diffs"; then
        fail "realdrv_lookups/${name}_no_group" "$(grep '^pointer(no group)' <<<"$diffs" | head -10 | tr '\n' ';')"
    else
        ok "realdrv_lookups/${name}_no_group (outside a group only cuGetProcAddress is the shim's)"
    fi
}
compare cudart13 "$LIST"
compare own "$T/own-lookups.txt"

# Named exports the shim resolves at start-up, against the real libraries.
nm -D --defined-only "$NV/lib/libcuda.so.1" | awk '{ print $NF }' | sort -u >"$T/cuda.exports"
nm -D --defined-only "$NV/lib/libnvidia-ml.so.1" | awk '{ print $NF }' | sort -u >"$T/nvml.exports"
log="$T/cudart13.group.err"
bad="" by_lookup="" newer="" n=0
while read -r sym name ver _; do
    n=$((n + 1))
    grep -qx "$sym" "$T/cuda.exports" && continue
    if grep -qF "$sym: not exported by name, resolved through cuGetProcAddress" "$log"; then
        by_lookup+=" $sym"
    elif grep -qF "$sym: the driver has no $name@$ver" "$log" && [ "$ver" -gt "${version:-0}" ]; then
        newer+=" $sym"
    elif [ "$sym" = cuDeviceGetUuid ] && grep -qx cuDeviceGetUuid_v2 "$T/cuda.exports"; then
        : # only looked for without cuDeviceGetUuid_v2
    else
        bad+=" $sym"
    fi
done <"$T/resolved.txt"
nvml_names=$({ sed -n 's/^NVML_HOOK(\([A-Za-z0-9_]*\)).*/\1/p' src/shim/nvml_hooked.def
               grep -o 'shim_real_dlsym(h, "nvml[A-Za-z0-9_]*")' src/shim/init.c | sed 's/.*"\(.*\)")/\1/'; } | sort -u)
for sym in $nvml_names; do
    n=$((n + 1))
    grep -qx "$sym" "$T/nvml.exports" || bad+=" $sym"
done
if [ -n "$bad" ]; then
    fail realdrv_lookups/named_exports "not exported by the real driver nor resolved otherwise:$bad"
else
    ok "realdrv_lookups/named_exports ($n names the shim resolves, exported by the real libraries${by_lookup:+; resolved through cuGetProcAddress instead:$by_lookup}${newer:+; newer than this driver, so left unresolved:$newer})"
fi
