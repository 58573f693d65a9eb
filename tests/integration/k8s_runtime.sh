# gpumem-runtime under Kubernetes, with a fake real runtime that only logs
# its calls: OCI bundles annotated as containerd's CRI plugin
# (io.kubernetes.cri.*) and CRI-O (io.kubernetes.pod.*,
# io.kubernetes.container.name, io.kubernetes.cri-o.ContainerType) write
# them. A pod's container gets a group named <namespace>_<pod>_<container>
# (cut and hashed when too long; told apart by its id when the name is
# taken), labelled with pod, namespace, container and id in `gpumem ps
# --format json` and in the daemon's Prometheus metrics (valid for
# promtool); `delete` removes it. A sandbox (pause) container gets no group.
# A spec naming the device plugin's group (gpumem.io/group) gets no new
# group: that one is renamed after the pod, labelled, and the spec's mounts
# follow it; a restarted container with the same allocation finds it again;
# `delete` leaves it to the plugin; a missing or malformed one refuses the
# container.
. tests/integration/lib.sh
export GPUMEM_SIM_CTX_OVERHEAD=128M GPUMEM_SIM_DEVICES=1x16G
. tests/integration/daemon_lib.sh
RT="$TOP/$BUILD/bin/gpumem-runtime"
[ "${SAN:-0}" = 1 ] && RT_RUN() { LD_PRELOAD="$ASAN_RT" "$RT" "$@"; } || RT_RUN() { "$RT" "$@"; }
S="$GPUMEM_STATE_DIR"
fake="$T/fake-runc"
printf '#!/bin/sh\necho "$*" >>"%s/runc.log"\nexit 0\n' "$T" >"$fake"
chmod +x "$fake"
printf 'runtime = %s\nshim = %s\n' "$fake" "$SHIM" >"$T/runtime.conf"
export GPUMEM_RUNTIME_CONFIG="$T/runtime.conf"
mkdir -p "$S" "$T/runc"
: >"$T/runc.log"

# bundle ID ANNOTATIONS_JSON [ENV_JSON] [MOUNTS_JSON]: writes a bundle.
bundle() {
    local b="$T/bundle-$1"
    mkdir -p "$b/rootfs/etc"
    printf '{"ociVersion":"1.0.2","process":{"env":%s},"root":{"path":"rootfs"},"mounts":%s,"annotations":%s}\n' \
        "${3:-[\"PATH=/bin\",\"NVIDIA_GPU_MEMORY_LIMIT=1024\"]}" "${4:-[]}" "$2" >"$b/config.json"
}
create() { RT_RUN --root "$T/runc" create --bundle "$T/bundle-$1" "$1"; }
groups() { (cd "$S" && ls -1) | tr '\n' ' '; }
# field GROUP KEY: KEY of GROUP in gpumem ps -a --format json.
field() {
    "$GPUMEM" ps -a --format json | /usr/bin/python3 -c '
import json, sys
g = [g for g in json.load(sys.stdin) if g["group"] == sys.argv[1]]
print(g[0][sys.argv[2]] if g else "<no group %s>" % sys.argv[1])' "$1" "$2"
}
# expect_eq NAME WANT GOT
expect_eq() { [ "$2" = "$3" ] && ok "$1" || fail "$1" "expected \"$2\", got \"$3\""; }

