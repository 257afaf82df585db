"""``Sequencer``: runs a training step's program, one op at a time."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, enum, memory, wiring
from amaranth.lib.wiring import In, Out

from ..systolic.signatures import COUNTER_BITS
from . import ports
from .program import OP_LAYOUT, Dst, Kind, Phase

__all__ = ["Sequencer", "State"]


class State(enum.Enum, shape=4):
    IDLE = 0
    FETCH = 1  #: the program memory answers next cycle
    DECODE = 2  #: take the op; pick its unit, or stop
    GEMM_START = 3  #: one cycle: ``gemm.go``
    GEMM_WAIT = 4  #: until ``gemm.done``
    POST_START = 5
    POST_WAIT = 6
    LOSS_START = 7
    LOSS_WAIT = 8
    DELAY = 9  #: a GEMM's or a LOSS's ``delay`` cycles before its start


class Sequencer(wiring.Component):
    """The program memory and the FSM that steps through it.

    ``prog`` writes one op (honoured while idle), and beside it, in a memory of
    its own, what DECODE checks of it: whether it is a LOSS row the loss unit
    cannot take, and its delay less one. ``start`` (taken while idle,
    with ``lr``) raises ``busy`` the next cycle and clears the counters; the
    first op then costs FETCH, DECODE and one START cycle before its unit runs
    (``gemm``, ``post`` or ``loss``: ``go`` for one cycle, then the wait for
    ``done``), and each op after it DECODE and START: the program memory
    reads the next op while the one before starts and runs, so the cycle after
    its ``done`` (or its START, for one not waited for) decodes the next. A
    post-op with ``behind`` set is not waited for: its START is
    followed by the next op's DECODE, and only a GEMM, or a LOSS behind a FWD
    that writes no operand words, leaves DECODE while the post unit is busy
    (``ctl.post_op`` holds the post-op, ``ctl.op`` the other). A GEMM with
    ``behind`` set is not waited for either: its START is followed by the
    next op's DECODE, and while the engine is busy only a post-op with
    ``follow`` set (which reads the GEMM's results as they are finished), or
    with ``beside`` set (which reads none of them), or a GEMM once the engine is
    ready to take it (``gemm_ready``: it chains the two), leaves DECODE; any
    other op waits there for the engine. A LOSS with
    ``behind`` set is not waited for: while it runs only a GEMM leaves
    DECODE, and a GEMM waits its ``delay`` cycles between DECODE and START
    (the plan picks the delay so that it reads each row of dY after the loss
    unit has written it). A LOSS waits its ``delay`` there too (the plan picks
    it so that it reads each logit after the FWD running behind has written
    it). END, an
    unknown kind, or a LOSS op whose row the loss unit cannot take, pulses
    ``done`` in its DECODE cycle and drops ``busy`` the next; the last two
    also set ``error`` until the next ``start``.

    ``cnt_cycles[p]`` counts the busy cycles while the held op's phase is
    ``p``; ``cnt_gemm[p]`` and ``cnt_active[p]`` the cycles in which
    ``gemm_busy`` / ``gemm_active`` were high for a GEMM of phase ``p``.
    """

    def __init__(self, geometry):
        self.geometry = g = geometry
        counters = data.ArrayLayout(COUNTER_BITS, len(Phase))
        super().__init__(
            {
                "start": In(1),
                "lr": In(16),
                "busy": Out(1),
                "done": Out(1),
                "error": Out(1),
                "prog": In(ports.mem_write(g.program_depth, OP_LAYOUT)),
                "ctl": Out(ports.control()),
                "gemm": Out(ports.run()),
                "post": Out(ports.run()),
                "loss": Out(ports.run()),
                "gemm_ready": In(1),
                "gemm_busy": In(1),
                "gemm_active": In(1),
                "cnt_cycles": Out(counters),
                "cnt_gemm": Out(counters),
                "cnt_active": Out(counters),
            }
        )

    def elaborate(self, platform):
        m = Module()
        g = self.geometry
        R = g.rows
        m.submodules.program = program = memory.Memory(shape=OP_LAYOUT, depth=g.program_depth, init=[])
        p_wr, p_rd = program.write_port(), program.read_port()
        # Beside each op, what DECODE would otherwise work out from it, worked out as the host writes it
        # (issue 13: DECODE's cycle holds the unit's handshakes and the op's latching only): a LOSS row
        # the loss unit cannot take, a delay, and the delay's first count. An address never written
        # holds 0 in both memories: an END with no delay.
        delay_shape = OP_LAYOUT["delay"].shape
        decoded_layout = data.StructLayout({"bad_row": 1, "delayed": 1, "delay_left": delay_shape})
        m.submodules.decoded = decoded = memory.Memory(shape=decoded_layout, depth=g.program_depth, init=[])
        d_wr, d_rd = decoded.write_port(), decoded.read_port()
        w = self.prog.data
        m.d.comb += [
            d_wr.en.eq(p_wr.en),
            d_wr.addr.eq(p_wr.addr),
            d_wr.data.bad_row.eq((w.m == 0) | (w.n == 0) | (w.n > g.classes) | (w.k != (w.n + R - 1) // R)),
            d_wr.data.delayed.eq(w.delay != 0),
            d_wr.data.delay_left.eq(w.delay - 1),
            d_rd.addr.eq(p_rd.addr),
        ]
        pc = Signal(range(g.program_depth + 1))
        state = Signal(State)
        gemm_phase = Signal(Phase)  # the running GEMM's, for the counters
        loss_busy = Signal()  # a LOSS runs (behind)
        delay = Signal(OP_LAYOUT["delay"].shape)  # DELAY's cycles left
        busy, op, post_op, error = self.ctl.busy, self.ctl.op, self.ctl.post_op, self.error
        m.d.comb += [
            self.busy.eq(busy),
            p_wr.en.eq(self.prog.en & ~busy),
            p_wr.addr.eq(self.prog.addr),
            p_wr.data.eq(self.prog.data),
            # The held op's address while it is fetched and decoded, the next one's after: its word is
            # there in the cycle after the held op starts, or ends, whichever comes later.
            p_rd.addr.eq(Mux((state == State.FETCH) | (state == State.DECODE), pc, pc + 1)),
        ]

        def stop(bad):
            m.d.comb += self.done.eq(1)
            m.d.sync += busy.eq(0)
            if bad:
                m.d.sync += error.eq(1)
            m.d.sync += state.eq(State.IDLE)

        new, pre = p_rd.data, d_rd.data
        with m.Switch(state):
            with m.Case(State.IDLE):
                with m.If(self.start):
                    m.d.sync += [
                        busy.eq(1),
                        pc.eq(0),
                        self.ctl.lr.eq(self.lr),
                        error.eq(0),
                        op.phase.eq(Phase.FORWARD),
                        state.eq(State.FETCH),
                    ]
            with m.Case(State.FETCH):
                m.d.sync += state.eq(State.DECODE)
            with m.Case(State.DECODE):
                # While a post-op runs behind, only a GEMM may start, or a LOSS behind a FWD that writes
                # no operand words (program.may_pass); any other op waits here for it.
                passes = (new.kind == Kind.GEMM) | (
                    (new.kind == Kind.LOSS) & (post_op.kind == Kind.FWD) & (post_op.dst == Dst.NONE)
                )
                # While a GEMM runs behind, only a post-op that follows it may start, or a GEMM once the
                # engine takes it (chained behind the running one).
                # A post-op with beside set (it reads no result of the running GEMM) may start beside it too.
                engine_free = Mux(
                    new.kind == Kind.GEMM,
                    self.gemm_ready,
                    ~self.gemm_busy
                    | (
                        (new.follow | new.beside)
                        & ((new.kind == Kind.FWD) | (new.kind == Kind.DX) | (new.kind == Kind.UPDATE))
                    ),
                )
                loss_free = ~loss_busy | (new.kind == Kind.GEMM)  # beside a LOSS, only a GEMM
                with m.If((self.post.done | passes) & engine_free & loss_free):
                    m.d.sync += op.eq(new)
                    with m.Switch(new.kind):
                        with m.Case(Kind.END):
                            stop(bad=False)
                        with m.Case(Kind.GEMM):
                            with m.If(pre.delayed):
                                m.d.sync += [state.eq(State.DELAY), delay.eq(pre.delay_left)]
                            with m.Else():
                                m.d.sync += state.eq(State.GEMM_START)
                        with m.Case(Kind.FWD, Kind.DX, Kind.UPDATE):
                            m.d.sync += [state.eq(State.POST_START), post_op.eq(new)]
                        with m.Case(Kind.LOSS):
                            with m.If(pre.bad_row):
                                stop(bad=True)  # a row the loss unit cannot take
                            with m.Elif(pre.delayed):
                                m.d.sync += [state.eq(State.DELAY), delay.eq(pre.delay_left)]
                            with m.Else():
                                m.d.sync += state.eq(State.LOSS_START)
                        with m.Default():  # an unknown op: stop, and say so
                            stop(bad=True)
            with m.Case(State.POST_START):
                m.d.comb += self.post.go.eq(1)
                with m.If(op.behind):  # on to the next op (a GEMM) while the post-op runs
                    m.d.sync += [pc.eq(pc + 1), state.eq(State.DECODE)]
                with m.Else():
                    m.d.sync += state.eq(State.POST_WAIT)
            with m.Case(State.DELAY):
                m.d.sync += delay.eq(delay - 1)
                with m.If(delay == 0):
                    m.d.sync += state.eq(Mux(op.kind == Kind.LOSS, State.LOSS_START, State.GEMM_START))
            with m.Case(State.LOSS_START):
                m.d.comb += self.loss.go.eq(1)
                with m.If(op.behind):  # on to the next op (a GEMM) while the loss unit runs
                    m.d.sync += [pc.eq(pc + 1), state.eq(State.DECODE), loss_busy.eq(1)]
                with m.Else():
                    m.d.sync += state.eq(State.LOSS_WAIT)
            with m.Case(State.GEMM_START):
                m.d.comb += self.gemm.go.eq(1)
                m.d.sync += gemm_phase.eq(op.phase)
                with m.If(op.behind):  # on to the next op (a post-op that follows it) while the GEMM runs
                    m.d.sync += [pc.eq(pc + 1), state.eq(State.DECODE)]
                with m.Else():
                    m.d.sync += state.eq(State.GEMM_WAIT)
            for unit, wait in (
                (self.gemm, State.GEMM_WAIT),
                (self.post, State.POST_WAIT),
                (self.loss, State.LOSS_WAIT),
            ):
                with m.Case(wait):
                    with m.If(unit.done):
                        m.d.sync += [pc.eq(pc + 1), state.eq(State.DECODE)]

        with m.If(self.loss.done):
            m.d.sync += loss_busy.eq(0)

        # Per-phase counters, cleared by start.
        for p in Phase:
            with m.If(self.start & ~busy):
                m.d.sync += [
                    self.cnt_cycles[p.value].eq(0),
                    self.cnt_gemm[p.value].eq(0),
                    self.cnt_active[p.value].eq(0),
                ]
            with m.Elif(busy):
                with m.If(op.phase == p):
                    m.d.sync += self.cnt_cycles[p.value].eq(self.cnt_cycles[p.value] + 1)
                with m.If(self.gemm_busy & (gemm_phase == p)):
                    m.d.sync += self.cnt_gemm[p.value].eq(self.cnt_gemm[p.value] + 1)
                with m.If(self.gemm_active & (gemm_phase == p)):
                    m.d.sync += self.cnt_active[p.value].eq(self.cnt_active[p.value] + 1)
        return m
