# Limits key on GPU UUIDs: renumbering devices with CUDA_VISIBLE_DEVICES
# cannot move an allocation out from under its limit.
. tests/integration/lib.sh
export GPUMEM_SIM_CTX_OVERHEAD=64M GPUMEM_SIM_DEVICES=2x8G
# GPU 0 (as nvidia-smi numbers it) is limited to 1 GiB, GPU 1 to 4 GiB.
out=$(run_sim --limit 0=1G --limit 1=4G -- "$CLIENT" init alloc 1500M expect 2 device 1 alloc 3G expect 0 2>&1) &&
    ok per_device_limits || fail per_device_limits "$(echo "$out" | tr '\n' '|')"
# The process sees them swapped: its device 1 is physical GPU 0.
out=$(CUDA_VISIBLE_DEVICES=1,0 run_sim --limit 0=1G --limit 1=4G -- \
      "$CLIENT" init alloc 3G expect 0 device 1 alloc 1500M expect 2 alloc 800M expect 0 info 2>&1) &&
    ok renumbered_devices_keep_their_limits || fail renumbered_devices_keep_their_limits "$(echo "$out" | tr '\n' '|')"
expect_in renumbered_view_is_the_physical_gpus_limit "total=1073741824" "$out"
# Only the limited GPU visible, as device 0.
out=$(CUDA_VISIBLE_DEVICES=1 run_sim --limit 1=1G -- "$CLIENT" init alloc 1500M expect 2 2>&1) &&
    ok single_visible_gpu_is_limited || fail single_visible_gpu_is_limited "$(echo "$out" | tr '\n' '|')"
out=$(CUDA_VISIBLE_DEVICES=0 run_sim --limit 1=1G -- "$CLIENT" init alloc 1500M expect 0 2>&1) &&
    ok other_gpu_is_not_limited || fail other_gpu_is_not_limited "$(echo "$out" | tr '\n' '|')"
