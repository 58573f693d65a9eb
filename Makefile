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
#   make install      install under PREFIX (/usr/local), into DESTDIR if set; make uninstall
#   make deb          a Debian package, build/gpumem_VERSION_ARCH.deb
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
# The user's CFLAGS and CPPFLAGS (environment or command line) come after
# ours, so that theirs win (make CFLAGS=-O0); their LDFLAGS go to every link.
override CFLAGS := $(CFLAGS_BASE) $(CPPFLAGS) $(CFLAGS)
LDSAN   += $(LDFLAGS)
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
$(BUILD)/tests/unit/account_lanes: $(BUILD)/obj/src/shim/account.o $(BUILD)/obj/src/shim/oom_wait.o

# Test programs reach the driver the way applications do: dlopen, or -lcuda
# (-rdynamic: the leak report can name their functions, as in a debug build)
# (tests/progs/*_linked.c link the simulated libcuda directly).
$(BUILD)/tests/progs/%: $(BUILD)/obj/tests/progs/%.o $(SIMCUDA)
	@mkdir -p $(dir $@)
	$(CC) $(LDSAN) -rdynamic -o $@ $< $(if $(findstring _linked,$*),-L$(BUILD)/sim -lcuda -Wl$(,)-rpath$(,)'$$ORIGIN/../../sim') $(LDLIBS)

# bench/mkgroups writes synthetic groups with the common library, and
# bench/policy_decide times the policy's decisions with it.
$(BUILD)/bench/policy_decide: $(BUILD)/obj/bench/policy_decide.o $(call obj,$(COMMON_SRC))
	@mkdir -p $(dir $@)
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS)
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
FUZZ_EXTRA_policy_files := $(DAEMON_SRC)
FUZZ_LIBS_policy_files  := -lmicrohttpd -ljansson -lm

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

