"""The CFU golden model: hand-worked ops, and the C emulation against it."""

import subprocess
from pathlib import Path

import numpy as np

from hdl.cfu.core import LANES
from hdl.cfu.kit import write_c_kit
from reference.cfu import CfuModel, mac4_sum
from reference.cfu_isa import MAC4_FIRST, Funct3, Reg, function_id
from reference.digits import load_split
from reference.float_mlp import digits_mlp
from reference.tflm import fully_connected
from sim.cfu.stimulus import random_commands
from sim.cfu.workload import fc_commands
from sim.common import pack_words, unpack_words

MAC, MAC_FIRST = function_id(Funct3.MAC4), function_id(Funct3.MAC4, MAC4_FIRST)


def SET(reg):
    return function_id(Funct3.SET, reg)


def GET(reg):
    return function_id(Funct3.GET, reg)


def word(*lanes):
    return pack_words(LANES, lanes)[0]


def test_mac4_hand_worked():
    cfu = CfuModel()
    assert cfu.step(MAC_FIRST, word(1, 2, 3, 4), word(1, 1, 1, 1)) == 10
    assert cfu.step(MAC, word(1, 2, 3, 4), word(-1, 0, 0, 2)) == 10 - 1 + 8
    assert cfu.step(SET(Reg.INPUT_OFFSET), 128, 0) == 128
    # TFLM: filter * (input + offset); input -128 with offset 128 is zero.
    assert cfu.step(MAC_FIRST, word(-128, -128, 127, 0), word(127, -128, 1, -1)) == (255 * 1 + 128 * -1) & 0xFFFFFFFF
    assert cfu.step(SET(Reg.INPUT_OFFSET), -83, 0) == (-83) & 0xFFFFFFFF
    assert cfu.step(MAC_FIRST, word(10, 0, 0, 0), word(3, 0, 0, 0)) == (10 - 83) * 3 & 0xFFFFFFFF


def test_acc_wraps_at_32_bits():
    cfu = CfuModel()
    cfu.step(SET(Reg.ACC), 0x7FFFFFFF, 0)
    assert cfu.step(MAC, word(1, 0, 0, 0), word(1, 0, 0, 0)) == 0x80000000
    assert cfu.step(GET(Reg.ACC), 0, 0) == 0x80000000


def test_set_truncates_and_sign_extends():
    cfu = CfuModel()
    assert cfu.step(SET(Reg.INPUT_OFFSET), 0x1FF, 0) == 0xFFFFFFFF  # 9-bit -1
    assert cfu.step(SET(Reg.INPUT_OFFSET), 0x100, 0) == 0xFFFFFF00  # 9-bit -256
    assert cfu.step(SET(Reg.OUTPUT_SHIFT), 0xFFFFFFE0, 0) == 0xFFFFFFE0  # -32
    assert cfu.step(SET(Reg.OUTPUT_SHIFT), 0x1F, 0) == 31
    assert cfu.step(GET(Reg.OUTPUT_SHIFT), 0, 0) == 31


def test_reset_values_and_undefined():
    cfu = CfuModel()
    assert [cfu.step(GET(r), 0, 0) for r in Reg] == [0, 0, 0, 0, 0, 0xFFFFFF80, 127]
    before = dict(cfu.regs)
    for fid in [
        function_id(6, 0),
        function_id(7, 5),
        function_id(Funct3.MAC4, 2),
        SET(7),
        GET(127),
        function_id(Funct3.SRDHM, 1),
        function_id(Funct3.POST, 3),
    ]:
        assert cfu.step(fid, 0x12345678, 0x9ABCDEF0) == 0
    assert cfu.regs == before


def test_post_hand_worked():
    cfu = CfuModel()
    for reg, value in [(Reg.OUTPUT_MULTIPLIER, 1 << 30), (Reg.OUTPUT_SHIFT, -2), (Reg.OUTPUT_OFFSET, -10)]:
        cfu.step(SET(reg), value & 0xFFFFFFFF, 0)
    cfu.step(SET(Reg.ACC), 1000, 0)
    # (1000 + 24) * 0.5 / 4 = 128, -10 -> 118
    assert cfu.step(function_id(Funct3.POST), 24, 0) == 118
    assert cfu.step(function_id(Funct3.POST), 2000, 0) == 127  # clamped to act_max
    assert cfu.step(function_id(Funct3.POST), (-5000) & 0xFFFFFFFF, 0) == 0xFFFFFF80  # act_min
    assert cfu.step(GET(Reg.ACC), 0, 0) == 1000  # POST leaves acc


def test_layer_as_commands_equals_tflm_kernel():
    """The op stream that the RTL runs gives TFLM's FC outputs on the golden model too."""
    mlp, _ = digits_mlp()
    x = mlp.quantize_input(load_split()[2][:5])
    for p in mlp.layers:
        commands, post_indices = fc_commands(x, p)
        responses = CfuModel().run(commands).astype(np.int64)
        out = responses[post_indices]
        out = np.where(out >= 1 << 31, out - (1 << 32), out)
        np.testing.assert_array_equal(out, fully_connected(x, p))
        x = out


def test_int8_mlp_accuracy_close_to_float():
    mlp, float_accuracy = digits_mlp()
    _, _, x_test, y_test = load_split()
    int8_accuracy = np.mean(mlp.predict(mlp.quantize_input(x_test)) == y_test)
    assert float_accuracy > 0.93
    assert int8_accuracy >= float_accuracy - 0.02


def test_c_emulation_matches_golden_model(tmp_path, build_host_c):
    kit = write_c_kit(tmp_path / "kit")[0].parent
    exe = tmp_path / "emu"
    sources = [kit / "cfu_emu.c", kit / "cfu_gemm_emu.c", Path(__file__).parent / "c" / "cfu_emu_driver.c"]
    build_host_c(kit, sources, exe)
    # funct3 6 and 7 are the GEMM ops in the kit's emulation: tests/test_cfu_gemm_emu.py checks those.
    commands = [c for c in random_commands(20000, seed=7) if c[0] & 7 < 6]
    stdin = "".join(f"{f} {a} {b}\n" for f, a, b in commands)
    out = subprocess.run([str(exe)], input=stdin, capture_output=True, text=True, check=True).stdout
    got = [int(v) for v in out.split()]
    expected = CfuModel().run(commands)
    assert len(got) == len(commands)
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g == e, f"command #{i} {commands[i]}: C emulation 0x{g:08x}, golden 0x{int(e):08x}"


def test_golden_lanes_agree_with_the_rtl_layout():
    """The golden model splits lanes on its own (it may not import hdl); it must agree with LANES."""
    rng = np.random.default_rng(7)
    words = [int(w) for w in rng.integers(0, 1 << 32, size=50)] + [0x80FF7F01, 0xFFFFFFFF, 0]
    lanes = unpack_words(LANES, words)
    assert pack_words(LANES, lanes) == words
    for w, row in zip(words, lanes):
        for j, lane in enumerate(row):
            one_hot = pack_words(LANES, [int(j == k) for k in range(LANES.length)])[0]
            assert mac4_sum(w, one_hot, 0) == lane
