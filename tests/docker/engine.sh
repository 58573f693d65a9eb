# Sourced by the Docker end-to-end tests after tests/integration/lib.sh:
#   docker_engine TEST TAG   skip (and exit 0) in SAN runs or without a
#                            working engine; otherwise set RT, IMG, P and
#                            GPU (the docker run flags for a container on the
#                            simulated GPU), register gpumem-runtime with
#                            dockerd if it is not yet, build the test image,
#                            and undo it all at exit (then call the test's
#                            own `finish_extra` if it defines one).
docker_engine() {
    local test=$1 tag=$2 why
    if [ "${SAN:-0}" = 1 ]; then skip "$test" "docker tests run in the plain build only"; exit 0; fi
    if ! command -v docker >/dev/null; then skip "$test" "dockerd unavailable: no docker client"; exit 0; fi
    if ! why=$(timeout 20 docker info 2>&1 >/dev/null); then
        skip "$test" "dockerd unavailable: $(printf '%s' "$why" | tr '\n' ' ' | cut -c1-200)"; exit 0
    fi
    RT="$TOP/$BUILD/bin/gpumem-runtime"
    # The runtime runs under dockerd, with its state dir (/run/gpumem as root).
    export GPUMEM_STATE_DIR=${GPUMEM_DOCKER_STATE_DIR:-/run/gpumem}
    IMG=gpumem-test:$tag-$$
    P=gpumem-$tag-$$
    engine_installed=""
    engine_daemon_json=${GPUMEM_DOCKER_CONFIG:-/etc/docker/daemon.json}
    trap engine_finish EXIT
    if ! engine_has_runtime; then
        "$GPUMEM" install docker --config "$engine_daemon_json" --runtime-path "$RT" >/dev/null ||
            { fail docker_install "gpumem install docker failed"; exit 1; }
        engine_installed=1
        kill -HUP $(pidof dockerd)
        for i in $(seq 50); do engine_has_runtime && break; sleep 0.2; done
        engine_has_runtime && ok runtime_registered_by_install ||
            { fail runtime_registered_by_install "dockerd did not load it"; exit 1; }
    fi
    tests/docker/build-image.sh "$TOP/$BUILD" "$IMG" || { fail docker_image "build-image.sh failed"; exit 1; }
    mkdir -p "$GPUMEM_SIM_STATE"
    GPU=(--runtime=gpumem --network none -e GPUMEM_SIM_STATE=/simstate -e GPUMEM_SIM_CTX_OVERHEAD=64M
         -v "$GPUMEM_SIM_STATE:/simstate")
}

# This checkout's runtime, by path: dockerd keeps a runtime loaded after it
# leaves daemon.json, so a "gpumem" from another checkout may still be there.
engine_has_runtime() { docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -qF "\"gpumem\":{\"path\":\"$RT\""; }

engine_finish() {
    declare -F finish_extra >/dev/null && finish_extra
    docker ps -aq --filter "name=$P" | xargs -r docker rm -f >/dev/null 2>&1
    docker rmi -f "$IMG" >/dev/null 2>&1
    if [ -n "$engine_installed" ]; then
        "$GPUMEM" uninstall docker --config "$engine_daemon_json" >/dev/null
        kill -HUP $(pidof dockerd) 2>/dev/null
    fi
    cleanup
}
