# A group lives while any of its processes does: members that `gpumem run`'s
# command left in the background keep it (visible, limited) after the
# wrapper exits, and the last of them removes it; a group whose wrapper was
# SIGKILLed is cleaned up (its name reused by the next gpumem run, or removed
# by the daemon); a process that maps a removed group is told so.
. tests/integration/lib.sh
. tests/integration/daemon_lib.sh
export GPUMEM_SIM_CTX_OVERHEAD=64M
S="$GPUMEM_STATE_DIR"
# wait_gone PATH: until PATH does not exist (0.05 s steps, bounded).
wait_gone() { local i; for i in $(seq 200); do [ -e "$1" ] || return 0; sleep 0.05; done; return 1; }
member() { # GROUP ARGS...: a process joining GROUP after its wrapper exited
    local grp=$1; shift
    GPUMEM_GROUP_DIR="$S/$grp" LD_PRELOAD="$SHIM_PRELOAD" LD_LIBRARY_PATH="$SIMDIR" "$CLIENT" "$@"
}

# 1. A background member outlives the wrapper.
run_sim --limit 1G --name bg -- sh -c '"$0" init alloc 100M await "$1" >"$2" 2>&1 & echo $! >"$3"
    for i in $(seq 200); do grep -q awaiting "$2" && exit 0; sleep 0.05; done; exit 1' \
    "$CLIENT" "$T/go" "$T/bg.out" "$T/bg.pid" 2>"$T/bg.err"
rc=$?
bgpid=$(cat "$T/bg.pid")
[ "$rc" = 0 ] && [ -e "$S/bg/limits" ] && ok group_outlives_wrapper \
    || fail group_outlives_wrapper "rc=$rc $(cat "$T/bg.err" "$T/bg.out" 2>&1 | tr '\n' '|')"
expect_in wrapper_says_group_lives_on "group bg lives on: 1 process still uses it" "$(cat "$T/bg.err")"
out=$("$GPUMEM" ps -p --format json 2>&1)
python3 - "$out" "$bgpid" <<'PY' && ok background_member_in_ps || fail background_member_in_ps "$out"
import json, sys
g = [g for g in json.loads(sys.argv[1]) if g["group"] == "bg"][0]
assert [p["pid"] for p in g["process_list"]] == [int(sys.argv[2])], g
PY
out=$("$GPUMEM" limit bg 2>&1)
expect_in limit_shows_live_group "bg: default 1 GiB" "$out"
# A member started now joins the same group and its limit: 100M + 64M
# context are held, so 900M more does not fit.
out=$(member bg init alloc 900M alloc 500M 2>&1)
expect_in late_member_limited "alloc -> 2" "$out"
expect_in late_member_admitted "alloc -> 0" "$out"
# The last one out (a normal exit) removes the group.
touch "$T/go"
wait_gone "$S/bg" && ok last_member_removes_group || fail last_member_removes_group "$(ls -A "$S/bg" 2>&1)"
out=$(member bg init alloc 1M 2>&1)
expect_in removed_group_is_named "group $S/bg no longer exists" "$out"
expect_in removed_group_fails_closed "alloc -> 2" "$out"

# 2. Without background members the wrapper removes the group itself.
run_sim --limit 1G --name quick -- "$CLIENT" init alloc 10M >/dev/null 2>&1
[ ! -e "$S/quick" ] && ok wrapper_removes_empty_group || fail wrapper_removes_empty_group "still there"

