# Regression: interposing dlsym must not change dlsym(RTLD_NEXT) or
# dlsym(RTLD_DEFAULT) for any other library in the process (docs/shim.md, "How
# applications reach it": the classic shim bug resolves RTLD_NEXT relative to
# the shim itself).
. tests/integration/lib.sh
cc=${CC:-cc}
san=""   # plain programs, also in SAN runs (lib.sh preloads the ASan runtime)
d="$T/rtld"
mkdir -p "$d"
$cc $san -shared -fPIC -o "$d/libnext_a.so" tests/rtld/next_a.c &&
$cc $san -shared -fPIC -o "$d/libnext_wrap.so" tests/rtld/next_wrap.c -ldl &&
$cc $san -shared -fPIC -o "$d/libscope.so" tests/rtld/scope.c -Wl,--no-as-needed -L"$d" -lnext_a -ldl &&
$cc $san -o "$d/main" tests/rtld/main.c -Wl,--no-as-needed -L"$d" -lnext_wrap -lnext_a -ldl -Wl,-rpath,"$d" ||
    { fail build_rtld_programs "compiler failed"; exit 1; }
plain=$("$d/main" "$d/libscope.so" 2>&1)
shimmed=$(LD_PRELOAD="$SHIM_PRELOAD" "$d/main" "$d/libscope.so" 2>&1)
expect_in rtld_next_without_shim "next_fn=12" "$plain"
expect_in rtld_next_with_shim "next_fn=12" "$shimmed"
expect_in rtld_default_local_scope_with_shim "scope_probe=40" "$shimmed"
expect_in handle_lookup_with_shim "handle_lookup=same" "$shimmed"
[ "$plain" = "$shimmed" ] && ok same_output_with_and_without_shim ||
    fail same_output_with_and_without_shim "without: $plain | with: $shimmed"
