"""Formal harness of the MAC4 CFU (``hdl.cfu.core.Cfu``, CFU Playground's ports).

The environment is free: ``cmd_valid``, the function id, both operands,
``rsp_ready`` and ``reset`` take any value in any cycle (CFU Playground's
protocol asks nothing of the CPU beyond holding a command until taken, and
the unit reads a command only in its accepting cycle, so not even that is
assumed). What is stated, per property group, is :attr:`CommandUnitHarness.GROUPS`
(against ``docs/cfu_isa.md``, "Handshake"); ``docs/verification.md`` lists it.
"""

from amaranth.hdl import Cat, ClockSignal, Elaboratable, Fragment, Module, Mux, ResetSignal, Signal

from hdl.cfu.core import Cfu
from reference.cfu_isa import FUNCTION_ID_BITS, MAC4_FIRST, REG_WIDTH, SLOW_LATENCY, Funct3, Reg

from .harness import CommandModel, Harness, find_signals

__all__ = ["CfuHarness", "cfu_unknown", "FAULTS"]

#: Faults a harness can put between the design and its environment, to show the
#: properties have teeth: each must make a proof fail.
FAULTS = {
    "drop": "a response whose low byte is 0xA5 is swallowed (taken inside, never shown)",
    "unstable": "the payload's bit 0 flips in a cycle after a back-pressured one",
}


def cfu_unknown(funct3, funct7):
    """The MAC4 family's "any other" ops (docs/cfu_isa.md): they answer 0 and change nothing."""
    return (
        ((funct3 == Funct3.MAC4) & (funct7 > MAC4_FIRST))
        | (((funct3 == Funct3.SET) | (funct3 == Funct3.GET)) & (funct7 >= len(Reg)))
        | (((funct3 == Funct3.SRDHM) | (funct3 == Funct3.RDBPOT) | (funct3 == Funct3.POST)) & (funct7 != 0))
        | (funct3 >= 6)
    )


