#!/usr/bin/env bash
# NVIDIA's per-cgroup driver limits (r615+) as the second line of
# enforcement, on the simulated GPU's emulation of them: gpumem-runtime sets
# the driver's limit for the container's cgroup v2 after the real runtime
# created it, reads it back, verifies it on `start`; `gpumem limit` changes
# it; removing the group clears it; a process of the cgroup that bypasses
# the shim is refused by the driver; where the call does not exist (older
# driver), the container has no cgroup v2 of its own (cgroup v1 / hybrid),
# the device is MIG, or the caller is not root, the shim alone enforces and
# `gpumem ps` says so, with why. The "real runtime" is a script that puts
# the container's process in a cgroup of its own, as runc does.
. tests/integration/lib.sh
RT="$TOP/$BUILD/bin/gpumem-runtime"
[ "${SAN:-0}" = 1 ] && RT_RUN() { LD_PRELOAD="$ASAN_RT" "$RT" "$@"; } || RT_RUN() { "$RT" "$@"; }
ML() { LD_PRELOAD="$ASAN_RT" LD_LIBRARY_PATH="$SIMDIR" "$PROGS/nvml_memlimits" "$@"; }
MIGP() { LD_PRELOAD="$ASAN_RT" LD_LIBRARY_PATH="$SIMDIR" "$PROGS/sim_mig_linked" "$@"; }
G=$((1 << 30)) M=$((1 << 20)) MAX=18446744073709551615

CG=""
for d in /sys/fs/cgroup /sys/fs/cgroup/unified; do
    [ "$(stat -f -c %T "$d" 2>/dev/null)" = cgroup2fs ] && CG=$d && break
done
if [ -z "$CG" ] || ! mkdir "$CG/gpumem-test-$$" 2>/dev/null; then
    skip driver_limits "no writable cgroup v2 hierarchy (needs root and cgroup v2 at /sys/fs/cgroup or /sys/fs/cgroup/unified)"
    exit 0
fi
CGT="$CG/gpumem-test-$$"
trap 'kill_ours; for c in "$CGT"/*/; do [ -d "$c" ] && rmdir "$c"; done; rmdir "$CGT"; rm -rf "$T"' EXIT

export GPUMEM_SIM_DEVICES="H100:80G,A100:80G/3g.40gb+4g.40gb" GPUMEM_SIM_DRIVER_VERSION=615.10.01
export GPUMEM_SIM_CTX_OVERHEAD=0
nv=$(MIGP nvml 2>&1)
U0=$(sed -n 's/^gpu 0 uuid=\([^ ]*\).*/\1/p' <<<"$nv") MIG=$(sed -n 's/^mig 1\.0 uuid=\([^ ]*\).*/\1/p' <<<"$nv")

# The real runtime: create puts a process (the container's init) in a cgroup
# of its own under $CGT and writes its pid to --pid-file, as runc does;
# ids starting with "root-" leave it in the cgroup v2 root, as on a host
# whose runtime makes cgroup v1 cgroups only. delete ends it.
fake="$T/fake-runc"
cat >"$fake" <<EOF
#!/bin/bash
cmd="" pidfile="" id="\${@: -1}"
for ((i = 1; i <= \$#; i++)); do
    case "\${!i}" in create|start|delete|state|kill) [ -z "\$cmd" ] && cmd=\${!i} ;;
    --pid-file) j=\$((i + 1)); pidfile=\${!j} ;; esac
done
case "\$cmd" in
create)
    if [[ \$id == root-* ]]; then sleep 1000 </dev/null >/dev/null 2>&1 &
    else mkdir -p "$CGT/\$id"; sleep 1000 </dev/null >/dev/null 2>&1 & echo \$! >"$CGT/\$id/cgroup.procs"
    fi
    echo \$! >"\$pidfile"; echo \$! >"$T/pid-\$id" ;;
delete)
    kill -KILL "\$(cat "$T/pid-\$id")" 2>/dev/null; sleep 0.2; rmdir "$CGT/\$id" 2>/dev/null; true ;;
