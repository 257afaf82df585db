"""The CFU-Playground SIMD int8 MAC unit.

:class:`CfuCore` is the design, in Amaranth's ``sync`` domain, with a
``lib.stream`` command input (:data:`COMMAND`) and response output
(:data:`RESPONSE`). :class:`Cfu` wraps it with CFU Playground's exact port
list, including its own ``clk`` and synchronous active-high ``reset`` ports,
and is what ``cfu.v`` holds: ``cmd_payload_inputs_0`` is ``cmd.payload.inputs_0``
and so on.

Timing (see ``docs/cfu_isa.md`` for the sketch):

* A command is taken in a cycle where ``cmd.valid & cmd.ready``; its operands
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
* ``rsp.valid`` holds, with ``rsp.payload`` stable, until ``rsp.ready``.
  While it waits, ``cmd.ready`` is low and nothing moves.
* During reset ``cmd.ready`` and ``rsp.valid`` are low; reset discards every
  op in flight (its response is never given) and restores the registers.
"""

from amaranth.hdl import ClockDomain, ClockSignal, DomainRenamer, Module, Mux, ResetSignal, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from reference import cfu_isa
from reference.cfu_isa import FUNCTION_ID_BITS, MAC4_FIRST, REG_RESET, REG_WIDTH, Funct3, Reg

from .output_stage import INT32_MAX, INT32_MIN, offset_clamp, rounding_divide, shift_amounts, srdhm_high

__all__ = ["CFU_PORTS", "LANES", "FUNCTION_ID", "COMMAND", "RESPONSE", "CfuCore", "Cfu"]

#: The four int8 lanes of a MAC4 operand word: lane i is bits [8i+7:8i].
#: Benches pack and unpack operand words with this layout.
LANES = data.ArrayLayout(signed(8), 4)

#: CFU Playground's ``function_id``: ``{funct7, funct3}``.
FUNCTION_ID = data.StructLayout({"funct3": 3, "funct7": FUNCTION_ID_BITS - 3})

#: A command: the op and ``rs1``, ``rs2``.
COMMAND = data.StructLayout({"function_id": FUNCTION_ID, "inputs_0": 32, "inputs_1": 32})

#: A response: the 32-bit result.
RESPONSE = data.StructLayout({"outputs_0": 32})

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

# One op in flight between acceptance and the multiply (stage 1).
_Stage1 = data.StructLayout(
    {
        "valid": 1,
        "done": 1,  # result is final (a fast op)
        "result": 32,  # fast op's response, or RDBPOT's dividend
        "use_mul": 1,  # the dividend is SRDHM(a, b), not result
        "a": signed(32),
        "b": signed(32),
        "exp": 5,  # RoundingDivideByPOT exponent
        "offset": signed(32),  # output stage; identity for SRDHM/RDBPOT
        "lo": signed(32),
        "hi": signed(32),
    }
)

# After the multiply (stage 2).
_Stage2 = data.StructLayout(
    {
        "valid": 1,
        "done": 1,
        "result": 32,
        "use_mul": 1,
        "prod": signed(64),
        "overflow": 1,  # a == b == INT32_MIN: SRDHM saturates
        "exp": 5,
        "offset": signed(32),
        "lo": signed(32),
        "hi": signed(32),
    }
)


