# gpumem — one command builds everything: `make`; one runs every test: `make test`.
#
#   make              build the shim, the CLI and the simulated GPU into build/
#   make test         build, then run every test (ends with "N passed, N failed")
#   make SAN=1 test   the same with ASan+UBSan, into build-san/
#   make TSAN=1 test  the unit tests (racing threads included) under ThreadSanitizer, into build-tsan/
#   make test-unit    only the unit tests
#   make CC=clang     build with clang, into build-clang/ (and so on: build-clang-san/)
#   make WERROR=1     treat warnings as errors (CI does)
#   make bench        run the benchmarks in bench/
#
# No configure step and no CUDA toolkit needed: gpumem declares the driver and
# NVML types it uses in include/gpumem/.

CC      ?= cc
SAN     ?= 0
TSAN    ?= 0
WERROR  ?= 0
# Each compiler and sanitizer builds into its own directory, so that objects
# of two builds never mix: build/, build-san/, build-tsan/, build-clang/...
CLANG   := $(if $(findstring clang,$(notdir $(CC))),1)
BUILD   ?= build$(if $(CLANG),-clang)$(if $(filter 1,$(SAN)),-san)$(if $(filter 1,$(TSAN)),-tsan)

CFLAGS_BASE = -std=c11 -D_GNU_SOURCE -g -O2 -fPIC -Iinclude \
              -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
              -Wno-unused-parameter
# clang 14 writes DWARF 5 that valgrind 3.19 (make bench) cannot read.
ifeq ($(CLANG),1)
CFLAGS_BASE += -gdwarf-4
endif
ifeq ($(WERROR),1)
CFLAGS_BASE += -Werror
endif
ifeq ($(SAN),1)
CFLAGS_BASE += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDSAN = -fsanitize=address,undefined
endif
ifeq ($(TSAN),1)
CFLAGS_BASE += -fsanitize=thread -fno-omit-frame-pointer
LDSAN = -fsanitize=thread
endif
CFLAGS  += $(CFLAGS_BASE)
LDLIBS  += -ldl -lpthread

