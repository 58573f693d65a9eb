#!/usr/bin/python3
"""Prints a shell script that applies a CDI spec's container edits the way a
container runtime does (containerd and CRI-O apply them to the OCI spec: env
appended, mounts in order), in a private mount namespace of the host, then
execs the command: tests/integration/k8s_dra.sh's "container".

usage: cdi_apply.py SPEC.json DEVICE_NAME > script; unshare -m sh script CMD...

The host stays untouched: /etc and /usr/lib get a writable overlay (so the
mount points of /etc/ld.so.preload and /usr/lib/gpumem/libgpumem.so can be
made), /run a fresh tmpfs. Each mount is one `mount -o bind[,ro]` process,
the preload list last: once it is in place every new process loads the shim.

With CDI_PRELOAD_FIRST=LIB in the environment (sanitizer runs: the ASan
runtime), the preload list bound is a copy with LIB first: glibc loads
/etc/ld.so.preload before LD_PRELOAD, and an instrumented shim needs its
runtime loaded before it.
"""

import json
import os
import shlex
import sys

spec = json.load(open(sys.argv[1]))
dev = [d for d in spec["devices"] if d["name"] == sys.argv[2]]
if len(dev) != 1:
    sys.exit("cdi_apply: no device %r in %s" % (sys.argv[2], sys.argv[1]))
edits = dev[0]["containerEdits"]
out = ["set -e", 'ov=$(mktemp -d)']
for i, lower in enumerate(["/etc", "/usr/lib"]):
    out.append('mkdir -p "$ov/u%d" "$ov/w%d"' % (i, i))
    out.append('mount -t overlay cdi-test -o lowerdir=%s,upperdir="$ov/u%d",workdir="$ov/w%d" %s' % (lower, i, i, lower))
out.append("mount -t tmpfs cdi-test /run")
mounts = sorted(edits.get("mounts", []), key=lambda m: m["containerPath"] == "/etc/ld.so.preload")
for m in mounts:
    src, dst = m["hostPath"], m["containerPath"]
    if dst == "/etc/ld.so.preload" and os.environ.get("CDI_PRELOAD_FIRST"):
        out.append('{ echo %s; cat %s; } > "$ov/preload"' % (shlex.quote(os.environ["CDI_PRELOAD_FIRST"]),
                                                          shlex.quote(src)))
        src = "$ov/preload"
    opts = ["bind"] + [o for o in m.get("options", []) if o in ("ro", "nosuid", "nodev")]
    kind = "-d" if dst.startswith("/run/gpumem/self") and not dst.endswith(("/usage", "/limits")) else "-f"
    if kind == "-d":
        out.append("mkdir -p %s" % shlex.quote(dst))
    else:
        out.append("mkdir -p %s && { [ -e %s ] || : > %s; }" % (shlex.quote(dst.rsplit("/", 1)[0]), shlex.quote(dst),
                                                                shlex.quote(dst)))
    out.append("mount -o %s %s %s" % (",".join(opts), src if src == "$ov/preload" else shlex.quote(src),
                                      shlex.quote(dst)))
for e in edits.get("env", []):
    out.append("export %s" % shlex.quote(e))
out.append('exec "$@"')
print("\n".join(out))
