# StrataLake — a short front for CMake. `make` builds everything, `make test`
# runs every test, `make demo` runs the end-to-end demo. Each installs what is
# missing first (scripts/bootstrap.sh).
JOBS ?= $(shell nproc)
BUILD ?= build
CMAKE_FLAGS ?=

.PHONY: all bootstrap build python stubs test test-cpp test-python demo sanitize fuzz format format-check tidy bench bench-serving clean

all: build

bootstrap:
	@bash scripts/bootstrap.sh

build: bootstrap
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)
	@$(MAKE) --no-print-directory python

# The Python package, installed into .venv (incremental: its CMake build lives in
# build/python, named here; `pip install .` alone builds in a fresh temporary folder).
python: bootstrap
	@CMAKE_BUILD_PARALLEL_LEVEL=$(JOBS) .venv/bin/pip install -q --no-build-isolation --no-deps \
	  --disable-pip-version-check -C build-dir=build/python .

# python/stratalake/_core.pyi from the installed extension (nanobind's stubgen);
# tests/python/test_stubs.py fails when it is stale.
stubs: python
	@.venv/bin/python -m nanobind.stubgen -q -m stratalake._core -o python/stratalake/_core.pyi

test: build
	@bash scripts/run_tests.sh $(BUILD)

demo: build
	@bash scripts/demo.sh

# ASan + UBSan build of the core and its unit tests.
sanitize: bootstrap
	@cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSTRATALAKE_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j $(JOBS) --target stratalake_tests
	@ASAN_OPTIONS=detect_leaks=0 build-asan/bin/stratalake_tests

# libFuzzer targets for untrusted inputs (clang): the Delta log and checkpoint
# parsers, deletion vectors, YAML definitions and stratalake.yaml, JSON-lines
# ingest, the feature server's HTTP requests. Each runs FUZZ_SECONDS on a copy of
# its corpus (fuzz/corpus/NAME/); new crashes are written to build-fuzz/.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= $(basename $(notdir $(wildcard fuzz/fuzz_*.cc)))
fuzz: bootstrap
	@CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DSTRATALAKE_FUZZ=ON -DSTRATALAKE_WERROR=OFF \
	  -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link,address,undefined" >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target $(FUZZ_TARGETS)
	@set -e; for t in $(FUZZ_TARGETS); do \
	  mkdir -p build-fuzz/corpus/$$t && cp -r fuzz/corpus/$$t/. build-fuzz/corpus/$$t/ 2>/dev/null || true; \
	  (cd build-fuzz && ASAN_OPTIONS=detect_leaks=0 bin/$$t -max_total_time=$(FUZZ_SECONDS) corpus/$$t); \
	done

# The point-in-time benchmark at full scale needs ~10 GB of generated data:
# `make bench PIT_BENCH_ARGS="--scale full"`.
PIT_BENCH_ARGS ?= --scale small
bench: build
	@.venv/bin/python bench/delta_bench.py
	@.venv/bin/python bench/pit_bench.py $(PIT_BENCH_ARGS)
	@.venv/bin/python bench/python_bench.py

# Online serving and materialization beside Feast's feature server (~13 minutes;
# Feast in bench/.venv-feast, see docs/benchmarks.md).
bench-serving: build
	@.venv/bin/python bench/serving_bench.py $(SERVING_BENCH_ARGS)

format:
	@clang-format -i $$(git ls-files '*.h' '*.cc')

format-check:
	@clang-format --dry-run --Werror $$(git ls-files '*.h' '*.cc')

tidy: build
	@clang-tidy -p $(BUILD) --quiet --extra-arg=-Wno-unknown-warning-option $$(git ls-files 'src/*.cc' | grep -v _test.cc)

clean:
	rm -rf build build-asan build-fuzz
