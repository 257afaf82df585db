"""cocotb tests of ``GemmEngine`` against NumPy and the cycle model.

Environment (set by :func:`sim.runner.run_cocotb`): ``DESIGN_PARAMS`` (the
engine's parameters), ``GEMM_JOBS`` (JSON list of [M, K, N, mode, kind]
with kind ``random`` or ``extreme``), ``STIMULUS_SEED``; ``GEMM_LONG_JOBS`` (JSON list of [M, K, N, mode]
for :func:`long_gemms`, default :func:`long_jobs`).
"""

import json
import os
import time

import cocotb
import numpy as np
from cocotb.triggers import Event, ReadOnly, SimTimeoutError, with_timeout

from hdl.systolic import GemmEngine
from reference.gemm import MODES, gemm, gemm_cycles, row_exit_cycle, stored_shapes, weight_stall_cycles
from reference.gemm_layout import operand_words, pack_operand, pack_results, result_words
from sim.common import PERIOD_NS, edge
from sim.common.coverage import Coverage, shape_bin, shape_bins
from sim.results import design_params, env_int, errors_recorded, record, record_mismatch
from sim.systolic.driver import GemmDriver, GemmJob

_coverage = []


def coverage(engine):
    """The run's functional coverage (one per process): each GEMM checked, M and K against the array's
    rows R and N against its columns C (:func:`sim.common.coverage.shape_bin`), its mode and operands, how
    it started (back to back with the one before, or after idle cycles), and the engine's state at each
    reset."""
    if not _coverage:
        cov = Coverage("gemm")
        cov.point("shape_M", shape_bins(engine.rows))
        cov.point("shape_K", shape_bins(engine.rows))
        cov.point("shape_N", shape_bins(engine.cols))
        cov.point("mode", MODES)
        cov.point("operands", ["random", "all -128"])
        cov.point("start", ["back to back", "after idle"])
        cov.point("reset_state", ["idle", "GEMM running"])
        _coverage.append(cov)
    return _coverage[0]


def _sample_job(engine, job, idle_before):
    cov = coverage(engine)
    cov.sample("shape_M", shape_bin(job.M, engine.rows))
    cov.sample("shape_K", shape_bin(job.K, engine.rows))
    cov.sample("shape_N", shape_bin(job.N, engine.cols))
    cov.sample("mode", job.mode)
    cov.sample("operands", "all -128" if np.all(job.a == -128) and np.all(job.b == -128) else "random")
    if idle_before is not None:
        cov.sample("start", "back to back" if idle_before == 0 else "after idle")


async def _reset(drv, engine):
    """A reset, its state sampled (``busy`` before it)."""
    coverage(engine).sample("reset_state", "GEMM running" if int(drv.dut.busy.value) else "idle")
    await drv.reset()


def _operands(rng, M, K, N, mode, kind):
    a_shape, b_shape = stored_shapes(M, K, N, mode)
    if kind == "extreme":  # -128 * -128 summed over the whole of K
        return np.full(a_shape, -128), np.full(b_shape, -128)
    return rng.integers(-128, 128, a_shape), rng.integers(-128, 128, b_shape)


def first_mismatch(engine, job, got, started_at):
    """None if ``got`` equals NumPy's product everywhere, else a report of the first difference."""
    R, C = engine.rows, engine.cols
    expected = gemm(job.a, job.b, job.mode)
    assert np.all(np.abs(expected) < 1 << 31), "the reference overflows int32: shape too large"
    bad = np.argwhere(got != expected)
    if not len(bad):
        return None
    m, n = (int(v) for v in bad[0])
    cycle = row_exit_cycle(R, C, job.M, job.K, job.N, m, n)
    return (
        f"{job.M}x{job.K}x{job.N} {job.mode} on {R}x{C}: C[{m}, {n}] expected {expected[m, n]}, "
        f"got {got[m, n]}; it left the array in cycle {cycle} after start "
        f"(cycle {started_at + cycle} of the run); {len(bad)} elements differ"
    )


