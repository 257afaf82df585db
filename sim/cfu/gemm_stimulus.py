"""Command streams for the GEMM CFU (funct3 6 and 7) mixed with the MAC4 family.

:class:`GemmStream` writes streams the way firmware would, with the corners
put in: operand matrices written word by word with auto-increment (or row by
row through the pointer registers), junk in the padding lanes, configuration
values with junk above each register's width, START while busy, WAIT with
nothing running, results read back whole as int32 and as int8 through
per-channel parameters (channel entries wrapping past the last), double
buffering (the next job's operands written into the other half while the
engine computes), unknown sub-ops, writes of read-only and unknown registers,
and MAC4-family ops sprinkled between any two.

Every answer is checked against :class:`reference.cfu_gemm.CombinedCfuModel`
by the bench, whatever the bench does to the stream (gaps, back-pressure, a
reset anywhere). The stream keeps two rules so that it stays a valid program
under all of that:

* it never writes an operand word a GEMM it started may still be reading
  (such a write races the engine: the model computes the product at START);
  a WAIT goes first when it would;
* a job's registers are set with M, K and N last, so that a reset in the
  middle leaves M, K or N at 0 and the following START refuses.

``checks`` lists, for streams a reset does not cut, the answers that follow
from the definitions alone (``reference.gemm.gemm`` of the matrices written,
TFLM's output stage with the channel parameters written): a check on the
golden model as well as on the RTL.
"""

from dataclasses import dataclass, field

import numpy as np

from reference.cfu import post
from reference.cfu_gemm_isa import (
    DEFAULT_GEOMETRY,
    GOP,
    GSET,
    READ_ONLY_REGS,
    ROWS,
    SHIFT_BITS,
    Counter,
    GemmOp,
    GemmReg,
)
from reference.cfu_isa import Funct3, Reg, function_id
from reference.fixedpoint import sx, wrap32
from reference.gemm import MODES, gemm, gemm_cycles, stored_shapes

from .stimulus import random_commands, srdhm_near_steps

__all__ = ["Job", "GemmStream", "gset", "gop", "describe_gemm_command"]

M32 = 0xFFFFFFFF
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def gset(reg, value=0):
    return (function_id(GSET, int(reg)), int(value) & M32, 0)


def gop(op, in0=0, in1=0):
    return (function_id(GOP, int(op)), int(in0) & M32, int(in1) & M32)


def describe_gemm_command(fid, in0, in1):
    """``GSET A_BASE in0=...`` / ``READ8 ...``: a GEMM op by name (None for the MAC4 family)."""
    funct3, funct7 = fid & 7, fid >> 3
    if funct3 == GSET:
        name = f"GSET {GemmReg(funct7).name}" if funct7 in GemmReg._value2member_map_ else f"GSET reg={funct7}"
    elif funct3 == GOP:
        name = GemmOp(funct7).name if funct7 in GemmOp._value2member_map_ else f"GOP funct7={funct7}"
    else:
        return None
    return f"{name} in0=0x{in0:08x} ({sx(in0, 32)}) in1=0x{in1:08x} ({sx(in1, 32)})"


