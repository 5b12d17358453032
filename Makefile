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

# Benchmarks (not part of `make test`): first (a) on a Release build of the
# seed's four services (billing left out of the build), then the whole suite of
# bench/custodian_bench.cpp on the Release build as shipped. Prints the table,
# writes it into docs/performance.md and the medians to bench/out/results.json.
# BENCH_ARGS=--quick for a short run (SEED4_ARGS=--users=2000 --main=2000 --runs=1 with it).
BENCH_ARGS ?=
SEED4_ARGS ?= --users=20000 --main=20000
bench: setup
	@bash scripts/setup.sh --bench
	@cmake -S . -B build-release-seed4 -DCMAKE_BUILD_TYPE=Release -DCUSTODIAN_SKIP_SERVICES=billing > /dev/null
	@cmake --build build-release-seed4 -j$(JOBS) --target custodian_bench
	@mkdir -p bench/out
	@build-release-seed4/bench/custodian_bench --work=build-release-seed4/bench-work --only-saturate \
	  $(SEED4_ARGS) --saturate-out=bench/out/seed4.json
	@rm -rf build-release-seed4/bench-work
	@cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release > /dev/null
	@cmake --build build-release -j$(JOBS) --target custodian_bench
	@build-release/bench/custodian_bench --work=build-release/bench-work --seed4=bench/out/seed4.json $(BENCH_ARGS)

# More randomized fault schedules than `make test` runs: CHAOS_SCHEDULES seeds on
# the embedded default (RocksDB), then as many on the MongoDB backend (three nodes on one FerretDB,
# shards taken over and fenced); each schedule its own process, every one with a
# double pause (scripts/chaos.sh prints the summary).
CHAOS_SCHEDULES ?= 100
chaos: build
	@bash scripts/chaos.sh $(BUILD) $(CHAOS_SCHEDULES) rocksdb; rc1=$$?; \
	  bash scripts/ferretdb.sh start $(BUILD)/chaos-ferretdb > /dev/null && \
	  bash scripts/chaos.sh $(BUILD) $(CHAOS_SCHEDULES) ferretdb $(BUILD)/chaos-ferretdb; rc2=$$?; \
	  bash scripts/ferretdb.sh stop $(BUILD)/chaos-ferretdb > /dev/null; \
	  test $$rc1 -eq 0 -a $$rc2 -eq 0

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
