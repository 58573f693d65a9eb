# tests/k8s/openapi.py, the validator of Kubernetes objects against their
# OpenAPI v3 schemas that tests/integration/k8s_manifests.sh uses: a good
# object passes; an unknown field, a wrong type, a missing required field and
# a value outside an enum each fail with the field's path; the command's
# output and exit status. Against a made-up API group
# (tests/k8s/testdata/toy_openapi.json) and, where present, Kubernetes' own
# schemas (tests/data/openapi, or $GPUMEM_OPENAPI_DIR). Python: Debian's
# /usr/bin/python3 with python3-yaml and python3-jsonschema.
. tests/integration/lib.sh
PY=/usr/bin/python3
if ! $PY -c 'import yaml, jsonschema' 2>/dev/null; then
    fail k8s_openapi "python3-yaml and python3-jsonschema are needed (tools/install-deps.sh)"
    exit 0
fi
$PY tests/k8s/test_openapi.py
