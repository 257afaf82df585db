"""Golden model of the GEMM CFU (``docs/cfu_gemm.md``), one op at a time.

Written from the definitions: the buffer layouts of :mod:`reference.gemm_layout`,
the GEMM of :mod:`reference.gemm` with its cycle count, and TFLM's output
stage (:func:`reference.cfu.post`) with per-channel bias, multiplier and shift.

Time. ``step(..., cycle=s)`` gives the cycle in which the unit accepted the
op. A GEMM started in cycle t is busy in cycles ``t+1 .. t+T``,
``T = gemm_cycles(8, C, M, K, N)``. With ``cycle=None`` (a model without
time, as the C emulation is) every GEMM ends at once.

The result buffer's contents are computed at START; a READ of the result
half a running GEMM writes waits until it ends, so it sees them. A reset
while a GEMM runs leaves the words it writes undefined: READs of them
answer ``None`` here ("any value").
"""

import numpy as np

from .cfu import CfuModel, post
from .cfu_gemm_isa import (
    DEFAULT_GEOMETRY,
    GOP,
    GSET,
    READ_ISSUE,
    READ_ONLY_REGS,
    REG_RESET,
    ROWS,
    SHIFT_BITS,
    SIGNED_REGS,
    TRANSFER_OPS,
    Counter,
    GemmOp,
    GemmReg,
    info_word,
)
from .cfu_isa import split_function_id
from .fixedpoint import sx, to_u32, wrap32
from .gemm import MODES, gemm_cycles, stored_shapes

__all__ = ["GemmCfuModel", "CombinedCfuModel", "operand_element", "lanes8"]


def lanes8(in0, in1):
    """The 8 int8 elements of a WRITE: in0's bytes 0-3, then in1's."""
    w = (int(in0) & 0xFFFFFFFF) | (int(in1) & 0xFFFFFFFF) << 32
    return [sx(w >> (8 * i), 8) for i in range(ROWS)]


