"""``OperandWriter``: int8 words from the post-processor or the loss feeder into the operand buffers."""

from amaranth.hdl import Array, Const, Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from . import ports
from .program import Dst, Kind

__all__ = ["OperandWriter"]


class OperandWriter(wiring.Component):
    """Combinational: the held op picks the source (``loss`` for LOSS, ``post``
    otherwise), and the source's op its destination (``ctl.op.dst`` for LOSS,
    ``ctl.post_op.dst`` for the post unit, which may run behind a GEMM: none,
    A, B or both). The
    word goes out on ``write`` in the same cycle, rotated into the engine's
    diagonal banking: lane e of matrix row r goes to bank (r + e) mod R."""

    def __init__(self, geometry):
        self.geometry = g = geometry
        super().__init__(
            {
                "ctl": In(ports.control()),
                "post": In(ports.operand_word(g.rows)),
                "loss": In(ports.operand_word(g.rows)),
                "write": Out(ports.operand_write(g.rows, 2 * g.operand_depth)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        R = self.geometry.rows
        lg = R.bit_length() - 1
        op = self.ctl.op
        dst = Signal(Dst)
        en, addr, row = Signal(), Signal(16), Signal(16)
        word = Signal(data.ArrayLayout(signed(8), R))  # element order
        with m.If(op.kind == Kind.LOSS):
            m.d.comb += [en.eq(self.loss.en), addr.eq(self.loss.addr), word.eq(self.loss.data), row.eq(self.loss.row)]
            m.d.comb += dst.eq(op.dst)
        with m.Else():
            m.d.comb += dst.eq(self.ctl.post_op.dst)
            m.d.comb += [
                en.eq(self.post.en),
                addr.eq(self.post.addr),
                word.eq(self.post.data),
                row.eq(self.post.row),
            ]
        rot = row[:lg] if lg else Const(0, 1)
        elements = Array(word[e] for e in range(R))
        for b in range(R):  # bank b holds element (b - row) mod R
            m.d.comb += self.write.data[b].eq(elements[(Const(b, lg) - rot)[:lg]] if lg else word[0])
        m.d.comb += [
            self.write.en.eq(en & (dst != Dst.NONE)),
            self.write.sel.eq(dst == Dst.B),
            self.write.both.eq(dst == Dst.BOTH),
            self.write.addr.eq(addr),
        ]
        return m
