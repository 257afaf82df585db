"""Build the co-simulation firmware from source: the MLP header from the
golden model, then crt0.S + main.c + the CFU kit's fc_kernel.c and the GEMM
kernels fc_gemm.c for RV32IM
with Debian's riscv64-unknown-elf-gcc."""

import shutil
import subprocess
from pathlib import Path

import numpy as np

from hdl.cfu.kit import write_cfu_kit
from reference.digits import load_split
from reference.float_mlp import digits_mlp

from ..runner import ToolMissing

__all__ = [
    "compile_firmware",
    "read_symbols",
    "build_firmware",
    "firmware_mlp",
    "WAYS",
    "STATS",
    "GEMM_PHASES",
    "GEMM_COUNTERS",
    "FIRMWARE_DIR",
    "CFLAGS",
    "FirmwareError",
    "FirmwareTooBig",
]


class FirmwareError(RuntimeError):
    """The firmware did not build."""


class FirmwareTooBig(FirmwareError):
    """The firmware with this many images does not fit in the SoC's RAM."""


#: The ways the firmware runs the MLP: each writes ``hid_<way>`` and ``out_<way>``.
WAYS = ("software", "cfu", "gemm")
#: The GEMM way's steps (cycles in each, summed over the batch's chunks).
GEMM_PHASES = ("load1", "start1", "load2", "finish1", "start2", "finish2")
#: The GEMM CFU's counters (:class:`reference.cfu_gemm_isa.Counter`) after the GEMM way.
GEMM_COUNTERS = ("busy", "wait", "overlap", "transfers")
#: The firmware's ``stats`` words, in order (the header gets one STAT_* index each).
STATS = (
    tuple(f"{way}_{what}" for what in ("cycles", "instructions") for way in WAYS)
    + tuple(f"gemm_{c}" for c in GEMM_COUNTERS)
    + tuple(f"gemm_{p}" for p in GEMM_PHASES)
)


FIRMWARE_DIR = Path(__file__).parent / "firmware"
GCC = "riscv64-unknown-elf-gcc"
# RV32IM; zicsr names the CSR instructions (rdcycle, csrw), which binutils
# 2.40 no longer folds into the base ISA.
CFLAGS = ["-march=rv32im_zicsr", "-mabi=ilp32", "-O2", "-ffreestanding", "-nostdlib", "-Wall", "-Werror"]


def firmware_mlp(images):
    """The int8 digits MLP's two layers (:class:`reference.tflm.FcParams`) and the
    quantized inputs of the first ``images`` test images."""
    mlp, _ = digits_mlp()
    if len(mlp.layers) != 2:
        raise ValueError(f"the firmware runs a two-layer MLP, not {len(mlp.layers)} layers")
    return mlp.layers, mlp.quantize_input(load_split()[2][:images])


def _c_array(decl, values, per_line=16):
    """A C initializer: one brace level per dimension of ``values``."""

    def body(v):
        v = np.asarray(v)
        if v.ndim > 1:
            return "{\n  " + ",\n  ".join(body(row) for row in v) + "\n}"
        items = [str(int(x)) for x in v]
        return "{" + ",\n   ".join(", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)) + "}"

    return f"{decl} __attribute__((aligned(4))) = {body(values)};\n"


def _params(p):
    return f"{{{p.input_offset}, {p.output_multiplier}, {p.output_shift}, {p.output_offset}, {p.act_min}, {p.act_max}}}"


def _mlp_header(layers, x):
    p1, p2 = layers
    n_hid, n_in = p1.filter.shape
    n_out = p2.filter.shape[0]
    stats = "".join(f"  STAT_{name.upper()},\n" for name in STATS)
    return (
        "/* Generated from the golden model (reference/tflm.py); do not edit. */\n"
        f"#define N_IN {n_in}\n#define N_HID {n_hid}\n#define N_OUT {n_out}\n#define N_IMAGES {len(x)}\n"
        f"#define L1_PARAMS {_params(p1)}\n#define L2_PARAMS {_params(p2)}\n"
        f"/* stats[]: the testbench reads them in this order (sim/soc/firmware.py STATS) */\n"
        f"enum {{\n{stats}  N_STATS\n}};\n"
        + _c_array("static const int8_t filter1[N_HID * N_IN]", np.ravel(p1.filter))
        + _c_array("static const int32_t bias1[N_HID]", p1.bias)
        + _c_array("static const int8_t filter2[N_OUT * N_HID]", np.ravel(p2.filter))
        + _c_array("static const int32_t bias2[N_OUT]", p2.bias)
        + _c_array("static const int8_t inputs[N_IMAGES][N_IN]", x)
    )


def build_firmware(out_dir, images=8, cold=False):
    """Compile the firmware for the first ``images`` test images into ``out_dir``;
    return ``(binary, symbols)``. Each way is timed with the model's weights in
    the data cache (as after earlier inferences), or with ``cold`` not (a
    first inference). Raises :class:`FirmwareTooBig` when the images' inputs
    and outputs do not fit in the SoC's RAM."""
    if shutil.which(GCC) is None:
        raise ToolMissing(f"{GCC} is not installed: run `make install`")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    kit = out_dir / "kit"
    write_cfu_kit(kit)
    (out_dir / "mlp.h").write_text(_mlp_header(*firmware_mlp(images)))
    elf = out_dir / "firmware.elf"
    result = compile_firmware(elf, kit, FIRMWARE_DIR / "link.ld", "main.c", ["-DCOLD_WEIGHTS"] if cold else [])
    if result.returncode:
        if "overflowed" in result.stderr or "no room for the stack" in result.stderr:
            raise FirmwareTooBig(f"the firmware with {images} images does not fit in the SoC's 64 KB of RAM")
        first = next((l for l in result.stderr.splitlines() if "error" in l), result.stderr.strip())
        raise FirmwareError(f"the firmware does not compile: {first}")
    binary = out_dir / "firmware.bin"
    subprocess.run(["riscv64-unknown-elf-objcopy", "-O", "binary", str(elf), str(binary)], check=True)
    return binary, read_symbols(elf)


def compile_firmware(elf, kit, linker_script, program, defines=()):
    """Compile ``program`` (a file of FIRMWARE_DIR) with the runtime and the kit's kernels into ``elf``;
    generated headers are looked for beside it. Returns the compiler's ``CompletedProcess``."""
    return subprocess.run(
        [
            GCC,
            *CFLAGS,
            *defines,
            f"-I{kit}",
            f"-I{elf.parent}",
            "-T",
            str(linker_script),
            str(FIRMWARE_DIR / "crt0.S"),
            str(FIRMWARE_DIR / program),
            str(FIRMWARE_DIR / "runtime.c"),
            str(kit / "fc_kernel.c"),
            str(kit / "fc_gemm.c"),
            "-o",
            str(elf),
        ],
        capture_output=True,
        text=True,
    )


def read_symbols(elf):
    """The ELF's symbols: name -> address."""
    nm = subprocess.run(["riscv64-unknown-elf-nm", str(elf)], check=True, capture_output=True, text=True).stdout
    rows = (line.split() for line in nm.splitlines())
    return {row[2]: int(row[0], 16) for row in rows if len(row) == 3}
