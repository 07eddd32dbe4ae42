# Outpost: the two set-up commands are `make run` and `make test` (README).
SHELL := /bin/bash
.PHONY: run test deps build images bench lint fmt clean

## run: install what is missing, build, start the components and a demo
run: deps
	cargo build --release --workspace
	scripts/demo.sh

## test: install what is missing, start test daemons, run all tests + lints
test:
	scripts/run-tests.sh

deps:
	scripts/install-deps.sh

build: deps
	cargo build --release --workspace

## images: build every images/*/image.yaml into target/images
images:
	cargo run --release -p outpost-ocibuild -- build-all images -o target/images

## bench: every benchmark, each printing Outpost beside a same-run baseline
bench: deps
	cargo build --release --workspace
	target/release/bench-runtime 20
	target/release/bench-memlogd
	target/release/bench-pull
	target/release/bench-agent 10 50

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

clean:
	cargo clean
