"""``LossUnit``: dL/dY of one sample's logits, softmax cross-entropy or MSE.

Stream in a sample's int8 logits, one a cycle (``in_last`` on the last,
``label`` and ``loss`` held while they come in); stream out its int8 errors
in the same order. Cross-entropy, as :func:`reference.training.loss_error`:

1. load: keep the logits, track their maximum;
2. exponents: ``e_i = E[max - y_i]`` from the exponent ROM, ``S = Σ e_i``;
3. per class, one a cycle: ``q_i = floor((e_i · 2^(e_frac+1) + S) / (2S))``
   by an unrolled 8-step restoring divider (q < 256), ``p_i = min(q_i, 127)``,
   ``dY_i = p_i - 2^e_frac · [i == label]``.

A row of K logits takes 3K cycles plus the wait for the errors to be taken.

MSE: ``dY_i = sat8(y_i - 2^a_frac · [i == label])``, straight from the buffer.
``in_ready`` is high only while loading; the next sample loads once the
last error has been taken.
"""
from amaranth.hdl import Signal, Module, Mux, Const, Cat, signed, unsigned
from amaranth.lib import wiring, memory
from amaranth.lib.wiring import In, Out

from .numerics import Numerics, exp_rom

__all__ = ["LossUnit", "LOSS_CE", "LOSS_MSE"]

LOSS_CE, LOSS_MSE = 0, 1


class LossUnit(wiring.Component):
    def __init__(self, classes=10, numerics=Numerics()):
        if not 2 <= classes <= 256:
            raise ValueError(f"classes must be in 2..256, not {classes}")
        self.classes, self.numerics = classes, numerics
        super().__init__({
            "loss": In(1),
            "label": In(range(classes)),
            "in_valid": In(1), "in_ready": Out(1), "in_data": In(signed(8)), "in_last": In(1),
            "out_valid": Out(1), "out_ready": In(1), "out_data": Out(signed(8)), "out_last": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        n, K = self.numerics, self.classes
        one = 1 << n.e_frac_ce
        m.submodules.logits = logits = memory.Memory(shape=signed(8), depth=K, init=[])
        m.submodules.exps = exps = memory.Memory(shape=unsigned(16), depth=K, init=[])
        m.submodules.rom = rom = memory.Memory(shape=unsigned(16), depth=256, init=exp_rom(n))
        y_wr, y_rd = logits.write_port(), logits.read_port(domain="comb")
        e_wr, e_rd = exps.write_port(), exps.read_port(domain="comb")
        rom_rd = rom.read_port(domain="comb")

        count = Signal(range(K + 1))         # logits loaded
        i = Signal(range(K + 1))
        y_max = Signal(signed(8))
        total = Signal(unsigned(20))         # S = Σ e_i <= 256 · 2^15
        label, loss = Signal.like(self.label), Signal()
        LOAD, EXP, EMIT = range(3)
        state = Signal(range(3), init=LOAD)
        m.d.comb += [y_rd.addr.eq(i), e_rd.addr.eq(i), rom_rd.addr.eq((y_max - y_rd.data)[:8])]

        target = Mux(i == label, Const(1 << n.a_frac, 9), 0)
        mse_error = Signal(signed(10))
        m.d.comb += mse_error.eq(y_rd.data - target)
        # The divider, unrolled: quotient bits 7..0 of (e_i · 2^(e_frac+1) + S) / (2S), q < 256.
        rem = Signal(unsigned(28), name="rem_in")
        m.d.comb += rem.eq((e_rd.data << (n.e_frac_ce + 1)) + total)
        q_bits = []
        for bit in reversed(range(8)):
            shifted = (total << 1) << bit
            take = Signal(name=f"q{bit}")
            nxt = Signal(unsigned(28), name=f"rem{bit}")
            m.d.comb += [take.eq(rem >= shifted), nxt.eq(Mux(take, rem - shifted, rem))]
            q_bits.append(take)
            rem = nxt
        q = Signal(unsigned(8))
        m.d.comb += q.eq(Cat(*reversed(q_bits)))
        ce_error = Mux(q > 127, 127, q) - Mux(i == label, one, 0)

        with m.Switch(state):
            with m.Case(LOAD):
                m.d.comb += [self.in_ready.eq(1), y_wr.addr.eq(count), y_wr.data.eq(self.in_data),
                             y_wr.en.eq(self.in_valid)]
                with m.If(self.in_valid):
                    m.d.sync += [count.eq(count + 1), label.eq(self.label), loss.eq(self.loss),
                                 y_max.eq(Mux((count == 0) | (self.in_data > y_max), self.in_data, y_max))]
                    with m.If(self.in_last | (count == K - 1)):
                        m.d.sync += [i.eq(0), total.eq(0),
                                     state.eq(Mux(self.loss == LOSS_MSE, EMIT, EXP))]
            with m.Case(EXP):
                m.d.comb += [e_wr.addr.eq(i), e_wr.data.eq(rom_rd.data), e_wr.en.eq(1)]
                m.d.sync += [total.eq(total + rom_rd.data), i.eq(i + 1)]
                with m.If(i == count - 1):
                    m.d.sync += [i.eq(0), state.eq(EMIT)]
            with m.Default():                # EMIT one error
                m.d.comb += [
                    self.out_valid.eq(1), self.out_last.eq(i == count - 1),
                    self.out_data.eq(Mux(loss == LOSS_MSE,
                                         Mux(mse_error > 127, 127, Mux(mse_error < -128, -128, mse_error)),
                                         ce_error)),
                ]
                with m.If(self.out_ready):
                    m.d.sync += i.eq(i + 1)
                    with m.If(i == count - 1):
                        m.d.sync += [count.eq(0), state.eq(LOAD)]
        return m
