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

demo: release
	$(RELEASE) demo

validate: release
	$(RELEASE) validate topologies/*.yaml

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	$(SWIFT) build -c release --product tessera
	$(RELEASE) validate topologies/*.yaml

bench: deps
	cd benchmarks && $(SWIFT) package --allow-writing-to-package-directory benchmark

clean:
	rm -rf .build benchmarks/.build
