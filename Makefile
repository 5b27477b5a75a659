# The two commands of the README: `make demo` and `make test`. Both install what they need.
SWIFT ?= swift
RELEASE := .build/release/tessera

.PHONY: demo test deps build release validate bench bench-e2e fuzz clean

deps:
	@scripts/deps.sh

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release --product tessera

# The whole pipeline on an embedded Kafka (librdkafka's mock cluster) and a local redis-server.
demo: release
	$(RELEASE) demo

validate: release
	$(RELEASE) validate topologies/*.yaml examples/*/*.yaml

# Unit, property and integration tests (mock Kafka + real redis-server), 30 s of libFuzzer on each
# reader of untrusted input, then the system tests: tessera produce/run against the tansu broker,
# read back with pyarrow and DuckDB, and a smoke run of the benchmark harness
# (`benchmarks/run --scale quick`).
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	SWIFT=$(SWIFT) scripts/fuzz.sh 30
	$(SWIFT) build -c release --product tessera
	$(RELEASE) validate topologies/*.yaml examples/*/*.yaml
	TESSERA_BIN=$(RELEASE) python3 -m pytest -q tests/system

# Micro-benchmarks of the core (ordo-one/benchmark, its own package under benchmarks/).
bench: deps
	cd benchmarks && $(SWIFT) package --allow-writing-to-package-directory benchmark

# Every end-to-end measurement of docs/workload.md in one session (its own tansu and redis-server, the
# peers, charts) into benchmarks/results/<timestamp>-<scale>/:  make bench-e2e [SCALE=quick|hot]
SCALE ?= standard
bench-e2e: release
	TESSERA_BIN=$(RELEASE) benchmarks/run --scale $(SCALE)

# libFuzzer (with AddressSanitizer) on the JSON, Avro and Protobuf event decoders and the topology loader, its own
# package under fuzz/:  make fuzz [FUZZ_SECONDS=60]  (seconds per target)
FUZZ_SECONDS ?= 60
fuzz: deps
	SWIFT=$(SWIFT) scripts/fuzz.sh $(FUZZ_SECONDS)

clean:
	rm -rf .build benchmarks/.build fuzz/.build-fuzz
