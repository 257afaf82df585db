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
from cocotb.simtime import get_sim_time

from cocotb.triggers import FallingEdge

from hdl.training.core import LFSR_SEED
from hdl.training.program import CoreGeometry, plan_step, PHASE, KIND, TARGET
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
    progress = Path(os.environ["TRAIN_PROGRESS"]) if os.environ.get("TRAIN_PROGRESS") else None
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
            if progress:
                tmp = progress.with_suffix(".tmp")
                tmp.write_text(json.dumps({"steps": run.steps, "total": total_steps, "epoch": epoch + 1,
                                           "cycles": step_cycles[-1]}))
                tmp.replace(progress)
        run.end_epoch(last)
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


async def _idle_within(dut, cycles):
    """Wait for ``busy`` to be low; fail if it is not within ``cycles``."""
    for _ in range(cycles):
        await FallingEdge(dut.clk)
        if not int(dut.busy.value):
            return
    raise AssertionError(f"the core was still busy after {cycles} cycles")


async def _small_run(dut):
    cfg = json.loads(os.environ["TRAIN_CONFIG"])
    geometry = CoreGeometry(**design_params())
    run = FixedRun(cfg)
    plan = plan_step(cfg["layers"], cfg["batch"], geometry, run.n)
    drv = TrainDriver(dut, plan)
    await drv.start()
    return cfg, run, plan, drv


async def _checked_step(run, drv, cfg, idx, label):
    golden = run.step(idx)
    golden["w_new8"] = [sat(round_half_up_shift(w, run.n.master_extra), 8) for w in golden["w_new"]]
    await drv.step(run.x8_train[idx], run.y_train[idx], cfg["lr_q"])
    await drv.check(label, golden, full=True)


@cocotb.test()
async def bad_ops(dut):
    """Unknown and impossible ops stop the step with ``error``; a bad program
    never hangs the core, and a good one runs bit-exact after it. ``start``
    and host writes while busy are ignored."""
    cfg, run, plan, drv = await _small_run(dut)
    with errors_recorded():
        for bad in ({"kind": 7}, {"kind": KIND["loss"], "m": 4, "n": plan.geometry.classes + 1, "k": 3},
                    {"kind": KIND["loss"], "m": 0, "n": 4, "k": 1}, {"kind": KIND["loss"], "m": 4, "n": 4, "k": 2}):
            await drv.load_program([bad])
            await FallingEdge(dut.clk)
            dut.start.value = 1
            await FallingEdge(dut.clk)
            dut.start.value = 0
            await _idle_within(dut, 10)
            assert int(dut.error.value) == 1, f"op {bad} did not raise error"
        # Empty GEMMs and post-ops end at once, without error.
        await drv.load_program([{"kind": KIND["gemm"]}, {"kind": KIND["fwd"]}, {"kind": KIND["update"]},
                                {"kind": KIND["end"]}])
        await FallingEdge(dut.clk)
        dut.start.value = 1
        await FallingEdge(dut.clk)
        dut.start.value = 0
        await _idle_within(dut, 40)
        assert int(dut.error.value) == 0, "a program of empty ops raised error"

        await drv.load_program()
        await drv.load_state(run.state)
        batches = run.batches()
        _, idx = next(batches)
        await _checked_step(run, drv, cfg, idx, 0)
        # A second start and host writes while a step runs change nothing.
        _, idx = next(batches)
        golden = run.step(idx)
        golden["w_new8"] = [sat(round_half_up_shift(w, run.n.master_extra), 8) for w in golden["w_new"]]
        await drv.write_inputs(run.x8_train[idx])
        await drv.write_labels(run.y_train[idx])
        await FallingEdge(dut.clk)
        dut.lr.value, dut.start.value = cfg["lr_q"], 1
        await FallingEdge(dut.clk)
        for target in ("wmem", "bmem", "a", "b", "labels"):
            dut.start.value = 1
            dut.wr_en.value, dut.wr_target.value, dut.wr_addr.value = 1, TARGET[target], 0
            dut.wr_data.value = (1 << (32 * plan.geometry.rows)) - 1
            await FallingEdge(dut.clk)
        dut.start.value = dut.wr_en.value = 0
        await _idle_within(dut, 100_000)
        assert int(dut.error.value) == 0
        await drv.check(1, golden, full=True)
    record(bad_ops="unknown op, oversized and empty loss rows raised error; empty ops ended; "
                   "start and writes while busy were ignored")


@cocotb.test()
async def reset_mid_step(dut):
    """A reset in the middle of a step aborts it (sequencer and LFSR to their
    reset state); after the host reloads the state, the step runs bit-exact."""
    cfg, run, plan, drv = await _small_run(dut)
    with errors_recorded():
        await drv.load_program()
        await drv.load_state(run.state)
        _, idx = next(run.batches())
        await drv.write_inputs(run.x8_train[idx])
        await FallingEdge(dut.clk)
        dut.lr.value, dut.start.value = cfg["lr_q"], 1
        await FallingEdge(dut.clk)
        dut.start.value = 0
        for _ in range(int(os.environ.get("RESET_AFTER", "700"))):
            await FallingEdge(dut.clk)
        assert int(dut.busy.value), "the step ended before the reset"
        dut.rst.value = 1
        await FallingEdge(dut.clk)
        dut.rst.value = 0
        await FallingEdge(dut.clk)
        assert not int(dut.busy.value) and int(dut.lfsr.value) == LFSR_SEED, "reset left the core running"
        await drv.load_state(run.state)
        await _checked_step(run, drv, cfg, idx, 0)
    record(reset_mid_step="aborted, reloaded, then bit-exact")
