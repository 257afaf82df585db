import os

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
