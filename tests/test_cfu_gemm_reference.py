"""The GEMM CFU's golden model (reference/cfu_gemm.py) against the definitions it is written from:
reference.gemm's GEMM and cycle count, reference.gemm_layout's banking, TFLM's fully-connected kernel
(reference.tflm), per tensor and per channel, and the ISA's rules for bad input."""

import copy

import numpy as np
import pytest

from reference.cfu_gemm import CombinedCfuModel, GemmCfuModel
from reference.cfu_gemm_isa import GOP, GSET, Counter, GemmCfuGeometry, GemmOp, GemmReg, info_word
from reference.cfu_isa import Funct3, Reg, function_id
from reference.fixedpoint import quantize_multiplier
from reference.gemm import MODE_CODE, MODES, gemm, gemm_cycles, stored_shapes
from reference.gemm_layout import pack_operand, pack_results
from reference.tflm import FcParams, fully_connected


def gset(model, reg, value, cycle=None):
    return model.step(function_id(GSET, reg), value, 0, cycle)


def gop(model, op, in0=0, in1=0, cycle=None):
    return model.step(function_id(GOP, op), in0, in1, cycle)


def words8(row):
    """The (in0, in1) pairs that carry a row of int8, zero-padded to whole words of 8."""
    row = np.pad(np.asarray(row, dtype=np.int64), (0, -len(row) % 8)) & 0xFF
    for q in range(0, len(row), 8):
        w = sum(int(v) << (8 * i) for i, v in enumerate(row[q : q + 8]))
        yield w & 0xFFFFFFFF, w >> 32


