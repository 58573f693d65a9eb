# Host-memory spill (docs/spill.md), end to end on the simulated GPU: a
# workload that needs 1.5x its group's limit completes with swap, its data
# intact, the device holding no more than the limit; without swap it is
# refused. Every view shows the spill: gpumem ps (table, csv, json), gpumem
# inspect, and the daemon's metric and first_spill event.
. tests/integration/lib.sh
export GPUMEM_SIM_CTX_OVERHEAD=128M
SPILL="$APP_PROGS/spill_client"
M=$((1024 * 1024))

# 15 x 100 MiB = 1.5 GiB under a 1 GiB limit (896 MiB after the context).
out=$(run_sim --limit 1G --swap 1G -- "$SPILL" init work 15 100M 2>&1)
line=$(printf '%s\n' "$out" | grep '^work done')
spilled=$(printf '%s' "$line" | sed -n 's/.*spilled=\([0-9]*\).*/\1/p')
truth=$(printf '%s' "$line" | sed -n 's/.*truth=\([0-9]*\).*/\1/p')
if [ -n "$spilled" ] && [ "$spilled" -ge 7 ] && [ "$spilled" -le 8 ]; then ok workload_1_5x_completes_with_swap
else fail workload_1_5x_completes_with_swap "$(printf '%s' "$out" | tr '\n' '|' | cut -c1-600)"; fi
# What the simulated device holds for the process (NVML), all of it
# touched: the context and the allocations that fit, never the spilled ones.
if [ -n "$truth" ] && [ "$truth" -le $((1024 * M)) ] && [ "$truth" -ge $((128 * M + 8 * 100 * M - 100 * M)) ]; then
    ok device_holds_only_what_fits
else fail device_holds_only_what_fits "truth=$truth: $line"; fi

out=$(run_sim --limit 1G -- "$SPILL" init work 15 100M 2>&1)
if printf '%s\n' "$out" | grep -q '^work refused at 8$' && printf '%s\n' "$out" | grep -q 'out of memory: refused 100 MiB'; then
    ok workload_refused_without_swap
else fail workload_refused_without_swap "$(printf '%s' "$out" | tr '\n' '|' | cut -c1-600)"; fi

# The same allowance from the environment, as for a container.
out=$(GPUMEM_SWAP=1G run_sim --limit 1G -- "$SPILL" init work 15 100M 2>&1)
printf '%s\n' "$out" | grep -q '^work done spilled=' && ok swap_from_GPUMEM_SWAP ||
    fail swap_from_GPUMEM_SWAP "$(printf '%s' "$out" | tr '\n' '|' | cut -c1-400)"
out=$(GPUMEM_SWAP=lots run_sim --limit 1G -- true 2>&1)
case "$out" in *'GPUMEM_SWAP=lots'*) ok bad_GPUMEM_SWAP_refused ;; *) fail bad_GPUMEM_SWAP_refused "$out" ;; esac
out=$("$GPUMEM" run --sim --limit 1G --swap-promote -- true 2>&1)
case "$out" in *'--swap-promote: the group has no swap'*) ok promote_needs_swap ;; *) fail promote_needs_swap "$out" ;; esac

# Views, while a group holds 800 MiB on the device and 300 MiB spilled.
# The daemon runs first, so the group's first spill is news to it.
. tests/integration/daemon_lib.sh
have_curl=1
command -v curl >/dev/null || have_curl=0
[ $have_curl = 1 ] && start_daemon
run_sim --limit 1G --swap 2G --name sp --keep -- "$SPILL" init alloc 800M alloc 300M hold >"$T/sp.log" 2>&1 &
for _ in $(seq 100); do grep -q holding "$T/sp.log" && break; sleep 0.1; done
csv=$("$GPUMEM" ps --format csv --no-headers | grep '^sp,')
[ "$(echo "$csv" | cut -d, -f12)" = $((2048 * M)) ] && [ "$(echo "$csv" | cut -d, -f11)" = $((300 * M)) ] && ok ps_csv_swap ||
    fail ps_csv_swap "$csv"
json=$("$GPUMEM" ps --format json -p)
echo "$json" | /usr/bin/python3 -c '
import json, sys
g = [g for g in json.load(sys.stdin) if g["group"] == "sp"][0]
assert g["swap_limit"] == 2 << 30 and g["swap_used"] == 300 << 20, g
assert g["devices"][0]["swap_used"] == 300 << 20 and g["devices"][0]["used"] == (800 + 128) << 20, g
assert g["process_list"][0]["swap_used"] == 300 << 20, g' && ok ps_json_swap || fail ps_json_swap "$json"
table=$("$GPUMEM" ps | grep -E '^(NAME|sp )')
case "$table" in *SWAP*"300 MiB"*) ok ps_table_swap_column ;; *) fail ps_table_swap_column "$table" ;; esac
ins=$("$GPUMEM" inspect sp 2>&1)
if printf '%s\n' "$ins" | grep -q 'cuMemAlloc (host)' && printf '%s\n' "$ins" | grep -q '1 of them spilled to host memory'; then
    ok inspect_marks_spilled
