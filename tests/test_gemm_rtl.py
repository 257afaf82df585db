"""The GEMM engine's RTL against NumPy and the cycle model, on both simulators.

Each run loads random operands (after filling the buffers with random
bytes), runs the jobs of sim/systolic/stimulus.py back to back (the next
operands load while a GEMM computes), reads every element of C and compares
it with NumPy's int64 product, and compares the cycle, row and stall
counters with reference/gemm.py's model. A second test resets the engine in
the middle of a GEMM and between GEMMs. A third runs GEMMs with more rows than
the buffers hold (M at 2^11), checked on their cycles and the wrapped result space.
"""

import json

import pytest

from reference.gemm import gemm_cycles, weight_stall_cycles
from sim.runner import run_cocotb
from sim.systolic.stimulus import job_list

# (rows, cols, random jobs). 4x1 is there because the weight-bank hazard
# only binds when C < R.
ARRAYS = [(1, 1, 4), (2, 3, 6), (4, 1, 4), (4, 4, 6), (8, 8, 4), (16, 16, 2)]
SMALL_BUFFERS = {"operand_depth": 256, "result_depth": 256}


#: Arrays whose PEs share a multiplier two by two (``dsp_pairs``); 2x3 leaves its last column unpaired.
PAIRED_ARRAYS = [(2, 3, 6), (8, 8, 4)]


def _params(rows, cols, **extra):
    return {"rows": rows, "cols": cols, **SMALL_BUFFERS, **extra}


@pytest.mark.parametrize("rows,cols,n_random", ARRAYS, ids=[f"{r}x{c}" for r, c, _ in ARRAYS])
def test_gemm_rtl(simulator, rows, cols, n_random, waves, report, functional_coverage):
    _gemm_jobs(simulator, rows, cols, n_random, waves, report, functional_coverage)


@pytest.mark.parametrize("rows,cols,n_random", PAIRED_ARRAYS, ids=[f"{r}x{c}" for r, c, _ in PAIRED_ARRAYS])
def test_gemm_rtl_dsp_pairs(simulator, rows, cols, n_random, waves, report, functional_coverage):
    """The same jobs on an engine whose PEs share a multiplier two by two: every element and cycle the same."""
    _gemm_jobs(simulator, rows, cols, n_random, waves, report, functional_coverage, dsp_pairs=True)


def _gemm_jobs(simulator, rows, cols, n_random, waves, report, functional_coverage, **extra):
    jobs = job_list(rows, cols, n_random, seed=rows * 100 + cols)
    what = f"gemm {rows}x{cols}{' (DSP pairs)' if extra.get('dsp_pairs') else ''}"
    results = run_cocotb(
        "gemm",
        "sim.systolic.tb_gemm",
        simulator=simulator,
        waves=waves,
        params=_params(rows, cols, **extra),
        env={"GEMM_JOBS": json.dumps(jobs)},
        testcase=["gemm_jobs", "reset_between_gemms"],
    )
    done = results["gemm_jobs"]
    assert [j["shape"] + [j["mode"]] for j in done] == [j[:4] for j in jobs]
    for job in done:
        assert job["cycles"] == gemm_cycles(rows, cols, *job["shape"], job["mode"])
    # The last two jobs are identical and long enough to hide the next load:
    # the second starts in the cycle after the first one's last write.
    assert results["idle_between"][-1] == 0
    assert len(results["reset_between_gemms"]) == 2
    functional_coverage(results, f"{what} on {simulator}")
    report(
        f"{what} on {simulator}: {len(done)} GEMMs bit-exact, cycles = model, "
        f"back-to-back idle cycles {results['idle_between'][-1]}"
    )


def test_gemm_long_m(simulator, report):
    """M at 2^11 on a 4x2 array with 256-word buffers (tb_gemm's long_gemms): M + R = 2^11 over three
    column tiles and M = 2^11 over two, where the launcher's cycle counts carry into bit 11; and K =
    258, whose last K tile starts at row 256 and reads rows past K (poison, meeting weights masked to
    zero); and one row over 33 and over 152 tiles, whose weight-stall counts reach 2^5 and pass 2^7."""
    results = run_cocotb(
        "gemm", "sim.systolic.tb_gemm", simulator=simulator, params=_params(4, 2), testcase=["long_gemms"]
    )
    done = results["long_gemms"]
    assert [j["shape"] + [j["mode"]] for j in done] == [
        [2044, 1, 6, "tn"],
        [2048, 1, 4, "tn"],
        [3, 258, 2, "tn"],
        [1, 9, 22, "nn"],
        [1, 13, 76, "nn"],
    ]
    for job in done:
        assert job["cycles"] == gemm_cycles(4, 2, *job["shape"], job["mode"])
    stalls = [weight_stall_cycles(4, 2, 1, 9, 22), weight_stall_cycles(4, 2, 1, 13, 76)]
    assert [j["weight_stall_cycles"] for j in done[-2:]] == stalls == [32, 151]
    report(
        f"gemm 4x2 on {simulator}: M = 2044 and 2048 (wrapped result space), K = 258 exact, "
        "32 and 151 weight stalls, cycles = model"
    )


REGRESS_ARRAYS = [(2, 2), (4, 8), (8, 4), (8, 8), (16, 16), (16, 4)]


@pytest.mark.regress
@pytest.mark.parametrize("rows,cols", REGRESS_ARRAYS, ids=[f"{r}x{c}" for r, c in REGRESS_ARRAYS])
def test_gemm_sweep(simulator, rows, cols, report, functional_coverage):
    """A longer sweep: 30 random shapes per array, every mode, sizes up to 5 tiles a side."""
    jobs = job_list(rows, cols, 30, seed=7 + rows * 100 + cols, max_dim=5 * max(rows, cols))
    # Buffers for shapes up to 5 tiles a side (80x80 results on 16x4 are 1,600 words).
    results = run_cocotb(
        "gemm",
        "sim.systolic.tb_gemm",
        simulator=simulator,
        params={"rows": rows, "cols": cols, "operand_depth": 2048, "result_depth": 2048},
        env={"GEMM_JOBS": json.dumps(jobs)},
        testcase=["gemm_jobs"],
    )
    assert len(results["gemm_jobs"]) == len(jobs)
    # Only gemm_jobs runs: no reset.
    functional_coverage(results, f"gemm sweep {rows}x{cols} on {simulator}", ["reset_state:*"])
    report(f"gemm sweep {rows}x{cols} on {simulator}: {len(jobs)} GEMMs bit-exact, cycles = model")
