#!/usr/bin/python3
"""Validates Kubernetes objects against the API server's OpenAPI v3 schemas.

Kubernetes publishes one OpenAPI v3 document per API group version
(kubernetes/kubernetes api/openapi-spec/v3/*.json, also served by every API
server at /openapi/v3/...). Each object kind is a schema under
components/schemas whose x-kubernetes-group-version-kind names the
apiVersion and kind it describes; its fields refer to other schemas with
$ref ("#/components/schemas/io.k8s.api.core.v1.PodSpec").

What an API server with strict field validation (kubectl's default since
1.27) rejects, and this checks: unknown fields (the schemas never say
additionalProperties: false, yet a field that is not among an object's
properties is an error there), wrong types, values outside an enum, and
missing required fields. Decoding rules the schemas do not state and the
API server applies are kept: a Quantity (type string) also decodes from a
JSON number (`gpumem.io/memory: 4`), an int-or-string is either, a nullable
field may be null, and x-kubernetes-preserve-unknown-fields keeps a subtree
open. The checking itself is python3-jsonschema (draft 2020-12) over a copy
of the document so amended; what is not checked: formats, patterns and the
API server's own semantic validation (names, label syntax, immutability).

As a module:
    import openapi
    errors = openapi.validate(obj, "apis__apps__v1_openapi.json")   # [] = valid

As a command (exit status 0 all valid, 1 some invalid, 2 bad usage/input):
    openapi.py SPEC FILE...
SPEC is one OpenAPI v3 document or a directory of them (every *.json in
it); each YAML document of each FILE is checked against the schema of its
apiVersion and kind.
"""

import copy
import functools
import json
import os
import sys

import jsonschema
import yaml

# Schemas whose values the API server decodes from more than their declared
# type (apimachinery's custom JSON unmarshalers).
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"


class SpecError(Exception):
    """A spec that cannot be read or is not an OpenAPI v3 document."""


