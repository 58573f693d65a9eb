#!/usr/bin/env bash
# The shim's cost, measured against running without gpumem, on the simulated
# GPU, in one run so the ratios hold on a noisy machine (`make bench`; builds
# nothing itself). Prints a table with the issue's targets and PASS/MISS per
# target. Informational: always exits 0 unless the benchmark could not run.
#
# What it runs (every figure is "without gpumem" vs "inside `gpumem run`"):
#   callgrind  instructions per cuMemAlloc+cuMemFree pair (deterministic, the
#              main figure): build/bench/alloc_pairs -c under
#              valgrind --tool=callgrind --toggle-collect=measured_run, at
#              N and 2N pairs, per pair = (Ir(2N) - Ir(N)) / N; the same with
#              100,000 live allocations, for an unhooked call, and with the
#              shim preloaded in a process that belongs to no group
#   strace -c  system calls per pair: (calls(N pairs) - calls(0 pairs)) / N
#   wall clock ns per pair, median of BENCH_RUNS runs, 1 and 2 threads,
#              100,000 live, unhooked calls; ROUNDS rounds alternating
#              without/with, the median of the rounds' medians
#   startup    build/bench/startup: exec -> main and exec -> first pair
#
# Knobs (environment): BUILD (build), BENCH_PAIRS (100000 per run and
# thread), BENCH_RUNS (7), BENCH_ROUNDS (3), BENCH_LIVE (100000),
# BENCH_CG_PAIRS (10000), BENCH_SIZE (4K), BENCH_STARTS (200),
# BENCH_OUT (where raw results go; default $BUILD/bench-results).
set -u
cd "$(dirname "$0")/.."
BUILD="${BUILD:-build}"
B="$(cd "$BUILD" 2>/dev/null && pwd)" || { echo "bench: no $BUILD (run make first)" >&2; exit 1; }
PAIRS="${BENCH_PAIRS:-100000}" RUNS="${BENCH_RUNS:-7}" ROUNDS="${BENCH_ROUNDS:-3}"
LIVE="${BENCH_LIVE:-100000}" CGN="${BENCH_CG_PAIRS:-10000}" SIZE="${BENCH_SIZE:-4K}"
STARTS="${BENCH_STARTS:-200}"
OUT="${BENCH_OUT:-$B/bench-results}"
AP="$B/bench/alloc_pairs" SU="$B/bench/startup" GM="$B/bin/gpumem"
for f in "$AP" "$SU" "$GM" "$B/lib/libgpumem.so" "$B/sim/libcuda.so.1"; do
    [ -x "$f" ] || [ -f "$f" ] || { echo "bench: $f missing (run make first)" >&2; exit 1; }
done
mkdir -p "$OUT" && rm -f "$OUT"/*

# A private simulated machine and group root, one 80 GiB device so that
# 100,000 live allocations fit; removed at exit.
GPUMEM_SIM_STATE="$(mktemp -d)" GPUMEM_STATE_DIR="$(mktemp -d)"
export GPUMEM_SIM_STATE GPUMEM_STATE_DIR GPUMEM_SIM_DEVICES=1x80G
unset LD_PRELOAD GPUMEM_GROUP_DIR GPUMEM_LIMIT
trap 'rm -rf "$GPUMEM_SIM_STATE" "$GPUMEM_STATE_DIR"' EXIT

without() { LD_LIBRARY_PATH="$B/sim" "$@"; }
with() { "$GM" run --sim --limit 64G -- "$@"; }
passthrough() { LD_PRELOAD="$B/lib/libgpumem.so" LD_LIBRARY_PATH="$B/sim" "$@"; } # shim loaded, no group
field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }
calc() { awk "BEGIN { printf \"%.${2:-1}f\", $1 }"; }
log() { printf '%s\n' "$*" >>"$OUT/raw.txt"; }
have() { command -v "$1" >/dev/null 2>&1; }
fail() { echo "bench: $*" >&2; exit 1; }

echo "gpumem benchmark: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "pairs of cuMemAlloc($SIZE)+cuMemFree through cuGetProcAddress pointers; raw results in $OUT"
echo

# ---- callgrind: instructions per operation ------------------------------
# cg VARIANT TAG ARGS...: instructions per operation, from two runs.
cg() {
    local variant="$1" tag="$2"; shift 2
    local ir=() n
    for n in "$CGN" $((2 * CGN)); do
        "$variant" valgrind --tool=callgrind --toggle-collect=measured_run \
            --callgrind-out-file="$OUT/cg-$tag-$n.out" "$AP" -c -n "$n" -s "$SIZE" "$@" \
            >"$OUT/cg-$tag-$n.log" 2>&1 || fail "callgrind run $tag failed: $(tail -3 "$OUT/cg-$tag-$n.log")"
        ir+=("$(sed -n 's/^totals: *//p' "$OUT/cg-$tag-$n.out")")
    done
    log "callgrind $tag: Ir($CGN)=${ir[0]} Ir($((2 * CGN)))=${ir[1]} $(grep -o 'resolved_in=[^ ]*' "$OUT/cg-$tag-$CGN.log")"
    calc "(${ir[1]} - ${ir[0]}) / $CGN" 1
}
if have valgrind; then
    ir_wo=$(cg without pair-without) ir_w=$(cg with pair-with)
    ir_lwo=$(cg without live-without -l "$LIVE") ir_lw=$(cg with live-with -l "$LIVE")
    ir_uwo=$(cg without ctxget-without -o ctxget) ir_uw=$(cg with ctxget-with -o ctxget)
    ir_p=$(cg passthrough pair-passthrough)
    [ -n "$ir_wo" ] && [ -n "$ir_w" ] && [ -n "$ir_lwo" ] && [ -n "$ir_lw" ] && [ -n "$ir_uwo" ] && [ -n "$ir_uw" ] && [ -n "$ir_p" ] ||
        exit 1
