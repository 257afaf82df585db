"""Functional coverage of the CFUs' benches (:class:`sim.cfu.bus.CfuBus` samples it).

What is sampled, and when:

* ``op``: every opcode and sub-op, counted when the CFU answers it (an op a
  reset dropped does not count);
* the arithmetic corners, from the operands the CFU received (at accept,
  with the golden model's registers then), computed with the definitions in
  :mod:`reference.fixedpoint`: SRDHM's INT32_MIN x INT32_MIN, RDBPOT's ties
  (positive and negative), exponents 0 and 31, POST clamped at act_min and at
  act_max, MAC4's accumulator wrapping either way;
* ``backpressure``: per response taken, the cycles it waited with
  ``rsp_valid`` high and ``rsp_ready`` low (0, 1, 2-3, 4-7, 8+), also
  crossed with the op's class (fast, or slow: SRDHM, RDBPOT, POST);
* ``cmd_gap``: per command presented, the cycles ``cmd_valid`` stayed low
  before it while the bench had commands left (0, 1, 2-3, 4-7, 8+);
* ``reset_state``: per reset pulse, every state the CFU was in: idle, an
  answer ready, a slow op in stage 1 or 2, a response blocked (and, for the
  GEMM CFU, a GEMM running, a READ or WAIT held, a READ in flight, a write
  mid-row);
* for the GEMM CFU, ``gset`` (every register, read-only and unknown ones),
  ``gop`` (every sub-op and unknown ones), and each GEMM the CFU started
  (START answered 1): M and K against the array's rows, N against its
  columns, and the mode, crossed with each of the three (see
  :func:`sim.common.coverage.shape_bin`).
"""

import collections

from reference.cfu import mac4_sum
from reference.cfu_gemm_isa import GOP, GSET, READ8_LATENCY, READ32_LATENCY, READ_ISSUE, ROWS, GemmOp, GemmReg
from reference.cfu_isa import MAC4_ACCUMULATE, MAC4_FIRST, Funct3, Reg, function_id, split_function_id
from reference.fixedpoint import multiply_by_quantized_multiplier, sx, wrap32
from reference.gemm import MODES
from sim.common.coverage import LENGTH_BINS, Coverage, length_bin, shape_bin, shape_bins

__all__ = ["CfuCoverage", "GemmCfuCoverage", "directed_corners"]

INT32_MIN = -(1 << 31)
SLOW = (Funct3.SRDHM, Funct3.RDBPOT, Funct3.POST)


def mac_op_label(funct3, funct7):
    """The ``op`` bin of a MAC4-family function id (funct3 0-5)."""
    if funct3 == Funct3.MAC4:
        return {MAC4_ACCUMULATE: "MAC4", MAC4_FIRST: "MAC4_FIRST"}.get(funct7, "MAC4 funct7?")
    if funct3 in (Funct3.SET, Funct3.GET):
        name = Funct3(funct3).name
        return f"{name} {Reg(funct7).name}" if funct7 < len(Reg) else f"{name} reg?"
    return Funct3(funct3).name if funct7 == 0 else f"{Funct3(funct3).name} funct7?"


MAC_OPS = (
    ["MAC4", "MAC4_FIRST", "MAC4 funct7?"]
    + [f"{f.name} {r.name}" for f in (Funct3.SET, Funct3.GET) for r in Reg]
    + ["SET reg?", "GET reg?"]
    + [f"{f.name}{s}" for f in SLOW for s in ("", " funct7?")]
)


