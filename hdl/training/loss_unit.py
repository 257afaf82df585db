"""``LossUnit``: dL/dY of each sample's logits, softmax cross-entropy or MSE,
a word of ``lanes`` classes a cycle, four rows at once.

A sample's ``count`` int8 logits arrive on the ``logits`` stream as words
(class j in lane ``j mod lanes`` of word ``j div lanes``; ``last`` on the
last word; ``label``, ``loss`` and ``count`` held while they come in); its
int8 errors leave on the ``errors`` stream as words in the same layout,
lanes past ``count`` zero, ``last`` on the row's last word. Both streams
follow ``lib.stream``'s rules: a word moves in a cycle where valid and
ready are both high. Rows leave in the order they came. A word taken
waits a cycle in an input register (:data:`LossUnit.INPUT_LATENCY`), with
its row's label, loss and count, before the first stage takes it; there
the lanes past the row's count are set to -128 and the word's place in its
row is worked out. Cross-entropy, as :func:`reference.training.loss_error`,
in four stages, each holding one row:

1. load: keep the logits, track their maximum (all lanes compared at once),
   a word a cycle;
2. exponents: ``e_j = E[max - y_j]`` from the exponent ROM (one read port
   per lane) into a register, a word a cycle, and each word's sum into
   ``S = Σ e_j`` the cycle after (a carry-save tree and one add); in its
   first cycle the stage reads the row's maximum from the load stage's
   register;
3. tail: the row's last word's exponents summed into ``S``, the cycle
   after the exponent stage read them (:data:`LossUnit.SUM_LATENCY`); the
   stage keeps the row until the emit stage takes it;
4. emit, a word a cycle: ``q_j = floor((e_j · 2^(e_frac+1) + S) / (2S))`` by an 8-step
   restoring divider per lane (q < 256), ``p_j = min(q_j, 127)``,
   ``dY_j = p_j - 2^e_frac · [j == label]``. The stage issues a word a
   cycle into the divider's pipeline (:data:`LossUnit.DIVIDER_STEPS`: two
   restoring steps a cycle at most), whose last stage is the ``errors``
   stream's word; a word leaves :data:`LossUnit.LATENCY` (5) cycles after
   its issue, and the pipeline stalls as a whole while ``errors`` is not
   ready.

MSE: ``dY_j = sat8(y_j - 2^a_frac · [j == label])``, from the logits, in
the emit stage (its rows pass the exponent stage and the divider's
pipeline like the others).

A row moves to the next stage in the cycle its stage finishes it, if that
stage is empty or gives its own row on in the same cycle (the exponent
stage gives its row to the tail stage as it reads its last word, and
waits to read it until the tail stage can take the row). With no gaps in
and no back-pressure out, a row of W words takes 3W + 7 cycles from its
first word in to its last error out, and rows follow each other every W
cycles. The four stages hold a row each; the input register holds a
word of one more, and the divider's pipeline up to 5 words of rows the
emit stage has passed on.
The stages keep registers only for the lanes that can hold a class: with
``classes`` not a multiple of ``lanes``, the last word's lanes past it are
constant 0.

Bad input has a defined answer. A ``count`` above ``classes`` (the port is
wider) counts as ``classes``. A ``last`` before ``count`` lanes have come
ends the row, and the row's count is then the lanes its words brought. A
``label`` at or past the row's count marks no class. The errors are those
of the row so defined, in as many words as it has.
``logits.ready`` is low only while the input register holds a word and
the load stage a whole row that the exponent stage cannot take yet (it
does not depend on ``logits.valid``); ``errors.valid`` is high while the
divider's last stage holds a word.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from reference.training_numerics import Numerics, exp_rom

__all__ = ["LossUnit", "Loss", "word_layout"]


class Loss(enum.Enum, shape=1):
    """The loss whose dL/dY the unit computes."""

    CE = 0  #: softmax cross-entropy
    MSE = 1  #: mean squared error


def word_layout(lanes):
    """One stream word: ``lanes`` int8 and the row's ``last`` flag."""
    return data.StructLayout({"data": data.ArrayLayout(signed(8), lanes), "last": 1})


