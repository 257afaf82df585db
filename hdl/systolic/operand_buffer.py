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
    matrix (``start`` a multiple of R): of a stored row (``column`` low) or of
    a stored column (``column`` high). The requester gives the placement
    already worked out (:class:`.TileStreamer` keeps it up to date line by
    line, with adds only): ``first``, the word that holds the first element in
    the buffer's space of two halves; ``rot``, the line number mod R (the lane
    of the first element); and, for a column read, ``stride`` (W, the words a
    stored row), stable from the cycle before the read. Element t reads as 0
    where ``mask[t]`` is low.
    """

    def __init__(self, rows, depth):
        super().__init__(
            {
                "en": Out(1),
                "first": Out(range(2 * depth)),
                "rot": Out(range(max(rows, 2))),  # at least 1 bit: no zero-width port
                "column": Out(1),
                "mask": Out(rows),
                "stride": Out(DIM_BITS),
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
    masked : bool
        Element t of ``vector`` is 0 where ``read.mask[t]`` is low. The engine's A buffer is not
        masked: an element of A past K meets a weight that B's mask has made 0.

    Attributes
    ----------
    write : In(OperandWrite)
        Host write of one word (lanes in bank order), taken in the cycle ``en``
        is high and ``sel`` is ``select`` or ``both`` is high.
    read : In(VectorRead)
        One vector a cycle; ``vector`` holds it, in element order and masked (with ``masked``),
        two cycles after ``read.en`` (a cycle for the block RAM, one for the
        rotation into a register).
    host : In(OperandRead), with ``host_read``
        One stored word (lanes in bank order), valid the cycle after ``en``
        with ``sel`` = ``select``.
    """

    def __init__(self, rows, depth, select, host_read=False, masked=True):
        self.rows, self.depth, self.select, self.host_read = rows, depth, select, host_read
        self.masked = masked
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

        # Element t is in lane (line + start + t) mod R = (t + rot) mod R: the read is
        # rotated by the line. A row read takes word ``first`` in every lane; a column
        # read takes, in lane b, element t = (b - rot) mod R, t rows down: t * stride
        # words on. The multiples of the stride are registered (the stride is given
        # from the cycle before a read), so an address is one add of two registers.
        multiples = []
        for t in range(R):
            v = Signal(abits + 1, name=f"stride_x{t}")
            m.d.sync += v.eq(sum((rd.stride << i for i in range(t.bit_length()) if t >> i & 1), Const(0)))
            multiples.append(v)
        multiples = Array(multiples)
        rot = rd.rot[:lg] if lg else Const(0, 1)

        lanes = []
        for b in range(R):
            mem = memory.Memory(shape=signed(8), depth=2 * self.depth, init=[])
            m.submodules[f"lane{b}"] = mem
            wp, rp = mem.write_port(), mem.read_port()
            offset = Signal(abits + 1, name=f"offset{b}")
            m.d.comb += [
                wp.en.eq(wr.en & ((wr.sel == self.select) | wr.both)),
                wp.addr.eq(Cat(wr.addr, wr.half)),
                wp.data.eq(wr.data[b]),
                offset.eq(Mux(rd.column, multiples[lane(b - rot)], 0)),
                rp.en.eq(rd.en),
                rp.addr.eq((rd.first + offset)[: abits + 1]),
            ]
            lanes.append(rp.data)
            if self.host_read:
                hp = mem.read_port()
                m.d.comb += [
                    hp.en.eq(self.host.en & (self.host.sel == self.select)),
                    hp.addr.eq(self.host.addr),
                    self.host.data[b].eq(hp.data),
                ]

        # The words arrive a cycle later: undo the rotation and mask with that
        # cycle's request, into a register (the block RAM's output is slow).
        rot_d = Signal.like(rot)
        m.d.sync += rot_d.eq(rot)
        lanes = Array(lanes)
        if self.masked:
            mask_d = Signal(R)
            m.d.sync += mask_d.eq(rd.mask)
        for t in range(R):
            word = lanes[lane(t + rot_d)]
            m.d.sync += self.vector[t].eq(Mux(mask_d[t], word, 0) if self.masked else word)
        return m
