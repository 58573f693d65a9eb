#!/usr/bin/env bash
# Builds the image the Docker end-to-end tests run: busybox-static, the test
# client and the simulated GPU driver in /usr/lib (the part
# nvidia-container-toolkit plays on a GPU host), and the glibc libraries they
# need (their ldd closure, the shim's included: gpumem-runtime mounts it in).
# No registry: a rootfs tarball through `docker import`.
#
#   tests/docker/build-image.sh BUILD_DIR IMAGE_TAG
set -euo pipefail
build=${1:?build dir}
tag=${2:?image tag}
busybox=$(command -v busybox 2>/dev/null || true)
[ -x /bin/busybox ] && busybox=/bin/busybox
file -L "$busybox" 2>/dev/null | grep -q 'statically linked' || { echo "busybox-static is not installed" >&2; exit 1; }
root=$(mktemp -d /tmp/gpumem-image.XXXXXX)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,usr/bin,usr/lib,etc,tmp,proc,sys,dev,run}
cp "$busybox" "$root/bin/busybox"
for app in $("$busybox" --list); do
    [ -e "$root/bin/$app" ] || ln -s busybox "$root/bin/$app"
done
cp "$build/tests/progs/alloc_client" "$root/usr/bin/"
# GPUMEM_IMAGE_NO_SIM=1: without the simulated driver (gpumem-runtime's sim
# mode mounts it in).
[ "${GPUMEM_IMAGE_NO_SIM:-0}" = 1 ] || cp "$build/sim/libcuda.so.1" "$build/sim/libnvidia-ml.so.1" "$root/usr/lib/"
# The glibc closure of everything that runs inside, at the same paths.
# GPUMEM_IMAGE_LIBS_OF=FILE: the libraries of a program the runtime mounts
# in (nvidia-smi) too, as any distribution image has them.
for f in "$build/tests/progs/alloc_client" "$build/sim/libcuda.so.1" "$build/sim/libnvidia-ml.so.1" \
         "$build/lib/libgpumem.so" ${GPUMEM_IMAGE_LIBS_OF:-}; do
    ldd "$f" | grep -o '/[^ ]*' || true
done | sort -u | while read -r lib; do
    case "$lib" in "$build"*|*/build/*) continue ;; esac
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
echo 'nobody:x:65534:65534:nobody:/:/bin/sh' >>"$root/etc/passwd"
tar -C "$root" -c . | docker import - "$tag" >/dev/null