ID1=1111111111111111111111111111111111111111111111111111111111111111
CTRD='{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.sandbox-name":"train-0","io.kubernetes.cri.sandbox-namespace":"ml","io.kubernetes.cri.container-name":"trainer","io.kubernetes.cri.sandbox-id":"abc"}'
bundle "$ID1" "$CTRD"
G1=ml_train-0_trainer
# check_pod RT ID GROUP POD NAMESPACE CONTAINER: create, then the group and its labels.
check_pod() {
    create "$2" && ok "$1_create" || fail "$1_create" "rc=$?"
    [ -f "$S/$3/limits" ] && ok "$1_group_named_after_pod" || fail "$1_group_named_after_pod" "groups: $(groups)"
    expect_eq "$1_ps_pod" "$4" "$(field "$3" pod)"
    expect_eq "$1_ps_namespace" "$5" "$(field "$3" namespace)"
    expect_eq "$1_ps_container" "$6" "$(field "$3" container)"
    expect_eq "$1_ps_container_id" "$2" "$(field "$3" container_id)"
    expect_eq "$1_ps_name" "$3" "$(field "$3" name)"
}
check_pod containerd "$ID1" $G1 train-0 ml trainer
grep -q "create --bundle $T/bundle-$ID1 $ID1" "$T/runc.log" && ok containerd_real_runtime_called ||
    fail containerd_real_runtime_called "$(cat "$T/runc.log")"

ID2=2222222222222222222222222222222222222222222222222222222222222222
CRIO='{"io.kubernetes.cri-o.ContainerType":"container","io.kubernetes.pod.name":"infer-7d9f","io.kubernetes.pod.namespace":"serving","io.kubernetes.container.name":"server","io.kubernetes.pod.uid":"u-1"}'
bundle "$ID2" "$CRIO"
check_pod crio "$ID2" serving_infer-7d9f_server infer-7d9f serving server