class CfuCoverage:
    """Bins of the MAC4 CFU (``cfu``): ``op`` funct3 0-5 and 6-7 as undefined."""

    design = "cfu"
    RESET_STATES = ["idle", "answer ready", "slow op in stage 1", "slow op in stage 2", "response blocked"]

    def __init__(self):
        self.cov = Coverage(self.design)
        self.cov.point("op", self.op_labels())
        self.cov.point("srdhm", ["MIN x MIN", "product < 0", "product >= 0"])
        self.cov.point(
            "rdbpot", ["exponent 0", "exponent 31", "tie > 0", "tie < 0", "exact", "rounds up", "rounds down"]
        )
        self.cov.point("post_clamp", ["below act_min", "above act_max", "within"])
        self.cov.point("mac4_acc", ["wraps up", "wraps down", "within"])
        self.cov.point("backpressure", LENGTH_BINS)
        self.cov.point("cmd_gap", LENGTH_BINS)
        self.cov.point("reset_state", self.RESET_STATES)
        self.cov.point("op_class", ["fast", "slow"])  # answered: a slow op (SRDHM, RDBPOT, POST) or not
        self.cov.cross("backpressure_by_class", "op_class", "backpressure")
        self.flight = collections.deque()  # per op in flight: (op label, accept cycle)

    def op_labels(self):
        return MAC_OPS + ["funct3 6", "funct3 7"]

    def op_label(self, fid):
        funct3, funct7 = split_function_id(fid)
        return mac_op_label(funct3, funct7) if funct3 < 6 else f"funct3 {funct3}"

    def mac_regs(self, model):
        return model.regs

    # -- hooks, called by CfuBus --------------------------------------------------
    def accept(self, command, cycle, model):
        """A command taken in ``cycle``; ``model`` is the golden model before it steps."""
        fid, in0, in1 = command
        label = self.op_label(fid)
        self.flight.append((label, cycle))
        funct3, funct7 = split_function_id(fid)
        if funct3 < 6 and funct7 == 0 or (funct3 == Funct3.MAC4 and funct7 == MAC4_FIRST):
            self.corners(funct3, funct7, sx(in0, 32), sx(in1, 32), self.mac_regs(model))
        return label

    def respond(self, waited, value):
        """The oldest op answered ``value``, having waited ``waited`` cycles for ``rsp_ready``."""
        label, _ = self.flight.popleft()
        self.cov.sample("op", label)
        wait = length_bin(waited)
        self.cov.sample("backpressure", wait)
        cls = "slow" if label in ("SRDHM", "RDBPOT", "POST") else "fast"
        self.cov.sample("op_class", cls)
        self.cov.sample("backpressure_by_class", (cls, wait))
        return label

    def gap(self, cycles):
        self.cov.sample("cmd_gap", length_bin(cycles))

    def reset(self, cycle, blocked, model):
        """A reset pulse beginning in ``cycle``; ``blocked``: a response was waiting in the cycle before."""
        for state in self.reset_states(cycle, blocked, model):
            self.cov.sample("reset_state", state)
        self.flight.clear()

    def reset_states(self, cycle, blocked, model):
        states = []
        for label, since in self.flight:
            slow = label in ("SRDHM", "RDBPOT", "POST")
            age = cycle - since
            if slow and age < 3:
                states.append(f"slow op in stage {age}")
            else:
                states.append("response blocked" if blocked else "answer ready")
        return sorted(set(states)) or ["idle"]

    def clear(self):
        """Forget the ops in flight (the bench's own reset, not sampled)."""
        self.flight.clear()

    def record(self):
        self.cov.record()

    # -- the arithmetic corners, by the definitions (reference.fixedpoint) -------
    def corners(self, funct3, funct7, a, b, r):
        if funct3 == Funct3.SRDHM:
            if a == b == INT32_MIN:
                self.cov.sample("srdhm", "MIN x MIN")  # the one product that saturates
            else:
                self.cov.sample("srdhm", "product < 0" if a * b < 0 else "product >= 0")
        elif funct3 == Funct3.RDBPOT:
            self.cov.sample("rdbpot", _rdbpot_bin(a, b & 31))
        elif funct3 == Funct3.POST:
            x = wrap32(r[Reg.ACC] + a)
            y = wrap32(multiply_by_quantized_multiplier(x, r[Reg.OUTPUT_MULTIPLIER], r[Reg.OUTPUT_SHIFT]))
            y = wrap32(y + r[Reg.OUTPUT_OFFSET])
            lo, hi = r[Reg.ACT_MIN], r[Reg.ACT_MAX]
            # TFLM's clamp is min(max(y, lo), hi): max first.
            self.cov.sample(
                "post_clamp", "above act_max" if max(y, lo) > hi else "below act_min" if y < lo else "within"
            )
        elif funct3 == Funct3.MAC4:
            base = 0 if funct7 == MAC4_FIRST else r[Reg.ACC]
            exact = base + mac4_sum(a & 0xFFFFFFFF, b & 0xFFFFFFFF, r[Reg.INPUT_OFFSET])
            self.cov.sample(
                "mac4_acc", "wraps up" if exact >= 1 << 31 else "wraps down" if exact < INT32_MIN else "within"
            )


