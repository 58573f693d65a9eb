#!/usr/bin/env bash
# The simulated driver's versioned cuGetProcAddress table, its error codes,
# and its exports: exactly the symbols of sim/cuda/entries.def, nothing else.
. tests/integration/lib.sh
for prog in sim_procaddress sim_errors_linked; do
    out=$(GPUMEM_SIM_DEVICES=2x16G LD_LIBRARY_PATH="$SIMDIR" "$PROGS/$prog" 2>&1)
    rc=$?
    printf '%s\n' "$out"
    [ $rc -eq 0 ] || grep -q '^FAIL' <<<"$out" || fail "$prog" "exited $rc"
done

want=$(grep '^SIM_ENTRY' sim/cuda/entries.def | sed -E 's/.*, ([A-Za-z0-9_]+), (EMU|STUB)\)$/\1/' | sort -u)
map=$(grep -E '^    cu[A-Za-z0-9_]+;$' sim/cuda/libcuda.map | tr -d ' ;' | sort)
got=$(nm -D --defined-only "$SIMDIR/libcuda.so.1" | awk '{print $3}' | sort)
if [ "$want" = "$map" ]; then ok version_script_matches_table
else fail version_script_matches_table "$(diff <(echo "$want") <(echo "$map") | head -5 | tr '\n' ' ')"; fi
if [ "$want" = "$got" ]; then ok exports_exactly_the_table
else fail exports_exactly_the_table "$(diff <(echo "$want") <(echo "$got") | head -5 | tr '\n' ' ')"; fi
exit 0