@dataclass
class Job:
    """One GEMM as the stream sets it up: ``C = A'·B'`` from A and B as stored."""

    M: int
    K: int
    N: int
    mode: str
    a_base: int
    b_base: int
    c_base: int
    a_stride: int
    b_stride: int
    a: np.ndarray
    b: np.ndarray
    space: int  # words in A's (and B's) space of two halves: addresses wrap there
    stride0: str = ""  # "a" or "b": only that matrix's row 0 is written, and the GEMM reads it with stride 0
    params: dict = field(default=None)  # READ8's channel parameters, once written

    def stride(self, which):
        """The stride the GEMM reads with."""
        return 0 if self.stride0 == which else (self.a_stride if which == "a" else self.b_stride)

    def stored(self, which):
        """The rows written."""
        mat = self.a if which == "a" else self.b
        return mat[:1] if self.stride0 == which else mat

    @property
    def defined(self):
        """Whether :meth:`product` is the GEMM's result. With stride 0, row r reads row 0's words
        in row r's lane rotation (``reference.gemm_layout``): a rotated row 0, padding lanes and all."""
        return not self.stride0

    def words(self, which):
        base, stride = (self.a_base, self.a_stride) if which == "a" else (self.b_base, self.b_stride)
        return _region(base, len(self.stored(which)) * stride, self.space)

    def product(self):
        return wrap32(gemm(self.a, self.b, self.mode))

    def cycles(self, cols):
        return gemm_cycles(ROWS, cols, self.M, self.K, self.N, self.mode)

    def describe(self):
        return f"{self.M}x{self.K}x{self.N} {self.mode}"


def _region(base, words, space):
    """The addresses of ``words`` words from ``base``, wrapping at ``space``."""
    return frozenset((base + i) % space for i in range(words))