# 3. A SIGKILLed wrapper: its name can be used again, and the daemon removes
# such a group once no process of it is alive.
killed_run() { # NAME: a wrapper SIGKILLed while its command runs; the command then ends
    run_sim --limit 1G --name "$1" -- sh -c 'echo $$ >"$0"; exec sleep 60' "$T/$1.cmd" &
    local i w=""
    for i in $(seq 200); do [ -s "$T/$1.cmd" ] && break; sleep 0.05; done
    for i in $(seq 200); do
        w=$(pgrep -f "^$TOP/$BUILD/bin/gpumem run --sim --limit 1G --name $1 " | head -1)
        [ -n "$w" ] && break; sleep 0.05
    done
    kill -KILL "$w"
    wait $! 2>/dev/null
    kill -KILL "$(cat "$T/$1.cmd")"
}
killed_run reuse
[ -e "$S/reuse/limits" ] && ok sigkilled_wrapper_leaves_group || fail sigkilled_wrapper_leaves_group "gone"
out=$(run_sim --limit 2G --name reuse -- "$CLIENT" init info 2>&1)
expect_in name_reused_after_sigkill "total=2147483648" "$out"
[ ! -e "$S/reuse" ] && ok reused_group_removed || fail reused_group_removed "still there"
# A live group's name stays taken.
run_sim --limit 1G --name taken -- sh -c 'echo $$ >"$0"; exec sleep 60' "$T/taken.cmd" &
tj=$!
for i in $(seq 200); do [ -s "$T/taken.cmd" ] && break; sleep 0.05; done
out=$(run_sim --limit 1G --name taken -- true 2>&1)
expect_in live_name_still_refused "already exists" "$out"
kill -TERM "$(cat "$T/taken.cmd")"; wait $tj
# 4. gpumem rm: refused while a process lives (listed), --force kills it.
run_sim --limit 1G --name held --keep -- true
member held init alloc 10M hold >"$T/held.out" 2>&1 &
hj=$!
for i in $(seq 200); do grep -q holding "$T/held.out" && break; sleep 0.05; done
hp=$(sed -n 's/^holding pid=//p' "$T/held.out")
out=$("$GPUMEM" rm held 2>&1); rc=$?
[ "$rc" = 1 ] && expect_in rm_refuses_live_group "group held has 1 live process: pid $hp (alloc_client)" "$out" \
    || fail rm_refuses_live_group "rc=$rc: $out"
[ -e "$S/held/limits" ] && ok rm_refusal_keeps_group || fail rm_refusal_keeps_group "gone"
out=$("$GPUMEM" rm --force held 2>&1); rc=$?
for i in $(seq 200); do kill -0 "$hp" 2>/dev/null || break; sleep 0.05; done
kill -KILL "$hp" 2>/dev/null && fail rm_force_killed_member "still alive"
wait $hj; hrc=$?
[ "$rc" = 0 ] && [ "$hrc" = 137 ] && [ ! -e "$S/held" ] && ok rm_force_kills_and_removes \
    || fail rm_force_kills_and_removes "rc=$rc member=$hrc: $out $(ls -A "$S/held" 2>&1)"
run_sim --limit 1G --name idle --keep -- true
out=$("$GPUMEM" rm idle 2>&1); rc=$?
[ "$rc" = 0 ] && [ ! -e "$S/idle" ] && ok rm_removes_idle_group || fail rm_removes_idle_group "rc=$rc: $out"
out=$("$GPUMEM" rm nosuch 2>&1); rc=$?
[ "$rc" = 1 ] && expect_in rm_unknown_group 'no group "nosuch"' "$out" || fail rm_unknown_group "rc=$rc: $out"
out=$("$GPUMEM" rm --help); expect_in rm_help "Usage: gpumem rm [--force] GROUP..." "$out"

killed_run stale
start_daemon
wait_for '"event":"group_removed".*"group":"stale"' "$DLOG" && [ ! -e "$S/stale" ] && ok daemon_removes_stale_run_group \
    || fail daemon_removes_stale_run_group "$(ls -A "$S/stale" 2>&1); $(cat "$DLOG")"
# 5. A second daemon on the same state directory is refused.
# (Bounded: a second daemon that started would serve until stopped.)
"$GPUMEM" daemon --listen 127.0.0.1:0 --interval 0.1 >"$T/second.out" 2>&1 &
sj=$!
for i in $(seq 200); do kill -0 $sj 2>/dev/null || break; sleep 0.05; done
if kill -0 $sj 2>/dev/null; then
    fail second_daemon_refused "it runs: $(cat "$T/second.out")"
    kill_ours_daemon=$(grep -o '"pid":[0-9]*' "$T/second.out" | head -1 | cut -d: -f2)
    [ -n "$kill_ours_daemon" ] && kill -TERM "$kill_ours_daemon"
    wait $sj
else
    wait $sj; rc=$?
    [ "$rc" = 1 ] && expect_in second_daemon_refused "another gpumem daemon (pid $DPID) is already running" "$(cat "$T/second.out")" \
        || fail second_daemon_refused "rc=$rc: $(cat "$T/second.out")"
fi
stop_daemon
exit 0