# Sandbox (pause) containers: no group, even with a limit in their env;
# the spec is handed on untouched.
before=$(groups)
for rt in containerd crio; do
    id=$(printf '%064d' 3)$rt
    id=${id:${#rt}}
    if [ $rt = containerd ]; then
        a='{"io.kubernetes.cri.container-type":"sandbox","io.kubernetes.cri.sandbox-name":"train-0","io.kubernetes.cri.sandbox-namespace":"ml"}'
    else
        a='{"io.kubernetes.cri-o.ContainerType":"sandbox","io.kubernetes.pod.name":"infer-7d9f","io.kubernetes.pod.namespace":"serving","io.kubernetes.container.name":"POD"}'
    fi
    bundle "$id" "$a"
    cp "$T/bundle-$id/config.json" "$T/sandbox.json"
    create "$id" && [ "$(groups)" = "$before" ] && cmp -s "$T/sandbox.json" "$T/bundle-$id/config.json" &&
        grep -q "create --bundle $T/bundle-$id $id" "$T/runc.log" && ok "${rt}_sandbox_no_group" ||
        fail "${rt}_sandbox_no_group" "groups: $(groups) (before: $before)"
done

# Names longer than a group name may be: cut, with a hash of the whole
# identity, so pods that differ only past the cut get two groups.
long=$(printf 'p%.0s' $(seq 70))
for n in a b; do
    id=$(printf '%064d' 4)$n
    id=${id:1}
    bundle "$id" "{\"io.kubernetes.cri.sandbox-name\":\"${long}$n\",\"io.kubernetes.cri.sandbox-namespace\":\"default\",\"io.kubernetes.cri.container-name\":\"c\"}"
    create "$id" || fail "long_name_create_$n" "rc=$?"
done
longs=$(cd "$S" && ls -1d default_pp* 2>/dev/null | sort)
[ "$(wc -l <<<"$longs")" = 2 ] && ! grep -qvE '^default_p{46}_[0-9a-f]{8}$' <<<"$longs" && ok long_names_cut_hashed_distinct ||
    fail long_names_cut_hashed_distinct "groups: $(groups)"

# The same pod and container again while the old group is still there (a
# restart whose delete has not come yet): told apart by the id.
ID5=5555555555555555555555555555555555555555555555555555555555555555
bundle "$ID5" "$CTRD"
create "$ID5" && [ -f "$S/${G1}_55555555/limits" ] && ok restarted_container_gets_id_suffix ||
    fail restarted_container_gets_id_suffix "groups: $(groups)"

# delete finds a pod's group by its record, and removes only its own.
RT_RUN --root "$T/runc" delete "$ID5"
[ ! -e "$S/${G1}_55555555" ] && [ -f "$S/$G1/limits" ] && ok delete_removes_pod_group ||
    fail delete_removes_pod_group "groups: $(groups)"

# The device plugin's group, made by the plugin's own Allocate code
# (tests/k8s/allocate_spec.c: kp_allocate_container) for 2 GiB of the
# simulated GPU, and a spec carrying its answer (mounts, env, annotations)
# as the kubelet hands it on through containerd, plus a mount of a
# neighbouring path that must stay as it is.
run_sim --limit 1G --name uuidprobe --keep -- "$CLIENT" init alloc 1M >/dev/null 2>&1
UUID=$("$GPUMEM" ps -a --format json | /usr/bin/python3 -c 'import json,sys; print([g for g in json.load(sys.stdin) if g["group"]=="uuidprobe"][0]["devices"][0]["uuid"])' 2>/dev/null)
"$GPUMEM" rm uuidprobe >/dev/null 2>&1
"$PROGS/../k8s/allocate_spec" "$SHIM" "$UUID" 2147483648 >"$T/alloc.json" && ok plugin_allocate ||
    fail plugin_allocate "$(cat "$T/alloc.json")"
PGN=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["annotations"]["gpumem.io/group"])' "$T/alloc.json")
PG="$S/$PGN"
[ -f "$PG/limits" ] && [ -f "$PG/k8s" ] && ok plugin_group_made || fail plugin_group_made "groups: $(groups)"
# plugin_bundle ID: a bundle with the pod's CRI annotations and the Allocate answer.
plugin_bundle() {
    mkdir -p "$T/bundle-$1/rootfs"
    /usr/bin/python3 - "$T/alloc.json" "$PG" >"$T/bundle-$1/config.json" <<'PY'
import json, sys
a = json.load(open(sys.argv[1]))
ann = {"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-name": "llm-0",
       "io.kubernetes.cri.sandbox-namespace": "team-a", "io.kubernetes.cri.container-name": "vllm"}
ann.update(a["annotations"])
mounts = a["mounts"] + [{"destination": "/other", "type": "bind", "source": sys.argv[2] + "x", "options": ["rbind", "ro"]}]
print(json.dumps({"ociVersion": "1.0.2", "process": {"env": ["PATH=/bin"] + a["env"]}, "root": {"path": "rootfs"},
                  "mounts": mounts, "annotations": ann}))
PY
}
# The mount sources gpumem-runtime should leave in a bundle: the plugin's,
# moved from its group to $1, and the neighbour unchanged.
want_sources() {
    /usr/bin/python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); print(" ".join([m["source"].replace(sys.argv[2], sys.argv[3], 1) if m["source"].startswith(sys.argv[2]) else m["source"] for m in a["mounts"]] + [sys.argv[2] + "x"]))' "$T/alloc.json" "$PG" "$1"
}
ID6=6666666666666666666666666666666666666666666666666666666666666666
plugin_bundle "$ID6"
before=$(cd "$S" && ls -1 | wc -l)
G6=team-a_llm-0_vllm
check_pod plugin "$ID6" $G6 llm-0 team-a vllm
[ ! -e "$PG" ] && [ "$(cd "$S" && ls -1 | wc -l)" = "$before" ] && ok plugin_group_renamed_not_added ||
    fail plugin_group_renamed_not_added "groups: $(groups)"
expect_eq plugin_group_origin "$PGN" "$(cat "$S/$G6/origin" 2>&1)"
srcs=$(/usr/bin/python3 -c 'import json,sys; print(" ".join(m["source"] for m in json.load(open(sys.argv[1]))["mounts"]))' "$T/bundle-$ID6/config.json")
expect_eq plugin_mounts_follow_rename "$(want_sources "$S/$G6")" "$srcs"
grep -q "$S/$G6/usage" <<<"$srcs" && ok plugin_mounts_include_group || fail plugin_mounts_include_group "$srcs"
[ ! -e "$S/$G6/container" ] && ok plugin_group_not_the_runtimes || fail plugin_group_not_the_runtimes "a container record was written"