else
    echo "bench: valgrind not installed: no instruction counts (apt-get install valgrind)" >&2
fi

# ---- strace: system calls per pair --------------------------------------
calls() { awk '$NF == "total" { print $4 }' "$1"; }
sc() {
    local variant="$1" tag="$2" c=() n
    for n in 0 $((2 * CGN)); do
        "$variant" strace -f -c -o "$OUT/strace-$tag-$n.txt" "$AP" -c -n "$n" -s "$SIZE" >/dev/null 2>&1 ||
            fail "strace run $tag failed"
        c+=("$(calls "$OUT/strace-$tag-$n.txt")")
    done
    log "strace $tag: calls(0)=${c[0]} calls($((2 * CGN)))=${c[1]}"
    calc "(${c[1]} - ${c[0]}) / $((2 * CGN))" 3
}
if have strace; then
    sc_wo=$(sc without without) sc_w=$(sc with with)
    [ -n "$sc_wo" ] && [ -n "$sc_w" ] || exit 1
else
    echo "bench: strace not installed: no system call counts (apt-get install strace)" >&2
fi

# ---- wall clock ---------------------------------------------------------
# ns VARIANT ARGS...: one invocation, its median ns per operation.
ns() {
    local v="$1" line; shift
    line=$("$v" "$AP" -n "$PAIRS" -r "$RUNS" -s "$SIZE" "$@") || fail "alloc_pairs $* ($v) failed"
    log "$v: $line"
    field "$line" ns_per_op
}
med() { tr ' ' '\n' <<<"$*" | sort -g | awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
declare -A W
for ((r = 0; r < ROUNDS; r++)); do
    for v in without with; do
        W[$v-1t]+=" $(ns $v -t 1)"
        W[$v-2t]+=" $(ns $v -t 2)"
        W[$v-live]+=" $(ns $v -l "$LIVE")"
        W[$v-ctxget]+=" $(ns $v -o ctxget -n $((10 * PAIRS)))"
        W[$v-htod]+=" $(ns $v -o htod -n $((10 * PAIRS)))"
    done
done
for k in "${!W[@]}"; do W[$k]=$(med ${W[$k]}); done
where_ctx=$(with "$AP" -o ctxget -n 1000 -r 1 | grep -o 'resolved_in=[^ ]*' | cut -d= -f2)
where_htod=$(with "$AP" -o htod -n 1000 -r 1 | grep -o 'resolved_in=[^ ]*' | cut -d= -f2)
where_alloc=$(with "$AP" -n 1000 -r 1 | grep -o 'resolved_in=[^ ]*' | cut -d= -f2)

# ---- start-up -----------------------------------------------------------
su_noop=$(with "$SU" -n "$STARTS" "$AP") || fail "startup (noop) failed"
su_cuda=$(with "$SU" -n "$STARTS" -m cuda "$AP") || fail "startup (cuda) failed"
log "startup: $su_noop"
log "startup: $su_cuda"

# ---- instructions inside the shim itself (exclusive cost of its functions)
ann() { callgrind_annotate --auto=no --inclusive=no --threshold=100 "$1" 2>/dev/null |
        awk '/file:function/ { p = 1; next } p && NF' | sed 's/ ([ 0-9.]*%)//'; }
in_shim() { awk -v n="$CGN" '/libgpumem\.so\]|src\/shim\// { ir = $1; gsub(",", "", ir); s += ir }
                             END { printf "%.1f", s / n }' "$1"; }
if [ -n "${ir_w:-}" ] && have callgrind_annotate; then
    ann "$OUT/cg-pair-with-$CGN.out" >"$OUT/annotate-with.txt"
    ann "$OUT/cg-pair-without-$CGN.out" >"$OUT/annotate-without.txt"
    ann "$OUT/cg-live-with-$CGN.out" >"$OUT/annotate-live-with.txt"
    shim_total=$(in_shim "$OUT/annotate-with.txt") shim_live=$(in_shim "$OUT/annotate-live-with.txt")
fi

# ---- start-up, deterministic: instructions and system calls of one probe
# process (exec -> driver reached -> one pair -> exit), without vs with.
if have valgrind; then
    for v in without with; do
        "$v" valgrind --tool=callgrind --callgrind-out-file="$OUT/cg-start-$v.out" "$AP" -S 1 -n 1 \
            >/dev/null 2>"$OUT/cg-start-$v.log" || fail "callgrind start-up run ($v) failed"
        eval "sir_$v=\$(sed -n 's/^totals: *//p' \"\$OUT/cg-start-\$v.out\")"
    done
fi
if have strace; then
    for v in without with; do
        "$v" strace -f -c -o "$OUT/strace-start-$v.txt" "$AP" -S 1 -n 1 >/dev/null 2>&1 ||
            fail "strace start-up run ($v) failed"
        eval "ssc_$v=\$(calls \"\$OUT/strace-start-\$v.txt\")"
    done
fi

# ---- the table ----------------------------------------------------------
verdict() { if awk "BEGIN { exit !($1) }"; then echo PASS; else echo MISS; fi; }
row() { printf '%-44s %12s %12s %12s  %-18s %s\n' "$@"; }
na() { [ -n "${1:-}" ] && echo "$1" || echo n/a; }

row "measure" "without" "with shim" "added/ratio" "target" "verdict"
row "--------------------------------------------" "------------" "------------" "------------" "------------------" "-------"
if [ -n "${ir_w:-}" ]; then
    add=$(calc "$ir_w - $ir_wo") addl=$(calc "$ir_lw - $ir_lwo") addu=$(calc "$ir_uw - $ir_uwo")
    row "instructions per pair (callgrind)" "$ir_wo" "$ir_w" "+$add" "<= +150" "$(verdict "$add <= 150")"
    row "instructions per pair, $LIVE live" "$ir_lwo" "$ir_lw" "+$addl" "" ""
    if [ -n "${shim_total:-}" ]; then
        row "  of which inside the shim, 0 live" "" "$shim_total" "" "<= 150" "$(verdict "$shim_total <= 150")"
        row "  of which inside the shim, $LIVE live" "" "$shim_live" "" "same as 0 live" \
            "$(verdict "$shim_live <= $shim_total * 1.05 + 5")"
    fi
    row "instructions per pair, shim but no group" "$ir_wo" "$ir_p" "+$(calc "$ir_p - $ir_wo")" "(passthrough)" ""
    row "instructions per cuCtxGetCurrent (unhooked)" "$ir_uwo" "$ir_uw" "+$addu" "+0" "$(verdict "$addu == 0")"
else
    row "instructions per pair (callgrind)" n/a n/a n/a "<= +150" "n/a"
fi
if [ -n "${sc_w:-}" ]; then
    adds=$(calc "$sc_w - $sc_wo" 3)
    row "system calls per pair (strace -c)" "$sc_wo" "$sc_w" "+$adds" "+0" "$(verdict "$adds < 0.005")"
fi
r1=$(calc "${W[with-1t]} / ${W[without-1t]}" 2)
row "ns per pair, 1 thread" "${W[without-1t]}" "${W[with-1t]}" "x$r1" "" ""
p1wo=$(calc "1e9 / ${W[without-1t]}" 0) p1w=$(calc "1e9 / ${W[with-1t]}" 0)
p2wo=$(calc "1e9 / ${W[without-2t]}" 0) p2w=$(calc "1e9 / ${W[with-2t]}" 0)
row "pairs/s, 1 thread" "$p1wo" "$p1w" "x$(calc "$p1w / $p1wo" 2)" "" ""
row "pairs/s, 2 threads together" "$p2wo" "$p2w" "x$(calc "$p2w / $p2wo" 2)" "" ""
s2wo=$(calc "$p2wo / $p1wo" 2) s2w=$(calc "$p2w / $p1w" 2)
row "2 threads / 1 thread" "x$s2wo" "x$s2w" "" ">= x1.6 with shim" "$(verdict "$s2w >= 1.6")"
rl=$(calc "${W[with-live]} / ${W[without-live]}" 2) lw=$(calc "${W[with-live]} / ${W[with-1t]}" 2)
row "ns per pair, $LIVE live" "${W[without-live]}" "${W[with-live]}" "x$rl" "" ""
row "ns per pair, $LIVE live / 0 live" "x$(calc "${W[without-live]} / ${W[without-1t]}" 2)" "x$lw" "" "same (wall clock)" \
    "$(verdict "$lw <= 1.15")"
row "ns per cuCtxGetCurrent (unhooked)" "${W[without-ctxget]}" "${W[with-ctxget]}" \
    "x$(calc "${W[with-ctxget]} / ${W[without-ctxget]}" 2)" "driver's pointer" \
    "$( [ "$where_ctx" = libcuda.so.1 ] && echo PASS || echo MISS) ($where_ctx)"
row "ns per cuMemcpyHtoD 8 B (unhooked)" "${W[without-htod]}" "${W[with-htod]}" \
    "x$(calc "${W[with-htod]} / ${W[without-htod]}" 2)" "driver's pointer" \
    "$( [ "$where_htod" = libcuda.so.1 ] && echo PASS || echo MISS) ($where_htod)"
mwo=$(field "$su_noop" main_us_without) mw=$(field "$su_noop" main_us_with)
cwo=$(field "$su_cuda" ready_us_without) cw=$(field "$su_cuda" ready_us_with)
am=$(calc "$mw - $mwo") ac=$(calc "$cw - $cwo")
row "start-up us, exec -> main" "$mwo" "$mw" "+$am" "<= +100" "$(verdict "$am <= 100")"
row "start-up us, exec -> first pair done" "$cwo" "$cw" "+$ac" "<= +100" "$(verdict "$ac <= 100")"
[ -n "${sir_with:-}" ] && row "start-up instructions, exec -> exit" "$sir_without" "$sir_with" \
    "+$((sir_with - sir_without))" "" ""
[ -n "${ssc_with:-}" ] && row "start-up system calls, exec -> exit" "$ssc_without" "$ssc_with" \
    "+$((ssc_with - ssc_without))" "" ""
echo
echo "(cuMemAlloc resolved to $where_alloc inside the group: the shim's hook, as it must be)"

# ---- where the shim's instructions go ------------------------------------
if [ -n "${ir_w:-}" ] && have callgrind_annotate; then
    echo
    echo "shim functions, instructions per pair (callgrind_annotate, exclusive; $CGN pairs):"
    awk -v n="$CGN" '/libgpumem\.so\]|src\/shim\// { ir = $1; gsub(",", "", ir); $1 = ""; sub(/^ /, "");
                     sub(/ \[.*\]$/, ""); sub(/^.*\/(src|include)\//, ""); s += ir;
                     printf "  %8.1f  %s\n", ir / n, $0 } END { printf "  %8.1f  total in the shim\n", s / n }' \
        "$OUT/annotate-with.txt"
    echo "  $(calc "$add - $shim_total") instructions per pair of the difference are outside the shim" \
         "(driver and libc doing the same calls; see below)"
    echo
    echo "outside the shim, functions whose cost per pair differs with the shim loaded:"
    join -t'|' -a1 -a2 -e0 -o 0,1.2,2.2 \
        <(awk '{ ir = $1; gsub(",", "", ir); $1 = ""; sub(/^ /, ""); print $0 "|" ir }' "$OUT/annotate-without.txt" | sort -t'|' -k1,1) \
        <(awk '{ ir = $1; gsub(",", "", ir); $1 = ""; sub(/^ /, ""); print $0 "|" ir }' "$OUT/annotate-with.txt" | sort -t'|' -k1,1) |
        awk -F'|' -v n="$CGN" '$1 !~ /libgpumem|src\/shim\// { d = ($3 - $2) / n; if (d >= 0.5 || d <= -0.5)
            { f = $1; sub(/ \[.*\]$/, "", f); sub(/^.*\//, "", f); printf "  %+8.1f  %s (%.1f -> %.1f)\n", d, f, $2 / n, $3 / n } }' |
        sort -g -r
fi
exit 0
