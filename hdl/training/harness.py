"""``TrainHarness``: the training core with a simulation host that moves a step's data on its own.

``make sim`` checks every step against the golden model. Done from Python a
word a cycle, the step's transfers (the batch's inputs and labels in, the
weights and biases out) cost as much wall time as the step itself. The
harness does them in hardware instead, so that Python acts twice a step:

- ``ld_*`` loads the data set once, a sample a cycle: 64 int8 pixels and a
  label in ``samples`` words;
- per step the host sets ``indices`` (the batch's samples, in batch order),
  ``batch`` (how many) and ``lr``, and changes ``go``. The harness writes each sample's pixel
  words into region x0 (``x_base``, ``x_stride``; lanes rotated by the row,
  as :func:`reference.gemm_layout.pack_operand` lays them out) and the labels
  R to a word, pulses the core's ``start``, waits for its ``done``, and reads
  back the ``n_ranges`` first entries of ``ranges`` (a target, a base, a
  word count each), folding every word into ``misr``
  (:func:`reference.signature.misr`). Then ``taken`` becomes ``go``.

While ``taken == go`` the core's own ports pass straight through (``start``,
``lr``, the program and host ports), so a host can load, read and run the
core as :class:`.core.TrainCore` itself. It is built for simulation
(``sim/runner.py`` clocks it from inside the simulator); nothing here is
meant for the FPGA.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from reference.signature import TAPS
from reference.training_numerics import Numerics

from .core import TrainCore
from .program import CoreGeometry, Target

__all__ = ["TrainHarness", "RANGE", "PIXELS", "MAX_RANGES", "sample_layout"]

#: Pixels of a sample (8x8 digits): the first layer's width without the ones column.
PIXELS = 64

#: Readback ranges a harness takes unless told more: two a layer (weights, biases) for up to 8 layers.
MAX_RANGES = 16

#: One readback range: ``count`` words of ``target`` from ``base``.
RANGE = data.StructLayout({"target": Target, "base": 16, "count": 16})


def sample_layout(classes):
    """A data-set word: a sample's pixels (int8 bits, pixel j in bits 8j..8j+7) and its label."""
    return data.StructLayout({"pixels": data.ArrayLayout(8, PIXELS), "label": range(classes)})