# A process of the container (as the shim in it would be: the group's
# directory) is shown by its pod in ps and in the metrics.
GPUMEM_GROUP_DIR="$S/$G6" LD_PRELOAD="$SHIM_PRELOAD" LD_LIBRARY_PATH="$SIMDIR" "$CLIENT" init alloc 300M hold >"$T/hold.out" 2>&1 &
hold=$!
wait_for holding "$T/hold.out" && ok pod_process_started || fail pod_process_started "$(cat "$T/hold.out")"
"$GPUMEM" ps | grep -qE "^$G6 +$G6 +0 GPU-.* 2 GiB .* 1 +0 +- shim$" && ok ps_table_shows_pod_group || fail ps_table_shows_pod_group "$("$GPUMEM" ps)"
# The plugin's limit holds in the renamed group: 300 MiB held, 2 GiB more is refused.
out=$(GPUMEM_GROUP_DIR="$S/$G6" LD_PRELOAD="$SHIM_PRELOAD" LD_LIBRARY_PATH="$SIMDIR" "$CLIENT" init alloc 2G 2>&1)
expect_in plugin_limit_enforced "alloc -> 2" "$out"
start_daemon
m=$(curl -sf "$URL/metrics")
want="gpumem_group_used_bytes{group=\"$G6\",container=\"vllm\",pod=\"llm-0\",namespace=\"team-a\",gpu=\"0\","
grep -qF "$want" <<<"$m" && ok metrics_pod_labels || fail metrics_pod_labels "no $want in: $(grep '^gpumem_group_used' <<<"$m")"
if command -v promtool >/dev/null; then
    out=$(promtool check metrics <<<"$m" 2>&1) && ok promtool_check_metrics || fail promtool_check_metrics "$out"
else
    fail promtool_check_metrics "promtool is not installed (tools/install-deps.sh)"
fi
stop_daemon
kill -KILL "$hold"
wait "$hold" 2>/dev/null

# The container restarts: the kubelet hands the same Allocate response on
# (the plugin's name); the runtime finds the renamed group by its origin.
ID7=7777777777777777777777777777777777777777777777777777777777777777
plugin_bundle "$ID7"
create "$ID7" && [ "$(field $G6 container_id)" = "$ID7" ] && [ ! -e "$PG" ] && ok restart_finds_renamed_group ||
    fail restart_finds_renamed_group "groups: $(groups); id $(field $G6 container_id)"
srcs=$(/usr/bin/python3 -c 'import json,sys; print(" ".join(m["source"] for m in json.load(open(sys.argv[1]))["mounts"]))' "$T/bundle-$ID7/config.json")
expect_eq restart_mounts_follow "$(want_sources "$S/$G6")" "$srcs"
RT_RUN --root "$T/runc" delete "$ID7"
[ -f "$S/$G6/limits" ] && ok delete_leaves_plugin_group || fail delete_leaves_plugin_group "groups: $(groups)"

# Bad gpumem.io/group values refuse the container, before the real runtime.
for bad in no-such-group ../etc; do
    id=$(printf '%064d' 8)
    bundle "$id" "{\"io.kubernetes.cri.sandbox-name\":\"p\",\"io.kubernetes.cri.sandbox-namespace\":\"n\",\"io.kubernetes.cri.container-name\":\"c\",\"gpumem.io/group\":\"$bad\"}" '["PATH=/bin"]'
    : >"$T/runc.log"
    out=$(create "$id" 2>&1) && fail "bad_group_refused_$bad" "created" ||
        { expect_in "bad_group_refused_$bad" "gpumem.io/group \"$bad\"" "$out"; }
    [ -s "$T/runc.log" ] && fail "bad_group_no_runtime_$bad" "the real runtime ran: $(cat "$T/runc.log")"
done
exit 0