COMMON_SRC := $(wildcard src/common/*.c)
SHIM_SRC   := $(wildcard src/shim/*.c)
CLI_SRC    := $(wildcard src/cli/*.c)
RUNTIME_SRC := $(wildcard src/runtime/*.c)
DAEMON_SRC := $(wildcard src/daemon/*.c)
SIMC_SRC   := $(wildcard sim/common/*.c)
SIMCU_SRC  := $(wildcard sim/cuda/*.c)
SIMNV_SRC  := $(wildcard sim/nvml/*.c)
UNIT_SRC   := $(wildcard tests/unit/*.c)
PROG_SRC   := $(wildcard tests/progs/*.c)
BENCH_SRC  := $(wildcard bench/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

SHIM    := $(BUILD)/lib/libgpumem.so
SIMCUDA := $(BUILD)/sim/libcuda.so.1
SIMNVML := $(BUILD)/sim/libnvidia-ml.so.1
SIMCUDA_UNNAMED := $(BUILD)/tests/sim-unnamed/libcuda.so.1
CLI     := $(BUILD)/bin/gpumem
RUNTIME := $(BUILD)/bin/gpumem-runtime
UNITS   := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRC))
PROGS   := $(patsubst tests/progs/%.c,$(BUILD)/tests/progs/%,$(PROG_SRC))
BENCHES := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

ifeq ($(TSAN),1)
# ThreadSanitizer's runtime must start before anything it instruments, so a
# TSan shim cannot be preloaded into the (uninstrumented) programs of the
# integration tests. A TSan build is the unit tests, which run the shim's
# accounting (account_lanes) and live table (alloc_table) in-process, with
# racing threads.
all: $(UNITS)
test: test-unit
else
all: $(SHIM) $(SIMCUDA) $(SIMNVML) $(SIMCUDA_UNNAMED) $(CLI) $(RUNTIME) $(UNITS) $(PROGS) $(BENCHES)
test: all
	@BUILD=$(BUILD) SAN=$(SAN) tests/run.sh
endif

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# The shim: hidden visibility, and a version script naming every export.
$(call obj,$(SHIM_SRC)): CFLAGS += -fvisibility=hidden
# The sanitizer runtimes look their interceptors up with dlsym(RTLD_NEXT)
# before they are initialised; our dlsym must run uninstrumented then.
$(BUILD)/obj/src/shim/dlsym.o $(BUILD)/obj/src/shim/elf_lookup.o: CFLAGS += -fno-sanitize=all
$(SHIM): $(call obj,$(SHIM_SRC) $(COMMON_SRC)) src/shim/libgpumem.map
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,--version-script=src/shim/libgpumem.map -Wl,-z,now -Wl,-z,nodelete \
	    $(LDSAN) -o $@ $(call obj,$(SHIM_SRC) $(COMMON_SRC)) $(LDLIBS)

# The simulated driver is linked like NVIDIA's: internal calls bind locally.
$(call obj,$(SIMC_SRC) $(SIMCU_SRC) $(SIMNV_SRC)): CFLAGS += -fvisibility=hidden
$(SIMCUDA): $(call obj,$(SIMCU_SRC) $(SIMC_SRC)) sim/cuda/libcuda.map
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,libcuda.so.1 -Wl,-Bsymbolic-functions \
	    -Wl,--version-script=sim/cuda/libcuda.map $(LDSAN) -o $@ $(call obj,$(SIMCU_SRC) $(SIMC_SRC)) $(LDLIBS) -lrt
	ln -sf libcuda.so.1 $(BUILD)/sim/libcuda.so
$(SIMNVML): $(call obj,$(SIMNV_SRC) $(SIMC_SRC)) sim/nvml/libnvidia-ml.map
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,libnvidia-ml.so.1 -Wl,-Bsymbolic-functions \
	    -Wl,--version-script=sim/nvml/libnvidia-ml.map $(LDSAN) -o $@ $(call obj,$(SIMNV_SRC) $(SIMC_SRC)) $(LDLIBS) -lrt
	ln -sf libnvidia-ml.so.1 $(BUILD)/sim/libnvidia-ml.so

# The simulated driver once more, without the named exports of some entry
# points the shim interposes or calls: it answers them only through
# cuGetProcAddress, as a driver may (tests/integration/shim_unnamed_exports.sh).
SIM_UNNAMED := cuMemAlloc_v2 cuMemFree_v2 cuMemGetInfo_v2 cuDeviceGetUuid cuDeviceGetUuid_v2 cuCtxCreate_v2 \
               cuMemAllocAsync_ptsz cuDeviceGetCount
$(SIMCUDA_UNNAMED): $(call obj,$(SIMCU_SRC) $(SIMC_SRC)) sim/cuda/libcuda.map Makefile
	@mkdir -p $(dir $@)
	grep -v -E '^ +($(subst $(eval) ,|,$(strip $(SIM_UNNAMED))));$$' sim/cuda/libcuda.map >$@.map
	$(CC) -shared -Wl,-soname,libcuda.so.1 -Wl,-Bsymbolic-functions \
	    -Wl,--version-script=$@.map $(LDSAN) -o $@ $(call obj,$(SIMCU_SRC) $(SIMC_SRC)) $(LDLIBS) -lrt

$(call obj,$(CLI_SRC) $(DAEMON_SRC)): CFLAGS += -DGPUMEM_VERSION=\"0.1.0\"
# libmicrohttpd is not linked: `gpumem daemon` loads it when it starts
# (src/daemon/http.c), so no other command pays for gnutls & co at start-up.
$(CLI): $(call obj,$(CLI_SRC) $(DAEMON_SRC) $(COMMON_SRC))
	@mkdir -p $(dir $@)
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS) -ljansson -lm

# The OCI runtime wrapper (Docker, containerd): config.json through jansson.
$(RUNTIME): $(call obj,$(RUNTIME_SRC) $(COMMON_SRC))
	@mkdir -p $(dir $@)
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS) -ljansson

# Unit tests link the common library directly (pure logic, no GPU).
$(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o $(call obj,$(COMMON_SRC))
	@mkdir -p $(dir $@)
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS) -lm

# The live table's unit test links the shim's table itself; the
# accounting's, the shim's account.c (it stands in for the rest).
$(BUILD)/tests/unit/alloc_table: $(BUILD)/obj/src/shim/alloc_table.o
$(BUILD)/tests/unit/account_lanes: $(BUILD)/obj/src/shim/account.o

# Test programs reach the driver the way applications do: dlopen, or -lcuda
# (-rdynamic: the leak report can name their functions, as in a debug build)
# (tests/progs/*_linked.c link the simulated libcuda directly).
$(BUILD)/tests/progs/%: $(BUILD)/obj/tests/progs/%.o $(SIMCUDA)
	@mkdir -p $(dir $@)
	$(CC) $(LDSAN) -rdynamic -o $@ $< $(if $(findstring _linked,$*),-L$(BUILD)/sim -lcuda -Wl$(,)-rpath$(,)'$$ORIGIN/../../sim') $(LDLIBS)

# bench/mkgroups writes synthetic groups with the common library.
$(BUILD)/bench/mkgroups: $(BUILD)/obj/bench/mkgroups.o $(call obj,$(COMMON_SRC))
	@mkdir -p $(dir $@)
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o
	@mkdir -p $(dir $@)
	$(CC) $(LDSAN) -o $@ $< $(LDLIBS)

, := ,

# The unit tests alone (tests/unit/); same summary line.
test-unit: $(UNITS)
	@BUILD=$(BUILD) SAN=$(SAN) tests/run.sh --unit

bench: all
	@BUILD=$(BUILD) bench/run.sh

clean:
	rm -rf build build-san build-tsan build-clang build-clang-san build-clang-tsan

.PHONY: all test test-unit bench clean fuzz
# Keep intermediate objects (no "rm ..." after the test summary, faster rebuilds).
.SECONDARY:
-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# ---- fuzzing (libFuzzer) ---------------------------------------------------
# `make fuzz` builds build-fuzz/fuzz/<name> for every tests/fuzz/<name>.c,
# with clang, separately from the builds above, linked with src/common/*.c
# and the sources and libraries a target names in FUZZ_EXTRA_<name> and
# FUZZ_LIBS_<name>. tests/integration/fuzz.sh runs each one briefly; to run
# one longer: build-fuzz/fuzz/size -max_total_time=600 tests/fuzz/corpus/size
# (see docs/testing.md).
FUZZ_CC      ?= clang
FUZZ_OUT     := build-fuzz
FUZZ_CFLAGS  := -g -O1 -std=c11 -D_GNU_SOURCE -Iinclude -fno-omit-frame-pointer -fno-sanitize-recover=undefined
FUZZ_SAN     := -fsanitize=fuzzer,address,undefined
FUZZ_SRC     := $(wildcard tests/fuzz/*.c)
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,$(FUZZ_OUT)/fuzz/%,$(FUZZ_SRC))
fuzz_obj      = $(patsubst %.c,$(FUZZ_OUT)/obj/%.o,$(1))

FUZZ_EXTRA_sim_devices  := sim/common/devices.c
FUZZ_LIBS_sim_devices   := -lm
FUZZ_EXTRA_oci_spec     := src/runtime/bundle.c src/runtime/config.c src/runtime/spec_edit.c
FUZZ_LIBS_oci_spec      := -ljansson
FUZZ_EXTRA_runtime_conf := $(FUZZ_EXTRA_oci_spec)
FUZZ_LIBS_runtime_conf  := -ljansson
FUZZ_EXTRA_listen       := $(DAEMON_SRC)
FUZZ_LIBS_listen        := -lmicrohttpd -ljansson -lm

fuzz: $(FUZZ_TARGETS)

# The code under test: instrumented for coverage, no libFuzzer main.
$(FUZZ_OUT)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined -MMD -MP -c $< -o $@
$(FUZZ_OUT)/obj/tests/fuzz/%.o: tests/fuzz/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -MMD -MP -c $< -o $@

.SECONDEXPANSION:
$(FUZZ_OUT)/fuzz/%: $(FUZZ_OUT)/obj/tests/fuzz/%.o $(call fuzz_obj,$(COMMON_SRC)) $$(call fuzz_obj,$$(FUZZ_EXTRA_$$*))
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_SAN) -o $@ $^ $(FUZZ_LIBS_$*) -ldl -lpthread

clean: clean-fuzz
clean-fuzz:
	rm -rf $(FUZZ_OUT)
.PHONY: clean-fuzz
-include $(shell find $(FUZZ_OUT)/obj -name '*.d' 2>/dev/null)
