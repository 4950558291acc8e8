# The two commands of the quick start: `make up` and `make test`.
CARGO ?= cargo
CONFIG ?= config.toml

.PHONY: up observe test deps build lint fmt check-config bench clean deb deb-check

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
