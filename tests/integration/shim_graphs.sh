# CUDA graph memory (issue 10, item 8): the device's graph memory pool that
# graph allocation nodes are mapped from at upload or launch is charged to
# the group, a graph whose memory does not fit is refused before it runs,
# trimming gives the bytes back, and what the simulated driver really holds
# (NVML's per-process truth) stays within the limit. The limit is 1 GiB; the
# simulated context costs 128 MiB, which leaves 896 MiB.
. tests/integration/lib.sh
export GPUMEM_SIM_CTX_OVERHEAD=128M
check() { # NAME OPS...
    local name=$1; shift
    local out
    if out=$(run_sim --limit 1G -- "$CLIENT" init "$@" 2>&1); then ok "$name"
    else fail "$name" "$(printf '%s' "$out" | tr '\n' '|' | cut -c1-600)"; fi
}
# The simulated driver alone (no group): nothing is taken at instantiation,
# the launch maps the graph's allocations from the device (NVML sees them),
# they stay reserved after the executable graph is gone, and the trim gives
# them back.
if out=$(sim_client init gnew galloc 600M gfree ginst greserved truthle 128M expect 0 glaunch expect 0 greserved \
          truthle 728M expect 0 truthle 727M expect 1 gexecdestroy gdestroy greserved gtrim expect 0 greserved \
          truthle 128M expect 0 2>&1); then
    expect_in sim_graph_pool_follows_launch_and_trim "greserved=0|greserved=629145600|greserved=629145600|greserved=0|" \
        "$(printf '%s\n' "$out" | grep -o 'greserved=[0-9]*' | tr '\n' '|')"
else
    fail sim_graph_pool_follows_launch_and_trim "$(printf '%s' "$out" | tr '\n' '|')"
fi
out=$(sim_client init gnew galloc 100M ginst glaunch expect 0 glaunch expect 1 2>&1)
expect_in sim_graph_unfreed_allocation_blocks_relaunch "glaunch -> 1" "$out"

# Under a group. An allocation node is charged once its graph runs.
check graph_alloc_node_is_charged gnew galloc 600M gfree ginst glaunch expect 0 alloc 400M expect 2 \
    truthle 1G expect 0 alloc 100M expect 0
# A graph whose memory does not fit is refused before it runs.
check graph_past_limit_is_refused gnew galloc 1G gfree ginst glaunch expect 2 greserved truthle 1G expect 0 \
    alloc 800M expect 0
check graph_upload_past_limit_is_refused gnew galloc 1G gfree ginst gupload expect 2 truthle 1G expect 0
check graph_instantiate_upload_past_limit_is_refused gnew galloc 1G gfree ginstup expect 2 truthle 1G expect 0
check graph_instantiate_upload_is_charged gnew galloc 600M gfree ginstup expect 0 alloc 400M expect 2 truthle 1G expect 0
check graph_v2_instantiate_is_charged gnew galloc 600M gfree ginst1 expect 0 glaunch expect 0 alloc 400M expect 2
# Two graphs that each fit but not together: the second is refused.
check second_graph_past_limit_is_refused gnew galloc 500M gfree ginst glaunch expect 0 \
    gnew galloc 500M gfree ginst glaunch expect 2 truthle 1G expect 0
# Relaunching costs nothing new.
check graph_relaunch_costs_nothing_new gnew galloc 600M gfree ginst glaunch expect 0 glaunch expect 0 glaunch expect 0 \
    alloc 100M expect 0 alloc 200M expect 2
# The pool keeps the memory after the executable graph and the graph are
# destroyed (still charged), and a trim gives it back.
check graph_memory_released_on_trim gnew galloc 600M gfree ginst glaunch expect 0 gexecdestroy expect 0 gdestroy expect 0 \
    alloc 400M expect 2 gtrim expect 0 alloc 400M expect 0 truthle 1G expect 0
# What the pool holds idle serves the next graph without a new charge.
check idle_graph_memory_serves_the_next_graph gnew galloc 500M gfree ginst glaunch expect 0 gexecdestroy \
    gnew galloc 500M gfree ginst glaunch expect 0 alloc 400M expect 2 alloc 300M expect 0 truthle 1G expect 0
# A trim that keeps what resident graphs map leaves their launches free.
check trim_keeps_resident_graphs gnew galloc 600M gfree ginst glaunch expect 0 gtrim expect 0 glaunch expect 0 \
    alloc 100M expect 0 alloc 200M expect 2 truthle 1G expect 0
# The same through dlsym of each name (Triton, older cudart).
out=$(run_sim --limit 1G -- "$CLIENT" -m dlsym init gnew galloc 600M gfree ginst glaunch expect 0 alloc 400M expect 2 \
      gnew galloc 1G gfree ginst1 expect 0 glaunch expect 2 2>&1) &&
    ok graph_dlsym_path_is_enforced || fail graph_dlsym_path_is_enforced "$(echo "$out" | tr '\n' '|' | cut -c1-600)"
# A group that cannot be read fails closed: a graph with an allocation node
# is not instantiated; one without memory nodes is.
out=$(GPUMEM_GROUP_DIR="$T/nonexistent" LD_PRELOAD="$SHIM_PRELOAD" LD_LIBRARY_PATH="$SIMDIR" "$CLIENT" \
      init gnew galloc 1M gfree ginst expect 2 gnew ginst expect 0 2>&1) &&
    ok graph_fails_closed || fail graph_fails_closed "$(echo "$out" | tr '\n' '|' | cut -c1-600)"
# Threads building, launching, keeping, destroying graphs of three sizes
# and trimming near the limit: NVML's truth, read after every launch, never
# passes the limit (and the group refuses some).
out=$(run_sim --limit 1G -- "$CLIENT" init graphstorm 4 60 100M 1G expect 0 gtrim truthle 128M expect 0 2>&1) &&
    ok graph_storm_stays_under_limit || fail graph_storm_stays_under_limit "$(echo "$out" | tr '\n' '|' | cut -c1-600)"
