"""The kit's C emulation of the GEMM ops (cfu_gemm_emu.c, through cfu_emu.c's software_cfu) against the
golden model without time (reference.cfu_gemm.CombinedCfuModel, cycle=None): random streams of the MAC4
family and the GEMM ops, every response bit for bit, on the default geometry and on small ones whose
buffers and channel tables wrap."""

import subprocess
from pathlib import Path

import numpy as np
import pytest

from hdl.cfu.kit import write_c_kit
from reference.cfu_gemm import CombinedCfuModel
from reference.cfu_gemm_isa import DEFAULT_GEOMETRY, GOP, GSET, Counter, GemmCfuGeometry, GemmOp, GemmReg
from reference.cfu_isa import function_id
from reference.gemm import MODES, stored_shapes
from sim.cfu.stimulus import random_commands

DRIVER = Path(__file__).parent / "c" / "cfu_emu_driver.c"
RESET = 1024  # the driver's reset line
GEOMETRIES = [
    DEFAULT_GEOMETRY,
    GemmCfuGeometry(cols=4, operand_depth=8, result_depth=4, channels=4),
    GemmCfuGeometry(cols=16, operand_depth=32, result_depth=16, channels=8),
]
CORNER_WORDS = [0, 1, 2, 3, 4, 0x7F, 0x80, 0xFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFE]
SHAPES = [1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17]


def GS(reg):
    return function_id(GSET, int(reg))


def GO(op):
    return function_id(GOP, int(op))


