# A container's swap (docs/spill.md) comes from its own environment through
# gpumem-runtime: GPUMEM_SWAP and GPUMEM_SWAP_PROMOTE are written into the
# group's limits with its limit, and a bad value refuses the container with
# a message that quotes it. (The real runtime is a stand-in that succeeds:
# only gpumem-runtime's part is under test; docker_e2e runs the real one.)
. tests/integration/lib.sh
RT="$TOP/$BUILD/bin/gpumem-runtime"
[ "${SAN:-0}" = 1 ] && RT_RUN() { LD_PRELOAD="$ASAN_RT" "$RT" "$@"; } || RT_RUN() { "$RT" "$@"; }
fake="$T/fake-runc"
printf '#!/bin/sh\nexit 0\n' >"$fake"; chmod +x "$fake"
printf 'runtime = %s\nshim = %s\n' "$fake" "$SHIM" >"$T/runtime.conf"
export GPUMEM_RUNTIME_CONFIG="$T/runtime.conf"
mkdir -p "$GPUMEM_STATE_DIR" "$T/runc"
mkctr() { # ID ENV...: a bundle with that environment, created through the runtime
    local id=$1 b="$T/bundle-$1" env='"PATH=/bin"'
    shift
    for e in "$@"; do env="$env,\"$e\""; done
    mkdir -p "$b/rootfs/etc"
    printf '{"ociVersion":"1.0.2","process":{"env":[%s]},"root":{"path":"rootfs"}}\n' "$env" >"$b/config.json"
    RT_RUN --root "$T/runc" create --bundle "$b" "$id"
}
if mkctr sw1 GPUMEM_LIMIT=1G GPUMEM_SWAP=2G GPUMEM_SWAP_PROMOTE=1 >"$T/sw1.log" 2>&1; then
    out=$("$GPUMEM" limit sw1 2>&1)
    case "$out" in *"sw1: swap 2 GiB (promote)"*) ok runtime_reads_GPUMEM_SWAP ;; *) fail runtime_reads_GPUMEM_SWAP "$out" ;; esac
else fail runtime_reads_GPUMEM_SWAP "create: $(cat "$T/sw1.log")"; fi
if mkctr sw2 GPUMEM_LIMIT=1G >"$T/sw2.log" 2>&1; then
    out=$("$GPUMEM" limit sw2 2>&1)
    case "$out" in *swap*) fail runtime_no_swap_by_default "$out" ;; *) ok runtime_no_swap_by_default ;; esac
else fail runtime_no_swap_by_default "create: $(cat "$T/sw2.log")"; fi
if mkctr sw3 GPUMEM_LIMIT=1G GPUMEM_SWAP=lots >"$T/sw3.log" 2>&1; then
    fail runtime_refuses_bad_swap "created: $(cat "$T/sw3.log")"
else
    grep -q 'GPUMEM_SWAP=lots' "$T/sw3.log" && ok runtime_refuses_bad_swap || fail runtime_refuses_bad_swap "$(cat "$T/sw3.log")"
fi
exit ${FAILED:-0}
