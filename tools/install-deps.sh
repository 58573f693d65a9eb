#!/usr/bin/env bash
# Installs, from Debian's packages, what gpumem needs to build (`make`) and
# what its tests use (`make test`); packages already installed are left
# alone, and apt-get update runs only when something is missing. For the
# tests it also unpacks NVIDIA's driver libraries and nvml.h from Debian's
# non-free packages into /var/cache/gpumem/nvidia without installing them
# (tools/fetch-nvidia-driver.sh; once). Run as root (or with sudo). Starts no
# service: Docker's end-to-end tests need dockerd running, which .ci/run starts.
#
#   tools/install-deps.sh            build and test packages
#   tools/install-deps.sh --build    only what `make` needs
set -euo pipefail

# Build: compiler and make; libmicrohttpd (the daemon's HTTP server) and
# jansson (gpumem-runtime's JSON) with their headers.
# gRPC's C core, protobuf-c and protoc-c (gpumem-k8s, the Kubernetes device
# plugin: src/k8s/).
# libcurl with OpenSSL (gpumem-dra, the DRA driver, to the API server: src/dra/kube.c).
build=(build-essential libmicrohttpd-dev libjansson-dev libgrpc-dev libprotobuf-c-dev protobuf-c-compiler
       libcurl4-openssl-dev)
# Tests: valgrind (bench instruction counts), tmux (gpumem top), procps
# (ps/pgrep), python3 (small helpers), prometheus + curl (a real scrape,
# promtool), clang + libclang-rt-14-dev (libFuzzer), docker.io +
# busybox-static (the end-to-end image), ca-certificates, man-db +
# bsdextrautils (man pages rendered, col), debootstrap (the fresh Debian 12
# that tests/integration/deb_roundtrip.sh installs the package into),
# python3-yaml + python3-jsonschema (tests/k8s/openapi.py: Kubernetes
# manifests parsed and validated against the API's OpenAPI schemas).
# golang-go + golang-google-grpc-dev + golang-goprotobuf-dev + protobuf-compiler:
# the fake kubelet of tests/integration/k8s_plugin.sh (grpc-go, built offline
# from the upstream device plugin api.proto); libprotobuf-dev: descriptor.proto,
# with which tests/integration/k8s_proto.sh decodes .proto descriptors.
# protoc-gen-go-1-3 (the protoc plugin, with grpc) builds the DRA test's
# kubelet the same way (tests/k8s/dra_kubelet/); openssl (its API server's
# certificate), util-linux (unshare, mount).
tests=(valgrind tmux procps python3 ca-certificates prometheus curl clang libclang-rt-14-dev docker.io busybox-static
       man-db bsdextrautils debootstrap python3-yaml python3-jsonschema
       golang-go golang-google-grpc-dev golang-goprotobuf-dev protobuf-compiler libprotobuf-dev
       protoc-gen-go-1-3 openssl util-linux)

case "${1:-}" in
"") want=("${build[@]}" "${tests[@]}") ;;
--build) want=("${build[@]}") ;;
-h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
*) echo "install-deps.sh: unknown option \"$1\" (try --help)" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-deps.sh: everything is installed"
elif [ "$(id -u)" != 0 ]; then
    echo "install-deps.sh: run as root to install: ${missing[*]}" >&2
    exit 1
else
    echo "install-deps.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# NVIDIA's real libcuda/libnvidia-ml and nvml.h (tests/integration/
# realdrv_lookups.sh, abi_nvml_h.sh). Without network those tests skip; CI
# makes that a failure (GPUMEM_REQUIRE_NVIDIA=1 in .ci/run).
if [ "${1:-}" != --build ]; then
    "$(dirname "$0")/fetch-nvidia-driver.sh" ||
        echo "install-deps.sh: could not fetch NVIDIA's driver packages: the tests against it will skip" >&2
fi