class CommandUnitHarness(Harness):
    """The properties every CFU-Playground command/response unit here has; a subclass
    builds the design (:meth:`design`) and says which ops have answers known from the
    command alone (:meth:`expected`) and which are undefined (:meth:`unknown`)."""

    GROUPS = {
        "count": "no response without a command; none is lost (the oldest pending command answers "
        "within the documented latency once nothing holds it); at most the pipeline's depth in flight",
        "order": "responses come in command order, one per command: each response carries the answer "
        "of the oldest unanswered command (checked for the ops whose answer the command and the state "
        "at acceptance fix: SET, GSET, GET, undefined ops)",
        "backpressure": "while rsp_valid is high and rsp_ready low, the response (rsp_valid and its "
        "payload) holds to the next cycle and cmd_ready is low",
        "reset": "during reset cmd_ready and rsp_valid are low; after reset nothing is pending (no "
        "response until a new command)",
        "unknown": "an undefined function id changes no architectural register",
    }
    COVERS = {
        "answered": "a command accepted and answered",
        "three_answered": "three commands answered",
        "backpressured": "a back-pressured response taken",
        "watched": "a watched command's known answer checked (the order check fires)",
        "undefined": "an undefined op taken",
        "reset_in_flight": "a reset with a command in flight",
    }
    #: Commands in flight at most: the pipeline's stages and the response register
    #: (``CfuCore.STAGES + 1``, which is the slow ops' latency).
    MAX_IN_FLIGHT = SLOW_LATENCY

    def __init__(self, groups=None, *, covers=None, fault=None):
        super().__init__(groups, covers=covers)
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; choose one of {', '.join(FAULTS)}")
        self.fault = fault

    def elaborate(self, platform):
        m = Module()
        rst = ResetSignal()
        cmd_valid = self.free(1, "cmd_valid")
        function_id = self.free(FUNCTION_ID_BITS, "function_id")
        in0, in1 = self.free(32, "in0"), self.free(32, "in1")
        rsp_ready = self.free(1, "rsp_ready")
        funct3, funct7 = function_id[:3], function_id[3:]

        dut, regs = self.design()
        m.submodules.dut = dut
        m.d.comb += [
            dut.clk.eq(ClockSignal()),
            dut.reset.eq(rst),
            dut.cmd_valid.eq(cmd_valid),
            dut.cmd_payload_function_id.eq(function_id),
            dut.cmd_payload_inputs_0.eq(in0),
            dut.cmd_payload_inputs_1.eq(in1),
        ]
        # What the environment sees: the design's response, or a faulty copy of it.
        cmd_ready, rsp_valid, payload = dut.cmd_ready, Signal(), Signal(32)
        m.d.comb += [rsp_valid.eq(dut.rsp_valid), payload.eq(dut.rsp_payload_outputs_0), dut.rsp_ready.eq(rsp_ready)]
        if self.fault == "drop":
            drop = dut.rsp_valid & (dut.rsp_payload_outputs_0[:8] == 0xA5)
            m.d.comb += [rsp_valid.eq(dut.rsp_valid & ~drop), dut.rsp_ready.eq(rsp_ready | drop)]
        elif self.fault == "unstable":
            was_stalled = self.past(m, dut.rsp_valid & ~rsp_ready, "fault_was_stalled")
            m.d.comb += payload.eq(dut.rsp_payload_outputs_0 ^ Cat(was_stalled))

        accept = cmd_valid & cmd_ready
        give = rsp_valid & rsp_ready
        stalled = rsp_valid & ~rsp_ready

        # -- order: the abstract model ---------------------------------------
        known, expected = self.expected(m, funct3, funct7, in0)
        model = CommandModel(self.MAX_IN_FLIGHT)
        outstanding = model.elaborate(
            m, self, accept=accept, known=known, expected=expected, give=give, payload=payload, rst=rst
        )
        # None lost: cycles in a row with something pending, no response shown and nothing holding it.
        starve = Signal(8, name="starve")
        starving = (outstanding != 0) & ~rsp_valid & ~rst & ~self.holding(m)
        m.d.sync += starve.eq(Mux(starving, starve + 1, 0))
        self.check(m, "count", starve < self.MAX_LATENCY, "the oldest pending command answers in time")

        # -- back-pressure ---------------------------------------------------
        was_stalled = self.past(m, stalled & ~rst, "was_stalled")
        last_payload = self.past(m, payload, "last_payload")
        self.check(m, "backpressure", ~was_stalled | rst | rsp_valid, "a blocked response stays valid")
        self.check(m, "backpressure", ~was_stalled | rst | (payload == last_payload), "a blocked payload holds")
        self.check(m, "backpressure", ~stalled | ~cmd_ready, "no command taken while a response is blocked")
        self.extra_checks(m, cmd_ready=cmd_ready, stalled=stalled, rst=rst)

        # -- reset -----------------------------------------------------------
        was_rst = self.past(m, rst, "was_rst")
        self.check(m, "reset", ~rst | (~cmd_ready & ~rsp_valid), "cmd_ready and rsp_valid low during reset")
        self.check(m, "reset", ~was_rst | ~rsp_valid, "nothing pending after reset")

        # -- unknown ops -----------------------------------------------------
        took_unknown = self.past(m, accept & self.unknown(funct3, funct7), "took_unknown")
        # A MAC4 adds into acc in stage 1, in the first cycle after it is taken in which the unit
        # does not stall (docs/cfu_isa.md): that may be the cycle an undefined op is taken.
        mac_pending = Signal(name="mac_pending")
        is_mac = (funct3 == Funct3.MAC4) & (funct7 <= MAC4_FIRST)
        m.d.sync += mac_pending.eq((accept & is_mac) | (mac_pending & stalled))
        mac_landed = self.past(m, mac_pending, "mac_landed")
        acc = self._mac_regs[Reg.ACC]
        for reg in regs:
            before = self.past(m, reg, f"{reg.name}_before")
            kept = (reg == before) | mac_landed if reg is acc else reg == before
            self.check(m, "unknown", ~took_unknown | kept, f"an undefined op keeps {reg.name}")

        # -- covers: the properties are not vacuous ----------------------------
        gave = Signal(4, name="gave")
        with m.If(rst):
            m.d.sync += gave.eq(0)
        with m.Elif(give & (gave != 15)):
            m.d.sync += gave.eq(gave + 1)
        self.cover(m, "answered", give, "a command accepted and answered")
        self.cover(m, "three_answered", give & (gave == 2), "three commands answered")
        self.cover(m, "backpressured", was_stalled & give, "a back-pressured response taken")
        self.cover(m, "watched", model.watched, "a watched command's known answer checked")
        self.cover(m, "undefined", took_unknown, "an undefined op taken")
        self.cover(m, "reset_in_flight", rst & (outstanding != 0), "a reset with a command in flight")
        self.covers_more(m, accept=accept, give=give, funct3=funct3, funct7=funct7)
        return m

    # -- what a subclass says --------------------------------------------------
    MAX_LATENCY = SLOW_LATENCY

    def design(self):
        raise NotImplementedError

    def expected(self, m, funct3, funct7, in0):
        raise NotImplementedError

    def unknown(self, funct3, funct7):
        raise NotImplementedError

    def extra_checks(self, m, **kw):
        pass

    def holding(self, m):
        """High in a cycle in which the design may rightly hold a pending answer back."""
        return 0

    def covers_more(self, m, **kw):
        pass


