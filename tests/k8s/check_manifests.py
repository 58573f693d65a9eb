#!/usr/bin/python3
"""Checks deploy/kubernetes/: every manifest parses as YAML and each of its
objects is valid against the OpenAPI v3 schema of its API group (openapi.py,
the schemas in $GPUMEM_OPENAPI_DIR or tests/data/openapi); the containerd
and CRI-O snippets parse as TOML and name the handler the RuntimeClass
names; and the pieces agree with each other and with the programs: every
ConfigMap key the DaemonSet reads exists, every $(VAR) of a command line is
in the container's env, every volumeMount has its volume, every option
passed to gpumem-k8s and gpumem daemon is one their --help lists, and the
example pod asks for the ConfigMap's resource under the RuntimeClass.

    check_manifests.py DEPLOY_DIR BIN_DIR

Prints "ok NAME" / "FAIL NAME: why" / "skip NAME: why" (tests/run.sh)."""

import copy
import glob
import os
import re
import subprocess
import sys
import tomllib

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import openapi  # noqa: E402

failed = False


def check(name, cond, why=""):
    global failed
    if cond:
        print(f"ok {name}")
    else:
        failed = True
        print(f"FAIL {name}: {why}")


def slug(path):
    return re.sub(r"[^A-Za-z0-9]+", "_", os.path.basename(path)).strip("_")


def load_manifests(deploy):
    objs = []  # (file, object)
    for path in sorted(glob.glob(os.path.join(deploy, "**", "*.yaml"), recursive=True)):
        # The DRA driver's manifests are another deployment, checked with
        # the driver (tests/integration/k8s_dra.sh).
        if os.path.relpath(path, deploy).split(os.sep)[0] == "dra":
            continue
        try:
            with open(path, encoding="utf-8") as f:
                docs = [d for d in yaml.safe_load_all(f) if d is not None]
        except yaml.YAMLError as e:
            check(f"yaml_{slug(path)}", False, str(e).replace("\n", " "))
            continue
        check(f"yaml_{slug(path)}", docs and all(isinstance(d, dict) for d in docs),
              "no objects, or a document that is not a mapping")
        objs += [(path, d) for d in docs if isinstance(d, dict)]
    return objs


def validate_all(objs, spec_dir):
    specs = openapi.specs_in(spec_dir)
    for path, obj in objs:
        name = f"schema_{obj.get('kind', '?')}_{(obj.get('metadata') or {}).get('name', '?')}".replace("-", "_")
        errs = openapi.validate_any(obj, specs)
        check(name, not errs, f"{os.path.basename(path)}: " + "; ".join(errs))
    # Not vacuous: the same DaemonSet with one field misspelt fails.
    ds = [o for _, o in objs if o.get("kind") == "DaemonSet"]
    if ds:
        bad = copy.deepcopy(ds[0])
        bad["spec"]["template"]["spec"]["hostPid"] = bad["spec"]["template"]["spec"].pop("hostPID", True)
        errs = openapi.validate_any(bad, specs)
        check("schema_rejects_misspelt_field", any('unknown field "hostPid"' in e for e in errs), errs)


def by_kind(objs, kind):
    return [o for _, o in objs if o.get("kind") == kind]


