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
* Architectural state changes in command order, so a command always sees
  every earlier command's effect: SET at the edge that ends the accepting
  cycle; ``acc`` is read and added to in stage 1 (MAC4, GET ACC, POST), a
  cycle later, and a SET ACC's write, at its accepting edge, comes after every
  older op's stage 1.
* SET, GET and undefined ops are *fast*: their response is final at
  acceptance. MAC4 and GET ACC answer from stage 1 (:attr:`CfuCore.MAC_LATENCY`).
  SRDHM, RDBPOT and POST are *slow*: they pass :attr:`CfuCore.STAGES` stages,
  cut for a 100 MHz clock (``docs/cfu_isa.md``): POST's ``acc + bias``; its
  left shift; the 32×32 product's four 16×16 parts; their two halves; SRDHM's
  sum and rounding; RoundingDivideByPOT's shift and round-up bit; the offset
  add; then the clamp into the response register.
* A response never overtakes an older one: a finished op jumps straight to
  the response register only when nothing older is in flight. So, when nothing older is in flight, a fast op answers
  :attr:`CfuCore.FAST_LATENCY` cycles after it is taken, MAC4 and GET ACC
  :attr:`CfuCore.MAC_LATENCY` and a slow op :attr:`CfuCore.SLOW_LATENCY`.
* ``rsp.valid`` holds, with ``rsp.payload`` stable, until ``rsp.ready``.
  While it waits, ``cmd.ready`` is low and nothing moves.
* During reset ``cmd.ready`` and ``rsp.valid`` are low; reset discards every
  op in flight (its response is never given) and restores the registers.