class CfuCore(wiring.Component):
    """CFU Playground's command/response interface as two streams, in the ``sync`` domain.

    Attributes
    ----------
    cmd : In(stream.Signature(COMMAND))
        Commands; one is taken in a cycle where ``valid`` and ``ready`` are
        both high, and its payload is read only in that cycle.
    rsp : Out(stream.Signature(RESPONSE))
        Responses, in command order; the payload holds until taken.
    """

    #: Cycles from the accepting cycle to ``rsp_valid`` for MAC4, SET, GET and
    #: undefined ops, when nothing older is in flight (the spec's, which the
    #: pipeline below implements).
    FAST_LATENCY = cfu_isa.FAST_LATENCY
    #: Cycles from the accepting cycle to ``rsp_valid`` for SRDHM, RDBPOT, POST.
    SLOW_LATENCY = cfu_isa.SLOW_LATENCY

    def __init__(self):
        super().__init__({"cmd": In(stream.Signature(COMMAND)), "rsp": Out(stream.Signature(RESPONSE))})

    def elaborate(self, platform):
        m = Module()
        cmd, rsp = self.cmd, self.rsp

        regs = {reg: Signal(signed(REG_WIDTH[reg]), name=reg.name.lower(), init=REG_RESET[reg]) for reg in Reg}
        acc = regs[Reg.ACC]
        shift = regs[Reg.OUTPUT_SHIFT]

        s1 = Signal(_Stage1)
        s2 = Signal(_Stage2)
        out_valid = Signal()
        out_data = Signal(32)

        # -- handshake ------------------------------------------------------
        in_reset = ResetSignal()
        stall = out_valid & ~rsp.ready
        advance = ~stall
        take = Signal()
        m.d.comb += [
            cmd.ready.eq(advance & ~in_reset),
            take.eq(cmd.valid & cmd.ready),
            rsp.valid.eq(out_valid & ~in_reset),
            rsp.payload.outputs_0.eq(out_data),
        ]

        # -- decode, in the accepting cycle ---------------------------------
        funct3, funct7 = cmd.payload.function_id.funct3, cmd.payload.function_id.funct7
        in0, in1 = cmd.payload.inputs_0, cmd.payload.inputs_1
        reg_defined = funct7 < len(Reg)
        plain = ~funct7.any()  # SRDHM, RDBPOT and POST have no funct7 variants
        is_mac = (funct3 == Funct3.MAC4) & (funct7 <= MAC4_FIRST)
        is_set = (funct3 == Funct3.SET) & reg_defined
        is_get = (funct3 == Funct3.GET) & reg_defined
        is_srdhm = (funct3 == Funct3.SRDHM) & plain
        is_rdbpot = (funct3 == Funct3.RDBPOT) & plain
        is_post = (funct3 == Funct3.POST) & plain
        is_slow = is_srdhm | is_rdbpot | is_post

        # MAC4: four 9x8-bit signed products, summed into acc (wraps at 32).
        lanes0, lanes1 = LANES(in0), LANES(in1)
        products = [(lanes0[i] + regs[Reg.INPUT_OFFSET]) * lanes1[i] for i in range(LANES.length)]
        mac_base = Mux(funct7 == MAC4_FIRST, 0, acc)
        new_acc = Signal(signed(32))
        m.d.comb += new_acc.eq(sum(products, mac_base))

        # GET: the register, sign-extended; SET: in0 truncated to the register.
        reg_value = Signal(signed(32))
        set_value = Signal(signed(32))
        with m.Switch(funct7):
            for reg in Reg:
                with m.Case(reg):
                    m.d.comb += [reg_value.eq(regs[reg]), set_value.eq(in0[: REG_WIDTH[reg]].as_signed())]
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
            m.d.comb += fast_result.eq(in0)  # the dividend, not a response

        # POST: x = (acc + bias) << max(shift, 0), wrapping at 32 bits.
        left, right = shift_amounts(shift)
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
        srdhm = srdhm_high(m, s2.prod, s2.overflow)
        dividend = Signal(signed(32))
        m.d.comb += dividend.eq(Mux(s2.use_mul, srdhm, s2.result))
        # RDBPOT(x, e) = (x >> e) + ((x & mask) > (mask >> 1) + (x < 0)).
        rounded = rounding_divide(m, dividend, s2.exp)
        slow_result = offset_clamp(m, rounded, s2.offset, s2.lo, s2.hi)

        with m.If(advance):
            # The response register takes the oldest finished op. A finished
            # op jumps ahead only when every older stage is empty.
            s1_jumps = s1.valid & s1.done & ~s2.valid
            new_jumps = new.valid & new.done & ~s1.valid & ~s2.valid
            with m.If(s2.valid):
                m.d.sync += [out_valid.eq(1), out_data.eq(Mux(s2.done, s2.result, slow_result))]
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

    ``clk`` clocks the unit; ``reset`` is synchronous and active high. The
    other ports are :class:`CfuCore`'s stream members under CFU Playground's
    names (``cmd_payload_inputs_0`` is ``cmd.payload.inputs_0``), with the
    same timing.
    """

    FAST_LATENCY = CfuCore.FAST_LATENCY
    SLOW_LATENCY = CfuCore.SLOW_LATENCY

    def __init__(self):
        super().__init__({**CFU_PORTS, "reset": In(1), "clk": In(1)})

    def elaborate(self, platform):
        return cfu_playground_ports(self, CfuCore())


def cfu_playground_ports(wrapper, core):
    """A module running ``core`` (a component with ``cmd``/``rsp`` streams of :data:`COMMAND` and
    :data:`RESPONSE`) on ``wrapper``'s CFU Playground ports (:data:`CFU_PORTS`, ``clk``, ``reset``)."""
    m = Module()
    # A domain of its own, local, so that a design instantiating the CFU
    # (the SoC) keeps its own sync domain.
    m.domains.cfu = ClockDomain("cfu", local=True)
    m.d.comb += [ClockSignal("cfu").eq(wrapper.clk), ResetSignal("cfu").eq(wrapper.reset)]
    m.submodules.core = core = DomainRenamer("cfu")(core)
    # CFU Playground's names for the two streams' members.
    m.d.comb += [
        core.cmd.valid.eq(wrapper.cmd_valid),
        wrapper.cmd_ready.eq(core.cmd.ready),
        core.cmd.payload.function_id.eq(wrapper.cmd_payload_function_id),
        core.cmd.payload.inputs_0.eq(wrapper.cmd_payload_inputs_0),
        core.cmd.payload.inputs_1.eq(wrapper.cmd_payload_inputs_1),
        wrapper.rsp_valid.eq(core.rsp.valid),
        core.rsp.ready.eq(wrapper.rsp_ready),
        wrapper.rsp_payload_outputs_0.eq(core.rsp.payload.outputs_0),
    ]
    return m
