"""``GemmPort``: the training core's one connection to :class:`~hdl.systolic.engine.GemmEngine`.

Everything the core knows of the engine's ports is here; the other
components speak :mod:`.ports`' signatures. When the engine's interface
changes, this file is what changes.
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..systolic.engine import GemmEngine
from . import ports

__all__ = ["GemmPort"]


class GemmPort(wiring.Component):
    """The engine, driven in the core's terms.

    ``run.go`` starts a GEMM with the fields of ``ctl.op`` (m, k, n, mode,
    strides, bases; read in that cycle); ``run.done`` pulses in the cycle its
    last result is written. The engine chains GEMMs (``GemmEngine(chain=True)``):
    ``ready`` is high while it would take one more (idle, or the one GEMM in flight
    has launched all its tiles), and ``done`` marks the last write of the last
    GEMM in flight. ``busy`` and ``active`` are the engine's (for the phase
    counters). ``write`` (operand words, bank order), ``results`` (int32 result
    words) and ``operands`` (stored operand words) are the engine's host ports,
    with flat addresses over both halves; reads answer the next
    cycle. ``frontier``: while a GEMM runs, one past the last result word it
    has written final (its column block's last K tile); every word from its
    first to below the frontier is final, since a GEMM writes them in rising
    order. It is 0 from the cycle after ``go`` until the first is written; a
    read in the cycle after a word's write sees the word. It is the last GEMM
    started's: the final writes of a GEMM still in flight before it do not move
    it. ``older`` is that GEMM's own frontier, from the cycle after the one behind
    it was started until its last write; past the whole result space when no
    GEMM is queued behind another (:class:`.post.PostProcessor` reads it for a
    post-op that follows a GEMM another was chained behind). While the engine
    is idle every word is final: the frontier is past the whole result space,
    so a post-op that follows no running GEMM never waits.
    """

    def __init__(self, geometry):
        self.geometry = g = geometry
        R = g.rows
        super().__init__(
            {
                "ctl": In(ports.control()),
                "run": In(ports.run()),
                "ready": Out(1),
                "busy": Out(1),
                "active": Out(1),
                "frontier": Out(range(2 * g.result_depth + 1)),
                "older": Out(range(2 * g.result_depth + 1)),
                "write": In(ports.operand_write(R, 2 * g.operand_depth)),
                "results": In(ports.mem_read(2 * g.result_depth, data.ArrayLayout(signed(32), R), en=True)),
                "operands": In(ports.operand_read(R, 2 * g.operand_depth)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        g = self.geometry
        op_abits = (g.operand_depth - 1).bit_length()
        res_abits = (g.result_depth - 1).bit_length()
        m.submodules.engine = eng = GemmEngine(
            g.rows, g.rows, g.operand_depth, g.result_depth, operand_read=True, dsp_pairs=g.dsp_pairs, chain=True
        )
        op, cfg = self.ctl.op, eng.start.payload
        m.d.comb += [
            cfg.m.eq(op.m),
            cfg.k.eq(op.k),
            cfg.n.eq(op.n),
            cfg.mode.eq(op.mode),
            cfg.a_stride.eq(op.a_stride),
            cfg.b_stride.eq(op.b_stride),
            cfg.a_base.eq(op.a_base),
            cfg.b_base.eq(op.b_base),
            cfg.result_base.eq(op.r_base),
            eng.start.valid.eq(self.run.go),
            self.run.done.eq(eng.done),
            self.ready.eq(eng.start.ready),
            self.busy.eq(eng.busy),
            self.active.eq(eng.active),
            eng.write.en.eq(self.write.en),
            eng.write.sel.eq(self.write.sel),
            eng.write.both.eq(self.write.both),
            eng.write.addr.eq(self.write.addr[:op_abits]),
            eng.write.half.eq(self.write.addr[op_abits]),
            eng.write.data.eq(self.write.data),
            eng.read.en.eq(self.results.en),
            eng.read.addr.eq(self.results.addr[:res_abits]),
            eng.read.half.eq(self.results.addr[res_abits]),
            self.results.data.eq(eng.read.data),
        ]
        frontier, older, written = Signal.like(self.frontier), Signal.like(self.older), eng.finished_addr + 1
        with m.If(self.run.go):
            # The GEMM in flight, if any, goes on as the older one: its frontier, with this cycle's write.
            m.d.sync += [frontier.eq(0), older.eq(Mux(eng.finished, written, frontier))]
        with m.Elif(eng.finished & eng.queued):  # the older GEMM's
            m.d.sync += older.eq(written)
        with m.Elif(eng.finished):
            m.d.sync += frontier.eq(written)
        everything = 2 * g.result_depth
        m.d.comb += [
            self.frontier.eq(Mux(eng.busy, frontier, everything)),
            self.older.eq(Mux(eng.queued, older, everything)),
        ]
        wiring.connect(m, wiring.flipped(self.operands), eng.operand_read)
        return m
