#!/usr/bin/python3
"""Tests of tests/k8s/openapi.py, the OpenAPI v3 validator of Kubernetes
objects: against a made-up API group written for this test
(testdata/toy_openapi.json, which has one field of each kind the rules
treat specially) and, where they are present, against Kubernetes' own
schemas (GPUMEM_OPENAPI_DIR, tests/data/openapi by default). Prints
"ok NAME" / "FAIL NAME: why" / "skip NAME: why" (tests/run.sh protocol)."""

import copy
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import openapi  # noqa: E402

TOY = os.path.join(HERE, "testdata", "toy_openapi.json")
REAL = os.environ.get("GPUMEM_OPENAPI_DIR") or os.path.join(HERE, "..", "data", "openapi")

WIDGET = {
    "apiVersion": "example.gpumem.io/v1",
    "kind": "Widget",
    "metadata": {"name": "w", "labels": {"app": "w"}},
    "spec": {
        "size": 4,  # a Quantity decodes from a number too
        "replicas": 2,
        "policy": "Always",
        "port": "http",
        "limits": {"gpumem.io/memory": "4Gi", "cpu": 1},
        "parts": [{"name": "a", "enabled": True}],
        "note": None,
        "raw": {"anything": {"goes": [1, "x"]}},
    },
}


def widget(**spec):
    w = copy.deepcopy(WIDGET)
    w["spec"].update(spec)
    return w


def one_error(tc, obj, *needles):
    errs = openapi.validate(obj, TOY)
    tc.assertEqual(len(errs), 1, errs)
    for n in needles:
        tc.assertIn(n, errs[0])


