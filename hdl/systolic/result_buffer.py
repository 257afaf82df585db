"""``ResultBuffer``: C lanes of int32 that sum the array's output rows over K.

A row is tagged in the cycle before it enters the array. Its tag travels
beside the array: the old sum is read ``latency - 1`` cycles after the tag
and held, and the new one written ``latency + 1`` cycles after it, when the
row's C sums leave the array. The buffer is one space of ``2·depth``
words; ``half`` is its top address bit. ``C[m, n]`` is lane ``n mod C`` of
word ``(n div C)·M + m`` (``docs/systolic.md``).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .signatures import ResultRead

__all__ = ["RowTag", "ResultBuffer"]


class RowTag(wiring.Signature):
    """One activation row, seen from the side that issues it: ``addr`` is its
    result word, counted from the start of ``half`` (it may reach past it: the
    buffer is one space of ``2·depth`` words); ``first_k``: the first K tile
    (write the sum, don't add); ``last_k``: the last K tile (the sum written is
    final); ``last``: the GEMM's last row."""

    def __init__(self, depth):
        super().__init__(
            {
                "valid": Out(1),
                "addr": Out(range(2 * depth)),
                "half": Out(1),
                "first_k": Out(1),
                "last_k": Out(1),
                "last": Out(1),
            }
        )


class ResultBuffer(wiring.Component):
    """Parameters
    ----------
    cols : int
        C: the lanes.
    depth : int
        Words in each half.
    latency : int
        The array's latency: from a row entering to its sums on ``sums``.

    Attributes
    ----------
    row : In(RowTag)
        A row, in the cycle before it enters the array.
    sums : In(C int32)
        The array's output.
    read : In(ResultRead)
        Host read of one result word, ``data`` valid the cycle after ``en``.
    last_written : Out(1)
        The GEMM's last row is written in this cycle, ``latency + 1`` cycles after its tag.
    finished : Out(1), finished_addr : Out(range(2·depth))
        A row of its tile's last K tile (its final sums) is written this cycle, to ``finished_addr``.
    """

    def __init__(self, cols, depth, latency):
        if not (isinstance(latency, int) and latency >= 1):
            raise ValueError(f"latency must be a positive integer, not {latency!r}")
        self.cols, self.depth, self.latency = cols, depth, latency
        super().__init__(
            {
                "row": In(RowTag(depth)),
                "sums": In(data.ArrayLayout(signed(32), cols)),
                "read": In(ResultRead(cols, depth)),
                "last_written": Out(1),
                "finished": Out(1),
                "finished_addr": Out(range(2 * depth)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        abits = (self.depth - 1).bit_length()
        meta_layout = data.StructLayout({"valid": 1, "addr": abits + 1, "first_k": 1, "last_k": 1, "last": 1})
        meta = Signal(meta_layout)
        m.d.comb += [
            meta.valid.eq(self.row.valid),
            meta.addr.eq(self.row.addr + Cat(Const(0, abits), self.row.half)),
            meta.first_k.eq(self.row.first_k),
            meta.last_k.eq(self.row.last_k),
            meta.last.eq(self.row.last),
        ]
        pipe = [meta]
        for s in range(self.latency + 1):
            nxt = Signal(meta_layout, name=f"meta_{s}")
            m.d.sync += nxt.eq(pipe[-1])
            pipe.append(nxt)
        # The row entered the array the cycle after its tag: its sums leave
        # ``latency`` cycles later. The old sum is read two cycles before that and
        # held in a register (the block RAM's output is slow), so the write is one
        # add of two registers. A write in the cycle between to the same word (a
        # one-row tile right behind the last) is forwarded into that register.
        acc_read, acc_hold, acc_write = pipe[self.latency - 1], pipe[self.latency], pipe[self.latency + 1]
        m.d.comb += [
            self.last_written.eq(acc_write.valid & acc_write.last),
            self.finished.eq(acc_write.valid & acc_write.last_k),
            self.finished_addr.eq(acc_write.addr),
        ]
        forward = Signal()
        m.d.comb += forward.eq(acc_write.valid & (acc_write.addr == acc_hold.addr))

        for j in range(self.cols):
            mem = memory.Memory(shape=signed(32), depth=2 * self.depth, init=[])
            m.submodules[f"lane{j}"] = mem
            wp = mem.write_port()
            rp_acc = mem.read_port(transparent_for=(wp,))
            rp_host = mem.read_port()
            old = Signal(signed(32), name=f"old_{j}")
            m.d.sync += old.eq(Mux(forward, wp.data, rp_acc.data))
            m.d.comb += [
                rp_acc.en.eq(acc_read.valid),
                rp_acc.addr.eq(acc_read.addr),
                wp.en.eq(acc_write.valid),
                wp.addr.eq(acc_write.addr),
                wp.data.eq(Mux(acc_write.first_k, 0, old) + self.sums[j]),
                rp_host.en.eq(self.read.en),
                rp_host.addr.eq(Cat(self.read.addr, self.read.half)),
                self.read.data[j].eq(rp_host.data),
            ]
        return m
