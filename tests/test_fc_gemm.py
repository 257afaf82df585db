"""The kit's GEMM FC kernels (fc_gemm.c) on the host, through the CFU emulation: every output byte
against TFLM's kernel (per tensor, reference.tflm.fully_connected) and a per-channel reference written
from TFLM's definition, on the digits MLP and random layers of odd sizes, aligned and not, a row at a
time, batched (one chunk and several), with the load/start/finish API and two layers chained; on the
default geometry and on a small one whose chunks of outputs, inputs and channels are tiny."""

import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from hdl.cfu.kit import write_c_kit
from reference.cfu_gemm import GemmCfuModel
from reference.cfu_gemm_isa import DEFAULT_GEOMETRY, GOP, GSET, TRANSFER_OPS, GemmCfuGeometry, GemmOp, GemmReg
from reference.cfu_isa import function_id
from reference.digits import load_split
from reference.fixedpoint import clamp, multiply_by_quantized_multiplier, wrap32
from reference.float_mlp import digits_mlp
from reference.gemm import MODES, stored_shapes
from reference.tflm import FcParams, fully_connected

DRIVER = Path(__file__).parent / "c" / "fc_gemm_driver.c"
TRACE = Path(__file__).parent / "c" / "cfu_trace.c"
SMALL = GemmCfuGeometry(cols=4, operand_depth=8, result_depth=4, channels=4)
SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 16, 17, 31, 33, 40, 64]


@dataclass
class Layer:
    p: FcParams
    multipliers: np.ndarray = None  # per channel, or None: per tensor
    shifts: np.ndarray = None
    has_bias: bool = True


def reference(x, layer):
    """TFLM's int8 FC; per channel: ``MultiplyByQuantizedMultiplier(acc, multiplier[o], shift[o])``
    (TFLM's FullyConnectedPerChannel), the same accumulation, offset and clamp."""
    p = layer.p if layer.has_bias else replace(layer.p, bias=np.zeros_like(layer.p.bias))
    if layer.multipliers is None:
        return fully_connected(x, p)
    x = np.asarray(x, dtype=np.int64)
    acc = wrap32((x + p.input_offset) @ p.filter.astype(np.int64).T + p.bias.astype(np.int64))
    y = wrap32(multiply_by_quantized_multiplier(acc, layer.multipliers[None, :], layer.shifts[None, :]))
    return clamp(wrap32(y + p.output_offset), p.act_min, p.act_max)


def _shift(rng, n_in):
    """A shift that maps accumulations of n_in products of int8 mostly into int8 (some saturate)."""
    return -7 - n_in.bit_length() // 2 + int(rng.integers(-2, 3))


def random_layer(rng, n_in, n_out, per_channel):
    p = FcParams(
        filter=rng.integers(-128, 128, (n_out, n_in)),
        bias=rng.integers(-20000, 20000, n_out) if rng.random() < 0.9 else rng.integers(-(1 << 31), 1 << 31, n_out),
        input_offset=int(rng.choice([-127, 0, 1, 83, 128])),
        output_multiplier=int(rng.integers(1 << 30, 1 << 31)),
        output_shift=_shift(rng, n_in),
        output_offset=int(rng.integers(-128, 128)),
        act_min=int(rng.choice([-128, -128, -100, 0])),
        act_max=int(rng.choice([127, 127, 100])),
        input_scale=1.0,
        output_scale=1.0,
    )
    layer = Layer(p, has_bias=rng.random() < 0.85)
    if per_channel:
        layer.multipliers = rng.integers(1 << 30, 1 << 31, n_out)
        layer.shifts = np.array([_shift(rng, n_in) for _ in range(n_out)])
    return layer


def _layer_text(layer):
    p = layer.p
    n_out, n_in = p.filter.shape
    per_channel = layer.multipliers is not None
    values = [n_in, n_out, int(per_channel), int(layer.has_bias)]
    values += [p.input_offset, p.output_multiplier, p.output_shift, p.output_offset, p.act_min, p.act_max]
    if per_channel:
        values += [*layer.multipliers, *layer.shifts]
    values += list(p.filter.ravel())
    if layer.has_bias:
        values += list(p.bias)
    return " ".join(str(int(v)) for v in values)


@dataclass
class Case:
    way: int  # 0 a row at a time, 1 batched, 2 load/start/finish, 3 two layers chained
    x: np.ndarray
    layers: list
    misalign: tuple = (0, 0, 0)
    bases: tuple = ()

    def text(self):
        head = f"{self.way} {len(self.x)} {' '.join(map(str, self.misalign))}"
        parts = [head, *(_layer_text(layer) for layer in self.layers)]
        if self.way == 2:
            parts.append(" ".join(map(str, self.bases)))
        parts.append(" ".join(str(int(v)) for v in np.ravel(self.x)))
        return "\n".join(parts)

    def expected(self):
        y = self.x
        for layer in self.layers:
            y = reference(y, layer)
        return y


