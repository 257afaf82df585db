"""The combined GEMM CFU's RTL against the golden model, on Icarus and Verilator.

Each run is sim/cfu/tb_gemm_cfu.py's cocotb tests: constrained-random GEMM
scenarios mixed with MAC4-family ops (gaps, back-pressure, resets anywhere;
then back to back with the latencies checked); odd shapes in all modes read
back whole as READ32 and READ8; double buffering with the counters; control
ops and refusals; resets mid-GEMM, mid-transfer, while a READ or a WAIT
waits; one instruction a cycle. Every response is compared bit for bit
inside the testbench with the model at the op's accept cycle; a mismatch
fails the cocotb test and so this one. A deliberately wrong model (one bit
of every READ32, READ8 or GSET answer inverted) must fail.
"""

import pytest

from reference.cfu_gemm import CombinedCfuModel
from reference.cfu_gemm_isa import GemmCfuGeometry
from sim.cfu.gemm_stimulus import GemmStream
from sim.runner import Mismatch, run_cocotb

OPS = 4000
SEED = 1


def test_streams_agree_with_definitions():
    """The streams' definition checks hold on the golden model without time (no simulator):
    the stimulus and the model agree before either meets the RTL."""
    for geometry in (GemmCfuGeometry(), GemmCfuGeometry(cols=4, operand_depth=64, result_depth=64, channels=4)):
        for seed in range(4):
            s = GemmStream(geometry, seed, max_dim=16)
            s.random(3000)
            model = CombinedCfuModel(geometry)
            answers = [model.step(*c) for c in s.commands]
            bad = [(i, what, want, answers[i]) for i, want, what in s.checks if answers[i] != want]
            assert not bad, f"{geometry} seed {seed}: {len(bad)} differ, first {bad[0]}"
            assert len(s.checks) > 1000 and len(s.jobs) > 5


def _check(results, ops):
    stream = results["random_stream"]
    assert stream["accepted"] == ops
    assert stream["checked"] + stream["skipped_undefined"] + stream["dropped_by_reset"] == ops
    assert stream["gemms_started"] > 5 and stream["definition_checks"] > 0
    assert stream["read32_checked"] > 0 and stream["read8_checked"] > 0
    assert all(r["ops_per_cycle"] == 1.0 for r in results["throughput"].values())
    assert all(run["overlap"] > 0 for run in results["double_buffered"]["runs"])
    return stream


def test_gemm_cfu_rtl(simulator, waves, report, functional_coverage):
    results = run_cocotb(
        "gemm_cfu",
        "sim.cfu.tb_gemm_cfu",
        simulator=simulator,
        waves=waves,
        seed=SEED,
        env={"GEMM_CFU_OPS": str(OPS), "STIMULUS_SEED": str(SEED)},
    )
    stream = _check(results, OPS)
    functional_coverage(results, f"gemm_cfu on {simulator}")
    odd = results["odd_shapes"]
    report(
        f"gemm_cfu on {simulator}: {stream['checked']} of {OPS} random commands checked "
        f"({stream['gemms_started']} GEMMs, {stream['skipped_undefined']} undefined reads skipped, "
        f"{stream['dropped_by_reset']} dropped by {len(stream['resets'])} resets); odd shapes: "
        f"{odd['jobs']} GEMMs, {odd['read32_checked'] + odd['read8_checked']} result words"
    )
    if waves:
        report(f"gemm_cfu on {simulator}: waves in {results['waves']}")


@pytest.mark.parametrize("kind,bit", [("READ32", 7), ("READ8", 0), ("GSET", 31)])
def test_wrong_model_bit_fails(kind, bit):
    """The bench catches one wrong bit: a model whose answers to one kind of op have one bit inverted."""
    with pytest.raises(Mismatch) as e:
        run_cocotb(
            "gemm_cfu",
            "sim.cfu.tb_gemm_cfu",
            simulator="icarus",
            testcase="odd_shapes",
            env={"GEMM_CFU_FLIP": f"{kind}:{bit}"},
            quiet=True,
        )
    m = e.value.mismatch
    assert m["design"] == "gemm_cfu" and f" {kind} " in m["where"], m
    expected, got = (int(m[k].split()[0], 16) for k in ("expected", "got"))
    assert expected ^ got == 1 << bit, m


# (params, random ops): other array widths and small buffers, where addresses wrap and channels alias.
REGRESS = [
    ({}, 30_000),
    ({"cols": 4, "operand_depth": 64, "result_depth": 64, "channels": 4}, 20_000),
    ({"cols": 16, "operand_depth": 256, "result_depth": 128, "channels": 32}, 20_000),
]


@pytest.mark.regress
@pytest.mark.parametrize("params,ops", REGRESS, ids=["default", "4cols-small", "16cols"])
def test_gemm_cfu_sweep(simulator, params, ops, report, functional_coverage):
    """Longer random runs on three geometries, two seeds each."""
    for seed in (2, 3):
        results = run_cocotb(
            "gemm_cfu",
            "sim.cfu.tb_gemm_cfu",
            simulator=simulator,
            params=params,
            seed=seed,
            env={"GEMM_CFU_OPS": str(ops), "GEMM_CFU_MAX_DIM": "40", "STIMULUS_SEED": str(seed)},
        )
        stream = _check(results, ops)
        functional_coverage(results, f"gemm_cfu {params or 'default'} seed {seed} on {simulator}")
        report(
            f"gemm_cfu {params or 'default'} seed {seed} on {simulator}: {stream['checked']} commands checked, "
            f"{stream['gemms_started']} GEMMs"
        )