class Toy(unittest.TestCase):
    def test_good_object_passes(self):
        self.assertEqual(openapi.validate(WIDGET, TOY), [])

    def test_int_or_string_takes_either(self):
        self.assertEqual(openapi.validate(widget(port=8080), TOY), [])
        one_error(self, widget(port=1.5), "spec.port", "1.5 is a number")

    def test_unknown_field_top_level(self):
        w = widget()
        w["spce"] = {}
        one_error(self, w, 'unknown field "spce"', "known fields: apiVersion, kind, metadata, spec")

    def test_unknown_field_nested_in_array(self):
        one_error(self, widget(parts=[{"name": "a"}, {"name": "b", "enabeld": True}]),
                  'spec.parts[1].enabeld: unknown field "enabeld"')

    def test_unknown_field_in_metadata(self):
        w = widget()
        w["metadata"]["label"] = {"a": "b"}
        one_error(self, w, 'metadata.label: unknown field "label"')

    def test_preserve_unknown_fields_stays_open(self):
        self.assertEqual(openapi.validate(widget(raw={"x": 1, "y": {"z": None}}), TOY), [])

    def test_wrong_type(self):
        one_error(self, widget(replicas="2"), 'spec.replicas: "2" is a string, not an integer')
        one_error(self, widget(parts=[{"name": "a", "enabled": "yes"}]), "spec.parts[0].enabled", "not a boolean")

    def test_wrong_type_in_map_value(self):
        w = widget()
        w["metadata"]["labels"] = {"app": 3}
        one_error(self, w, "metadata.labels.app: 3 is an integer, not a string")

    def test_quantity_rejects_a_mapping(self):
        one_error(self, widget(size={"value": 4}), "spec.size")

    def test_null_only_where_nullable(self):
        one_error(self, widget(replicas=None), "spec.replicas: null, not an integer")

    def test_missing_required(self):
        w = widget()
        del w["spec"]["size"]
        one_error(self, w, "spec: 'size' is a required property")
        one_error(self, widget(parts=[{"enabled": True}]), "spec.parts[0]: 'name' is a required property")
        w = widget()
        del w["spec"]
        one_error(self, w, "(the object): 'spec' is a required property")

    def test_enum(self):
        one_error(self, widget(policy="Sometimes"), 'spec.policy: "Sometimes" is not one of "Always", "Never"')

    def test_all_errors_reported(self):
        w = widget(replicas="2", policy="x", parts=[{}])
        w["extra"] = 1
        self.assertEqual(len(openapi.validate(w, TOY)), 4, openapi.validate(w, TOY))

    def test_unknown_kind(self):
        errs = openapi.validate({"apiVersion": "example.gpumem.io/v1", "kind": "Gadget"}, TOY)
        self.assertEqual(len(errs), 1)
        self.assertIn("example.gpumem.io/v1 Gadget is not in toy_openapi.json", errs[0])
        errs = openapi.validate({"apiVersion": "example.gpumem.io/v2", "kind": "Widget"}, TOY)
        self.assertIn("is not in", errs[0])

    def test_missing_api_version_or_kind(self):
        w = widget()
        del w["apiVersion"]
        self.assertIn("apiVersion: missing", openapi.validate(w, TOY)[0])
        w = widget()
        w["kind"] = 5
        self.assertIn("kind: missing", openapi.validate(w, TOY)[0])

    def test_not_a_mapping(self):
        self.assertIn("not an array", openapi.validate([1], TOY)[0])

    def test_kind_listed_under_many_groups(self):
        self.assertEqual(openapi.schema_name({"apiVersion": "v1", "kind": "DeleteOptions"}, TOY),
                         "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions")

    def test_bad_spec(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            f.write('{"swagger": "2.0", "definitions": {}}')
            f.flush()
            with self.assertRaisesRegex(openapi.SpecError, "no components/schemas"):
                openapi.validate(WIDGET, f.name)
        with self.assertRaisesRegex(openapi.SpecError, "cannot read"):
            openapi.validate(WIDGET, "/nonexistent/spec.json")


def cli(*args):
    p = subprocess.run([sys.executable, os.path.join(HERE, "openapi.py"), *args],
                       capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


class Cli(unittest.TestCase):
    def write(self, text):
        f = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
        f.write(text)
        f.close()
        self.addCleanup(os.unlink, f.name)
        return f.name

    GOOD = """apiVersion: example.gpumem.io/v1
kind: Widget
metadata: {name: one}
spec: {size: 1Gi}
---
---
apiVersion: example.gpumem.io/v1
kind: Widget
metadata: {name: two}
spec: {size: 2, replicas: 1}
"""

    def test_valid_file(self):
        rc, out, err = cli(TOY, self.write(self.GOOD))
        self.assertEqual((rc, out, err), (0, "", ""))

    def test_invalid_file_names_document_and_field(self):
        path = self.write(self.GOOD.replace("replicas: 1", "replica: 1"))
        rc, out, _ = cli(TOY, path)
        self.assertEqual(rc, 1)
        self.assertEqual(out.splitlines(), [
            f'{path}: #3 Widget/two: spec.replica: unknown field "replica" '
            "(known fields: limits, note, parts, policy, port, raw, replicas, size)"])

    def test_spec_directory(self):
        d = tempfile.mkdtemp()
        self.addCleanup(lambda: (os.unlink(os.path.join(d, "toy.json")), os.rmdir(d)))
        with open(TOY) as src, open(os.path.join(d, "toy.json"), "w") as dst:
            dst.write(src.read())
        self.assertEqual(cli(d, self.write(self.GOOD))[0], 0)
        rc, out, _ = cli(d, self.write("apiVersion: v9\nkind: Thing\n"))
        self.assertEqual(rc, 1)
        self.assertIn("v9 Thing is in none of: toy.json", out)

    def test_unreadable_input(self):
        rc, _, err = cli(TOY, "/nonexistent/x.yaml")
        self.assertEqual(rc, 2)
        self.assertIn('cannot read "/nonexistent/x.yaml"', err)
        rc, _, err = cli(TOY, self.write("a: [b\n"))
        self.assertEqual(rc, 2)
        self.assertIn("not valid YAML", err)
        rc, _, err = cli("/nonexistent/spec.json", self.write(self.GOOD))
        self.assertEqual(rc, 2)
        self.assertIn('cannot read OpenAPI spec "/nonexistent/spec.json"', err)

    def test_usage(self):
        rc, out, _ = cli("--help")
        self.assertEqual(rc, 0)
        self.assertIn("usage: openapi.py SPEC FILE...", out)
        self.assertEqual(cli(TOY)[0], 2)


def real(name):
    return os.path.join(REAL, f"{name}_openapi.json")


DAEMONSET = {
    "apiVersion": "apps/v1",
    "kind": "DaemonSet",
    "metadata": {"name": "t", "namespace": "kube-system"},
    "spec": {
        "selector": {"matchLabels": {"app": "t"}},
        "template": {
            "metadata": {"labels": {"app": "t"}},
            "spec": {
                "containers": [{
                    "name": "c", "image": "busybox",
                    "resources": {"limits": {"gpumem.io/memory": 4, "cpu": "100m"}},
                    "volumeMounts": [{"name": "v", "mountPath": "/v", "readOnly": True}],
                    "securityContext": {"capabilities": {"drop": ["ALL"]}},
                }],
                "volumes": [{"name": "v", "hostPath": {"path": "/run/gpumem", "type": "DirectoryOrCreate"}}],
            },
        },
    },
}


@unittest.skipUnless(os.path.exists(real("apis__apps__v1")), f"no Kubernetes schemas in {REAL}")
class Kubernetes(unittest.TestCase):
    def ds(self):
        return copy.deepcopy(DAEMONSET)

    def test_good_daemonset_passes(self):
        self.assertEqual(openapi.validate(DAEMONSET, real("apis__apps__v1")), [])

    def test_typo_in_container(self):
        d = self.ds()
        d["spec"]["template"]["spec"]["containers"][0]["volumeMount"] = []
        errs = openapi.validate(d, real("apis__apps__v1"))
        self.assertEqual(len(errs), 1, errs)
        self.assertIn('spec.template.spec.containers[0].volumeMount: unknown field "volumeMount"', errs[0])

    def test_wrong_type(self):
        d = self.ds()
        d["spec"]["template"]["spec"]["volumes"][0]["hostPath"]["path"] = ["/run"]
        errs = openapi.validate(d, real("apis__apps__v1"))
        self.assertEqual(errs, ['spec.template.spec.volumes[0].hostPath.path: ["/run"] is an array, not a string'])

    def test_missing_required(self):
        d = self.ds()
        del d["spec"]["selector"]
        self.assertEqual(openapi.validate(d, real("apis__apps__v1")),
                         ["spec: 'selector' is a required property"])
        rc = {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": "gpumem"}}
        self.assertEqual(openapi.validate(rc, real("apis__node.k8s.io__v1")),
                         ["(the object): 'handler' is a required property"])


class Result(unittest.TextTestResult):
    """One line per test in tests/run.sh's protocol."""

    def name(self, test):
        return "openapi_" + test.id().split(".", 1)[1].replace(".test_", "_").replace(".", "_").lower()

    def addSuccess(self, test):
        print(f"ok {self.name(test)}", flush=True)

    def addFailure(self, test, err):
        msg = str(err[1]).replace("\n", " | ")[:600]
        print(f"FAIL {self.name(test)}: {msg}", flush=True)
        self.failures.append((test, msg))

    addError = addFailure

    def addSkip(self, test, reason):
        print(f"skip {self.name(test)}: {reason}", flush=True)


if __name__ == "__main__":
    runner = unittest.TextTestRunner(resultclass=Result, stream=open(os.devnull, "w"))
    res = runner.run(unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__]))
    sys.exit(0 if res.wasSuccessful() else 1)
