#!/usr/bin/env bash
# MIG in the simulated GPU alone (no shim): the GPUMEM_SIM_DEVICES layout
# syntax, NVML's MIG calls (mode, MIG device handles, GI/CI ids, UUIDs,
# parents, per-instance memory), CUDA enumerating MIG devices with
# cuDeviceGetUuid_v2 = the MIG UUID and cuDeviceGetUuid = the GPU's,
# CUDA_VISIBLE_DEVICES=MIG-<uuid> selecting exactly one instance, and
# memory charged per GPU instance (compute instances of one GPU instance
# share it; another instance is unaffected).
. tests/integration/lib.sh
PROG="$PROGS/sim_mig_linked"
export GPUMEM_SIM_DEVICES="A100:80G/3g.40gb+4g.40gb(2c+2c),H100:80G"
export GPUMEM_SIM_CTX_OVERHEAD=0
unset CUDA_VISIBLE_DEVICES GPUMEM_SIM_FAIL_ALLOC_NTH GPUMEM_SIM_FAIL_CTX
mig() { LD_PRELOAD="$ASAN_RT" LD_LIBRARY_PATH="$SIMDIR" "$PROG" "$@"; }
G=$((1 << 30))
field() { sed -n "s/^$2 .*\\b$3=\\([^ ]*\\).*/\\1/p" <<<"$1" | head -1; }

nv=$(mig nvml 2>&1)
M0=$(field "$nv" "mig 0.0" uuid) M1=$(field "$nv" "mig 0.1" uuid) M2=$(field "$nv" "mig 0.2" uuid)
expect_in nvml_gpu0_in_mig_mode "gpu 0 uuid=GPU-" "$nv"
if grep -q "^gpu 0 .* mig=1 pending=1 max=7$" <<<"$nv" && grep -q "^gpu 1 .* mig=0 pending=0 max=0$" <<<"$nv"; then
    ok nvml_mig_mode_and_max_count
