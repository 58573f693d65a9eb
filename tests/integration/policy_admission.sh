# Admission of requests (docs/policy.md): a start whose request does not fit
# is refused with what is free and who holds it; racing creators cannot
# over-commit; a creator killed mid-way leaves nothing that holds a
# request; gpumem-runtime and gpumem limit --request admit the same way.
. tests/integration/lib.sh
export GPUMEM_SIM_DEVICES=1x16G
mkdir -p "$GPUMEM_STATE_DIR"
J="$GPUMEM_STATE_DIR/.policy/decisions.jsonl"

# A holder of 10G (kept until its go-ahead file exists).
run_sim --request 10G --priority high --name holder -- "$CLIENT" init await "$T/go-holder" >"$T/holder.out" 2>&1 &
hjob=$!
for i in $(seq 200); do grep -q awaiting "$T/holder.out" && break; sleep 0.05; done

out=$(run_sim --request 8G --name late -- true 2>&1); rc=$?
[ $rc = 1 ] && expect_in refusal_message 'request 8 GiB does not fit on GPU-' "$out" || fail refusal_message "rc=$rc: $out"
expect_in refusal_names_holder 'holder 10 GiB (high)' "$out"
expect_in refusal_says_free 'of which 6 GiB is not requested by anyone' "$out"
[ ! -e "$GPUMEM_STATE_DIR/late" ] && ok refused_creates_nothing || fail refused_creates_nothing "$(ls "$GPUMEM_STATE_DIR")"
grep -q '"event":"admission_refused","group":"late"' "$J" && ok refusal_journaled || fail refusal_journaled "$(cat "$J")"

out=$(run_sim --request 8G --limit 4G --name over -- true 2>&1)
expect_in request_above_limit 'request 8 GiB is above the limit 4 GiB' "$out"

# What fits is admitted beside it.
run_sim --request 6G --name fits -- true && ok fits_beside || fail fits_beside "rc=$?"

# gpumem limit --request: a raise past the GPU is refused, changing nothing.
out=$("$GPUMEM" limit --request 17G holder 2>&1); rc=$?
[ $rc = 1 ] && expect_in limit_request_admitted 'does not fit' "$out" || fail limit_request_admitted "rc=$rc $out"
"$GPUMEM" limit holder | grep -q 'request default 10 GiB' && ok limit_request_unchanged \
    || fail limit_request_unchanged "$("$GPUMEM" limit holder)"

# Racing creators: 8 starts of 2G each beside the 10G holder on 16G: 3 fit.
for i in 1 2 3 4 5 6 7 8; do
    (run_sim --request 2G --name "race$i" -- "$CLIENT" await "$T/go-race" >/dev/null 2>&1; echo "$i $?" >>"$T/race.rc") &
done
for i in $(seq 400); do
    n=$(ls -d "$GPUMEM_STATE_DIR"/race* 2>/dev/null | wc -l); r=$(wc -l <"$T/race.rc" 2>/dev/null || echo 0)
    [ $((n + r)) -ge 8 ] && [ "$r" -ge 5 ] && break; sleep 0.05
done
n=$(ls -d "$GPUMEM_STATE_DIR"/race* 2>/dev/null | wc -l)
[ "$n" = 3 ] && ok race_admits_exactly_what_fits || fail race_admits_exactly_what_fits "$n groups: $(ls "$GPUMEM_STATE_DIR")"
touch "$T/go-race"
for i in $(seq 200); do [ "$(wc -l <"$T/race.rc")" -ge 8 ] && break; sleep 0.05; done

# A creator killed while waiting in the queue: its entry goes with it.
run_sim --request 8G --wait --name doomed -- true >"$T/doomed.out" 2>&1 &
djob=$!
for i in $(seq 200); do grep -q 'waits in the queue' "$T/doomed.out" && break; sleep 0.05; done
"$GPUMEM" queue | grep -q doomed && ok queued_shown || fail queued_shown "$("$GPUMEM" queue)"
# (the waiting process is gpumem itself, whose pid the entry names)
wpid=$("$GPUMEM" queue --format json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["queue"][0]["pid"])')
kill -KILL "$wpid"; wait $djob 2>/dev/null
"$GPUMEM" queue | grep -q doomed && fail killed_waiter_dropped "$("$GPUMEM" queue)" || ok killed_waiter_dropped

# A creator killed holding the lock after creating its group: the next
# admission removes the half-made group (its admitting record says which).
run_sim --keep --request 4G --name halfmade -- true
printf '%s' "$GPUMEM_STATE_DIR/halfmade" >"$GPUMEM_STATE_DIR/.policy/admitting"
run_sim --request 6G --name after -- true && ok after_half_made_admitted || fail after_half_made_admitted "rc=$?"
[ ! -e "$GPUMEM_STATE_DIR/halfmade" ] && ok half_made_group_removed || fail half_made_group_removed "$(ls "$GPUMEM_STATE_DIR")"

# gpumem-runtime: the container's env, refused with the same message.
RT="$TOP/$BUILD/bin/gpumem-runtime"
[ "${SAN:-0}" = 1 ] && RT_RUN() { LD_PRELOAD="$ASAN_RT" "$RT" "$@"; } || RT_RUN() { "$RT" "$@"; }
fake="$T/fake-runc"
printf '#!/bin/sh\nexit 0\n' >"$fake"; chmod +x "$fake"
printf 'runtime = %s\nshim = %s\nsim = %s\nsim-state = %s\n' "$fake" "$SHIM" "$SIMDIR" "$GPUMEM_SIM_STATE" >"$T/runtime.conf"
export GPUMEM_RUNTIME_CONFIG="$T/runtime.conf"
mkctr() { # ID ENV...: a bundle with that env, created through the runtime
    local id=$1 b="$T/bundle-$1" env='"PATH=/bin"'; shift
    for e in "$@"; do env="$env,\"$e\""; done
    mkdir -p "$b/rootfs/etc"
    printf '{"ociVersion":"1.0.2","process":{"env":[%s]},"root":{"path":"rootfs"}}\n' "$env" >"$b/config.json"
    RT_RUN --root "$T/runc" create --bundle "$b" "$id" 2>&1
}
out=$(mkctr ctr1 NVIDIA_GPU_MEMORY_REQUEST=4096 GPUMEM_PRIORITY=low); rc=$?
[ $rc = 0 ] && "$GPUMEM" limit ctr1 | grep -q 'request default 4 GiB' && "$GPUMEM" limit ctr1 | grep -q 'priority low' \
    && ok runtime_request_from_env || fail runtime_request_from_env "rc=$rc $out $("$GPUMEM" limit ctr1 2>&1)"
out=$(mkctr ctr2 NVIDIA_GPU_MEMORY_REQUESTS=4096); rc=$?
[ $rc != 0 ] && expect_in runtime_refusal 'ctr1 4 GiB (low)' "$out" || fail runtime_refusal "rc=$rc $out"
out=$(mkctr ctr3 GPUMEM_REQUEST=4G GPUMEM_WAIT=0.3); rc=$?
[ $rc != 0 ] && expect_in runtime_wait_times_out 'gave up after waiting' "$out" || fail runtime_wait_times_out "rc=$rc $out"
out=$(mkctr ctr4 GPUMEM_REQUEST=1G GPUMEM_OOM=wait:forever); rc=$?
[ $rc != 0 ] && expect_in runtime_bad_oom 'GPUMEM_OOM=wait:forever' "$out" || fail runtime_bad_oom "rc=$rc $out"

touch "$T/go-holder"
wait $hjob
exit 0
