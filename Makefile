# The two commands of the quick start: `make up` and `make test`.
CARGO ?= cargo
CONFIG ?= config.toml

.PHONY: up observe test deps build lint fmt check-config bench clean

up: deps
	$(CARGO) build --release --workspace --bins
	./target/release/scalelab up --config $(CONFIG)

# The lab plus a Prometheus that scrapes it; prints the Prometheus URL and three query links.
observe: deps
	$(CARGO) build --release --workspace --bins
	./target/release/scalelab up --observe --config $(CONFIG)

test: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) test --workspace --locked

deps:
	@bash scripts/install-deps.sh

build: deps
	$(CARGO) build --release --workspace --bins

fmt:
	$(CARGO) fmt --all

check-config: build
	./target/release/scalelab-proxy --check --config $(CONFIG)

bench: deps
	bash bench/passthrough.sh

clean:
	$(CARGO) clean