class GemmStream:
    """Builds one command stream (``commands``: ``(function_id, in0, in1)`` tuples, unsigned).

    ``mac_rate``: probability of a MAC4-family op after each GEMM op.
    ``max_dim``: the largest M, K or N drawn (capped to what the buffers hold).
    """

    def __init__(self, geometry=DEFAULT_GEOMETRY, seed=0, mac_rate=0.1, max_dim=24):
        self.g = geometry
        self.rng = np.random.default_rng(seed)
        self.mac_rate = mac_rate
        self.max_dim = max_dim
        self.commands = []
        self.checks = []  # (command index, expected answer, what) from the definitions
        self.jobs = []  # every job started
        # The stream's own old ops, funct3 0-5 only: 6 and 7 are the GEMM ops here.
        self._mac = [c for c in random_commands(4096, seed + 1) if c[0] & 7 < GSET]
        self._mac_next = 0
        # A GEMM the stream started that may still run (True: unknown, e.g. at the start).
        self.running = True
        self.undefined_reads = 0

    # -- emitting --------------------------------------------------------------
    def emit(self, command, check=None, mac=True):
        """Append ``command``; ``check`` is its answer from the definitions (or None)."""
        if check is not None:
            self.checks.append((len(self.commands), check[0], check[1]))
        self.commands.append(command)
        if mac and self.mac_rate and self.rng.random() < self.mac_rate:
            self.mac_op()

    def mac_op(self):
        self.commands.append(self._mac[self._mac_next % len(self._mac)])
        self._mac_next += 1

    def _junk(self, value, bits, p=0.15):
        """``value`` with random bits above ``bits`` (the register drops them) one time in ``1/p``."""
        if bits < 32 and self.rng.random() < p:
            return (int(value) & ((1 << bits) - 1)) | int(self.rng.integers(1, 1 << (32 - bits))) << bits
        return int(value)

    def set(self, reg, value, junk=True):
        reg = GemmReg(reg)
        bits = self.g.reg_bits(reg)
        self.emit(gset(reg, self._junk(value, bits) if junk else value))

    # -- jobs --------------------------------------------------------------------
    def _dim(self, cap):
        r = self.rng.random()
        if r < 0.2:
            return 1
        if r < 0.45:
            return int(self.rng.choice([2, 3, 5, 7, 9, 11, 13, 15, 17]))
        return int(self.rng.integers(1, cap + 1))

    def job(self, halves=None, shape=None, mode=None, extra_stride=None, corners=None, wrap=False, stride0=""):
        """A random job; ``halves`` (A, B, C) picks each buffer's half (random if None).

        ``wrap``: A and B straddle the end of their space (addresses wrap to word 0).
        ``stride0``: "a" or "b", that matrix's row 0 alone written, and read with stride 0."""
        g, rng = self.g, self.rng
        halves = halves or tuple(int(h) for h in rng.integers(0, 2, 3))
        mode = mode or MODES[int(rng.integers(0, 3))]
        for _ in range(100):
            M, K, N = shape or (self._dim(self.max_dim) for _ in range(3))
            (ar, ac), (br, bc) = stored_shapes(M, K, N, mode)
            a_stride, b_stride = -(-ac // ROWS) + self._extra(extra_stride), -(-bc // ROWS) + self._extra(extra_stride)
            c_words = -(-N // g.cols) * M
            if ar * a_stride <= g.operand_depth and br * b_stride <= g.operand_depth and c_words <= g.result_depth:
                break
            if shape:
                raise ValueError(f"{M}x{K}x{N} does not fit {g}")
        else:
            raise ValueError(f"no job fits {g}")

        def base(half, words, depth, wraps=False):
            if wraps:
                return 2 * depth - (int(rng.integers(1, words)) if words > 1 else 1)
            return half * depth + int(rng.integers(0, depth - words + 1))

        corners = rng.random() < 0.15 if corners is None else corners
        draw = (lambda s: rng.choice([-128, 127], size=s)) if corners else (lambda s: rng.integers(-128, 128, size=s))
        a = np.asarray(draw((ar, ac)), dtype=np.int64)
        b = np.asarray(draw((br, bc)), dtype=np.int64)
        return Job(
            M,
            K,
            N,
            mode,
            a_base=base(halves[0], ar * a_stride, g.operand_depth, wrap),
            b_base=base(halves[1], br * b_stride, g.operand_depth, wrap),
            c_base=base(halves[2], c_words, g.result_depth),
            a_stride=a_stride,
            b_stride=b_stride,
            a=a,
            b=b,
            space=2 * g.operand_depth,
            stride0=stride0,
        )

    def _extra(self, fixed):
        """Padding words at the end of each stored row (fixed, or sometimes 1 or 2)."""
        if fixed is not None:
            return fixed
        return int(self.rng.integers(1, 3)) if self.rng.random() < 0.3 else 0

    def _make_room(self, words):
        """A WAIT first if a GEMM that may still run reads any of ``words``."""
        busy = self.running
        if busy is True or (
            busy is not None and not (words.isdisjoint(busy.words("a")) and words.isdisjoint(busy.words("b")))
        ):
            self.wait()

    def write_matrix(self, which, mat, base, stride, style=None):
        """Write a stored matrix with WRITE_A/WRITE_B (``which``: "a" or "b"), junk in the padding lanes.

        ``style`` "linear": the pointers set once, every word in order (the row advances at the stride);
        "rows": each row through A_WADDR/A_WROW, in a random row order."""
        rng = self.rng
        rows, cols = mat.shape
        space = 2 * self.g.operand_depth
        self._make_room(_region(base, rows * stride, space))
        op = GemmOp.WRITE_A if which == "a" else GemmOp.WRITE_B
        waddr, wrow, wstride = (
            (GemmReg.A_WADDR, GemmReg.A_WROW, GemmReg.A_STRIDE)
            if which == "a"
            else (GemmReg.B_WADDR, GemmReg.B_WROW, GemmReg.B_STRIDE)
        )
        self.set(wstride, stride)  # the row advances after `stride` words
        padded = rng.integers(-128, 128, size=(rows, stride * ROWS))
        padded[:, :cols] = mat
        style = style or ("linear" if rng.random() < 0.75 else "rows")
        order = range(rows) if style == "linear" else rng.permutation(rows)
        for i, r in enumerate(order):
            if style == "rows" or i == 0:
                # Either order: each write zeroes the column count. WROW's rotation repeats every 8 rows.
                first = [(waddr, base + int(r) * stride), (wrow, int(r) + ROWS * int(rng.integers(0, 3)))]
                for reg, v in first if rng.random() < 0.5 else first[::-1]:
                    self.set(reg, v)
            for q in range(stride):
                e = padded[r, ROWS * q : ROWS * (q + 1)]
                in0 = sum((int(v) & 0xFF) << (8 * i) for i, v in enumerate(e[:4]))
                in1 = sum((int(v) & 0xFF) << (8 * i) for i, v in enumerate(e[4:]))
                self.emit(gop(op, in0, in1), check=((base + int(r) * stride + q) % space, f"{op.name} address"))
            if which == "b" and rng.random() < 0.15:
                self.emit(gget(GemmReg.B_ROWSUM), check=(int(padded[r].sum()) & M32, "B_ROWSUM"))

    def configure(self, job):
        """The job's registers; M, K and N last (see the module's docstring)."""
        first = [
            (GemmReg.MODE, MODES.index(job.mode)),
            (GemmReg.A_STRIDE, job.stride("a")),
            (GemmReg.B_STRIDE, job.stride("b")),
            (GemmReg.A_BASE, job.a_base),
            (GemmReg.B_BASE, job.b_base),
            (GemmReg.C_BASE, job.c_base),
        ]
        last = [(GemmReg.M, job.M), (GemmReg.K, job.K), (GemmReg.N, job.N)]
        for group in (first, last):
            for i in self.rng.permutation(len(group)):
                self.set(*group[i])

    def start(self, job, again=False):
        """START the job (after a WAIT if a GEMM may still run); ``again``: a second START while it runs."""
        if self.running is not None:
            self.wait()
        self.emit(gop(GemmOp.START), check=(1, "START"))
        self.jobs.append(job)
        self.running = job
        if again:
            self.emit(gop(GemmOp.START))  # refused while busy; were it accepted later, it computes the same

    def wait(self):
        self.emit(gop(GemmOp.WAIT))
        self.running = None

    def write_job(self, job, order=None):
        for which in order or (("a", "b") if self.rng.random() < 0.5 else ("b", "a")):
            if which == "a":
                self.write_matrix("a", job.stored("a"), job.a_base, job.a_stride)
            else:
                self.write_matrix("b", job.stored("b"), job.b_base, job.b_stride)

    # -- results -----------------------------------------------------------------
    def point_reads(self, job):
        """R_* at the job's result matrix (START does this for the job it starts)."""
        for reg, v in (
            (GemmReg.R_BASE, job.c_base),
            (GemmReg.R_M, job.M),
            (GemmReg.R_N, job.N),
            (GemmReg.R_ROW, 0),
            (GemmReg.R_COL, 0),
        ):
            self.set(reg, v)

    def channel_params(self, job, per_tensor=None, entries=True):
        """READ8's parameters for the job's N channels: entries (CH_*) and OUT_OFFSET, ACT_MIN, ACT_MAX, CH_BASE."""
        g, rng = self.g, self.rng
        if entries or job.params is None:
            per_tensor = rng.random() < 0.3 if per_tensor is None else per_tensor
            per_tensor |= job.N > g.channels  # channels n and n + channels share an entry
            ch_base = int(rng.choice([0, g.channels - 1, g.channels - 3, int(rng.integers(0, g.channels))]))
            n_entries = 1 if per_tensor else job.N
            bias = [self._bias() for _ in range(n_entries)]
            mult = [self._mult() for _ in range(n_entries)]
            shift = [self._shift() for _ in range(n_entries)]
            if per_tensor:
                bias, mult, shift = bias * job.N, mult * job.N, shift * job.N
            lo, hi = self._clamp()
            job.params = dict(
                ch_base=ch_base,
                bias=bias,
                mult=mult,
                shift=[sx(s, SHIFT_BITS) for s in shift],
                offset=int(rng.integers(-128, 128)) if rng.random() < 0.85 else self._word(),
                lo=lo,
                hi=hi,
            )
            self._write_entries(job, shift)
        p = job.params
        for reg, v in (
            (GemmReg.CH_BASE, p["ch_base"]),
            (GemmReg.OUT_OFFSET, p["offset"]),
            (GemmReg.ACT_MIN, p["lo"]),
            (GemmReg.ACT_MAX, p["hi"]),
        ):
            self.set(reg, v)

    def _write_entries(self, job, shift):
        """CH_BIAS, CH_MULT and CH_SHIFT of ``job.params`` for its channels (``shift`` as written, junk and all)."""
        g, p = self.g, job.params
        for n in range(min(job.N, g.channels)):
            ch = (p["ch_base"] + n) % g.channels
            ops = [
                (GemmOp.CH_BIAS, p["bias"][n], p["bias"][n]),
                (GemmOp.CH_MULT, p["mult"][n], p["mult"][n]),
                (GemmOp.CH_SHIFT, shift[n], p["shift"][n]),
            ]
            for k in self.rng.permutation(3):
                op, v, answer = ops[k]
                self.emit(gop(op, v, ch), check=(int(answer) & M32, op.name))

    def output_stage_corners(self):
        """READ8 through the output stage's corners in all four lanes (the random params seldom meet them):
        SRDHM's INT32_MIN x INT32_MIN (C = 0, bias and multiplier INT32_MIN), with a shift of 0 and of -32
        (a right shift of 31); SRDHM's rounding just past and just before a step
        (:func:`sim.cfu.stimulus.srdhm_near_steps`: bias and multiplier, shift 0, four pairs a READ8); then the
        MAC4 family's own: SRDHM(INT32_MIN, INT32_MIN), OUTPUT_SHIFT -32, and SRDHM of the same pairs."""
        near = srdhm_near_steps(self.rng)
        lanes = [([INT32_MIN] * 4, [INT32_MIN] * 4, shift) for shift in (0, -32)]
        lanes += [([a for a, _ in near[i : i + 4]], [b for _, b in near[i : i + 4]], 0) for i in range(0, len(near), 4)]
        for bias, mult, shift in lanes:
            job = self.job(shape=(1, 1, 4), mode="nn", corners=False)
            job.a[:] = 0
            job.params = dict(ch_base=0, bias=bias, mult=mult, shift=[shift] * 4, offset=0, lo=-128, hi=127)
            self._write_entries(job, job.params["shift"])
            self.channel_params(job, entries=False)
            self.write_job(job)
            self.configure(job)
            self.start(job)
            self.read_back(job, "read8")
        for command in (
            (function_id(Funct3.SRDHM), INT32_MIN & M32, INT32_MIN & M32),
            (function_id(Funct3.SET, Reg.OUTPUT_SHIFT), -32 & M32, 0),
            (function_id(Funct3.POST), 0, 0),
            *((function_id(Funct3.SRDHM), a & M32, b & M32) for a, b in near),
        ):
            self.emit(command, mac=False)

    def _word(self):
        return int(self.rng.integers(INT32_MIN, INT32_MAX + 1))

    def _bias(self):
        r = self.rng.random()
        if r < 0.8:
            return int(self.rng.integers(-(1 << 15), 1 << 15))
        return int(self.rng.choice([INT32_MIN, INT32_MAX, -1, 0])) if r < 0.9 else self._word()

    def _mult(self):
        r = self.rng.random()
        if r < 0.8:
            return int(self.rng.integers(1 << 30, 1 << 31))
        return int(self.rng.choice([0, 1, INT32_MAX, 1 << 30])) if r < 0.9 else self._word()

    def _shift(self):
        """A 6-bit shift as CH_SHIFT's in0 (sometimes with junk above bit 5)."""
        r = self.rng.random()
        s = int(self.rng.integers(-13, 2)) if r < 0.8 else int(self.rng.integers(-32, 32))
        return self._junk(s, SHIFT_BITS, p=0.2)

    def _clamp(self):
        r = self.rng.random()
        if r < 0.5:
            return -128, 127
        if r < 0.7:
            return 0, 127  # ReLU
        if r < 0.9:
            lo = int(self.rng.integers(-128, 0))
            return lo, int(self.rng.integers(lo, 128))
        return self._word(), self._word()  # anything, even lo > hi

    def read_back(self, job, how="read32", point=False, check=True):
        """Read the job's whole result matrix: ``how`` "read32" (M·N READ32) or "read8" (M·ceil(N/4) READ8).

        ``point``: set R_* first (a job read after another one started)."""
        if point:
            self.point_reads(job)
        if self.running is not None and (self.running is True or self._same_half(job, self.running)):
            self.running = None  # the first read waits for the engine
        check &= job.defined
        c = job.product() if check else None
        p = job.params
        for m in range(job.M):
            if how == "read32":
                for n in range(job.N):
                    self.emit(gop(GemmOp.READ32), check=(int(c[m, n]) & M32, f"READ32 C[{m},{n}]") if check else None)
            else:
                for n0 in range(0, job.N, 4):
                    want = None
                    if check:
                        want = 0
                        for i in range(min(4, job.N - n0)):
                            n = n0 + i
                            y = post(
                                wrap32(int(c[m, n]) + p["bias"][n]),
                                p["mult"][n],
                                p["shift"][n],
                                p["offset"],
                                p["lo"],
                                p["hi"],
                            )
                            want |= (int(y) & 0xFF) << (8 * i)
                        want = (want, f"READ8 C[{m},{n0}:{n0 + 4}]")
                    self.emit(gop(GemmOp.READ8), check=want)

    def _same_half(self, job, other):
        top = self.g.result_addr_bits - 1
        return job.c_base >> top == other.c_base >> top

    # -- scenarios ---------------------------------------------------------------
    def single(self):
        """One job: write, configure, START (sometimes twice), WAIT / STATUS / nothing, read it all back."""
        rng = self.rng
        stride0 = str(rng.choice(["a", "b"])) if rng.random() < 0.05 else ""
        job = self.job(wrap=rng.random() < 0.1, stride0=stride0)
        read8 = rng.random() < 0.4
        if read8 and rng.random() < 0.5:
            self.channel_params(job)
        self.write_job(job)
        self.configure(job)
        self.start(job, again=rng.random() < 0.2)
        r = rng.random()
        if r < 0.35:
            self.wait()
        elif r < 0.55:
            for _ in range(int(rng.integers(1, 4))):
                self.emit(gop(GemmOp.STATUS))
        if read8:
            if job.params is None or rng.random() < 0.3:
                self.channel_params(job)
            self.read_back(job, "read8")
        else:
            self.read_back(job, "read32")

    def double_buffered(self, jobs=None):
        """Jobs in alternating halves: the next job's operands go into the other half while the engine runs,
        and the last job's results are read while the next one runs."""
        rng = self.rng
        n = jobs or int(rng.integers(2, 5))
        h = int(rng.integers(0, 2))
        prev = None
        for _ in range(n):
            job = self.job(halves=(h, h, h))
            self.write_job(job)  # into half h, while prev (half 1 - h) may compute
            early = False
            if rng.random() < 0.5:
                self.configure(job)  # registers may change while the engine runs
                if prev is not None and rng.random() < 0.4:
                    # Read prev while it runs (the reads wait): C_BASE already names the other half.
                    self.read_back(prev, "read32", point=True)
                    early = True
                self.wait()
            else:
                self.wait()
                self.configure(job)
            self.start(job)
            if prev is not None and not early:
                how = "read8" if rng.random() < 0.4 else "read32"
                if how == "read8":
                    self.channel_params(prev)  # parameters too may load while the engine runs
                self.read_back(prev, how, point=True)
            prev, h = job, 1 - h
        self.read_back(prev, "read32", point=n > 1)  # the reads above moved R_*

    def noise(self, n=None):
        """Ops that must change nothing, or nothing the stream relies on."""
        rng, g = self.rng, self.g
        for _ in range(n or int(rng.integers(1, 8))):
            k = int(rng.integers(0, 12))
            if k == 0:
                self.emit(gget(int(rng.integers(0, 32)) if rng.random() < 0.9 else self._word()))
            elif k == 1:
                reg = int(rng.choice([*READ_ONLY_REGS, *range(len(GemmReg), 128)]))
                self.emit((function_id(GSET, reg), self._word() & M32, self._word() & M32))
            elif k == 2:
                self.emit(gop(int(rng.integers(len(GemmOp), 128)), self._word(), self._word()))
            elif k == 3:
                which = int(rng.integers(0, len(Counter) + 2)) if rng.random() < 0.9 else self._word()
                self.emit(gop(GemmOp.COUNTER, which, self._word()))
            elif k == 4:
                self.emit(gop(GemmOp.STATUS, self._word(), self._word()))
            elif k == 5 and rng.random() < 0.3:
                self.emit(gop(GemmOp.CLEAR))
            elif k == 6:
                op = GemmOp(int(rng.choice([GemmOp.CH_BIAS, GemmOp.CH_MULT, GemmOp.CH_SHIFT])))
                self.emit(
                    gop(op, self._word(), int(rng.integers(g.channels, 1 << 32))), check=(0, f"{op.name} refused")
                )
            elif k == 7:
                self.set(int(rng.choice([GemmReg.OUT_OFFSET, GemmReg.ACT_MIN, GemmReg.ACT_MAX])), self._word())
            elif k == 8:
                # Read anywhere: any word, any pointer (R_COL beyond R_N too).
                for reg, hi in (
                    (GemmReg.R_BASE, 2 * g.result_depth),
                    (GemmReg.R_M, 40),
                    (GemmReg.R_N, 40),
                    (GemmReg.R_ROW, 40),
                    (GemmReg.R_COL, 48),
                    (GemmReg.CH_BASE, g.channels),
                ):
                    if rng.random() < 0.5:
                        self.set(reg, int(rng.integers(0, hi)))
                for _ in range(int(rng.integers(1, 6))):
                    self.emit(gop(GemmOp.READ32 if rng.random() < 0.5 else GemmOp.READ8))
                if self.running is not None:
                    self.running = True  # a read may or may not have waited: assume nothing
            elif k == 9:
                # A START that must refuse: a size of 0, or mode 3.
                if rng.random() < 0.5:
                    self.set(int(rng.choice([GemmReg.M, GemmReg.K, GemmReg.N])), 0, junk=False)
                else:
                    self.set(GemmReg.MODE, 3, junk=False)
                self.emit(gop(GemmOp.START), check=(0, "START refused"))
            elif k == 10:
                self.wait()
                self.emit(gop(GemmOp.WAIT, self._word(), self._word()))  # nothing runs: at once
            else:
                # A few MAC4-family ops in a row: with the bench's gaps, a fast op may then find
                # only a slow one ahead of it, which has left the pipeline (found by make coverage).
                for _ in range(int(rng.integers(1, 4))):
                    self.mac_op()

    def random(self, n):
        """Scenarios until at least ``n`` commands; returns the first ``n``."""
        rng = self.rng
        while len(self.commands) < n:
            r = rng.random()
            if r < 0.45:
                self.single()
            elif r < 0.75:
                self.double_buffered()
            else:
                self.noise(int(rng.integers(4, 16)))
            self.noise(int(rng.integers(1, 5)))
        del self.commands[n:]
        self.checks = [c for c in self.checks if c[0] < n]
        return self.commands

    def max_cycles(self):
        """The longest GEMM of the stream (for the bench's hang limit)."""
        return max((j.cycles(self.g.cols) for j in self.jobs), default=0)


def gget(reg):
    return (function_id(GOP, GemmOp.GGET), int(reg) & M32, 0)
