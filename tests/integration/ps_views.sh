# gpumem ps and the CLI's shared conventions, against real shimmed processes
# on a simulated machine of two 16 GiB GPUs: a group on both GPUs is a line
# per GPU with its NVML index and UUID prefix; --format csv and --no-headers;
# JSON carries the GPU index, container, pod and namespace; the UUID prefix
# ps prints is accepted by limit and inspect --gpu; one error prefix, the
# error before any usage text, "did you mean", options after operands,
# --version listed.
. tests/integration/lib.sh
export GPUMEM_SIM_CTX_OVERHEAD=128M GPUMEM_SIM_DEVICES=2x16G
M=1048576

# ---- the dispatcher and errors (no groups needed) --------------------------
out=$("$GPUMEM" lmit 2>&1); rc=$?
[ "$rc" = 2 ] && [ "$(printf '%s\n' "$out" | head -1)" = 'gpumem: unknown command "lmit"; did you mean "limit"?' ] &&
    ok did_you_mean || fail did_you_mean "rc=$rc: $out"
out=$("$GPUMEM" help lmit 2>&1); rc=$?
[ "$rc" = 2 ] && [ "$(printf '%s\n' "$out" | head -1)" = 'gpumem: unknown command "lmit"; did you mean "limit"?' ] &&
    ok help_did_you_mean || fail help_did_you_mean "rc=$rc: $out"
out=$("$GPUMEM" frobnicate 2>&1)
case "$(printf '%s\n' "$out" | head -1)" in
'gpumem: unknown command "frobnicate"') ok no_guess_when_far ;;
*) fail no_guess_when_far "$out" ;;
esac
expect_in version_listed "--version" "$("$GPUMEM" --help)"
# The error line first, then (if any) usage; every prefix "gpumem CMD: ".
for c in "ps --bogus" "inspect" "limit" "run" "top --bogus" "daemon --bogus" "install"; do
    out=$($GPUMEM $c 2>&1 </dev/null); rc=$?
    first=$(printf '%s\n' "$out" | head -1)
    cmd=${c%% *}
    case "$rc:$first" in
    "2:gpumem $cmd: "*) ok "error_first_${cmd}" ;;
    *) fail "error_first_${cmd}" "rc=$rc, first line: $first" ;;
    esac
done
out=$("$GPUMEM" ps extra 2>&1); rc=$?
[ "$rc:$out" = '2:gpumem ps: unexpected argument "extra"' ] && ok ps_prefix || fail ps_prefix "rc=$rc: $out"
out=$("$GPUMEM" ps --format xml 2>&1)
expect_in ps_format_error 'gpumem ps: --format "xml": expected table, csv or json' "$out"

# ---- a group on two GPUs, and one over 80% of its limit --------------------
hold() { # NAME "LIMIT OPTIONS" OPS...
    local name=$1 limits=$2; shift 2
    # shellcheck disable=SC2086 # the limit options are words
    run_sim $limits --name "$name" --keep -- "$CLIENT" init "$@" hold >"$T/$name.log" 2>&1 &
    for _ in $(seq 200); do grep -q holding "$T/$name.log" && return 0; sleep 0.05; done
    fail "holder_$name" "did not start: $(tr '\n' '|' <"$T/$name.log")"
}
hold two "--limit 0=4G --limit 1=8G" alloc 100M device 1 alloc 200M
hold hot "--limit 1G" alloc 750M

tbl=$("$GPUMEM" ps)
two=$(printf '%s\n' "$tbl" | grep -A1 '^two ')
l0=$(printf '%s\n' "$two" | sed -n 1p) l1=$(printf '%s\n' "$two" | sed -n 2p)
if [[ "$l0" =~ ^two\ +two\ +0\ GPU-[0-9a-f]{8}\ +4\ GiB\ +228\ MiB ]] && [[ "$l1" =~ ^\ +1\ GPU-[0-9a-f]{8}\ +8\ GiB\ +328\ MiB ]]; then
    ok table_line_per_gpu_with_index
else
    fail table_line_per_gpu_with_index "$two"
fi
expect_in table_header "NAME                 GROUP          GPU UUID" "$(printf '%s\n' "$tbl" | head -1)"
short0=$(printf '%s\n' "$l0" | awk '{print $4}') short1=$(printf '%s\n' "$l1" | awk '{print $2}')

out=$("$GPUMEM" ps --no-headers)
case "$out" in NAME*|*$'\n'NAME*) fail no_headers_table "$out" ;; *two*) ok no_headers_table ;; *) fail no_headers_table "$out" ;; esac

csv=$("$GPUMEM" ps --format csv)
[ "$(printf '%s\n' "$csv" | head -1)" = "name,group,gpu,uuid,limit,used,peak,percent,processes,refusals,swap_used,swap_limit,enforcement" ] &&
    ok csv_header || fail csv_header "$csv"
if printf '%s\n' "$csv" | grep -Eq "^two,two,0,GPU-[0-9a-f-]{36},4294967296,$((228 * M)),$((228 * M)),5\.6,1,0,0,0,shim$" &&
    printf '%s\n' "$csv" | grep -Eq "^two,two,1,GPU-[0-9a-f-]{36},8589934592,$((328 * M)),$((328 * M)),4\.0,1,0,0,0,shim$"; then
    ok csv_line_per_gpu