def _carry_save_sum(m, values, width):
    """The sum of ``values`` (unsigned) mod 2^``width``: carry-save adders (each three values to two,
    bit by bit, with no carry chain) until two are left, then one add (issue 13: one carry chain after
    the exponent ROM, not one per lane)."""
    vals = [Value.cast(v) for v in values]
    level = 0
    while len(vals) > 2:
        level += 1
        out = []
        for i in range(0, len(vals) - 2, 3):
            a, b, c = vals[i : i + 3]
            s, carry = Signal(width, name=f"csa{level}_{i}_s"), Signal(width, name=f"csa{level}_{i}_c")
            m.d.comb += [s.eq(a ^ b ^ c), carry.eq(((a & b) | (a & c) | (b & c)) << 1)]
            out += [s, carry]
        vals = out + vals[3 * (len(vals) // 3) :]  # and the one or two left over
    return (vals[0] + vals[1])[:width] if len(vals) == 2 else vals[0][:width]


class LossUnit(wiring.Component):
    #: The emit stage's divider, pipelined (issue 13): the restoring steps (quotient bits, high
    #: first) done in each cycle from the word's issue on. Each cycle's steps end in a register, the
    #: last cycle's with the errors: a word leaves ``len(DIVIDER_STEPS)`` cycles after its issue.
    DIVIDER_STEPS = (1, 2, 2, 2, 1)
    LATENCY = len(DIVIDER_STEPS)
    #: Cycles a word taken from ``logits`` waits in the input register before the load stage takes it
    #: (issue 13: the register parts the logits' memory read from the maximum's compares).
    INPUT_LATENCY = 1
    #: Cycles between the exponent stage's read of a row's last word and the emit stage's first issue
    #: of the row (issue 13: the exponents' sum a cycle after their ROM read, in a tail stage).
    SUM_LATENCY = 1

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
        # In logic (``rom_style``): yosys would otherwise merge the registers after the reads into the
        # ports and, with 16 lanes, run out of memory fitting 16 synchronous ports to block RAM.
        m.submodules.rom = rom = memory.Memory(
            shape=unsigned(16), depth=256, init=exp_rom(n), attrs={"rom_style": "logic"}
        )
        rom_rd = [rom.read_port(domain="comb") for _ in range(P)]

        # Word w holds classes w·P to w·P + P - 1; the lanes past ``classes`` never hold one, so the
        # stages keep no register for them and read them as 0.
        live = [min(P, self.classes - w * P) for w in range(NW)]

        def words(name, shape):
            """A stage's words: the live lanes of each."""
            return [Signal(data.ArrayLayout(shape, live[w]), name=f"{name}_w{w}") for w in range(NW)]

        def store(dst, value):
            """``dst`` (a word of :func:`words`) takes the live lanes of ``value``, a word of P lanes."""
            return dst.eq(Value.cast(value)[: len(Value.cast(dst))])

        def pick(stored, index, shape):
            """Word ``index`` of ``stored``, as P lanes (0 past the live ones)."""
            width = Shape.cast(shape).width
            padded = [Cat(Value.cast(v), Const(0, width * (P - live[w]))) for w, v in enumerate(stored)]
            return data.View(data.ArrayLayout(shape, P), Array(padded)[index])

        def row(stage):
            """A stage's registers for its row: logit words, label, loss and count."""
            return {
                "y": words(f"{stage}_y", signed(8)),
                "label": Signal.like(self.label, name=f"{stage}_label"),
                "loss": Signal(Loss, name=f"{stage}_loss"),
                "count": Signal.like(self.count, name=f"{stage}_count"),
            }

        def take_row(dst, src):
            """Statements moving a row's registers (or the values they are about to take) into ``dst``."""
            return [store(dst["y"][w], src["y"][w]) for w in range(NW)] + [
                dst[k].eq(src[k]) for k in ("label", "loss", "count")
            ]

        def valid(word, lane, cnt):
            return (word * P + lane) < cnt

        def last_word(word, cnt):
            return ((word + 1) * P >= cnt) | (word == NW - 1)

        # -- the input register (issue 13: the logits come from a memory's read port, and the maximum's
        # compares follow): a word taken from ``logits`` waits here, with its row's label, loss and count,
        # until the load stage takes it. What the load stage needs of the word's place in its row is
        # worked out here, from the word's index in its row (``in_next``), so that the load stage starts
        # from registers: the lanes past the row's count read -128 (no logit is below it, so the maximum
        # ignores them; the later stages zero their errors), whether the word is the row's first and
        # whether it ends the row, and the row's count as the word leaves it. Bad input has a defined
        # answer: a count past ``classes`` counts ``classes``, and a row whose ``last`` comes before
        # ``count`` lanes ends there, its count the lanes it brought.
        in_valid = Signal()
        in_data = Signal(data.ArrayLayout(signed(8), P))
        in_w = Signal(range(NW + 1))  # the word's index in its row
        in_ends = Signal()  # the word is its row's last
        in_label, in_loss, in_count = Signal.like(self.label), Signal(Loss), Signal.like(self.count)
        in_next = Signal(range(NW + 1))  # the index in its row of the next word taken
        ld_full = Signal()  # the load stage holds a whole row the exponent stage has not taken
        take = Signal()  # the load stage takes the input register's word
        m.d.comb += [self.logits.ready.eq(~in_valid | ~ld_full), take.eq(in_valid & ~ld_full)]
        cnt = Mux(self.count > self.classes, self.classes, self.count)
        brought = (in_next + 1) * P
        ends = self.logits.payload.last | (brought >= cnt) | (in_next == NW - 1)
        with m.If(self.logits.valid & self.logits.ready):
            m.d.sync += [
                in_valid.eq(1),
                *(in_data[j].eq(Mux(valid(in_next, j, cnt), self.logits.payload.data[j], -128)) for j in range(P)),
                in_w.eq(in_next),
                in_ends.eq(ends),
                in_label.eq(self.label),
                in_loss.eq(self.loss),
                in_count.eq(Mux(self.logits.payload.last & (brought < cnt), brought, cnt)),
                in_next.eq(Mux(ends, 0, in_next + 1)),
            ]
        with m.Elif(take):
            m.d.sync += in_valid.eq(0)

        # -- load: keep the row's words and its maximum so far.
        ld = row("load")
        ld_y_max = Signal(signed(8))
        # The maximum of the row so far and the word's lanes, in one level of compares (issue 13): a
        # candidate at or above every other is a maximum, and the maxima are all the same value, so the
        # OR of the candidates, each AND-ed with its verdict, is the maximum. The running maximum takes
        # part as -128 before the row's first word.
        cands = []
        for i, v in enumerate([Mux(in_w == 0, Const(-128, signed(8)), ld_y_max), *(in_data[j] for j in range(P))]):
            cand = Signal(signed(8), name=f"max_cand{i}")
            m.d.comb += cand.eq(v)
            cands.append(cand)
        best, picked = Signal(signed(8)), Const(0, 8)
        for i, c in enumerate(cands):
            top = Signal(name=f"max_is{i}")
            m.d.comb += top.eq(Cat(*(c >= other for k, other in enumerate(cands) if k != i)).all())
            picked = picked | Mux(top, c.as_unsigned(), 0)
        m.d.comb += best.eq(picked)
        # The load stage's row as it stands after this cycle's word, if one comes.
        loaded = {
            "y": [Mux(take & (in_w == w), in_data, ld["y"][w]) for w in range(NW)],
            "label": Mux(take, in_label, ld["label"]),
            "loss": Mux(take, in_loss, ld["loss"]),
            "count": Mux(take, in_count, ld["count"]),
        }
        ld_ready = ld_full | (in_valid & in_ends)  # a whole row, after this cycle
        with m.If(take):
            m.d.sync += [*take_row(ld, loaded), ld_y_max.eq(best)]
            with m.If(in_ends):
                m.d.sync += ld_full.eq(1)

        # -- exponents: word ex_w's ``e_j = E[max - y_j]`` from the ROM into a register (``e``), summed
        # into the row's total (``acc_total``) a cycle later. In the stage's first cycle the row's maximum
        # is still the load stage's register (issue 13: the maximum's compares end in a register before
        # anything reads them); the stage keeps it from then on.
        ex = row("exp")
        ex_y_max = Signal(signed(8))
        ex_w = Signal(range(NW + 1))
        ex_busy, ex_first, ex_last = Signal(), Signal(), Signal()  # holds a row; its first cycle; ex_w is its last word
        ex_ok = Signal()  # the stage reads word ex_w this cycle (its last only if the tail stage takes the row)
        ex_gives = Signal()
        y_max = Mux(ex_first, ld_y_max, ex_y_max)
        ex_y = pick(ex["y"], ex_w, signed(8))
        e_word = Signal(data.ArrayLayout(unsigned(16), P))
        for j in range(P):
            m.d.comb += [
                rom_rd[j].addr.eq((y_max - ex_y[j])[:8]),
                e_word[j].eq(Mux(valid(ex_w, j, ex["count"]), rom_rd[j].data, 0)),
            ]
        e_v, e_first, e_last = Signal(), Signal(), Signal()
        e_w = Signal(range(NW + 1))
        e = Signal(data.ArrayLayout(unsigned(16), P))
        m.d.sync += [e_v.eq(ex_ok), e_first.eq(ex_w == 0), e_last.eq(ex_last), e_w.eq(ex_w), e.eq(e_word)]
        with m.If(ex_first):
            m.d.sync += ex_y_max.eq(ld_y_max)
        acc_e = words("acc_e", unsigned(16))
        acc_total = Signal(unsigned(24))
        total = _carry_save_sum(m, [Mux(e_first, 0, acc_total), *(e[j] for j in range(P))], 24)
        with m.If(e_v):
            m.d.sync += acc_total.eq(total)
            for w in range(NW):  # each word's exponents kept under its index
                with m.If(e_w == w):
                    m.d.sync += store(acc_e[w], e)
        # The row's exponents as they stand after this cycle's word: those kept, the word in ``e`` in its place.
        summed = [Mux(e_w == w, e, Cat(Value.cast(acc_e[w]), Const(0, 16 * (P - live[w])))) for w in range(NW)]

        # -- tail: the row's last exponents summed, in the cycle after the exponent stage read them; the
        # stage keeps the row, its exponents and its total until the emit stage takes it.
        tl = row("tail")
        tl_busy, tl_first = Signal(), Signal()  # holds a row; its first cycle
        tl_e = words("tail_e", unsigned(16))
        tl_total = Signal(unsigned(24), name="tail_total")
        with m.If(tl_first):
            m.d.sync += [*(store(tl_e[w], summed[w]) for w in range(NW)), tl_total.eq(total)]

        # -- errors of word em_w: issued into the divider's pipeline (DIVIDER_STEPS), which the output
        # stream's back-pressure stalls as a whole; the last stage is the stream's payload.
        em = row("emit")
        em_w = Signal(range(NW + 1))
        em_busy, em_last = Signal(), Signal()  # the emit stage holds a row; em_w is its last word
        em_e = words("emit_e", unsigned(16))
        em_total = Signal(unsigned(24), name="emit_total")
        cur_y, cur_e = pick(em["y"], em_w, signed(8)), pick(em_e, em_w, unsigned(16))
        label, count = em["label"], em["count"]
        out_valid = Signal()
        advance, issue = Signal(), Signal()
        m.d.comb += [advance.eq(~out_valid | self.errors.ready), issue.eq(em_busy & advance)]
        # A word in the pipeline: the divisor 2S, each lane's partial remainder and quotient bits, and
        # what the last stage needs beside them.
        word = {"valid": issue, "last": em_last, "mse": em["loss"] == Loss.MSE, "divisor": em_total << 1}
        for j in range(P):
            is_label = (em_w * P + j) == label
            mse_error = Signal(signed(10), name=f"mse{j}")
            m.d.comb += mse_error.eq(cur_y[j] - Mux(is_label, Const(1 << n.a_frac, 9), 0))
            word |= {
                f"rem{j}": ((cur_e[j] << (n.e_frac_ce + 1)) + em_total)[:28],
                f"q{j}": Const(0, 8),
                f"label{j}": is_label,
                f"lane{j}": valid(em_w, j, count),
                f"mse{j}": Mux(mse_error > 127, 127, Mux(mse_error < -128, -128, mse_error))[:8].as_signed(),
            }
        bit = 8
        for stage, steps in enumerate(self.DIVIDER_STEPS):
            for _ in range(steps):  # restoring steps, quotient bit ``bit`` down
                bit -= 1
                shifted = word["divisor"] << bit
                for j in range(P):
                    # One subtract: its sign is the compare (issue 13: one carry chain a step, not two).
                    diff = Signal(signed(max(28, len(Value.cast(shifted))) + 1), name=f"diff{j}_{bit}")
                    q_bit = Signal(name=f"q{j}_{bit}")
                    rem = Signal(unsigned(28), name=f"rem{j}_{bit}")
                    m.d.comb += [
                        diff.eq(word[f"rem{j}"] - shifted),
                        q_bit.eq(~diff[-1]),
                        rem.eq(Mux(q_bit, diff[:28], word[f"rem{j}"])),
                    ]
                    word[f"rem{j}"], word[f"q{j}"] = rem, (word[f"q{j}"] | (q_bit << bit))[:8]
            if stage == len(self.DIVIDER_STEPS) - 1:  # the errors
                errors = []
                for j in range(P):
                    q = word[f"q{j}"]
                    ce_error = Mux(q > 127, 127, q) - Mux(word[f"label{j}"], one, 0)
                    errors.append(Mux(word[f"lane{j}"], Mux(word["mse"], word[f"mse{j}"], ce_error), 0)[:8].as_signed())
                word = {"valid": word["valid"], "last": word["last"], **{f"error{j}": e for j, e in enumerate(errors)}}
            regs = {}
            for name, v in word.items():
                shape = Value.cast(v).shape()
                regs[name] = Signal(shape, name=f"div{stage + 1}_{name}")
                with m.If(advance):
                    m.d.sync += regs[name].eq(v)
            word = regs
        assert bit == 0
        m.d.comb += [
            out_valid.eq(word["valid"]),
            self.errors.valid.eq(out_valid),
            self.errors.payload.last.eq(word["last"]),
            *(self.errors.payload.data[j].eq(word[f"error{j}"]) for j in range(P)),
        ]

        # -- hand-overs: a stage gives its row on when the next one is empty or gives its own on too. The
        # exponent stage gives its row to the tail stage as it reads its last word.
        em_gives = Signal()
        tl_gives = Signal()
        m.d.comb += [
            em_gives.eq(issue & em_last),
            tl_gives.eq(tl_busy & (~em_busy | em_gives)),
            ex_ok.eq(ex_busy & (~ex_last | ~tl_busy | tl_gives)),
            ex_gives.eq(ex_ok & ex_last),
        ]
        ld_gives = ld_ready & (~ex_busy | ex_gives)

        with m.If(ld_gives):
            m.d.sync += ld_full.eq(0)

        m.d.sync += ex_first.eq(ld_gives)
        with m.If(ex_ok & ~ex_last):
            m.d.sync += [ex_w.eq(ex_w + 1), ex_last.eq(last_word(ex_w + 1, ex["count"]))]
        with m.If(ex_gives):
            m.d.sync += ex_busy.eq(0)
        with m.If(ld_gives):
            m.d.sync += [*take_row(ex, loaded), ex_w.eq(0), ex_busy.eq(1), ex_last.eq(last_word(0, loaded["count"]))]

        m.d.sync += tl_first.eq(ex_gives)
        with m.If(tl_gives):
            m.d.sync += tl_busy.eq(0)
        with m.If(ex_gives):
            m.d.sync += [*take_row(tl, ex), tl_busy.eq(1)]

        with m.If(issue):
            m.d.sync += [em_w.eq(em_w + 1), em_last.eq(last_word(em_w + 1, count))]
            with m.If(em_last):
                m.d.sync += [em_w.eq(0), em_busy.eq(0)]
        with m.If(tl_gives):
            m.d.sync += [*take_row(em, tl), em_w.eq(0), em_busy.eq(1), em_last.eq(last_word(0, tl["count"]))]
            m.d.sync += [*(store(em_e[w], Mux(tl_first, summed[w], Value.cast(tl_e[w]))) for w in range(NW))]
            m.d.sync += em_total.eq(Mux(tl_first, total, tl_total))
        return m
