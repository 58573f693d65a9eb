# gpumem top, driven for real: three groups of shimmed processes on the
# simulated GPU, `gpumem top` in a detached 80x24 tmux session, keys sent
# with send-keys and the screen read back with capture-pane.
. tests/integration/lib.sh
export GPUMEM_SIM_CTX_OVERHEAD=128M GPUMEM_SIM_DEVICES=1x16G

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
GPUMEM_SIM_STATE=$GPUMEM_SIM_STATE GPUMEM_SIM_DIR=$GPUMEM_SIM_DIR bash --norc --noprofile"
tm set-option -t top -g status off >/dev/null
screen() { tm capture-pane -p -t top "$@"; }
# wait_for PATTERN [SECONDS]: until the screen matches (grep -E).
wait_for() {
    local n=$(( ${2:-5} * 20 ))
    for _ in $(seq "$n"); do screen | grep -qE -- "$1" && return 0; sleep 0.05; done
    return 1
}
# Line numbers of the group rows, in screen order.
order() { screen | awk '$2 ~ /^(zeta|mid|alpha)$/ { printf "%s ", $2 }'; }
row() { screen | awk -v g="$1" '$2 == g'; }

tm send-keys -t top "stty -g >$T/stty.before" Enter
tm send-keys -t top "$PRE $BIN top --sim -d 0.2" Enter
if ! wait_for 'GPU0 '; then
    fail top_starts "no device line on the screen: $(screen | tr '\n' '|')"
    exit 0
fi
wait_for 'alpha' || true
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
[ "$(order)" = "zeta mid alpha " ] && ok sort_used_default || fail sort_used_default "$(order)"
tm send-keys -t top n; sleep 0.3
[ "$(order)" = "alpha mid zeta " ] && ok sort_key_n_name || fail sort_key_n_name "$(order)"
tm send-keys -t top l; sleep 0.3
[ "$(order)" = "alpha zeta mid " ] && ok sort_key_l_limit || fail sort_key_l_limit "$(order)"
tm send-keys -t top r; sleep 0.3
[ "$(order)" = "mid alpha zeta " ] && ok sort_key_r_refused || fail sort_key_r_refused "$(order)"
tm send-keys -t top s; sleep 0.3
[ "$(order)" = "zeta mid alpha " ] && ok sort_key_s_cycles || fail sort_key_s_cycles "$(order)"
tm send-keys -t top u; sleep 0.3

# Expand: the selection starts on the first row (zeta); j moves to mid.
screen | grep -q -- "- $zpid alloc_client" && fail expand_shows_pid "expanded before any key"
tm send-keys -t top e
if wait_for "\`- $zpid alloc_client +728M" 2; then ok expand_shows_pid; else fail expand_shows_pid "pid $zpid: $(screen | tr '\n' '|')"; fi
tm send-keys -t top j Enter
if wait_for "\`- $mpid alloc_client +328M" 2; then ok arrow_j_then_enter_expands_next; else fail arrow_j_then_enter_expands_next "pid $mpid: $(screen | tr '\n' '|')"; fi
tm send-keys -t top Up e
sleep 0.3
if screen | grep -q -- "- $zpid alloc_client"; then fail up_then_e_collapses "$(screen | tr '\n' '|')"; else ok up_then_e_collapses; fi
screen | grep -q -- "- $apid " && fail only_expanded_groups_list_pids "alpha's pid shown" || ok only_expanded_groups_list_pids

# Live: a new group appears on the next refresh.
start_holder later 512M alloc 64M
wait_for '^[-+ ] later +192M' 3 && ok refreshes_live || fail refreshes_live "$(screen | tr '\n' '|')"

# Resize (SIGWINCH): the frame follows the new size.
tm resize-window -t top -x 100 -y 30 2>/dev/null
sleep 0.5
s=$(screen)
foot=$(printf '%s\n' "$s" | sed -n 30p)
case "$foot" in *"q quit"*) ok resize_redraws ;; *) fail resize_redraws "line 30: $foot" ;; esac
tm resize-window -t top -x 80 -y 24 2>/dev/null

# q: the process is gone, the normal screen is back with the shell on it,
# and the terminal settings are those from before.
toppid=$(pgrep -f "^$BIN top --sim -d 0.2" | head -1)
tm send-keys -t top q
for _ in $(seq 60); do kill -0 "$toppid" 2>/dev/null || break; sleep 0.05; done
if kill -0 "$toppid" 2>/dev/null; then fail q_quits "pid $toppid still running"; else ok q_quits; fi
sleep 0.2
[ "$(tm display -p -t top '#{alternate_on}#{cursor_flag}')" = 01 ] && ok q_leaves_alternate_screen_cursor_on \
    || fail q_leaves_alternate_screen_cursor_on "$(tm display -p -t top '#{alternate_on} #{cursor_flag}')"
tm send-keys -t top "stty -g >$T/stty.after" Enter
sleep 0.3
cmp -s "$T/stty.before" "$T/stty.after" && ok q_restores_termios || fail q_restores_termios "$(cat "$T/stty.before" "$T/stty.after" 2>&1)"
expect_in shell_visible_again "top --sim -d 0.2" "$(screen)"

# SIGTERM and SIGINT: the same clean exit.
for sig in TERM INT; do
    rm -f "$T/stty.after"
    tm send-keys -t top "$PRE $BIN top --sim -d 0.2" Enter
    wait_for 'GPU0 ' || { fail "sig${sig}_restores" "did not start"; continue; }
    toppid=$(pgrep -f "^$BIN top --sim -d 0.2" | head -1)
    kill -"$sig" "$toppid"
    for _ in $(seq 60); do kill -0 "$toppid" 2>/dev/null || break; sleep 0.05; done
    sleep 0.2
    tm send-keys -t top "stty -g >$T/stty.after" Enter
    sleep 0.3
    if kill -0 "$toppid" 2>/dev/null; then
        fail "sig${sig}_restores" "still running"
    elif ! cmp -s "$T/stty.before" "$T/stty.after"; then
        fail "sig${sig}_restores" "terminal settings differ"
    elif [ "$(tm display -p -t top '#{alternate_on}#{cursor_flag}')" != 01 ]; then
        fail "sig${sig}_restores" "alternate screen or hidden cursor left"
    else
        ok "sig${sig}_restores"
    fi
done