else
    fail csv_line_per_gpu "$csv"
fi
n=$("$GPUMEM" ps --format csv --no-headers | wc -l)
[ "$n" = 3 ] && ok csv_no_headers || fail csv_no_headers "$n lines"
out=$("$GPUMEM" ps --format csv -p 2>&1); rc=$?
[ "$rc" = 2 ] && ok csv_processes_refused || fail csv_processes_refused "rc=$rc: $out"

json=$("$GPUMEM" ps --format json)
if command -v jq >/dev/null; then
    got=$(jq -c '.[] | select(.group=="two") | [.container, .pod, .namespace, [.devices[] | .gpu, .limit, .leak_suspected]]' <<<"$json")
    [ "$got" = '["","","",[0,4294967296,null,1,8589934592,null]]' ] && ok json_gpu_identity_fields || fail json_gpu_identity_fields "$got"
else
    expect_in json_gpu_identity_fields '"container":"","pod":"","namespace":"","processes":1,"devices":[{"gpu":0,' "$json"
fi

# ---- the GPU as ps prints it, accepted by limit and inspect -----------------
out=$("$GPUMEM" limit two "$short1=6G" 2>&1); rc=$?
if [ "$rc" = 0 ] && printf '%s\n' "$out" | grep -Eq "^two: $short1[0-9a-f-]+ 6 GiB$"; then ok limit_takes_ps_prefix
else fail limit_takes_ps_prefix "rc=$rc: $out"; fi
out=$("$GPUMEM" limit two "$(tr a-f A-F <<<"${short0#GPU-}" | sed 's/^/gpu-/')=3G" 2>&1); rc=$?
[ "$rc" = 0 ] && expect_in limit_prefix_any_case "two: $short0" "$(grep ' 3 GiB$' <<<"$out")" || fail limit_prefix_any_case "rc=$rc: $out"
out=$("$GPUMEM" limit two GPU-=1G 2>&1); rc=$?
[ "$rc" = 2 ] && expect_in limit_short_prefix_refused 'gpumem limit: GPU "GPU-": expected' "$out" ||
    fail limit_short_prefix_refused "rc=$rc: $out"
out=$("$GPUMEM" limit two GPU-00000000=1G 2>&1); rc=$?
[ "$rc" = 2 ] && expect_in limit_unknown_prefix 'no such device' "$out" || fail limit_unknown_prefix "rc=$rc: $out"

if js=$("$GPUMEM" inspect --format json two --gpu "$short1" 2>"$T/inspect.err"); then
    # Options after the operand; only GPU 1's 200 MiB allocation.
    case "$js" in
    *'"count":1,"bytes":209715200,'*) ok inspect_gpu_prefix_after_operand ;;
    *) fail inspect_gpu_prefix_after_operand "$js" ;;
    esac
    js=$("$GPUMEM" inspect two --gpu 0 --format json 2>&1)
    expect_in inspect_gpu_index '"count":1,"bytes":104857600,' "$js"
elif grep -Eq '^gpumem inspect: pid [0-9]+ .*(ptrace|ermission|not permitted)' "$T/inspect.err"; then
    skip inspect_gpu_prefix_after_operand "no ptrace rights here: $(head -1 "$T/inspect.err")"
else
    fail inspect_gpu_prefix_after_operand "$(cat "$T/inspect.err")"
fi
out=$("$GPUMEM" inspect two --gpu GPU-zz 2>&1); rc=$?
[ "$rc" = 2 ] && expect_in inspect_bad_gpu "gpumem inspect: --gpu: " "$out" || fail inspect_bad_gpu "rc=$rc: $out"

# ---- colour: only on a terminal, NO_COLOR honoured ---------------------------
# hot holds 878M of 1G (86%): yellow on a terminal, never into a pipe.
case "$("$GPUMEM" ps)" in *$'\e['*) fail no_colour_in_pipe "escape in piped output" ;; *) ok no_colour_in_pipe ;; esac
# script(1) runs it on a pseudo-terminal (a plain command line: no shell
# function, so the binary itself, with the sanitizer runtime in SAN runs).
TTYPS="env ${ASAN_RT:+LD_PRELOAD=$ASAN_RT} $TOP/$BUILD/bin/gpumem ps"
if command -v script >/dev/null; then
    out=$(script -qec "$TTYPS" /dev/null </dev/null)
    case "$out" in *$'\e[33m'*85.7%*) ok colour_yellow_from_80 ;; *) fail colour_yellow_from_80 "$(printf '%q' "$(grep hot <<<"$out")")" ;; esac
    out=$(NO_COLOR=1 script -qec "$TTYPS" /dev/null </dev/null)
    case "$out" in
    *$'\e['*) fail no_color_honoured "$(printf '%q' "$(grep hot <<<"$out")")" ;;
    *"85.7%"*) ok no_color_honoured ;;
    *) fail no_color_honoured "no hot line: $(printf '%q' "$out")" ;;
    esac
else
    skip colour_yellow_from_80 "script(1) is not installed"
fi