def write_matrix(model, op, mat, waddr):
    addr_reg, row_reg = (GemmReg.A_WADDR, GemmReg.A_WROW) if op == GemmOp.WRITE_A else (GemmReg.B_WADDR, GemmReg.B_WROW)
    gset(model, GemmReg.A_STRIDE if op == GemmOp.WRITE_A else GemmReg.B_STRIDE, -(-mat.shape[1] // 8))
    gset(model, addr_reg, waddr)
    gset(model, row_reg, 0)
    sums = []
    for row in mat:
        for lo, hi in words8(row):
            gop(model, op, lo, hi)
        sums.append(gop(model, GemmOp.GGET, GemmReg.B_ROWSUM))
    return sums


def configure(model, M, K, N, mode, a_base, b_base, c_base):
    (_, ac), (_, bc) = stored_shapes(M, K, N, mode)
    for reg, v in (
        (GemmReg.M, M),
        (GemmReg.K, K),
        (GemmReg.N, N),
        (GemmReg.MODE, MODE_CODE[mode]),
        (GemmReg.A_STRIDE, -(-ac // 8)),
        (GemmReg.B_STRIDE, -(-bc // 8)),
        (GemmReg.A_BASE, a_base),
        (GemmReg.B_BASE, b_base),
        (GemmReg.C_BASE, c_base),
    ):
        gset(model, reg, v)


def s32(v):
    return v - (1 << 32) if v >> 31 else v


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cols", [4, 8, 16])
def test_gemm_through_the_ops_equals_the_definition(mode, cols):
    g = GemmCfuGeometry(cols=cols, operand_depth=256, result_depth=128)
    rng = np.random.default_rng(cols * 7 + MODE_CODE[mode])
    for M, K, N in [(1, 1, 1), (3, 9, 5), (8, 8, 8), (7, 17, cols + 3), (2, 30, 1)]:
        model = GemmCfuModel(g)
        (ar, ac), (br, bc) = stored_shapes(M, K, N, mode)
        a = rng.integers(-128, 128, (ar, ac))
        b = rng.integers(-128, 128, (br, bc))
        a_base, b_base, c_base = int(rng.integers(0, 300)), int(rng.integers(0, 300)), int(rng.integers(0, 100))
        write_matrix(model, GemmOp.WRITE_A, a, a_base)
        write_matrix(model, GemmOp.WRITE_B, b, b_base)
        # The CPU's writes land in the engine's diagonal banking (reference.gemm_layout).
        stored, W = pack_operand(a, 8)
        assert np.array_equal(model.a[np.arange(a_base, a_base + ar * W) % 512], stored)
        configure(model, M, K, N, mode, a_base, b_base, c_base)
        assert gop(model, GemmOp.START) == 1
        assert gop(model, GemmOp.WAIT) == gemm_cycles(8, cols, M, K, N)
        expected = gemm(a, b, mode)
        # The result words are reference.gemm_layout's, zero lanes past N included.
        words = pack_results(expected, cols)
        assert np.array_equal(model.c[np.arange(c_base, c_base + len(words)) % 256], words)
        got = [[s32(gop(model, GemmOp.READ32)) for _ in range(N)] for _ in range(M)]
        assert np.array_equal(got, expected)
        # The pointer walked the matrix row by row and is at the next row.
        assert gop(model, GemmOp.GGET, GemmReg.R_ROW) == M and gop(model, GemmOp.GGET, GemmReg.R_COL) == 0


def _layer(rng, n_in, n_out, per_channel):
    f = rng.integers(-127, 128, (n_out, n_in))
    scales = rng.uniform(0.2, 2.0, n_out) if per_channel else np.full(n_out, 0.7)
    qm = [quantize_multiplier(s * 2.0 ** -int(rng.integers(4, 12))) for s in scales]
    return dict(
        filter=f,
        bias=rng.integers(-20000, 20000, n_out),
        input_offset=int(rng.integers(-127, 129)),
        mult=np.array([m for m, _ in qm]),
        shift=np.array([s for _, s in qm]),
        output_offset=int(rng.integers(-128, 128)),
        act_min=-128 if rng.random() < 0.5 else int(rng.integers(-128, 0)),
        act_max=127,
    )


def _tflm(x, L):
    """TFLM's per-channel FC: every output channel with its own multiplier and shift."""
    out = []
    for o in range(L["filter"].shape[0]):
        p = FcParams(
            L["filter"][o : o + 1],
            L["bias"][o : o + 1],
            L["input_offset"],
            int(L["mult"][o]),
            int(L["shift"][o]),
            L["output_offset"],
            L["act_min"],
            L["act_max"],
            1.0,
            1.0,
        )
        out.append(fully_connected(x, p)[:, 0])
    return np.stack(out, axis=1)


@pytest.mark.parametrize("per_channel", [False, True])
def test_read8_is_tflm_fully_connected_with_the_offset_folded_through_b_rowsum(per_channel):
    """The kernel recipe of docs/cfu_gemm.md: bias + input_offset·rowsum(W) per channel (B_ROWSUM),
    the GEMM in mode nt, READ8 through the output stage; the answer is TFLM's FC bit for bit."""
    rng = np.random.default_rng(11 + per_channel)
    for batch, n_in, n_out in [(1, 1, 1), (5, 13, 10), (8, 64, 32), (3, 24, 7)]:
        L = _layer(rng, n_in, n_out, per_channel)
        x = rng.integers(-128, 128, (batch, n_in))
        model = GemmCfuModel()
        ch_base = int(rng.integers(0, 256))
        sums = write_matrix(model, GemmOp.WRITE_B, L["filter"], 512)
        assert [s32(s) for s in sums] == list(L["filter"].sum(axis=1))
        for n in range(n_out):
            ch = (ch_base + n) % 256
            gop(model, GemmOp.CH_BIAS, int(L["bias"][n] + L["input_offset"] * s32(sums[n])) & 0xFFFFFFFF, ch)
            gop(model, GemmOp.CH_MULT, int(L["mult"][n]), ch)
            gop(model, GemmOp.CH_SHIFT, int(L["shift"][n]) & 0xFFFFFFFF, ch)
        write_matrix(model, GemmOp.WRITE_A, x, 3)
        configure(model, batch, n_in, n_out, "nt", 3, 512, 200)
        for reg, v in (
            (GemmReg.OUT_OFFSET, L["output_offset"]),
            (GemmReg.ACT_MIN, L["act_min"]),
            (GemmReg.CH_BASE, ch_base),
        ):
            gset(model, reg, v & 0xFFFFFFFF)
        gset(model, GemmReg.ACT_MAX, L["act_max"])
        assert gop(model, GemmOp.START) == 1
        got = np.zeros((batch, -(-n_out // 4) * 4), dtype=np.int64)
        for m in range(batch):
            for q in range(0, n_out, 4):
                w = gop(model, GemmOp.READ8)
                got[m, q : q + 4] = [((w >> (8 * i) & 0xFF) ^ 0x80) - 0x80 for i in range(4)]
        assert np.array_equal(got[:, :n_out], _tflm(x, L))
        assert not got[:, n_out:].any(), "lanes past N read 0"


def test_bad_input_answers_zero_and_changes_nothing():
    model = CombinedCfuModel()
    gset(model.gemm, GemmReg.M, 3)
    gop(model.gemm, GemmOp.CH_BIAS, 77, 5)
    before = copy.deepcopy(model.gemm.__dict__)
    for fid, in0, in1 in [
        (function_id(GOP, max(GemmOp) + 1), 1, 2),
        (function_id(GOP, 127), 5, 5),
        (function_id(GSET, GemmReg.INFO), 123, 0),
        (function_id(GSET, GemmReg.B_ROWSUM), 123, 0),
        (function_id(GSET, max(GemmReg) + 1), 9, 0),
        (function_id(GOP, GemmOp.CH_BIAS), 5, 256),  # no such channel entry
        (function_id(GOP, GemmOp.GGET), 99, 0),
        (function_id(GOP, GemmOp.COUNTER), 99, 0),
    ]:
        assert model.step(fid, in0, in1) == 0
    after = model.gemm.__dict__
    for key, value in before.items():
        if key == "g":
            continue
        assert np.array_equal(after[key], value) if isinstance(value, np.ndarray) else after[key] == value, key
    # START refuses zero sizes and mode 3; the old ISA is untouched beside the GEMM ops.
    assert gop(model.gemm, GemmOp.START) == 0  # K = N = 0
    gset(model.gemm, GemmReg.K, 1), gset(model.gemm, GemmReg.N, 1), gset(model.gemm, GemmReg.MODE, 3)
    assert gop(model.gemm, GemmOp.START) == 0
    assert gset(model.gemm, GemmReg.MODE, 7) == 3  # two bits
    assert model.step(function_id(Funct3.SET, Reg.ACT_MIN), 0xFFFFFF00, 0) == 0xFFFFFF00
    assert gop(model.gemm, GemmOp.GGET, GemmReg.INFO) == info_word(model.gemm.g)


def test_busy_window_start_refusal_waits_and_counters():
    """A GEMM started in cycle t is busy in t+1 .. t+T; counters count from the cycle after CLEAR."""
    model = GemmCfuModel()
    M, K, N = 4, 20, 9
    configure(model, M, K, N, "nn", 0, 0, 0)
    T = gemm_cycles(8, 8, M, K, N)
    assert gop(model, GemmOp.WAIT, cycle=5) == 0, "nothing started: WAIT answers at once with 0"
    gop(model, GemmOp.CLEAR, cycle=9)
    assert gop(model, GemmOp.START, cycle=10) == 1
    assert gop(model, GemmOp.STATUS, cycle=11) == 1
    assert gop(model, GemmOp.START, cycle=12) == 0, "refused while busy"
    assert gop(model, GemmOp.GGET, GemmReg.R_M, cycle=13) == M
    assert gop(model, GemmOp.STATUS, cycle=10 + T) == 1
    assert gop(model, GemmOp.COUNTER, Counter.BUSY, cycle=20) == 9  # cycles 11..19
    gop(model, GemmOp.WAIT, cycle=21)  # holds in 21 .. 10+T
    gop(model, GemmOp.WRITE_A, cycle=10 + T + 2)
    assert gop(model, GemmOp.STATUS, cycle=10 + T + 3) == 0
    busy = gop(model, GemmOp.COUNTER, Counter.BUSY, cycle=10 + T + 5)
    wait = gop(model, GemmOp.COUNTER, Counter.WAIT, cycle=10 + T + 6)
    overlap = gop(model, GemmOp.COUNTER, Counter.OVERLAP, cycle=10 + T + 7)
    assert (busy, wait, overlap) == (T, T - 10, 10)
    assert gop(model, GemmOp.COUNTER, Counter.TRANSFERS, cycle=10 + T + 8) == 1
    assert gop(model, GemmOp.COUNTER, Counter.LAST) == T
    assert gop(model, GemmOp.START, cycle=10 + T + 9) == 1
    # A reset while it runs leaves its result words undefined; reads of them answer None.
    model.reset(cycle=10 + T + 12)
    assert gop(model, GemmOp.GGET, GemmReg.ACT_MIN) == 0xFFFFFF80
    gset(model, GemmReg.R_M, M), gset(model, GemmReg.R_N, N)
    assert gop(model, GemmOp.READ32, cycle=10 + T + 20) is None
    assert gop(model, GemmOp.COUNTER, Counter.LAST) == 0
