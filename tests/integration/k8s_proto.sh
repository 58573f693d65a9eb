#!/usr/bin/env bash
# Our device plugin messages (src/k8s/deviceplugin.proto, compiled by
# protoc-c into the plugin) against the kubelet's upstream api.proto
# (tests/data/deviceplugin-v1beta1-api.proto, source and version beside it):
# the same package, and every message of ours exists upstream with exactly
# the same fields: name, number, label, type and message type (map entries
# included), so the wire format cannot drift. protoc compiles both into
# descriptors and decodes them as text; Python compares them. A mutation
# case changes one field number of a copy of ours and must be caught.
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
DESC=/usr/include/google/protobuf/descriptor.proto
if ! command -v protoc >/dev/null || [ ! -f "$DESC" ]; then
    skip k8s_proto "protoc or $DESC missing (protobuf-compiler, libprotobuf-dev)"
    exit 0
fi
ours="$TOP/src/k8s/deviceplugin.proto" up="$TOP/tests/data/deviceplugin-v1beta1-api.proto"

# describe FILE: its descriptor as protoc's text format.
describe() {
    protoc -I"$(dirname "$1")" --descriptor_set_out=/dev/stdout "$(basename "$1")" |
        protoc -I/usr/include --decode=google.protobuf.FileDescriptorSet google/protobuf/descriptor.proto
}
# compare OURS_TEXT UPSTREAM_TEXT: "same N" or the differences.
compare() {
    "$PY" - "$1" "$2" <<'PYEOF'
import sys
def parse(text):
    # protoc's text format: "key: value" lines and "key {" ... "}" blocks.
    root, stack = {}, []
    cur = root
    for line in text.splitlines():
        line = line.strip()
        if line.endswith("{"):
            node = {}
            cur.setdefault(line[:-1].strip(), []).append(node)
            stack.append(cur); cur = node
        elif line == "}":
            cur = stack.pop()
        elif line:
            k, v = line.split(":", 1)
            cur.setdefault(k.strip(), []).append(v.strip())
    return root
def messages(f, prefix):
    out = {}
    for m in f.get("message_type", []) + f.get("nested_type", []):
        name = prefix + m["name"][0].strip('"')
        fields = sorted((x["name"][0], x["number"][0], x["label"][0], x["type"][0], x.get("type_name", [""])[0])
                        for x in m.get("field", []))
        out[name] = (fields, None)
        out.update(messages(m, name + "."))
    return out
ours, up = (parse(open(p).read())["file"][0] for p in sys.argv[1:3])
diffs = []
if ours["package"] != up["package"]:
    diffs.append("package %s vs %s" % (ours["package"], up["package"]))
mo, mu = messages(ours, ""), messages(up, "")
for name, (fields, _) in sorted(mo.items()):
    if name not in mu:
        diffs.append("message %s is not upstream" % name)
    elif fields != mu[name][0]:
        diffs.append("message %s: ours %s, upstream %s" % (name, fields, mu[name][0]))
print("; ".join(diffs) if diffs else "same %d" % len(mo))
PYEOF
}
o=$(describe "$ours") && u=$(describe "$up") || { fail k8s_proto "protoc failed on one of the files"; exit 0; }
res=$(compare <(printf '%s\n' "$o") <(printf '%s\n' "$u") 2>&1)
case "$res" in
"same "*) echo "# $res messages"; ok messages_match_upstream ;;
*) fail messages_match_upstream "$res" ;;
esac
# Every upstream message we do not declare is one the plugin never sends.
missing=$("$PY" -c '
import re,sys
o=set(re.findall(r"^message (\w+)", open(sys.argv[1]).read(), re.M))
u=set(re.findall(r"^message (\w+)", open(sys.argv[2]).read(), re.M))
print(" ".join(sorted(u-o)))' "$ours" "$up")
[ -z "$missing" ] && ok all_upstream_messages_declared || fail all_upstream_messages_declared "$missing"

# The comparison can fail: one field number changed in a copy.
mkdir -p "$T/mut"
sed 's/int32 allocation_size = 3;/int32 allocation_size = 4;/' "$ours" >"$T/mut/deviceplugin.proto"
res=$(compare <(describe "$T/mut/deviceplugin.proto") <(printf '%s\n' "$u") 2>&1)
expect_in mutation_caught "ContainerPreferredAllocationRequest" "$res"
