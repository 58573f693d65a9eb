# The shim exports exactly its interposed symbols: nothing internal may leak
# into the application's namespace.
. tests/integration/lib.sh
expected=$( { sed -n 's/^HOOK(\([A-Za-z0-9_]*\),.*/\1/p' src/shim/hooked.def;
              sed -n 's/^NVML_HOOK(\([A-Za-z0-9_]*\)).*/\1/p' src/shim/nvml_hooked.def;
              echo dlsym; } | sort)
actual=$(nm -D --defined-only "$SHIM" | awk '{print $3}' | sed 's/@.*//' | sort)
if [ "$expected" = "$actual" ]; then
    ok exports_exactly_the_hooks
else
    fail exports_exactly_the_hooks "diff: $(diff <(echo "$expected") <(echo "$actual") | grep '^[<>]' | tr '\n' ' ')"
fi
map=$(sed -n 's/^ *\([A-Za-z0-9_]*\);$/\1/p' src/shim/libgpumem.map | sort)
if [ "$expected" = "$map" ]; then ok version_script_matches_hook_lists; else
    fail version_script_matches_hook_lists "libgpumem.map is out of step with hooked.def/nvml_hooked.def"; fi
# libc (and libdl/libpthread) only.
deps=$(readelf -d "$SHIM" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p' | grep -v -E '^(ld-linux[-a-z0-9_]*|libc|libdl|libpthread|libasan|libubsan|libm|libgcc_s|libstdc\+\+)\.so' || true)
if [ -z "$deps" ]; then ok depends_on_libc_only; else fail depends_on_libc_only "needs $deps"; fi
