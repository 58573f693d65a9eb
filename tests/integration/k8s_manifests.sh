# deploy/kubernetes/ as a cluster would take it: every manifest parses as
# YAML and each object is valid against the real OpenAPI v3 schema of its
# API group (tests/k8s/openapi.py over tests/data/openapi, or
# $GPUMEM_OPENAPI_DIR), as an API server with strict field validation
# checks it; the containerd and CRI-O runtime handler snippets parse as TOML
# (tomllib) and name the RuntimeClass's handler and gpumem-runtime; the
# DaemonSet's ConfigMap keys, variables, volumes and options agree with the
# ConfigMap and with gpumem-k8s --help and gpumem daemon --help; the example
# pod asks for the ConfigMap's resource under the RuntimeClass, and is the
# pod docs/kubernetes.md shows
# (tests/k8s/check_manifests.py).
. tests/integration/lib.sh
PY=/usr/bin/python3
if ! $PY -c 'import yaml, jsonschema, tomllib' 2>/dev/null; then
    fail k8s_manifests "python3 (3.11+) with python3-yaml and python3-jsonschema is needed (tools/install-deps.sh)"
    exit 0
fi
$PY tests/k8s/check_manifests.py deploy/kubernetes "$TOP/$BUILD/bin"
# The pod a user copies from docs/kubernetes.md is the example checked above.
doc=$(sed -n '/^```yaml/,/^```/p' docs/kubernetes.md | sed '1d;$d')
ex=$(grep -v '^#' deploy/kubernetes/examples/train-pod.yaml)
[ -n "$doc" ] && [ "$doc" = "$ex" ] && ok docs_pod_is_the_checked_example ||
    fail docs_pod_is_the_checked_example "docs/kubernetes.md's pod differs from deploy/kubernetes/examples/train-pod.yaml"
