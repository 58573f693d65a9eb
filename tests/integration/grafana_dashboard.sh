# deploy/grafana/gpumem-dashboard.json, without Grafana: its shape (valid
# JSON; provisioning-safe: a `datasource` template variable and no
# `__inputs`/`${DS_...}` placeholders; a host variable that every query
# filters on and every legend names, so a fleet's GPU 0s stay apart; group
# legends by pod, else container, else group), then every query against a
# real Prometheus (tests/integration/prom_lib.sh) scraping `gpumem daemon`
# over a group of a real shimmed process on the simulated GPU: each template
# variable's label_values() finds values, and every panel's expression,
# with the variables substituted (All, and then the first value of each),
# evaluates and returns series. The group table's queries return the same
# rows with the same labels, so its merge joins them into one row each.
. tests/integration/lib.sh
export GPUMEM_SIM_CTX_OVERHEAD=128M GPUMEM_SIM_DEVICES=1x16G
. tests/integration/daemon_lib.sh
. tests/integration/prom_lib.sh
DASH=deploy/grafana/gpumem-dashboard.json

command -v python3 >/dev/null || { skip grafana_dashboard "python3 is not installed"; exit 0; }
python3 -m json.tool "$DASH" >/dev/null && ok dashboard_is_json || { fail dashboard_is_json "$(python3 -m json.tool "$DASH" 2>&1)"; exit 0; }

# The shape. Prints ok/FAIL lines itself.
python3 - "$DASH" <<'PY'
import json, re, sys
d = json.load(open(sys.argv[1]))
raw = open(sys.argv[1]).read()
def check(name, cond, why):
    print(("ok " + name) if cond else ("FAIL %s: %s" % (name, why)))
check("dashboard_schema_version", 36 <= d.get("schemaVersion", 0) <= 40, d.get("schemaVersion"))
check("dashboard_no_import_inputs", "__inputs" not in d and "${DS_" not in raw,
      "__inputs / ${DS_...} placeholders break file provisioning (Grafana does not substitute them there)")
tv = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
ds = tv.get("datasource", {})
check("dashboard_datasource_variable", ds.get("type") == "datasource" and ds.get("query") == "prometheus",
      "no template variable 'datasource' of type datasource, query prometheus")
check("dashboard_instance_variable", tv.get("instance", {}).get("type") == "query" and "instance" in json.dumps(tv.get("instance", {}).get("query")),
      "no 'instance' query variable: a fleet's hosts are merged")
targets, bad_ds = [], []
def walk(panels):
    for p in panels:
        if p["type"] != "row":
            if p.get("datasource", {}).get("uid") != "${datasource}":
                bad_ds.append(p["title"])
            if not p.get("targets"):
                bad_ds.append(p["title"] + " (no queries)")
        for t in p.get("targets", []):
            if t.get("datasource", {}).get("uid") != "${datasource}":
                bad_ds.append(p["title"] + "/" + t["refId"])
            targets.append((p["title"], t))
        walk(p.get("panels", []))
walk(d["panels"])
for v in tv.values():
    if v.get("type") == "query" and v.get("datasource", {}).get("uid") != "${datasource}":
        bad_ds.append("variable " + v["name"])
check("dashboard_uses_datasource_variable", not bad_ds, "not on ${datasource}: " + ", ".join(bad_ds))
unfiltered, nohost, noname = [], [], []
for title, t in targets:
    for m in re.finditer(r'\b(gpumem_[a-z_]+)(\{[^}]*\})?', t["expr"]):
        if 'instance=~"$instance"' not in (m.group(2) or ""):
            unfiltered.append("%s/%s: %s" % (title, t["refId"], m.group(1)))
    lf = t.get("legendFormat")
    if lf is not None and "{{instance}}" not in lf and "{{hostname}}" not in lf:
        nohost.append("%s/%s" % (title, t["refId"]))
    if lf is not None and "gpumem_group_" in t["expr"] and "{{name}}" not in lf:
        noname.append("%s/%s" % (title, t["refId"]))
check("dashboard_queries_filter_instance", not unfiltered, "selectors without instance=~\"$instance\": " + "; ".join(unfiltered))
check("dashboard_legends_name_host", not nohost, "legends without {{instance}}/{{hostname}}: " + ", ".join(nohost))
check("dashboard_group_legends_by_workload", not noname, "group legends without {{name}} (pod/container/group): " + ", ".join(noname))
PY

for tool in prometheus curl; do
    command -v $tool >/dev/null || { skip grafana_dashboard_prometheus "$tool is not installed"; exit 0; }
done
run_sim --limit 1G --name dashg --keep -- "$CLIENT" init alloc 100M alloc 2G hold >"$T/holder" 2>&1 &
wait_for holding "$T/holder" || fail holder_started "$(cat "$T/holder")"
start_daemon
start_prometheus || { fail prometheus_started "$(tail -5 "$T/prometheus.log")"; exit 0; }
# Three scrapes of the group, so rate() over the panel's window has points.
prom_wait 'count_over_time(gpumem_group_used_bytes{group="dashg"}[1m]) >= 3' || fail group_scraped "$PROM_GOT"