def _cases(g, rng):
    mlp, _ = digits_mlp()
    x = mlp.quantize_input(load_split()[2][:9])
    l1, l2 = (Layer(p) for p in mlp.layers)
    yield Case(1, x, [l1])
    yield Case(0, x[:2], [l1])
    if g is DEFAULT_GEOMETRY:  # both layers' weights and channel entries held at once
        yield Case(3, x, [l1, l2])
        yield Case(3, x[:1], [l1, l2], misalign=(1, 2, 3))
    h = fully_connected(x, l1.p)
    yield Case(1, h, [l2], misalign=(0, 0, 2))
    space = 2 * g.operand_depth
    for i in range(70):
        way, per_channel = i % 3, i % 2 == 1
        n_out = int(rng.choice([s for s in SIZES if way < 2 or s <= g.channels]))
        n_in = int(rng.choice([s for s in SIZES if way < 2 or -(-s // 8) * n_out <= space]))
        layer = random_layer(rng, n_in, n_out, per_channel)
        batch = int(rng.choice([1, 1, 2, 3, 8, 9, 17]))
        if way == 2:  # the low-level API takes inputs that fit half of A and results half of C
            batch = max(1, min(batch, g.operand_depth // -(-n_in // 8), g.result_depth // -(-n_out // g.cols)))
        misalign = tuple(int(v) for v in rng.choice([0, 0, 1, 2, 3], 3)) if rng.random() < 0.4 else (0, 0, 0)
        c_words = -(-n_out // g.cols) * batch  # the results stay in one half of C (the firmware's contract)
        bases = (
            int(rng.integers(0, space)),
            int(rng.integers(0, g.channels)),
            int(rng.integers(0, space)),
            int(rng.integers(0, 2)) * g.result_depth + int(rng.integers(0, max(0, g.result_depth - c_words) + 1)),
        )
        yield Case(way, rng.integers(-128, 128, (batch, n_in)), [layer], misalign, bases)
    for i in range(8):  # two layers chained (each half of B, of A, of C and of the channels holds one)
        small = [s for s in SIZES if s <= g.channels // 2]
        n_hid, n_out = int(rng.choice(small)), int(rng.choice(small))
        n_in = int(rng.choice([s for s in SIZES if -(-s // 8) * n_hid <= g.operand_depth]))
        if -(-n_hid // 8) * n_out > g.operand_depth:
            continue
        layers = [random_layer(rng, n_in, n_hid, i % 2), random_layer(rng, n_hid, n_out, i % 2 == 0)]
        tiles = -(-max(n_hid, n_out) // g.cols)
        batch = min(int(rng.choice([1, 3, 8])), g.operand_depth // -(-max(n_in, n_hid) // 8), g.result_depth // tiles)
        yield Case(3, rng.integers(-128, 128, (batch, n_in)), layers, (0, 0, 0))
    # Batches of more than one chunk of inputs, outputs of more than one chunk of weights (more than the
    # channels, or than B holds), and rows too long for half of A (the MAC4 path).
    half_rows = 8 * g.operand_depth
    for n_in, n_out, batch in [
        (1000 if g is DEFAULT_GEOMETRY else 40, 5, 11),
        (64, 32, 150 if g is DEFAULT_GEOMETRY else 20),
        (3, g.channels + 5, 3),
        (8 * g.operand_depth // 3, 13, 4),
        (half_rows + 5, 3, 2),
    ]:
        for per_channel in (False, True):
            layer = random_layer(rng, n_in, n_out, per_channel)
            yield Case(1, rng.integers(-128, 128, (batch, n_in)), [layer])
    yield Case(1, rng.integers(-128, 128, (7, 1)), [random_layer(rng, 1, 300, True)], (3, 1, 1))


@pytest.fixture
def kernels(tmp_path, build_host_c):
    """Build the kernels with the driver for a geometry (``traced``: every op logged, cfu_trace.c); run cases."""

    def run(geometry, cases, traced=False):
        kit = tmp_path / "kit"
        write_c_kit(kit, geometry)
        kernel = kit / "fc_gemm.c"
        if traced:  # only the kernel's ops go through the log
            kernel = tmp_path / "fc_gemm_traced.o"
            flags = ["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-DCFU_SOFTWARE_DEFINED", f"-I{kit}"]
            subprocess.run(
                ["gcc", *flags, "-Dsoftware_cfu=traced_cfu", "-c", kit / "fc_gemm.c", "-o", kernel], check=True
            )
        sources = [kernel] + [kit / f for f in ("fc_kernel.c", "cfu_emu.c", "cfu_gemm_emu.c")] + [DRIVER]
        exe = build_host_c(kit, sources + ([TRACE] if traced else []), tmp_path / f"fc_gemm{'_traced' * traced}")
        stdin = "\n".join(c.text() for c in cases) + "\n"
        done = subprocess.run([str(exe)], input=stdin, capture_output=True, text=True, check=True)
        assert len(done.stdout.splitlines()) == len(cases)
        return done.stdout.splitlines(), done.stderr.split("end\n")[: len(cases)]

    return run


@pytest.mark.parametrize("geometry", [DEFAULT_GEOMETRY, SMALL], ids=["default", "small"])
def test_gemm_kernels_match_tflm(geometry, kernels):
    cases = list(_cases(geometry, np.random.default_rng(11)))
    out, _ = kernels(geometry, cases)
    for i, (case, line) in enumerate(zip(cases, out)):
        want = case.expected()
        got = np.array([int(v) for v in line.split()], dtype=np.int64).reshape(want.shape)
        shapes = [layer.p.filter.shape[::-1] for layer in case.layers]
        bad = np.argwhere(got != want)
        assert not len(bad), (
            f"case {i} (way {case.way}, batch {len(case.x)}, n_in x n_out {shapes}, misalign {case.misalign}): "
            f"{len(bad)} outputs differ, first at {tuple(bad[0])}: got {got[tuple(bad[0])]}, want {want[tuple(bad[0])]}"
        )


def _stored_words(regs, g, which):
    """The operand words a GEMM started with ``regs`` reads from A or B."""
    M, K, N = regs[GemmReg.M], regs[GemmReg.K], regs[GemmReg.N]
    (ar, ac), (br, bc) = stored_shapes(M, K, N, MODES[regs[GemmReg.MODE]])
    rows, cols = (ar, ac) if which == "a" else (br, bc)
    base = regs[GemmReg.A_BASE if which == "a" else GemmReg.B_BASE]
    stride = regs[GemmReg.A_STRIDE if which == "a" else GemmReg.B_STRIDE]
    return {(base + r * stride + q) % (2 * g.operand_depth) for r in range(rows) for q in range(-(-cols // 8))}


def _check_contract(g, trace):
    """Replay a kernel's ops on the timed golden model, one op a cycle (the most the engine can overlap;
    a WAIT, or a READ of the half being written, holds until the GEMM ends), and return the firmware
    contract's breaches (docs/cfu_gemm.md): a WRITE to an operand word the running GEMM reads, a START
    refused, a GEMM's results across both halves of C. Also the number of transfers made while the
    engine computed: the double buffering's overlap."""
    model, cycle, running, breaches, overlapped = GemmCfuModel(g), 0, None, [], 0
    half = lambda word: word >> (g.result_addr_bits - 1)  # noqa: E731
    for line in trace.splitlines():
        funct3, funct7, in0, in1 = (int(v) for v in line.split())
        if funct3 < GSET:
            cycle += 1  # a MAC4-family op (the long-row path)
            continue
        fid = function_id(funct3, funct7)
        busy = running is not None and model.gemm is not None and model._running(cycle)
        regs = model.regs
        overlapped += busy and funct3 == GOP and funct7 in TRANSFER_OPS
        if busy and funct3 == GOP and funct7 in (GemmOp.WRITE_A, GemmOp.WRITE_B):
            which = "a" if funct7 == GemmOp.WRITE_A else "b"
            addr = regs[GemmReg.A_WADDR if which == "a" else GemmReg.B_WADDR]
            if addr in running[which]:
                breaches.append(f"cycle {cycle}: WRITE_{which.upper()} of word {addr}, which the running GEMM reads")
        if funct3 == GOP and funct7 == GemmOp.START:
            footprint = {"a": _stored_words(regs, g, "a"), "b": _stored_words(regs, g, "b")}
            tiles, M = -(-regs[GemmReg.N] // g.cols), regs[GemmReg.M]
            words = [(regs[GemmReg.C_BASE] + i) % (2 * g.result_depth) for i in range(tiles * M)]
            if len({half(w) for w in words}) > 1:
                breaches.append(f"cycle {cycle}: a GEMM's {len(words)} result words span both halves of C")
            if model.step(fid, in0, in1, cycle) != 1:
                breaches.append(f"cycle {cycle}: START refused")
            running = footprint
            cycle += 1
            continue
        model.step(fid, in0, in1, cycle)
        if model.waits and model.waits[-1][0] == cycle:  # held until the engine's last busy cycle
            cycle = model.waits[-1][1]
        cycle += 1
    return breaches, overlapped


@pytest.mark.parametrize("geometry", [DEFAULT_GEOMETRY, SMALL], ids=["default", "small"])
def test_gemm_kernels_keep_the_firmware_contract(geometry, kernels):
    """The emulation computes at START, so it cannot see a kernel overwrite operands a running GEMM still
    reads: replay every case's ops with time and check the schedule instead."""
    cases = list(_cases(geometry, np.random.default_rng(11)))
    _, traces = kernels(geometry, cases, traced=True)
    assert len(traces) == len(cases)
    overlapped = {way: 0 for way in range(4)}
    for i, (case, trace) in enumerate(zip(cases, traces)):
        breaches, n = _check_contract(geometry, trace)
        assert not breaches, f"case {i} (way {case.way}, batch {len(case.x)}): {breaches[:3]}"
        overlapped[case.way] += n
    # Batches of several chunks and chained layers move data while the engine computes; the others cannot.
    assert overlapped[1] > 100 and (overlapped[3] > 100 or geometry is SMALL), overlapped
