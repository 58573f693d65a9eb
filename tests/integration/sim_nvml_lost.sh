#!/usr/bin/env bash
# The simulated NVML losing a GPU on demand ($GPUMEM_SIM_STATE/lost-<index>,
# docs/simulated-gpu.md): while the file exists every query of that GPU
# answers NVML_ERROR_GPU_IS_LOST (15) — by index, by UUID, and through a
# handle taken before — the other GPU answers as before, the count is
# unchanged, and all of it comes back when the file goes. Python's ctypes
# is the NVML client (Debian's python3).
source "$(dirname "$0")/lib.sh"
export GPUMEM_SIM_DEVICES=2x16G
out=$(LD_PRELOAD="$ASAN_RT" /usr/bin/python3 - "$SIMDIR/libnvidia-ml.so.1" "$GPUMEM_SIM_STATE" <<'PY' 2>&1
import ctypes, os, sys
nv = ctypes.CDLL(sys.argv[1])
state = sys.argv[2]
class Mem(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]
def handle(i):
    h = ctypes.c_void_p()
    return nv.nvmlDeviceGetHandleByIndex_v2(i, ctypes.byref(h)), h
def mem(h):
    m = Mem()
    return nv.nvmlDeviceGetMemoryInfo(h, ctypes.byref(m))
def by_uuid(u):
    h = ctypes.c_void_p()
    return nv.nvmlDeviceGetHandleByUUID(u, ctypes.byref(h))
def count():
    n = ctypes.c_uint()
    nv.nvmlDeviceGetCount_v2(ctypes.byref(n))
    return n.value
assert nv.nvmlInit_v2() == 0
_, h0 = handle(0)
_, h1 = handle(1)
buf = ctypes.create_string_buffer(96)
assert nv.nvmlDeviceGetUUID(h0, buf, 96) == 0
uuid = buf.value
print("before", handle(0)[0], by_uuid(uuid), mem(h0), mem(h1), count())
open(os.path.join(state, "lost-0"), "w").close()
print("lost", handle(0)[0], by_uuid(uuid), mem(h0), mem(h1), count())
os.unlink(os.path.join(state, "lost-0"))
print("back", handle(0)[0], by_uuid(uuid), mem(h0), mem(h1), count())
PY
)
expect_in gpu_answers_before "before 0 0 0 0 2" "$out"
expect_in lost_gpu_is_lost_everywhere "lost 15 15 15 0 2" "$out"
expect_in lost_gpu_comes_back "back 0 0 0 0 2" "$out"
