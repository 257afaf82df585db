"""Constrained-random CFU command streams that reach the corners.

Corners: lanes at -128 and 127; acc near INT32_MIN and INT32_MAX; input
offsets -128, -83, 0, 127 and 128; every output shift from -32 to 31;
SRDHM's INT32_MIN * INT32_MIN; RDBPOT ties; and every kind of undefined
function_id.
"""

import numpy as np

from hdl.cfu.core import LANES
from reference.cfu_isa import MAC4_ACCUMULATE, MAC4_FIRST, Funct3, Reg, function_id
from sim.common import pack_words

__all__ = ["random_commands", "srdhm_near_steps"]

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
CORNER_WORDS = [INT32_MIN, INT32_MIN + 1, -(1 << 30), -2, -1, 0, 1, 2, 1 << 30, INT32_MAX - 1, INT32_MAX]
INPUT_OFFSETS = [-128, -83, 0, 127, 128, -256, 255]
ACC_CORNERS = [INT32_MIN, INT32_MIN + 1, INT32_MIN + 70000, INT32_MAX, INT32_MAX - 1, INT32_MAX - 70000, 0, -1]


def _u32(v):
    return int(v) & 0xFFFFFFFF


def _lane_word(rng):
    """Four int8 lanes, each an extreme (-128, 127, 0, -1) one time in two."""
    lanes = [
        int(rng.choice([-128, 127, 0, -1])) if rng.random() < 0.5 else int(rng.integers(-128, 128))
        for _ in range(LANES.length)
    ]
    return pack_words(LANES, lanes)[0]


def _word(rng):
    return int(rng.choice(CORNER_WORDS)) if rng.random() < 0.3 else int(rng.integers(INT32_MIN, INT32_MAX + 1))


def _set_value(rng, reg):
    if reg == Reg.INPUT_OFFSET:
        return int(rng.choice(INPUT_OFFSETS)) if rng.random() < 0.8 else _word(rng)
    if reg == Reg.ACC:
        return int(rng.choice(ACC_CORNERS)) if rng.random() < 0.7 else _word(rng)
    if reg == Reg.OUTPUT_MULTIPLIER:
        return int(rng.integers(1 << 30, 1 << 31)) if rng.random() < 0.7 else _word(rng)
    if reg == Reg.OUTPUT_SHIFT:
        # The ends often: -32 is the one shift whose right shift (31) is clamped (found by make coverage).
        r = rng.random()
        return int(rng.choice([-32, 31])) if r < 0.1 else int(rng.integers(-32, 32)) if r < 0.8 else _word(rng)
    if reg == Reg.OUTPUT_OFFSET:
        return int(rng.integers(-128, 128)) if rng.random() < 0.7 else _word(rng)
    if reg == Reg.ACT_MIN:
        return int(rng.choice([-128, -127, 0, -100])) if rng.random() < 0.8 else _word(rng)
    return int(rng.choice([127, 126, 0, 100])) if rng.random() < 0.8 else _word(rng)


def _undefined(rng):
    kind = rng.integers(5)
    if kind == 0:
        return function_id(int(rng.integers(6, 8)), int(rng.integers(0, 128)))
    if kind == 1:
        return function_id(Funct3.MAC4, int(rng.integers(2, 128)))
    if kind == 2:
        return function_id(int(rng.choice([Funct3.SET, Funct3.GET])), int(rng.integers(len(Reg), 128)))
    return function_id(int(rng.choice([Funct3.SRDHM, Funct3.RDBPOT, Funct3.POST])), int(rng.integers(1, 128)))


def srdhm_near_steps(rng, bands=(0, 4, 8, 12, 16, 20, 24, 28)):
    """Operand pairs ``(a, b)`` of SaturatingRoundingDoublingHighMul whose ``a·b + 2^30`` lands just past a
    multiple of 2^31 (its remainder under 2^j) or just before one (over 2^31 - 2^j), for each j in
    ``bands``: there a fault that moves a low bit of the product's sum changes the answer, where random
    operands would do so one time in about 2^(31 - j). One operand is odd and under 120 in magnitude, so the
    answer is under 121 in magnitude (int8 after a shift of 0); the other is the solution of the
    congruence mod 2^31, of either sign. Two pairs a band and side, in random order."""
    out = []
    for j in bands:
        for above in (True, False):
            for _ in range(2):
                small = int(rng.integers(1, 60)) * 2 + 1
                small = -small if rng.random() < 0.5 else small
                r = int(rng.integers(0, 1 << j))
                r = r if above else (1 << 31) - 1 - r
                big = (r - (1 << 30)) * pow(small, -1, 1 << 31) % (1 << 31)
                big = big - (1 << 31) if rng.random() < 0.5 else big
                assert (big * small + (1 << 30)) % (1 << 31) == r
                out.append((big, small) if rng.random() < 0.5 else (small, big))
    return [out[k] for k in rng.permutation(len(out))]


def random_commands(n, seed=0):
    """``n`` commands ``(function_id, in0, in1)`` as unsigned 32-bit ints."""
    rng = np.random.default_rng(seed)
    kinds = ["mac", "mac_first", "set", "get", "srdhm", "rdbpot", "post", "undefined"]
    weights = np.array([36, 5, 16, 6, 9, 9, 12, 7], dtype=float)
    picks = rng.choice(len(kinds), size=n, p=weights / weights.sum())
    commands = []
    for pick in picks:
        kind = kinds[pick]
        if kind in ("mac", "mac_first"):
            f7 = MAC4_FIRST if kind == "mac_first" else MAC4_ACCUMULATE
            cmd = (function_id(Funct3.MAC4, f7), _lane_word(rng), _lane_word(rng))
        elif kind == "set":
            reg = Reg(int(rng.integers(len(Reg))))
            cmd = (function_id(Funct3.SET, reg), _set_value(rng, reg), _word(rng))
        elif kind == "get":
            cmd = (function_id(Funct3.GET, int(rng.integers(len(Reg)))), _word(rng), _word(rng))
        elif kind == "srdhm":
            cmd = (function_id(Funct3.SRDHM), _word(rng), _word(rng))
        elif kind == "rdbpot":
            x = _word(rng)
            e = int(rng.integers(0, 32))
            if rng.random() < 0.3 and e:  # an exact tie: x = (2k + 1) * 2**(e-1)
                x = (int(rng.integers(-(1 << (31 - e)), 1 << (31 - e))) * 2 + 1) << (e - 1)
            cmd = (function_id(Funct3.RDBPOT), x, e | (int(rng.integers(0, 1 << 27)) << 5))
        elif kind == "post":
            bias = int(rng.integers(-(1 << 16), 1 << 16)) if rng.random() < 0.7 else _word(rng)
            cmd = (function_id(Funct3.POST), bias, _word(rng))
        else:
            cmd = (_undefined(rng), _word(rng), _word(rng))
        commands.append(tuple(_u32(v) for v in cmd))
    return commands
