"""cocotb test of ``LossUnit`` against :func:`reference.training.loss_error`:
random logit rows (with ties, extremes and all-equal rows) of random lengths
up to the unit's ``classes``, random labels, both losses, random gaps on the
input and back-pressure on the output. Logits and errors travel as words of
``lanes`` int8."""
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from hdl.training.loss_unit import LOSS_CE, LOSS_MSE
from reference.gemm_layout import lanes_to_int, int_to_lanes
from reference.training import loss_error
from reference.training_numerics import Numerics
from sim.results import record, errors_recorded, design_params, env_int


def rows(rng, classes, count):
    out = []
    for k in range(count):
        n = classes if k % 2 == 0 else int(rng.integers(2, classes + 1))
        kind = k % 5
        if kind == 0:
            y = rng.integers(-128, 128, n)
        elif kind == 1:
            y = np.full(n, int(rng.integers(-128, 128)))                  # all equal
        elif kind == 2:
            y = rng.choice([-128, 127, 0], n)                              # extremes
        elif kind == 3:
            y = rng.integers(-4, 5, n)                                     # ties
        else:
            y = rng.integers(-40, 41, n)
        out.append((y, int(rng.integers(0, n)), LOSS_MSE if k % 3 == 2 else LOSS_CE))
    return out


@cocotb.test(timeout_time=100, timeout_unit="ms")
async def loss_rows(dut):
    params = design_params()
    classes, lanes = params.get("classes", 10), params.get("lanes", 8)
    n = Numerics()
    rng = np.random.default_rng(env_int("STIMULUS_SEED", 1))
    prng = random.Random(2)
    Clock(dut.clk, 10, unit="ns").start()
    for name in ("in_valid", "in_data", "in_last", "label", "loss", "count", "out_ready"):
        getattr(dut, name).value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    cases = rows(rng, classes, env_int("LOSS_ROWS", 200))
    cycles = 0
    with errors_recorded():
        for r, (y, label, loss) in enumerate(cases):
            count = len(y)
            words = -(-count // lanes)
            padded = np.pad(y, (0, words * lanes - count), constant_values=77)   # junk past count
            expected = loss_error(y[None, :], np.array([label]), "ce" if loss == LOSS_CE else "mse", n)[0]
            k = 0
            while k < words:
                await RisingEdge(dut.clk)
                cycles += 1
                present = prng.random() > 0.2
                dut.in_valid.value = int(present)
                dut.in_data.value = lanes_to_int(padded[k * lanes:(k + 1) * lanes], 8)
                dut.in_last.value = int(k == words - 1)
                dut.label.value, dut.loss.value, dut.count.value = label, loss, count
                await ReadOnly()
                if present and int(dut.in_ready.value):
                    k += 1
            await RisingEdge(dut.clk)
            dut.in_valid.value = 0
            got = []
            while len(got) < words:
                ready = prng.random() > 0.3
                dut.out_ready.value = int(ready)
                await ReadOnly()
                if ready and int(dut.out_valid.value):
                    got.append(int_to_lanes(int(dut.out_data.value), lanes, 8))
                    assert int(dut.out_last.value) == (len(got) == words), f"row {r}: out_last misplaced"
                await RisingEdge(dut.clk)
                cycles += 1
                assert cycles < 200 * (r + 1) * classes, "the loss unit stopped answering"
            dut.out_ready.value = 0
            got = [v for word in got for v in word]
            want = [int(v) for v in expected] + [0] * (words * lanes - count)
            assert got == want, (
                f"row {r} ({'ce' if loss == LOSS_CE else 'mse'}, label {label}) logits {[int(v) for v in y]}: "
                f"expected {want}, got {got}")
    record(loss_unit={"rows": len(cases), "classes": classes, "lanes": lanes, "cycles": cycles})
