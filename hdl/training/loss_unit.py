"""``LossUnit``: dL/dY of one sample's logits, softmax cross-entropy or MSE,
a word of ``lanes`` classes a cycle.

A sample's ``count`` int8 logits arrive on the ``logits`` stream as words
(class j in lane ``j mod lanes`` of word ``j div lanes``; ``last`` on the
last word; ``label``, ``loss`` and ``count`` held while they come in); its
int8 errors leave on the ``errors`` stream as words in the same layout,
lanes past ``count`` zero, ``last`` on the row's last word. Both streams
follow ``lib.stream``'s rules: a word moves in a cycle where valid and
ready are both high. Cross-entropy,
as :func:`reference.training.loss_error`:

1. load: keep the logits, track their maximum (a tree over the lanes);
2. exponents: ``e_j = E[max - y_j]`` from the exponent ROM (one read port
   per lane), ``S = Σ e_j``;
3. errors: ``q_j = floor((e_j · 2^(e_frac+1) + S) / (2S))`` by an unrolled
   8-step restoring divider per lane (q < 256), ``p_j = min(q_j, 127)``,
   ``dY_j = p_j - 2^e_frac · [j == label]``.

MSE: ``dY_j = sat8(y_j - 2^a_frac · [j == label])``, straight from the logits.

Bad input has a defined answer. A ``count`` above ``classes`` (the port is
wider) counts as ``classes``. A ``last`` before ``count`` lanes have come
ends the row, and the row's count is then the lanes its words brought. A
``label`` at or past the row's count marks no class. The errors are those
of the row so defined, in as many words as it has.
A row of W words takes 3W cycles (2W for MSE) plus the wait for its errors
to be taken; ``logits.ready`` is high only while loading (it does not
depend on ``logits.valid``), ``errors.valid`` only while emitting.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from reference.training_numerics import Numerics, exp_rom

__all__ = ["LossUnit", "Loss", "State", "word_layout"]


class Loss(enum.Enum, shape=1):
    """The loss whose dL/dY the unit computes."""

    CE = 0  #: softmax cross-entropy
    MSE = 1  #: mean squared error


class State(enum.Enum, shape=2):
    LOAD = 0  #: taking a row's logit words
    EXP = 1  #: exponents and their sum (cross-entropy only)
    EMIT = 2  #: giving out the error words


def word_layout(lanes):
    """One stream word: ``lanes`` int8 and the row's ``last`` flag."""
    return data.StructLayout({"data": data.ArrayLayout(signed(8), lanes), "last": 1})


