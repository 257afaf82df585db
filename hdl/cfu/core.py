"""The CFU-Playground SIMD int8 MAC unit.

:class:`CfuCore` is the design, in Amaranth's ``sync`` domain. :class:`Cfu`
wraps it with CFU Playground's exact port list, including its own ``clk`` and
synchronous active-high ``reset`` ports, and is what ``cfu.v`` holds.

Timing (see ``docs/cfu_isa.md`` for the sketch):

* A command is taken in a cycle where ``cmd_valid & cmd_ready``; its operands
  are read only in that cycle.
* All architectural state (registers, ``acc``) changes at the clock edge that
  ends the accepting cycle, in command order, so a command always sees every
  earlier command's effect.
* MAC4, SET, GET and undefined ops are *fast*: their response is final at
  acceptance. SRDHM, RDBPOT and POST are *slow*: they pass a multiply stage and
  a rounding stage. A response never overtakes an older one: a finished op
  jumps straight to the response register only when nothing older is in
  flight. So a fast op answers :attr:`CfuCore.FAST_LATENCY` cycles after it is
  taken (when nothing older is in flight) and a slow op
  :attr:`CfuCore.SLOW_LATENCY` cycles after.
* ``rsp_valid`` holds, with ``rsp_payload_outputs_0`` stable, until
  ``rsp_ready``. While it waits, ``cmd_ready`` is low and nothing moves.
* During reset ``cmd_ready`` and ``rsp_valid`` are low; reset discards every
  op in flight (its response is never given) and restores the registers.
"""
from amaranth.hdl import (Signal, Module, Mux, Const, ClockDomain, ClockSignal, ResetSignal, DomainRenamer,
                          signed)
from amaranth.lib import wiring, data
from amaranth.lib.wiring import In, Out

from reference import cfu_isa
from reference.cfu_isa import Funct3, Reg, REG_WIDTH, REG_RESET, FUNCTION_ID_BITS, MAC4_FIRST

__all__ = ["CFU_PORTS", "CfuCore", "Cfu"]

#: CFU Playground's command/response ports, in its order and with its names.
CFU_PORTS = {
    "cmd_valid": In(1),
    "cmd_ready": Out(1),
    "cmd_payload_function_id": In(FUNCTION_ID_BITS),
    "cmd_payload_inputs_0": In(32),
    "cmd_payload_inputs_1": In(32),
    "rsp_valid": Out(1),
    "rsp_ready": In(1),
    "rsp_payload_outputs_0": Out(32),
}

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

# One op in flight between acceptance and the multiply (stage 1).
_Stage1 = data.StructLayout({
    "valid": 1,
    "done": 1,              # result is final (a fast op)
    "result": 32,           # fast op's response, or RDBPOT's dividend
    "use_mul": 1,           # the dividend is SRDHM(a, b), not result
    "a": signed(32),
    "b": signed(32),
    "exp": 5,               # RoundingDivideByPOT exponent
    "offset": signed(32),   # output stage; identity for SRDHM/RDBPOT
    "lo": signed(32),
    "hi": signed(32),
})

# After the multiply (stage 2).
_Stage2 = data.StructLayout({
    "valid": 1,
    "done": 1,
    "result": 32,
    "use_mul": 1,
    "prod": signed(64),
    "overflow": 1,          # a == b == INT32_MIN: SRDHM saturates
    "exp": 5,
    "offset": signed(32),
    "lo": signed(32),
    "hi": signed(32),
})


