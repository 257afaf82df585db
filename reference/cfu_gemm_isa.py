"""The GEMM CFU's instructions: the GEMM engine behind CFU Playground's port.

The GEMM ops share ``cfu.v`` with the MAC4 family (:mod:`reference.cfu_isa`,
funct3 0-5, unchanged). They use the two free funct3 values:

* ``funct3 = 6`` (:data:`GSET`): ``register[funct7] <- in0``, answering the
  register's new value (as SET does). A funct7 that names no writable
  register answers 0 and changes nothing.
* ``funct3 = 7`` (:data:`GOP`): ``funct7`` is a :class:`GemmOp`. An unknown
  sub-op answers 0 and changes nothing.

This module is plain Python data: the RTL (:mod:`hdl.cfu.gemm_cfu`), the
golden model (:mod:`reference.cfu_gemm`), the C header and emulation, the
benches and ``docs/cfu_gemm.md`` all read it. What each op does is written
out in ``docs/cfu_gemm.md`` and coded in :class:`reference.cfu_gemm.GemmCfuModel`.
"""

from enum import IntEnum

__all__ = [
    "GSET",
    "GOP",
    "ROWS",
    "GemmOp",
    "GemmReg",
    "TRANSFER_OPS",
    "Counter",
    "REG_BITS",
    "SIGNED_REGS",
    "READ_ONLY_REGS",
    "GemmCfuGeometry",
    "DEFAULT_GEOMETRY",
    "info_word",
    "GEMM_FAST_LATENCY",
    "WAIT_IDLE_LATENCY",
    "START_LATENCY",
    "READ_ISSUE",
    "READ32_LATENCY",
    "READ8_LATENCY",
]

GSET = 6
GOP = 7

#: Lanes of an operand word: one instruction's two 32-bit inputs carry 8 int8.
ROWS = 8


class GemmOp(IntEnum):
    """funct7 of ``funct3 = 7``."""

    WRITE_A = 0  #: 8 int8 (in0 = elements 0-3, in1 = 4-7) to A at A_WADDR; answers the word address written
    WRITE_B = 1  #: the same for B
    START = 2  #: start C = A'·B' from the registers; answers 1, or 0 (nothing changes) if busy or a size is 0
    WAIT = 3  #: answers when the engine is idle: the last GEMM's busy cycles (0 if none since reset)
    STATUS = 4  #: answers at once: bit 0 = the engine is busy
    READ32 = 5  #: C[R_ROW, R_COL] as int32; R_COL += 1
    READ8 = 6  #: 4 channels of row R_ROW through the output stage, int8 packed; R_COL += 4
    CH_BIAS = 7  #: bias[in1] <- in0; answers in0 (in1 >= channels: answers 0, no effect, not counted)
    CH_MULT = 8  #: multiplier[in1] <- in0
    CH_SHIFT = 9  #: shift[in1] <- in0 (6-bit signed, TFLM's sign: positive shifts left)
    COUNTER = 10  #: answers counter[in0] (a :class:`Counter`; 0 for others)
    CLEAR = 11  #: zero the counters; answers 0
    GGET = 12  #: answers register[in0] (a :class:`GemmReg`; 0 for others)


#: The ops the TRANSFERS counter counts (data moved through the port).
TRANSFER_OPS = frozenset(
    {GemmOp.WRITE_A, GemmOp.WRITE_B, GemmOp.READ32, GemmOp.READ8, GemmOp.CH_BIAS, GemmOp.CH_MULT, GemmOp.CH_SHIFT}
)


