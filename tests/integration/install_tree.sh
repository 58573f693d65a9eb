# make install / make uninstall: an install tree (PREFIX=/usr under a
# DESTDIR) that works where it lands: gpumem run --sim finds the installed
# shim and simulated GPU, gpumem-runtime the installed shim and simulated
# GPU; a man page per command, rendered without warnings, naming every long
# option its --help names; the systemd unit runs the installed gpumem;
# uninstall leaves nothing; the user's CFLAGS, CPPFLAGS and LDFLAGS reach
# the compiler and linker.
. tests/integration/lib.sh
if [ "${SAN:-0}" = 1 ]; then skip install_tree "the install tree is tested in the plain build"; exit 0; fi
root="$T/root"
out=$(make -s --no-print-directory -C "$TOP" install BUILD="$BUILD" DESTDIR="$root" PREFIX=/usr 2>&1) &&
    ok make_install || { fail make_install "$out"; exit 0; }
bin="$root/usr/bin"
for f in usr/bin/gpumem usr/bin/gpumem-runtime usr/bin/gpumem-k8s usr/lib/gpumem/libgpumem.so usr/libexec/gpumem/sim/libcuda.so.1 \
    usr/libexec/gpumem/sim/libnvidia-ml.so.1 usr/share/bash-completion/completions/gpumem \
    usr/lib/systemd/system/gpumem-daemon.service usr/share/gpumem/prometheus/gpumem-alerts.yml \
    usr/share/gpumem/grafana/gpumem-dashboard.json; do
    [ -f "$root/$f" ] || missing="${missing:-} $f"
done
[ -z "${missing:-}" ] && ok install_layout || fail install_layout "missing:$missing"

# The installed gpumem finds its own shim and simulated GPU (not the build's).
out=$(env -u GPUMEM_SIM_DIR -u GPUMEM_SHIM "$bin/gpumem" run --sim --limit 1G -- \
    env LD_DEBUG=libs "$CLIENT" init info alloc 600M expect 0 alloc 600M expect 2 2>&1)
[ $? = 0 ] && expect_in installed_run_sim "total=1073741824" "$out" || fail installed_run_sim "$(tr '\n' '|' <<<"$out" | tail -c 600)"
case "$out" in
*"$root/usr/libexec/gpumem/sim/libcuda.so.1"*"$root/usr/lib/gpumem/libgpumem.so"* | \
    *"$root/usr/lib/gpumem/libgpumem.so"*"$root/usr/libexec/gpumem/sim/libcuda.so.1"*) ok installed_run_uses_installed_files ;;
*) fail installed_run_uses_installed_files "$(grep -e libgpumem -e libcuda <<<"$out" | head -5 | tr '\n' '|')" ;;
esac

# The installed runtime: its shim and (sim = on) its simulated GPU.
fake="$T/fake-runc"; printf '#!/bin/sh\nexit 0\n' >"$fake"; chmod +x "$fake"
printf 'runtime = %s\nsim = on\nsim-state = %s\n' "$fake" "$T/simstate" >"$T/runtime.conf"
b="$T/bundle"; mkdir -p "$b/rootfs"
echo '{"process":{"env":["NVIDIA_GPU_MEMORY_LIMIT=1024"]},"root":{"path":"rootfs"},"mounts":[]}' >"$b/config.json"
GPUMEM_RUNTIME_CONFIG="$T/runtime.conf" "$bin/gpumem-runtime" create --bundle "$b" inst1 &&
python3 - "$b/config.json" "$root" <<'PY' && ok installed_runtime_mounts || fail installed_runtime_mounts "$(cat "$b/config.json")"
import json, sys
m = {x["destination"]: x["source"] for x in json.load(open(sys.argv[1]))["mounts"]}
r = sys.argv[2]
assert m["/usr/lib/gpumem/libgpumem.so"] == r + "/usr/lib/gpumem/libgpumem.so", m
assert m["/usr/lib/libcuda.so.1"] == r + "/usr/libexec/gpumem/sim/libcuda.so.1", m
assert m["/usr/lib/libnvidia-ml.so.1"] == r + "/usr/libexec/gpumem/sim/libnvidia-ml.so.1", m
PY
GPUMEM_RUNTIME_CONFIG="$T/runtime.conf" "$bin/gpumem-runtime" delete inst1