class TrainHarness(wiring.Component):
    """:class:`.core.TrainCore` of ``geometry`` with the simulation host described above.

    ``samples`` is the data set's size (``ld_addr``'s range), ``max_ranges``
    the most readback ranges; the most samples a batch has is the core's
    ``label_depth``."""

    def __init__(self, samples=2048, max_ranges=MAX_RANGES, numerics=Numerics(), **geometry):
        self.geometry = g = CoreGeometry(**geometry)
        self.numerics = numerics
        self.samples, self.max_ranges = samples, max_ranges
        R = g.rows
        if PIXELS % R:
            raise ValueError(f"the harness needs the rows ({R}) to divide {PIXELS}")
        self._core = TrainCore(numerics, **g.params)
        members = dict(self._core.signature.members)
        members.update(
            {
                "ld_en": In(1),
                "ld_addr": In(range(samples)),
                "ld_data": In(sample_layout(g.classes)),
                "x_base": In(16),
                "x_stride": In(16),
                "batch": In(range(g.label_depth + 1)),
                "indices": In(data.ArrayLayout(range(samples), g.label_depth)),
                "n_ranges": In(range(max_ranges + 1)),
                "ranges": In(data.ArrayLayout(RANGE, max_ranges)),
                "go": In(8),
                "taken": Out(8),
                "misr": Out(R * 32),
            }
        )
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        g, R = self.geometry, self.geometry.rows
        kw = PIXELS // R  # pixel words a sample
        m.submodules.core = core = self._core
        m.submodules.xmem = xmem = memory.Memory(shape=sample_layout(g.classes), depth=self.samples, init=[])
        x_wr, x_rd = xmem.write_port(), xmem.read_port()
        m.d.comb += [x_wr.en.eq(self.ld_en), x_wr.addr.eq(self.ld_addr), x_wr.data.eq(self.ld_data)]

        passthrough = list(core.signature.members)
        ins = [n for n in passthrough if self.signature.members[n].flow == In]
        outs = [n for n in passthrough if self.signature.members[n].flow == Out]
        m.d.comb += [getattr(self, n).eq(getattr(core, n)) for n in outs]

        r = Signal(range(g.label_depth + 1))  # the sample being written
        q = Signal(range(kw))  # its pixel word
        i = Signal(range(self.max_ranges + 1))  # the readback range
        k = Signal(16)  # the word in it
        go = Signal(8)  # the request being served
        served = Signal(8)  # the last request served
        m.d.comb += self.taken.eq(served)
        labels = Signal(data.ArrayLayout(range(g.classes), R))  # the label word being gathered
        fold = Signal()  # a read word arrives this cycle
        sig = Signal(R * 32)
        m.d.comb += self.misr.eq(sig)

        sample = x_rd.data
        m.d.comb += x_rd.addr.eq(self.indices.as_value().word_select(r, len(self.ld_addr)))
        # Pixel word q of row r: pack_operand's lanes, rotated right by r mod R.
        block = Signal(data.ArrayLayout(8, R))
        with m.Switch(q):
            for qq in range(kw):
                with m.Case(qq):
                    m.d.comb += block.eq(sample.pixels.as_value()[qq * R * 8 : (qq + 1) * R * 8])
        word = Signal(data.ArrayLayout(8, R))
        with m.Switch(r % R):
            for s in range(R):
                with m.Case(s):
                    m.d.comb += [word[b].eq(block[(b - s) % R]) for b in range(R)]

        # What the harness drives into the core while it serves a request (idle: the host's own).
        drive = {n: Signal.like(getattr(core, n), name=f"h_{n}") for n in ins}
        active = Signal()
        for n in ins:
            m.d.comb += getattr(core, n).eq(Mux(active, drive[n], getattr(self, n)))

        rng = self.ranges[i]
        with m.If(fold):
            top = sig[-1]
            m.d.sync += sig.eq((sig << 1)[: R * 32] ^ Mux(top, TAPS, 0) ^ core.rd_data.as_value())
        m.d.sync += fold.eq(0)

        last_word = r == self.batch - 1
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.go != served):
                    m.d.sync += [go.eq(self.go), r.eq(0), q.eq(0), sig.eq(0), labels.eq(0)]
                    m.next = "FETCH"
            with m.State("FETCH"):  # the sample's word is read this cycle
                m.d.comb += [active.eq(1)]
                m.next = "PIXELS"
                with m.If(self.batch == 0):
                    m.next = "START"
            with m.State("PIXELS"):
                m.d.comb += [
                    active.eq(1),
                    drive["wr_en"].eq(1),
                    drive["wr_target"].eq(Target.A),
                    drive["wr_addr"].eq(self.x_base + r * self.x_stride + q),
                ]
                m.d.comb += [drive["wr_data"][b].eq(word[b].as_signed()) for b in range(R)]
                m.d.sync += q.eq(q + 1)
                with m.If(q == 0):
                    with m.Switch(r % R):
                        for s in range(R):
                            with m.Case(s):
                                m.d.sync += labels[s].eq(sample.label)
                with m.If(q == kw - 1):
                    m.d.sync += q.eq(0)
                    with m.If(((r % R) == R - 1) | last_word):
                        m.next = "LABELS"
                    with m.Else():
                        m.d.sync += r.eq(r + 1)
                        m.next = "FETCH"
            with m.State("LABELS"):  # the word of labels rows r - r mod R .. r
                m.d.comb += [
                    active.eq(1),
                    drive["wr_en"].eq(1),
                    drive["wr_target"].eq(Target.LABELS),
                    drive["wr_addr"].eq(r // R),
                ]
                m.d.comb += [drive["wr_data"][b].eq(labels[b]) for b in range(R)]
                m.d.sync += [labels.eq(0), r.eq(r + 1)]
                m.next = "FETCH"
                with m.If(last_word):
                    m.next = "START"
            with m.State("START"):
                m.d.comb += [active.eq(1), drive["start"].eq(1), drive["lr"].eq(self.lr)]
                m.d.sync += [i.eq(0), k.eq(0)]
                m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += [active.eq(1), drive["lr"].eq(self.lr)]
                with m.If(core.done):
                    m.next = "READ"
            with m.State("READ"):
                m.d.comb += [active.eq(1)]
                with m.If(i == self.n_ranges):
                    m.next = "DRAIN"
                with m.Elif(k == rng.count):
                    m.d.sync += [i.eq(i + 1), k.eq(0)]
                with m.Else():
                    m.d.comb += [
                        drive["rd_en"].eq(1),
                        drive["rd_target"].eq(rng.target),
                        drive["rd_addr"].eq(rng.base + k),
                    ]
                    m.d.sync += [k.eq(k + 1), fold.eq(1)]
            with m.State("DRAIN"):  # the last word folds in this cycle
                m.d.comb += [active.eq(1)]
                with m.If(~fold):
                    m.d.sync += served.eq(go)
                    m.next = "IDLE"
        return m