class GemmReg(IntEnum):
    """Registers, written with GSET (funct7) and read with GGET (in0)."""

    M = 0
    K = 1
    N = 2
    MODE = 3  #: 0 nn, 1 nt, 2 tn (reference.gemm.MODE_CODE); 3: START refuses
    A_STRIDE = 4  #: words per stored row of A
    B_STRIDE = 5
    A_BASE = 6  #: first word of A in A's space of two halves (the top bit is the half)
    B_BASE = 7
    C_BASE = 8  #: first word of C in the result space of two halves
    A_WADDR = 9  #: next word WRITE_A writes; writing it zeroes the column count
    A_WROW = 10  #: the stored row of that word (it picks the lane rotation); writing it zeroes the column count
    B_WADDR = 11
    B_WROW = 12
    R_BASE = 13  #: the result matrix READ32/READ8 read (START sets it to C_BASE)
    R_M = 14  #: its rows (START: M)
    R_N = 15  #: its columns (START: N)
    R_ROW = 16  #: the read pointer's row (START: 0)
    R_COL = 17  #: the read pointer's column (START: 0)
    OUT_OFFSET = 18  #: output zero point
    ACT_MIN = 19
    ACT_MAX = 20
    INFO = 21  #: read-only: the geometry (:func:`info_word`)
    CH_BASE = 22  #: READ8's channel n uses parameter entry (CH_BASE + n) mod channels
    B_ROWSUM = 23  #: read-only: the sum of the int8 elements of the last stored row of B that WRITE_B completed


#: Width of each register in bits (values are truncated to it); None: depends on the geometry.
REG_BITS = {
    GemmReg.M: 16,
    GemmReg.K: 16,
    GemmReg.N: 16,
    GemmReg.MODE: 2,
    GemmReg.A_STRIDE: 16,
    GemmReg.B_STRIDE: 16,
    GemmReg.A_BASE: None,  # operand address: log2(2 * operand_depth)
    GemmReg.B_BASE: None,
    GemmReg.C_BASE: None,  # result address: log2(2 * result_depth)
    GemmReg.A_WADDR: None,
    GemmReg.A_WROW: 16,
    GemmReg.B_WADDR: None,
    GemmReg.B_WROW: 16,
    GemmReg.R_BASE: None,
    GemmReg.R_M: 16,
    GemmReg.R_N: 16,
    GemmReg.R_ROW: 16,
    GemmReg.R_COL: 16,
    GemmReg.OUT_OFFSET: 32,
    GemmReg.ACT_MIN: 32,
    GemmReg.ACT_MAX: 32,
    GemmReg.INFO: 32,
    GemmReg.CH_BASE: None,  # log2(channels)
    GemmReg.B_ROWSUM: 32,
}
#: Registers read back sign-extended; the others are unsigned.
SIGNED_REGS = frozenset({GemmReg.OUT_OFFSET, GemmReg.ACT_MIN, GemmReg.ACT_MAX, GemmReg.B_ROWSUM})
READ_ONLY_REGS = frozenset({GemmReg.INFO, GemmReg.B_ROWSUM})
#: Values after reset (every other register is 0).
REG_RESET = {GemmReg.ACT_MIN: -128, GemmReg.ACT_MAX: 127}

#: Width of a per-channel shift.
SHIFT_BITS = 6


class Counter(IntEnum):
    """Performance counters (COUNTER's in0). Reset zeroes them all; CLEAR zeroes all but LAST."""

    BUSY = 0  #: cycles the engine was busy
    WAIT = 1  #: busy cycles in which the unit held a WAIT, or a READ waiting for the engine
    OVERLAP = 2  #: busy cycles in which it did not: the engine computed while the CPU ran (BUSY = WAIT + OVERLAP)
    TRANSFERS = 3  #: WRITE_A, WRITE_B, READ32, READ8 and CH_* ops accepted
    LAST = 4  #: the last GEMM's busy cycles (what WAIT answers)


