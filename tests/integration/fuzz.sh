#!/usr/bin/env bash
# Fuzzing of every parser of outside input: `make fuzz` builds one libFuzzer
# binary per tests/fuzz/<name>.c into build-fuzz/fuzz/, then each runs for
# GPUMEM_FUZZ_SECONDS seconds (default 10) over a copy of its seed corpus
# tests/fuzz/corpus/<name>/ (the committed corpus is never written to).
# One line per target: "ok fuzz_<name>", or FAIL with the input that crashed
# it (kept in tests/fuzz/out/, which git ignores) and the first lines of the
# sanitizer's report. A target may name more libFuzzer flags in a line of its
# source "libFuzzer options: -max_len=N ..." (default -max_len=4096), and a
# dictionary as tests/fuzz/<name>.dict.
# SAN=1 runs skip it: the fuzz build is sanitized already.
. tests/integration/lib.sh

secs=${GPUMEM_FUZZ_SECONDS:-10}
if [ "${SAN:-0}" = 1 ]; then
    skip fuzz "the fuzz build is sanitized (ASan+UBSan) already; it runs in the plain run"
    exit 0
fi
if ! command -v "${FUZZ_CC:-clang}" >/dev/null; then
    skip fuzz "${FUZZ_CC:-clang} is not installed (apt-get install clang libclang-rt-14-dev)"
    exit 0
fi
echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return d && n && 0; }' >"$T/probe.c"
if ! "${FUZZ_CC:-clang}" -fsanitize=fuzzer,address,undefined -o "$T/probe" "$T/probe.c" >"$T/probe.log" 2>&1; then
    skip fuzz "${FUZZ_CC:-clang} cannot link libFuzzer (libclang-rt-14-dev?): $(head -c 300 "$T/probe.log" | tr '\n' ' ')"
    exit 0
fi
if ! make -s -j"$(nproc)" fuzz >"$T/make.log" 2>&1; then
    fail fuzz_build "make fuzz failed: $(tail -15 "$T/make.log" | tr '\n' '|' | cut -c1-1500)"
    exit 0
fi

# The targets' scratch files, and NVML lookups (gpumem-runtime's device
# indexes) answered by the simulated GPU when it is built.
mkdir -p "$T/tmp" tests/fuzz/out
export TMPDIR="$T/tmp" GPUMEM_SIM_DEVICES=2x16G
[ -e "$SIMDIR/libnvidia-ml.so.1" ] && export LD_LIBRARY_PATH="$SIMDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

for src in tests/fuzz/*.c; do
    name=$(basename "$src" .c)
    bin="build-fuzz/fuzz/$name"
    work="$T/fuzz-$name"
    mkdir -p "$work/corpus"
    [ -d "tests/fuzz/corpus/$name" ] && cp -R "tests/fuzz/corpus/$name/." "$work/corpus/"
    # The flags after "libFuzzer options:" up to the end of the line or of
    # the comment, split into words without globbing: a "*/" left in would
    # expand into the directory names here and become corpus directories.
    opts=$(sed -n 's/.*libFuzzer options:\(.*\)$/\1/p' "$src" | head -1 | sed 's#\*/.*##')
    read -r -a optv <<<"$opts"
    case " ${optv[*]} " in *" -max_len="*) ;; *) optv+=(-max_len=4096) ;; esac
    [ -f "tests/fuzz/$name.dict" ] && optv+=(-dict="tests/fuzz/$name.dict")
    prefix="$TOP/tests/fuzz/out/$name-"
    timeout $((secs + 120)) "$bin" "${optv[@]}" -max_total_time="$secs" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$prefix" "$work/corpus" >"$work/log" 2>&1
    rc=$?
    crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$work/log" | tail -1)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
    if [ "$rc" -eq 0 ] && [ -z "$crash" ]; then
        echo "# fuzz_$name: ${runs:-?} runs in ${secs} s"
        ok "fuzz_$name"
    else
        fail "fuzz_$name" "exit $rc; input ${crash:-(none saved)} (rerun: $bin ${crash:-})"
        grep -m1 -A8 -E '^==[0-9]+==ERROR|runtime error:|fuzz: |^SUMMARY|ERROR: libFuzzer' "$work/log" | sed 's/^/    /'
    fi
done