def mac_get(m, regs, funct7, known, value):
    """GET's answer: the register at acceptance (its state before this command), sign-extended.
    Not for ACC: GET ACC reads it a cycle later, in stage 1, after an older MAC4 there has added to
    it, so its answer is not the register's value at acceptance (tb_cfu checks it against the model)."""
    for reg, sig in zip(Reg, regs):
        if reg == Reg.ACC:
            continue
        with m.If(funct7 == reg):
            m.d.comb += [known.eq(1), value.eq(sig)]


class CfuHarness(CommandUnitHarness):
    """``Cfu``: MAC4, SET, GET, SRDHM, RDBPOT, POST and undefined ops."""

    COVERS = {**CommandUnitHarness.COVERS, "post": "a POST (slow op) taken"}

    def design(self):
        dut = Cfu()
        frag = Fragment.get(dut, None)
        regs = find_signals(frag, ("core",), [reg.name.lower() for reg in Reg])
        self._mac_regs = regs
        return _Prebuilt(dut, frag), regs

    def expected(self, m, funct3, funct7, in0):
        known, value = Signal(name="known"), Signal(32, name="expected")
        with m.If(self.unknown(funct3, funct7)):
            m.d.comb += [known.eq(1), value.eq(0)]
        with m.Elif(funct3 == Funct3.SET):
            for reg in Reg:
                with m.If(funct7 == reg):
                    m.d.comb += [known.eq(1), value.eq(in0[: REG_WIDTH[reg]].as_signed())]
        with m.Elif(funct3 == Funct3.GET):
            mac_get(m, self._mac_regs, funct7, known, value)
        return known, value

    def unknown(self, funct3, funct7):
        return cfu_unknown(funct3, funct7)

    def extra_checks(self, m, *, cmd_ready, stalled, rst):
        # docs/cfu_isa.md: cmd_ready follows rsp_ready combinationally: one command a cycle unless blocked.
        self.check(m, "backpressure", cmd_ready == (~stalled & ~rst), "cmd_ready is high unless blocked or in reset")

    def covers_more(self, m, *, accept, give, funct3, funct7):
        slow = Signal(name="slow_taken")
        m.d.sync += slow.eq(accept & (funct3 == Funct3.POST) & (funct7 == 0))
        self.cover(m, "post", slow, "a POST taken")


class _Prebuilt(Elaboratable):
    """An already elaborated design with its port attributes, so the harness can both
    drive its ports and read its internal registers."""

    def __init__(self, dut, frag):
        self._dut, self._frag = dut, frag

    def __getattr__(self, name):
        return getattr(self._dut, name)

    def elaborate(self, platform):
        return self._frag


def jobs(depth=None):
    """``Cfu``'s jobs: each group by k-induction (its base case a BMC to ``depth``), and the covers."""
    from .run import DEFAULT_DEPTH, Job

    depth = depth or DEFAULT_DEPTH
    out = [
        Job("cfu", g, (lambda g=g: CfuHarness({g})), "prove", depth, words) for g, words in CfuHarness.GROUPS.items()
    ]
    out += [
        Job("cfu", f"cover_{c}", (lambda c=c: CfuHarness(set(), covers=c)), "reach", depth, words)
        for c, words in CfuHarness.COVERS.items()
    ]
    return out
