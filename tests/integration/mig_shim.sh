#!/usr/bin/env bash
# The shim on MIG devices (simulated GPU in MIG mode): limits keyed by MIG
# UUID (`--limit MIG-<uuid>=SIZE`), the shim naming the device a context
# runs on by its MIG UUID (so the limit applies and NVML's view matches),
# several groups sharing one instance each held to its own share, a MIG
# device renumbered by CUDA_VISIBLE_DEVICES, `gpumem limit` by a MIG UUID
# prefix, `gpumem ps` showing GPU/MIG device and the instance profile, and
# the daemon's metrics per instance (its GPU's index, the MIG device's UUID,
# gpumem_mig_device_info with the profile).
. tests/integration/lib.sh
. tests/integration/daemon_lib.sh
PROG="$APP_PROGS/sim_mig_linked"
export GPUMEM_SIM_DEVICES="A100:80G/3g.40gb+4g.40gb(2c+2c),H100:80G"
export GPUMEM_SIM_CTX_OVERHEAD=0
unset CUDA_VISIBLE_DEVICES
G=$((1 << 30))
field() { sed -n "s/^$2 .*\\b$3=\\([^ ]*\\).*/\\1/p" <<<"$1" | head -1; }
nv=$(LD_PRELOAD="$ASAN_RT" LD_LIBRARY_PATH="$SIMDIR" "$PROG" nvml 2>&1)
M0=$(field "$nv" "mig 0.0" uuid) M1=$(field "$nv" "mig 0.1" uuid)
[[ $M1 == MIG-* ]] || { fail mig_shim_setup "no MIG device: $nv"; exit 0; }

# A limit keyed by the MIG UUID applies inside that instance, and is what
# the process sees as its device's size.
out=$(CUDA_VISIBLE_DEVICES=$M1 run_sim --limit "$M1=4G" -- "$PROG" cuda 2>&1)
if [ "$(field "$out" "cuda 0" total)" = $((4 * G)) ] && [ "$(field "$out" "cuda 0" ctxtotal)" = $((4 * G)) ]; then
    ok mig_uuid_limit_is_the_device_size
else fail mig_uuid_limit_is_the_device_size "$(tr '\n' '|' <<<"$out")"; fi
out=$(CUDA_VISIBLE_DEVICES=$M1 run_sim --limit "$M1=4G" -- "$PROG" alloc $((5 * G)) 2>&1)
expect_in mig_uuid_limit_refuses_past_it "alloc rc=2 " "$out"
expect_in mig_refusal_names_the_mig_device "($M1)" "$out"
# The same limit does not apply to another instance (it is another device).
out=$(CUDA_VISIBLE_DEVICES=$M0 run_sim --limit "$M1=4G" -- "$PROG" alloc $((5 * G)) 2>&1)
expect_in mig_limit_is_per_instance "alloc rc=0 " "$out"
# Renumbered: the instance is CUDA device 1 behind the H100; its limit follows it.
out=$(CUDA_VISIBLE_DEVICES="1,$M1" run_sim --limit "$M1=4G" -- "$PROG" cuda 2>&1)
if [ "$(field "$out" "cuda 1" total)" = $((4 * G)) ] && [ "$(field "$out" "cuda 0" total)" = $((80 * G)) ]; then
    ok mig_limit_follows_renumbering
else fail mig_limit_follows_renumbering "$(tr '\n' '|' <<<"$out")"; fi

# Two groups on one instance (4g.40gb's first compute instance), 3 GiB and
# 1 GiB: each held to its own share while the other holds memory there.
coproc A { CUDA_VISIBLE_DEVICES=$M1 run_sim --name mig-a --limit "$M1=3G" -- "$PROG" alloc $((2 * G)) hold 2>/dev/null; }
coproc B { CUDA_VISIBLE_DEVICES=$M1 run_sim --name mig-b --limit 1G -- "$PROG" alloc $((512 << 20)) hold 2>/dev/null; }
read -r -t 20 a1 <&"${A[0]}"; read -r -t 20 a2 <&"${A[0]}"
read -r -t 20 b1 <&"${B[0]}"; read -r -t 20 b2 <&"${B[0]}"
if [[ $a1 == "alloc rc=0 free=$((1 * G)) total=$((3 * G))" && $b1 == "alloc rc=0 free=$((512 << 20)) total=$((1 * G))" ]]; then
    ok two_groups_one_instance_each_its_share
