"""PyTorch under gpumem on a real GPU (tests/gpu/run.sh runs this inside
`gpumem run --limit 4G`). Prints the test protocol's lines."""
import os
import sys

import torch

GiB = 1 << 30
tag = os.environ.get("CHECK_TAG", "default")


def report(name, ok, why=""):
    print(("ok %s_%s" % (tag, name)) if ok else ("FAIL %s_%s: %s" % (tag, name, why)), flush=True)


free, total = torch.cuda.mem_get_info()
report("mem_get_info_total_is_limit", total == 4 * GiB, "total=%d free=%d" % (total, free))
try:
    x = torch.empty(3 * GiB, dtype=torch.uint8, device="cuda")
    report("3GiB_allocates", True)
    del x
    torch.cuda.empty_cache()
except Exception as e:  # noqa: BLE001 - report whatever happened
    report("3GiB_allocates", False, repr(e))
try:
    y = torch.empty(5 * GiB, dtype=torch.uint8, device="cuda")
    report("5GiB_raises_oom", False, "5 GiB allocated under a 4 GiB limit")
except torch.OutOfMemoryError:
    report("5GiB_raises_oom", True)
except Exception as e:  # noqa: BLE001
    report("5GiB_raises_oom", False, "raised %r instead" % (e,))
if len(sys.argv) > 1 and sys.argv[1] == "hold":
    z = torch.empty(1 * GiB, dtype=torch.uint8, device="cuda")
    torch.cuda.synchronize()
    print("holding pid=%d" % os.getpid(), flush=True)
    sys.stdin.read()
