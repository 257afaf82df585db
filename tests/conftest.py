import pytest

from sim.runner import SIMULATORS


def pytest_addoption(parser):
    parser.addoption("--waves", action="store_true", help="write waveforms of the RTL runs")


@pytest.fixture(params=SIMULATORS)
def simulator(request):
    return request.param


@pytest.fixture
def waves(request):
    import os
    return request.config.getoption("--waves") or os.environ.get("WAVES") == "1"