def operand_element(buf, base, stride, r, c):
    """Element (r, c) of the matrix stored at ``base`` with ``stride`` words a row:
    lane ``(r + c) mod 8`` of word ``base + r·stride + c div 8`` (addresses wrap)."""
    return buf[(base + r * stride + c // ROWS) % len(buf), (r + c) % ROWS]


class GemmCfuModel:
    """Architectural state of the GEMM ops (funct3 6 and 7) and each op's answer.

    ``step(function_id, in0, in1, cycle=None)`` returns the 32-bit response
    (unsigned), or None where the answer is undefined (a READ of words a
    reset left half-written).
    """

    def __init__(self, geometry=DEFAULT_GEOMETRY):
        self.g = g = geometry
        self.a = np.zeros((2 * g.operand_depth, ROWS), dtype=np.int64)
        self.b = np.zeros((2 * g.operand_depth, ROWS), dtype=np.int64)
        self.c = np.zeros((2 * g.result_depth, g.cols), dtype=np.int64)
        self.c_known = np.ones(2 * g.result_depth, dtype=bool)
        self.bias = np.zeros(g.channels, dtype=np.int64)
        self.mult = np.zeros(g.channels, dtype=np.int64)
        self.shift = np.zeros(g.channels, dtype=np.int64)
        self.gemm = None
        self.reset()

    # -- state ---------------------------------------------------------------
    def reset(self, cycle=None):
        """Reset: registers and counters restart; buffers and channel parameters keep their contents,
        but the words a running GEMM was writing become undefined."""
        if self._running(cycle):
            self.c_known[self._written] = False
        self.regs = {reg: REG_RESET.get(reg, 0) for reg in GemmReg}
        self.regs[GemmReg.INFO] = info_word(self.g)
        self.wcol = {GemmOp.WRITE_A: 0, GemmOp.WRITE_B: 0}
        self.b_acc = 0  # the sum of the current row of B so far
        self.gemm = None  # (start cycle, busy cycles, result half) of the last GEMM
        self.last = 0
        self.clear_cycle = cycle
        self.transfers = 0
        self.windows = []  # (start cycle, busy cycles) of each GEMM since reset
        self.waits = []  # (from cycle, until cycle) of each held WAIT/READ
        self._written = np.zeros(0, dtype=np.int64)

    def _set(self, reg, value):
        bits = self.g.reg_bits(reg)
        self.regs[reg] = sx(value, bits) if reg in SIGNED_REGS else int(value) & ((1 << bits) - 1)
        return self.regs[reg]

    def _running(self, cycle):
        """The engine is busy in ``cycle``."""
        if self.gemm is None or cycle is None:
            return False
        t, total, _ = self.gemm
        return t < cycle <= t + total

    def _busy_cycles(self, lo, hi):
        """Busy cycles c with lo < c < hi."""
        return sum(max(0, min(hi - 1, t + total) - max(lo, t)) for t, total in self.windows)

    # -- ops -----------------------------------------------------------------
    def step(self, fid, in0, in1, cycle=None):
        funct3, op = split_function_id(fid)
        in0, in1 = int(in0) & 0xFFFFFFFF, int(in1) & 0xFFFFFFFF
        r = self.regs
        if funct3 == GSET:
            if op not in GemmReg._value2member_map_ or op in READ_ONLY_REGS:
                return 0
            reg = GemmReg(op)
            value = self._set(reg, in0)
            if reg in (GemmReg.A_WADDR, GemmReg.A_WROW):
                self.wcol[GemmOp.WRITE_A] = 0
            if reg in (GemmReg.B_WADDR, GemmReg.B_WROW):
                self.wcol[GemmOp.WRITE_B] = 0
                self.b_acc = 0
            return to_u32(value)
        if funct3 != GOP or op not in GemmOp._value2member_map_:
            return 0
        op = GemmOp(op)
        if op in (GemmOp.CH_BIAS, GemmOp.CH_MULT, GemmOp.CH_SHIFT) and in1 >= self.g.channels:
            return 0  # no such entry: bad input, no effect (not even on the counters)
        if op in TRANSFER_OPS:
            self.transfers += 1
        if op in (GemmOp.WRITE_A, GemmOp.WRITE_B):
            return self._write(op, in0, in1)
        if op == GemmOp.START:
            return self._start(cycle)
        if op == GemmOp.WAIT:
            if self._running(cycle):
                self._hold(cycle)
            return to_u32(self.last)
        if op == GemmOp.STATUS:
            return int(self._running(cycle))
        if op in (GemmOp.READ32, GemmOp.READ8):
            return self._read(op, cycle)
        if op in (GemmOp.CH_BIAS, GemmOp.CH_MULT, GemmOp.CH_SHIFT):
            if op == GemmOp.CH_BIAS:
                self.bias[in1] = wrap32(in0)
                return in0
            if op == GemmOp.CH_MULT:
                self.mult[in1] = wrap32(in0)
                return in0
            self.shift[in1] = sx(in0, SHIFT_BITS)
            return to_u32(self.shift[in1])
        if op == GemmOp.COUNTER:
            return self._counter(in0, cycle)
        if op == GemmOp.CLEAR:
            self.clear_cycle, self.transfers = cycle, 0
            return 0
        # GGET
        if in0 not in GemmReg._value2member_map_:
            return 0
        return to_u32(r[GemmReg(in0)])

    def _write(self, op, in0, in1):
        a = op == GemmOp.WRITE_A
        buf = self.a if a else self.b
        addr_reg, row_reg = (GemmReg.A_WADDR, GemmReg.A_WROW) if a else (GemmReg.B_WADDR, GemmReg.B_WROW)
        stride = self.regs[GemmReg.A_STRIDE if a else GemmReg.B_STRIDE]
        addr, row = self.regs[addr_reg], self.regs[row_reg]
        elements = lanes8(in0, in1)
        for j, v in enumerate(elements):
            buf[addr, (row + j) % ROWS] = v  # element 8q + j of the row: lane (row + j) mod 8
        col = self.wcol[op] + 1
        row_sum = (0 if a else self.b_acc) + sum(elements)
        if col == stride:
            col = 0
            self._set(row_reg, row + 1)
            if not a:
                self._set(GemmReg.B_ROWSUM, row_sum)
                row_sum = 0
        if not a:
            self.b_acc = row_sum
        self.wcol[op] = col & 0xFFFF
        self._set(addr_reg, addr + 1)
        return addr

    def _start(self, cycle):
        r = self.regs
        M, K, N, mode = r[GemmReg.M], r[GemmReg.K], r[GemmReg.N], r[GemmReg.MODE]
        if self._running(cycle) or 0 in (M, K, N) or mode >= len(MODES):
            return 0
        mode = MODES[mode]
        (ar, ac), (br, bc) = stored_shapes(M, K, N, mode)
        ri, ci = np.meshgrid(np.arange(ar), np.arange(ac), indexing="ij")
        a = operand_element(self.a, r[GemmReg.A_BASE], r[GemmReg.A_STRIDE], ri, ci)
        ri, ci = np.meshgrid(np.arange(br), np.arange(bc), indexing="ij")
        b = operand_element(self.b, r[GemmReg.B_BASE], r[GemmReg.B_STRIDE], ri, ci)
        a_ = a.T if mode == "tn" else a
        b_ = b.T if mode == "nt" else b
        c = wrap32(a_ @ b_)
        C = self.g.cols
        tiles = -(-N // C)
        padded = np.zeros((M, tiles * C), dtype=np.int64)
        padded[:, :N] = c
        # C[m, n] is lane n mod C of word C_BASE + (n div C)·M + m.
        words = (r[GemmReg.C_BASE] + np.arange(tiles)[:, None] * M + np.arange(M)[None, :]) % len(self.c)
        self.c[words.ravel()] = padded.reshape(M, tiles, C).transpose(1, 0, 2).reshape(-1, C)
        self.c_known[words.ravel()] = True
        self._written = words.ravel()
        total = gemm_cycles(ROWS, C, M, K, N, mode)
        self.last = total
        half = r[GemmReg.C_BASE] >> (self.g.result_addr_bits - 1)
        self.gemm = None if cycle is None else (cycle, total, half)
        if cycle is not None:
            self.windows.append((cycle, total))
        for reg, value in (
            (GemmReg.R_BASE, r[GemmReg.C_BASE]),
            (GemmReg.R_M, M),
            (GemmReg.R_N, N),
            (GemmReg.R_ROW, 0),
            (GemmReg.R_COL, 0),
        ):
            self._set(reg, value)
        return 1

    def _hold(self, cycle):
        """A WAIT accepted in ``cycle``, or a READ that must wait, ready to read in ``cycle``: it
        holds while the engine is busy."""
        t, total, _ = self.gemm
        self.waits.append((cycle, t + total))

    def _read(self, op, cycle):
        r, g = self.regs, self.g
        row, col = r[GemmReg.R_ROW], r[GemmReg.R_COL]
        lc = g.cols.bit_length() - 1
        n0 = col if op == GemmOp.READ32 else col & ~3
        addr = (r[GemmReg.R_BASE] + (n0 >> lc) * r[GemmReg.R_M] + row) % len(self.c)
        if self._running(cycle) and addr >> (g.result_addr_bits - 1) == self.gemm[2]:
            self._hold(cycle + READ_ISSUE)  # it reads READ_ISSUE cycles after acceptance at the earliest
        known = bool(self.c_known[addr])
        word = self.c[addr]
        if op == GemmOp.READ32:
            result = to_u32(word[n0 % g.cols])
            nxt = col + 1
        else:
            result = 0
            for i in range(4):
                n = n0 + i
                if n >= r[GemmReg.R_N]:
                    continue
                ch = (r[GemmReg.CH_BASE] + n) % g.channels
                y = post(
                    wrap32(int(word[n % g.cols]) + int(self.bias[ch])),
                    int(self.mult[ch]),
                    int(self.shift[ch]),
                    r[GemmReg.OUT_OFFSET],
                    r[GemmReg.ACT_MIN],
                    r[GemmReg.ACT_MAX],
                )
                result |= (int(y) & 0xFF) << (8 * i)
            nxt = n0 + 4
        if nxt >= r[GemmReg.R_N]:
            self._set(GemmReg.R_COL, 0)
            self._set(GemmReg.R_ROW, row + 1)
        else:
            self._set(GemmReg.R_COL, nxt)
        return result if known else None

    def _counter(self, which, cycle):
        if which == Counter.LAST:
            return to_u32(self.last)
        if which == Counter.TRANSFERS:
            return self.transfers
        if which not in Counter._value2member_map_:
            return 0
        if cycle is None:  # no time: nothing is ever busy
            return 0
        lo = -1 if self.clear_cycle is None else self.clear_cycle
        busy = self._busy_cycles(lo, cycle)
        wait = sum(max(0, min(end, cycle - 1) - max(start, lo + 1) + 1) for start, end in self.waits)
        return {Counter.BUSY: busy, Counter.WAIT: wait, Counter.OVERLAP: busy - wait}[which]


class CombinedCfuModel:
    """The combined CFU of ``cfu.v``: the MAC4 family (:class:`reference.cfu.CfuModel`) on
    funct3 0-5 and the GEMM ops on 6 and 7."""

    def __init__(self, geometry=DEFAULT_GEOMETRY):
        self.mac = CfuModel()
        self.gemm = GemmCfuModel(geometry)

    def reset(self, cycle=None):
        self.mac.reset()
        self.gemm.reset(cycle)

    def step(self, fid, in0, in1, cycle=None):
        funct3, _ = split_function_id(fid)
        if funct3 in (GSET, GOP):
            return self.gemm.step(fid, in0, in1, cycle)
        return self.mac.step(fid, in0, in1)
