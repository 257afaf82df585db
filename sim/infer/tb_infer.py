"""cocotb test running a whole .tflite model on one RTL engine: ``python -m sim infer``.

Environment (set by :func:`sim.infer.run.run_engine` through :func:`sim.runner.run_cocotb`):
``INFER_JOB``, a JSON file naming the model, the grouped int8 inputs (.npy),
the engine and where to write every tensor the run computed (.npz). The
accelerated layers run on the design; the other ops in NumPy, here, between
them. The per-op records go to the results as ``infer``; comparing with TFLM
is the caller's job.
"""

import json
import os
import time
from pathlib import Path

import cocotb
import numpy as np

from reference.tflite_model import load_model
from reference.tflite_model.run import run_model
from sim.infer.rtl import make_engine
from sim.results import design_params, errors_recorded, record


@cocotb.test(timeout_time=None)
async def infer_model(dut):
    """The model op by op, its accelerated layers on the design under test."""
    job = json.loads(Path(os.environ["INFER_JOB"]).read_text())
    graph = load_model(job["model"])
    x = np.load(job["inputs"])
    t0 = time.perf_counter()
    with errors_recorded():
        engine = make_engine(job["engine"], dut, design_params())
        await engine.start()
        values, records = await run_model(graph, x, engine.gemm)
    np.savez(job["values"], **{f"t{i}": v for i, v in values.items()})
    record(infer={"records": records, "wall_seconds": time.perf_counter() - t0})


@cocotb.test(timeout_time=None)
async def infer_soc(dut):
    """The ``soc`` engine: the SoC runs the firmware (every accelerated layer, :mod:`sim.infer.soc`) to
    its halt; then each layer's int8 outputs and ``(cycles, busy)`` are read through the debug port and
    saved to the job's ``values`` file (``out<i>``, ``stats``). The host finishes the model.

    The SoC is built with ``loader`` and no firmware: the job's ``image`` is written into its RAM through
    the debug write port first, so every model run of a RAM size shares one simulator build."""
    from cocotb.triggers import FallingEdge, RisingEdge

    from sim.common import edge, reset, start_clock
    from sim.results import record_mismatch
    from sim.soc.tb_soc import read_int8, read_ram

    job = json.loads(Path(os.environ["INFER_JOB"]).read_text())
    symbols, shapes = job["symbols"], job["shapes"]
    t0 = time.perf_counter()
    image = Path(job["image"]).read_bytes()
    image += bytes(-len(image) % 4)
    start_clock(dut.clk)
    # The image through the debug write port, the CPU held in reset (the RAM starts all zero).
    dut.rst.value = 1
    fall = FallingEdge(dut.clk)
    for address in range(0, len(image), 4):
        word = int.from_bytes(image[address : address + 4], "little")
        if word:
            await fall
            dut.dbg_addr.value, dut.dbg_wdata.value, dut.dbg_we.value = address >> 2, word, 1
    await fall
    dut.dbg_we.value = 0
    await reset(dut.clk, dut.rst, cycles=5, zero=(dut.dbg_addr,))
    await RisingEdge(dut.halted)
    await edge(dut.clk)
    exit_code = int(dut.exit_code.value)
    out = {}
    for i, (m, n) in enumerate(shapes):
        out[f"out{i}"] = (await read_int8(dut, symbols[f"out{i}"], m * n)).reshape(m, n)
    out["stats"] = np.array(await read_ram(dut, symbols["stats"], 2 * len(shapes)), dtype=np.int64).reshape(-1, 2)
    np.savez(job["values"], **out)
    record(infer={"exit_code": exit_code, "wall_seconds": time.perf_counter() - t0})
    if exit_code:
        record_mismatch("soc", "infer firmware", f"the firmware trapped or failed: exit code 0x{exit_code:08x}")
