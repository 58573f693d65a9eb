#!/usr/bin/env bash
# Our device plugin messages (src/k8s/deviceplugin.proto, compiled by
# protoc-c into the plugin) against our facts table of the kubelet's
# device plugin API v1beta1 (tests/data/k8s-proto-facts/deviceplugin-v1beta1.txt,
# transcribed from upstream's api.proto; where it was read is in its header):
# the same package, the same messages, each with exactly the same fields
# (name, number, label, type), and every method of the API on its gRPC path
# in src/k8s/*.c, so the wire format cannot drift. Mutation cases change one
# field number and drop one `repeated` in copies of ours and must be caught.
# With GPUMEM_K8S_UPSTREAM_PROTO_DIR set to upstream's
# staging/src/k8s.io/kubelet/pkg/apis, all four of our protos are also
# compared with upstream's files themselves (not kept in this repository).
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
CONFORM="$TOP/tests/k8s/proto_conform.py" FACTS="$TOP/tests/data/k8s-proto-facts"
ours="$TOP/src/k8s/deviceplugin.proto"

if out=$("$PY" "$CONFORM" check "$ours" "$FACTS/deviceplugin-v1beta1.txt" --methods-in "$TOP"/src/k8s/*.c 2>&1); then
    ok messages_match_facts
else
    fail messages_match_facts "$(tr '\n' '|' <<<"$out")"
fi
# protoc reads ours as the plugin's build does (the facts check reads text).
if command -v protoc >/dev/null; then
    out=$(protoc -I"$TOP/src/k8s" --descriptor_set_out=/dev/null deviceplugin.proto 2>&1) &&
        ok ours_compiles || fail ours_compiles "$out"
fi

# The comparison can fail: a field number changed, a `repeated` lost.
sed 's/int32 allocation_size = 3;/int32 allocation_size = 4;/' "$ours" >"$T/mut1.proto"
sed 's/repeated string deviceIDs = 1;/string deviceIDs = 1;/' "$ours" >"$T/mut2.proto"
if cmp -s "$ours" "$T/mut1.proto" || cmp -s "$ours" "$T/mut2.proto"; then
    fail mutation_caught "a mutation did not apply to $ours"
else
    res=$("$PY" "$CONFORM" check "$T/mut1.proto" "$FACTS/deviceplugin-v1beta1.txt" 2>&1)
    expect_in mutation_number_caught "ContainerPreferredAllocationRequest field allocation_size" "$res"
    res=$("$PY" "$CONFORM" check "$T/mut2.proto" "$FACTS/deviceplugin-v1beta1.txt" 2>&1)
    expect_in mutation_repeated_caught "ContainerPreferredAllocationResponse field deviceIDs" "$res"
fi

# Against upstream's own files, when given.
UP="${GPUMEM_K8S_UPSTREAM_PROTO_DIR:-}"
if [ -z "$UP" ]; then
    skip upstream_protos "GPUMEM_K8S_UPSTREAM_PROTO_DIR not set (upstream protos are not kept in the repository)"
    exit 0
fi
for c in deviceplugin/v1beta1:k8s/deviceplugin:v1beta1:src/k8s dra/v1:dra/dra:dra:src/dra \
    dra/v1beta1:dra/dra:dra:src/dra pluginregistration/v1:dra/pluginregistration:pluginregistration:src/dra; do
    IFS=: read -r api mine pkg dir <<<"$c"
    name="upstream_${api//\//_}"
    if [ ! -f "$UP/$api/api.proto" ]; then
        fail "$name" "$UP/$api/api.proto missing"
        continue
    fi
    out=$("$PY" "$CONFORM" check "$TOP/src/$mine.proto" "$UP/$api/api.proto" --package "$pkg" \
        --methods-in "$TOP/$dir"/*.c 2>&1) && ok "$name" || fail "$name" "$(tr '\n' '|' <<<"$out")"
    # ...and our facts table says what upstream's file says.
    f="$FACTS/${api%%/*}-${api##*/}.txt"
    diff <("$PY" "$CONFORM" facts "$UP/$api/api.proto" | sort) <(grep -v '^#' "$f" | sort) >"$T/diff" &&
        ok "${name}_facts" || fail "${name}_facts" "$(tr '\n' '|' <"$T/diff")"
done