else fail two_groups_one_instance_each_its_share "$a1 | $b1"; fi
out=$(CUDA_VISIBLE_DEVICES=$M1 GPUMEM_GROUP_DIR="$GPUMEM_STATE_DIR/mig-b" LD_PRELOAD="$SHIM_PRELOAD" LD_LIBRARY_PATH="$SIMDIR" \
      "$PROG" alloc $((600 << 20)) 2>&1)
expect_in second_process_of_group_b_refused_at_its_share "alloc rc=2 " "$out"
ps=$("$GPUMEM" ps 2>&1)
if grep -qE "^mig-a +mig-a +0/1 ${M1:0:12} +3 GiB +2 GiB" <<<"$ps" && grep -qE "^mig-b +mig-b +0/1 ${M1:0:12} +1 GiB +512 MiB" <<<"$ps"; then
    ok ps_shows_gpu_and_mig_device
else fail ps_shows_gpu_and_mig_device "$(tr '\n' '|' <<<"$ps")"; fi
js=$("$GPUMEM" ps --format json 2>&1)
expect_in ps_json_mig_profile "\"mig\":{\"index\":1,\"gpu_instance\":2,\"compute_instance\":0,\"profile\":\"2c.4g.40gb\",\"parent_uuid\":\"GPU-" "$js"
# Metrics per instance: the groups' series on the MIG device, labelled with
# its GPU's index; the instance's own memory; its profile in an info series.
if command -v curl >/dev/null; then
    start_daemon --sim
    m=$(curl -s "$URL/metrics")
    grep -q "^gpumem_group_used_bytes{group=\"mig-a\",container=\"\",pod=\"\",namespace=\"\",gpu=\"0\",uuid=\"$M1\"} $((2 * G))$" <<<"$m" &&
        ok metrics_group_on_mig_device || fail metrics_group_on_mig_device "$(grep mig-a <<<"$m" | head -3)"
    grep -q "^gpumem_device_total_bytes{gpu=\"0\",uuid=\"$M1\"} $((40 * G))$" <<<"$m" &&
        grep -q "^gpumem_device_used_bytes{gpu=\"0\",uuid=\"$M1\"} $((2 * G + (512 << 20)))$" <<<"$m" &&
        ok metrics_mig_device_memory || fail metrics_mig_device_memory "$(grep "$M1" <<<"$m" | grep device_ | head -4)"
    grep -q "^gpumem_mig_device_info{gpu=\"0\",uuid=\"$M1\",parent_uuid=\"GPU-[0-9a-f-]*\",profile=\"2c.4g.40gb\",mig_device=\"1\",gpu_instance=\"2\",compute_instance=\"0\"} 1$" <<<"$m" &&
        ok metrics_mig_device_info || fail metrics_mig_device_info "$(grep mig_device_info <<<"$m")"
    stop_daemon
else
    skip metrics_per_instance "curl is not installed"
fi

# gpumem limit by a prefix of the MIG UUID, as ps prints it.
out=$("$GPUMEM" limit mig-a "${M1:0:12}=2G" 2>&1)
js=$("$GPUMEM" ps --format json 2>&1)
expect_in limit_change_by_mig_prefix "\"group\":\"mig-a\",\"name\":\"mig-a\"" "$js"
if grep -q "\"uuid\":\"$M1\",\"mig\":{[^}]*},\"limit\":$((2 * G))," <<<"$js"; then ok limit_change_by_mig_prefix_applied
else fail limit_change_by_mig_prefix_applied "$out | $js"; fi
exec {A[1]}>&- {B[1]}>&-
wait
out=$(run_sim --limit "MIG-1234=4G" -- true 2>&1)
expect_in bad_mig_uuid_refused "bad MIG device UUID \"MIG-1234\"" "$out"
exit 0
