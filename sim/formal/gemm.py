"""Formal harness of the GEMM engine (``hdl.systolic.engine.GemmEngine``), small: a 2x2
array with 2-word buffer halves.

The environment is free: ``start`` (valid and the whole configuration: mode,
strides, bases, halves), the host write and read ports, ``cnt_clear`` and the
reset, in any cycle. M, K and N are free within 0..3 (their top bits are tied
to 0: that bounds the busy window for the cycle count). What is stated, per
property group, is :attr:`GemmHarness.GROUPS` (against ``docs/systolic.md``, "Host
interface" and "Schedule and cycle count").
"""

from amaranth.hdl import Cat, Module, ResetSignal, Shape, Signal
from amaranth.lib import data

from hdl.systolic.engine import GemmEngine
from hdl.systolic.signatures import GemmConfig
from reference.gemm import gemm_cycles

from .harness import Harness

__all__ = ["GemmHarness", "jobs", "SHAPE_BITS"]

#: M, K and N are free in 0 .. 2**SHAPE_BITS - 1.
SHAPE_BITS = 2


def busy_cycles(R, C, M, K, N):
    """The busy window the spec gives: ``gemm_cycles`` for a GEMM, 1 when M, K or N is 0
    (docs/systolic.md: it "ends in the cycle after start")."""
    return gemm_cycles(R, C, M, K, N) if min(M, K, N) else 1


