# Where the container runtime mounted a group (/run/gpumem/self), that group
# applies, whatever GPUMEM_GROUP_DIR says: a process inside cannot point the
# variable at a group it made itself (with a huge limit) and escape. The
# mount is emulated in a private mount namespace (unshare -m: root), with the
# group bound read-only at the fixed path and its usage region read-write,
# as gpumem-runtime mounts it; docker_e2e.sh checks the same on Docker.
. tests/integration/lib.sh
export GPUMEM_SIM_CTX_OVERHEAD=64M
G=1073741824

out=$("$GPUMEM" run --sim --limit 1G --name self -- true 2>&1); rc=$?
[ "$rc" = 2 ] && expect_in run_refuses_name_self "reserved" "$out" || fail run_refuses_name_self "status $rc: $out"

if ! unshare -m true 2>/dev/null; then
    skip shim_container_group "unshare -m failed (needs root or CAP_SYS_ADMIN): the mount cannot be emulated"
    exit 0
fi
"$GPUMEM" run --sim --limit 1G --name real --keep -- true
"$GPUMEM" run --sim --limit 64G --name forged --keep -- true
mkdir -p "$T/empty"

# in_container MOUNTED_DIR CMD...: CMD in a private mount namespace where
# MOUNTED_DIR is bound at /run/gpumem/self (read-only, usage read-write; a
# fresh tmpfs on /run so nothing of the host's /run shows), with the shim.
in_container() {
    local src=$1; shift
    unshare -m sh -c '
        src=$1; shift
        mount -t tmpfs gpumem-test /run && mkdir -p /run/gpumem/self &&
        mount --bind "$src" /run/gpumem/self && mount -o remount,bind,ro /run/gpumem/self || exit 99
        if [ -e "$src/usage" ]; then
            mount --bind "$src/usage" /run/gpumem/self/usage || exit 99
        fi
        exec "$@"' in_container "$src" env LD_PRELOAD="$SHIM_PRELOAD" LD_LIBRARY_PATH="$SIMDIR" "$@"
}
R="$GPUMEM_STATE_DIR/real" F="$GPUMEM_STATE_DIR/forged"

# The forged group really is usable on its own: 1200 MiB fit under 64G.
out=$(GPUMEM_GROUP_DIR="$F" LD_PRELOAD="$SHIM_PRELOAD" LD_LIBRARY_PATH="$SIMDIR" "$CLIENT" init alloc 600M expect 0 alloc 600M expect 0 2>&1) &&
    ok forged_group_alone_allows_more || fail forged_group_alone_allows_more "$(tr '\n' '|' <<<"$out")"

out=$(in_container "$R" "$CLIENT" init info alloc 600M expect 0 2>&1) &&
    expect_in mount_applies_without_variable "total=$G" "$out" ||
    fail mount_applies_without_variable "$(tr '\n' '|' <<<"$out")"

out=$(GPUMEM_GROUP_DIR="$F" in_container "$R" "$CLIENT" init info alloc 600M expect 0 alloc 600M expect 2 2>&1) &&
    expect_in mount_wins_over_group_dir "total=$G" "$out" ||
    fail mount_wins_over_group_dir "$(tr '\n' '|' <<<"$out")"
expect_in ignored_group_dir_is_said "GPUMEM_GROUP_DIR=$F ignored" "$out"

# The same group by its host path: nothing to warn about.
out=$(GPUMEM_GROUP_DIR="$R" in_container "$R" "$CLIENT" init alloc 600M expect 0 2>&1) &&
    case "$out" in *ignored*) fail same_group_by_other_path_not_warned "$(tr '\n' '|' <<<"$out")" ;;
    *) ok same_group_by_other_path_not_warned ;; esac ||
    fail same_group_by_other_path_not_warned "$(tr '\n' '|' <<<"$out")"

# A mount point without a usable group fails closed, even with a variable
# naming a group that would work.
out=$(GPUMEM_GROUP_DIR="$F" in_container "$T/empty" "$CLIENT" init alloc 1M expect 2 2>&1) &&
    ok unusable_mount_fails_closed_despite_variable ||
    fail unusable_mount_fails_closed_despite_variable "$(tr '\n' '|' <<<"$out")"
exit 0
