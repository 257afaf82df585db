"""``TrainCore``: a GEMM engine, the post-processing datapath around it and a
sequencer that runs a training step's program (:mod:`.program`).

Per minibatch the host writes the inputs (operand buffer A) and the labels,
sets ``lr`` and pulses ``start``; the sequencer runs the forward pass, the
loss error, the backward pass and the update over all layers, and drops
``busy``. Weights, biases and momenta stay on chip across steps. Every
formula is :mod:`reference.training`'s, named as there.

The components, each with its own signature (``docs/training.md``):

- :class:`.sequencer.Sequencer`: the program memory, the FSM and the per-phase counters;
- :class:`.gemm_port.GemmPort`: the engine (the only place that knows its ports);
- :class:`.post.PostProcessor` (FWD, DX, UPDATE) and its :class:`.post.PostLane`\\ s;
- :class:`.loss_feeder.LossFeeder` and the :class:`.loss_unit.LossUnit` it feeds;
- :class:`.operand_writer.OperandWriter`: their int8 words, rotated into the operand buffers;
- :class:`.host_port.HostPort`: the host's reads and writes.

This module holds the memories and routes their ports: to the datapath
while ``busy``, to the host port otherwise.

Host port (honoured only while the core is idle): ``wr_*`` writes one word
to ``wr_target`` (:class:`.program.Target`; lanes are cut to the memory's
width; labels go R to a word, sample i in lane i mod R of word i div R),
``rd_*`` reads one, sign-extended, the next cycle. ``prog_wr_*`` writes one op.
"""

from amaranth.hdl import Module, Mux, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from reference.training_numerics import Numerics

from ..systolic.signatures import COUNTER_BITS
from .gemm_port import GemmPort
from .host_port import HostPort, host_signature
from .loss_feeder import LossFeeder
from .loss_unit import LossUnit
from .operand_writer import OperandWriter
from .post import PostProcessor
from .program import OP_LAYOUT, CoreGeometry, Phase
from .sequencer import Sequencer

__all__ = ["TrainCore"]


