"""``OperandBuffer``: one operand (A or B) of the GEMM engine, R lanes of int8,
banked diagonally so that R consecutive elements of a stored row *or* of a
stored column are read in one cycle.

Element (r, c) of a stored matrix with W words a row lives in lane
``(r + c) mod R`` of word ``base + r·W + c div R`` (``docs/systolic.md``).
The buffer is one space of ``2·depth`` words; ``half`` is its top address bit.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .signatures import DIM_BITS, OperandRead, OperandWrite

__all__ = ["VectorRead", "OperandBuffer"]


class VectorRead(wiring.Signature):
    """A request for one R-vector of a stored matrix, seen from the requester.

    The vector is elements ``start``..``start + R - 1`` of one line of the
    matrix: of row ``line`` (``column`` low) or of column ``line`` (``column``
    high); ``start`` is a multiple of R. Element t reads as 0 where
    ``mask[t]`` is low. ``stride`` (W), ``base`` (a word of the buffer's space
    of two halves) and ``half`` place the matrix in the buffer.
    """

    def __init__(self, rows, depth):
        super().__init__(
            {
                "en": Out(1),
                "line": Out(DIM_BITS),
                "start": Out(DIM_BITS),
                "column": Out(1),
                "mask": Out(rows),
                "stride": Out(DIM_BITS),
                "base": Out(range(2 * depth)),
                "half": Out(1),
            }
        )


class OperandBuffer(wiring.Component):
    """Parameters
    ----------
    rows : int
        R, a power of two: the lanes.
    depth : int
        Words in each half.
    select : int
        The value of ``write.sel`` (and ``host.sel``) that addresses this buffer: 0 for A, 1 for B.
    host_read : bool
        Add ``host``, a read port of stored words.

    Attributes
    ----------
    write : In(OperandWrite)
        Host write of one word (lanes in bank order), taken in the cycle ``en``
        is high and ``sel`` is ``select`` or ``both`` is high.
    read : In(VectorRead)
        One vector a cycle; ``vector`` holds it, in element order and masked,
        in the cycle after ``read.en``.
    host : In(OperandRead), with ``host_read``
        One stored word (lanes in bank order), valid the cycle after ``en``
        with ``sel`` = ``select``.
    """

    def __init__(self, rows, depth, select, host_read=False):
        self.rows, self.depth, self.select, self.host_read = rows, depth, select, host_read
        ports = {
            "write": In(OperandWrite(rows, depth)),
            "read": In(VectorRead(rows, depth)),
            "vector": Out(data.ArrayLayout(signed(8), rows)),
        }
        if host_read:
            ports["host"] = In(OperandRead(rows, depth))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        R, rd, wr = self.rows, self.read, self.write
        lg = R.bit_length() - 1
        abits = (self.depth - 1).bit_length()  # address bits of one half

        def lane(x):  # x mod R, as a lane number
            return x[:lg] if lg else 0

        # The word of the vector's first element, (row, col); element t is in lane
        # (line + start + t) mod R = (t + line) mod R: the read is rotated by the line.
        row, col = Mux(rd.column, rd.start, rd.line), Mux(rd.column, rd.line, rd.start)
        rot = Signal(lg or 1)
        first = Signal(2 * DIM_BITS)
        m.d.comb += [
            rot.eq(lane(rd.line)),
            first.eq(row * rd.stride + (col >> lg) + rd.base + Cat(Const(0, abits), rd.half)),
        ]
        # A column read: lane b holds element t = (b - rot) mod R, t rows down,
        # t * stride words on; t * stride by shifts and adds (no multiplier).
        multiples = []
        for t in range(R):
            v = Signal(2 * DIM_BITS, name=f"stride_x{t}")
            m.d.comb += v.eq(sum((rd.stride << i for i in range(t.bit_length()) if t >> i & 1), Const(0)))
            multiples.append(v)
        multiples = Array(multiples)

        lanes = []
        for b in range(R):
            mem = memory.Memory(shape=signed(8), depth=2 * self.depth, init=[])
            m.submodules[f"lane{b}"] = mem
            wp, rp = mem.write_port(), mem.read_port()
            offset = Signal(2 * DIM_BITS, name=f"offset{b}")
            m.d.comb += [
                wp.en.eq(wr.en & ((wr.sel == self.select) | wr.both)),
                wp.addr.eq(Cat(wr.addr, wr.half)),
                wp.data.eq(wr.data[b]),
                offset.eq(Mux(rd.column, multiples[lane(b - rot)], 0)),
                rp.en.eq(rd.en),
                rp.addr.eq((first + offset)[: abits + 1]),
            ]
            lanes.append(rp.data)
            if self.host_read:
                hp = mem.read_port()
                m.d.comb += [
                    hp.en.eq(self.host.en & (self.host.sel == self.select)),
                    hp.addr.eq(self.host.addr),
                    self.host.data[b].eq(hp.data),
                ]

        # The words arrive a cycle later: undo the rotation and mask with that cycle's request.
        rot_d, mask_d = Signal.like(rot), Signal(R)
        m.d.sync += [rot_d.eq(rot), mask_d.eq(rd.mask)]
        lanes = Array(lanes)
        for t in range(R):
            m.d.comb += self.vector[t].eq(Mux(mask_d[t], lanes[lane(t + rot_d)], 0))
        return m