def help_options(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout
    except OSError as e:
        return None, str(e)
    return set(re.findall(r"(--[a-z][a-z0-9-]*)", out)), out


def check_daemonset(objs, bindir):
    ds = by_kind(objs, "DaemonSet")
    cms = {o["metadata"]["name"]: o.get("data", {}) for o in by_kind(objs, "ConfigMap")}
    check("daemonset_present", len(ds) == 1, f"{len(ds)} DaemonSets")
    if len(ds) != 1:
        return
    pod = ds[0]["spec"]["template"]["spec"]
    volumes = {v["name"] for v in pod.get("volumes", [])}
    programs = {"gpumem-k8s": [os.path.join(bindir, "gpumem-k8s"), "--help"],
                "gpumem": [os.path.join(bindir, "gpumem"), "daemon", "--help"]}
    for c in pod["containers"]:
        n = c["name"].replace("-", "_")
        env = {e["name"] for e in c.get("env", [])}
        refs = [e["valueFrom"]["configMapKeyRef"] for e in c.get("env", [])
                if "configMapKeyRef" in e.get("valueFrom", {})]
        missing = [f"{r['name']}/{r['key']}" for r in refs if r["key"] not in cms.get(r["name"], {})]
        check(f"{n}_configmap_keys_exist", not missing, f"not in the ConfigMap: {missing}")
        used = set(re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", " ".join(c.get("command", []) + c.get("args", []))))
        check(f"{n}_args_vars_in_env", used <= env, f"undefined: {sorted(used - env)}")
        mounts = {m["name"] for m in c.get("volumeMounts", [])}
        check(f"{n}_mounts_have_volumes", mounts <= volumes, f"no volume for {sorted(mounts - volumes)}")
        sc = c.get("securityContext", {})
        check(f"{n}_least_privilege", sc.get("allowPrivilegeEscalation") is False and not sc.get("privileged")
              and sc.get("capabilities", {}).get("drop") == ["ALL"] and sc.get("readOnlyRootFilesystem") is True,
              f"securityContext: {sc}")
        prog = os.path.basename(c["command"][0])
        if prog not in programs:
            check(f"{n}_program_known", False, f"command {c['command']}")
            continue
        opts, out = help_options(programs[prog])
        if opts is None:
            check(f"{n}_options_in_help", False, f"{programs[prog][0]}: {out} (run make first)")
            continue
        given = {a.split("=", 1)[0] for a in c.get("args", []) if a.startswith("--")}
        check(f"{n}_options_in_help", given and given <= opts,
              f"{sorted(given - opts)} not in `{' '.join(programs[prog][1:])}` of {prog}")
    all_mounts = {m["name"] for c in pod["containers"] for m in c.get("volumeMounts", [])}
    check("daemonset_volumes_all_used", volumes <= all_mounts, f"unused: {sorted(volumes - all_mounts)}")
    check("daemonset_no_token", pod.get("automountServiceAccountToken") is False, "a token is mounted")
    check("daemonset_host_pid", pod.get("hostPID") is True,
          "without the host's pid namespace live processes look dead and are reclaimed")


def check_runtime(objs, deploy):
    rcs = by_kind(objs, "RuntimeClass")
    check("runtimeclass_present", len(rcs) == 1, f"{len(rcs)} RuntimeClasses")
    handler = rcs[0]["handler"] if rcs else None
    tomls = sorted(glob.glob(os.path.join(deploy, "runtime", "*.toml")) +
                   glob.glob(os.path.join(deploy, "runtime", "*.conf")))
    check("runtime_configs_present", len(tomls) >= 3, tomls)
    for path in tomls:
        n = slug(path)
        try:
            with open(path, "rb") as f:
                t = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            check(f"toml_{n}", False, str(e))
            continue
        check(f"toml_{n}", True)
        if "crio" in t:
            r = t["crio"].get("runtime", {}).get("runtimes", {})
            check(f"{n}_handler", list(r) == [handler], f"runtimes {list(r)}, RuntimeClass handler {handler}")
            h = r.get(handler, {})
            check(f"{n}_runtime_path", h.get("runtime_path") == "/usr/bin/gpumem-runtime"
                  and h.get("runtime_type") == "oci", h)
            continue
        cri = {3: "io.containerd.cri.v1.runtime", 2: "io.containerd.grpc.v1.cri"}.get(t.get("version"))
        r = t.get("plugins", {}).get(cri, {}).get("containerd", {}).get("runtimes", {})
        check(f"{n}_handler", list(r) == [handler], f"version {t.get('version')}: runtimes {list(r)}, "
              f"RuntimeClass handler {handler}")
        h = r.get(handler, {})
        check(f"{n}_binary", h.get("runtime_type") == "io.containerd.runc.v2"
              and h.get("options", {}).get("BinaryName") == "/usr/bin/gpumem-runtime", h)
        check(f"{n}_annotations_passed", "gpumem.io/*" in h.get("container_annotations", []),
              "the device plugin's gpumem.io/group would not reach config.json")


def check_example(objs):
    pods = by_kind(objs, "Pod")
    rcs = by_kind(objs, "RuntimeClass")
    cm = (by_kind(objs, "ConfigMap") or [{}])[0].get("data", {})
    check("example_pod_present", len(pods) >= 1, "no example pod")
    for p in pods:
        n = p["metadata"]["name"].replace("-", "_")
        check(f"example_{n}_runtime_class", rcs and p["spec"].get("runtimeClassName") == rcs[0]["metadata"]["name"],
              p["spec"].get("runtimeClassName"))
        limits = [c.get("resources", {}).get("limits", {}) for c in p["spec"]["containers"]]
        check(f"example_{n}_asks_resource", any(cm.get("resource") in lim for lim in limits),
              f"no container asks for {cm.get('resource')}")


def main(deploy, bindir):
    objs = load_manifests(deploy)
    spec_dir = os.environ.get("GPUMEM_OPENAPI_DIR") or os.path.join(HERE, "..", "data", "openapi")
    if glob.glob(os.path.join(spec_dir, "*.json")):
        validate_all(objs, spec_dir)
    else:
        print(f"skip manifests_schema: no Kubernetes schemas in {os.path.normpath(spec_dir)}")
    check_daemonset(objs, bindir)
    check_runtime(objs, deploy)
    check_example(objs)
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
