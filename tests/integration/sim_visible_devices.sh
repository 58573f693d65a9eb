#!/usr/bin/env bash
# CUDA_VISIBLE_DEVICES in the simulated driver, with NVIDIA's semantics:
# indices, full UUIDs and unique UUID prefixes, renumbered 0..n-1 in list
# order; the first invalid or repeated entry ends the list; empty = no
# device. NVML ignores the variable: memory charged on a visible ordinal
# shows on the physical device there.
. tests/integration/lib.sh
PROG="$PROGS/sim_visible_linked"
export GPUMEM_SIM_DEVICES=H200:8G,A100:8G,L4:8G
unset CUDA_VISIBLE_DEVICES GPUMEM_SIM_FAIL_ALLOC_NTH GPUMEM_SIM_FAIL_CTX GPUMEM_SIM_ALLOC_DELAY_US
# Only the program under test gets the sanitizer runtime (SAN=1).
vis() { LD_PRELOAD="$ASAN_RT" LD_LIBRARY_PATH="$SIMDIR" "$PROG" "$@"; }
# list CVD: the program's "list" output with CUDA_VISIBLE_DEVICES=CVD.
list() { CUDA_VISIBLE_DEVICES="$1" vis list 2>&1; }
# field OUT "cuda I" KEY: KEY's value on that line.
field() { sed -n "s/^$2 .*\\b$3=\\([^ ]*\\).*/\\1/p" <<<"$1"; }
count() { sed -n 's/^init=[0-9]* count=\([0-9]*\).*/\1/p' <<<"$1"; }

all=$(vis list 2>&1)
U0=$(field "$all" "nvml 0" uuid) U1=$(field "$all" "nvml 1" uuid) U2=$(field "$all" "nvml 2" uuid)
if [ "$(count "$all")" = 3 ] && [ -n "$U0" ] && [ -n "$U1" ] && [ -n "$U2" ] &&
   [ "$(field "$all" "cuda 0" uuid) $(field "$all" "cuda 1" uuid) $(field "$all" "cuda 2" uuid)" = "$U0 $U1 $U2" ]; then
    ok unset_all_devices_uuids_match_nvml
else fail unset_all_devices_uuids_match_nvml "$(tr '\n' '|' <<<"$all")"; fi

