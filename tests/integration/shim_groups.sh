# One limit shared by every process of a group; a killed process's bytes
# come back; limits come from the group, not the environment; a lowered limit
# refuses new allocations until usage falls; a forked child is accounted.
. tests/integration/lib.sh
export GPUMEM_SIM_CTX_OVERHEAD=64M
in_group() { # GROUP CMD...
    local g=$1; shift
    GPUMEM_GROUP_DIR="$GPUMEM_STATE_DIR/$g" LD_PRELOAD="$SHIM_PRELOAD" LD_LIBRARY_PATH="$SIMDIR" "$@"
}
wait_holding() { for i in $(seq 200); do grep -q holding "$1" && return 0; sleep 0.05; done; return 1; }

run_sim --limit 1G --name shared --keep -- "$CLIENT" init alloc 600M hold >"$T/a" 2>&1 &
runner=$!
wait_holding "$T/a" || fail holder_started "$(cat "$T/a")"
holder=$(sed -n 's/^holding pid=//p' "$T/a")
out=$(in_group shared "$CLIENT" init alloc 600M expect 2 alloc 200M expect 0 2>&1) &&
    ok processes_share_one_limit || fail processes_share_one_limit "$out"
# Setting a bigger limit in the environment of a later process changes nothing.
out=$(GPUMEM_LIMIT=64G NVIDIA_GPU_MEMORY_LIMIT=65536 in_group shared "$CLIENT" init alloc 600M expect 2 2>&1) &&
    ok env_cannot_raise_group_limit || fail env_cannot_raise_group_limit "$out"
kill -KILL $holder
wait $runner
out=$(in_group shared "$CLIENT" init alloc 600M expect 0 2>&1) &&
    ok killed_process_bytes_come_back || fail killed_process_bytes_come_back "$out"

# gpumem limit on a running group.
run_sim --limit 1G --name low --keep -- "$CLIENT" init alloc 800M hold >"$T/b" 2>&1 &
wait_holding "$T/b"
# A process already in the group (context made, slot claimed) when the limit
# is lowered: it waits for the go-ahead file, created only after the change.
in_group low "$CLIENT" init await "$T/go-low" info alloc 16M expect 2 >"$T/c" 2>&1 &
cpid=$!
wait_awaiting() { for i in $(seq 600); do grep -q awaiting "$1" && return 0; sleep 0.05; done; return 1; }
wait_awaiting "$T/c" || fail lowered_limit_client_started "$(tr '\n' '|' <"$T/c")"
"$GPUMEM" limit low 512M >/dev/null || fail limit_command "gpumem limit failed"
touch "$T/go-low"
wait $cpid && ok lowered_limit_refuses_new || fail lowered_limit_refuses_new "$(tr '\n' '|' <"$T/c")"
expect_in lowered_limit_reports_zero_free "info free=0 total=536870912" "$(cat "$T/c")"
out=$(in_group low "$CLIENT" init expect 2 2>&1) &&
    ok lowered_limit_refuses_new_context || fail lowered_limit_refuses_new_context "$out"
"$GPUMEM" limit low 2G >/dev/null
out=$(in_group low "$CLIENT" init alloc 900M expect 0 2>&1) &&
    ok raised_limit_applies_at_next_alloc || fail raised_limit_applies_at_next_alloc "$out"
shown=$("$GPUMEM" limit low)
expect_in limit_shows_value "low: default 2 GiB" "$shown"
out=$("$GPUMEM" limit low 0 2>&1); rc=$?
[ $rc = 2 ] && expect_in limit_zero_is_an_error '"0"' "$out" || fail limit_zero_is_an_error "rc=$rc $out"
out=$("$GPUMEM" limit nosuchgroup 1G 2>&1); rc=$?
[ $rc = 1 ] && expect_in limit_unknown_group 'no group "nosuchgroup"' "$out" || fail limit_unknown_group "rc=$rc $out"

# fork(): the child is a process of the group with its own slot.
out=$(run_sim --limit 1G -- "$CLIENT" forkhold 600M expect 0 init alloc 600M expect 2 killchild alloc 600M expect 0 2>&1) &&
    ok forked_child_is_accounted || fail forked_child_is_accounted "$(echo "$out" | tr '\n' '|')"