class Stream:
    """A command stream and the golden model's answers, built together (so that a START is issued only
    on shapes small enough to compute)."""

    def __init__(self, geometry, seed):
        self.g, self.rng = geometry, np.random.default_rng(seed)
        self.model = CombinedCfuModel(geometry)
        self.commands, self.expected = [], []
        self.old = [c for c in random_commands(4000, seed=seed) if c[0] & 7 < GSET]  # the MAC4 family

    def op(self, fid, in0=0, in1=0):
        in0, in1 = int(in0) & 0xFFFFFFFF, int(in1) & 0xFFFFFFFF
        answer = self.model.step(fid, in0, in1)
        assert answer is not None  # without time, nothing is ever undefined
        self.commands.append((fid, in0, in1))
        self.expected.append(int(answer))
        return answer

    def reset(self):
        self.model.reset()
        self.commands.append((RESET, 0, 0))
        self.expected.append(0)

    # -- values --------------------------------------------------------------
    def word(self):
        r = self.rng
        return int(r.choice(CORNER_WORDS)) if r.random() < 0.3 else int(r.integers(0, 1 << 32))

    def lanes(self):
        """Four int8 lanes, extremes often."""
        r = self.rng
        v = [int(r.choice([-128, 127, 0, -1])) if r.random() < 0.4 else int(r.integers(-128, 128)) for _ in range(4)]
        return sum((x & 0xFF) << (8 * i) for i, x in enumerate(v))

    def reg_value(self, reg):
        r, g = self.rng, self.g
        if r.random() < 0.25:
            return self.word()
        if reg in (GemmReg.OUT_OFFSET,):
            return int(r.integers(-128, 128))
        if reg == GemmReg.ACT_MIN:
            return int(r.choice([-128, -127, 0, -100, 50]))
        if reg == GemmReg.ACT_MAX:
            return int(r.choice([127, 126, 0, 100, -50]))
        if reg in (GemmReg.M, GemmReg.K, GemmReg.N):
            return int(r.choice(SHAPES))
        if reg == GemmReg.MODE:
            return int(r.integers(0, 4))
        return int(r.integers(0, 4 * g.operand_depth))

    def maybe_noise(self, p=0.05):
        """Now and then an unrelated op in the middle of a sequence: one that does not disturb it."""
        r = self.rng
        if r.random() >= p:
            return
        kind = r.integers(6)
        if kind == 0:
            self.op(*self.old[int(r.integers(len(self.old)))])
        elif kind == 1:
            self.op(GO(GemmOp.GGET), int(r.integers(0, 30)))
        elif kind == 2:
            self.op(GO(GemmOp.STATUS), self.word(), self.word())
        elif kind == 3:
            self.op(GO(GemmOp.COUNTER), int(r.integers(0, 7)))
        elif kind == 4:
            self.op(GO(int(r.integers(13, 128))), self.word(), self.word())  # unknown sub-op
        else:
            self.op(GS(int(r.choice([GemmReg.INFO, GemmReg.B_ROWSUM, 24, 63, 127]))), self.word())

    # -- scenes --------------------------------------------------------------
    def write_matrix(self, b, rows, cols, base, stride):
        """Store a rows x cols matrix with WRITE_A / WRITE_B, the rows in order (as firmware does)."""
        r = self.rng
        stride_reg, waddr, wrow = (
            (GemmReg.B_STRIDE, GemmReg.B_WADDR, GemmReg.B_WROW)
            if b
            else (GemmReg.A_STRIDE, GemmReg.A_WADDR, GemmReg.A_WROW)
        )
        self.op(GS(stride_reg), stride)
        first, second = (waddr, wrow) if r.random() < 0.5 else (wrow, waddr)
        self.op(GS(first), base if first == waddr else 0)
        self.op(GS(second), base if second == waddr else 0)
        words = rows * max(stride, 1) + (int(r.integers(0, 3)) if r.random() < 0.2 else 0)
        for i in range(words):
            self.op(GO(GemmOp.WRITE_B if b else GemmOp.WRITE_A), self.lanes(), self.lanes())
            if b and stride and (i + 1) % stride == 0 and r.random() < 0.5:
                self.op(GO(GemmOp.GGET), GemmReg.B_ROWSUM)
            self.maybe_noise()

    def channel_params(self, n):
        r, g = self.rng, self.g
        ch_base = int(r.integers(0, g.channels)) if r.random() < 0.5 else 0
        for i in range(n):
            ch = (ch_base + i) % g.channels
            bias = int(r.integers(-5000, 5000)) if r.random() < 0.8 else self.word()
            mult = int(r.integers(1 << 30, 1 << 31)) if r.random() < 0.8 else self.word()
            shift = int(r.integers(-12, 3)) if r.random() < 0.7 else self.word()
            for op, v in ((GemmOp.CH_BIAS, bias), (GemmOp.CH_MULT, mult), (GemmOp.CH_SHIFT, shift)):
                if r.random() < 0.05:  # no such channel: answers 0, changes nothing
                    self.op(GO(op), v, int(r.choice([g.channels, g.channels + 1, 0xFFFFFFFF])))
                self.op(GO(op), v, ch)
        self.op(GS(GemmReg.CH_BASE), ch_base)
        for reg in (GemmReg.OUT_OFFSET, GemmReg.ACT_MIN, GemmReg.ACT_MAX):
            self.op(GS(reg), self.reg_value(reg))

    def gemm(self):
        """Operands stored, output stage loaded, a GEMM started, waited for, its results read back."""
        r, g = self.rng, self.g
        M, K, N = (int(r.choice(SHAPES)) for _ in range(3))
        if r.random() < 0.2:
            M, K, N = (int(r.integers(1, 41)) for _ in range(3))
        mode = int(r.integers(0, 3))
        (ar, ac), (br, bc) = stored_shapes(M, K, N, MODES[mode])
        space = 2 * g.operand_depth
        bases = []
        for b, rows, cols in ((False, ar, ac), (True, br, bc)):
            stride = -(-cols // 8) + (int(r.integers(0, 3)) if r.random() < 0.2 else 0)
            base = int(r.integers(0, space))
            self.write_matrix(b, rows, cols, base, stride)
            bases.append(base)
        self.channel_params(N)
        if r.random() < 0.1:  # a START refused: a zero size or mode 3
            self.op(GS(r.choice([GemmReg.M, GemmReg.K, GemmReg.N])), int(r.choice([0, 0x10000])))
            self.op(GS(GemmReg.MODE), int(r.choice([3, mode])))
            self.op(GO(GemmOp.START))
        c_base = int(r.integers(0, 2 * g.result_depth))
        for reg, v in (
            (GemmReg.M, M),
            (GemmReg.K, K),
            (GemmReg.N, N),
            (GemmReg.MODE, mode),
            (GemmReg.A_BASE, bases[0]),
            (GemmReg.B_BASE, bases[1]),
            (GemmReg.C_BASE, c_base),
        ):
            self.op(GS(reg), v)
        assert self.op(GO(GemmOp.START)) == 1
        if r.random() < 0.3:
            self.op(GO(GemmOp.STATUS))
        self.op(GO(GemmOp.WAIT))
        self.op(GO(GemmOp.COUNTER), Counter.LAST)
        self.read_results(M, N)

    def read_results(self, M, N):
        r = self.rng
        kind = r.integers(4)
        if kind == 0:  # every word as int32, and one past the end
            for _ in range(M * N + int(r.integers(0, 3))):
                self.op(GO(GemmOp.READ32))
                self.maybe_noise()
        elif kind == 1:  # the int8 outputs, and one past the end
            for _ in range(M * -(-N // 4) + int(r.integers(0, 3))):
                self.op(GO(GemmOp.READ8))
                self.maybe_noise()
        else:  # from random positions, mixed, with the read registers moved by hand
            for _ in range(int(r.integers(5, 40))):
                if r.random() < 0.2:
                    reg = r.choice([GemmReg.R_ROW, GemmReg.R_COL, GemmReg.R_BASE, GemmReg.R_M, GemmReg.R_N])
                    bound = {GemmReg.R_ROW: M + 2, GemmReg.R_COL: N + 2, GemmReg.R_M: M + 2, GemmReg.R_N: N + 2}
                    v = int(r.integers(0, bound.get(reg, 2 * self.g.result_depth)))
                    self.op(GS(reg), v if r.random() < 0.9 else self.word())
                self.op(GO(r.choice([GemmOp.READ32, GemmOp.READ8])))

    def random_op(self):
        """Any op with any operands: registers, counters, unknown sub-ops, the MAC4 family."""
        r = self.rng
        kind = r.integers(8)
        if kind == 0:
            reg = int(r.integers(0, 128)) if r.random() < 0.2 else int(r.integers(0, len(GemmReg)))
            v = self.reg_value(GemmReg(reg)) if reg < len(GemmReg) else self.word()
            self.op(GS(reg), v)
        elif kind == 1:
            self.op(GO(GemmOp.GGET), int(r.integers(0, 30)) if r.random() < 0.8 else self.word())
        elif kind == 2:
            self.op(GO(GemmOp.COUNTER), int(r.integers(0, 8)) if r.random() < 0.8 else self.word())
        elif kind == 3:
            self.op(GO(GemmOp.CLEAR), self.word(), self.word())
        elif kind == 4:
            op = int(r.integers(0, 128))
            regs = self.model.gemm.regs
            if op == GemmOp.START and regs[GemmReg.M] * regs[GemmReg.K] * regs[GemmReg.N] > 50_000:
                op = GemmOp.STATUS  # a GEMM that large takes the model too long
            self.op(GO(op), self.word(), self.word())
        elif kind == 5:
            self.op(GO(r.choice([GemmOp.WRITE_A, GemmOp.WRITE_B])), self.word(), self.word())
        elif kind == 6:
            self.op(GO(r.choice([GemmOp.READ32, GemmOp.READ8])), self.word(), self.word())
        else:
            self.op(*self.old[int(r.integers(len(self.old)))])

    def build(self, scenes):
        r = self.rng
        for _ in range(scenes):
            p = r.random()
            if p < 0.45:
                self.gemm()
            elif p < 0.97:
                for _ in range(int(r.integers(1, 20))):
                    self.random_op()
            else:
                self.reset()
        return self


@pytest.fixture
def emulator(tmp_path, build_host_c):
    """Build the emulation (cfu_emu.c, cfu_gemm_emu.c) with the driver for a geometry; run a stream."""

    def run(geometry, commands):
        kit = tmp_path / f"kit{geometry.cols}_{geometry.operand_depth}"
        write_c_kit(kit, geometry)
        exe = build_host_c(kit, [kit / "cfu_emu.c", kit / "cfu_gemm_emu.c", DRIVER], kit / "emu")
        stdin = "".join(f"{f} {a} {b}\n" for f, a, b in commands)
        out = subprocess.run([str(exe)], input=stdin, capture_output=True, text=True, check=True).stdout
        return [int(v) for v in out.split()]

    return run


def _compare(stream, got):
    assert len(got) == len(stream.commands)
    for i, (g, e) in enumerate(zip(got, stream.expected)):
        fid, in0, in1 = stream.commands[i]
        assert g == e, (
            f"command #{i} funct3 {fid & 7} funct7 {fid >> 3} in0 0x{in0:08x} in1 0x{in1:08x}: "
            f"C emulation 0x{g:08x}, golden 0x{e:08x}"
        )


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: f"C{g.cols}_D{g.operand_depth}")
def test_c_emulation_matches_golden_model(geometry, emulator):
    stream = Stream(geometry, seed=11).build(300)
    kinds = {(f & 7, f >> 3) for f, _, _ in stream.commands if f < RESET}
    assert {(GOP, int(op)) for op in GemmOp} <= kinds and {(GSET, int(reg)) for reg in GemmReg} <= kinds
    _compare(stream, emulator(geometry, stream.commands))


@pytest.mark.parametrize("geometry", GEOMETRIES[:2], ids=lambda g: f"C{g.cols}")
def test_c_emulation_cycle_counts(geometry, emulator):
    """WAIT answers reference.gemm.gemm_cycles for every shape of a sweep (both branches of the closed form)."""
    stream = Stream(geometry, seed=3)
    for M in range(1, 19):
        for K in (1, 8, 9, 17, 33):
            for N in (1, 3, 4, 5, 8, 9, 16, 17, 33):
                for reg, v in ((GemmReg.M, M), (GemmReg.K, K), (GemmReg.N, N)):
                    stream.op(GS(reg), v)
                stream.op(GO(GemmOp.START))
                stream.op(GO(GemmOp.WAIT))
    _compare(stream, emulator(geometry, stream.commands))


def test_c_emulation_stride_zero_never_completes_a_row(emulator):
    """The column count of WRITE_B is 16 bits but counts to 65536: with a stride of 0 no row ever ends."""
    stream = Stream(DEFAULT_GEOMETRY, seed=5)
    stream.op(GS(GemmReg.B_STRIDE), 0)
    stream.op(GS(GemmReg.B_WROW), 3)
    for _ in range(65537):
        stream.op(GO(GemmOp.WRITE_B), 0x01010101, 0x01010101)
    for reg in (GemmReg.B_WROW, GemmReg.B_WADDR, GemmReg.B_ROWSUM):
        stream.op(GO(GemmOp.GGET), reg)
    _compare(stream, emulator(DEFAULT_GEOMETRY, stream.commands))
