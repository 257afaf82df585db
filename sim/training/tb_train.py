"""cocotb: train an MLP through ``TrainCore`` with the golden model beside it.

``$TRAIN_CONFIG`` (JSON, from :func:`sim.train.train`) names the run. Every
step's new weights and biases (``check: full``: every tensor the core keeps)
are read back and compared with :func:`reference.training.train_step`'s; the
first mismatch fails the test with the step, layer, tensor, index and both
values."""
import json
import os
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.simtime import get_sim_time

from hdl.training.program import CoreGeometry, plan_step, PHASE
from reference.training import sat, round_half_up_shift
from sim.results import record, errors_recorded, design_params
from sim.train import FixedRun
from sim.training.driver import TrainDriver


def _cycle():
    return int(get_sim_time("ns")) // 10


@cocotb.test()
async def train_run(dut):
    cfg = json.loads(os.environ["TRAIN_CONFIG"])
    geometry = CoreGeometry(**design_params())
    run = FixedRun(cfg)
    plan = plan_step(cfg["layers"], cfg["batch"], geometry, run.n, loss=cfg["loss"],
                     activation=cfg["activation"], momentum=cfg["momentum"])
    drv = TrainDriver(dut, plan)
    await drv.start()
    await drv.load_program()
    await drv.load_state(run.state)
    total_steps = cfg["epochs"] * (len(run.x_train) // cfg["batch"])
    if cfg.get("max_steps"):
        total_steps = min(total_steps, cfg["max_steps"])
    bar = None
    if cfg.get("progress"):
        from tqdm import tqdm
        bar = tqdm(total=total_steps, unit="step", desc=f"training on {os.environ.get('SIMULATOR', 'RTL')}",
                   leave=False)
    phases = {name: {"cycles": 0, "gemm": 0, "active": 0} for name in PHASE}
    step_cycles = []
    wall0, cycle0 = time.perf_counter(), _cycle()
    full = cfg.get("check") == "full"
    last = None
    with errors_recorded():
        for epoch, idx in run.batches():
            if run.steps >= total_steps:
                break
            if last is not None and epoch != last:
                run.end_epoch(last)
            last = epoch
            golden = run.step(idx)
            golden["w_new8"] = [sat(round_half_up_shift(w, run.n.master_extra), 8) for w in golden["w_new"]]
            counters = await drv.step(run.x8_train[idx], run.y_train[idx], cfg["lr_q"])
            await drv.check(run.steps - 1, golden, full=full)
            for name, p in PHASE.items():
                for key in ("cycles", "gemm", "active"):
                    phases[name][key] += counters[key][p]
            step_cycles.append(sum(counters["cycles"]))
            if cfg.get("dump") and run.steps == 1:
                run.dump(Path(cfg["dump"]) / "step0.npz", golden)
            if bar:
                bar.update()
                bar.set_postfix(cycles=step_cycles[-1])
        run.end_epoch(last)
    if bar:
        bar.close()
    wall = time.perf_counter() - wall0
    sim_cycles = _cycle() - cycle0
    R = geometry.rows
    steps = run.steps
    total = sum(p["cycles"] for p in phases.values())
    record(
        bit_exact=True, steps=steps, cycles=total,
        cycles_by_phase={name: p["cycles"] for name, p in phases.items()},
        gemm_cycles_by_phase={name: p["gemm"] for name, p in phases.items()},
        active_rows_by_phase={name: p["active"] for name, p in phases.items()},
        macs_by_phase={name: v * steps for name, v in plan.macs.items()},
        utilization=sum(plan.macs.values()) * steps / (R * R * total),
        utilization_by_phase={name: (plan.macs[name] * steps / (R * R * p["cycles"]) if p["cycles"] else None)
                              for name, p in phases.items()},
        cycles_per_step=step_cycles[0] if step_cycles else None,
        host_cycles=sim_cycles - total,
        sim_cycles=sim_cycles,
        sim_cycles_per_second=sim_cycles / wall,
        wall_seconds=wall,
        curves=run.curves,
        array=f"{R}x{R}",
    )
