# gpumem run: limits parsed strictly, exit status and signals passed on,
# LD_PRELOAD kept, the group removed afterwards (or kept), --summary.
. tests/integration/lib.sh
export GPUMEM_SIM_CTX_OVERHEAD=64M
expect_fail() { # NAME RC SUBSTRING CMD...
    local name=$1 rc=$2 sub=$3; shift 3
    local out got
    out=$("$@" 2>&1); got=$?
    if [ "$got" = "$rc" ]; then expect_in "$name" "$sub" "$out"; else fail "$name" "exit $got (wanted $rc): $out"; fi
}
expect_fail bad_limit_is_quoted 2 '"4Q"' "$GPUMEM" run --sim --limit 4Q -- true
expect_fail zero_limit_is_an_error 2 'not allowed' "$GPUMEM" run --sim --limit 0 -- true
expect_fail negative_limit_is_an_error 2 '"-1G"' "$GPUMEM" run --sim --limit=-1G -- true
expect_fail hex_limit_is_an_error 2 '"0x100000"' "$GPUMEM" run --sim --limit 0x100000 -- true
expect_fail bare_number_needs_unit 2 'missing unit' "$GPUMEM" run --sim --limit 4096 -- true
expect_fail bad_env_limit_is_quoted 2 'NVIDIA_GPU_MEMORY_LIMIT=lots' with_env NVIDIA_GPU_MEMORY_LIMIT=lots "$GPUMEM" run --sim -- true
expect_fail unknown_device_index 2 'device 7: no such GPU' "$GPUMEM" run --sim --limit 7=1G -- true
expect_fail bad_group_name 2 'bad group name' "$GPUMEM" run --sim --name ../x --limit 1G -- true
expect_fail no_command 2 'no command' "$GPUMEM" run --sim --limit 1G
expect_fail missing_command_127 127 'cannot run' "$GPUMEM" run --sim --limit 1G -- /nonexistent/prog
expect_fail no_driver_points_to_sim 1 'use --sim' with_env LD_LIBRARY_PATH= "$GPUMEM" run --limit 1G -- true
expect_fail exit_status_passed_on 7 '' "$GPUMEM" run --sim --limit 1G -- sh -c 'exit 7'
expect_fail signal_death_is_128_plus 137 '' "$GPUMEM" run --sim --limit 1G -- sh -c 'kill -9 $$'
out=$("$GPUMEM" run --help); expect_in run_help "Usage: gpumem run" "$out"
out=$("$GPUMEM" --help); expect_in main_help "Commands:" "$out"
out=$(LD_PRELOAD=/lib/x86_64-linux-gnu/libm.so.6 "$GPUMEM" run --sim --limit 1G -- sh -c 'echo "$LD_PRELOAD"')
expect_in user_preload_kept "libgpumem.so:/lib/x86_64-linux-gnu/libm.so.6" "$out"
"$GPUMEM" run --sim --limit 1G --name gone -- true
[ ! -e "$GPUMEM_STATE_DIR/gone" ] && ok group_removed_after_exit || fail group_removed_after_exit "still there"
"$GPUMEM" run --sim --limit 1G --name kept --keep -- true
[ -e "$GPUMEM_STATE_DIR/kept/limits" ] && ok keep_keeps_group || fail keep_keeps_group "gone"
expect_fail duplicate_group_refused 1 'already exists' "$GPUMEM" run --sim --limit 1G --name kept -- true
out=$("$GPUMEM" run --sim --limit 1G --summary -- "$CLIENT" init alloc 512M alloc 512M 2>&1)
expect_in summary_peak "peak 576 MiB of 1 GiB, 1 refused allocation (last 512 MiB)" "$out"
# SIGTERM to gpumem run reaches the command.
"$GPUMEM" run --sim --limit 1G -- sh -c 'trap "echo got-term; exit 0" TERM; echo ready; while :; do sleep 0.05; done' >"$T/term" 2>&1 &
rp=$!
for i in $(seq 200); do grep -q ready "$T/term" && break; sleep 0.05; done
# (In SAN runs "$GPUMEM" is a shell function, so $! is not gpumem's pid.)
kill -TERM "$(pgrep -f "^$TOP/$BUILD/bin/gpumem run --sim --limit 1G -- sh -c trap" | head -1)"
wait $rp
expect_in sigterm_forwarded "got-term" "$(cat "$T/term")"
