# gpumem inspect: the live allocations of real shimmed processes, read out of
# their memory while they hold them: by API and size class, oldest and
# largest first, call sites, one process by host pid.
. tests/integration/lib.sh

# hold_in NAME TAG CLIENT-ARGS...: a group member that allocates, then holds;
# waits until it says so and sets $pid to its (host) pid.
hold_in() {
    local name=$1 tag=$2
    shift 2
    run_sim --limit 4G --name "$name" --keep -- "$CLIENT" "$@" hold >"$T/$tag" 2>&1 &
    for _ in $(seq 200); do grep -q holding "$T/$tag" && break; sleep 0.05; done
    pid=$(pgrep -f "^$CLIENT $*" | head -1)
}
# join_in NAME TAG CLIENT-ARGS...: the same, as one more process of an
# existing group (as `docker exec` would start one).
join_in() {
    local name=$1 tag=$2
    shift 2
    GPUMEM_GROUP_DIR="$GPUMEM_STATE_DIR/$name" LD_PRELOAD="$SHIM_PRELOAD" LD_LIBRARY_PATH="$SIMDIR" \
        "$CLIENT" "$@" hold >"$T/$tag" 2>&1 &
    for _ in $(seq 200); do grep -q holding "$T/$tag" && break; sleep 0.05; done
    pid=$(pgrep -f "^$CLIENT $*" | head -1)
}
# jq-like field reads with python3 (json from stdin): py EXPR
py() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# An order of births (sleeps between), several APIs and sizes, one
# freed again.
hold_in ia a init alloc 8M sleep 300 alloc 16M sleep 300 alloc 4K managed 2M alloc 64M free 4
j=$("$GPUMEM" inspect --format json ia 2>"$T/err")
[ "$(py "d['processes'][0]['count']" <<<"$j" 2>&1)" = 4 ] && ok inspect_counts_live_allocations ||
    fail inspect_counts_live_allocations "$j $(cat "$T/err")"
[ "$(py "[(a['api'],a['count'],a['bytes']) for a in d['processes'][0]['by_api']]" <<<"$j" 2>&1)" = \
    "[('cuMemAlloc', 3, 25169920), ('cuMemAllocManaged', 1, 2097152)]" ] && ok inspect_by_api ||
    fail inspect_by_api "$j"
[ "$(py "[(c['class'],c['count']) for c in d['processes'][0]['by_size']]" <<<"$j" 2>&1)" = \
    "[('<= 64 KiB', 1), ('<= 16 MiB', 3)]" ] && ok inspect_by_size_class ||
    fail inspect_by_size_class "$j"
[ "$(py "[a['bytes'] for a in d['processes'][0]['oldest']]" <<<"$j" 2>&1)" = \
    "[8388608, 16777216, 4096, 2097152]" ] && ok inspect_oldest_first || fail inspect_oldest_first "$j"
[ "$(py "[a['bytes'] for a in d['processes'][0]['largest']]" <<<"$j" 2>&1)" = \
    "[16777216, 8388608, 2097152, 4096]" ] && ok inspect_largest_first || fail inspect_largest_first "$j"
# Births 0.3 s apart: the first is older than the third by at least 0.5 s.
[ "$(py "int(d['processes'][0]['oldest'][0]['age_s'] - d['processes'][0]['oldest'][2]['age_s'] >= 0.5)" <<<"$j")" = 1 ] &&
    ok inspect_ages_follow_births || fail inspect_ages_follow_births "$j"
# Call sites are always recorded (the hook's return address: one load).
[ "$(py "(len(d['processes'][0]['sites']) > 0, d['processes'][0]['oldest'][0]['site'].split('+')[0])" <<<"$j" 2>&1)" = \
    "(True, 'alloc_client(main')" ] && ok inspect_sites_always_recorded || fail inspect_sites_always_recorded "$j"
out=$("$GPUMEM" inspect ia 2>&1)
expect_in inspect_table_header "group ia: 4 live allocations, 26.00 MiB" "$out"
expect_in inspect_table_lists_sites "call sites " "$out"

