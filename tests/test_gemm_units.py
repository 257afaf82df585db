"""The GEMM engine's components, one at a time, in amaranth.sim (no Verilog
build): each against the spec in reference/ (the operand layout, the tile
schedule, the golden GEMM and the cycle model)."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from hdl.systolic import GemmConfig, GemmEngine, Mode
from hdl.systolic.launcher import TileLauncher
from hdl.systolic.operand_buffer import OperandBuffer
from hdl.systolic.result_buffer import ResultBuffer
from reference.gemm import (
    chain_launches,
    final_writes,
    gemm,
    gemm_cycles,
    row_exit_cycle,
    stored_shapes,
    tile_launches,
    weight_stall_cycles,
)
from reference.gemm_layout import pack_operand, unpack_results


def simulate(dut, bench):
    """Run the async testbench ``bench(ctx)`` on ``dut`` with a clock."""
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


async def write_operand(ctx, write, words, sel, half, base=0):
    """Host-write ``words`` (rows of lanes) from word ``base`` of one half, one a cycle."""
    ctx.set(write.en, 1)
    ctx.set(write.sel, sel)
    ctx.set(write.half, half)
    for i, word in enumerate(words):
        ctx.set(write.addr, base + i)
        ctx.set(write.data, [int(x) for x in word])
        await ctx.tick()
    ctx.set(write.en, 0)


def _config(M, K, N, mode, a_stride, b_stride, **fields):
    """A GemmConfig of that shape and mode, operands of those strides, and any other ``fields``."""
    shape = {"m": M, "k": K, "n": N, "mode": Mode[mode.upper()], "a_stride": a_stride, "b_stride": b_stride}
    return GemmConfig.const({**shape, **fields})


# -- OperandBuffer -----------------------------------------------------------


def test_operand_buffer_reads_rows_and_columns():
    """A row read (starting at a column that is a multiple of R) and a column read
    (starting at such a row) both give R elements of the stored matrix in element
    order, zero where masked; the host port gives the stored words back."""
    R, depth, base, half = 4, 32, 3, 1
    rng = np.random.default_rng(1)
    mat = rng.integers(-128, 128, (9, 6))
    words, stride = pack_operand(mat, R)
    padded = np.pad(mat, ((0, 0), (0, stride * R - mat.shape[1])))
    dut = OperandBuffer(R, depth, select=1, host_read=True)
    reads = []  # (row, col, column, mask, expected vector)
    for r in range(mat.shape[0]):
        for c in range(0, stride * R, R):
            mask = int(rng.integers(0, 1 << R))
            reads.append((r, c, 0, mask, [padded[r, c + t] if mask >> t & 1 else 0 for t in range(R)]))
    for r in range(0, mat.shape[0], R):
        for c in range(mat.shape[1]):
            mask = sum(1 << t for t in range(R) if r + t < mat.shape[0])  # rows past the matrix
            reads.append((r, c, 1, mask, [mat[r + t, c] if mask >> t & 1 else 0 for t in range(R)]))

    async def bench(ctx):
        # Garbage for A (sel 0) where B goes: a write must only reach its own buffer.
        await write_operand(ctx, dut.write, np.full((len(words), R), 77), sel=0, half=half, base=base)
        await write_operand(ctx, dut.write, words, sel=1, half=half, base=base)
        rd = dut.read
        ctx.set(rd.stride, stride)
        await ctx.tick()  # the stride's multiples are registered
        # One read a cycle, back to back; each vector comes two cycles after its read.
        # The requester places the read (docs/systolic.md): element (r, c) of the stored
        # matrix is in lane (r + c) mod R of word base + r·W + c div R of its half.
        in_flight = []
        for read in reads + [None, None]:
            if len(in_flight) == 2 and in_flight[0] is not None:
                got = [ctx.get(dut.vector[t]) for t in range(R)]
                what, want = in_flight[0]
                assert got == want, what
            in_flight = in_flight[-1:]
            if read is None:
                ctx.set(rd.en, 0)
                in_flight.append(None)
            else:
                row, col, column, mask, expected = read
                line = col if column else row
                first = half * depth + base + row * stride + col // R
                for name, value in (("first", first), ("rot", line % R), ("column", column), ("mask", mask)):
                    ctx.set(getattr(rd, name), value)
                ctx.set(rd.en, 1)
                in_flight.append((f"{'column' if column else 'row'} read at ({row}, {col})", expected))
            await ctx.tick()
        ctx.set(rd.en, 0)
        ctx.set(dut.host.en, 1)
        ctx.set(dut.host.sel, 1)
        for i, word in enumerate(words):
            ctx.set(dut.host.addr, half * depth + base + i)
            await ctx.tick()
            assert [ctx.get(dut.host.data[t]) for t in range(R)] == list(word), f"host read of word {i}"

    simulate(dut, bench)


# -- TileLauncher ------------------------------------------------------------


@pytest.mark.parametrize(
    "R,C,M,K,N",
    [(2, 3, 1, 4, 3), (4, 1, 1, 12, 1), (2, 2, 5, 5, 5), (4, 4, 3, 9, 9), (1, 1, 2, 3, 2), (8, 8, 20, 16, 17)],
)
def test_launcher_follows_the_schedule(R, C, M, K, N):
    """Tile T is launched in cycle P_T of reference.gemm.tile_launches, counted from the cycle ``start`` is taken."""
    dut = TileLauncher(R, C, 16, 16)
    expected = tile_launches(R, C, M, K, N)

    async def bench(ctx):
        ctx.set(dut.start.payload, GemmConfig.const({"m": M, "k": K, "n": N}))
        ctx.set(dut.start.valid, 1)
        assert ctx.get(dut.start.ready)
        launched = []
        for cycle in range(expected[-1] + 10):
            await ctx.tick()
            ctx.set(dut.start.valid, 0)
            if ctx.get(dut.launch.valid):
                launched.append(cycle + 1)
        assert launched == expected
        assert ctx.get(dut.busy) and not ctx.get(dut.pending)
        ctx.set(dut.last_written, 1)  # the result buffer's word: the GEMM ends
        assert ctx.get(dut.done)
        await ctx.tick()
        assert not ctx.get(dut.busy) and ctx.get(dut.start.ready)

    simulate(dut, bench)


def test_launcher_ends_an_empty_gemm_at_once():
    dut = TileLauncher(2, 2, 16, 16)

    async def bench(ctx):
        ctx.set(dut.start.payload, GemmConfig.const({"m": 3, "k": 0, "n": 2}))
        ctx.set(dut.start.valid, 1)
        await ctx.tick()
        ctx.set(dut.start.valid, 0)
        assert ctx.get(dut.done) and not ctx.get(dut.launch.valid)
        await ctx.tick()
        assert not ctx.get(dut.busy)

    simulate(dut, bench)


# -- ResultBuffer ------------------------------------------------------------


def test_result_buffer_accumulates_over_k():
    """Rows tagged first_k are written, the others added; the sums arrive latency + 1 cycles after the tag."""
    C, depth, latency, M, tiles, half, base = 3, 8, 4, 3, 3, 1, 2
    rng = np.random.default_rng(2)
    parts = rng.integers(-(1 << 20), 1 << 20, (tiles, M, C))
    dut = ResultBuffer(C, depth, latency)
    tags, sums = {}, {}
    for k in range(tiles):  # tiles back to back, a row a cycle
        for m in range(M):
            t = k * M + m
            tags[t] = {
                "valid": 1,
                "addr": base + m,
                "half": half,
                "first_k": int(k == 0),
                "last": int(k == tiles - 1 and m == M - 1),
            }
            sums[t + latency + 1] = parts[k, m]
    last_tag = max(tags)

    async def bench(ctx):
        for cycle in range(last_tag + latency + 2):
            tag = tags.get(cycle, {"valid": 0, "addr": 0, "half": 0, "first_k": 0, "last": 0})
            for name, value in tag.items():
                ctx.set(getattr(dut.row, name), value)
            ctx.set(dut.sums, [int(x) for x in sums.get(cycle, np.zeros(C, dtype=int))])
            assert ctx.get(dut.last_written) == (cycle == last_tag + latency + 1)
            await ctx.tick()
        ctx.set(dut.read.en, 1)
        ctx.set(dut.read.half, half)
        for m in range(M):
            ctx.set(dut.read.addr, base + m)
            await ctx.tick()
            assert [ctx.get(dut.read.data[j]) for j in range(C)] == list(parts[:, m].sum(axis=0))

    simulate(dut, bench)


# -- the whole engine --------------------------------------------------------


@pytest.mark.parametrize(
    "R,C,M,K,N,mode,pairs",
    [
        (2, 3, 3, 5, 4, "nn", False),
        (2, 3, 1, 2, 7, "nt", False),
        (4, 2, 5, 6, 3, "tn", False),
        (1, 1, 2, 2, 2, "nt", False),
        # One-row tiles a cycle apart add into the same result word back to back.
        (1, 1, 1, 3, 2, "nn", False),
        (2, 1, 1, 6, 1, "tn", False),
        (2, 3, 3, 5, 4, "nn", True),  # an odd C: the last column has no pair
        (4, 4, 5, 7, 6, "nt", True),
        (4, 2, 5, 6, 3, "tn", True),
    ],
)
def test_engine_gemm(R, C, M, K, N, mode, pairs):
    """C equals the golden GEMM bit for bit; the counters equal the cycle model; ``finished`` shows each
    result word's final write, in the cycle ``row_exit_cycle`` gives, and no other. With ``dsp_pairs``
    (two PEs a multiplier) the operands include -128 and 127 runs, the packing's corners."""
    rng = np.random.default_rng(R * 100 + M)
    a_shape, b_shape = stored_shapes(M, K, N, mode)
    a, b = rng.integers(-128, 128, a_shape), rng.integers(-128, 128, b_shape)
    if pairs:
        a.flat[::3], b.flat[::4], b.flat[1::4] = -128, -128, 127
    depth, half = 16, 1
    dut = GemmEngine(R, C, operand_depth=depth, result_depth=depth, dsp_pairs=pairs)
    (a_words, a_stride), (b_words, b_stride) = pack_operand(a, R), pack_operand(b, R)
    n_results = -(-N // C) * M

    async def bench(ctx):
        await write_operand(ctx, dut.write, a_words, sel=0, half=half)
        await write_operand(ctx, dut.write, b_words, sel=1, half=half)
        ctx.set(dut.start.payload, _config(M, K, N, mode, a_stride, b_stride, operand_half=half, result_half=half))
        ctx.set(dut.start.valid, 1)
        assert ctx.get(dut.start.ready)
        cycle, finished = 0, []
        while True:
            await ctx.tick()
            ctx.set(dut.start.valid, 0)
            cycle += 1
            if ctx.get(dut.finished):
                finished.append((cycle, ctx.get(dut.finished_addr)))
            if ctx.get(dut.done):
                break
            assert cycle < 1000
        assert finished == [
            (row_exit_cycle(R, C, M, K, N, i % M, i // M * C), half * depth + i) for i in range(n_results)
        ]
        await ctx.tick()
        counters = dut.counters
        assert cycle == ctx.get(counters.total) == gemm_cycles(R, C, M, K, N, mode)
        assert ctx.get(counters.active) == M * -(-K // R) * -(-N // C)
        assert ctx.get(counters.weight_stall) == weight_stall_cycles(R, C, M, K, N)
        ctx.set(dut.read.en, 1)
        ctx.set(dut.read.half, half)
        got = []
        for i in range(n_results):
            ctx.set(dut.read.addr, i)
            await ctx.tick()
            got.append([ctx.get(dut.read.data[j]) for j in range(C)])
        np.testing.assert_array_equal(unpack_results(got, M, N, C), gemm(a, b, mode))
        assert ctx.get(dut.counters.transfer) == len(a_words) + len(b_words) + n_results

    simulate(dut, bench)


@pytest.mark.parametrize(
    "R,C,jobs",
    [
        # (M, K, N, mode, offer): each GEMM's start held valid from cycle ``offer`` (the first's take is 0)
        (2, 2, [(3, 4, 2, "nn", 0), (1, 2, 4, "tn", 0), (2, 2, 2, "nt", 0)]),  # tests/test_gemm_reference's
        # M below C and R: the weight port and the bank of the tile before last bind, with each tile's own M.
        (4, 2, [(1, 12, 2, "nn", 0), (6, 4, 3, "tn", 0), (2, 8, 2, "nt", 0), (1, 3, 1, "nn", 0)]),
        # Offered late: taken with tiles still streaming; taken once idle; taken when done would fall.
        (4, 4, [(5, 9, 7, "nt", 0), (9, 4, 4, "nn", 12), (3, 5, 6, "tn", 80), (2, 4, 4, "nn", 96)]),
        (1, 1, [(2, 3, 2, "tn", 0), (1, 1, 1, "nn", 0), (3, 2, 1, "nt", 0)]),
    ],
)
def test_engine_chains_gemms(R, C, jobs):
    """An engine built with ``chain`` takes each GEMM in the cycle chain_launches gives, writes each
    one's final words in the cycles final_writes gives (no other ``finished`` write), ends (``done``)
    only when no GEMM follows, and every GEMM's C equals the golden GEMM bit for bit."""
    rng = np.random.default_rng(R * 10 + len(jobs))
    depth = 128
    dut = GemmEngine(R, C, operand_depth=depth, result_depth=depth, chain=True)
    cfgs, operands, a_at, b_at, r_at = [], [], 0, 0, 0
    for M, K, N, mode, _ in jobs:
        a_shape, b_shape = stored_shapes(M, K, N, mode)
        a, b = rng.integers(-128, 128, a_shape), rng.integers(-128, 128, b_shape)
        (a_words, a_stride), (b_words, b_stride) = pack_operand(a, R), pack_operand(b, R)
        operands.append((a, b, a_words, b_words, r_at))
        cfgs.append(_config(M, K, N, mode, a_stride, b_stride, a_base=a_at, b_base=b_at, result_base=r_at))
        a_at, b_at, r_at = a_at + len(a_words), b_at + len(b_words), r_at + -(-N // C) * M
    model = chain_launches(R, C, [(M, K, N, offer) for M, K, N, _, offer in jobs])
    want_finished = [
        (cycle, base + i)
        for (M, K, N, _, _), (_, launches, _), (*_, base) in zip(jobs, model, operands)
        for i, cycle in enumerate(final_writes(R, C, M, K, N, launches))
    ]
    want_done = [last for g, (_, _, last) in enumerate(model) if g + 1 == len(jobs) or model[g + 1][0] > last]

    async def bench(ctx):
        a_base = b_base = 0
        for _, _, a_words, b_words, _ in operands:
            await write_operand(ctx, dut.write, a_words, sel=0, half=0, base=a_base)
            await write_operand(ctx, dut.write, b_words, sel=1, half=0, base=b_base)
            a_base, b_base = a_base + len(a_words), b_base + len(b_words)
        cycle, g, takes, finished, done = 0, 0, [], [], []
        while not done or done[-1] != model[-1][2]:
            offered = g < len(jobs) and cycle >= jobs[g][4]
            ctx.set(dut.start.valid, offered)
            if offered:
                ctx.set(dut.start.payload, cfgs[g])
            taken = offered and ctx.get(dut.start.ready)
            if taken:
                takes.append(cycle)
            if ctx.get(dut.finished):
                finished.append((cycle, ctx.get(dut.finished_addr)))
            if ctx.get(dut.done):
                done.append(cycle)
            await ctx.tick()
            g, cycle = g + taken, cycle + 1
            assert cycle < 2000, (takes, finished, done, [t for t, _, _ in model], want_finished, want_done)
        ctx.set(dut.start.valid, 0)
        assert takes == [take for take, _, _ in model]
        assert finished == want_finished
        assert done == want_done
        assert ctx.get(dut.counters.total) == model[-1][2] - model[-1][0]
        await ctx.tick()
        assert not ctx.get(dut.busy) and not ctx.get(dut.queued)
        ctx.set(dut.read.en, 1)
        for (M, _K, N, mode, _), (a, b, _, _, base) in zip(jobs, operands):
            got = []
            for i in range(-(-N // C) * M):
                ctx.set(dut.read.addr, base + i)
                await ctx.tick()
                got.append([ctx.get(dut.read.data[j]) for j in range(C)])
            np.testing.assert_array_equal(unpack_results(got, M, N, C), gemm(a, b, mode))

    simulate(dut, bench)


# -- the self-test that drives it --------------------------------------------


@pytest.mark.parametrize("stuck_pe", [None, (1, 0)])
def test_selftest_drives_the_engine(stuck_pe):
    """GemmSelfTest on a 2x2 engine passes with the modelled cycles, and fails on a stuck PE."""
    from hdl.selftest import GemmSelfTest
    from reference.selftest_vectors import default_vectors, expected_cycles

    dut = GemmSelfTest(2, 2, default_vectors(2, 2), stuck_pe=stuck_pe)

    async def bench(ctx):
        for _ in range(2000):
            await ctx.tick()
            if ctx.get(dut.done):
                break
        assert ctx.get(dut.done)
        if stuck_pe is None:
            assert ctx.get(dut.passed) and not ctx.get(dut.errors)
            assert ctx.get(dut.cycles) == expected_cycles(2, 2)
        else:
            assert ctx.get(dut.failed) and ctx.get(dut.errors)

    simulate(dut, bench)
