"""The GEMM golden model, the cycle model's closed forms, and the engine's parameters."""

import numpy as np
import pytest

from hdl.generate import to_verilog
from hdl.systolic import GemmEngine
from reference.gemm import (
    array_latency,
    chain_launches,
    final_writes,
    gemm,
    gemm_cycles,
    ideal_cycles,
    row_exit_cycle,
    scalesim_cycles,
    tile_launches,
    weight_stall_cycles,
)
from reference.gemm_layout import pack_operand, pack_results, unpack_operand, unpack_results


def test_modes_are_the_transposes():
    rng = np.random.default_rng(0)
    a, b = rng.integers(-128, 128, (5, 7)), rng.integers(-128, 128, (7, 3))
    np.testing.assert_array_equal(gemm(a, b, "nn"), a @ b)
    np.testing.assert_array_equal(gemm(a, b.T, "nt"), a @ b)
    np.testing.assert_array_equal(gemm(a.T, b, "tn"), a @ b)
    with pytest.raises(ValueError, match="unknown mode"):
        gemm(a, b, "tt")


def test_hand_worked_gemm():
    a = np.array([[1, 2], [3, 4]])
    b = np.array([[5, 6], [7, 8]])
    np.testing.assert_array_equal(gemm(a, b), [[19, 22], [43, 50]])
    np.testing.assert_array_equal(gemm(a, b, "nt"), [[17, 23], [39, 53]])
    np.testing.assert_array_equal(gemm(a, b, "tn"), [[26, 30], [38, 44]])


def test_cycle_model_closed_forms():
    # Back to back when M >= max(R, C): one tile every M cycles.
    assert tile_launches(8, 8, 64, 64, 64) == [1 + 64 * t for t in range(64)]
    assert array_latency(8, 8) == 16 and array_latency(1, 1) == 2
    # The last launch, its first row in 4 cycles (ROW_ENTRY), 63 more rows, 16 through the array.
    assert gemm_cycles(8, 8, 64, 64, 64) == 1 + 63 * 64 + 4 + 63 + 16 == 4116
    assert weight_stall_cycles(8, 8, 64, 64, 64) == 0
    # One weight port: with M < C a tile every C cycles, C - M of them a wait.
    assert tile_launches(2, 3, 1, 4, 3) == [1, 4]
    assert weight_stall_cycles(2, 3, 1, 4, 3) == 2
    # C < R: the bank of tile T-2 must drain, M + R - 1 cycles.
    assert tile_launches(4, 1, 1, 12, 1) == [1, 2, 5]
    assert scalesim_cycles(8, 8, 64, 64, 64) == 5504
    assert ideal_cycles(8, 8, 64, 64, 64) == 4096
    assert ideal_cycles(8, 8, 1, 1, 1) == 1


def test_chained_gemms_by_hand():
    """Three GEMMs on a 2x2 engine that chains them, worked by hand from the rules in chain_launches."""
    got = chain_launches(2, 2, [(3, 4, 2, 0), (1, 2, 4, 2), (2, 2, 2, 0)])
    # A: two K tiles, one every max(M, C) = 3 cycles; its last row exits 4 + 2 + R + C after its launch.
    # B: offered in 2, taken the cycle after A's last launch (5); its first tile waits for A's last
    # to stream its 3 rows (4 + 3 = 7); its second for the weight port (7 + max(1, 2)) and for the
    # bank of A's last tile to drain (4 + 3 + 2 - 1 = 8).
    # C: a third GEMM in flight waits for A's last write (14): taken in 15, launched in 16.
    assert got == [(0, [1, 4], 14), (5, [7, 9], 17), (15, [16], 25)]
    # Alone, a GEMM's tiles are tile_launches' counted from its take, and final_writes gives row_exit_cycle's.
    ((take, launches, last),) = chain_launches(4, 4, [(5, 9, 7, 3)])
    assert [p - take for p in launches] == tile_launches(4, 4, 5, 9, 7) and last - take == gemm_cycles(4, 4, 5, 9, 7)
    writes = final_writes(4, 4, 5, 9, 7, tile_launches(4, 4, 5, 9, 7))
    assert writes == [row_exit_cycle(4, 4, 5, 9, 7, i % 5, i // 5 * 4) for i in range(10)] and writes[
        -1
    ] == gemm_cycles(4, 4, 5, 9, 7)


def test_64_cubed_targets():
    cycles = gemm_cycles(8, 8, 64, 64, 64)
    assert 64**3 / (64 * cycles) >= 0.95
    assert cycles <= 0.8 * scalesim_cycles(8, 8, 64, 64, 64)


def test_operand_layout_is_diagonal():
    mat = np.arange(3 * 5).reshape(3, 5)
    words, stride = pack_operand(mat, 4)
    assert stride == 2
    for r in range(3):
        for c in range(5):
            assert words[r * stride + c // 4][(r + c) % 4] == mat[r, c]
    np.testing.assert_array_equal(unpack_operand(words, 3, 5, 4), mat)


@pytest.mark.parametrize("rows,cols", [(1, 1), (2, 3), (4, 4), (8, 8), (16, 16)])
def test_elaborates(rows, cols):
    module, text = to_verilog("gemm", rows=rows, cols=cols, operand_depth=64, result_depth=64)
    assert module == "GemmEngine" and "module GemmEngine(" in text


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"rows": 3}, "rows must be a power of two"),
        ({"cols": 0}, "cols must be a positive integer"),
        ({"operand_depth": 100}, "operand_depth must be a power of two"),
    ],
)
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GemmEngine(**kwargs)


def test_result_layout_round_trip():
    c = np.arange(5 * 7).reshape(5, 7)
    words = pack_results(c, 3)
    assert words.shape == (3 * 5, 3)
    assert words[2 * 5 + 4][0] == c[4, 6]  # C[m, n] = lane n mod C of word (n div C)·M + m
    np.testing.assert_array_equal(unpack_results(words, 5, 7, 3), c)