# check NAME CVD "U U ..." NAMES...: the visible devices are exactly those
# UUIDs, in that order, named (a word of) NAMES, with ordinals and PCI bus id
# lookups renumbered, and cuDeviceGet past the end invalid.
check() {
    local name=$1 cvd=$2 want=$3 out got="" i=0 why=""
    shift 3
    out=$(list "$cvd")
    for u in $want; do
        got+="$(field "$out" "cuda $i" uuid) "
        [ "$(field "$out" "cuda $i" ordinal)" = $i ] || why+="ordinal $i; "
        [ "$(field "$out" "cuda $i" bypci)" = $i ] || why+="bypci $i; "
        [ $# -gt 0 ] && { case "$(field "$out" "cuda $i" name)" in *"$1"*) ;; *) why+="name $i; " ;; esac; shift; }
        i=$((i + 1))
    done
    [ "$got" = "$want " ] || why+="uuids; "
    [ "$(count "$out")" = $i ] || why+="count; "
    grep -q '^beyond=101$' <<<"$out" || why+="beyond; "
    # NVML still lists every physical device in its own order
    [ "$(field "$out" "nvml 2" uuid)" = "$U2" ] && [ "$(field "$out" "nvml 0" uuid)" = "$U0" ] || why+="nvml; "
    if [ -z "$why" ]; then ok "$name"
    else fail "$name" "CUDA_VISIBLE_DEVICES=$cvd: ${why}got: $(tr '\n' '|' <<<"$out")"; fi
}

check index_list_2_0 "2,0" "$U2 $U0" L4 H200
check index_single_1 "1" "$U1" A100
check uuid_full "$U1,$U2" "$U1 $U2" A100 L4
check uuid_then_index "$U2,1" "$U2 $U1" L4 A100

# shortest unique prefix of U0 (at least one hex digit)
pre=""
for n in $(seq 5 ${#U0}); do
    p=${U0:0:$n}
    case "$U1 $U2" in *"$p"*) continue ;; esac
    pre=$p; break
done
check uuid_prefix "$pre" "$U0" H200
check uuid_prefix_then_index "$pre,2" "$U0 $U2" H200 L4
check ambiguous_prefix_ends_list "1,GPU-,0" "$U1" A100
check invalid_entry_ends_list "1,x,0" "$U1" A100
check out_of_range_index_ends_list "2,3,0" "$U2" L4
check unknown_uuid_ends_list "0,GPU-ffffffff-ffff-ffff-ffff-ffffffffffff,1" "$U0" H200
check mig_uuid_ends_list "2,MIG-0,1" "$U2" L4
check duplicate_ends_list "2,0,2,1" "$U2 $U0" L4 H200
check duplicate_by_uuid_ends_list "0,$U0,1" "$U0" H200
check trailing_comma "0,1," "$U0 $U1" H200 A100

for cvd in "" "-1" "x,0" "3"; do
    out=$(list "$cvd")
    if grep -q '^init=100 count=0 ' <<<"$out" && ! grep -q '^cuda ' <<<"$out" && grep -q '^nvml 2 ' <<<"$out"; then
        ok "no_device_for_\"$cvd\""
    else fail "no_device_for_\"$cvd\"" "$(tr '\n' '|' <<<"$out")"; fi
done

# Memory charged on a visible ordinal lands on its physical device in NVML
# (which ignores CUDA_VISIBLE_DEVICES), and is returned there.
M=$((64 << 20)) V=$((2 << 20))
out=$(CUDA_VISIBLE_DEVICES=2 GPUMEM_SIM_CTX_OVERHEAD=0 vis alloc 0 $M 2>&1)
if grep -qx "ptr_ordinal=0 ctx_dev=0 vmm_dev=0" <<<"$out" && grep -qx "used 0 0 $((M + V))" <<<"$out" &&
   grep -qx "freed 0 0 0" <<<"$out"; then ok alloc_on_visible_0_is_physical_2
else fail alloc_on_visible_0_is_physical_2 "$(tr '\n' '|' <<<"$out")"; fi

C=$((300 << 20))
out=$(CUDA_VISIBLE_DEVICES="$U2,$pre" vis alloc 1 $M 2>&1)
if grep -qx "ptr_ordinal=1 ctx_dev=1 vmm_dev=1" <<<"$out" && grep -qx "used $((M + V + C)) 0 0" <<<"$out" &&
   grep -qx "freed 0 0 0" <<<"$out"; then ok alloc_and_context_on_visible_1_is_physical_0
else fail alloc_and_context_on_visible_1_is_physical_0 "$(tr '\n' '|' <<<"$out")"; fi

# Another process without the variable sees the device as physical 2 while
# the first holds memory there (shared state is physical).
HOLD="$PROGS/sim_hold_linked"
if [ -x "$HOLD" ]; then
    CUDA_VISIBLE_DEVICES=1 GPUMEM_SIM_CTX_OVERHEAD=0 LD_PRELOAD="$ASAN_RT" LD_LIBRARY_PATH="$SIMDIR" \
        "$HOLD" alloc $((1 << 30)) hold >"$T/hold.out" 2>&1 & H=$!
    for _ in $(seq 1 500); do grep -q '^rc=' "$T/hold.out" 2>/dev/null && break; sleep 0.01; done
    used=$(CUDA_VISIBLE_DEVICES=1,0 GPUMEM_SIM_CTX_OVERHEAD=0 vis alloc 1 $M 2>&1 | sed -n 's/^used //p')
    kill -KILL $H; wait $H 2>/dev/null
    if grep -q '^rc=0' "$T/hold.out" && [ "$used" = "$((M + V)) $((1 << 30)) 0" ]; then ok two_processes_two_numberings
    else fail two_processes_two_numberings "holder: $(cat "$T/hold.out"), used: $used"; fi
else skip two_processes_two_numberings "no $HOLD"; fi
exit 0