# A man page per command, without warnings, naming each long option of its --help.
man1="$root/usr/share/man/man1"
cmds=$("$bin/gpumem" --help | sed -n '/^Commands:/,/^$/p' | awk 'NR > 1 && NF { print $1 }')
[ -n "$cmds" ] || fail man_pages "no commands in gpumem --help"
bad=""
for page in gpumem gpumem-runtime gpumem-k8s $(printf 'gpumem-%s\n' $cmds); do
    f="$man1/$page.1"
    if [ ! -f "$f" ]; then bad+=" $page: no page;"; continue; fi
    warn=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$f" 2>&1 >/dev/null)
    [ -z "$warn" ] || bad+=" $page: $warn;"
    text=$(LC_ALL=C.UTF-8 MANWIDTH=200 man -l "$f" 2>/dev/null | col -b)
    grep -q "^NAME" <<<"$text" || bad+=" $page: no NAME;"
    case $page in gpumem | gpumem-runtime) continue ;; esac
    helpcmd=("$bin/gpumem" "${page#gpumem-}")
    [ "$page" = gpumem-k8s ] && helpcmd=("$bin/gpumem-k8s")
    for opt in $("${helpcmd[@]}" --help 2>&1 | grep -oE -- '^ +(-[a-zA-Z], +)?--[a-z][a-z-]*' | grep -o -- '--[a-z-]*' | sort -u); do
        grep -q -- "$opt" <<<"$text" || bad+=" $page: $opt missing;"
    done
done
[ -z "$bad" ] && ok man_pages || fail man_pages "$bad"

grep -qx "ExecStart=/usr/bin/gpumem daemon --listen 127.0.0.1:9400" "$root/usr/lib/systemd/system/gpumem-daemon.service" &&
    ok systemd_unit_runs_installed_gpumem || fail systemd_unit_runs_installed_gpumem "$(cat "$root/usr/lib/systemd/system/gpumem-daemon.service")"
out=$(bash -c '. "$1"; COMP_WORDS=(gpumem in); COMP_CWORD=1; _gpumem; echo "${COMPREPLY[*]}"' _ "$root/usr/share/bash-completion/completions/gpumem" 2>&1)
[ "$out" = "inspect install" ] && ok bash_completion || fail bash_completion "$out"
"$bin/gpumem" run --sim --name cmpl-job --keep -- true
out=$(PATH="$bin:$PATH" bash -c '. "$1"; COMP_WORDS=(gpumem limit cmpl-); COMP_CWORD=2; _gpumem; echo "${COMPREPLY[*]}"' _ \
    "$root/usr/share/bash-completion/completions/gpumem" 2>&1)
[ "$out" = "cmpl-job" ] && ok bash_completion_groups || fail bash_completion_groups "$out"

out=$(make -s --no-print-directory -C "$TOP" uninstall BUILD="$BUILD" DESTDIR="$root" PREFIX=/usr 2>&1)
left=$(cd "$root" && find . -mindepth 1 ! -type d; find . -path '*gpumem*')
[ -z "$left" ] && ok uninstall_leaves_nothing || fail uninstall_leaves_nothing "$(tr '\n' ' ' <<<"$left") $out"

# The user's flags: after ours on the compiler's line (so theirs win), and on every link.
out=$(make -n -B --no-print-directory -C "$TOP" BUILD="$BUILD" CFLAGS=-O0 CPPFLAGS=-DGPUMEM_USER_CPP LDFLAGS=-Wl,--as-needed \
    "$BUILD/bin/gpumem-runtime" 2>&1)
cc=$(grep -- ' -c src/runtime/main.c' <<<"$out"); ld=$(grep -- "-o $BUILD/bin/gpumem-runtime" <<<"$out")
case "$cc" in *-O2*-DGPUMEM_USER_CPP*-O0*) ;; *) cc="" ;; esac
[ -n "$cc" ] && case "$ld" in *-Wl,--as-needed*) true ;; *) false ;; esac && ok user_flags_honoured ||
    fail user_flags_honoured "$(tr '\n' '|' <<<"$out" | cut -c1-600)"
exit 0
