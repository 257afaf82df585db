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
