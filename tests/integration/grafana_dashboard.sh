# deploy/grafana/gpumem-dashboard.json: valid JSON, a templated Prometheus
# datasource, and every metric named in its panel queries and template
# variables exists (with a series) in a real scrape of gpumem daemon over a
# group made by a real shimmed process on the simulated GPU.
. tests/integration/lib.sh
export GPUMEM_SIM_CTX_OVERHEAD=128M GPUMEM_SIM_DEVICES=1x16G
. tests/integration/daemon_lib.sh
DASH=deploy/grafana/gpumem-dashboard.json

command -v python3 >/dev/null || { skip grafana_dashboard "python3 is not installed"; exit 0; }
python3 -m json.tool "$DASH" >/dev/null && ok dashboard_is_json || { fail dashboard_is_json "$(python3 -m json.tool "$DASH" 2>&1)"; exit 0; }

# Every query (panel targets' expr, template variables' query), and checks on the shape.
names=$(python3 - "$DASH" <<'PY'
import json, re, sys
d = json.load(open(sys.argv[1]))
assert any(i.get("name") == "DS_PROMETHEUS" and i.get("pluginId") == "prometheus" for i in d["__inputs"]), "no DS_PROMETHEUS input"
assert 36 <= d["schemaVersion"] <= 40, d["schemaVersion"]
exprs = []
def walk(panels):
    for p in panels:
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
            assert p.get("targets"), "panel without queries: " + p["title"]
        for t in p.get("targets", []):
            exprs.append(t["expr"])
        walk(p.get("panels", []))
walk(d["panels"])
for v in d["templating"]["list"]:
    q = v.get("query")
    exprs.append(q["query"] if isinstance(q, dict) else q)
names = set()
for e in exprs:
    e = re.sub(r'\{[^}]*\}', '', e)          # label matchers
    e = re.sub(r'\[[^\]]*\]', '', e)         # ranges
    for n in re.findall(r'[a-zA-Z_:][a-zA-Z0-9_:]*', e):
        if n.startswith("gpumem_"):
            names.add(n)
        elif n not in {"rate", "increase", "label_values", "gpu", "group", "sum", "by", "max", "abs"}:
            sys.exit("unexpected identifier in a query: " + n)
print("\n".join(sorted(names)))
PY
) && ok dashboard_queries_parsed || { fail dashboard_queries_parsed "$names"; exit 0; }
[ "$(wc -l <<<"$names")" -ge 10 ] && ok dashboard_uses_the_metrics || fail dashboard_uses_the_metrics "$names"

command -v curl >/dev/null || { skip grafana_dashboard_scrape "curl is not installed"; exit 0; }
run_sim --limit 1G --name dashg --keep -- "$CLIENT" init alloc 100M hold >"$T/holder" 2>&1 &
wait_for holding "$T/holder" || fail holder_started "$(cat "$T/holder")"
start_daemon
m=$(curl -sf "$URL/metrics") || fail metrics_served "curl failed"
for n in $names; do
    grep -Eq "^$n(\{| )" <<<"$m" && ok "metric_exists_$n" || fail "metric_exists_$n" "not in a scrape"
done
stop_daemon