class TrainCore(wiring.Component):
    def __init__(self, numerics=Numerics(), **geometry):
        self.geometry = g = CoreGeometry(**geometry)
        self.numerics = numerics
        R = g.rows
        if not (R >= 1 and R & (R - 1) == 0):
            raise ValueError(f"rows must be a power of two, not {R}")
        counters = data.ArrayLayout(COUNTER_BITS, len(Phase))
        host = {
            name: (In if member.flow == wiring.Out else Out)(member.shape)
            for name, member in host_signature(R).members.items()
        }
        self.wide = host["wr_data"].shape
        super().__init__(
            {
                "start": In(1),
                "busy": Out(1),
                "done": Out(1),
                "error": Out(1),
                "lr": In(16),
                "prog_wr_en": In(1),
                "prog_wr_addr": In(range(g.program_depth)),
                "prog_wr_data": In(OP_LAYOUT),
                **host,
                "cnt_cycles": Out(counters),
                "cnt_gemm": Out(counters),
                "cnt_active": Out(counters),
                "lfsr": Out(16),
            }
        )

    def elaborate(self, platform):
        m = Module()
        g, R = self.geometry, self.geometry.rows
        m.submodules.sequencer = seq = Sequencer(g)
        m.submodules.gemm = gemm = GemmPort(g)
        m.submodules.post = post = PostProcessor(g, self.numerics)
        m.submodules.feeder = feeder = LossFeeder(g)
        m.submodules.loss = lu = LossUnit(g.classes, R, self.numerics)
        m.submodules.writer = writer = OperandWriter(g)
        m.submodules.host = host = HostPort(g)

        wiring.connect(m, seq.ctl, gemm.ctl, post.ctl, feeder.ctl)
        wiring.connect(m, seq.gemm, gemm.run)
        wiring.connect(m, seq.post, post.run)
        wiring.connect(m, seq.loss, feeder.run)
        wiring.connect(m, feeder.logits, lu.logits)
        wiring.connect(m, lu.errors, feeder.errors)
        wiring.connect(m, post.dst, writer.post)
        wiring.connect(m, feeder.dst, writer.loss)
        m.d.comb += [lu.loss.eq(feeder.loss), lu.label.eq(feeder.label), lu.count.eq(feeder.count)]

        # The top's ports.
        m.d.comb += [
            seq.start.eq(self.start),
            seq.lr.eq(self.lr),
            self.busy.eq(seq.busy),
            self.done.eq(seq.done),
            self.error.eq(seq.error),
            self.lfsr.eq(post.lfsr),
            seq.prog.en.eq(self.prog_wr_en),
            seq.prog.addr.eq(self.prog_wr_addr),
            seq.prog.data.eq(self.prog_wr_data),
            seq.gemm_ready.eq(gemm.ready),
            seq.gemm_busy.eq(gemm.busy),
            seq.gemm_active.eq(gemm.active),
            post.frontier.eq(gemm.frontier),
            post.older.eq(gemm.older),
            post.gemm_go.eq(seq.gemm.go),
            self.cnt_cycles.eq(seq.cnt_cycles),
            self.cnt_gemm.eq(seq.cnt_gemm),
            self.cnt_active.eq(seq.cnt_active),
        ]
        for name, member in host_signature(R).members.items():
            ours, theirs = getattr(self, name), getattr(host.host, name)
            m.d.comb += theirs.eq(ours) if member.flow == wiring.Out else ours.eq(theirs)

        self._route(m, seq, gemm, post, feeder, writer, host)
        return m

    def _route(self, m, seq, gemm, post, feeder, writer, host):
        """The memories and the engine's ports: the datapath's while busy, the host's while idle."""
        g, R, busy = self.geometry, self.geometry.rows, seq.busy

        def route(port, core, idle, fields=("en", "addr", "data")):
            m.d.comb += [getattr(port, f).eq(Mux(busy, getattr(core, f), getattr(idle, f))) for f in fields]

        lanes = lambda shape: data.ArrayLayout(shape, R)
        for name, shape, depth in (
            ("vmem", signed(8), g.vmem_depth),
            ("wmem", signed(16), g.wmem_depth),
            ("bmem", signed(32), g.bmem_depth),
            ("mmem", signed(32), g.mmem_depth),
        ):
            m.submodules[name] = mem = memory.Memory(shape=lanes(shape), depth=depth, init=[])
            wr, rd = mem.write_port(), mem.read_port()
            route(wr, getattr(post, f"{name}_wr"), getattr(host, f"{name}_wr"))
            readers = [getattr(post, f"{name}_rd"), getattr(host, f"{name}_rd")]
            if name == "vmem":  # LOSS reads the logits, the post-ops y
                readers.append(feeder.vmem_rd)
                core_addr = Mux(feeder.active, feeder.vmem_rd.addr, post.vmem_rd.addr)
            else:
                core_addr = readers[0].addr
            m.d.comb += [rd.addr.eq(Mux(busy, core_addr, readers[1].addr)), *(r.data.eq(rd.data) for r in readers)]
        # Labels: R to a word, as the host writes them; only LOSS reads them.
        m.submodules.labels = labels = memory.Memory(
            shape=lanes(range(g.classes)), depth=-(-g.label_depth // R), init=[]
        )
        l_wr, l_rd = labels.write_port(), labels.read_port()
        m.d.comb += [
            l_wr.en.eq(host.labels_wr.en & ~busy),
            l_wr.addr.eq(host.labels_wr.addr),
            l_wr.data.eq(host.labels_wr.data),
            l_rd.addr.eq(feeder.labels_rd.addr),
            feeder.labels_rd.data.eq(l_rd.data),
        ]
        route(gemm.write, writer.write, host.operand_wr, ("en", "sel", "both", "addr", "data"))
        route(gemm.results, post.results, host.results, ("en", "addr"))
        m.d.comb += [
            post.results.data.eq(gemm.results.data),
            host.results.data.eq(gemm.results.data),
            gemm.operands.en.eq(host.operands.en & ~busy),
            gemm.operands.sel.eq(host.operands.sel),
            gemm.operands.addr.eq(host.operands.addr),
            host.operands.data.eq(gemm.operands.data),
        ]
        return m
