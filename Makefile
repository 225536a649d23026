# Entry points for people and CI. The build itself is CMake (+ Ninja).
#   make demo   install what is needed, build, run examples/demo.py in the sandbox
#   make test   build and run every test (ctest)
#   make bench  benchmark suite (bench/run.py), results in bench/results/
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

APT_PACKAGES = build-essential patch cmake ninja-build ccache pkg-config python3 \
  clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32 libclang-rt-19-dev wabt autoconf-archive dpkg-dev \
  nlohmann-json3-dev libcli11-dev libseccomp-dev libgtest-dev libgmock-dev libzstd-dev \
  libbenchmark-dev hyperfine libboost1.81-dev libtomlplusplus-dev pybind11-dev python3-pytest \
  python3-mypy python3-venv python3-pip python3-setuptools python3-wheel \
  python3-flask python3-bottle gunicorn wrk \
  tcl tzdata \
  python3-jinja2 python3-markupsafe python3-yaml python3-pygments python3-markdown \
  python3-attr python3-dateutil python3-six python3-idna python3-packaging

.PHONY: all deps configure build demo test test-security bench clean format \
  test-cpython record-cpython test-thirdparty bench-http bench-functions \
  fuzz fuzz-build fuzz-regression test-sanitize sanitize-build

all: build

# Installs only what is missing (quick when everything is there).
deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "[deps] installing:" $$missing; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	else echo "[deps] all packages present"; fi

configure: deps
	@[ -f $(BUILD)/build.ninja ] || cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	$(BUILD)/terrarium run --dir examples::/examples:ro examples/demo.py

# TERRARIUM_FATAL_REFUSALS=1: a system call the second wall refuses ends the
# process, so a call the host needs but the filter lacks fails its test
# (docs/security.md).
test: build
	TERRARIUM_FATAL_REFUSALS=1 ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

# Benchmarks: native python3.11 vs terrarium run vs python.wasm under Node's
# WASI, interleaved; results in bench/results/latest.{md,json}.
BENCH_FLAGS ?=
bench: build
	python3 bench/run.py --build $(BUILD) $(BENCH_FLAGS)

# terrarium serve against its peers with wrk (~10 minutes), results in
# bench/results/http.md.
bench-http: build
	/usr/bin/python3 bench/http/run.py --build $(BUILD)

# The function runtime against its peers (C++ API, stdio, HTTP, native
# python3.11), results in bench/results/functions.md (~5 minutes).
bench-functions: build
	/usr/bin/python3 bench/functions/run.py --build $(BUILD)

# CPython's own regression tests (Lib/test) in the sandbox: every module on
# the recorded pass list must still pass (takes several minutes).
test-cpython: build
	nice -n 10 python3 tests/cpython/run.py --build $(BUILD) check tests/cpython/terrarium-pass.txt

# Re-records the pass lists and tests/cpython/summary.md: every module of
# tests/cpython/modules.txt under Terrarium and under Node 20's WASI (~1 hour).
record-cpython: build
	nice -n 10 python3 tests/cpython/run.py --build $(BUILD) --timeout 120 record \
	  --node-timeout 60 --modules-file tests/cpython/modules.txt

# Third-party pure-Python packages (Debian's python3-*) vs native python3.11.
test-thirdparty: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) -R '^thirdparty_'

