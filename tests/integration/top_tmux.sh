# gpumem top, driven for real: three groups of shimmed processes on a
# simulated machine of two GPUs (then a group on both, one over its limit, an
# over-committed GPU, and the daemon's leak state), `gpumem top` in a detached 80x24 tmux session, keys sent
# with send-keys and the screen read back with capture-pane. Every check
# waits for the screen (or the file, or the process) to show what it expects,
# never for a fixed time: polled every 50 ms, failing with the screen dumped
# only after a bound far above any normal redraw (15 s).
. tests/integration/lib.sh
export GPUMEM_SIM_CTX_OVERHEAD=128M GPUMEM_SIM_DEVICES=2x16G

# ---- without a terminal ----------------------------------------------------
out=$("$GPUMEM" top --sim -d 0.2 </dev/null 2>&1 >"$T/top.out"); rc=$?
if [ "$rc" = 2 ] && [ ! -s "$T/top.out" ]; then
    expect_in not_a_terminal "gpumem top: stdout is not a terminal; use gpumem ps for a snapshot" "$out"
else
    fail not_a_terminal "status $rc, stdout: $(head -c 200 "$T/top.out")"
fi
for bad in abc 0 -1 1e3 0x10 "" 1.5s 99999; do
    out=$("$GPUMEM" top -d "$bad" 2>&1 >/dev/null); rc=$?
    case "$rc:$out" in
    "2:gpumem top: --delay \"$bad\": expected seconds"*) ;;
    *) fail "bad_delay_${bad:-empty}" "status $rc: $out"; continue ;;
    esac
    ok "bad_delay_${bad:-empty}"
done
out=$("$GPUMEM" top --bogus 2>&1); rc=$?
[ "$rc" = 2 ] && ok unknown_option || fail unknown_option "status $rc: $out"
out=$("$GPUMEM" top --help 2>&1); rc=$?
case "$rc:$out" in 0:"Usage: gpumem top"*q,\ Q*) ok help ;; *) fail help "status $rc: $(printf '%s' "$out" | head -3)" ;; esac
out=$("$GPUMEM" --help 2>&1)
expect_in listed_in_gpumem_help "  top " "$out"

# ---- in tmux ---------------------------------------------------------------
if ! command -v tmux >/dev/null; then
    skip top_tmux "tmux is not installed"
    exit 0
fi
BIN="$TOP/$BUILD/bin/gpumem"
PRE=""
[ "${SAN:-0}" = 1 ] && PRE="LD_PRELOAD=$ASAN_RT ASAN_OPTIONS=$ASAN_OPTIONS"
SOCK="gpumem-test-$$"
tm() { tmux -L "$SOCK" "$@"; }
trap 'tm kill-server 2>/dev/null; cleanup' EXIT

G=1073741824 M=1048576
start_holder() { # NAME LIMIT OPS...
    local name=$1 limit=$2; shift 2
    run_sim --limit "$limit" --name "$name" --keep -- "$CLIENT" init "$@" hold >"$T/$name.log" 2>&1 &
    for _ in $(seq 200); do grep -q holding "$T/$name.log" && return 0; sleep 0.05; done
    fail "holder_$name" "did not start: $(tr '\n' '|' <"$T/$name.log")"
}
# used: zeta 728M > mid 328M > alpha 160M; limits: alpha 4G > zeta 2G > mid 1G;
# mid was refused once (4G over its 1G).
start_holder zeta 2G alloc 600M
start_holder mid 1G alloc 200M alloc 4G
start_holder alpha 4G alloc 32M
hpid() { pgrep -f "^$CLIENT init alloc $1" | head -1; }
zpid=$(hpid "600M hold") mpid=$(hpid "200M alloc 4G hold") apid=$(hpid "32M hold")