# ---- install, uninstall, Debian package -------------------------------------
# `make install` copies the build into PREFIX (default /usr/local), under
# DESTDIR if set (staged installs, packages); `make uninstall` removes
# exactly what it installed. gpumem and gpumem-runtime find the shim and the
# simulated GPU relative to themselves (<prefix>/bin/.. ), so the layout
# below is fixed relative to PREFIX; only the systemd unit's directory can
# be moved (SYSTEMDUNITDIR).
#   PREFIX/bin/gpumem, gpumem-runtime
#   PREFIX/lib/gpumem/libgpumem.so                       the shim
#   PREFIX/libexec/gpumem/sim/libcuda.so.1, libnvidia-ml.so.1   the simulated GPU
#   PREFIX/share/man/man1/gpumem*.1                      man pages (man/)
#   PREFIX/share/bash-completion/completions/gpumem      (dist/bash-completion/)
#   PREFIX/share/gpumem/prometheus/*.yml, grafana/*.json (deploy/)
#   SYSTEMDUNITDIR/gpumem-daemon.service                 (dist/systemd/; default PREFIX/lib/systemd/system)
# `make deb` stages PREFIX=/usr into $(BUILD)/deb/root and builds
# $(BUILD)/gpumem_<version>_<arch>.deb from it with dpkg-deb.
PREFIX         ?= /usr/local
DESTDIR        ?=
INSTALL        ?= install
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
I_BIN     = $(PREFIX)/bin
I_LIB     = $(PREFIX)/lib/gpumem
I_SIM     = $(PREFIX)/libexec/gpumem/sim
I_MAN1    = $(PREFIX)/share/man/man1
I_BASHC   = $(PREFIX)/share/bash-completion/completions
I_DATA    = $(PREFIX)/share/gpumem
MANPAGES  := $(wildcard man/*.1)
PROM_FILES := $(wildcard deploy/prometheus/*.yml)
GRAF_FILES := $(wildcard deploy/grafana/*.json)
# Every file install puts down, relative to DESTDIR (for uninstall).
INSTALLED_FILES = $(I_BIN)/gpumem $(I_BIN)/gpumem-runtime $(I_LIB)/libgpumem.so \
    $(I_SIM)/libcuda.so.1 $(I_SIM)/libnvidia-ml.so.1 \
    $(addprefix $(I_MAN1)/,$(notdir $(MANPAGES))) $(I_BASHC)/gpumem \
    $(addprefix $(I_DATA)/prometheus/,$(notdir $(PROM_FILES))) \
    $(addprefix $(I_DATA)/grafana/,$(notdir $(GRAF_FILES))) \
    $(SYSTEMDUNITDIR)/gpumem-daemon.service
# gpumem's own directories, removed by uninstall when empty (deepest first).
INSTALLED_DIRS = $(I_SIM) $(PREFIX)/libexec/gpumem $(I_LIB) $(I_DATA)/prometheus $(I_DATA)/grafana $(I_DATA)

install: $(CLI) $(RUNTIME) $(SHIM) $(SIMCUDA) $(SIMNVML)
	$(INSTALL) -d $(addprefix $(DESTDIR),$(I_BIN) $(I_LIB) $(I_SIM) $(I_MAN1) $(I_BASHC) \
	    $(I_DATA)/prometheus $(I_DATA)/grafana $(SYSTEMDUNITDIR))
	$(INSTALL) -m 0755 $(CLI) $(RUNTIME) $(DESTDIR)$(I_BIN)/
	$(INSTALL) -m 0644 $(SHIM) $(DESTDIR)$(I_LIB)/
	$(INSTALL) -m 0644 $(SIMCUDA) $(SIMNVML) $(DESTDIR)$(I_SIM)/
	$(INSTALL) -m 0644 $(MANPAGES) $(DESTDIR)$(I_MAN1)/
	$(INSTALL) -m 0644 dist/bash-completion/gpumem $(DESTDIR)$(I_BASHC)/gpumem
	$(INSTALL) -m 0644 $(PROM_FILES) $(DESTDIR)$(I_DATA)/prometheus/
	$(INSTALL) -m 0644 $(GRAF_FILES) $(DESTDIR)$(I_DATA)/grafana/
	sed 's|@BINDIR@|$(I_BIN)|g' dist/systemd/gpumem-daemon.service.in >$(DESTDIR)$(SYSTEMDUNITDIR)/gpumem-daemon.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/gpumem-daemon.service

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED_FILES))
	rmdir $(addprefix $(DESTDIR),$(INSTALLED_DIRS)) 2>/dev/null || true

# The package: what `make install PREFIX=/usr` lays out, plus DEBIAN/control.
# Depends: the libraries the binaries link (glibc at the newest symbol
# version they use); no maintainer scripts (nothing is enabled or started;
# `gpumem install docker` and `systemctl enable gpumem-daemon` are the
# admin's).
DEB_ROOT = $(BUILD)/deb/root
deb: $(CLI) $(RUNTIME) $(SHIM) $(SIMCUDA) $(SIMNVML)
	rm -rf $(BUILD)/deb
	$(MAKE) --no-print-directory install DESTDIR=$(abspath $(DEB_ROOT)) PREFIX=/usr SYSTEMDUNITDIR=/usr/lib/systemd/system
	mkdir -p $(DEB_ROOT)/DEBIAN
	set -e; ver=$$($(CLI) --version | cut -d' ' -f2); arch=$$(dpkg --print-architecture); \
	glibc=$$(objdump -T $(DEB_ROOT)/usr/bin/* $(DEB_ROOT)/usr/lib/gpumem/*.so $(DEB_ROOT)/usr/libexec/gpumem/sim/*.so.1 | \
	    grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n1); \
	{ echo "Package: gpumem"; echo "Version: $$ver"; echo "Architecture: $$arch"; \
	  echo "Maintainer: gpumem developers <gpumem@localhost>"; \
	  echo "Installed-Size: $$(du -sk --exclude=DEBIAN $(DEB_ROOT) | cut -f1)"; \
	  echo "Depends: libc6 (>= $$glibc), libjansson4 (>= 2.14), libmicrohttpd12 (>= 0.9.75)"; \
	  echo "Suggests: docker.io | docker-ce, prometheus"; \
	  echo "Section: admin"; echo "Priority: optional"; \
	  echo "Description: per-container GPU memory limits"; \
	  echo " gpumem gives each container, or any process tree, a hard GPU memory limit"; \
	  echo " that its applications see as the size of their GPU, by interposing the"; \
	  echo " CUDA driver API and NVML (libgpumem.so). Includes the gpumem CLI, the OCI"; \
	  echo " runtime wrapper gpumem-runtime, a Prometheus exporter (gpumem daemon) and"; \
	  echo " a simulated GPU for machines without one."; } >$(DEB_ROOT)/DEBIAN/control; \
	dpkg-deb --root-owner-group -Zxz --build $(DEB_ROOT) $(BUILD)/gpumem_$${ver}_$${arch}.deb

.PHONY: install uninstall deb