# libFuzzer targets of the host-side parsers (tests/fuzz/, a CMake project of
# its own built with clang-19 and ASan/UBSan in $(FUZZ_BUILD)).
#   make fuzz FUZZ_SECONDS=N   each target N s (default 60) on a copy of its
#                              seed corpus in $(FUZZ_BUILD)/corpus-work/TARGET,
#                              crashes saved in $(FUZZ_BUILD)/artifacts/TARGET/
#   make fuzz-regression       each target once over its seed corpus (for CI)
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_FLAGS ?=
FUZZ_TARGETS = $(patsubst tests/fuzz/%_fuzzer.cc,%,$(wildcard tests/fuzz/*_fuzzer.cc))

fuzz-build: deps
	@[ -f $(FUZZ_BUILD)/build.ninja ] || cmake -S tests/fuzz -B $(FUZZ_BUILD) -G Ninja \
	  -DCMAKE_CXX_COMPILER=clang++-19
	cmake --build $(FUZZ_BUILD) -j $(JOBS)

fuzz: fuzz-build
	@failed=; for t in $(FUZZ_TARGETS); do \
	  work=$(FUZZ_BUILD)/corpus-work/$$t; artifacts=$(FUZZ_BUILD)/artifacts/$$t; \
	  scratch=$$(pwd)/$(FUZZ_BUILD)/scratch/$$t; rm -rf $$work $$scratch; \
	  mkdir -p $$work $$artifacts $$scratch && cp tests/fuzz/corpus/$$t/* $$work/ || exit 1; \
	  dict=; [ ! -f tests/fuzz/dict/$$t.dict ] || dict=-dict=tests/fuzz/dict/$$t.dict; \
	  echo "[fuzz] $$t: $(FUZZ_SECONDS) s"; \
	  TMPDIR=$$scratch $(FUZZ_BUILD)/$${t}_fuzzer $$dict -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=$$artifacts/ $(FUZZ_FLAGS) $$work || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "[fuzz] FAILED:$$failed (inputs in $(FUZZ_BUILD)/artifacts/)"; exit 1; fi; \
	echo "[fuzz] every target ran $(FUZZ_SECONDS) s without a crash"

fuzz-regression: fuzz-build
	@failed=; for t in $(FUZZ_TARGETS); do \
	  $(FUZZ_BUILD)/$${t}_fuzzer tests/fuzz/corpus/$$t/* > $(FUZZ_BUILD)/regression-$$t.log 2>&1 \
	    && echo "[fuzz-regression] $$t: $$(ls tests/fuzz/corpus/$$t | wc -l) inputs ok" \
	    || { failed="$$failed $$t"; tail -n 40 $(FUZZ_BUILD)/regression-$$t.log; }; \
	done; \
	if [ -n "$$failed" ]; then echo "[fuzz-regression] FAILED:$$failed"; exit 1; fi

# The whole ctest suite against an AddressSanitizer + UndefinedBehaviorSanitizer
# build of the host code in $(SANITIZE_BUILD) (the translated guest stays
# uninstrumented and comes from ccache). The options, and why the guard-page
# and signal design needs them, are in docs/security.md.
SANITIZE_BUILD ?= build-sanitize
SANITIZE_ASAN_OPTIONS = abort_on_error=0:halt_on_error=1:allow_user_segv_handler=1:detect_stack_use_after_return=0:strict_string_checks=1:check_initialization_order=1:detect_leaks=1
SANITIZE_UBSAN_OPTIONS = print_stacktrace=1:halt_on_error=1

sanitize-build: deps
	@[ -f $(SANITIZE_BUILD)/build.ninja ] || cmake -S . -B $(SANITIZE_BUILD) -G Ninja \
	  -DTERRARIUM_SANITIZE=address,undefined -DTERRARIUM_BUILD_BENCHMARKS=OFF
	cmake --build $(SANITIZE_BUILD) -j $(JOBS)

test-sanitize: sanitize-build
	TERRARIUM_FATAL_REFUSALS=1 ASAN_OPTIONS=$(SANITIZE_ASAN_OPTIONS) UBSAN_OPTIONS=$(SANITIZE_UBSAN_OPTIONS) \
	  ctest --test-dir $(SANITIZE_BUILD) --output-on-failure -j $(JOBS)

clean:
	rm -rf $(BUILD)

format:
	clang-format -i $$(git ls-files '*.cc' '*.h' '*.c' | grep -v '^guest/.*\.c$$')