# A plain shell in the pane, with the test's private state passed in
# explicitly (a tmux server does not reliably inherit the client's env).
tm -f /dev/null new-session -d -x 80 -y 24 -s top \
    "env -i PATH=$PATH HOME=$T TERM=xterm-256color PS1='$ ' GPUMEM_STATE_DIR=$GPUMEM_STATE_DIR \
GPUMEM_SIM_STATE=$GPUMEM_SIM_STATE GPUMEM_SIM_DIR=$GPUMEM_SIM_DIR GPUMEM_SIM_DEVICES=$GPUMEM_SIM_DEVICES \
bash --norc --noprofile"
tm set-option -t top -g status off >/dev/null
screen() { tm capture-pane -p -t top "$@"; }
# until CMD...: until CMD succeeds (every 50 ms; false after 15 s).
until_ok() {
    for _ in $(seq 300); do "$@" && return 0; sleep 0.05; done
    return 1
}
shows() { screen | grep -qE -- "$1"; }
# wait_for PATTERN: until the screen matches (grep -E).
wait_for() { until_ok shows "$1"; }
# The group rows' names, in screen order.
order() { screen | awk '$2 ~ /^(zeta|mid|alpha)$/ { printf "%s ", $2 }'; }
order_is() { [ "$(order)" = "$1" ]; }
row() { screen | awk -v g="$1" '$2 == g'; }
dump() { screen | tr '\n' '|'; }
# sort_key KEY NAME ORDER: press KEY, then until the footer names the sort
# and the rows are in ORDER.
sort_key() {
    tm send-keys -t top "$1"
    if until_ok shows " - sort $2 - " && until_ok order_is "$3"; then ok "$4"; else fail "$4" "order $(order): $(dump)"; fi
}
# file_written FILE: until FILE holds a whole line (what the shell wrote).
line_in() { [ -s "$1" ] && [ "$(tail -c1 "$1" | od -An -c | tr -d ' ')" = '\n' ]; }
gone() { ! kill -0 "$1" 2>/dev/null; }
screen_state() { [ "$(tm display -p -t top '#{alternate_on}#{cursor_flag}')" = "$1" ]; }

tm send-keys -t top "stty -g >$T/stty.before" Enter
tm send-keys -t top "$PRE $BIN top --sim -d 0.2" Enter
# Started: the device line and all three groups' rows.
if ! wait_for 'GPU0 ' || ! until_ok order_is "zeta mid alpha "; then
    fail top_starts "no device line or not all three groups on the screen: $(dump)"
    exit 0
fi
ok top_starts

s=$(screen)
lines=$(printf '%s\n' "$s" | wc -l)
wide=$(printf '%s\n' "$s" | awk 'length > 80' | wc -l)
[ "$lines" = 24 ] && [ "$wide" = 0 ] && ok fits_80x24 || fail fits_80x24 "$lines lines, $wide wider than 80"
dev=$(printf '%s\n' "$s" | grep '^GPU0 ')
case "$dev" in
*"["*"|"*"]"*"/16G"*"granted 7G"*) ok device_bar_used_total_granted ;;
*) fail device_bar_used_total_granted "$dev" ;;
esac
expect_in header_columns "GROUP" "$(printf '%s\n' "$s" | grep USED | grep LIMIT | grep REFUSED | grep LEAK)"
z=$(row zeta)
case "$z" in *" 728M "*" 2G "*"36%"*) ok group_used_limit ;; *) fail group_used_limit "zeta row: $z" ;; esac
m=$(row mid)
case "$m" in *" 328M "*" 1G "*" 1 "*" -") ok refusals_count_shown ;; *) fail refusals_count_shown "mid row: $m" ;; esac
# Highlighted: the count is drawn bold+reverse (tmux reports it as SGR 1 and 7).
me=$(screen -e | grep ' mid ')
case "$me" in
*$'\e['*1*7*m*1*) ok refusals_highlighted ;;
*) fail refusals_highlighted "$(printf '%q' "$me")" ;;
esac
case "$z" in *" 0 "*" -") ok leak_column_not_available ;; *) fail leak_column_not_available "zeta row: $z" ;; esac

# Sort: default used; n name; l limit; r refused; s cycles (refused -> used).
order_is "zeta mid alpha " && shows " - sort used - " && ok sort_used_default || fail sort_used_default "$(order): $(dump)"
sort_key n name "alpha mid zeta " sort_key_n_name
sort_key l limit "alpha zeta mid " sort_key_l_limit
sort_key r refused "mid alpha zeta " sort_key_r_refused
sort_key s used "zeta mid alpha " sort_key_s_cycles
sort_key n name "alpha mid zeta " sort_key_n_again
sort_key u used "zeta mid alpha " sort_key_u_used

