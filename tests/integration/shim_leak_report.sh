# GPUMEM_LEAK_REPORT: at exit, every device allocation never freed, with
# size, API, GPU, age and call site; exactly the planted ones.
. tests/integration/lib.sh
export GPUMEM_SIM_CTX_OVERHEAD=64M
out=$(GPUMEM_LEAK_REPORT=1 run_sim --limit 4G -- "$CLIENT" init alloc 10M alloc 20M alloc 30M free 1 2>&1 >/dev/null)
expect_in leak_report_summary "2 device allocations never freed, 40 MiB" "$out"
n=$(grep -c ' cuMemAlloc ' <<<"$out")
[ "$n" = 2 ] && ok leak_report_lists_exactly_the_planted || fail leak_report_lists_exactly_the_planted "$n lines: $out"
case "$out" in *"10 MiB  cuMemAlloc"*"alloc_client(main+0x"*) ok leak_report_names_call_site ;;
*) fail leak_report_names_call_site "$out" ;; esac
grep -q '20 MiB' <<<"$out" && fail freed_allocation_not_reported "$out" || ok freed_allocation_not_reported
out=$(GPUMEM_LEAK_REPORT="$T/report.txt" run_sim --limit 4G -- "$CLIENT" init alloc 10M freeall 2>&1 >/dev/null)
expect_in clean_exit_reports_nothing "0 device allocations never freed" "$(cat "$T/report.txt" 2>&1)"
[ -z "$out" ] && ok report_to_file_keeps_stderr_clean || fail report_to_file_keeps_stderr_clean "$out"
out=$(run_sim --limit 4G -- "$CLIENT" init alloc 10M 2>&1 >/dev/null)
[ -z "$out" ] && ok no_report_unless_asked || fail no_report_unless_asked "$out"
