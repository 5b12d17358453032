# The two commands of the README: `make run` and `make test`.
SHELL := /bin/bash
BUILD ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= 2
MAKEFLAGS += --no-print-directory

.PHONY: setup build run test unit e2e chaos fuzz bench clean

setup:
	@bash scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) > /dev/null
	@cmake --build $(BUILD) -j$(JOBS)

# A single node with every service (actors/*/) and the gateway on 127.0.0.1:8080,
# data under ./data. Ctrl-C stops it cleanly.
run: build
	@exec $(BUILD)/tools/custodian-node --config configs/single-node.ini $(ARGS)

# The whole suite through ctest (labels: unit, store, e2e).
test: build
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

unit: build
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS) -L unit

e2e: build
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS) -L e2e

clean:
	rm -rf $(BUILD) build-release

# Benchmarks (not part of `make test`): a Release build, then the suite of
# bench/custodian_bench.cpp. Prints the table, writes it into docs/performance.md
# and the medians to bench/out/results.json. BENCH_ARGS=--quick for a short run.
BENCH_ARGS ?=
bench: setup
	@bash scripts/setup.sh --bench
	@cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release > /dev/null
	@cmake --build build-release -j$(JOBS) --target custodian_bench
	@build-release/bench/custodian_bench --work=build-release/bench-work $(BENCH_ARGS)

# More randomized fault schedules than `make test` runs (seeds 1..CHAOS_SCHEDULES).
CHAOS_SCHEDULES ?= 20
# Then the same on the MongoDB backend (three nodes on one FerretDB, shards taken
# over and fenced).
chaos: build
	@cd $(BUILD) && CUSTODIAN_CHAOS_SCHEDULES=$(CHAOS_SCHEDULES) ./tests/chaos_test
	@bash scripts/ferretdb.sh start $(BUILD)/chaos-ferretdb
	@cd $(BUILD) && CUSTODIAN_TEST_FERRETDB_DIR=$$PWD/chaos-ferretdb CUSTODIAN_TEST_STORE=ferretdb \
	  CUSTODIAN_CHAOS_SCHEDULES=$(CHAOS_SCHEDULES) ./tests/chaos_test; rc=$$?; \
	  bash ../scripts/ferretdb.sh stop chaos-ferretdb; exit $$rc

# libFuzzer targets (fuzz/), built with clang in build-fuzz/, each run FUZZ_SECONDS.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS = request envelope config
fuzz:
	@bash scripts/setup.sh --fuzz
	@cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
	  -DCUSTODIAN_FUZZ=ON > /dev/null
	@cmake --build build-fuzz -j$(JOBS) --target $(addprefix fuzz_,$(FUZZ_TARGETS))
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p build-fuzz/corpus/$$t && cp -n fuzz/corpus/$$t/* build-fuzz/corpus/$$t/ 2>/dev/null; \
	  echo "== fuzz_$$t for $(FUZZ_SECONDS) s"; \
	  build-fuzz/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=build-fuzz/crash-$$t- build-fuzz/corpus/$$t 2>&1 \
	    | grep -E "^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::average_exec_per_sec|==[0-9]+==ERROR|SUMMARY)|Done [0-9]+ runs" ; \
	  test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	  echo "corpus: $$(ls build-fuzz/corpus/$$t | wc -l) inputs"; \
	done
