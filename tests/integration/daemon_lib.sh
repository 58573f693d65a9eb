# Sourced by daemon_*.sh after lib.sh: start and stop `gpumem daemon` on a
# free loopback port (port 0; the start event names the one bound).

# wait_for REGEX FILE [TRIES]: until FILE has a line matching REGEX (0.05 s steps).
wait_for() {
    local i
    for i in $(seq "${3:-200}"); do grep -Eq -- "$1" "$2" 2>/dev/null && return 0; sleep 0.05; done
    return 1
}

# Sets DPID (the daemon's own pid), DJOB (the shell job), URL, DLOG.
start_daemon() {
    DLOG="$T/daemon.log"
    : >"$DLOG"
    "$GPUMEM" daemon --listen 127.0.0.1:0 --interval 0.1 --log "$DLOG" "$@" &
    DJOB=$!
    if ! wait_for '"event":"start"' "$DLOG"; then
        fail daemon_started "$(cat "$DLOG")"
        exit 1
    fi
    DPID=$(grep -o '"pid":[0-9]*' "$DLOG" | head -1 | cut -d: -f2)
    URL="http://127.0.0.1:$(grep -o '"port":[0-9]*' "$DLOG" | head -1 | cut -d: -f2)"
}

# SIGTERM, then the exit status in DRC.
stop_daemon() {
    kill -TERM "$DPID"
    wait "$DJOB"
    DRC=$?
}
