# gpumem-dra, the DRA driver, between a stand-in API server (HTTPS,
# tests/k8s/dra_apiserver.py: every object it is sent is validated against
# the real OpenAPI schema of resource.k8s.io/v1) and a stand-in kubelet
# (grpc-go on our protos' messages, tests/k8s/dra_kubelet/), on a simulated
# node of two 16 GiB GPUs: publication, health, three claims of 4, 8 and
# 2 GiB on one GPU each held to its share in a "container" made from the
# CDI spec, unprepare, retries, a driver killed and restarted, bad claims.
source "$(dirname "$0")/lib.sh"
DRA="$TOP/$BUILD/bin/gpumem-dra"
SPEC="${GPUMEM_OPENAPI_DIR:-$TOP/tests/data/openapi}/apis__resource.k8s.io__v1_openapi.json"
export GPUMEM_SIM_DEVICES=16G,16G GPUMEM_SIM_CTX_OVERHEAD=64M

# The wire format: our protos against our facts tables of upstream's
# (tests/data/k8s-proto-facts/, transcribed from the kubelet's api.proto
# files): messages, fields (name, number, label, type) and gRPC paths served.
for p in dra-v1:dra dra-v1beta1:dra pluginregistration-v1:pluginregistration; do
    out=$(/usr/bin/python3 tests/k8s/proto_conform.py check "src/dra/${p#*:}.proto" \
        "tests/data/k8s-proto-facts/${p%%:*}.txt" --package "${p#*:}" --methods-in src/dra/*.c 2>&1) &&
        ok "dra_proto_matches_${p%%:*}" || fail "dra_proto_matches_${p%%:*}" "$(tr '\n' '|' <<<"$out")"
done
# The check can fail: a field of ours with the wrong number, or label, is caught.
sed 's/string error = 2;/string error = 3;/' src/dra/dra.proto >"$T/mut1.proto"
sed 's/repeated string cdi_device_ids = 4;/string cdi_device_ids = 4;/' src/dra/dra.proto >"$T/mut2.proto"
if ! cmp -s src/dra/dra.proto "$T/mut1.proto" && ! cmp -s src/dra/dra.proto "$T/mut2.proto" &&
    ! /usr/bin/python3 tests/k8s/proto_conform.py check "$T/mut1.proto" tests/data/k8s-proto-facts/dra-v1.txt --package dra >/dev/null &&
    ! /usr/bin/python3 tests/k8s/proto_conform.py check "$T/mut2.proto" tests/data/k8s-proto-facts/dra-v1.txt --package dra >/dev/null; then
    ok dra_proto_mutations_caught
else
    fail dra_proto_mutations_caught "a changed field number or label passed the conformance check"
fi

# The manifests: YAML, and each object against its API group's real schema.
OPENAPI_DIR="${GPUMEM_OPENAPI_DIR:-$TOP/tests/data/openapi}"
out=$(/usr/bin/python3 -c 'import sys, yaml
for f in sys.argv[1:]:
    for d in yaml.safe_load_all(open(f)):
        assert d and d.get("apiVersion") and d.get("kind") and d["metadata"].get("name"), f
        print(d["kind"], d["metadata"]["name"])' deploy/kubernetes/dra/*.yaml 2>&1) &&
    expect_in dra_manifests_parse "DaemonSet gpumem-dra" "$out" || fail dra_manifests_parse "$(tr '\n' '|' <<<"$out")"
if ls "$OPENAPI_DIR"/*.json >/dev/null 2>&1; then
    out=$(/usr/bin/python3 tests/k8s/openapi.py "$OPENAPI_DIR" deploy/kubernetes/dra/*.yaml 2>&1) &&
        ok dra_manifests_match_schemas || fail dra_manifests_match_schemas "$(tr '\n' '|' <<<"$out" | cut -c1-800)"
else
    skip dra_manifests_match_schemas "no Kubernetes schemas in tests/data/openapi"
fi
# RBAC: exactly the verbs the driver uses.
out=$(/usr/bin/python3 -c 'import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d["kind"] == "ClusterRole":
        print(sorted((r["resources"][0], v) for r in d["rules"] for v in r["verbs"]))' deploy/kubernetes/dra/rbac.yaml)
[ "$out" = "[('resourceclaims', 'get'), ('resourceslices', 'create'), ('resourceslices', 'get'), ('resourceslices', 'update')]" ] &&
    ok dra_rbac_minimal || fail dra_rbac_minimal "$out"

for need in "$DRA" go protoc openssl; do
    command -v "$need" >/dev/null || { skip k8s_dra "$need not found"; exit 0; }
done
if ! out=$(tests/k8s/dra_kubelet/build.sh "$T/kubelet-bin" 2>&1); then
    fail dra_fake_kubelet_builds "$(tr '\n' '|' <<<"$out" | cut -c1-600)"
    exit 0
fi
KUBELET="$T/kubelet-bin/dra_kubelet"
if ! unshare -m true 2>/dev/null; then
    skip k8s_dra "unshare -m failed (needs root or CAP_SYS_ADMIN): containers cannot be emulated"
    exit 0
fi

# ---- the API server: a self-signed certificate for 127.0.0.1, a token ---
mkdir -p "$T/sa" "$T/claims" "$T/api" "$T/kubelet"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=kubernetes -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$T/key.pem" -out "$T/sa/ca.crt" 2>/dev/null
echo "test-token-$$" >"$T/sa/token"
/usr/bin/python3 tests/k8s/dra_apiserver.py "$T/sa/ca.crt" "$T/key.pem" "$T/sa/token" "$T/claims" "$T/api" "$SPEC" \
    2>"$T/api.err" &
API_PID=$!
for _ in $(seq 100); do [ -s "$T/api/port" ] && break; sleep 0.1; done
PORT=$(cat "$T/api/port" 2>/dev/null)
[ -n "$PORT" ] || { fail dra_apiserver_starts "$(cat "$T/api.err")"; exit 0; }

NODE=node-a
SLICE="$T/api/slices/$NODE-gpumem.io.json"
start_driver() {
    "$DRA" --node "$NODE" --api-server "https://127.0.0.1:$PORT" --service-account "$T/sa" \
        --nvml "$SIMDIR/libnvidia-ml.so.1" --state-dir "$T/dra-state" --cdi-dir "$T/cdi" \
        --groups-dir "$GPUMEM_STATE_DIR" --shim "$SHIM" --registry-dir "$T/kubelet/plugins_registry" \
        --plugins-dir "$T/kubelet/plugins" --interval 1 "$@" 2>>"$T/driver.log" &
    DRA_PID=$!
    for _ in $(seq 100); do [ -S "$T/kubelet/plugins_registry/gpumem.io.sock" ] && break; sleep 0.1; done
}
# slice_json PYTHON-EXPRESSION-OF-s: evaluates it on the stored slice.
slice() { /usr/bin/python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print(repr(($1)))" "$SLICE" 2>/dev/null; }
wait_for() { for _ in $(seq 100); do [ "$(slice "$1")" = "$2" ] && return 0; sleep 0.1; done; return 1; }

# ---- publish on start -----------------------------------------------------
start_driver
if wait_for "s['spec']['pool']['generation']" 1; then
    got=$(slice "[(d['name'], d['capacity']['memory']['value'], d['allowMultipleAllocations'], d['attributes']['index']['int'], 'taints' in d) for d in s['spec']['devices']], s['spec']['pool']['name'], s['spec']['nodeName'], s['spec']['driver']")
    expect_in dra_publishes_on_start "([('gpu-0', '16Gi', True, 0, False), ('gpu-1', '16Gi', True, 1, False)], 'node-a', 'node-a', 'gpumem.io')" "$got"
    expect_in dra_slice_request_policy "{'default': '1Gi', 'validRange': {'max': '16Gi', 'min': '1Gi', 'step': '1Gi'}}" \
        "$(slice "json.loads(json.dumps(s['spec']['devices'][0]['capacity']['memory']['requestPolicy'], sort_keys=True))")"
else
    fail dra_publishes_on_start "no ResourceSlice: $(tail -5 "$T/driver.log" | tr '\n' '|')"
fi

# ---- registration -----------------------------------------------------------
out=$("$KUBELET" register "$T/kubelet/plugins_registry/gpumem.io.sock" 2>&1)
expect_in dra_registration_info "{\"type\":\"DRAPlugin\",\"name\":\"gpumem.io\",\"endpoint\":\"$T/kubelet/plugins/gpumem.io/dra.sock\",\"supported_versions\":[\"v1.DRAPlugin\",\"v1beta1.DRAPlugin\"]}" "$out"
sleep 0.2
expect_in dra_registration_notified "registered with kubelet" "$(cat "$T/driver.log")"
DSOCK="$T/kubelet/plugins/gpumem.io/dra.sock"

# ---- health: a GPU lost is tainted, back again untainted ---------------------
touch "$GPUMEM_SIM_STATE/lost-1"
if wait_for "s['spec']['pool']['generation'], [d.get('taints') for d in s['spec']['devices']]" \
    "(2, [None, [{'key': 'gpumem.io/unhealthy', 'value': 'gpu-lost', 'effect': 'NoSchedule'}]])"; then
    ok dra_unhealthy_gpu_tainted
else
    fail dra_unhealthy_gpu_tainted "$(slice "s['spec']"): $(tail -3 "$T/driver.log" | tr '\n' '|')"
fi
rm -f "$GPUMEM_SIM_STATE/lost-1"
wait_for "s['spec']['pool']['generation'], [d.get('taints') for d in s['spec']['devices']]" "(3, [None, None])" &&
    ok dra_healthy_again_untainted || fail dra_healthy_again_untainted "$(slice "s['spec']")"

# ---- claims -----------------------------------------------------------------
# claim NAME UID RESULTS-JSON: a ResourceClaim as the scheduler leaves it.
claim() {
    cat >"$T/claims/default_$1.json" <<JSON
{"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
 "metadata": {"name": "$1", "namespace": "default", "uid": "$2", "resourceVersion": "7"},
 "spec": {"devices": {"requests": [{"name": "mem", "exactly": {"deviceClassName": "gpumem.io",
          "capacity": {"requests": {"memory": "4Gi"}}}}]}},
 "status": {"allocation": {"devices": {"results": $3}},
            "reservedFor": [{"resource": "pods", "name": "pod-$1", "uid": "11111111-2222-3333-4444-${2##*-}"}]}}
JSON
    [ -f "$SPEC" ] && /usr/bin/python3 tests/k8s/openapi.py "$SPEC" "$T/claims/default_$1.json" >"$T/claim-check" 2>&1 ||
        { [ -f "$SPEC" ] && fail "dra_claim_fixture_valid_$1" "$(cat "$T/claim-check")"; }
}
# res DEVICE [MEMORY [DRIVER]]: one allocation result (with a share ID when it consumed memory).
res() {
    local cap=""
    [ -n "${2:-}" ] && cap=", \"consumedCapacity\": {\"memory\": \"$2\"}, \"shareID\": \"$(printf '%08d' $RANDOM)-aaaa-bbbb-cccc-dddddddddddd\""
    echo "{\"request\": \"mem\", \"driver\": \"${3:-gpumem.io}\", \"pool\": \"$NODE\", \"device\": \"$1\"$cap}"
}
U4=a0000000-0000-0000-0000-000000000004 U8=a0000000-0000-0000-0000-000000000008 U2=a0000000-0000-0000-0000-000000000002
claim c4 $U4 "[$(res gpu-0 4Gi)]"
claim c8 $U8 "[$(res gpu-0 8Gi)]"
claim c2 $U2 "[$(res gpu-0 2Gi)]"
out=$("$KUBELET" prepare "$DSOCK" v1 default/c4/$U4 default/c8/$U8 default/c2/$U2 2>&1)
n=$(grep -o '"cdi_device_ids":\["gpumem.io/claim=a0000000-0000-0000-0000-00000000000[482]"\]' <<<"$out" | wc -l)
[ "$n" = 3 ] && ok dra_prepare_three_claims || fail dra_prepare_three_claims "$out"
expect_in dra_prepare_device_fields "{\"request_names\":[\"mem\"],\"pool_name\":\"node-a\",\"device_name\":\"gpu-0\"" "$out"
for u in $U4 $U8 $U2; do [ -f "$T/cdi/gpumem.io-claim_$u.json" ] || fail dra_cdi_specs_written "$u"; done
ok dra_cdi_specs_written

# container UID CLIENT-ARGS...: the client in a "container" made from the claim's CDI spec.
container() {
    local u=$1; shift
    CDI_PRELOAD_FIRST="$ASAN_RT" /usr/bin/python3 tests/k8s/cdi_apply.py "$T/cdi/gpumem.io-claim_$u.json" "$u" \
        >"$T/cdi-$u.sh" || return 99
    LD_PRELOAD="$ASAN_RT" LD_LIBRARY_PATH="$SIMDIR" unshare -m sh "$T/cdi-$u.sh" "$CLIENT" "$@"
}
G=1073741824
container $U4 init info alloc 3G expect 0 alloc 1G expect 2 await "$T/go" >"$T/c4.out" 2>&1 &
P4=$!
container $U8 init info alloc 7G expect 0 alloc 1G expect 2 await "$T/go" >"$T/c8.out" 2>&1 &
P8=$!
container $U2 init info alloc 1G expect 0 alloc 1G expect 2 await "$T/go" >"$T/c2.out" 2>&1 &
P2=$!
for _ in $(seq 150); do
    [ "$(grep -l awaiting "$T"/c[482].out 2>/dev/null | wc -l)" = 3 ] && break
    kill -0 $P4 $P8 $P2 2>/dev/null || break
    sleep 0.1
done
for c in 4 8 2; do
    o=$(cat "$T/c$c.out")
    case "$o" in
    *"total=$((c * G))"*awaiting*) ok "dra_container_${c}g_held_to_share" ;;
    *) fail "dra_container_${c}g_held_to_share" "$(tr '\n' '|' <<<"$o" | cut -c1-500)" ;;
    esac
done
# All three at once hold 11 GiB of the GPU: each was refused only its own excess.
out=$("$GPUMEM" ps 2>&1)
expect_in dra_groups_listed_by_claim "c8                   dra-$U8" "$out"
touch "$T/go"
wait $P4 $P8 $P2 && ok dra_containers_exit_clean || fail dra_containers_exit_clean "$(cat "$T"/c*.out | tr '\n' '|' | cut -c1-500)"

# ---- retries are idempotent --------------------------------------------------
ino=$(stat -c %i "$GPUMEM_STATE_DIR/dra-$U8/usage")
out=$("$KUBELET" prepare "$DSOCK" v1beta1 default/c8/$U8 2>&1)
expect_in dra_prepare_retry_same_answer "\"cdi_device_ids\":[\"gpumem.io/claim=$U8\"]" "$out"
[ "$(stat -c %i "$GPUMEM_STATE_DIR/dra-$U8/usage")" = "$ino" ] && ok dra_prepare_retry_keeps_group ||
    fail dra_prepare_retry_keeps_group "usage region replaced"

# ---- unprepare releases ---------------------------------------------------------
out=$("$KUBELET" unprepare "$DSOCK" v1 default/c4/$U4 2>&1)
expect_in dra_unprepare_answers "{\"claims\":{\"$U4\":{}}}" "$out"
if [ ! -e "$GPUMEM_STATE_DIR/dra-$U4" ] && [ ! -e "$T/cdi/gpumem.io-claim_$U4.json" ] &&
    [ ! -e "$T/dra-state/claims/$U4.json" ]; then ok dra_unprepare_releases
else fail dra_unprepare_releases "$(ls "$GPUMEM_STATE_DIR" "$T/cdi" "$T/dra-state/claims" | tr '\n' ' ')"; fi
out=$("$KUBELET" unprepare "$DSOCK" v1 default/c4/$U4 2>&1)
expect_in dra_unprepare_retry_ok "{\"claims\":{\"$U4\":{}}}" "$out"

# ---- the driver killed between prepare and unprepare ----------------------------
kill -KILL $DRA_PID; wait $DRA_PID 2>/dev/null
start_driver
out=$("$KUBELET" unprepare "$DSOCK" v1 default/c8/$U8 2>&1)
if [ ! -e "$GPUMEM_STATE_DIR/dra-$U8" ] && [ ! -e "$T/cdi/gpumem.io-claim_$U8.json" ]; then
    ok dra_restart_unprepares_what_it_prepared
else fail dra_restart_unprepares_what_it_prepared "$out: $(tail -3 "$T/driver.log" | tr '\n' '|')"; fi
# The claim is gone from the API server: a prepared claim still answers from its checkpoint.
rm "$T/claims/default_c2.json"
out=$("$KUBELET" prepare "$DSOCK" v1 default/c2/$U2 2>&1)
expect_in dra_restart_prepare_from_checkpoint "\"cdi_device_ids\":[\"gpumem.io/claim=$U2\"]" "$out"
wait_for "s['spec']['pool']['generation']" 3 && ok dra_restart_keeps_generation ||
    fail dra_restart_keeps_generation "$(slice "s['spec']['pool']")"

# ---- bad claims -------------------------------------------------------------------
claim nocap a0000000-0000-0000-0000-00000000000b "[$(res gpu-0)]"
claim unknown a0000000-0000-0000-0000-00000000000c "[$(res gpu-9 4Gi)]"
claim other a0000000-0000-0000-0000-00000000000d "[$(res gpu-0 '' gpu.nvidia.com)]"
out=$("$KUBELET" prepare "$DSOCK" v1 default/nocap/a0000000-0000-0000-0000-00000000000b \
    default/unknown/a0000000-0000-0000-0000-00000000000c default/other/a0000000-0000-0000-0000-00000000000d \
    default/missing/a0000000-0000-0000-0000-00000000000e 2>&1)
expect_in dra_bad_claim_no_capacity 'ResourceClaim default/nocap: device \"gpu-0\" has no consumedCapacity.memory' "$out"
expect_in dra_bad_claim_unknown_device 'ResourceClaim default/unknown: unknown device \"gpu-9\"' "$out"
expect_in dra_bad_claim_other_driver 'no device of driver gpumem.io in its allocation (it has devices of gpu.nvidia.com)' "$out"
expect_in dra_bad_claim_missing 'resourceclaims.resource.k8s.io \"missing\" not found' "$out"
out=$("$KUBELET" prepare "$DSOCK" v1 2>&1)
expect_in dra_empty_request_refused "grpc error: InvalidArgument: no claims in the request" "$out"
out=$("$KUBELET" prepare "$DSOCK" v1 default/c4/../../x 2>&1)
expect_in dra_bad_uid_refused "not a valid namespace, name and UID" "$out"
kill -0 $DRA_PID 2>/dev/null && ok dra_survives_bad_claims || fail dra_survives_bad_claims "$(tail -5 "$T/driver.log")"

# ---- every object sent was valid -----------------------------------------------------
if [ -f "$SPEC" ]; then
    if [ -s "$T/api/invalid.log" ]; then fail dra_objects_match_schema "$(head -c 600 "$T/api/invalid.log")"
    elif [ -s "$T/api/validated" ]; then ok dra_objects_match_schema
    else fail dra_objects_match_schema "nothing was validated"; fi
else
    skip dra_objects_match_schema "no Kubernetes schemas in tests/data/openapi"
fi

# ---- SIGTERM: sockets removed -----------------------------------------------------------
kill -TERM $DRA_PID; wait $DRA_PID; rc=$?
[ "$rc" = 0 ] && [ ! -e "$T/kubelet/plugins_registry/gpumem.io.sock" ] && [ ! -e "$DSOCK" ] &&
    ok dra_sigterm_clean || fail dra_sigterm_clean "status $rc: $(ls -R "$T/kubelet" | tr '\n' ' ')"
# --unhealthy remove: a lost GPU leaves the slice instead.
start_driver --unhealthy remove
touch "$GPUMEM_SIM_STATE/lost-1"
wait_for "[d['name'] for d in s['spec']['devices']]" "['gpu-0']" && ok dra_unhealthy_remove ||
    fail dra_unhealthy_remove "$(slice "s['spec']['devices']" | cut -c1-300)"
rm -f "$GPUMEM_SIM_STATE/lost-1"
wait_for "[d['name'] for d in s['spec']['devices']]" "['gpu-0', 'gpu-1']" && ok dra_unhealthy_remove_back ||
    fail dra_unhealthy_remove_back "$(slice "s['spec']['devices']" | cut -c1-300)"
kill -TERM $DRA_PID; wait $DRA_PID

# --once; the API server refusing the token; bad options.
once() { "$DRA" --once --node "$NODE" --api-server "https://127.0.0.1:$PORT" --nvml "$SIMDIR/libnvidia-ml.so.1" \
    --shim "$SHIM" "$@" 2>&1; }
out=$(once --service-account "$T/sa"); rc=$?
[ $rc = 0 ] && expect_in dra_once "(up to date)" "$out" || fail dra_once "status $rc: $out"
mkdir -p "$T/sa-bad" && cp "$T/sa/ca.crt" "$T/sa-bad/" && echo wrong >"$T/sa-bad/token"
out=$(once --service-account "$T/sa-bad"); rc=$?
[ $rc = 1 ] && expect_in dra_bad_token_said "HTTP 401: Unauthorized" "$out" || fail dra_bad_token_said "status $rc: $out"
out=$(once --service-account "$T/sa" --unit 512Ki); rc=$?
[ $rc = 2 ] && expect_in dra_bad_unit_refused '--unit "512Ki": less than 1Mi' "$out" || fail dra_bad_unit_refused "status $rc: $out"
out=$(once --service-account "$T/sa" --driver Bad_Name); rc=$?
[ $rc = 2 ] && expect_in dra_bad_driver_refused '--driver "Bad_Name": expected a DNS subdomain' "$out" ||
    fail dra_bad_driver_refused "status $rc: $out"
out=$(env -u KUBERNETES_SERVICE_HOST "$DRA" --once --node "$NODE" --nvml "$SIMDIR/libnvidia-ml.so.1" --shim "$SHIM" 2>&1); rc=$?
[ $rc = 1 ] && expect_in dra_not_in_cluster_said "not in a cluster: KUBERNETES_SERVICE_HOST" "$out" ||
    fail dra_not_in_cluster_said "status $rc: $out"
grep -q "ERROR: AddressSanitizer\|runtime error" "$T/driver.log" && fail dra_driver_sanitizer_clean "$(grep -A5 -m1 'ERROR\|runtime error' "$T/driver.log" | tr '\n' '|')"
kill $API_PID 2>/dev/null; wait $API_PID 2>/dev/null
exit 0
