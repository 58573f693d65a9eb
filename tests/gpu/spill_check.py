"""Host-memory spill on a real GPU (tests/gpu/run.sh runs this three ways:
unlimited, inside `gpumem run --limit 4G --swap 4G`, and inside `gpumem run
--limit 4G` without swap). The model: a stack of 4096x4096 fp32 linear
layers (64 MiB of weights each), 96 of them: a 6 GiB working set, 1.5x the
4 GiB limit, all of it touched by every forward pass. Prints the test
protocol's lines and "# spill_time MODE SECONDS" per timed pass.

Usage: spill_check.py MODE   (MODE: unlimited, swap or noswap)"""
import os
import sys
import time

import torch

MiB = 1 << 20
LAYERS = int(os.environ.get("SPILL_LAYERS", "96"))
WIDTH = 4096
mode = sys.argv[1] if len(sys.argv) > 1 else "unlimited"


def report(name, ok, why=""):
    print(("ok spill_%s_%s" % (mode, name)) if ok else ("FAIL spill_%s_%s: %s" % (mode, name, why)), flush=True)


torch.manual_seed(0)
try:
    # Built on the host, then moved layer by layer: each .cuda() is one
    # 64 MiB cudaMalloc, so the ones past the limit are the ones that spill.
    layers = [torch.nn.Linear(WIDTH, WIDTH, bias=False) for _ in range(LAYERS)]
    ref_in = torch.randn(64, WIDTH)
    with torch.no_grad():
        for layer in layers:
            layer.weight.mul_(1.0 / WIDTH ** 0.5)
    model = torch.nn.Sequential(*layers).cuda()
except torch.OutOfMemoryError as e:
    if mode == "noswap":
        report("refused_without_swap", True)
        sys.exit(0)
    report("model_fits", False, repr(e)[:300])
    sys.exit(0)
if mode == "noswap":
    report("refused_without_swap", False, "a %d MiB model loaded under the limit without swap" % (LAYERS * 64))
    sys.exit(0)
report("model_fits", True)

x = ref_in.cuda()
with torch.no_grad():
    y = model(x)  # warm-up: first touches, cuBLAS handles
    torch.cuda.synchronize()
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        y = model(x)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
# The same product on the CPU: the spilled weights must compute the same.
with torch.no_grad():
    want = ref_in
    for layer in layers:
        want = torch.nn.functional.linear(want, layer.weight.cpu())
err = (y.cpu() - want).abs().max().item()
report("result_matches_cpu", err < 1e-2, "max abs error %g" % err)
best = min(times)
print("# spill_time %s %.4f" % (mode, best), flush=True)
free, total = torch.cuda.mem_get_info()
print("# spill_mem_get_info %s free=%d total=%d" % (mode, free, total), flush=True)