# Expand: the selection starts on the first row (zeta); j moves to mid.
screen | grep -q -- "- $zpid alloc_client" && fail expand_shows_pid "expanded before any key"
tm send-keys -t top e
if wait_for "\`- $zpid alloc_client +728M"; then ok expand_shows_pid; else fail expand_shows_pid "pid $zpid: $(dump)"; fi
tm send-keys -t top j Enter
if wait_for "\`- $mpid alloc_client +328M"; then ok arrow_j_then_enter_expands_next; else fail arrow_j_then_enter_expands_next "pid $mpid: $(dump)"; fi
# Zeta's pid is on the screen until the keys are handled, so waiting for it
# to go cannot pass early.
tm send-keys -t top Up e
not_shown() { ! shows "$1"; }
if until_ok not_shown "- $zpid alloc_client"; then ok up_then_e_collapses; else fail up_then_e_collapses "$(dump)"; fi
s=$(screen)
case "$s" in
*"- $apid "*) fail only_expanded_groups_list_pids "alpha's pid shown: $(dump)" ;;
*"- $mpid alloc_client"*) ok only_expanded_groups_list_pids ;;
*) fail only_expanded_groups_list_pids "mid's pid not shown: $(dump)" ;;
esac

# Live: a new group appears on the next refresh.
start_holder later 512M alloc 64M
wait_for '^[-+ ] later +0 +192M' && ok refreshes_live || fail refreshes_live "$(dump)"

# Resize (SIGWINCH): the frame follows the new size.
tm resize-window -t top -x 100 -y 30 2>/dev/null
foot_on() { screen | sed -n "$1p" | grep -q "q quit"; }
if until_ok foot_on 30; then ok resize_redraws; else fail resize_redraws "line 30: $(screen | sed -n 30p)"; fi
# Wide enough for the HISTORY column: a sparkline of what top has seen.
spark() { shows '^  .* LEAK HISTORY$' && row zeta | grep -Eq ' - [_.:=+*#-]+$'; }
if until_ok spark; then ok history_column_when_wide; else fail history_column_when_wide "$(dump)"; fi
tm resize-window -t top -x 80 -y 24 2>/dev/null
until_ok foot_on 24 || fail resize_back "line 24: $(screen | sed -n 24p)"

# 40 columns is the documented minimum: drawn, not "too small".
tm resize-window -t top -x 40 -y 24 2>/dev/null
narrow() { shows '^  \*?GROUP' && ! shows 'too small' && [ "$(screen | awk 'length > 40' | wc -l)" = 0 ]; }
if until_ok narrow; then ok draws_at_40_columns; else fail draws_at_40_columns "$(dump)"; fi
tm resize-window -t top -x 80 -y 24 2>/dev/null
until_ok foot_on 24 || fail resize_back_80 "line 24: $(screen | sed -n 24p)"

# A group on both GPUs: a line per GPU, never summed. GPU 1 at 81% of its
# limit is yellow; lowered below its usage (108%), red.
run_sim --limit 0=1G --limit 1=4G --name pair --keep -- "$CLIENT" init alloc 16M device 1 alloc 3200M hold \
    >"$T/pair.log" 2>&1 &
pair_lines() { screen | grep -A1 '^[-+ ] pair '; }
pair_ok() {
    local p; p=$(pair_lines)
    [[ "$(sed -n 1p <<<"$p")" =~ ^\+\ pair\ +0\ +144M\ +1G\ +14%\  ]] &&
        [[ "$(sed -n 2p <<<"$p")" =~ ^\ +1\ +3\.25G\ +4G\ +81%\  ]]
}
if until_ok pair_ok; then ok line_per_gpu_not_summed; else fail line_per_gpu_not_summed "$(pair_lines | tr '\n' '|') :: $(dump)"; fi
yellow() { screen -e | grep -A1 ' pair ' | tail -1 | grep -q $'\e\[33m *81%'; }
if until_ok yellow; then ok pct_yellow_from_80; else fail pct_yellow_from_80 "$(screen -e | grep -A1 ' pair ' | tail -1 | cat -v)"; fi
"$GPUMEM" limit pair 1=3G >/dev/null
red() { screen -e | grep -A1 ' pair ' | tail -1 | grep -q $'\e\[[0-9;]*31m *108%'; }
if until_ok red; then ok pct_red_from_100; else fail pct_red_from_100 "$(screen -e | grep -A1 ' pair ' | tail -1 | cat -v)"; fi
# Sort by %LIM (the worst GPU of each group): pair 108%, zeta 36%, mid 32%, alpha 4%.
porder() { screen | awk '$2 ~ /^(pair|zeta|mid|alpha)$/ { printf "%s ", $2 }'; }
porder_is() { [ "$(porder)" = "$1" ]; }
tm send-keys -t top p
if until_ok shows " - sort %lim - " && until_ok porder_is "pair zeta mid alpha "; then ok sort_key_p_pct
else fail sort_key_p_pct "$(porder): $(dump)"; fi

