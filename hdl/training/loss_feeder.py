"""``LossFeeder``: the LOSS op, from the logits in vmem through the loss unit to dY."""

from amaranth.hdl import Array, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from . import ports
from .loss_unit import Loss, word_layout
from .program import OP_LAYOUT

__all__ = ["LossFeeder"]


class LossFeeder(wiring.Component):
    """Feeds each row of the held LOSS op's logits to a :class:`~.loss_unit.LossUnit`
    and writes its error words to the operand buffers.

    ``run.go`` starts it at row 0. The logit words of rows 0 to m - 1, W a
    row (``vmem_rd``, from ``vr_base + row · vr_stride``), go out on
    ``logits`` one a cycle, each the cycle after its address, row after row
    with no gap: the loss unit holds four rows at once (load, exponents,
    tail, emit). With each word go the row's ``loss``, ``count`` (the op's n) and
    ``label`` (read from ``labels_rd``, R labels a word). A word the unit
    does not take stays shown: its address is read again. Error words are
    taken from ``errors`` while a LOSS op runs, each written the same cycle
    through ``dst`` (at ``dst_base + row · dst_stride + word``, for the row
    the errors are of; rows come back in order). ``run.done`` is high in the
    cycle the last row's last error word is taken.

    The feeder keeps the op it was started with (``ctl.op`` in ``go``'s
    cycle), so that the sequencer may go on to the next op while it runs
    (a LOSS ``behind``). ``active`` is high from the cycle after ``go`` to
    the cycle of ``done``: vmem's read port and the operand writer are its.
    """

    def __init__(self, geometry):
        self.geometry = g = geometry
        R = g.rows
        super().__init__(
            {
                "ctl": In(ports.control()),
                "run": In(ports.run()),
                "vmem_rd": Out(ports.mem_read(g.vmem_depth, data.ArrayLayout(signed(8), R))),
                "labels_rd": Out(ports.mem_read(-(-g.label_depth // R), data.ArrayLayout(range(g.classes), R))),
                "logits": Out(stream.Signature(word_layout(R))),
                "errors": In(stream.Signature(word_layout(R))),
                "loss": Out(Loss),
                "label": Out(range(g.classes)),
                "count": Out(range(g.classes + 1)),
                "dst": Out(ports.operand_word(R)),
                "active": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        R = self.geometry.rows
        lg = R.bit_length() - 1
        op = Signal(OP_LAYOUT)  # the op it was started with
        with m.If(self.run.go):
            m.d.sync += op.eq(self.ctl.op)
        row = Signal(16)  # the row being written
        rrow, lk, feeding = Signal(16), Signal(16), Signal()  # the row and word to read next; rows left to read
        shown, shown_row, shown_k = Signal(), Signal(16), Signal(16)  # the word on ``logits``
        hold = shown & ~self.logits.ready  # not taken: read it again
        read_now = feeding & ~hold
        labels = self.labels_rd.data
        a_row = Mux(hold, shown_row, rrow)
        # The words' vmem addresses, kept by adds (a multiply would stand in the read path): the next
        # word's, vr_base + rrow·vr_stride + lk, its row's start, and the shown word's.
        r_addr, r_line, shown_addr = Signal(16), Signal(16), Signal(16)
        m.d.comb += [
            self.loss.eq(op.loss),
            self.count.eq(op.n),
            self.labels_rd.addr.eq(a_row >> lg),
            self.label.eq(Array(labels[e] for e in range(R))[shown_row[:lg] if lg else 0]),
            self.vmem_rd.addr.eq(Mux(hold, shown_addr, r_addr)),
        ]
        with m.If(~hold):
            m.d.sync += [shown.eq(read_now), shown_row.eq(rrow), shown_k.eq(lk), shown_addr.eq(r_addr)]
        with m.If(read_now):
            m.d.sync += [lk.eq(lk + 1), r_addr.eq(r_addr + 1)]
            with m.If(lk + 1 >= op.k):
                m.d.sync += [lk.eq(0), rrow.eq(rrow + 1), feeding.eq(rrow + 1 < op.m)]
                m.d.sync += [r_line.eq(r_line + op.vr_stride), r_addr.eq(r_line + op.vr_stride)]
        with m.If(self.run.go):
            m.d.sync += [row.eq(0), rrow.eq(0), lk.eq(0), feeding.eq(1), shown.eq(0), self.active.eq(1)]
            m.d.sync += [r_addr.eq(self.ctl.op.vr_base), r_line.eq(self.ctl.op.vr_base)]
        m.d.comb += [
            self.logits.valid.eq(shown),
            self.logits.payload.data.eq(self.vmem_rd.data),
            self.logits.payload.last.eq(shown & (shown_k + 1 >= op.k)),
            self.errors.ready.eq(self.ctl.busy & self.active),
            self.dst.row.eq(row),
            self.dst.to.eq(op.dst),
            self.dst.data.eq(self.errors.payload.data),
        ]
        # The error word's address, dst_base + row·dst_stride + (its word in the row), and its row's start,
        # kept by adds.
        w_addr, w_line = Signal(16), Signal(16)
        with m.If(self.run.go):
            m.d.sync += [w_addr.eq(self.ctl.op.dst_base), w_line.eq(self.ctl.op.dst_base)]
        with m.If(self.errors.valid & self.errors.ready):
            m.d.comb += [self.dst.addr.eq(w_addr), self.dst.en.eq(1)]
            m.d.sync += w_addr.eq(w_addr + 1)
            with m.If(self.errors.payload.last):
                m.d.sync += row.eq(row + 1)
                m.d.sync += [w_line.eq(w_line + op.dst_stride), w_addr.eq(w_line + op.dst_stride)]
                with m.If(row + 1 >= op.m):
                    m.d.comb += self.run.done.eq(1)
                    m.d.sync += self.active.eq(0)
        return m