# A second process in the same group: the group lists both, a pid lists
# one; call sites name the function that allocated.
hold_in ib b init alloc 32M managed 4M
pb=$pid
join_in ib c init alloc 1M
pc=$pid
j=$("$GPUMEM" inspect --format json ib 2>&1)
[ "$(py "sorted(p['count'] for p in d['processes'])" <<<"$j" 2>&1)" = "[1, 2]" ] && ok inspect_group_lists_every_process ||
    fail inspect_group_lists_every_process "$j"
j=$("$GPUMEM" inspect --format json "$pb" 2>&1)
[ "$(py "(len(d['processes']), d['processes'][0]['host_pid'])" <<<"$j" 2>&1)" = \
    "(1, $pb)" ] && ok inspect_by_pid || fail inspect_by_pid "$pb: $j"
sites=$(py "[(s['site'].split('+')[0], s['count']) for s in d['processes'][0]['sites']]" <<<"$j" 2>&1)
[ "$sites" = "[('alloc_client(main', 1), ('alloc_client(main', 1)]" ] && ok inspect_call_sites ||
    fail inspect_call_sites "$sites"
out=$("$GPUMEM" inspect "$pb" 2>&1)
expect_in inspect_table_call_sites "alloc_client(main+0x" "$out"

# Many live allocations: every one is found, across all stripes of the table.
hold_in ic d init many 3000 4K
j=$("$GPUMEM" inspect --format json --top 0 ic 2>&1)
[ "$(py "(d['processes'][0]['count'], d['processes'][0]['bytes'], d['processes'][0]['oldest'])" <<<"$j" 2>&1)" = \
    "(3000, 12288000, [])" ] && ok inspect_3000_live || fail inspect_3000_live "$(head -c 300 <<<"$j")"

# Bad input names what was wrong.
out=$("$GPUMEM" inspect nosuchgroup 2>&1); rc=$?
[ $rc = 1 ] && expect_in inspect_unknown_group 'no group "nosuchgroup"' "$out" || fail inspect_unknown_group "rc $rc: $out"
out=$("$GPUMEM" inspect $$ 2>&1); rc=$?
[ $rc = 1 ] && expect_in inspect_pid_in_no_group "process $$ is in no gpumem group" "$out" ||
    fail inspect_pid_in_no_group "rc $rc: $out"
out=$("$GPUMEM" inspect --top many ia 2>&1); rc=$?
[ $rc = 2 ] && expect_in inspect_bad_top '--top "many"' "$out" || fail inspect_bad_top "rc $rc: $out"
out=$("$GPUMEM" inspect --format yaml ia 2>&1); rc=$?
[ $rc = 2 ] && expect_in inspect_bad_format '--format "yaml"' "$out" || fail inspect_bad_format "rc $rc: $out"
"$GPUMEM" inspect --help | grep -q "Usage: gpumem inspect" && ok inspect_help || fail inspect_help "no usage"

# Not root: the kernel refuses to copy another user's memory; said plainly.
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1 && command -v setpriv >/dev/null; then
    # (the group's usage region is the owner's to write; opened up here so
    # that the one thing refused is the copy of the process's memory)
    chmod o+x "$T" && chmod -R o+rX "$GPUMEM_STATE_DIR" && chmod o+w "$GPUMEM_STATE_DIR/ib/usage"
    out=$(LD_PRELOAD="$ASAN_RT" setpriv --reuid=nobody --regid=nogroup --clear-groups \
        "$TOP/$BUILD/bin/gpumem" inspect "$pb" 2>&1); rc=$?
    [ $rc = 1 ] && expect_in inspect_unprivileged_said "pid $pb (alloc_client): not allowed to read its memory" "$out" ||
        fail inspect_unprivileged_said "rc $rc: $out"
else
    skip inspect_unprivileged_said "needs root, user nobody and setpriv"
fi