class LossUnit(wiring.Component):
    def __init__(self, classes=10, lanes=8, numerics=Numerics()):
        if not 2 <= classes <= 256:
            raise ValueError(f"classes must be in 2..256, not {classes}")
        if not 1 <= lanes <= 64:
            raise ValueError(f"lanes must be in 1..64, not {lanes}")
        self.classes, self.lanes, self.numerics = classes, lanes, numerics
        self.words = -(-classes // lanes)
        super().__init__(
            {
                "loss": In(Loss),
                "label": In(range(classes)),
                "count": In(range(classes + 1)),
                "logits": In(stream.Signature(word_layout(lanes))),
                "errors": Out(stream.Signature(word_layout(lanes))),
            }
        )

    def elaborate(self, platform):
        m = Module()
        n, P, NW = self.numerics, self.lanes, self.words
        one = 1 << n.e_frac_ce

        ys = Array(Signal(data.ArrayLayout(signed(8), P), name=f"y_w{w}") for w in range(NW))
        es = Array(Signal(data.ArrayLayout(unsigned(16), P), name=f"e_w{w}") for w in range(NW))
        m.submodules.rom = rom = memory.Memory(shape=unsigned(16), depth=256, init=exp_rom(n))
        rom_rd = [rom.read_port(domain="comb") for _ in range(P)]

        w = Signal(range(NW + 1))  # word being loaded / exponentiated / emitted
        y_max = Signal(signed(8))
        total = Signal(unsigned(24))  # S = Σ e_j <= 256 · 2^15
        label, loss, count = Signal.like(self.label), Signal(Loss), Signal.like(self.count)
        state = Signal(State)
        in_data = self.logits.payload.data

        def valid(word, lane, cnt):
            return (word * P + lane) < cnt

        # Bad input has a defined answer: a count past ``classes`` counts ``classes``, and a row whose
        # ``last`` comes before ``count`` lanes ends there (its count is the lanes it brought).
        in_count = Signal.like(self.count)
        m.d.comb += in_count.eq(Mux(self.count > self.classes, self.classes, self.count))
        brought = (w + 1) * P

        # -- load: the maximum over this word's valid lanes and the running one
        in_max = Signal(signed(8))
        best = Mux(w == 0, Const(-128, signed(8)), y_max)
        for j in range(P):
            cand = Signal(signed(8), name=f"max{j}")
            m.d.comb += cand.eq(Mux(valid(w, j, in_count) & (in_data[j] > best), in_data[j], best))
            best = cand
        m.d.comb += in_max.eq(best)

        # -- exponents of word w, and their sum
        cur_y = ys[w]
        cur_e = es[w]
        e_word = Signal(data.ArrayLayout(unsigned(16), P))
        e_sum = 0
        for j in range(P):
            m.d.comb += [
                rom_rd[j].addr.eq((y_max - cur_y[j])[:8]),
                e_word[j].eq(Mux(valid(w, j, count), rom_rd[j].data, 0)),
            ]
            e_sum = e_sum + e_word[j]

        # -- errors of word w
        out = Signal(data.ArrayLayout(signed(8), P))
        for j in range(P):
            is_label = (w * P + j) == label
            rem = Signal(unsigned(28), name=f"rem_in{j}")
            m.d.comb += rem.eq((cur_e[j] << (n.e_frac_ce + 1)) + total)
            q_bits = []
            for bit in reversed(range(8)):
                shifted = (total << 1) << bit
                take = Signal(name=f"q{j}_{bit}")
                nxt = Signal(unsigned(28), name=f"rem{j}_{bit}")
                m.d.comb += [take.eq(rem >= shifted), nxt.eq(Mux(take, rem - shifted, rem))]
                q_bits.append(take)
                rem = nxt
            q = Signal(unsigned(8), name=f"quot{j}")
            m.d.comb += q.eq(Cat(*reversed(q_bits)))
            ce_error = Mux(q > 127, 127, q) - Mux(is_label, one, 0)
            mse_error = Signal(signed(10), name=f"mse{j}")
            m.d.comb += mse_error.eq(cur_y[j] - Mux(is_label, Const(1 << n.a_frac, 9), 0))
            mse_sat = Mux(mse_error > 127, 127, Mux(mse_error < -128, -128, mse_error))
            m.d.comb += out[j].eq(Mux(valid(w, j, count), Mux(loss == Loss.MSE, mse_sat, ce_error), 0))

        last_word = Signal()
        m.d.comb += last_word.eq((w + 1) * P >= count)
        with m.Switch(state):
            with m.Case(State.LOAD):
                m.d.comb += self.logits.ready.eq(1)
                with m.If(self.logits.valid):
                    m.d.sync += [
                        ys[w].eq(in_data),
                        y_max.eq(in_max),
                        label.eq(self.label),
                        loss.eq(self.loss),
                        count.eq(Mux(self.logits.payload.last & (brought < in_count), brought, in_count)),
                        w.eq(w + 1),
                    ]
                    with m.If(self.logits.payload.last | (brought >= in_count) | (w == NW - 1)):
                        m.d.sync += [w.eq(0), total.eq(0), state.eq(Mux(self.loss == Loss.MSE, State.EMIT, State.EXP))]
            with m.Case(State.EXP):
                m.d.sync += [es[w].eq(e_word), total.eq(total + e_sum), w.eq(w + 1)]
                with m.If(last_word | (w == NW - 1)):
                    m.d.sync += [w.eq(0), state.eq(State.EMIT)]
            with m.Default():  # EMIT one word of errors
                m.d.comb += [
                    self.errors.valid.eq(1),
                    self.errors.payload.last.eq(last_word | (w == NW - 1)),
                    self.errors.payload.data.eq(out),
                ]
                with m.If(self.errors.ready):
                    m.d.sync += w.eq(w + 1)
                    with m.If(last_word | (w == NW - 1)):
                        m.d.sync += [w.eq(0), state.eq(State.LOAD)]
        return m