def _rdbpot_bin(x, e):
    """gemmlowp's RoundingDivideByPOT(x, e): ``remainder = x & mask``, ``threshold = (mask >> 1) + (x < 0)``."""
    if e == 0:
        return "exponent 0"
    if e == 31:
        return "exponent 31"
    mask = (1 << e) - 1
    remainder = x & mask
    if 2 * remainder == 1 << e:  # exactly half: rounds away from zero
        return "tie > 0" if x > 0 else "tie < 0"
    if remainder == 0:
        return "exact"
    # x >> e rounds down (toward -inf); the definition adds 1 when the remainder passes the threshold.
    return "rounds up" if remainder > (mask >> 1) + (x < 0) else "rounds down"


class GemmCfuCoverage(CfuCoverage):
    """Bins of the GEMM CFU (``gemm_cfu``): the MAC4 family's, GSET and GOP, the GEMMs' shapes."""

    design = "gemm_cfu"
    RESET_STATES = CfuCoverage.RESET_STATES + [
        "GEMM running",
        "READ32 in flight",
        "READ8 in flight",
        "READ held for the engine",
        "WAIT held",
        "write mid-row",
    ]
    _READ_LATENCY = {"READ32": READ32_LATENCY, "READ8": READ8_LATENCY}

    def __init__(self, geometry):
        self.g = geometry
        super().__init__()
        self.cov.point("shape_M", shape_bins(ROWS))
        self.cov.point("shape_K", shape_bins(ROWS))
        self.cov.point("shape_N", shape_bins(geometry.cols))
        self.cov.point("shape_mode", MODES)
        for dim in "MKN":
            self.cov.cross(f"shape_mode_x_{dim}", "shape_mode", f"shape_{dim}")
        self.pending_start = collections.deque()

    def op_labels(self):
        regs = [f"GSET {r.name}" for r in GemmReg] + ["GSET reg?"]
        ops = [op.name for op in GemmOp] + ["GOP funct7?"]
        return MAC_OPS + regs + ops

    def op_label(self, fid):
        funct3, funct7 = split_function_id(fid)
        if funct3 == GSET:
            return f"GSET {GemmReg(funct7).name}" if funct7 < len(GemmReg) else "GSET reg?"
        if funct3 == GOP:
            return GemmOp(funct7).name if funct7 < len(GemmOp) else "GOP funct7?"
        return mac_op_label(funct3, funct7)

    def mac_regs(self, model):
        return model.mac.regs

    def accept(self, command, cycle, model):
        label = super().accept(command, cycle, model)
        if label == "START":
            r = model.gemm.regs  # the sizes START takes, if it starts
            self.pending_start.append((r[GemmReg.M], r[GemmReg.K], r[GemmReg.N], r[GemmReg.MODE]))
        return label

    def respond(self, waited, value):
        label = super().respond(waited, value)
        if label == "START":
            M, K, N, mode = self.pending_start.popleft()
            if value == 1:  # the CFU started this GEMM
                classes = {"M": shape_bin(M, ROWS), "K": shape_bin(K, ROWS), "N": shape_bin(N, self.g.cols)}
                self.cov.sample("shape_mode", MODES[mode])
                for dim, cls in classes.items():
                    self.cov.sample(f"shape_{dim}", cls)
                    self.cov.sample(f"shape_mode_x_{dim}", (MODES[mode], cls))
        return label

    def reset(self, cycle, blocked, model):
        super().reset(cycle, blocked, model)
        self.pending_start.clear()

    def clear(self):
        super().clear()
        self.pending_start.clear()

    def reset_states(self, cycle, blocked, model):
        g = model.gemm
        busy = bool(g._running(cycle))
        states = set()
        for label, since in self.flight:
            age = cycle - since
            if label in ("SRDHM", "RDBPOT", "POST") and age < 3:
                states.add(f"slow op in stage {age}")
            elif label in self._READ_LATENCY and busy and _held(g, since):
                states.add("READ held for the engine")
            elif label == "WAIT" and busy:
                states.add("WAIT held")
            elif label in self._READ_LATENCY and age < self._READ_LATENCY[label]:
                states.add(f"{label} in flight")
            else:
                states.add("response blocked" if blocked else "answer ready")
        if busy:
            states.add("GEMM running")
        if any(g.wcol.values()):
            states.add("write mid-row")
        return sorted(states) or ["idle"]