class CfuCore(wiring.Component):
    """CFU Playground's command/response interface, in the ``sync`` domain.

    Attributes
    ----------
    cmd_valid, cmd_ready : 1 bit
        Command handshake; taken when both are high in a cycle.
    cmd_payload_function_id : 10 bits
        ``{funct7, funct3}``.
    cmd_payload_inputs_0, cmd_payload_inputs_1 : 32 bits
        ``rs1`` and ``rs2``; read only in the accepting cycle.
    rsp_valid, rsp_ready : 1 bit
        Response handshake; the payload holds until taken.
    rsp_payload_outputs_0 : 32 bits
        The response.
    """

    #: Cycles from the accepting cycle to ``rsp_valid`` for MAC4, SET, GET and
    #: undefined ops, when nothing older is in flight (the spec's, which the
    #: pipeline below implements).
    FAST_LATENCY = cfu_isa.FAST_LATENCY
    #: Cycles from the accepting cycle to ``rsp_valid`` for SRDHM, RDBPOT, POST.
    SLOW_LATENCY = cfu_isa.SLOW_LATENCY

    def __init__(self):
        super().__init__(CFU_PORTS)

    def elaborate(self, platform):
        m = Module()

        regs = {reg: Signal(signed(REG_WIDTH[reg]), name=reg.name.lower(), init=REG_RESET[reg])
                for reg in Reg}
        acc = regs[Reg.ACC]
        shift = regs[Reg.OUTPUT_SHIFT]

        s1 = Signal(_Stage1)
        s2 = Signal(_Stage2)
        out_valid = Signal()
        out_data = Signal(32)

        # -- handshake ------------------------------------------------------
        in_reset = ResetSignal()
        stall = out_valid & ~self.rsp_ready
        advance = ~stall
        take = Signal()
        m.d.comb += [
            self.cmd_ready.eq(advance & ~in_reset),
            take.eq(self.cmd_valid & self.cmd_ready),
            self.rsp_valid.eq(out_valid & ~in_reset),
            self.rsp_payload_outputs_0.eq(out_data),
        ]

        # -- decode, in the accepting cycle ---------------------------------
        fid = self.cmd_payload_function_id
        funct3, funct7 = fid[0:3], fid[3:10]
        in0, in1 = self.cmd_payload_inputs_0, self.cmd_payload_inputs_1
        reg_defined = funct7 < len(Reg)
        is_mac = (funct3 == Funct3.MAC4) & (funct7 <= MAC4_FIRST)
        is_set = (funct3 == Funct3.SET) & reg_defined
        is_get = (funct3 == Funct3.GET) & reg_defined
        is_srdhm = (funct3 == Funct3.SRDHM) & (funct7 == 0)
        is_rdbpot = (funct3 == Funct3.RDBPOT) & (funct7 == 0)
        is_post = (funct3 == Funct3.POST) & (funct7 == 0)
        is_slow = is_srdhm | is_rdbpot | is_post

        # MAC4: four 9x8-bit signed products, summed into acc (wraps at 32).
        products = [(in0.word_select(i, 8).as_signed() + regs[Reg.INPUT_OFFSET])
                    * in1.word_select(i, 8).as_signed() for i in range(4)]
        mac_base = Mux(funct7 == MAC4_FIRST, 0, acc)
        new_acc = Signal(signed(32))
        m.d.comb += new_acc.eq(mac_base + products[0] + products[1] + products[2] + products[3])

        # GET: the register, sign-extended; SET: in0 truncated to the register.
        reg_value = Signal(signed(32))
        set_value = Signal(signed(32))
        with m.Switch(funct7):
            for reg in Reg:
                with m.Case(reg):
                    m.d.comb += [reg_value.eq(regs[reg]),
                                 set_value.eq(in0[:REG_WIDTH[reg]].as_signed())]
            with m.Default():
                m.d.comb += [reg_value.eq(0), set_value.eq(0)]

        fast_result = Signal(32)
        with m.If(is_mac):
            m.d.comb += fast_result.eq(new_acc)
        with m.Elif(is_set):
            m.d.comb += fast_result.eq(set_value)
        with m.Elif(is_get):
            m.d.comb += fast_result.eq(reg_value)
        with m.Elif(is_rdbpot):
            m.d.comb += fast_result.eq(in0)      # the dividend, not a response

        # POST: x = (acc + bias) << max(shift, 0), wrapping at 32 bits.
        left = Mux(shift > 0, shift[:5], 0)
        right = Mux(shift < 0, Mux(shift == -32, 31, (-shift)[:5]), 0)
        post_x = Signal(32)
        m.d.comb += post_x.eq((acc + in0)[:32] << left)

        # -- state changes at the accepting edge ----------------------------
        with m.If(take):
            with m.If(is_mac):
                m.d.sync += acc.eq(new_acc)
            for reg in Reg:
                with m.If(is_set & (funct7 == reg)):
                    m.d.sync += regs[reg].eq(set_value)

        # -- the pipeline ---------------------------------------------------
        new = Signal(_Stage1)
        m.d.comb += [
            new.valid.eq(take),
            new.done.eq(~is_slow),
            new.result.eq(fast_result),
            new.use_mul.eq(is_srdhm | is_post),
            new.a.eq(Mux(is_post, post_x, in0)),
            new.b.eq(Mux(is_post, regs[Reg.OUTPUT_MULTIPLIER], in1)),
            new.exp.eq(Mux(is_post, right, Mux(is_rdbpot, in1[:5], 0))),
            new.offset.eq(Mux(is_post, regs[Reg.OUTPUT_OFFSET], 0)),
            new.lo.eq(Mux(is_post, regs[Reg.ACT_MIN], INT32_MIN)),
            new.hi.eq(Mux(is_post, regs[Reg.ACT_MAX], INT32_MAX)),
        ]

        # Stage 2 -> response: SRDHM's rounding, RDBPOT, offset and clamp.
        # SRDHM(a, b) = (a*b + 2**30) >> 31 (floor), saturated when a == b == MIN.
        srdhm = Signal(signed(32))
        m.d.comb += srdhm.eq(Mux(s2.overflow, INT32_MAX, (s2.prod + (1 << 30)) >> 31))
        dividend = Signal(signed(32))
        m.d.comb += dividend.eq(Mux(s2.use_mul, srdhm, s2.result))
        # RDBPOT(x, e) = (x >> e) + ((x & mask) > (mask >> 1) + (x < 0)).
        mask = Signal(32)
        m.d.comb += mask.eq((Const(1, 33) << s2.exp) - 1)
        rounded = Signal(signed(32))
        m.d.comb += rounded.eq((dividend >> s2.exp) +
                               ((dividend.as_unsigned() & mask) > ((mask >> 1) + dividend[31])))
        offset_added = Signal(signed(32))
        m.d.comb += offset_added.eq(rounded + s2.offset)
        lower = Signal(signed(32))
        m.d.comb += lower.eq(Mux(offset_added < s2.lo, s2.lo, offset_added))
        slow_result = Signal(32)
        m.d.comb += slow_result.eq(Mux(lower > s2.hi, s2.hi, lower))

        with m.If(advance):
            # The response register takes the oldest finished op. A finished
            # op jumps ahead only when every older stage is empty.
            s1_jumps = s1.valid & s1.done & ~s2.valid
            new_jumps = new.valid & new.done & ~s1.valid & ~s2.valid
            with m.If(s2.valid):
                m.d.sync += [out_valid.eq(1),
                             out_data.eq(Mux(s2.done, s2.result, slow_result))]
            with m.Elif(s1_jumps):
                m.d.sync += [out_valid.eq(1), out_data.eq(s1.result)]
            with m.Elif(new_jumps):
                m.d.sync += [out_valid.eq(1), out_data.eq(new.result)]
            with m.Else():
                m.d.sync += out_valid.eq(0)

            m.d.sync += [
                s2.valid.eq(s1.valid & ~s1_jumps),
                s2.done.eq(s1.done),
                s2.result.eq(s1.result),
                s2.use_mul.eq(s1.use_mul),
                s2.prod.eq(s1.a * s1.b),
                s2.overflow.eq((s1.a == INT32_MIN) & (s1.b == INT32_MIN)),
                s2.exp.eq(s1.exp),
                s2.offset.eq(s1.offset),
                s2.lo.eq(s1.lo),
                s2.hi.eq(s1.hi),
            ]
            m.d.sync += [s1.eq(new), s1.valid.eq(new.valid & ~new_jumps)]

        return m


class Cfu(wiring.Component):
    """:class:`CfuCore` with CFU Playground's port list, for ``cfu.v``.

    ``clk`` clocks the unit; ``reset`` is synchronous and active high. All
    other ports are :class:`CfuCore`'s, with the same timing.
    """

    FAST_LATENCY = CfuCore.FAST_LATENCY
    SLOW_LATENCY = CfuCore.SLOW_LATENCY

    def __init__(self):
        super().__init__({**CFU_PORTS, "reset": In(1), "clk": In(1)})

    def elaborate(self, platform):
        m = Module()
        # A domain of its own, local, so that a design instantiating Cfu
        # (the SoC) keeps its own sync domain.
        m.domains.cfu = ClockDomain("cfu", local=True)
        m.d.comb += [ClockSignal("cfu").eq(self.clk), ResetSignal("cfu").eq(self.reset)]
        m.submodules.core = core = DomainRenamer("cfu")(CfuCore())
        for name, member in CFU_PORTS.items():
            port, inner = getattr(self, name), getattr(core, name)
            if member.flow == wiring.In:
                m.d.comb += inner.eq(port)
            else:
                m.d.comb += port.eq(inner)
        return m