# Over-commit: 10G more granted on each 16G GPU; marked, not clipped.
start_holder huge 10G alloc 16M
over_shown() { screen | grep -E '^GPU[01] ' | grep -c 'granted [0-9.]*G (over)$' | grep -qx 2; }
if until_ok over_shown; then ok overcommit_marked_not_clipped; else fail overcommit_marked_not_clipped "$(screen | grep '^GPU')"; fi

# ? shows the help screen; any key goes back.
tm send-keys -t top '?'
if wait_for 'any key: back' && wait_for 'LEAK +the daemon'; then ok help_screen; else fail help_screen "$(dump)"; fi
tm send-keys -t top x
if wait_for '^  +GROUP +GPU'; then ok help_any_key_returns; else fail help_any_key_returns "$(dump)"; fi

# With the daemon: its leak detection fills LEAK ("no", and "YES" for a
# process that keeps allocating and never frees), and the history is its.
DLOG="$T/daemon.log"
"$GPUMEM" daemon --listen 127.0.0.1:0 --interval 0.1 --log "$DLOG" --leak-window 3 --leak-long-window 30 \
    --leak-min-growth 64M &
DJOB=$!
# Its own pid, from its start event ($! is a subshell in SAN runs).
started() { grep -q '"event":"start"' "$DLOG" 2>/dev/null; }
until_ok started || fail daemon_started "$(cat "$DLOG")"
DPID=$(grep -o '"pid":[0-9]*' "$DLOG" | head -1 | cut -d: -f2)
leak_args=(init)
for _ in $(seq 60); do leak_args+=(alloc 32M sleep 300); done
run_sim --limit 8G --name leaky --keep -- "$CLIENT" "${leak_args[@]}" hold >"$T/leaky.log" 2>&1 &
if wait_for '^[-+ ] zeta .* no$'; then ok leak_column_from_daemon; else fail leak_column_from_daemon "$(row zeta) :: $(tail -3 "$DLOG")"; fi
if wait_for '^[-+ ] leaky .* YES$'; then ok leak_suspected_shown; else fail leak_suspected_shown "$(row leaky) :: $(grep leak "$DLOG" | tail -2)"; fi
if wait_for '^[a-z]+ GPU[0-9] daemon [0-9]+s: [_.:=+*#-]+'; then ok history_from_daemon; else fail history_from_daemon "$(dump)"; fi
kill -TERM "$DPID"
until_ok gone "$DPID" || fail daemon_stops "pid $DPID still running"
wait "$DJOB"
if wait_for '^[-+ ] zeta .* -$'; then ok leak_dash_after_daemon_stops; else fail leak_dash_after_daemon_stops "$(row zeta)"; fi

# q: the process is gone, the normal screen is back with the shell on it,
# and the terminal settings are those from before.
toppid=$(pgrep -f "^$BIN top --sim -d 0.2" | head -1)
tm send-keys -t top q
if until_ok gone "$toppid"; then ok q_quits; else fail q_quits "pid $toppid still running"; fi
until_ok screen_state 01 && ok q_leaves_alternate_screen_cursor_on \
    || fail q_leaves_alternate_screen_cursor_on "$(tm display -p -t top '#{alternate_on} #{cursor_flag}')"
line_in "$T/stty.before" || fail stty_before_written "$(cat "$T/stty.before" 2>&1)"
tm send-keys -t top "stty -g >$T/stty.after" Enter
until_ok line_in "$T/stty.after"
cmp -s "$T/stty.before" "$T/stty.after" && ok q_restores_termios || fail q_restores_termios "$(cat "$T/stty.before" "$T/stty.after" 2>&1)"
expect_in shell_visible_again "top --sim -d 0.2" "$(screen)"

# SIGTERM and SIGINT: the same clean exit.
for sig in TERM INT; do
    rm -f "$T/stty.after"
    tm send-keys -t top "$PRE $BIN top --sim -d 0.2" Enter
    wait_for 'GPU0 ' || { fail "sig${sig}_restores" "did not start"; continue; }
    toppid=$(pgrep -f "^$BIN top --sim -d 0.2" | head -1)
    kill -"$sig" "$toppid"
    until_ok gone "$toppid"
    tm send-keys -t top "stty -g >$T/stty.after" Enter
    until_ok line_in "$T/stty.after"
    if kill -0 "$toppid" 2>/dev/null; then
        fail "sig${sig}_restores" "still running"
    elif ! cmp -s "$T/stty.before" "$T/stty.after"; then
        fail "sig${sig}_restores" "terminal settings differ"
    elif ! until_ok screen_state 01; then
        fail "sig${sig}_restores" "alternate screen or hidden cursor left"
    else
        ok "sig${sig}_restores"
    fi
done