def _amend(node):
    """Returns a copy of one schema node with the decoding rules above made
    explicit, recursively: closed objects, int-or-string, nullable."""
    if isinstance(node, list):
        return [_amend(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _amend(v) for k, v in node.items()}
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["type"] = ["integer", "string"]
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    if out.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


@functools.lru_cache(maxsize=None)
def _load(spec_path):
    """The amended document of spec_path, and its kinds: {(group, version,
    kind): schema name}."""
    try:
        with open(spec_path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        raise SpecError(f"cannot read OpenAPI spec \"{spec_path}\": {e.strerror}") from e
    except ValueError as e:
        raise SpecError(f"OpenAPI spec \"{spec_path}\" is not JSON: {e}") from e
    schemas = doc.get("components", {}).get("schemas") if isinstance(doc, dict) else None
    if not isinstance(schemas, dict):
        raise SpecError(f"OpenAPI spec \"{spec_path}\" has no components/schemas: "
                        "not an OpenAPI v3 document")
    amended = {"components": {"schemas": {n: _amend(s) for n, s in schemas.items()}}}
    q = amended["components"]["schemas"].get(_QUANTITY)
    if q is not None:
        q["type"] = ["string", "number"]
    kinds = {}
    for name, s in schemas.items():
        for gvk in s.get("x-kubernetes-group-version-kind", []) if isinstance(s, dict) else []:
            key = (gvk.get("group", ""), gvk.get("version", ""), gvk.get("kind", ""))
            # Options kinds (DeleteOptions, WatchEvent...) are listed under
            # every group; an object's own schema is the one in its package.
            kinds.setdefault(key, []).append(name)
    return amended, kinds


def _split_api_version(api_version):
    group, _, version = api_version.rpartition("/")
    return group, version


def kinds(spec_path):
    """Every (apiVersion, kind) spec_path has a schema for."""
    _, ks = _load(spec_path)
    return sorted((f"{g}/{v}" if g else v, k) for g, v, k in ks)


def schema_name(obj, spec_path):
    """The name under components/schemas of obj's kind, or None."""
    _, ks = _load(spec_path)
    g, v = _split_api_version(str(obj.get("apiVersion", "")))
    names = ks.get((g, v, str(obj.get("kind", ""))), [])
    if len(names) > 1:
        pkg = ".".join(filter(None, [(g.split(".")[0] if g else "core"), v]))
        names = [n for n in names if f".{pkg}." in n] or names
    return names[0] if names else None


def _where(path):
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(the object)"


def _message(err):
    """One human-readable line for a jsonschema error, with the field path."""
    where = _where(err.absolute_path)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = set(err.schema.get("properties", {}))
        extra = sorted(k for k in err.instance if k not in allowed)
        known = ", ".join(sorted(allowed))
        return "; ".join(
            f"{_where(list(err.absolute_path) + [k])}: unknown field \"{k}\" (known fields: {known})"
            for k in extra)
    if err.validator == "required":
        return f"{where}: {err.message}"
    if err.validator == "type":
        want = err.validator_value
        want = " or ".join(want) if isinstance(want, list) else want
        if err.instance is None:
            return f"{where}: null, not {_a(want)}"
        return f"{where}: {json.dumps(err.instance)} is {_a(_json_type(err.instance))}, not {_a(want)}"
    if err.validator == "enum":
        return (f"{where}: {json.dumps(err.instance)} is not one of "
                f"{', '.join(json.dumps(v) for v in err.validator_value)}")
    return f"{where}: {err.message}"


def _a(noun):
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


def _json_type(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def validate(obj, spec_path):
    """Errors of obj (a decoded Kubernetes object) against the schema of its
    apiVersion/kind in the OpenAPI v3 document spec_path; [] when valid.
    Raises SpecError when spec_path cannot be used."""
    if not isinstance(obj, dict):
        return [f"(the object): a Kubernetes object is a mapping, not {_a(_json_type(obj))}"]
    for f in ("apiVersion", "kind"):
        if not isinstance(obj.get(f), str) or not obj[f]:
            return [f"{f}: missing: every Kubernetes object names its apiVersion and kind"]
    name = schema_name(obj, spec_path)
    if name is None:
        return [f"apiVersion/kind: {obj['apiVersion']} {obj['kind']} is not in "
                f"{os.path.basename(spec_path)}"]
    doc, _ = _load(spec_path)
    schema = dict(doc)
    schema["$ref"] = f"#/components/schemas/{name}"
    cls = jsonschema.Draft202012Validator
    v = cls(schema, resolver=jsonschema.RefResolver.from_schema(schema, id_of=cls.ID_OF))
    errors = []
    for err in sorted(v.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
        m = _message(err)
        if m and m not in errors:
            errors.append(m)
    return errors


def specs_in(path):
    """The OpenAPI documents a SPEC argument names: the file, or every
    *.json of the directory."""
    if os.path.isdir(path):
        found = sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(".json"))
        if not found:
            raise SpecError(f"no OpenAPI spec (*.json) in directory \"{path}\"")
        return found
    return [path]


def validate_any(obj, specs):
    """validate() against whichever of specs has obj's kind."""
    if isinstance(obj, dict):
        for s in specs:
            if schema_name(obj, s) is not None:
                return validate(obj, s)
        if isinstance(obj.get("apiVersion"), str) and isinstance(obj.get("kind"), str):
            return [f"apiVersion/kind: {obj['apiVersion']} {obj['kind']} is in none of: "
                    + ", ".join(os.path.basename(s) for s in specs)]
    return validate(obj, specs[0])


USAGE = """usage: openapi.py SPEC FILE...

Checks every YAML document of each FILE as a Kubernetes object against the
OpenAPI v3 schema of its apiVersion and kind, as an API server with strict
field validation would: unknown fields, types, enums and required fields.
SPEC is an OpenAPI v3 document (kubernetes api/openapi-spec/v3/*.json) or a
directory of them. Prints one line per error, "FILE: #N KIND/NAME: FIELD:
what is wrong"; exit status 0 when all are valid, 1 when any is not, 2 when
a file or spec cannot be read.
"""


def main(argv):
    if len(argv) >= 1 and argv[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0
    if len(argv) < 2:
        sys.stderr.write(USAGE)
        return 2
    try:
        specs = specs_in(argv[0])
        for s in specs:
            _load(s)
    except SpecError as e:
        print(f"openapi.py: {e}", file=sys.stderr)
        return 2
    bad = 0
    for path in argv[1:]:
        try:
            with open(path, encoding="utf-8") as f:
                docs = list(yaml.safe_load_all(f))
        except OSError as e:
            print(f"openapi.py: cannot read \"{path}\": {e.strerror}", file=sys.stderr)
            return 2
        except yaml.YAMLError as e:
            print(f"{path}: not valid YAML: {e}", file=sys.stderr)
            return 2
        for i, obj in enumerate(docs, 1):
            if obj is None:
                continue  # an empty document (a trailing ---)
            what = f"#{i}"
            if isinstance(obj, dict):
                what += f" {obj.get('kind', '?')}/{(obj.get('metadata') or {}).get('name', '?')}"
            for e in validate_any(obj, specs):
                print(f"{path}: {what}: {e}")
                bad = 1
    return bad


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