else fail inspect_marks_spilled "$(printf '%s' "$ins" | tr '\n' '|' | cut -c1-600)"; fi
insj=$("$GPUMEM" inspect --format json sp 2>&1)
echo "$insj" | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
p = d["processes"][0] if isinstance(d, dict) else d[0]
assert p["spilled_count"] == 1 and p["spilled_bytes"] == 300 << 20, p' && ok inspect_json_spilled ||
    fail inspect_json_spilled "$(echo "$insj" | cut -c1-400)"
lim=$("$GPUMEM" limit sp)
case "$lim" in *"sp: swap 2 GiB"*) ok limit_shows_swap ;; *) fail limit_shows_swap "$lim" ;; esac
"$GPUMEM" limit sp --swap 512M --swap-promote >/dev/null && lim=$("$GPUMEM" limit sp)
case "$lim" in *"sp: swap 512 MiB (promote)"*) ok limit_changes_swap ;; *) fail limit_changes_swap "$lim" ;; esac
out=$("$GPUMEM" limit sp --swap 12 2>&1)
case "$out" in *'--swap: '*'"12"'*) ok limit_bad_swap_quoted ;; *) fail limit_bad_swap_quoted "$out" ;; esac
if [ $have_curl = 1 ]; then
    wait_for '"event":"first_spill"' "$DLOG" &&
        grep '"event":"first_spill"' "$DLOG" | grep -q "\"group\":\"sp\",.*\"swap_used\":$((300 * M)),\"swap_limit\":$((2048 * M))" &&
        [ "$(grep -c '"event":"first_spill"' "$DLOG")" = 1 ] && ok first_spill_event_once ||
        fail first_spill_event_once "$(grep -E 'spill|start' "$DLOG" | tail -3)"
    m=$(curl -sf "$URL/metrics")
    grep -Eq "^gpumem_group_swap_used_bytes\{group=\"sp\",[^}]*gpu=\"0\"[^}]*\} $((300 * M))\$" <<<"$m" &&
        grep -Eq "^gpumem_group_swap_limit_bytes\{group=\"sp\",[^}]*\} $((512 * M))\$" <<<"$m" && ok metrics_swap ||
        fail metrics_swap "$(grep swap <<<"$m" | head -6)"
    if command -v promtool >/dev/null; then
        out=$(promtool check metrics <<<"$m" 2>&1) && ok metrics_promtool_valid || fail metrics_promtool_valid "$out"
    else
        skip metrics_promtool_valid "promtool is not installed"
    fi
    stop_daemon
else
    skip first_spill_event_once "curl is not installed"
fi
# gpumem top, in a detached 100x20 tmux session: the SWAP column while a
# group may spill.
if command -v tmux >/dev/null; then
    SOCK="gpumem-spill-$$"
    pre=""
    [ "${SAN:-0}" = 1 ] && pre="LD_PRELOAD=$ASAN_RT ASAN_OPTIONS=$ASAN_OPTIONS"
    tmux -L "$SOCK" -f /dev/null new-session -d -x 100 -y 20 -s top \
        "env -i PATH=$PATH HOME=$T TERM=xterm-256color GPUMEM_STATE_DIR=$GPUMEM_STATE_DIR \
GPUMEM_SIM_STATE=$GPUMEM_SIM_STATE GPUMEM_SIM_DIR=$GPUMEM_SIM_DIR $pre $TOP/$BUILD/bin/gpumem top -d 0.2"
    top_ok=0
    for _ in $(seq 200); do
        s=$(tmux -L "$SOCK" capture-pane -p -t top 2>/dev/null)
        printf '%s\n' "$s" | grep -q 'LEAK *SWAP' && printf '%s\n' "$s" | grep -Eq '^[-+ ] sp .* 300M' && { top_ok=1; break; }
        sleep 0.05
    done
    [ $top_ok = 1 ] && ok top_swap_column || fail top_swap_column "$(printf '%s' "$s" | tr '\n' '|')"
    tmux -L "$SOCK" kill-server 2>/dev/null
else
    skip top_swap_column "tmux is not installed"
fi
kill_ours
"$GPUMEM" rm sp >/dev/null 2>&1
exit ${FAILED:-0}
