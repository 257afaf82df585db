"""Host-side driver of the GEMM engine in cocotb.

Python acts only while data moves: it writes operand words and reads result
words one per cycle, and otherwise waits for ``busy`` to fall, so the
simulator runs the compute phase at its own speed.

The buffer layouts are :mod:`reference.gemm_layout`'s (``docs/systolic.md``).
"""
import numpy as np
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from reference.gemm import MODE_CODE
from reference.gemm_layout import (pack_operand, operand_words, result_words, unpack_results,
                                   lanes_to_int as _lanes_to_int, int_to_lanes as _int_to_lanes)

__all__ = ["GemmDriver", "GemmJob"]


class GemmJob:
    """One GEMM: operands as stored, the mode, and where it lives on chip."""

    def __init__(self, a, b, mode, half):
        self.a, self.b, self.mode, self.half = np.asarray(a), np.asarray(b), mode, half
        a_log = self.a.T if mode == "tn" else self.a
        b_log = self.b.T if mode == "nt" else self.b
        self.M, self.K = a_log.shape
        self.N = b_log.shape[1]
        if b_log.shape[0] != self.K:
            raise ValueError(f"inner dimensions differ: A' is {a_log.shape}, B' is {b_log.shape}")


class GemmDriver:
    def __init__(self, dut, engine):
        """``engine``: :meth:`GemmEngine.geometry` of the design under test."""
        self.dut = dut
        self.R, self.C = engine.rows, engine.cols
        self.operand_depth, self.result_depth = engine.operand_depth, engine.result_depth

    @property
    def cycle(self):
        """The current clock cycle of the run (the clock period is 10 ns)."""
        return int(get_sim_time("ns")) // 10

    async def start(self):
        dut = self.dut
        Clock(dut.clk, 10, unit="ns").start()
        for name in ("start", "wr_en", "rd_en", "cnt_clear", "cfg_m", "cfg_k", "cfg_n", "cfg_mode",
                     "cfg_a_stride", "cfg_b_stride", "cfg_operand_half", "cfg_result_half",
                     "cfg_a_base", "cfg_b_base", "cfg_result_base",
                     "wr_sel", "wr_both", "wr_half", "wr_addr", "wr_data", "rd_half", "rd_addr"):
            getattr(dut, name).value = 0
        await self.reset()

    # Every coroutine here starts at a rising edge, so that it may write
    # signals whatever phase its caller ended in.

    async def reset(self, cycles=2):
        await RisingEdge(self.dut.clk)
        self.dut.rst.value = 1
        for _ in range(cycles):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0

    async def poison(self, rng):
        """Fill both halves of both operand buffers with random bytes, so that
        a read outside an operand (a wrong mask or address) shows in the result."""
        dut = self.dut
        for sel in (0, 1):
            for half in (0, 1):
                for addr in range(self.operand_depth):
                    await RisingEdge(dut.clk)
                    dut.wr_en.value, dut.wr_sel.value, dut.wr_half.value = 1, sel, half
                    dut.wr_addr.value = addr
                    dut.wr_data.value = _lanes_to_int(rng.integers(-128, 128, self.R), 8)
        await RisingEdge(dut.clk)
        dut.wr_en.value = 0

    def check_fits(self, job):
        a_words = operand_words(*job.a.shape, self.R)
        b_words = operand_words(*job.b.shape, self.R)
        c_words = result_words(job.M, job.N, self.C)
        for what, words, depth in (("A", a_words, self.operand_depth), ("B", b_words, self.operand_depth),
                                   ("C", c_words, self.result_depth)):
            if words > depth:
                raise ValueError(f"{what} needs {words} words; the buffer holds {depth}")

    async def load(self, job):
        """Write the job's operands into its half of the operand buffers (one word a cycle)."""
        self.check_fits(job)
        dut = self.dut
        for sel, mat in ((0, job.a), (1, job.b)):
            words, stride = pack_operand(mat, self.R)
            if sel == 0:
                job.a_stride = stride
            else:
                job.b_stride = stride
            for addr, lanes in enumerate(words):
                await RisingEdge(dut.clk)
                dut.wr_en.value = 1
                dut.wr_sel.value = sel
                dut.wr_half.value = job.half
                dut.wr_addr.value = addr
                dut.wr_data.value = _lanes_to_int(lanes, 8)
        await RisingEdge(dut.clk)
        dut.wr_en.value = 0

    async def read_results(self, job):
        """Read C (M×N) from the job's result half (one word a cycle)."""
        dut = self.dut
        n_words = result_words(job.M, job.N, self.C)
        words = []
        for addr in range(n_words + 1):
            await RisingEdge(dut.clk)
            if addr < n_words:
                dut.rd_en.value = 1
                dut.rd_half.value = job.half
                dut.rd_addr.value = addr
            else:
                dut.rd_en.value = 0
            await ReadOnly()
            if addr:
                words.append(_int_to_lanes(int(dut.rd_data.value), self.C, 32))
        return unpack_results(words, job.M, job.N, self.C)

    async def issue(self, job):
        """Present ``start`` with the job's configuration until the engine takes it.

        Presented while a GEMM runs, it is taken in the cycle after that GEMM
        ends: GEMMs run back to back. Returns the cycle it was taken in.
        """
        dut = self.dut
        await RisingEdge(dut.clk)
        dut.cfg_m.value, dut.cfg_k.value, dut.cfg_n.value = job.M, job.K, job.N
        dut.cfg_mode.value = MODE_CODE[job.mode]
        dut.cfg_a_stride.value, dut.cfg_b_stride.value = job.a_stride, job.b_stride
        dut.cfg_operand_half.value = job.half
        dut.cfg_result_half.value = job.half
        dut.start.value = 1
        while True:
            await ReadOnly()
            if int(dut.ready.value):
                break
            await RisingEdge(dut.clk)
        taken = self.cycle
        await RisingEdge(dut.clk)
        dut.start.value = 0
        return taken

    async def wait_done(self):
        """Wait for the next end of a GEMM (``busy`` falling); return its counters.

        Call it before that GEMM ends: a monitor that calls it in a loop sees
        every GEMM, even back to back ones (``busy`` is low for one cycle)."""
        dut = self.dut
        await FallingEdge(dut.busy)
        await ReadOnly()
        return {"cycles": int(dut.cnt_total.value), "active_cycles": int(dut.cnt_active.value),
                "weight_stall_cycles": int(dut.cnt_weight_stall.value),
                "transfer_cycles": int(dut.cnt_transfer.value)}
