"""Build the co-simulation firmware from source: the layer header from the
golden model, then crt0.S + main.c + the CFU kit's fc_kernel.c for RV32IM
with Debian's riscv64-unknown-elf-gcc."""

import shutil
import subprocess
from pathlib import Path

import numpy as np

from hdl.cfu.kit import write_cfu_kit
from reference.digits import load_split
from reference.float_mlp import digits_mlp

from ..runner import ToolMissing

__all__ = ["build_firmware", "firmware_layer", "FIRMWARE_DIR", "CFLAGS", "FirmwareError"]


class FirmwareError(RuntimeError):
    """The firmware did not build."""


FIRMWARE_DIR = Path(__file__).parent / "firmware"
GCC = "riscv64-unknown-elf-gcc"
# RV32IM; zicsr names the CSR instructions (rdcycle, csrw), which binutils
# 2.40 no longer folds into the base ISA.
CFLAGS = ["-march=rv32im_zicsr", "-mabi=ilp32", "-O2", "-ffreestanding", "-nostdlib", "-Wall", "-Werror"]


def firmware_layer(samples, layer=0):
    """The digits MLP's layer ``layer`` and the int8 inputs it sees for the first test images."""
    mlp, _ = digits_mlp()
    x = mlp.quantize_input(load_split()[2][:samples])
    for p in mlp.layers[:layer]:
        from reference.tflm import fully_connected

        x = fully_connected(x, p)
    return mlp.layers[layer], x


def _c_array(decl, values, per_line=16):
    """A C initializer: one brace level per dimension of ``values``."""

    def body(v):
        v = np.asarray(v)
        if v.ndim > 1:
            return "{\n  " + ",\n  ".join(body(row) for row in v) + "\n}"
        items = [str(int(x)) for x in v]
        return "{" + ",\n   ".join(", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)) + "}"

    return f"{decl} __attribute__((aligned(4))) = {body(values)};\n"


def _layer_header(p, x):
    n_out, n_in = p.filter.shape
    return (
        "/* Generated from the golden model (reference/tflm.py); do not edit. */\n"
        f"#define N_IN {n_in}\n#define N_OUT {n_out}\n#define N_SAMPLES {len(x)}\n"
        f"#define LAYER_PARAMS {{{p.input_offset}, {p.output_multiplier}, {p.output_shift}, "
        f"{p.output_offset}, {p.act_min}, {p.act_max}}}\n"
        + _c_array("static const int8_t filter[N_OUT * N_IN]", np.ravel(p.filter))
        + _c_array("static const int32_t bias[N_OUT]", p.bias)
        + _c_array("static const int8_t inputs[N_SAMPLES][N_IN]", x)
    )


def build_firmware(out_dir, samples=2):
    """Compile the firmware into ``out_dir``; return ``(binary, symbols, layer, inputs)``."""
    if shutil.which(GCC) is None:
        raise ToolMissing(f"{GCC} is not installed: run `make install`")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    kit = out_dir / "kit"
    write_cfu_kit(kit)
    p, x = firmware_layer(samples)
    (out_dir / "layer.h").write_text(_layer_header(p, x))
    elf = out_dir / "firmware.elf"
    result = subprocess.run(
        [
            GCC,
            *CFLAGS,
            f"-I{kit}",
            f"-I{out_dir}",
            "-T",
            str(FIRMWARE_DIR / "link.ld"),
            str(FIRMWARE_DIR / "crt0.S"),
            str(FIRMWARE_DIR / "main.c"),
            str(kit / "fc_kernel.c"),
            "-o",
            str(elf),
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode:
        first = next((l for l in result.stderr.splitlines() if "error" in l), result.stderr.strip())
        raise FirmwareError(f"the firmware does not compile: {first}")
    binary = out_dir / "firmware.bin"
    subprocess.run(["riscv64-unknown-elf-objcopy", "-O", "binary", str(elf), str(binary)], check=True)
    nm = subprocess.run(["riscv64-unknown-elf-nm", str(elf)], check=True, capture_output=True, text=True).stdout
    symbols = {
        name: int(addr, 16) for addr, _, name in (line.split() for line in nm.splitlines() if len(line.split()) == 3)
    }
    return binary, symbols, p, x
