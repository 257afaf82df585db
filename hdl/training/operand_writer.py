"""``OperandWriter``: int8 words from the post-processor or the loss feeder into the operand buffers."""

from amaranth.hdl import Array, Const, Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from . import ports
from .program import Dst

__all__ = ["OperandWriter"]


class OperandWriter(wiring.Component):
    """Combinational: the loss feeder's word in a cycle it writes one, the post
    unit's otherwise, each to its ``to`` (none, A, B or both). The two never
    write operand words in the same cycle: beside a LOSS the post unit runs
    only a FWD that writes none (the sequencer's rule). The word goes out on
    ``write`` in the same cycle, rotated into the engine's diagonal banking:
    lane e of matrix row r goes to bank (r + e) mod R."""

    def __init__(self, geometry):
        self.geometry = g = geometry
        super().__init__(
            {
                "post": In(ports.operand_word(g.rows)),
                "loss": In(ports.operand_word(g.rows)),
                "write": Out(ports.operand_write(g.rows, 2 * g.operand_depth)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        R = self.geometry.rows
        lg = R.bit_length() - 1
        dst = Signal(Dst)
        en, addr, row = Signal(), Signal(16), Signal(16)
        word = Signal(data.ArrayLayout(signed(8), R))  # element order
        pick = lambda src: [en.eq(src.en), dst.eq(src.to), addr.eq(src.addr), word.eq(src.data), row.eq(src.row)]
        m.d.comb += pick(self.post)
        with m.If(self.loss.en):  # the later assignment wins
            m.d.comb += pick(self.loss)
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
