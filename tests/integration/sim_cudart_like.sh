#!/usr/bin/env bash
# The simulated driver as libcudart 13 reaches it (tests/progs/cudart_like_client.c),
# with a private state directory and a 16 GiB device.
. tests/integration/lib.sh
out=$(GPUMEM_SIM_DEVICES=H100:16G GPUMEM_SIM_CTX_OVERHEAD=300M LD_LIBRARY_PATH="$SIMDIR" \
      "$PROGS/cudart_like_client" 2>&1)
rc=$?
printf '%s\n' "$out"
[ $rc -eq 0 ] || grep -q '^FAIL' <<<"$out" || echo "FAIL cudart_like_client: exited $rc"
