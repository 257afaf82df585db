import os
import subprocess

import pytest

from sim.runner import SIMULATORS

_REPORT = []


def pytest_addoption(parser):
    parser.addoption("--waves", action="store_true", help="write waveforms of the RTL runs")


@pytest.fixture(params=SIMULATORS)
def simulator(request):
    return request.param


@pytest.fixture
def waves(request):
    return request.config.getoption("--waves") or os.environ.get("WAVES") == "1"


@pytest.fixture
def report():
    """Lines for the end-of-run summary: what the RTL runs measured."""
    return _REPORT.append


def pytest_terminal_summary(terminalreporter):
    if _REPORT:
        terminalreporter.section("measured")
        for line in _REPORT:
            terminalreporter.write_line(line)


@pytest.fixture
def build_host_c():
    """Build C from the CFU kit for the host, its CFU ops emulated in software
    (``cfu_emu.c``, ``-DCFU_SOFTWARE_DEFINED``), with every warning an error."""

    def build(kit, sources, exe):
        flags = ["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-DCFU_SOFTWARE_DEFINED", f"-I{kit}"]
        subprocess.run(["gcc", *flags, *map(str, sources), "-o", str(exe)], check=True)
        return exe

    return build
