"""Host-side driver of the GEMM engine in cocotb, on :mod:`sim.common`.

Python acts only while data moves: it writes operand words and reads result
words one per cycle, and otherwise waits for ``busy`` to fall, so the
simulator runs the compute phase at its own speed. Inputs change at falling
edges (:mod:`sim.common`'s convention).

The buffer layouts are :mod:`reference.gemm_layout`'s (``docs/systolic.md``);
the words are packed as the engine's ports declare them.
"""

import numpy as np
from amaranth.lib import data
from cocotb.triggers import FallingEdge, ReadOnly

from hdl.systolic import GemmConfig, GemmCounters, Mode
from reference.gemm import logical_operands
from reference.gemm_layout import operand_words, pack_operand, result_words, unpack_results
from sim.common import (
    StreamSource,
    cycle_now,
    edge,
    pack_value,
    pack_words,
    read_words,
    reset,
    start_clock,
    unpack_words,
    write_words,
)

__all__ = ["GemmDriver", "GemmJob"]


class GemmJob:
    """One GEMM: operands as stored, the mode, and where it lives on chip."""

    def __init__(self, a, b, mode, half, a_base=0, b_base=0, result_base=0):
        """``a_base``, ``b_base``, ``result_base``: each operand's and the result's first word in its half."""
        self.a, self.b, self.mode, self.half = np.asarray(a), np.asarray(b), mode, half
        self.a_base, self.b_base, self.result_base = a_base, b_base, result_base
        a_log, b_log = logical_operands(self.a, self.b, mode)
        self.M, self.K = a_log.shape
        self.N = b_log.shape[1]
        if b_log.shape[0] != self.K:
            raise ValueError(f"inner dimensions differ: A' is {a_log.shape}, B' is {b_log.shape}")


