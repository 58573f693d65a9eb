# gpumem install/uninstall docker: daemon.json merged, backed up, idempotent;
# gpumem-runtime without an engine: pass-through, config.json edits, refusals.
. tests/integration/lib.sh
RT="$TOP/$BUILD/bin/gpumem-runtime"
cfg="$T/daemon.json"
printf '{"log-level": "warn", "runtimes": {"other": {"path": "/x"}}}\n' >"$cfg"
out=$("$GPUMEM" install docker --config "$cfg" --runtime-path "$RT" 2>&1)
expect_in install_says_restart "Restart dockerd" "$out"
python3 - "$cfg" "$RT" <<'PY' && ok install_merges || fail install_merges "$(cat "$cfg")"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["log-level"] == "warn" and j["runtimes"]["other"]["path"] == "/x"
assert j["runtimes"]["gpumem"]["path"] == sys.argv[2] and "default-runtime" not in j
PY
grep -q '"other"' "$cfg.gpumem-backup" && ! grep -q gpumem "$cfg.gpumem-backup" && ok install_keeps_backup || fail install_keeps_backup "$(cat "$cfg.gpumem-backup" 2>&1)"
cp "$cfg" "$T/before"
out=$("$GPUMEM" install docker --config "$cfg" --runtime-path "$RT" 2>&1)
cmp -s "$cfg" "$T/before" && expect_in install_idempotent "already up to date" "$out" || fail install_idempotent "changed"
out=$("$GPUMEM" install docker --default --dry-run --config "$cfg" --runtime-path "$RT" 2>/dev/null)
cmp -s "$cfg" "$T/before" && expect_in dry_run_prints '"default-runtime": "gpumem"' "$out" || fail dry_run_prints "file changed"
"$GPUMEM" install docker --default --config "$cfg" --runtime-path "$RT" >/dev/null
grep -q '"default-runtime": "gpumem"' "$cfg" && ok install_default || fail install_default "$(cat "$cfg")"
"$GPUMEM" uninstall docker --config "$cfg" >/dev/null
! grep -q gpumem "$cfg" && grep -q '"other"' "$cfg" && ok uninstall_removes_only_ours || fail uninstall_removes_only_ours "$(cat "$cfg")"
echo '{"runtimes": ' >"$T/bad.json"
out=$("$GPUMEM" install docker --config "$T/bad.json" --runtime-path "$RT" 2>&1); rc=$?
[ $rc -ne 0 ] && [ "$(cat "$T/bad.json")" = '{"runtimes": ' ] && ok install_refuses_broken_json || fail install_refuses_broken_json "rc=$rc $out"
out=$("$GPUMEM" install docker --config "$T/new/daemon.json" --runtime-path "$RT" 2>&1) && grep -q gpumem "$T/new/daemon.json" \
    && ok install_creates_missing || fail install_creates_missing "no file"
# No daemon.json before: no backup made, and none claimed.
[ ! -e "$T/new/daemon.json.gpumem-backup" ] && case "$out" in *backup*) false ;; *"there was none before"*) true ;; *) false ;; esac \
    && ok install_no_backup_claimed_when_none || fail install_no_backup_claimed_when_none "$(ls "$T/new") $out"
out=$("$GPUMEM" install docker --default --config "$T/new/daemon.json" --runtime-path "$RT" 2>&1)
expect_in install_backup_named_when_made "previous version in $T/new/daemon.json.gpumem-backup" "$out"

# The runtime against a fake real runtime that records its arguments.
fake="$T/fake-runc"
printf '#!/bin/sh\necho "$@" >"%s/argv"\nexit ${FAKE_RC:-0}\n' "$T" >"$fake"; chmod +x "$fake"
echo "runtime = $fake" >"$T/runtime.conf"
export GPUMEM_RUNTIME_CONFIG="$T/runtime.conf"
b="$T/bundle"; mkdir -p "$b/rootfs/etc"
mkspec() { printf '{"ociVersion":"1.0.2","process":{"env":["PATH=/bin"%s]},"root":{"path":"rootfs"},"mounts":[{"destination":"/proc","type":"proc","source":"proc"}],"annotations":{"io.kubernetes.cri.container-name":"trainer","io.kubernetes.cri.sandbox-name":"pod-1","io.kubernetes.cri.sandbox-namespace":"ml"}}\n' "$1" >"$b/config.json"; }
mkspec ''
cp "$b/config.json" "$T/orig"
"$RT" --root /x --log "$T/log" --log-format json state abc && grep -qx -- "--root /x --log $T/log --log-format json state abc" "$T/argv" \
    && ok runtime_passes_through || fail runtime_passes_through "$(cat "$T/argv")"
"$RT" --root /x create --bundle "$b" --pid-file /p c1 && cmp -s "$b/config.json" "$T/orig" && [ ! -e "$GPUMEM_STATE_DIR/c1" ] \
    && ok runtime_no_limit_untouched || fail runtime_no_limit_untouched "config changed or group made"