class GemmCfuGeometry:
    """The build parameters of a GEMM CFU.

    ``cols`` (C, the array's columns): a power of two, at least 4 (READ8's
    four channels lie in one result word). The array has :data:`ROWS` rows.
    ``operand_depth`` and ``result_depth``: words per half (powers of two).
    ``channels``: per-channel parameter entries (a power of two, at least 4);
    channel n uses entry ``n mod channels``.
    """

    def __init__(self, cols=8, operand_depth=512, result_depth=256, channels=256):
        for name, v, least in (
            ("cols", cols, 4),
            ("operand_depth", operand_depth, 2),
            ("result_depth", result_depth, 2),
            ("channels", channels, 4),
        ):
            if not (isinstance(v, int) and v >= least and v & (v - 1) == 0):
                raise ValueError(f"{name} must be a power of two, at least {least}, not {v!r}")
        if operand_depth > 1 << 15 or result_depth > 1 << 15:
            raise ValueError("operand_depth and result_depth must be at most 32768")
        self.rows, self.cols = ROWS, cols
        self.operand_depth, self.result_depth, self.channels = operand_depth, result_depth, channels

    @property
    def operand_addr_bits(self):
        return (2 * self.operand_depth - 1).bit_length()

    @property
    def result_addr_bits(self):
        return (2 * self.result_depth - 1).bit_length()

    def reg_bits(self, reg):
        bits = REG_BITS[GemmReg(reg)]
        if bits is not None:
            return bits
        if reg in (GemmReg.C_BASE, GemmReg.R_BASE):
            return self.result_addr_bits
        if reg == GemmReg.CH_BASE:
            return (self.channels - 1).bit_length()
        return self.operand_addr_bits

    def __repr__(self):
        return (
            f"GemmCfuGeometry(cols={self.cols}, operand_depth={self.operand_depth}, "
            f"result_depth={self.result_depth}, channels={self.channels})"
        )


DEFAULT_GEOMETRY = GemmCfuGeometry()


def info_word(g):
    """INFO: ``rows | cols << 8 | log2(operand_depth) << 16 | log2(result_depth) << 20 | log2(channels) << 24``."""
    lg = lambda v: v.bit_length() - 1  # noqa: E731
    return g.rows | g.cols << 8 | lg(g.operand_depth) << 16 | lg(g.result_depth) << 20 | lg(g.channels) << 24


# Timing, as the RTL (hdl/cfu/gemm_cfu.py) implements it: cycles from the cycle
# an op is accepted to the first cycle of its rsp_valid, when no older op is in flight.
# The pipeline is cut for a 100 MHz clock (docs/cfu_gemm.md, "Timing").

#: GSET, WRITE_A/B, STATUS, CH_*, COUNTER, CLEAR, GGET and undefined ops; one a cycle.
GEMM_FAST_LATENCY = 1
#: START: the engine starts in the accepting cycle t (it is busy in t+1 .. t+T); T, the
#: GEMM's busy cycles (LAST's new value), is computed in t .. t+3 (the tile count, T's
#: terms, their product, their sum), and the answer follows.
START_LATENCY = 4
#: WAIT with the engine idle (or in its last busy cycle). With a GEMM started in cycle t and
#: T busy cycles, a WAIT taken in cycle s answers in cycle max(s, t + T) + 1.
WAIT_IDLE_LATENCY = 1
#: Cycles from a READ's acceptance in s to its word's read, at the earliest: the word's
#: address R_BASE + (n div C)·R_M + R_ROW is computed in s+1. A READ of the result half a
#: running GEMM writes reads in the first cycle from s + READ_ISSUE after the GEMM's last
#: busy cycle t + T, so it answers in cycle max(s, t + T + 1 - READ_ISSUE) + its latency.
READ_ISSUE = 2
#: READ32: the word's address, its read, its lane, then the response.
READ32_LATENCY = READ_ISSUE + 3
#: READ8: the word's address; the word and the four channels' parameters read; then
#: hdl/cfu/output_stage.py's seven stages, as POST's (acc + bias; the left shift; the
#: products' parts; their halves; SRDHM; RoundingDivideByPOT's split; the offset); the
#: clamp; the response.
READ8_LATENCY = READ_ISSUE + 10
