#!/usr/bin/env bash
# The simulated GPU across processes: capacity shared by all processes on the
# machine, memory of SIGKILLed processes returned (also mid-allocation and at
# start-up), racing processes never both pass, context overhead, fault
# injection, IPC memory handles between processes, a corrupt state file.
. tests/integration/lib.sh
HOLD="$PROGS/sim_hold_linked"
G=$((1024 * 1024 * 1024))
export GPUMEM_SIM_DEVICES=16G GPUMEM_SIM_CTX_OVERHEAD=0
unset GPUMEM_SIM_FAIL_ALLOC_NTH GPUMEM_SIM_FAIL_CTX GPUMEM_SIM_ALLOC_DELAY_US

# wait_line FILE PATTERN: until FILE holds a line matching PATTERN (10 s max).
wait_line() {
    for _ in $(seq 1 1000); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.01; done
    return 1
}
free_now() { "$HOLD" info | sed -n 's/^free=\([0-9]*\).*/\1/p'; }

# 1. Two processes asking 10 GiB each of a 16 GiB device.
"$HOLD" alloc $((10 * G)) hold >"$T/a.out" & A=$!
wait_line "$T/a.out" '^rc=' || true
b=$("$HOLD" alloc $((10 * G)))
if grep -q '^rc=0' "$T/a.out" && [ "$b" = "rc=2" ]; then ok capacity_across_processes
else fail capacity_across_processes "first: $(cat "$T/a.out"), second: $b"; fi

# 2. SIGKILL the holder: its 10 GiB return.
kill -KILL $A; wait $A 2>/dev/null
b=$("$HOLD" alloc $((10 * G)))
f=$(free_now)
if [ "$b" = "rc=0" ] && [ "$f" = $((16 * G)) ]; then ok sigkill_returns_memory
else fail sigkill_returns_memory "after kill: $b, free=$f"; fi

# 3. Racing processes: exactly one of two simultaneous 10 GiB requests passes.
race_ok=1
for i in 1 2 3 4 5; do
    rm -f "$T/go"
    GPUMEM_SIM_ALLOC_DELAY_US=1000 "$HOLD" race $((10 * G)) "$T/go" >"$T/r1" & P1=$!
    GPUMEM_SIM_ALLOC_DELAY_US=1000 "$HOLD" race $((10 * G)) "$T/go" >"$T/r2" & P2=$!
    # Both initialised and polling for the file before it appears.
    wait_line "$T/r1" '^ready' && wait_line "$T/r2" '^ready' || { race_ok=0; fail racing_processes_ready "round $i"; }
    touch "$T/go"
    wait_line "$T/r1" '^rc=' && wait_line "$T/r2" '^rc='
    res="$(grep -h '^rc=' "$T/r1" "$T/r2" | sort | tr '\n' ' ')"
    kill -KILL $P1 $P2; wait $P1 $P2 2>/dev/null
    [ "$res" = "rc=0 rc=2 " ] || { race_ok=0; fail racing_processes "round $i: $res"; break; }
done
[ $race_ok = 1 ] && ok racing_processes

# 4. A storm of SIGKILLs: churning processes (2 threads each) killed at random
#    moments, some during start-up. Afterwards the device is whole again.
for round in $(seq 1 25); do
    pids=()
    for j in 1 2 3 4; do "$HOLD" churn 2 >/dev/null 2>&1 & pids+=($!); done
    sleep "0.0$((RANDOM % 9 + 1))"
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    wait "${pids[@]}" 2>/dev/null
done
f=$(free_now)
if [ "$f" = $((16 * G)) ]; then ok sigkill_storm_leaves_device_whole
else fail sigkill_storm_leaves_device_whole "free=$f after the storm"; fi
for i in $(seq 1 40); do "$HOLD" churn 1 >/dev/null 2>&1 & p=$!; kill -KILL $p; wait $p 2>/dev/null; done
b=$("$HOLD" alloc $((16 * G - 64 * 1024 * 1024)))
if [ "$b" = "rc=0" ] && [ "$(free_now)" = $((16 * G)) ]; then ok sigkill_at_startup_not_wedged
else fail sigkill_at_startup_not_wedged "after start-up kills: $b"; fi

# 5. A context costs device memory.
f=$(GPUMEM_SIM_CTX_OVERHEAD=300M "$HOLD" info | sed -n 's/^free=\([0-9]*\).*/\1/p')
if [ "$f" = $((16 * G - 300 * 1024 * 1024)) ]; then ok context_overhead_charged
else fail context_overhead_charged "free=$f"; fi

# 6. Fault injection.
out=$(GPUMEM_SIM_FAIL_ALLOC_NTH=3 "$HOLD" nth 4 | tr '\n' ' ')
[ "$out" = "1:0 2:0 3:2 4:0 " ] && ok fail_alloc_nth || fail fail_alloc_nth "$out"
out=$(GPUMEM_SIM_FAIL_CTX=1 "$HOLD" ctx)
[ "$out" = "rc=2" ] && ok fail_ctx || fail fail_ctx "$out"
us=$(GPUMEM_SIM_ALLOC_DELAY_US=50000 "$HOLD" delay | sed -n 's/^us=//p')
[ "${us:-0}" -ge 50000 ] && ok alloc_delay || fail alloc_delay "one allocation took ${us}us"

# 7. IPC memory handle between two processes: data both ways, no double charge.
mkfifo "$T/in"
"$HOLD" ipc-export <"$T/in" >"$T/exp.out" & E=$!
exec 7>"$T/in"
wait_line "$T/exp.out" '^[0-9a-f]\{128\}$' || true
handle=$(head -1 "$T/exp.out")
imp=$("$HOLD" ipc-import "$handle")
echo go >&7; exec 7>&-
wait $E
case "$imp" in
ipc=ok*) imp_free=${imp#*free=}
         if grep -q '^exporter-sees=IMPORTED' "$T/exp.out" && [ "$imp_free" = $((16 * G - 4 * 1024 * 1024)) ]; then
             ok ipc_between_processes
         else fail ipc_between_processes "exporter: $(tr '\n' ' ' <"$T/exp.out"), importer free=$imp_free"; fi ;;
*) fail ipc_between_processes "importer: $imp" ;;
esac

# 8. A corrupt or foreign state file is replaced, not trusted.
for st in "$GPUMEM_SIM_STATE"/state-*; do head -c 100 /dev/urandom >"$st"; done
f=$(free_now)
[ "$f" = $((16 * G)) ] && ok corrupt_state_file_recreated || fail corrupt_state_file_recreated "free=$f"

# 9. Device specs: several models and sizes.
out=$(GPUMEM_SIM_DEVICES="H200:141G,A100:40G" "$HOLD" info)
[ "$out" = "free=$((141 * G)) total=$((141 * G))" ] && ok device_spec_models || fail device_spec_models "$out"
out=$(GPUMEM_SIM_DEVICES="banana" "$HOLD" info 2>&1)
case "$out" in *"invalid GPUMEM_SIM_DEVICES"*"rc=100"*) ok device_spec_invalid ;; *) fail device_spec_invalid "$out" ;; esac
exit 0