else fail nvml_mig_mode_and_max_count "$(tr '\n' '|' <<<"$nv")"; fi
if [[ $M0 == MIG-* && $M1 == MIG-* && $M2 == MIG-* && ${#M0} == 40 && $M0 != "$M1" && $M1 != "$M2" ]]; then
    ok nvml_mig_uuids
else fail nvml_mig_uuids "$M0 $M1 $M2"; fi
want="mig 0.0 gi=1 ci=0 total=$((40 * G)) name=NVIDIA A100-SXM4-80GB MIG 3g.40gb
mig 0.1 gi=2 ci=0 total=$((40 * G)) name=NVIDIA A100-SXM4-80GB MIG 2c.4g.40gb
mig 0.2 gi=2 ci=1 total=$((40 * G)) name=NVIDIA A100-SXM4-80GB MIG 2c.4g.40gb"
got=$(sed -n 's/^\(mig [0-9.]*\) uuid=[^ ]* \(gi=[0-9]* ci=[0-9]*\) is_mig=1 parent=ok \(total=[0-9]*\) used=0 \(name=.*\)/\1 \2 \3 \4/p' <<<"$nv")
if [ "$got" = "$want" ]; then ok nvml_instances_ids_memory_profiles
else fail nvml_instances_ids_memory_profiles "got: $(tr '\n' '|' <<<"$got") from $(tr '\n' '|' <<<"$nv")"; fi
if [ "$(grep -c '^byuuid 0\.[0-2]=0$' <<<"$nv")" = 3 ]; then ok nvml_handle_by_mig_uuid
else fail nvml_handle_by_mig_uuid "$(tr '\n' '|' <<<"$nv")"; fi

# CUDA: unset shows the three MIG devices, then the H100.
cu=$(mig cuda 2>&1)
hex() { tr -d '-' <<<"${1#*-}"; }
U0=$(sed -n 's/^gpu 0 uuid=\([^ ]*\).*/\1/p' <<<"$nv") U1=$(sed -n 's/^gpu 1 uuid=\([^ ]*\).*/\1/p' <<<"$nv")
if grep -q '^count=4 ' <<<"$cu" && [ "$(field "$cu" "cuda 0" v2)" = "$(hex "$M0")" ] &&
   [ "$(field "$cu" "cuda 2" v2)" = "$(hex "$M2")" ] && [ "$(field "$cu" "cuda 0" v1)" = "$(hex "$U0")" ] &&
   [ "$(field "$cu" "cuda 3" v2)" = "$(hex "$U1")" ] && [ "$(field "$cu" "cuda 3" v1)" = "$(hex "$U1")" ]; then
    ok cuda_enumerates_mig_devices_uuid_v2_is_mig_v1_is_gpu
else fail cuda_enumerates_mig_devices_uuid_v2_is_mig_v1_is_gpu "$(tr '\n' '|' <<<"$cu")"; fi

one=$(CUDA_VISIBLE_DEVICES=$M1 mig cuda 2>&1)
if grep -q '^count=1 ' <<<"$one" && [ "$(field "$one" "cuda 0" v2)" = "$(hex "$M1")" ] &&
   [ "$(field "$one" "cuda 0" total)" = $((40 * G)) ] && [ "$(field "$one" "cuda 0" ctxtotal)" = $((40 * G)) ]; then
    ok visible_mig_uuid_selects_one_instance_total_is_instance
else fail visible_mig_uuid_selects_one_instance_total_is_instance "$(tr '\n' '|' <<<"$one")"; fi
pre=${M2:0:12}
one=$(CUDA_VISIBLE_DEVICES=$pre mig cuda 2>&1)
if grep -q '^count=1 ' <<<"$one" && [ "$(field "$one" "cuda 0" v2)" = "$(hex "$M2")" ]; then ok visible_mig_uuid_prefix
else fail visible_mig_uuid_prefix "$pre: $(tr '\n' '|' <<<"$one")"; fi
idx=$(CUDA_VISIBLE_DEVICES=1,0 mig cuda 2>&1)
if grep -q '^count=4 ' <<<"$idx" && [ "$(field "$idx" "cuda 0" v2)" = "$(hex "$U1")" ] &&
   [ "$(field "$idx" "cuda 1" v2)" = "$(hex "$M0")" ]; then ok visible_index_of_mig_gpu_is_its_instances_renumbered
else fail visible_index_of_mig_gpu_is_its_instances_renumbered "$(tr '\n' '|' <<<"$idx")"; fi

# Memory per GPU instance: 30 GiB held in 3g.40gb leaves 10 GiB there, all
# of the 4g.40gb; its two compute instances share their 40 GiB.
coproc HOLD { CUDA_VISIBLE_DEVICES=$M0 mig alloc $((30 * G)) hold 2>&1; }
read -r -t 20 line1 <&"${HOLD[0]}"; read -r -t 20 line2 <&"${HOLD[0]}"
a=$(CUDA_VISIBLE_DEVICES=$M0 mig alloc $((20 * G)) 2>&1)
b=$(CUDA_VISIBLE_DEVICES=$M1 mig alloc $((20 * G)) 2>&1)
nv2=$(mig nvml 2>&1)
if [[ $line1 == "alloc rc=0 free=$((10 * G)) total=$((40 * G))" && $line2 == held && $a == "alloc rc=2 "* &&
      $b == "alloc rc=0 free=$((20 * G)) total=$((40 * G))" ]] &&
   [ "$(field "$nv2" "mig 0.0" used)" = $((30 * G)) ] && [ "$(field "$nv2" "mig 0.1" used)" = 0 ]; then
    ok memory_charged_per_instance
else fail memory_charged_per_instance "$line1 | $line2 | $a | $b | $(tr '\n' '|' <<<"$nv2")"; fi
c=$(CUDA_VISIBLE_DEVICES=$M2 mig alloc $((10 * G)) 2>&1)
coproc H2 { CUDA_VISIBLE_DEVICES=$M1 mig alloc $((25 * G)) hold 2>&1; }
read -r -t 20 l1 <&"${H2[0]}"; read -r -t 20 l2 <&"${H2[0]}"
d=$(CUDA_VISIBLE_DEVICES=$M2 mig alloc $((20 * G)) 2>&1)
nv3=$(mig nvml 2>&1)
if [[ $c == "alloc rc=0 "* && $l2 == held && $d == "alloc rc=2 "* ]] && [ "$(field "$nv3" "mig 0.2" used)" = $((25 * G)) ]; then
    ok compute_instances_share_their_gpu_instance
else fail compute_instances_share_their_gpu_instance "$c | $l1 $l2 | $d | $(tr '\n' '|' <<<"$nv3")"; fi
exec {HOLD[1]}>&- {H2[1]}>&-
wait

# Instances of different sizes: each CUDA device is its instance's size,
# and holds what fits there only.
sizes="A100:80G/1g.10gb+2g.20gb+4g.40gb"
cu=$(GPUMEM_SIM_DEVICES=$sizes mig cuda 2>&1)
nv=$(GPUMEM_SIM_DEVICES=$sizes mig nvml 2>&1)
S0=$(field "$nv" "mig 0.0" uuid) S1=$(field "$nv" "mig 0.1" uuid)
a=$(GPUMEM_SIM_DEVICES=$sizes CUDA_VISIBLE_DEVICES=$S0 mig alloc $((15 * G)) 2>&1)
b=$(GPUMEM_SIM_DEVICES=$sizes CUDA_VISIBLE_DEVICES=$S1 mig alloc $((15 * G)) 2>&1)
if [ "$(field "$cu" "cuda 0" total) $(field "$cu" "cuda 1" total) $(field "$cu" "cuda 2" total)" = "$((10 * G)) $((20 * G)) $((40 * G))" ] &&
   [[ $(grep "^cuda 0 " <<<"$cu") == *"MIG 1g.10gb" && $a == "alloc rc=2 "* && $b == "alloc rc=0 free=$((5 * G)) "* ]]; then
    ok instances_of_different_sizes
else fail instances_of_different_sizes "$(tr '\n' '|' <<<"$cu") | $a | $b"; fi

# Layouts that do not fit the GPU are refused like any bad spec.
for spec in "A100:80G/8g.80gb" "A100:40G/3g.40gb+1g.10gb" "A100:80G/3g.40gb(4c)" "A100:80G/3g" "A100:80G/3g.40gb+"; do
    out=$(GPUMEM_SIM_DEVICES=$spec mig cuda 2>&1)
    case "$out" in
    *"invalid GPUMEM_SIM_DEVICES"*"count=0 rc=100"*) ok "bad_layout_refused/$spec" ;;
    *) fail "bad_layout_refused/$spec" "$(tr '\n' '|' <<<"$out")" ;;
    esac
done
exit 0