mkspec ',"NVIDIA_GPU_MEMORY_LIMIT=lots"'
out=$("$RT" --log "$T/log" --log-format json create -b "$b" c2 2>&1); rc=$?
[ $rc -ne 0 ] && [ ! -e "$GPUMEM_STATE_DIR/c2" ] && expect_in runtime_bad_limit_refused 'gpumem-runtime: container c2: NVIDIA_GPU_MEMORY_LIMIT=lots' "$out" \
    || fail runtime_bad_limit_refused "rc=$rc dir? $(ls "$GPUMEM_STATE_DIR" 2>&1) $out"
grep -q '"level":"error".*lots' "$T/log" && ok runtime_error_in_engine_log || fail runtime_error_in_engine_log "$(cat "$T/log" 2>&1)"
echo '{"process": ' >"$b/config.json"
out=$("$RT" create --bundle="$b" c3 2>&1); rc=$?
[ $rc -ne 0 ] && expect_in runtime_json_error_refused "gpumem-runtime: bundle $b: config.json line" "$out" || fail runtime_json_error_refused "rc=$rc $out"
mkspec ',"NVIDIA_GPU_MEMORY_LIMIT=1024"'
echo /usr/lib/libother.so >"$b/rootfs/etc/ld.so.preload"
id=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
"$RT" create --bundle "$b" "$id" || fail runtime_create "rc=$?"
g="$GPUMEM_STATE_DIR/ml_pod-1_trainer" # named after the pod (its CRI annotations), docs/kubernetes.md
out=$("$GPUMEM" limit "$g" 2>&1); expect_in runtime_group_limit "default 1 GiB" "$out"
[ "$(cat "$g/ld.so.preload")" = "$(printf '/usr/lib/gpumem/libgpumem.so\n/usr/lib/libother.so')" ] && ok runtime_preload_merged \
    || fail runtime_preload_merged "$(cat "$g/ld.so.preload" 2>&1)"
python3 - "$b/config.json" "$g" <<'PY' && ok runtime_mounts_added || fail runtime_mounts_added "$(cat "$b/config.json")"
import json, sys
m = {x["destination"]: x for x in json.load(open(sys.argv[1]))["mounts"]}
g = sys.argv[2]
assert m["/run/gpumem/self"]["source"] == g and "ro" in m["/run/gpumem/self"]["options"]
assert m["/run/gpumem/self/usage"]["source"] == g + "/usage" and "rw" in m["/run/gpumem/self/usage"]["options"]
assert "ro" in m["/run/gpumem/self/limits"]["options"] and "ro" in m["/etc/ld.so.preload"]["options"]
assert m["/usr/lib/gpumem/libgpumem.so"]["source"].endswith("libgpumem.so") and "/proc" in m
PY
out=$("$GPUMEM" ps --all --format json)
expect_in runtime_identity '"container_id":"'"$id"'"' "$out"
"$RT" delete --force "$id" && [ ! -e "$g" ] && ok runtime_delete_removes_group || fail runtime_delete_removes_group "$(ls "$g" 2>&1)"
# Sim mode: the simulated driver and one shared simulated-GPU state mounted
# in (as uid 1000: its default state directory).
printf 'runtime = %s\nsim = on\nsim-state = %s\n' "$fake" "$T/simstate" >"$T/runtime.conf"
mkspec ',"NVIDIA_GPU_MEMORY_LIMIT=1024"'
python3 - "$b/config.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); j["process"]["user"] = {"uid": 1000, "gid": 1000}
json.dump(j, open(sys.argv[1], "w"))
PY
"$RT" create --bundle "$b" csim || fail runtime_sim_create "rc=$?"
python3 - "$b/config.json" "$TOP/$BUILD/sim" "$T/simstate" <<'PY' && ok runtime_sim_mounts || fail runtime_sim_mounts "$(cat "$b/config.json")"
import json, os, sys
m = {x["destination"]: x for x in json.load(open(sys.argv[1]))["mounts"]}
sim, state = sys.argv[2], sys.argv[3]
for lib in ("libcuda.so.1", "libnvidia-ml.so.1"):
    assert os.path.samefile(m["/usr/lib/" + lib]["source"], os.path.join(sim, lib)) and "ro" in m["/usr/lib/" + lib]["options"]
assert m["/dev/shm/gpumem-sim-1000"]["source"] == state and "rw" in m["/dev/shm/gpumem-sim-1000"]["options"]
assert os.path.isdir(state)
PY
"$RT" delete csim
printf 'runtime = %s\nsim = maybe\n' "$fake" >"$T/runtime.conf"
out=$("$RT" state x 2>&1); expect_in runtime_sim_bad_value 'sim = "maybe": expected on, off or an absolute directory' "$out"
echo "runtime = $fake" >"$T/runtime.conf"

mkspec ',"NVIDIA_GPU_MEMORY_LIMIT=1024"'
FAKE_RC=1 "$RT" create --bundle "$b" c4; rc=$?
[ $rc = 1 ] && [ ! -e "$GPUMEM_STATE_DIR/c4" ] && ok runtime_failed_create_cleans_up || fail runtime_failed_create_cleans_up "rc=$rc"
exit 0
