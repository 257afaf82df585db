import os
import subprocess

import pytest

from sim.runner import SIMULATORS

_REPORT = []


# The longest tests, longest first (`make test`'s --durations on 2026-12-06; docs/verification.md). Under pytest-xdist
# (`make test`: --dist load --maxschedchunk 1) each worker takes the next test when it frees, so these start
# at once and the short ones fill in at the end. Tests that share a build or a firmware directory (the SoC's
# batch of 8, the training core's build) are spaced apart, so that two workers do not wait on one lock.
SLOW_FIRST = [
    "test_soc.py::test_firmware_on_vexriscv[icarus]",
    "test_formal.py::test_cfu_proved",
    "test_timing.py::test_cfu_place_and_route",
    "test_gemm_cfu_rtl.py::test_gemm_cfu_rtl[icarus]",
    "test_train_rtl.py::test_train_other_geometries[icarus-16x16-dsp-pairs]",
    "test_infer.py::test_small_cnn_and_per_channel_fc_on_the_soc_match_tflm",
    "test_train_rtl.py::test_train_other_geometries[icarus-64-48-32-10]",
    "test_infer.py::test_digits_mlp_on_the_rtl_is_bit_exact_and_predicts_as_sim_cfu[cfu]",
    "test_cli.py::test_concurrent_train_runs_own_results",
    "test_formal.py::test_gemm_group_proved[cycles]",
    "test_gemm_rtl.py::test_gemm_rtl[icarus-16x16]",
    "test_selftest.py::test_board_selftest_8x8",
    "test_gemm_rtl.py::test_gemm_rtl[verilator-8x8]",
    "test_train_rtl.py::test_train_core_robustness[icarus-reset_mid_step]",
    "test_soc.py::test_soc_json_keys",
    "test_train_rtl.py::test_train_bit_exact[icarus-default]",
    "test_gemm_rtl.py::test_gemm_rtl_dsp_pairs[verilator-8x8]",
    "test_train_rtl.py::test_train_core_directed[icarus-wide_gemm]",
    "test_cfu_rtl.py::test_cfu_rtl[icarus]",
    "test_train_rtl.py::test_train_other_geometries[verilator-64-48-32-10]",
    "test_train_rtl.py::test_train_other_geometries[icarus-4x4]",
    "test_mutate.py::test_mutate_cfu_small",
    "test_infer.py::test_small_cnn_and_odd_per_channel_fc_on_the_rtl_match_tflm[gemm]",
    "test_train_rtl.py::test_train_bit_exact[verilator-momentum-mse-leaky]",
    "test_train_rtl.py::test_train_default_network[icarus]",
]


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    where = {id(item): rank.get(item.nodeid.split("/")[-1], len(rank)) for item in items}
    items.sort(key=lambda item: where[id(item)])  # stable: the rest keep their order


def pytest_addoption(parser):
    parser.addoption("--waves", action="store_true", help="write waveforms of the RTL runs")


@pytest.fixture(params=SIMULATORS)
def simulator(request):
    return request.param


@pytest.fixture
def waves(request):
    return request.config.getoption("--waves") or os.environ.get("WAVES") == "1"


@pytest.fixture
def report(request):
    """Lines for the end-of-run summary: what the RTL runs measured. They travel in the test's
    report (``user_properties``), so that under pytest-xdist they reach the controller's summary."""
    return lambda line: request.node.user_properties.append(("measured", line))


def pytest_runtest_logreport(report):
    # Called in the process that prints the summary: the controller under xdist, else this one.
    if report.when == "call":
        _REPORT.extend((report.nodeid, value) for key, value in report.user_properties if key == "measured")


@pytest.fixture
def functional_coverage(request):
    """Check a bench run's functional coverage (``results["functional_coverage"]``, see
    :mod:`sim.common.coverage`): every bin must be hit but those in ``unreached`` (``point:label``, or
    ``point:*`` for a whole point), which the test declares it does not drive (a declared bin that does
    not exist is an error too). The figures
    go to the end-of-run summary through the test's report (``user_properties``), so that they
    reach it from pytest-xdist's workers as well."""

    def check(results, bench, unreached=()):
        cov = results["functional_coverage"]
        bins = {f"{p}:{label}" for p, hits in cov["hits"].items() for label in hits}
        # "point:*" declares every bin of a point not driven.
        whole = {u[:-2] for u in unreached if u.endswith(":*")}
        unreached = {u for u in unreached if not u.endswith(":*")}
        unreached |= {f"{p}:{label}" for p in whole for label in cov["hits"].get(p, ())}
        assert whole <= set(cov["hits"]), f"{bench}: declared unreached points that do not exist: {whole}"
        assert unreached <= bins, f"{bench}: declared unreached bins that do not exist: {sorted(unreached - bins)}"
        missed = [b for b in cov["missed"] if b not in unreached]
        request.node.user_properties.append(
            (
                "functional_coverage",
                {
                    "bench": bench,
                    "bins": cov["bins"],
                    "hit": cov["hit"],
                    "unreached": len(unreached),
                    "missed": missed,
                    "all_bins": sorted(bins),
                    "all_missed": cov["missed"],
                },
            )
        )
        assert not missed, f"{bench}: {len(missed)} required functional bins missed: {', '.join(missed)}"
        return cov

    return check


def pytest_terminal_summary(terminalreporter):
    if _REPORT:
        terminalreporter.section("measured")
        # By test (workers finish in any order); a test's own lines keep their order.
        for _, line in sorted(_REPORT, key=lambda r: r[0]):
            terminalreporter.write_line(line)
    lines, designs = [], {}
    for key in ("passed", "failed"):
        for rep in terminalreporter.stats.get(key, []):
            for name, cov in getattr(rep, "user_properties", ()):
                if name == "functional_coverage" and getattr(rep, "when", "call") == "call":
                    missed = f"; MISSED {', '.join(cov['missed'])}" if cov["missed"] else ""
                    declared = f" ({cov['unreached']} declared not driven by this test)" if cov["unreached"] else ""
                    lines.append(f"{cov['bench']}: {cov['hit']}/{cov['bins']} bins hit{declared}{missed}")
                    # Per design, over its tests: a bin counts as hit if any run hit it.
                    d = designs.setdefault(cov["bench"].split()[0], [set(), set(), 0])
                    d[0] |= set(cov["all_bins"])
                    d[1] |= set(cov["all_bins"]) - set(cov["all_missed"])
                    d[2] += 1
    if lines:
        terminalreporter.section("functional coverage")
        for line in sorted(lines):
            terminalreporter.write_line(line)
        for design, (bins, hit, runs) in sorted(designs.items()):
            missed = sorted(bins - hit)
            tail = f"; never hit: {', '.join(missed)}" if missed else ""
            terminalreporter.write_line(
                f"{design} (all its runs): {len(hit)}/{len(bins)} bins hit over {runs} runs{tail}"
            )


@pytest.fixture
def build_host_c():
    """Build C from the CFU kit for the host, its CFU ops emulated in software
    (``cfu_emu.c``, ``-DCFU_SOFTWARE_DEFINED``), with every warning an error."""

    def build(kit, sources, exe):
        flags = ["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-DCFU_SOFTWARE_DEFINED", f"-I{kit}"]
        subprocess.run(["gcc", *flags, *map(str, sources), "-o", str(exe)], check=True)
        return exe

    return build