def _held(g, since):
    """Whether the model held the op accepted in ``since`` (a READ of the half the engine writes)."""
    return any(start in (since, since + READ_ISSUE) for start, _ in g.waits)


async def directed_corners(bus, reset_ops=(), mixed=()):
    """The cases random streams reach rarely, through ``bus`` (a started :class:`sim.cfu.bus.CfuBus`):
    a reset in each pipeline state (before a slow op is taken, in its stage 1 and stage 2, with its answer
    ready, with a response blocked, and in the cycle after each of ``reset_ops`` is taken); SRDHM's
    MIN x MIN; RDBPOT ties of both signs; ``mixed`` with long gaps and back-pressure; and two slow ops held
    by back-pressure in every stage of the pipeline, for an odd and an even number of cycles (RDBPOTs near
    a rounding step, and POSTs that clamp at ACT_MIN)."""
    srdhm, rdbpot = function_id(Funct3.SRDHM), function_id(Funct3.RDBPOT)
    mac = function_id(Funct3.MAC4, MAC4_ACCUMULATE)
    int32_min = 1 << 31
    for k in range(1, 5):  # the op is presented in the call's cycle 1 and taken then (unless in reset)
        await bus.run([(srdhm, int32_min, int32_min)], reset_cycles=[k])
    for op in reset_ops:
        await bus.run([op], reset_cycles=[2])
    await bus.run([(mac, 0x01020304, 0x05060708)], backpressure=1.0, reset_cycles=[4])
    await bus.run([(rdbpot, 0x18, 4), (rdbpot, -0x18 & 0xFFFFFFFF, 4), (srdhm, int32_min, int32_min)])
    await bus.run(list(mixed), gap=0.85, backpressure=0.85)
    # Two slow ops 0 to 7 cycles apart, with rsp_ready low for 1, 2 and 3 cycles from each of the first 14: so
    # each op is held in each stage of the pipeline an odd and an even number of cycles. Both are RDBPOT at
    # exponent 31 one step above its rounding threshold (a positive tie, and a negative value 1 above it),
    # where a held register that changes by a bit of the rounding's half or mask changes the answer.
    ties = [(rdbpot, 1 << 30, 31), (rdbpot, (1 - (1 << 30)) & 0xFFFFFFFF, 31)]
    for hold in (1, 2, 3):
        for apart in range(8):
            for first in range(14):
                await bus.run(ties, gap=[False] + [True] * apart, backpressure=[False] * first + [True] * hold)
    # The same holds for POSTs that clamp at ACT_MIN (-128 from reset: its bit 27 set), with an output offset of
    # -200 and the multiplier 0 (so every POST is -200 before the clamp): a held clamp bound that changes by a
    # bit changes the answer (found by the gemm_cfu mutation sweep, session g: #38).
    post, offset = function_id(Funct3.POST), function_id(Funct3.SET, Reg.OUTPUT_OFFSET)
    setup = {Reg.OUTPUT_MULTIPLIER: 0, Reg.ACT_MIN: -128, Reg.ACT_MAX: 127, Reg.OUTPUT_OFFSET: -200}
    await bus.run([(function_id(Funct3.SET, reg), v & 0xFFFFFFFF, 0) for reg, v in setup.items()])
    for hold in (1, 2, 3):
        for apart in range(8):
            for first in range(14):
                await bus.run(
                    [(post, 0, 0), (post, 7, 0)],
                    gap=[False] + [True] * apart,
                    backpressure=[False] * first + [True] * hold,
                )
    await bus.run([(offset, 0, 0)])
