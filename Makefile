# StrataLake — a short front for CMake. `make` builds everything, `make test`
# runs every test, `make demo` runs the end-to-end demo. Each installs what is
# missing first (scripts/bootstrap.sh).
JOBS ?= $(shell nproc)
BUILD ?= build
CMAKE_FLAGS ?=

.PHONY: all bootstrap build python test test-cpp test-python demo sanitize fuzz format format-check tidy bench bench-serving clean

all: build

bootstrap:
	@bash scripts/bootstrap.sh

build: bootstrap
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)
	@$(MAKE) --no-print-directory python

# The Python package, installed into .venv (incremental: its CMake build lives in
# build/python). `pip install .` does the same in any environment.
python: bootstrap
	@CMAKE_BUILD_PARALLEL_LEVEL=$(JOBS) .venv/bin/pip install -q --no-build-isolation --no-deps \
	  --disable-pip-version-check .

test: build
	@bash scripts/run_tests.sh $(BUILD)

demo: build
	@bash scripts/demo.sh

# ASan + UBSan build of the core and its unit tests.
sanitize: bootstrap
	@cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSTRATALAKE_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j $(JOBS) --target stratalake_tests
	@ASAN_OPTIONS=detect_leaks=0 build-asan/bin/stratalake_tests

# libFuzzer targets for the log and checkpoint parsers and the feature server's
# request path (HTTP framing and each endpoint's JSON) (clang).
FUZZ_SECONDS ?= 60
fuzz: bootstrap
	@CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DSTRATALAKE_FUZZ=ON -DSTRATALAKE_WERROR=OFF \
	  -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link,address,undefined" >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target fuzz_delta_log fuzz_deletion_vector fuzz_http
	@mkdir -p build-fuzz/corpus build-fuzz/corpus-dv build-fuzz/corpus-http && cp fuzz/corpus/* build-fuzz/corpus/ 2>/dev/null || true
	@cp fuzz/corpus-http/* build-fuzz/corpus-http/
	@ASAN_OPTIONS=detect_leaks=0 build-fuzz/bin/fuzz_delta_log -max_total_time=$(FUZZ_SECONDS) build-fuzz/corpus
	@ASAN_OPTIONS=detect_leaks=0 build-fuzz/bin/fuzz_deletion_vector -max_total_time=$(FUZZ_SECONDS) build-fuzz/corpus-dv
	@ASAN_OPTIONS=detect_leaks=0 build-fuzz/bin/fuzz_http -max_total_time=$(FUZZ_SECONDS) build-fuzz/corpus-http

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