esac
exit 0
EOF
chmod +x "$fake"
{ echo "runtime = $fake"; echo "shim = $SHIM"; echo "sim = $SIMDIR"; echo "sim-state = $GPUMEM_SIM_STATE"; } >"$T/runtime.conf"
export GPUMEM_RUNTIME_CONFIG="$T/runtime.conf"
mkdir -p "$GPUMEM_STATE_DIR" "$T/runc"
mkctr() { # ID ENV-JSON-STRINGS: a bundle created and started through the runtime
    local b="$T/bundle-$1"
    mkdir -p "$b/rootfs/etc"
    printf '{"ociVersion":"1.0.2","process":{"env":["PATH=/bin",%s]},"root":{"path":"rootfs"}}\n' "$2" >"$b/config.json"
    RT_RUN --root "$T/runc" create --bundle "$b" --pid-file "$T/$1.pid" "$1" 2>"$T/$1.create.err" || fail "create_$1" "rc=$?"
}
enforcement() { "$GPUMEM" ps -a --format json | /usr/bin/python3 -c '
import json, sys
g = [g for g in json.load(sys.stdin) if g["group"] == sys.argv[1]][0]
print(g["enforcement"], "|", g["enforcement_reason"])' "$1"; }
# in_cgroup ID CMD...: CMD in container ID's cgroup, without the shim.
in_cgroup() { local c="$CGT/$1"; shift; sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$c" "$@"; }

# Set and verified: one GPU limited to 1 GiB.
mkctr c1 "\"GPUMEM_LIMIT=0=1G\""
e=$(enforcement c1)
[[ $e == "shim+driver | " ]] && ok runtime_sets_driver_limit || fail runtime_sets_driver_limit "$e; $(cat "$T/c1.create.err")"
g=$(ML get "$U0" "$CGT/c1")
[ "$g" = "rc=0 soft=0 hard=$G used=0" ] && ok driver_reads_back_group_limit || fail driver_reads_back_group_limit "$g"
out=$(RT_RUN --root "$T/runc" start c1 2>&1)
[ -z "$out" ] && ok start_verifies_quietly || fail start_verifies_quietly "$out"
# A process of the container's cgroup without the shim: the driver holds it.
a=$(in_cgroup c1 env LD_LIBRARY_PATH="$SIMDIR" CUDA_VISIBLE_DEVICES="$U0" "$PROGS/sim_mig_linked" alloc $((1536 * M)) 2>&1)
b=$(in_cgroup c1 env LD_LIBRARY_PATH="$SIMDIR" CUDA_VISIBLE_DEVICES="$U0" "$PROGS/sim_mig_linked" alloc $((768 * M)) 2>&1)
o=$(CUDA_VISIBLE_DEVICES="$U0" MIGP alloc $((1536 * M)) 2>&1)
if [[ $a == "alloc rc=2 "* && $b == "alloc rc=0 "* && $o == "alloc rc=0 "* ]]; then ok driver_refuses_past_hard_limit_in_cgroup_only
else fail driver_refuses_past_hard_limit_in_cgroup_only "$a | $b | outside: $o"; fi

# Changed with gpumem limit.
out=$("$GPUMEM" limit c1 "$U0=2G" 2>&1)
g=$(ML get "$U0" "$CGT/c1")
a=$(in_cgroup c1 env LD_LIBRARY_PATH="$SIMDIR" CUDA_VISIBLE_DEVICES="$U0" "$PROGS/sim_mig_linked" alloc $((1536 * M)) 2>&1)
if [[ $out == *"driver limits updated (enforcement shim+driver)"* && $g == "rc=0 soft=0 hard=$((2 * G)) used=0" && $a == "alloc rc=0 "* ]]; then
    ok limit_change_changes_driver_limit
else fail limit_change_changes_driver_limit "$out | $g | $a"; fi

# Lost in the driver (set back by hand): start says so, ps shows shim.
ML set "$U0" "$CGT/c1" 0 max >/dev/null
out=$(RT_RUN --root "$T/runc" start c1 2>&1)
e=$(enforcement c1)
if [[ $out == *"is not the group's"*"the shim alone enforces"* && $e == "shim | "*"not the group's"* ]]; then ok start_detects_lost_driver_limit
else fail start_detects_lost_driver_limit "$out | $e"; fi
"$GPUMEM" limit c1 "$U0=1G" >/dev/null 2>&1
[[ $(enforcement c1) == "shim+driver | " ]] && ok limit_restores_driver_limit || fail limit_restores_driver_limit "$(enforcement c1)"

# Cleared when the group is removed.
RT_RUN --root "$T/runc" delete c1 2>/dev/null
mkdir -p "$CGT/c1"    # the same path again: no limit left on it
g=$(ML get "$U0" "$CGT/c1")
[ "$g" = "rc=0 soft=0 hard=$MAX used=0" ] && [ ! -e "$GPUMEM_STATE_DIR/c1" ] && ok delete_clears_driver_limit ||
    fail delete_clears_driver_limit "$g; $(ls "$GPUMEM_STATE_DIR")"
rmdir "$CGT/c1"
mkctr c2 "\"GPUMEM_LIMIT=0=1G\""
"$GPUMEM" rm --force c2 >/dev/null 2>&1
g=$(ML get "$U0" "$CGT/c2")
[ "$g" = "rc=0 soft=0 hard=$MAX used=0" ] && ok gpumem_rm_clears_driver_limit || fail gpumem_rm_clears_driver_limit "$g"

# Where the driver cannot: the shim alone, and ps says why.
mkctr root-c3 "\"GPUMEM_LIMIT=0=1G\""
e=$(enforcement root-c3)
[[ $e == "shim | "*"no cgroup v2 of its own"* ]] && ok no_cgroup_v2_of_its_own_shim_only || fail no_cgroup_v2_of_its_own_shim_only "$e"
mkctr c4 "\"NVIDIA_VISIBLE_DEVICES=$MIG\",\"GPUMEM_LIMIT=0=1G\""
e=$(enforcement c4)
[[ $e == "shim | $MIG is a MIG device: NVIDIA's driver limits do not support MIG" ]] && ok mig_device_shim_only || fail mig_device_shim_only "$e"
# NVIDIA_VISIBLE_DEVICES=MIG-...: the container's device 0 is that MIG device.
out=$("$GPUMEM" limit c4 2>&1)
grep -qx "c4: $MIG 1 GiB" <<<"$out" && ok runtime_index_is_visible_mig_device || fail runtime_index_is_visible_mig_device "$out"
GPUMEM_SIM_DRIVER_VERSION=550.163.01 mkctr c5 "\"NVIDIA_GPU_MEMORY_LIMIT=1024\""
e=$(enforcement c5)
[[ $e == "shim | driver 550.163.01 has no per-cgroup memory limits (r615 or later has them)" ]] && ok older_driver_shim_only ||
    fail older_driver_shim_only "$e"
# There the shim holds the container to its limit alone: a process of the
# group under the shim is refused past 1 GiB, one without it is not.
a=$(GPUMEM_GROUP_DIR="$GPUMEM_STATE_DIR/c5" LD_PRELOAD="$SHIM_PRELOAD" LD_LIBRARY_PATH="$SIMDIR" CUDA_VISIBLE_DEVICES="$U0" \
    "$APP_PROGS/sim_mig_linked" alloc $((1536 * M)) 2>/dev/null)
b=$(in_cgroup c5 env LD_LIBRARY_PATH="$SIMDIR" CUDA_VISIBLE_DEVICES="$U0" "$PROGS/sim_mig_linked" alloc $((1536 * M)) 2>&1)
[[ $a == "alloc rc=2 free=$G total=$G" && $b == "alloc rc=0 "* ]] && ok shim_alone_enforces_without_driver_limit ||
    fail shim_alone_enforces_without_driver_limit "$a | $b"
mkctr c6 "\"NVIDIA_GPU_MEMORY_LIMIT=1024\""   # every GPU: the H100, and the A100 in MIG mode
e=$(enforcement c6)
[[ $e == "shim | driver limits on 1 of 2 devices; "*"is in MIG mode"* ]] && ok gpu_in_mig_mode_partial || fail gpu_in_mig_mode_partial "$e"
tbl=$("$GPUMEM" ps -a 2>&1)
grep -qE "^c6 .* shim$" <<<"$tbl" && ok ps_table_enforce_column || fail ps_table_enforce_column "$tbl"
for c in root-c3 c4 c5 c6; do RT_RUN --root "$T/runc" delete "$c" 2>/dev/null; done

# The calls themselves refuse with NVIDIA's codes: MIG handles and GPUs in MIG
# mode (NOT_SUPPORTED 3), not cgroup v2 (NOT_SUPPORTED), a missing cgroup
# (NOT_FOUND 6), soft above hard (INVALID_ARGUMENT 2), not root
# (NO_PERMISSION 4), an older driver (FUNCTION_NOT_FOUND 13).
mkdir -p "$CGT/direct"
r="$(ML set "$MIG" "$CGT/direct" 0 $G) $(ML set "$(sed -n 's/^gpu 1 uuid=\([^ ]*\).*/\1/p' <<<"$nv")" "$CGT/direct" 0 $G)"
r+=" $(ML set "$U0" "$T" 0 $G) $(ML set "$U0" "$CGT/nothere" 0 $G) $(ML set "$U0" "$CGT/direct" $((2 * G)) $G)"
r+=" $(GPUMEM_SIM_DRIVER_VERSION=550.163.01 ML set "$U0" "$CGT/direct" 0 $G)"
[ "$r" = "rc=3 rc=3 rc=3 rc=6 rc=2 rc=13" ] && ok set_refusals || fail set_refusals "$r"
if command -v setpriv >/dev/null; then
    chmod 755 "$T"; chmod -R a+rwX "$GPUMEM_SIM_STATE"
    r=$(setpriv --reuid=65534 --regid=65534 --clear-groups env LD_LIBRARY_PATH="$SIMDIR" "$PROGS/nvml_memlimits" set "$U0" "$CGT/direct" 0 $G 2>&1)
    [ "$r" = "rc=4" ] && ok set_needs_root || fail set_needs_root "$r"
else
    skip set_needs_root "setpriv is not installed"
fi
rmdir "$CGT/direct"
exit 0