"""

import operator
from functools import reduce

from amaranth.hdl import Cat, ClockDomain, ClockSignal, DomainRenamer, Module, Mux, ResetSignal, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from reference import cfu_isa
from reference.cfu_isa import FUNCTION_ID_BITS, MAC4_FIRST, REG_RESET, REG_WIDTH, Funct3, Reg

from .output_stage import (
    INT32_MAX,
    INT32_MIN,
    clamp,
    left_shift,
    partial_products,
    product_halves,
    round_offset,
    rounding_masks,
    rounding_split,
    shift_amounts,
    srdhm_sum,
)

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
    #: Cycles from the accepting cycle to ``rsp_valid`` for MAC4 and GET ACC.
    MAC_LATENCY = cfu_isa.MAC_LATENCY
    #: Pipeline stages between acceptance and the response register.
    STAGES = SLOW_LATENCY - 1

    def __init__(self):
        super().__init__({"cmd": In(stream.Signature(COMMAND)), "rsp": Out(stream.Signature(RESPONSE))})

    def elaborate(self, platform):
        m = Module()
        cmd, rsp = self.cmd, self.rsp

        regs = {reg: Signal(signed(REG_WIDTH[reg]), name=reg.name.lower(), init=REG_RESET[reg]) for reg in Reg}
        acc = regs[Reg.ACC]
        shift = regs[Reg.OUTPUT_SHIFT]

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

        # MAC4: four 9x8-bit signed products, registered at acceptance, summed and
        # added into acc in stage 1 (wraps at 32). acc is read and written only in
        # stage 1, in command order: by MAC4, GET ACC and POST there, and by
        # SET ACC at its accepting edge, which is never before an older op's
        # stage 1 (so a SET ACC's write wins over the MAC4 in stage 1 beside it).
        lanes0, lanes1 = LANES(in0), LANES(in1)
        # The four products are registered as they leave their multipliers (in a larger
        # design the DSPs sit far from the adders); stage 1 sums them and adds acc.
        products = [(lanes0[i] + regs[Reg.INPUT_OFFSET]) * lanes1[i] for i in range(LANES.length)]
        is_get_acc = is_get & (funct7 == Reg.ACC)
        is_acc_op = is_mac | is_get_acc  # answered from stage 1

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
        with m.If(is_set):
            m.d.comb += fast_result.eq(set_value)
        with m.Elif(is_get):
            m.d.comb += fast_result.eq(reg_value)

        left, right = shift_amounts(shift)

        # -- the pipeline ---------------------------------------------------
        # Stage k (1..STAGES) holds the op taken k cycles ago (while nothing
        # stalls): valid, done (a fast op's final result rides in ``result``),
        # and a slow op's operands and partial results, which output_stage's
        # helpers compute one piece a stage. Everything moves under ``advance``.
        n = self.STAGES
        valid = [Signal(name=f"s{k}_valid") for k in range(1, n + 1)]
        done = [Signal(name=f"s{k}_done") for k in range(1, n + 1)]
        result = [Signal(32, name=f"s{k}_result") for k in range(1, n + 1)]

        # Stage 0 is the accepting cycle: MAC4's sum, and the slow op's operands.
        slow = {
            "mac": is_mac,
            "first": funct7 == MAC4_FIRST,
            **{f"p{i}": products[i] for i in range(LANES.length)},
            "get_acc": is_get_acc,
            "post": is_post,
            "use_mul": is_srdhm | is_post,
            "x": in0.as_signed(),  # POST's bias, SRDHM's a, RDBPOT's dividend
            "left": Mux(is_post, left, 0),
            "b": Mux(is_post, regs[Reg.OUTPUT_MULTIPLIER], in1)[:32].as_signed(),
            "exp": Mux(is_post, right, Mux(is_rdbpot, in1[:5], 0)),
            "offset": Mux(is_post, regs[Reg.OUTPUT_OFFSET], 0),
            "lo": Mux(is_post, regs[Reg.ACT_MIN], INT32_MIN),
            "hi": Mux(is_post, regs[Reg.ACT_MAX], INT32_MAX),
        }
        stage_data = [slow]

        def register(k, values):
            """Stage k's registers of ``values`` (a dict of names to values), loaded under ``advance``."""
            regs_k = {}
            for name, value in values.items():
                value = Value.cast(value)
                reg = Signal(value.shape(), name=f"s{k}_{name}")
                with m.If(advance):
                    m.d.sync += reg.eq(value)
                regs_k[name] = reg
            stage_data.append(regs_k)
            return regs_k

        def keep(d, *names):
            return {name: d[name] for name in names}

        s1 = register(1, slow)
        # Stage 1: MAC4 adds into acc (under advance: the op leaves stage 1 at that
        # edge); GET ACC reads it; POST adds its bias to it.
        new_acc = Signal(signed(32))
        m.d.comb += new_acc.eq(Mux(s1["first"], 0, acc) + ((s1["p0"] + s1["p1"]) + (s1["p2"] + s1["p3"])))
        with m.If(advance & valid[0] & s1["mac"]):
            m.d.sync += acc.eq(new_acc)
        with m.If(take):  # SETs at the accepting edge; a SET ACC wins over stage 1's MAC4
            for reg in Reg:
                with m.If(is_set & (funct7 == reg)):
                    m.d.sync += regs[reg].eq(set_value)
        s1_answer = Mux(s1["mac"], new_acc, Mux(s1["get_acc"], acc, result[0]))
        s2 = register(
            2,
            {
                **keep(s1, "use_mul", "left", "b", "exp", "offset", "lo", "hi"),
                "pre": Mux(s1["post"], (acc + s1["x"])[:32], s1["x"]).as_signed(),
            },
        )
        s3 = register(
            3,
            {
                **keep(s2, "use_mul", "b", "exp", "offset", "lo", "hi"),
                "a": left_shift(s2["pre"], s2["left"]),
                **rounding_masks(s2["exp"]),
            },
        )
        s4 = register(
            4,
            {
                **keep(s3, "use_mul", "a", "exp", "mask", "half", "offset", "lo", "hi"),
                **partial_products(s3["a"], s3["b"]),
                "half1": s3["half"] + 1,
            },
        )
        s5 = register(
            5,
            {
                **keep(s4, "use_mul", "a", "overflow", "exp", "mask", "half", "half1", "offset", "lo", "hi"),
                **product_halves(s4),
                "inverted": s4["lo"] > s4["hi"],
            },
        )
        s6 = register(
            6,
            {
                **keep(s5, "exp", "mask", "half", "half1", "offset", "lo", "hi", "inverted"),
                "dividend": Mux(s5["use_mul"], srdhm_sum(s5["lohi"], s5["cross"], s5["overflow"]), s5["a"]),
            },
        )
        s7 = register(
            7,
            {
                **keep(s6, "offset", "lo", "hi", "inverted"),
                **rounding_split(s6["dividend"], s6["exp"], s6["mask"], s6["half"], s6["half1"]),
            },
        )
        s8 = register(
            8,
            {**keep(s7, "lo", "hi", "inverted"), "v": round_offset(s7["shifted"], s7["up"], s7["offset"])},
        )
        assert len(stage_data) == n + 1
        slow_result = clamp(m, s8["v"], s8["lo"], s8["hi"], s8["inverted"])

        # The response register takes the oldest op if it is finished: the last
        # stage's always is, an earlier stage's or the new one's when it is a
        # fast op and every older stage is empty. So a fast op answers in the
        # cycle after it is taken when nothing older is in flight, and never
        # overtakes. At most one source is selected; the sources are or-ed.
        src_valid = [take] + valid
        src_done = [~is_slow & ~is_acc_op] + done
        src_result = [fast_result, s1_answer] + result[1:-1] + [Mux(done[-1], result[-1], slow_result)]
        sel = []
        for k in range(n + 1):
            older_empty = ~Cat(*valid[k:]).any() if k < n else 1
            sel_k = Signal(name=f"sel{k}")
            m.d.comb += sel_k.eq(src_valid[k] & (src_done[k] | (k == n)) & older_empty)
            sel.append(sel_k)
        with m.If(advance):
            m.d.sync += [
                out_valid.eq(Cat(*sel).any()),
                out_data.eq(reduce(operator.or_, [Mux(sel[k], src_result[k], 0) for k in range(n + 1)])),
            ]
            for k in range(n):
                m.d.sync += [
                    valid[k].eq(src_valid[k] & ~sel[k]),
                    done[k].eq(src_done[k] if k else ~is_slow),  # an acc op is done in stage 1
                    result[k].eq(src_result[k]),
                ]

        return m


class Cfu(wiring.Component):
    """:class:`CfuCore` with CFU Playground's port list, for ``cfu.v``.

    ``clk`` clocks the unit; ``reset`` is synchronous and active high. The
    other ports are :class:`CfuCore`'s stream members under CFU Playground's
    names (``cmd_payload_inputs_0`` is ``cmd.payload.inputs_0``), with the
    same timing.
    """

    FAST_LATENCY = CfuCore.FAST_LATENCY
    MAC_LATENCY = CfuCore.MAC_LATENCY
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
