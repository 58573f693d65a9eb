#!/usr/bin/env bash
# The gRPC layer of the Kubernetes parts (src/k8s/grpc_server.c) against
# itself: unary calls, errors, unknown methods, unparsable requests, a
# stopped server and a stale socket (tests/k8s/grpc_selftest.c). In SAN
# runs the program is the instrumented one, with leak checking on.
source "$(dirname "$0")/lib.sh"
prog="$TOP/$BUILD/tests/k8s/grpc_selftest"
if [ ! -x "$prog" ]; then
    skip k8s_grpc "$prog not built"
    exit 0
fi
ASAN_OPTIONS="detect_leaks=1" "$prog" "$T"
