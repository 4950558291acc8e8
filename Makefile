# The two commands of the quick start: `make up` and `make test`.
CARGO ?= cargo
CONFIG ?= config.toml

# Extra arguments for `scalelab up`, e.g. `make up ARGS=--restart`.
ARGS ?=

.PHONY: up observe test deps up-deps build lint fmt check-config bench clean deb deb-check

# Installs only what building and running the lab needs (cmake, a C toolchain, pkg-config, curl).
up: up-deps
	$(CARGO) build --release --workspace --bins
	./target/release/scalelab up --config $(CONFIG) $(ARGS)

# The lab plus a Prometheus that scrapes it; prints the Prometheus URL and three query links.
observe:
	@bash scripts/install-deps.sh --observe
	$(CARGO) build --release --workspace --bins
	./target/release/scalelab up --observe --config $(CONFIG) $(ARGS)

test: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) test --workspace --locked

# Everything: what `up` needs, plus Prometheus, Redis and the rustfmt/clippy components the tests need.
deps:
	@bash scripts/install-deps.sh --test

up-deps:
	@bash scripts/install-deps.sh

build: up-deps
	$(CARGO) build --release --workspace --bins

fmt:
	$(CARGO) fmt --all

check-config: build
	./target/release/scalelab-proxy --check --config $(CONFIG)

# The daemon as a Debian package (target/debian/scalelab-proxy_*.deb): the binary, the unit,
# /etc/scalelab/config.toml as a conffile, a postinst that creates the scalelab user.
deb: deps
	@command -v cargo-deb >/dev/null 2>&1 || $(CARGO) install cargo-deb --locked
	$(CARGO) deb -p scalelab-proxy --locked

# lintian on the package, then the tests that install it into a scratch root and run it.
deb-check: deb
	bash scripts/check-deb.sh

bench: deps
	bash bench/passthrough.sh

clean:
	$(CARGO) clean