def check_job(engine, job, got, counters, started_at):
    R, C = engine.rows, engine.cols
    mismatch = first_mismatch(engine, job, got, started_at)
    assert mismatch is None, mismatch
    model = gemm_cycles(R, C, job.M, job.K, job.N, job.mode)
    assert counters["cycles"] == model, (
        f"{job.M}x{job.K}x{job.N} {job.mode}: RTL {counters['cycles']} cycles, model {model}"
    )
    tiles = -(-job.K // R) * -(-job.N // C)
    assert counters["active_cycles"] == job.M * tiles
    assert counters["weight_stall_cycles"] == weight_stall_cycles(R, C, job.M, job.K, job.N)


async def run_jobs(drv, engine, jobs, *, reset_between=False):
    """Run jobs as a host would, three coroutines at once: a feeder loads job
    i+1 into the free halves and presents its start while job i computes (so
    GEMMs run back to back), a monitor records each GEMM's counters as it
    ends, and a reader reads job i's results while i+1 computes. A job's
    halves are reused only once the job two before it has been read.
    With ``reset_between``, jobs run one at a time with a reset between."""
    if reset_between:
        results = []
        for i, job in enumerate(jobs):
            if i:
                await _reset(drv, engine)
            await drv.load(job)
            taken = await drv.issue(job)
            counters = await drv.wait_done()
            check_job(engine, job, await drv.read_results(job), counters, taken)
            _sample_job(engine, job, None if not i else 1)
            results.append(
                {
                    "shape": [job.M, job.K, job.N],
                    "mode": job.mode,
                    "started_at": taken,
                    "ended_at": taken + counters["cycles"],
                    **counters,
                }
            )
        return results, 0.0

    taken = [None] * len(jobs)
    ended = [Event() for _ in jobs]
    counters = [None] * len(jobs)
    read = [Event() for _ in jobs]

    async def feeder():
        for i, job in enumerate(jobs):
            await drv.load(job)
            if i >= 2:
                await read[i - 2].wait()
            taken[i] = await drv.issue(job)

    async def monitor():
        for i in range(len(jobs)):
            counters[i] = await drv.wait_done()
            ended[i].set()

    feed = cocotb.start_soon(feeder())
    t0 = time.perf_counter()
    watch = cocotb.start_soon(monitor())
    results = []
    for i, job in enumerate(jobs):
        await ended[i].wait()
        got = await drv.read_results(job)
        read[i].set()
        check_job(engine, job, got, counters[i], taken[i])
        _sample_job(engine, job, taken[i] - taken[i - 1] - counters[i - 1]["cycles"] - 1 if i else None)
        results.append(
            {
                "shape": [job.M, job.K, job.N],
                "mode": job.mode,
                "started_at": taken[i],
                "ended_at": taken[i] + counters[i]["cycles"],
                **counters[i],
            }
        )
    await feed
    await watch
    return results, time.perf_counter() - t0


def _jobs_from_env(rng):
    spec = json.loads(os.environ.get("GEMM_JOBS", '[[5, 11, 7, "nn", "random"]]'))
    return [GemmJob(*_operands(rng, M, K, N, mode, kind), mode, i % 2) for i, (M, K, N, mode, kind) in enumerate(spec)]


def _place(jobs, engine, rng):
    """Put each job's A, B and C at random first words of their halves (where they fit, else word 0), so
    that every bit of the bases' adds is used (the mutation sweep found them unused with bases of 0)."""
    R, C = engine.rows, engine.cols
    for job in jobs:
        sizes = (
            ("a_base", operand_words(*job.a.shape, R), engine.operand_depth),
            ("b_base", operand_words(*job.b.shape, R), engine.operand_depth),
            ("result_base", result_words(job.M, job.N, C), engine.result_depth),
        )
        for name, words, depth in sizes:
            setattr(job, name, int(rng.integers(0, depth - words + 1)) if words <= depth else 0)
    return jobs


@cocotb.test(timeout_time=500, timeout_unit="ms")
async def gemm_jobs(dut):
    """Every job's C equals NumPy bit for bit; its counters equal the cycle model. Each job's operands and
    result start at random words of their halves."""
    seed = env_int("STIMULUS_SEED", cocotb.RANDOM_SEED)
    rng = np.random.default_rng(seed)
    engine = GemmEngine.geometry(**design_params())
    jobs = _place(_jobs_from_env(rng), engine, np.random.default_rng(seed + 5))
    with errors_recorded():
        drv = GemmDriver(dut, engine)
        await drv.start()
        await drv.poison(rng)
        results, wall = await run_jobs(drv, engine, jobs)
    coverage(engine).record()
    record(
        gemm_jobs=results,
        compute_wall_seconds=wall,
        # Idle cycles between one GEMM's last write and the next one's start.
        idle_between=[b["started_at"] - a["ended_at"] - 1 for a, b in zip(results, results[1:])],
    )


@cocotb.test(timeout_time=500, timeout_unit="ms")
async def reset_between_gemms(dut):
    """A reset between GEMMs (and one in the middle of a GEMM) leaves the next one exact; then cnt_clear
    zeroes the transfer count."""
    rng = np.random.default_rng(env_int("STIMULUS_SEED", cocotb.RANDOM_SEED) + 1)
    engine = GemmEngine.geometry(**design_params())
    R, C = engine.rows, engine.cols
    jobs = [
        GemmJob(*_operands(rng, M, K, N, mode, "random"), mode, 0)
        for M, K, N, mode in [(R + 1, 2 * R + 1, C + 2, "nn"), (3, R, 2 * C, "tn")]
    ]
    with errors_recorded():
        # Interrupt a GEMM halfway with a reset, then run two clean ones with a reset between.
        drv = GemmDriver(dut, engine)
        await drv.start()
        await drv.poison(rng)
        await drv.load(jobs[0])
        await drv.issue(jobs[0])
        for _ in range(gemm_cycles(R, C, jobs[0].M, jobs[0].K, jobs[0].N) // 2):
            await edge(dut.clk)
        await _reset(drv, engine)
        assert int(dut.busy.value) == 0, "busy after reset"
        results, _ = await run_jobs(drv, engine, jobs, reset_between=True)
        # cnt_clear restarts the transfer count (found untested by make coverage).
        assert (await drv.counters())["transfer_cycles"] > 0
        dut.cnt_clear.value = 1
        await edge(dut.clk)
        dut.cnt_clear.value = 0
        await edge(dut.clk)
        await ReadOnly()
        cleared = (await drv.counters())["transfer_cycles"]
        assert cleared == 0, f"transfer count {cleared} after cnt_clear"
    coverage(engine).record()
    record(reset_between_gemms=results)


def long_jobs(R, C):
    """:func:`long_gemms`' default jobs, M at the 11-bit mark: ``M + R = 2^11`` over three column tiles
    (tile 2 waits on both of the launcher's rules, ``max(M, C)`` cycles after tile 1 and ``M + R - 1``
    after tile 0), and ``M = 2^11`` over two. K = 1 and ``tn``: A is stored 1 x M, ``ceil(M / R)``
    words, which fits the 2·depth-word space of a 256-word buffer on a 4-row array. Then K past the
    8-bit mark, ``K = 2^8 + R/2`` in ``tn``: A is stored K x 3, a word a row, so the last K tile
    (``k0 = 2^8``) reads rows past K, which hold the poison and meet weights B's mask has made zero.
    Last, one row over 3 x 11 and over 4 x 38 tiles (``K = 2R + 1``, ``N = 11C``; ``K = 3R + 1``, ``N =
    38C``): a launch every ``max(1, C)`` cycles but a bank free only ``R`` cycles after the tile before
    last, so the weight-stall counter reaches 2^5 and passes 2^7 (32 and 151 cycles on 4x2; every other
    job stays under 2^5). Both, since a fault that toggles a high bit of the count each time bit 5 is
    set shows only in a count with an odd number of such steps (32 has one, 151 has 64)."""
    return [
        [2048 - R, 1, 3 * C, "tn"],
        [2048, 1, 2 * C, "tn"],
        [3, 256 + max(R // 2, 1), C, "tn"],
        [1, 2 * R + 1, 11 * C, "nn"],
        [1, 3 * R + 1, 38 * C, "nn"],
    ]


def wrapped_results(c, C, space):
    """What a result space of ``space`` words holds after a GEMM with one K tile whose C needs more
    words than that: the words of C (``docs/systolic.md``: ``C[m, n]`` in lane ``n mod C`` of word
    ``(n div C)·M + m``; lanes past N are 0, their weights being masked to zero), each at its address
    modulo the space (a buffer is one space of 2·depth words), in the order the engine writes them
    (tiles n-major, a tile's rows in order): a later word overwrites an earlier one."""
    words = pack_results(c, C)
    assert len(words) >= space, "some words of the space would not be written"
    out = np.zeros((space, C), dtype=np.int64)
    for i, w in enumerate(words):
        out[i % space] = w
    return out


@cocotb.test(timeout_time=500, timeout_unit="ms")
async def long_gemms(dut):
    """GEMMs with more rows than the buffers hold (M past 2^11): A fills both halves of its buffer and
    C wraps round its space; and one with K past 2^8, whose operands fill both halves. One at a time:
    the GEMM ends within the cycle model's count plus 100, its counters equal the model, and the whole
    result space equals the model's last word written at each address (its own words, if fewer)."""
    rng = np.random.default_rng(env_int("STIMULUS_SEED", cocotb.RANDOM_SEED) + 2)
    engine = GemmEngine.geometry(**design_params())
    R, C = engine.rows, engine.cols
    spec = json.loads(os.environ.get("GEMM_LONG_JOBS", "null")) or long_jobs(R, C)
    results = []
    with errors_recorded():
        drv = GemmDriver(dut, engine)
        await drv.start()
        await drv.poison(rng)
        for M, K, N, mode in spec:
            # The wrapped result space is modelled without sums over K: one K tile, or no wrap.
            assert K <= R or M * -(-N // C) <= 2 * engine.result_depth, "sums over K in a wrapped result space"
            a, b = _operands(rng, M, K, N, mode, "random")
            job = GemmJob(a, b, mode, 0)
            (a_words, job.a_stride), (b_words, job.b_stride) = pack_operand(a, R), pack_operand(b, R)
            await drv.write_space(0, a_words)
            await drv.write_space(1, b_words)
            taken = await drv.issue(job)
            model = gemm_cycles(R, C, M, K, N, mode)
            try:
                counters = await with_timeout(drv.wait_done(), (model + 100) * PERIOD_NS, "ns")
            except SimTimeoutError:
                raise AssertionError(
                    f"{M}x{K}x{N} {mode}: no end within {model + 100} cycles (model {model})"
                ) from None
            assert counters["cycles"] == model, f"{M}x{K}x{N} {mode}: RTL {counters['cycles']} cycles, model {model}"
            assert counters["active_cycles"] == M * -(-K // R) * -(-N // C)
            assert counters["weight_stall_cycles"] == weight_stall_cycles(R, C, M, K, N)
            got, c = await drv.read_space(), gemm(a, b, mode)
            if M * -(-N // C) < len(got):  # no wrap: its own words, from word 0
                expected = pack_results(c, C)
                got = got[: len(expected)]
            else:
                expected = wrapped_results(c, C, len(got))
            bad = np.argwhere(got != expected)
            assert not len(bad), (
                f"{M}x{K}x{N} {mode}: result word {bad[0][0]} lane {bad[0][1]} is {got[tuple(bad[0])]}, "
                f"expected {expected[tuple(bad[0])]}; {len(bad)} lanes differ"
            )
            results.append({"shape": [M, K, N], "mode": mode, "started_at": taken, **counters})
    record(long_gemms=results)


@cocotb.test(timeout_time=5000, timeout_unit="ms")
async def gemm_cli(dut):
    """One GEMM for ``python -m sim gemm``: load, compute, read; report, don't assert."""
    seed = env_int("STIMULUS_SEED", 0)
    rng = np.random.default_rng(seed)
    (job,) = _jobs_from_env(rng)
    engine = GemmEngine.geometry(**design_params())
    drv = GemmDriver(dut, engine)
    await drv.start()
    await drv.load(job)
    taken = await drv.issue(job)
    t0 = time.perf_counter()
    counters = await drv.wait_done()
    wall = time.perf_counter() - t0
    got = await drv.read_results(job)
    transfer = (await drv.counters())["transfer_cycles"]  # every read has been counted
    mismatch = first_mismatch(engine, job, got, taken)
    record(
        gemm_cli={
            **counters,
            "transfer_cycles": transfer,
            "bit_exact": mismatch is None,
            "error": mismatch,
            "compute_wall_seconds": wall,
            "seed": seed,
            "c_sum": int(np.sum(got, dtype=np.int64)),
        }
    )
    if mismatch:
        record_mismatch("gemm", "gemm_cli", mismatch)