class GemmDriver:
    def __init__(self, dut, engine):
        """``engine``: :meth:`GemmEngine.geometry` of the design under test."""
        self.dut, self.clk = dut, dut.clk
        self.R, self.C = engine.rows, engine.cols
        self.operand_depth, self.result_depth = engine.operand_depth, engine.result_depth
        self.operand_word, self.result_word = engine.operand_word, engine.result_word
        self.inputs = [
            dut.start__valid,
            dut.start__payload,
            dut.cnt_clear,
            dut.write__en,
            dut.write__sel,
            dut.write__both,
            dut.write__half,
            dut.write__addr,
            dut.write__data,
            dut.read__en,
            dut.read__half,
            dut.read__addr,
        ]

    @property
    def cycle(self):
        return cycle_now()

    async def start(self):
        start_clock(self.clk)
        await self.reset()

    async def reset(self, cycles=2):
        """Reset the engine; returns at a falling edge with every input low."""
        await reset(self.clk, self.dut.rst, cycles, zero=self.inputs)

    async def _write(self, sel, half, words, base=0):
        dut = self.dut
        await write_words(
            self.clk,
            dut.write__en,
            dut.write__addr,
            dut.write__data,
            pack_words(self.operand_word, words),
            range(base, base + len(words)),
            setup=((dut.write__sel, sel), (dut.write__half, half), (dut.write__both, 0)),
        )

    async def poison(self, rng):
        """Fill both halves of both operand buffers with random bytes, so that
        a read outside an operand (a wrong mask or address) shows in the result."""
        for sel in (0, 1):
            for half in (0, 1):
                await self._write(sel, half, rng.integers(-128, 128, (self.operand_depth, self.R)))

    def check_fits(self, job):
        a_words = operand_words(*job.a.shape, self.R)
        b_words = operand_words(*job.b.shape, self.R)
        c_words = result_words(job.M, job.N, self.C)
        for what, words, depth in (
            ("A", a_words, self.operand_depth),
            ("B", b_words, self.operand_depth),
            ("C", c_words, self.result_depth),
        ):
            if words > depth:
                raise ValueError(f"{what} needs {words} words; the buffer holds {depth}")
        for what, base, words, depth in (
            ("A", job.a_base, a_words, self.operand_depth),
            ("B", job.b_base, b_words, self.operand_depth),
            ("C", job.result_base, c_words, self.result_depth),
        ):
            if not 0 <= base <= depth - words:
                raise ValueError(f"{what}'s {words} words from word {base} pass the half's {depth}")

    async def load(self, job):
        """Write the job's operands into its half of the operand buffers (one word a cycle)."""
        self.check_fits(job)
        (a_words, job.a_stride), (b_words, job.b_stride) = pack_operand(job.a, self.R), pack_operand(job.b, self.R)
        await self._write(0, job.half, a_words, job.a_base)
        await self._write(1, job.half, b_words, job.b_base)

    async def write_space(self, sel, words):
        """Write ``words`` from word 0 of an operand buffer's space of two halves (word w is word
        ``w mod depth`` of half ``w div depth``: the half is the top address bit)."""
        if len(words) > 2 * self.operand_depth:
            raise ValueError(f"{len(words)} words; the buffer's space holds {2 * self.operand_depth}")
        for half in (0, 1):
            part = words[half * self.operand_depth : (half + 1) * self.operand_depth]
            if len(part):
                await self._write(sel, half, part)

    async def read_space(self):
        """Every word of the result buffer's space of two halves (lane values, ``(2·depth, C)``)."""
        dut, raw = self.dut, []
        for half in (0, 1):
            raw += await read_words(
                self.clk,
                dut.read__en,
                dut.read__addr,
                dut.read__data,
                range(self.result_depth),
                setup=((dut.read__half, half),),
            )
        return unpack_words(self.result_word, raw)

    async def read_results(self, job):
        """Read C (M×N) from the job's result half (one word a cycle)."""
        dut = self.dut
        raw = await read_words(
            self.clk,
            dut.read__en,
            dut.read__addr,
            dut.read__data,
            range(job.result_base, job.result_base + result_words(job.M, job.N, self.C)),
            setup=((dut.read__half, job.half),),
        )
        return unpack_results(unpack_words(self.result_word, raw), job.M, job.N, self.C)

    def config(self, job):
        """The job's :class:`GemmConfig`, as ``start``'s payload integer."""
        return pack_value(
            GemmConfig,
            {
                "m": job.M,
                "k": job.K,
                "n": job.N,
                "mode": Mode[job.mode.upper()],
                "a_stride": job.a_stride,
                "b_stride": job.b_stride,
                "operand_half": job.half,
                "result_half": job.half,
                "a_base": job.a_base,
                "b_base": job.b_base,
                "result_base": job.result_base,
            },
        )

    async def issue(self, job):
        """Present ``start`` with the job's configuration until the engine takes it.

        Presented while a GEMM runs, it is taken in the cycle after that GEMM
        ends: GEMMs run back to back. Returns the cycle it was taken in.
        """
        dut = self.dut
        source = StreamSource(dut.start__valid, dut.start__ready, dut.start__payload)
        source.send([self.config(job)])
        while True:
            await edge(self.clk)
            source.drive()
            await ReadOnly()
            if source.sample() is not None:
                taken = cycle_now()
                break
        await edge(self.clk)
        source.drive()  # nothing left: valid falls
        return taken

    async def counters(self):
        """The engine's counters now (its ``counters__<field>`` ports, :class:`GemmCounters`' fields)."""
        c = {name: int(getattr(self.dut, f"counters__{name}").value) for name, _ in data.Layout.cast(GemmCounters)}
        return {
            "cycles": c["total"],
            "active_cycles": c["active"],
            "weight_stall_cycles": c["weight_stall"],
            "transfer_cycles": c["transfer"],
        }

    async def wait_done(self):
        """Wait for the next end of a GEMM (``busy`` falling); return its counters.

        Call it before that GEMM ends: a monitor that calls it in a loop sees
        every GEMM, even back to back ones (``busy`` is low for one cycle)."""
        await FallingEdge(self.dut.busy)
        await edge(self.clk)  # the same cycle's falling edge: the counters are final
        return await self.counters()
