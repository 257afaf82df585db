"""The CFU Playground kit's C: the FC kernels build for RV32IM with custom-0
instructions, and on the host both MAC4 versions give TFLM's int8 outputs
(the GEMM kernels' outputs: tests/test_fc_gemm.py)."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from hdl.cfu.kit import write_cfu_kit
from reference.cfu_gemm_isa import GOP, GSET, GemmOp
from reference.digits import load_split
from reference.float_mlp import digits_mlp
from reference.tflm import FcParams, fully_connected
from sim.soc.firmware import CFLAGS

RISCV_GCC = "riscv64-unknown-elf-gcc"
CUSTOM0 = 0x0B


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    out = tmp_path_factory.mktemp("kit")
    write_cfu_kit(out)
    return out


def _instructions(objdump):
    """32-bit instruction words of each function in an `objdump -d` listing."""
    funcs, current = {}, None
    for line in objdump.splitlines():
        if line.endswith(">:"):
            name = line.split("<")[1][:-2]
            if not name.startswith(".L"):  # local labels stay in their function
                current = name
                funcs[current] = []
        elif current and "\t" in line:
            fields = line.split("\t")
            word = fields[1].strip()
            if len(word) == 8:
                funcs[current].append(int(word, 16))
    return funcs


def _rv32_functions(kit, source, tmp_path):
    """Compile a kit source for RV32IM as the co-simulation firmware is (warnings are errors); return the
    instruction words of each function."""
    if shutil.which(RISCV_GCC) is None:
        pytest.fail(f"{RISCV_GCC} is missing: run `make install`")
    obj = tmp_path / f"{source}.o"
    subprocess.run([RISCV_GCC, *CFLAGS, "-Wextra", f"-I{kit}", "-c", str(kit / source), "-o", str(obj)], check=True)
    dump = subprocess.run(
        ["riscv64-unknown-elf-objdump", "-d", str(obj)], capture_output=True, text=True, check=True
    ).stdout
    return _instructions(dump)


def _custom0(words):
    """(funct3, funct7) of each custom-0 instruction."""
    return {((w >> 12) & 7, w >> 25) for w in words if w & 0x7F == CUSTOM0}


def test_kernel_builds_for_rv32im_with_custom0(kit, tmp_path):
    funcs = _rv32_functions(kit, "fc_kernel.c", tmp_path)
    funct3s = {f3 for f3, _ in _custom0(funcs["fc_int8_cfu"])}
    assert funct3s == {0, 1, 5}, f"custom-0 funct3s in fc_int8_cfu: {sorted(funct3s)}"  # MAC4, SET, POST
    assert not _custom0(funcs["fc_int8_ref"])


def test_gemm_kernels_build_for_rv32im_with_gemm_ops(kit, tmp_path):
    """fc_gemm.c issues only GEMM ops (its MAC4 fallback is fc_kernel.c's), each where it belongs."""
    funcs = _rv32_functions(kit, "fc_gemm.c", tmp_path)
    every = set().union(*(_custom0(words) for words in funcs.values()))
    assert {f3 for f3, _ in every} == {GSET, GOP}
    assert {op for f3, op in every if f3 == GOP} == {
        GemmOp.WRITE_A,
        GemmOp.WRITE_B,
        GemmOp.START,
        GemmOp.WAIT,
        GemmOp.READ8,
        GemmOp.CH_BIAS,
        GemmOp.CH_MULT,
        GemmOp.CH_SHIFT,
        GemmOp.GGET,
    }
    load = {op for f3, op in _custom0(funcs["fc_gemm_load"]) if f3 == GOP}
    assert load == {GemmOp.WRITE_B, GemmOp.GGET, GemmOp.CH_BIAS, GemmOp.CH_MULT, GemmOp.CH_SHIFT}
    assert (GOP, GemmOp.READ8) in _custom0(funcs["fc_gemm_finish"]) | _custom0(funcs.get("read_outputs", []))


def _layers():
    mlp, _ = digits_mlp()
    x = mlp.quantize_input(load_split()[2][:3])
    for p in mlp.layers:  # the real digits model, layer by layer
        yield x, p
        x = fully_connected(x, p)
    rng = np.random.default_rng(5)
    for n_in, n_out in [(1, 1), (5, 3), (7, 2), (13, 9)]:  # sizes that are not multiples of 4
        p = FcParams(
            filter=rng.integers(-128, 128, (n_out, n_in)),
            bias=rng.integers(-5000, 5000, n_out),
            input_offset=int(rng.choice([-127, 0, 83, 128])),
            output_multiplier=int(rng.integers(1 << 30, 1 << 31)),
            output_shift=int(rng.integers(-12, 2)),
            output_offset=int(rng.integers(-128, 128)),
            act_min=-128,
            act_max=127,
            input_scale=1.0,
            output_scale=1.0,
        )
        yield rng.integers(-128, 128, (2, n_in)), p


def test_both_kernels_match_tflm_reference(kit, tmp_path, build_host_c):
    exe = tmp_path / "fc"
    build_host_c(
        kit,
        [
            kit / "fc_kernel.c",
            kit / "cfu_emu.c",
            kit / "cfu_gemm_emu.c",
            Path(__file__).parent / "c" / "fc_kernel_driver.c",
        ],
        exe,
    )
    cases, expected = [], []
    for x, p in _layers():
        for row in x:
            n_out, n_in = p.filter.shape
            cases.append(
                " ".join(
                    str(int(v))
                    for v in [
                        n_in,
                        n_out,
                        p.input_offset,
                        p.output_multiplier,
                        p.output_shift,
                        p.output_offset,
                        p.act_min,
                        p.act_max,
                        *row,
                        *p.filter.ravel(),
                        *p.bias,
                    ]
                )
            )
            expected.append(fully_connected(row[None, :], p)[0])
    out = subprocess.run(
        [str(exe)], input="\n".join(cases) + "\n", capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert len(out) == 2 * len(cases)
    for i, want in enumerate(expected):
        ref = [int(v) for v in out[2 * i].split()]
        cfu = [int(v) for v in out[2 * i + 1].split()]
        assert ref == list(want), f"case {i}: plain C {ref}, TFLM reference {list(want)}"
        assert cfu == list(want), f"case {i}: CFU version {cfu}, TFLM reference {list(want)}"
