"""Formal harness of the GEMM CFU (``hdl.cfu.gemm_cfu.GemmCfu``: the MAC4 family and
the GEMM ops behind CFU Playground's ports), on a small geometry.

The same properties as ``Cfu``'s (:class:`sim.formal.cfu.CommandUnitHarness`),
against ``docs/cfu_gemm.md``: the known answers are the MAC4 family's SETs,
the GSETs of writable registers and the undefined ops of both families (0);
a WAIT, or a READ of the half the engine writes, may rightly wait while the
engine is busy, and answers within READ8's latency plus one once it is idle.
"""

from amaranth.hdl import Fragment, Signal

from hdl.cfu.gemm_cfu import GemmCfu
from reference.cfu_gemm_isa import (
    GOP,
    GSET,
    READ8_LATENCY,
    READ_ONLY_REGS,
    SIGNED_REGS,
    GemmCfuGeometry,
    GemmOp,
    GemmReg,
)
from reference.cfu_isa import REG_WIDTH, SLOW_LATENCY, Funct3, Reg

from .cfu import CommandUnitHarness, _Prebuilt, cfu_unknown, mac_get
from .harness import find_signals

__all__ = ["GemmCfuHarness", "GEOMETRY", "jobs"]

#: The smallest geometry the design takes: 8x4 array, 2-word buffer halves, 4 channel entries.
GEOMETRY = GemmCfuGeometry(cols=4, operand_depth=2, result_depth=2, channels=4)
_N_GEMM_OPS = len(GemmOp)
_N_GEMM_REGS = len(GemmReg)


def gemm_unknown(funct3, funct7):
    """Undefined GEMM ops: sub-ops past the last, GSETs of read-only or undefined registers."""
    read_only = 0
    for reg in READ_ONLY_REGS:
        read_only = read_only | (funct7 == reg)
    return ((funct3 == GOP) & (funct7 >= _N_GEMM_OPS)) | ((funct3 == GSET) & ((funct7 >= _N_GEMM_REGS) | read_only))


class GemmCfuHarness(CommandUnitHarness):
    """``GemmCfu`` on :data:`GEOMETRY`."""

    # READ8 held a cycle behind an older answer, or the MAC side's slow ops.
    MAX_LATENCY = max(READ8_LATENCY + 1, SLOW_LATENCY)
    COVERS = {
        **CommandUnitHarness.COVERS,
        "gemm_done": "a GEMM started by START runs to its end",
        "status_busy": "STATUS taken while the engine is busy",
    }

    def __init__(self, groups=None, *, covers=None, fault=None, geometry=GEOMETRY):
        super().__init__(groups, covers=covers, fault=fault)
        self.geometry = geometry

    def design(self):
        dut = GemmCfu(self.geometry)
        frag = Fragment.get(dut, None)
        mac_regs = find_signals(frag, ("core", "mac"), [reg.name.lower() for reg in Reg])
        gemm_names = [f"reg_{reg.name.lower()}" for reg in GemmReg if reg != GemmReg.INFO]
        gemm_regs = find_signals(frag, ("core", "gemm"), gemm_names)
        self._mac_regs = mac_regs
        (self._busy,) = find_signals(frag, ("core", "gemm", "engine"), ["busy"])
        return _Prebuilt(dut, frag), mac_regs + gemm_regs

    def holding(self, m):
        return self._busy

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
        with m.Elif(funct3 == GSET):
            for reg in GemmReg:
                if reg in READ_ONLY_REGS:
                    continue
                bits = in0[: self.geometry.reg_bits(reg)]
                with m.If(funct7 == reg):
                    m.d.comb += [known.eq(1), value.eq(bits.as_signed() if reg in SIGNED_REGS else bits)]
        return known, value

    def unknown(self, funct3, funct7):
        return (cfu_unknown(funct3, funct7) & (funct3 < GSET)) | gemm_unknown(funct3, funct7)

    def covers_more(self, m, *, accept, give, funct3, funct7):
        started, ended = Signal(name="gemm_started"), Signal(name="gemm_ended")
        was_busy = self.past(m, self._busy, "was_busy")
        with m.If(self._busy):
            m.d.sync += started.eq(1)
        with m.If(started & was_busy & ~self._busy):
            m.d.sync += ended.eq(1)
        self.cover(m, "gemm_done", ended, "a GEMM started by START runs to its end")
        status = self._busy & accept & (funct3 == GOP) & (funct7 == GemmOp.STATUS)
        self.cover(m, "status_busy", status, "STATUS taken while busy")


def jobs(depth=None):
    """``GemmCfu``'s jobs: each group by PDR, else BMC to ``depth``; and the covers."""
    from .run import DEFAULT_DEPTH, Job

    depth = depth or DEFAULT_DEPTH
    out = [
        Job("gemm_cfu", g, (lambda g=g: GemmCfuHarness({g})), "prove", depth, words)
        for g, words in GemmCfuHarness.GROUPS.items()
    ]
    out += [
        Job("gemm_cfu", f"cover_{c}", (lambda c=c: GemmCfuHarness(set(), covers=c)), "reach", max(depth, 25), words)
        for c, words in GemmCfuHarness.COVERS.items()
    ]
    return out
