# The two commands of the README: `make demo` and `make test`. Both install what they need.
SWIFT ?= swift
RELEASE := .build/release/tessera

.PHONY: demo test deps build release validate bench clean

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
	$(RELEASE) validate topologies/*.yaml

# Unit, property and integration tests (mock Kafka + real redis-server), then the system test:
# tessera produce/run against the tansu broker, read back with pyarrow and DuckDB.
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	$(SWIFT) build -c release --product tessera
	$(RELEASE) validate topologies/*.yaml
	TESSERA_BIN=$(RELEASE) python3 -m pytest -q tests/system

# Micro-benchmarks of the core (ordo-one/benchmark, its own package under benchmarks/).
bench: deps
	cd benchmarks && $(SWIFT) package --allow-writing-to-package-directory benchmark

clean:
	rm -rf .build benchmarks/.build
