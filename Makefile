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

## image: the bootable device image from linuxkit/outpost.yml (kernel, initrd,
## squashfs root, GPT disk) in <target>/image; /config from linuxkit/config
.PHONY: image image-test
image: deps
	cargo build --release -p outpost-agent -p memlogd -p outpost-baseos -p outpost-mkimage
	T="$${CARGO_TARGET_DIR:-target}"; "$$T/release/outpost-mkimage" build linuxkit/outpost.yml \
	  -o "$$T/image" --config-dir linuxkit/config --target-dir "$$T"

## image-test: build the image and boot it in QEMU: local config, checkpoint,
## then onboarding to outpost-controller (linuxkit/mkimage/tests/boot.rs), and
## A/B slot selection, fallback and the watchdog (tests/slots.rs), a base OS
## update committed and a bad one rolled back (tests/update.rs), one published
## with outpost-controller base-os publish committed, then one rolled back
## while the controller is unreachable (tests/publish.rs), 3 power cuts
## during an update (tests/cuts.rs); #[ignore]d tests that run only here. KVM where a KVM guest prints on its
## console, else TCG; OUTPOST_QEMU_ACCEL=kvm|tcg forces one.
## The image is built from the debug binaries that `make test` built (same
## code; `make image` ships release ones): a release build of the workspace
## would cost CI about 8 minutes. --workspace keeps cargo's feature set that
## of `make test`, so nothing is rebuilt.
## scripts/image-test.sh runs them two at a time (IMAGE_TEST_LANES=1: one at a time); under TCG each guest has one vCPU.
image-test: deps
	scripts/image-test.sh

## bench: every benchmark, each printing Outpost beside a same-run baseline
bench: deps
	cargo build --release --workspace
	target/release/bench-runtime 20
	target/release/bench-memlogd
	target/release/bench-pull
	target/release/bench-agent 10 50
	target/release/bench-fleet 500
	target/release/bench-net 20

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

clean:
	cargo clean