class GemmHarness(Harness):
    GROUPS = {
        "busy": "start is taken only while idle (start.ready is not busy); busy rises in the cycle after "
        "a start is taken and stays high until done; done comes only in a busy cycle and busy falls "
        "right after it: exactly one busy window, and one done, per start taken; reset ends it",
        "cycles": "the busy window of a GEMM lasts reference.gemm.gemm_cycles(R, C, M, K, N) cycles, for "
        "every M, K, N in 0..3 (1 cycle when one is 0)",
        "results": "the result buffer changes only while busy: two host reads of one word with no busy "
        "cycle between them give the same data (no engine write lands while idle; host writes to the "
        "operand buffers and reset do not touch it)",
    }
    COVERS = {
        "done": "a GEMM taken and finished",
        "back_to_back": "a start taken in the cycle right after a GEMM's done",
        "largest": "a 3x3x3 GEMM finished",
        "reread": "a result word read twice while idle (the results check fires)",
    }

    def __init__(self, groups=None, *, covers=None, rows=2, cols=2, depth=2, fault=None):
        super().__init__(groups, covers=covers)
        self.rows, self.cols, self.depth = rows, cols, depth
        self.fault = fault

    def elaborate(self, platform):
        m = Module()
        R, C = self.rows, self.cols
        rst = ResetSignal()
        m.submodules.engine = eng = GemmEngine(R, C, self.depth, self.depth)

        # -- the free environment --------------------------------------------
        start_valid = self.free(1, "start_valid")
        m.d.comb += eng.start.valid.eq(start_valid)
        dims = {}
        for name, field in data.Layout.cast(GemmConfig):
            port = getattr(eng.start.payload, name)
            bits = SHAPE_BITS if name in ("m", "k", "n") else Shape.cast(field.shape).width
            free = self.free(bits, f"start_{name}")
            m.d.comb += port.as_value().eq(free) if hasattr(port, "as_value") else port.eq(free)
            dims[name] = free
        for name in ("en", "sel", "both", "half", "addr", "data"):
            port = getattr(eng.write, name)
            port = port.as_value() if hasattr(port, "as_value") else port
            m.d.comb += port.eq(self.free(len(port), f"write_{name}"))
        read_en, read_half = self.free(1, "read_en"), self.free(1, "read_half")
        read_addr = self.free(len(eng.read.addr), "read_addr")
        m.d.comb += [eng.read.en.eq(read_en), eng.read.half.eq(read_half), eng.read.addr.eq(read_addr)]
        m.d.comb += eng.cnt_clear.eq(self.free(1, "cnt_clear"))

        busy, done = eng.busy, eng.done
        if self.fault == "late_fall":  # busy seen one cycle too long
            busy = Signal(name="faulty_busy")
            m.d.comb += busy.eq(eng.busy | self.past(m, eng.done & ~rst, "fault_done"))

        taken = eng.start.valid & eng.start.ready & ~rst

        # -- busy: one window per start ----------------------------------------
        owed = Signal(2, name="owed")  # GEMMs taken and not yet done
        with m.If(rst):
            m.d.sync += owed.eq(0)
        with m.Else():
            m.d.sync += owed.eq(owed + taken - done)
        was_taken = self.past(m, taken, "was_taken")
        was_busy = self.past(m, busy & ~rst, "was_busy")
        was_done = self.past(m, done & ~rst, "was_done")
        was_rst = self.past(m, rst, "was_rst")
        self.check(m, "busy", ~busy | ~eng.start.ready, "no start taken while busy")
        self.check(m, "busy", ~was_taken | busy, "busy rises in the cycle after start")
        self.check(m, "busy", ~done | busy, "done only in a busy cycle")
        self.check(m, "busy", ~was_busy | was_done | rst | busy, "busy falls only after done")
        self.check(m, "busy", ~was_done | ~busy, "busy falls right after done")
        self.check(m, "busy", ~was_rst | ~busy, "reset ends the GEMM")
        self.check(m, "busy", busy == (owed == 1), "one busy window per start taken")

        # -- cycles: the busy window against the cycle model ------------------
        shape = Signal(3 * SHAPE_BITS, name="shape")  # the running GEMM's M, K, N
        elapsed = Signal(8, name="elapsed")  # busy cycles before this one
        with m.If(taken):
            m.d.sync += [shape.eq(Cat(dims["m"], dims["k"], dims["n"])), elapsed.eq(0)]
        with m.Elif(busy & (elapsed != 255)):
            m.d.sync += elapsed.eq(elapsed + 1)
        expected = Signal(8, name="expected_cycles")
        top = 1 << SHAPE_BITS
        with m.Switch(shape):
            for M in range(top):
                for K in range(top):
                    for N in range(top):
                        with m.Case(M | K << SHAPE_BITS | N << 2 * SHAPE_BITS):
                            m.d.comb += expected.eq(busy_cycles(R, C, M, K, N))
        self.check(m, "cycles", ~done | (elapsed + 1 == expected), "the busy window is gemm_cycles long")
        self.check(m, "cycles", ~busy | (elapsed < expected), "busy no longer than gemm_cycles")

        # -- results: no write lands while idle --------------------------------
        key = Cat(read_half, read_addr)
        asked = self.past(m, read_en & ~busy, "asked")
        asked_key = self.past(m, key, "asked_key")
        saved, saved_key = Signal(len(eng.read.data.as_value()), name="saved"), Signal(len(key), name="saved_key")
        have = Signal(name="have_saved")
        rdata = eng.read.data.as_value()
        reread = asked & have & (asked_key == saved_key)
        self.check(m, "results", ~reread | (rdata == saved), "results stay while idle")
        with m.If(busy | taken):
            m.d.sync += have.eq(0)
        with m.Elif(asked):
            m.d.sync += [have.eq(1), saved.eq(rdata), saved_key.eq(asked_key)]

        # -- covers -------------------------------------------------------------
        self.cover(m, "done", done, "a GEMM taken and finished")
        self.cover(m, "back_to_back", was_done & taken, "a start taken right after done")
        self.cover(m, "largest", done & (shape == (1 << 3 * SHAPE_BITS) - 1), "a 3x3x3 GEMM finished")
        self.cover(m, "reread", reread, "a result word read twice while idle")
        return m


def jobs(depth=None):
    """The engine's jobs: each group by PDR, else BMC to ``depth``; and the covers (depth 30:
    a 3x3x3 GEMM takes 18 cycles)."""
    from .run import DEFAULT_DEPTH, Job

    depth = depth or DEFAULT_DEPTH
    out = [
        Job("gemm", g, (lambda g=g: GemmHarness({g})), "prove", depth, words, cut=("t:$mul",))
        for g, words in GemmHarness.GROUPS.items()
    ]
    out += [
        Job(
            "gemm",
            f"cover_{c}",
            (lambda c=c: GemmHarness(set(), covers=c)),
            "reach",
            max(depth, 30),
            words,
            cut=("t:$mul",),
        )
        for c, words in GemmHarness.COVERS.items()
    ]
    return out
