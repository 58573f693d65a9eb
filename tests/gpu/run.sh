#!/usr/bin/env bash
# The checks that need a real NVIDIA GPU (issue 3, "On a real GPU"; issue 15,
# host-memory spill: tests/gpu/spill_check.py). Run on a
# machine with a GPU, PyTorch and the driver, from the repository root:
#     make && tests/gpu/run.sh | tee gpu-results.txt
# Prints the test protocol's lines plus measured figures; the results go into
# docs/gpu-validation.md with the date and the driver version.
set -u
cd "$(dirname "$0")/../.."
B=${BUILD:-build}
G="$B/bin/gpumem"
export GPUMEM_STATE_DIR=$(mktemp -d)
trap 'rm -rf "$GPUMEM_STATE_DIR"' EXIT
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sed 's/^/# gpu: /'
python3 -c 'import torch; print("# torch", torch.__version__, "cuda", torch.version.cuda)'

# PyTorch: the limit is the GPU's size; 3 GiB fits, 5 GiB raises OutOfMemoryError.
CHECK_TAG=caching "$G" run --limit 4G -- python3 tests/gpu/torch_check.py
# The VMM path (cuMemCreate/cuMemMap) PyTorch takes with expandable segments.
CHECK_TAG=expandable PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True \
    "$G" run --limit 4G -- python3 tests/gpu/torch_check.py

# nvidia-smi inside the group shows the limit as the GPU's memory.
smi=$("$G" run --limit 4G -- nvidia-smi --id=0 --query-gpu=memory.total --format=csv,noheader,nounits)
[ "$(echo "$smi" | tr -d ' ')" = 4096 ] && echo "ok nvidia_smi_shows_limit" || echo "FAIL nvidia_smi_shows_limit: $smi"

# Accounting drift: the shim's count of a process against NVML's.
fifo=$(mktemp -u); mkfifo "$fifo"
"$G" run --limit 4G --name drift -- python3 tests/gpu/torch_check.py hold <"$fifo" >"$GPUMEM_STATE_DIR/hold.log" 2>&1 &
exec 3>"$fifo"
for i in $(seq 600); do grep -q holding "$GPUMEM_STATE_DIR/hold.log" && break; sleep 0.1; done
pid=$(sed -n 's/.*holding pid=\([0-9]*\).*/\1/p' "$GPUMEM_STATE_DIR/hold.log")
shim=$("$G" ps -p --format json | python3 -c 'import json,sys; g=[x for x in json.load(sys.stdin) if x["group"]=="drift"][0]; print(sum(p["used"] for p in g["process_list"]))')
nvml=$(nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits | awk -F', ' -v p="$pid" '$1==p {print $2 * 1048576}')
echo "# drift: shim ${shim} bytes, NVML ${nvml:-?} bytes, shim - NVML = $(( ${shim:-0} - ${nvml:-0} )) bytes"
exec 3>&-; wait; rm -f "$fifo"

# Host-memory spill (docs/spill.md): a model whose working set is 1.5x the
# limit completes with swap (and is refused without); its forward pass is
# timed against the same model unlimited.
spill_out=$(python3 tests/gpu/spill_check.py unlimited; "$G" run --limit 4G --swap 4G --name spill -- \
    python3 tests/gpu/spill_check.py swap; "$G" run --limit 4G -- python3 tests/gpu/spill_check.py noswap)
echo "$spill_out"
un=$(echo "$spill_out" | sed -n 's/^# spill_time unlimited //p'); sw=$(echo "$spill_out" | sed -n 's/^# spill_time swap //p')
[ -n "$un" ] && [ -n "$sw" ] && python3 -c "print('# spill slowdown: %.1fx (%.3f s per pass with what passes the limit in host memory, %.3f s unlimited)' % ($sw / $un, $sw, $un))"

# cuMemAlloc/cuMemFree pairs per second, with and without the shim (4 KiB and 64 MiB).
for size in 4K 64M; do
    wo=$("$B/bench/alloc_pairs" -n 20000 -s "$size")
    w=$("$G" run --limit 64G -- "$B/bench/alloc_pairs" -n 20000 -s "$size")
    echo "# pairs $size without: $wo"
    echo "# pairs $size with:    $w"
done