python3 - "$DASH" "$P" <<'PY'
import json, re, sys, urllib.parse, urllib.request
d = json.load(open(sys.argv[1])); P = sys.argv[2]
def get(path, **params):
    url = P + path + "?" + urllib.parse.urlencode(params, doseq=True)
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)
def query(e):
    try:
        return get("/api/v1/query", query=e)["data"]["result"], None
    except Exception as ex:  # a 400 for a bad expression
        msg = getattr(ex, "read", lambda: b"")().decode(errors="replace")[:300]
        return None, "%s %s" % (ex, msg)
def check(name, cond, why):
    print(("ok " + name) if cond else ("FAIL %s: %s" % (name, why)))
def slug(s):
    return re.sub(r'[^a-z0-9]+', '_', s.lower()).strip('_')

# Template variables, in order (later ones use earlier ones), like Grafana:
# label_values(SELECTOR, LABEL) is the LABEL values of the series SELECTOR
# matches now.
allv = {"__rate_interval": "10s"}
first = dict(allv)
def subst(e, vals):
    return re.sub(r'\$(\w+)', lambda m: vals.get(m.group(1), m.group(0)), e)
for v in d["templating"]["list"]:
    if v["type"] != "query":
        continue
    q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
    m = re.fullmatch(r'label_values\((.*),\s*(\w+)\)', q)
    if not m:
        check("variable_" + v["name"], False, "not label_values(): " + q); continue
    sel = subst(m.group(1), {k: ".*" for k in allv} | {"__rate_interval": "10s"})
    try:
        series = get("/api/v1/series", **{"match[]": sel})["data"]
    except Exception as ex:
        series = []
    vals = sorted({s[m.group(2)] for s in series if m.group(2) in s})
    check("variable_" + v["name"] + "_has_values", vals, "label_values(%s, %s) found nothing" % (sel, m.group(2)))
    allv[v["name"]] = v.get("allValue", ".*")
    # Grafana escapes a value's regex characters for =~, with a backslash
    # that is itself escaped inside the PromQL string.
    first[v["name"]] = re.escape(vals[0]).replace("\\", "\\\\") if vals else ".*"
    if v["name"] == "group":
        first["group"] = "dashg"

targets = []
def walk(panels):
    for p in panels:
        for t in p.get("targets", []):
            targets.append((p, t))
        walk(p.get("panels", []))
walk(d["panels"])
for which, vals in (("all", allv), ("one", first)):
    for p, t in targets:
        e = subst(t["expr"], vals)
        res, err = query(e)
        check("panel_%s_%s_%s" % (slug(p["title"]), t["refId"], which), res,
              err or "no series for: " + e)

# The group table: every query of a merged table returns the same label sets
# (no __name__), so Grafana's merge joins them into one row per group/GPU.
for p in {id(p): p for p, _ in targets}.values():
    if p["type"] != "table" or not any(tr["id"] == "merge" for tr in p.get("transformations", [])):
        continue
    sets = {}
    for t in p["targets"]:
        res, err = query(subst(t["expr"], allv))
        sets[t["refId"]] = sorted(json.dumps(r["metric"], sort_keys=True) for r in (res or []))
    ref = sets[p["targets"][0]["refId"]]
    diff = [k for k, s in sets.items() if s != ref]
    check("table_%s_rows_join" % slug(p["title"]), ref and not diff,
          "queries %s return other label sets than %s: %s" % (diff, p["targets"][0]["refId"], json.dumps(sets)[:600]))
    check("table_%s_has_group" % slug(p["title"]), any('"group": "dashg"' in r for r in ref), json.dumps(ref)[:300])

# Group legends: the pod when the series has one, else the container, else
# the group. The expressions' own label_replace chain, over synthetic series.
gt = [t for p, t in targets if "{{name}}" in t.get("legendFormat", "")]
e = gt[0]["expr"] if gt else ""
m = re.search(r'gpumem_group_[a-z_]+\{[^}]*\}', e)
def synth(**labels):
    v = "vector(1)"
    for k, x in labels.items():
        v = 'label_replace(%s, "%s", "%s", "", "")' % (v, k, x)
    return v
for case, labels, want in (("pod", dict(group="g1", container="c1", pod="p1"), "p1"),
                           ("container", dict(group="g1", container="c1"), "c1"),
                           ("group", dict(group="g1"), "g1")):
    if not m:
        check("legend_name_" + case, False, "no group query with a {{name}} legend"); continue
    res, err = query(subst(e.replace(m.group(0), synth(**labels)), allv))
    got = [r["metric"].get("name") for r in (res or [])]
    check("legend_name_" + case, got == [want], "name %s, wanted %s (%s)" % (got, want, err or ""))
PY
stop_prometheus
stop_daemon
