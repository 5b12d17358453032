# The two commands of the README: `make run` and `make test`.
BUILD ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= 2
MAKEFLAGS += --no-print-directory

.PHONY: setup build run test unit e2e chaos clean

setup:
	@bash scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) > /dev/null
	@cmake --build $(BUILD) -j$(JOBS)

# A single node with all four services and the gateway on 127.0.0.1:8080,
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
	rm -rf $(BUILD)

# More randomized fault schedules than `make test` runs (seeds 1..CHAOS_SCHEDULES).
CHAOS_SCHEDULES ?= 20
chaos: build
	@cd $(BUILD) && CUSTODIAN_CHAOS_SCHEDULES=$(CHAOS_SCHEDULES) ./tests/chaos_test
