"""cocotb: train an MLP through ``TrainCore`` with the golden model beside it.

``$TRAIN_CONFIG`` (JSON, from :func:`sim.training.session.run_config`, via
:func:`sim.train.train`) names the run. Every step's new weights and biases
(``check: full``: every tensor the core keeps, momenta included) are read
back and compared with :func:`reference.training.train_step`'s; the first
mismatch records ``bit_exact: false`` and the mismatch, then fails the test
with the step, layer, tensor, index and both values."""

import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge

from hdl.training.program import (
    OP_LAYOUT,
    Act,
    CoreGeometry,
    Dst,
    Kind,
    Loss,
    Mode,
    Phase,
    Target,
    least_delay,
    phase_counts,
    plan_step,
    schedule,
    step_cycles,
)
from reference.gemm import gemm, gemm_cycles
from reference.gemm_layout import pack_operand, result_words, unpack_operand, unpack_results
from reference.training import exp_table, loss_error, round_half_up_shift, sat
from reference.training_numerics import LFSR_SEED
from sim.common import Mismatch
from sim.common.coverage import Coverage
from sim.results import design_params, env_int, errors_recorded, record
from sim.training.driver import HarnessHost, TrainDriver
from sim.training.golden_worker import expected_signature
from sim.training.session import FixedRun, total_steps

#: Every op the training core runs, as :func:`op_bin` names it.
OP_BINS = [
    "GEMM forward NN",
    "GEMM backward NT",
    "GEMM backward TN",
    *(f"FWD {act.name}" for act in Act),
    *(f"LOSS {loss.name}" for loss in Loss),
    *(f"DX {act.name}" for act in (Act.RELU, Act.LEAKY)),  # the activations a hidden layer can have
    "UPDATE SGD",
    "UPDATE momentum",
    "END",
]
#: What the robustness tests drive: refused ops, empty ops, start and writes while busy, a reset mid-step.
ROBUSTNESS_BINS = [
    "error: unknown kind",
    "error: LOSS over classes",
    "error: LOSS of 0 rows",
    "error: LOSS words != classes",
    "empty ops end at once",
    "start while busy ignored",
    "host writes while busy ignored",
    "reset mid-step",
]

_coverage = []


def coverage():
    """The run's functional coverage (one per process): ``op``, each op of every step the core ran and
    the golden model confirmed, and ``robustness``, what :func:`bad_ops` and :func:`reset_mid_step` saw."""
    if not _coverage:
        cov = Coverage("train")
        cov.point("op", OP_BINS)
        cov.point("robustness", ROBUSTNESS_BINS)
        _coverage.append(cov)
    return _coverage[0]


def op_bin(op):
    kind = Kind(op["kind"])
    if kind == Kind.GEMM:
        return f"GEMM {Phase(op['phase']).name.lower()} {op['mode'].name}"
    if kind in (Kind.FWD, Kind.DX):
        return f"{kind.name} {Act(op.get('act', Act.NONE)).name}"
    if kind == Kind.LOSS:
        return f"LOSS {Loss(op['loss']).name}"
    if kind == Kind.UPDATE:
        return "UPDATE momentum" if op.get("momentum") else "UPDATE SGD"
    return kind.name


def sample_step(plan):
    """A step ran and matched the golden model: each of its ops ran."""
    for op in plan.ops:
        coverage().sample("op", op_bin(op))


async def _setup(dut, config="TRAIN_CONFIG", before_load=None):
    """The run ``$TRAIN_CONFIG`` (or another variable) names: its golden model, its plan, and the core
    loaded with both. ``before_load(cfg, plan, drv)`` runs before the first cycle."""
    cfg = json.loads(os.environ[config])
    # The core's own parameters (the harness has more: TrainHarness's samples and max_ranges).
    geometry = CoreGeometry(**{k: v for k, v in design_params().items() if k in CoreGeometry().params})
    run = FixedRun(cfg, lanes=geometry.rows)
    plan = plan_step(
        cfg["layers"],
        cfg["batch"],
        geometry,
        run.n,
        loss=cfg["loss"],
        activation=cfg["activation"],
        momentum=cfg["momentum"],
    )
    drv = TrainDriver(dut, plan)
    if before_load:
        before_load(cfg, plan, drv)
    await drv.start()
    await drv.load_program()
    await drv.load_state(run.state)
    return cfg, run, plan, drv


@cocotb.test()
async def train_run(dut):
    await _train(dut, "TRAIN_CONFIG")


@cocotb.test()
async def train_variant(dut):
    """``train_run`` on ``$TRAIN_VARIANT``'s configuration: the mutation bench's second run, with momentum,
    MSE and leaky ReLU (``sim/mutate.py``), whose paths the first run's configuration leaves idle. Its
    figures go to the results as ``variant``."""
    await _train(dut, "TRAIN_VARIANT")


async def _train(dut, config):
    full = json.loads(os.environ[config]).get("check") == "full"
    # On the harness (hdl/training/harness.py) the batch goes in and the masters' signature comes out in
    # hardware, and the golden model runs in a process of its own, started first so that it is ready by
    # the first step; --check full reads every tensor back from here, a word a cycle, on either top.
    fast = {}

    def start_worker(cfg, plan, drv):
        fast["host"] = host = HarnessHost(drv, _checked(plan))
        fast["steps"] = WorkerSteps(cfg, drv.R, host.spec())

    cfg, run, plan, drv = await _setup(dut, config, start_worker if hasattr(dut, "go") and not full else None)
    total = total_steps(cfg, len(run.x_train))
    progress = Path(os.environ["TRAIN_PROGRESS"]) if os.environ.get("TRAIN_PROGRESS") else None
    phases = {p.name.lower(): {"cycles": 0, "gemm": 0, "active": 0} for p in Phase}
    step_cycles = []
    host = fast.get("host")
    golden_steps = fast.get("steps") or LocalSteps(run)
    if host:
        await host.load(run.x8_train, run.y_train)
    # What is alive now lives for the whole run: out of the collector's way (a full collection walks it all).
    gc.freeze()
    wall0, cycle0 = time.perf_counter(), drv.cycle
    shown = 0.0  # when the progress file was last written
    checked = 0  # steps whose comparisons all passed
    with errors_recorded("train", f"train_run, check {cfg.get('check', 'weights')}"), golden_steps:
        for n, (epoch, idx, closes, golden, want) in enumerate(golden_steps):
            if host:
                counters = await host.step(idx, cfg["lr_q"])
                if host.signature() != want or closes:
                    # Read the masters back to say where they differ; at an epoch's end, to compare them.
                    await drv.check(n, golden or replay(cfg, drv.R, n))
                    if host.signature() != want:
                        raise Mismatch(
                            design="train",
                            step=n,
                            tensor="signature of the masters (reference.signature)",
                            expected=want,
                            got=host.signature(),
                            cycle=drv.cycle,
                        )
            else:
                counters = await drv.step(run.x8_train[idx], run.y_train[idx], cfg["lr_q"])
                await drv.check(n, golden, full=full)
            sample_step(plan)
            checked += 1
            for p in Phase:
                for key in ("cycles", "gemm", "active"):
                    phases[p.name.lower()][key] += counters[key][p.value]
            step_cycles.append(sum(counters["cycles"]))
            if progress and (time.perf_counter() - shown > 0.2 or n + 1 == total):
                shown = time.perf_counter()
                tmp = progress.with_suffix(".tmp")
                tmp.write_text(
                    json.dumps({"steps": n + 1, "total": total, "epoch": epoch + 1, "cycles": step_cycles[-1]})
                )
                tmp.replace(progress)
    wall = time.perf_counter() - wall0
    sim_cycles = drv.cycle - cycle0
    R = plan.geometry.rows
    steps = len(step_cycles)
    cycles = sum(p["cycles"] for p in phases.values())
    coverage().record()
    figures = dict(
        bit_exact=0 < checked == steps,
        steps=steps,
        cycles=cycles,
        cycles_by_phase={name: p["cycles"] for name, p in phases.items()},
        gemm_cycles_by_phase={name: p["gemm"] for name, p in phases.items()},
        active_rows_by_phase={name: p["active"] for name, p in phases.items()},
        macs_by_phase={name: v * steps for name, v in plan.macs.items()},
        utilization=sum(plan.macs.values()) * steps / (R * R * cycles),
        utilization_by_phase={
            name: (plan.macs[name] * steps / (R * R * p["cycles"]) if p["cycles"] else None)
            for name, p in phases.items()
        },
        step_cycles=sorted(set(step_cycles)),
        cycles_per_step=step_cycles[0],
        host_cycles=sim_cycles - cycles,
        sim_cycles=sim_cycles,
        sim_cycles_per_second=sim_cycles / wall,
        wall_seconds=wall,
        curves=golden_steps.curves,
        array=f"{R}x{R}",
    )
    if config == "TRAIN_CONFIG":
        record(**figures)
    else:
        record(variant=figures)


def _checked(plan):
    """The regions the harness signs after each step: every layer's master weights and biases."""
    return [f"{t}{l}_master" for l in range(len(plan.layers) - 1) for t in "wb"]


class LocalSteps:
    """``(epoch, idx, closes, golden, None)`` for each step of ``run``: its golden step, computed here, with
    the run's dump and epoch ends done. ``curves`` are the run's."""

    def __init__(self, run):
        self.run = run

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @property
    def curves(self):
        return self.run.curves

    def __iter__(self):
        run, cfg = self.run, self.run.cfg
        for epoch, idx, closes in run.batches():
            golden = run.step(idx)
            if cfg.get("dump") and run.steps == 1:
                run.dump(Path(cfg["dump"]) / "step0.npz", golden)
            if closes:
                run.end_epoch(epoch)
            yield epoch, idx, closes, golden, None


class WorkerSteps:
    """``(epoch, idx, closes, masters, signature)`` for each step, from :mod:`sim.training.golden_worker`
    running beside the simulator: the signature the step must leave, and at an epoch's end the golden
    masters (``{"w_new": [...], "b_new": [...]}``; else None). ``curves`` are the worker's, once done."""

    def __init__(self, cfg, R, regions):
        self.curves = None
        root = Path(__file__).resolve().parents[2]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
        # One BLAS thread: the golden model's matrices are small, and idle BLAS threads spin on the core
        # the simulator needs.
        env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        # cocotb names the Python it embeds; sys.executable may be the simulator.
        python = os.environ.get("PYGPI_PYTHON_BIN") or sys.executable
        spec = {"cfg": {k: v for k, v in cfg.items() if k != "progress"}, "lanes": R, "regions": regions}
        self.proc = subprocess.Popen(
            [python, "-m", "sim.training.golden_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=root,
            env=env,
        )
        self.proc.stdin.write(json.dumps(spec) + "\n")
        self.proc.stdin.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        return False

    def __iter__(self):
        for line in self.proc.stdout:
            rec = json.loads(line)
            if "error" in rec:
                raise RuntimeError(f"the golden model's process failed: {rec['error']}")
            if "curves" in rec:
                self.curves = rec["curves"]
                return
            masters = rec.get("masters")
            if masters:
                masters = {t: [np.array(m, dtype=np.int64) for m in ms] for t, ms in masters.items()}
            yield rec["epoch"], np.array(rec["idx"]), rec["closes"], masters, int(rec["signature"], 16)
        raise RuntimeError(f"the golden model's process ended early (exit status {self.proc.wait()})")


def replay(cfg, R, n):
    """The golden model's step ``n`` of the run, computed again from the start (to say where a
    signature that differs went wrong)."""
    run = FixedRun(cfg, lanes=R)
    for _, idx, _ in run.batches():
        golden = run.step(idx)
        if run.steps == n + 1:
            return golden
    raise ValueError(f"the run has no step {n}")


#: Steps ``clock_ceiling`` runs (``$CEILING_STEPS``): enough for a steady rate, a few seconds at most.
CEILING_STEPS = 40


@cocotb.test()
async def harness_catches(dut):
    """The harness's check (``hdl/training/harness.py``) on the default configuration: a wait shorter than
    the step gives up with a report (:meth:`HarnessHost.step`'s budget) while the step goes on; the step's
    signature equals the golden step's; then one bit of one master weight is flipped through the host port, and
    the next step's signature must differ from the golden one and the read-back masters must differ
    from the golden ones exactly there (layer 0, the flipped weight), as :func:`_train` reports it."""
    cfg, run, plan, drv = await _setup(dut)
    host = HarnessHost(drv, _checked(plan))
    await host.load(run.x8_train, run.y_train)
    reg, R = plan.regions["w0_master"], drv.R
    row, col = plan.layers[0] // 2, min(plan.layers[1], R) - 1  # the weight flipped (word row·stride, lane col)
    batches = run.batches()
    with errors_recorded("train", "harness_catches"):
        _, idx, _ = next(batches)
        golden = run.step(idx)
        # A bench that waits too little gives up with a report instead of hanging (here 50 cycles).
        budget, host.budget = host.budget, 50
        try:
            await host.step(idx, cfg["lr_q"])
        except Mismatch as e:
            assert "after 50 cycles" in e.report["tensor"], e.report
        else:
            raise AssertionError("a step of 50 cycles at most did not time out")
        host.budget = budget
        while int(dut.taken.value) != host.seq:  # the step goes on in hardware
            await dut.taken.value_change
        want = expected_signature(golden, host.spec(), R)
        assert host.signature() == want, f"signature {host.signature():x}, golden {want:x}"
        addr = reg.base + row * reg.stride
        word = (await drv.read_words("wmem", addr, 1))[0]
        word[col] ^= 1
        await drv.write_words("wmem", addr, [word])
        _, idx, _ = next(batches)
        golden = run.step(idx)
        await host.step(idx, cfg["lr_q"])
        assert host.signature() != expected_signature(golden, host.spec(), R), "a flipped bit kept the signature"
        try:
            await drv.check(1, golden)
        except Mismatch as e:
            got = (e.report["tensor"], e.report["layer"], e.report["index"])
            assert got == ("w_new", 0, (row, col)), f"the read-back found {got}, not w_new 0 {(row, col)}"
        else:
            raise AssertionError("the read-back found no difference after a flipped bit")
    record(
        harness_catches=f"a wait of 50 cycles timed out; signature equal, then a flipped bit in w0[{row}, {col}] "
        "found by signature and read-back"
    )


@cocotb.test()
async def clock_ceiling(dut):
    """The simulator's ceiling on this core: steps back to back on one loaded batch, with no host transfer
    and no check between them, only ``start`` and the wait for ``busy`` to fall (two triggers a step).
    Records ``ceiling_cycles_per_second``: ``train_run``'s speed is a fraction of it. The state these
    steps leave is not checked; ``train_run`` checks the same steps with their transfers."""
    cfg, run, plan, drv = await _setup(dut)
    idx = next(iter(run.batches()))[1]
    await drv.write_inputs(run.x8_train[idx])
    await drv.write_labels(run.y_train[idx])
    steps = env_int("CEILING_STEPS", CEILING_STEPS)
    wall0, cycle0 = time.perf_counter(), drv.cycle
    for _ in range(steps):
        await drv.start_step(cfg["lr_q"])
        await FallingEdge(dut.busy)
    wall = time.perf_counter() - wall0
    record(
        ceiling_steps=steps,
        ceiling_cycles=drv.cycle - cycle0,
        ceiling_cycles_per_second=(drv.cycle - cycle0) / wall,
    )


async def _idle_within(dut, cycles):
    """Wait for ``busy`` to be low; fail if it is not within ``cycles``."""
    for _ in range(cycles):
        await FallingEdge(dut.clk)
        if not int(dut.busy.value):
            return
    raise AssertionError(f"the core was still busy after {cycles} cycles")


async def _run_program(dut, drv, ops, cycles):
    """Load ``ops``, start them, and return ``error`` once the core is idle again."""
    await drv.load_program(ops)
    await FallingEdge(dut.clk)
    dut.start.value = 1
    await FallingEdge(dut.clk)
    dut.start.value = 0
    await _idle_within(dut, cycles)
    return int(dut.error.value)


@cocotb.test()
async def bad_ops(dut):
    """Unknown and impossible ops stop the step with ``error``; a bad program
    never hangs the core, and a good one runs bit-exact after it. ``start``
    and host writes while busy are ignored."""
    cfg, run, plan, drv = await _setup(dut)
    classes = plan.geometry.classes
    cov = coverage()
    with errors_recorded():
        unknown = 7 << OP_LAYOUT["kind"].offset  # no Kind has this encoding: packed by hand
        for bad, name in (
            (unknown, "unknown kind"),
            ({"kind": Kind.LOSS, "m": 4, "n": classes + 1, "k": 3}, "LOSS over classes"),
            ({"kind": Kind.LOSS, "m": 0, "n": 4, "k": 1}, "LOSS of 0 rows"),
            ({"kind": Kind.LOSS, "m": 4, "n": 4, "k": 2}, "LOSS words != classes"),
        ):
            assert await _run_program(dut, drv, [bad], 10) == 1, f"op {bad} did not raise error"
            cov.sample("robustness", f"error: {name}")
        # Empty GEMMs and post-ops end at once, without error; so does a post-op that follows no running
        # GEMM (here over the top of the result space, which the empty GEMM before it never wrote).
        top = 2 * plan.geometry.result_depth - 2
        follow = {"kind": Kind.FWD, "m": 2, "k": 1, "n": 1, "r_base": top, "follow": 1, "by_column": 1}
        empty = [{"kind": Kind.GEMM}, follow, {"kind": Kind.FWD}, {"kind": Kind.UPDATE}, {"kind": Kind.END}]
        assert await _run_program(dut, drv, empty, 40) == 0, "a program of empty ops raised error"
        cov.sample("robustness", "empty ops end at once")

        await drv.load_program()
        batches = run.batches()
        _, idx, _ = next(batches)
        await drv.step(run.x8_train[idx], run.y_train[idx], cfg["lr_q"])
        await drv.check(0, run.step(idx), full=True)
        sample_step(plan)
        # A second start and host writes while a step runs change nothing.
        _, idx, _ = next(batches)
        golden = run.step(idx)
        await drv.begin_step(run.x8_train[idx], run.y_train[idx], cfg["lr_q"])
        for target in ("wmem", "bmem", "mmem", "a", "b", "labels", "vmem"):
            dut.start.value = 1
            dut.wr_en.value, dut.wr_target.value, dut.wr_addr.value = 1, Target[target.upper()].value, 0
            dut.wr_data.value = (1 << (32 * plan.geometry.rows)) - 1
            await FallingEdge(dut.clk)
        dut.start.value = dut.wr_en.value = 0
        await _idle_within(dut, 100_000)
        assert int(dut.error.value) == 0
        await drv.check(1, golden, full=True)
        sample_step(plan)
        cov.sample("robustness", "start while busy ignored")
        cov.sample("robustness", "host writes while busy ignored")
    cov.record()
    record(
        bad_ops="unknown op, oversized and empty loss rows raised error; empty ops ended; "
        "start and writes while busy were ignored"
    )


@cocotb.test()
async def reset_mid_step(dut):
    """A reset in the middle of a step aborts it (sequencer and LFSR to their
    reset state); after the host reloads the state, the step runs bit-exact.

    The reset comes halfway through the last post-op that runs behind a GEMM (an
    UPDATE: the LFSR has moved), so the engine and the post unit are both busy."""
    cfg, run, plan, drv = await _setup(dut)
    behind = [op for op in schedule(plan) if "go" in op]
    reset_after = (behind[-1]["go"] + behind[-1]["done"]) // 2
    with errors_recorded():
        _, idx, _ = next(run.batches())
        await drv.begin_step(run.x8_train[idx], run.y_train[idx], cfg["lr_q"])
        for _ in range(reset_after):
            await FallingEdge(dut.clk)
        assert int(dut.busy.value), "the step ended before the reset"
        assert int(dut.lfsr.value) != LFSR_SEED, "the reset came before any update: it tests less than it should"
        dut.rst.value = 1
        await FallingEdge(dut.clk)
        dut.rst.value = 0
        await FallingEdge(dut.clk)
        assert not int(dut.busy.value) and int(dut.lfsr.value) == LFSR_SEED, "reset left the core running"
        await drv.load_state(run.state)
        await drv.step(run.x8_train[idx], run.y_train[idx], cfg["lr_q"])
        await drv.check(0, run.step(idx), full=True)
        sample_step(plan)
        coverage().sample("robustness", "reset mid-step")
    coverage().record()
    record(reset_mid_step="aborted, reloaded, then bit-exact")


def divider_rows(R, classes, numerics, seed=0, leading=False):
    """Cross-entropy logit rows (and labels) whose division lands on a quotient bit's threshold.

    The loss unit gets ``q_j = floor(N / 2S)``, ``N = e_j · 2^(e_frac+1) + S``, 8 bits by restoring division
    (``hdl/training/loss_unit.py``, :func:`reference.training.loss_error`). Before bit b the partial
    remainder is ``N mod (2S · 2^(b+1)) = 2S · (q mod 2^(b+1)) + rho`` (``rho = N mod 2S``); it is compared
    with ``2S · 2^b``. A row puts it just at or above that threshold (``q mod 2^(b+1) = 2^b``,
    ``rho < 2^(b+1)``) or just below it (``q mod 2^(b+1) = 2^b - 1``, ``rho >= 2S - 2^(b+1)``), where a
    threshold or remainder off by less than ``2^(b+1)`` flips the bit. One row for each lane (class j in lane
    j mod R), bit, side and parity of S that can be made: solve ``e_j · 2^(e_frac+1) = S · (2q -+ 1) + r`` for S over
    the exponent table's values and q, then make S - e_j from the other classes' exponents (one of them the
    maximum, ``E[0]``) greedily. With ``leading``, also a row for each lane, bit below 6, side and parity
    with q of at least 64, so that the lane's steps for bits 7 and 6 take before the threshold: a fault
    in a remainder those steps leave then reaches the bits below (the search finds the smallest q first,
    below 64, when any)."""
    E = exp_table(numerics)
    one = 2 << numerics.e_frac_ce  # N = e_j · one + S
    rng = np.random.default_rng(seed)
    order = np.argsort(-E, kind="stable")  # gaps by falling exponent
    rows, labels = [], []
    cells = [(b, 1) for b in range(8)] + ([(b, 64) for b in range(6)] if leading else [])
    for lane in range(min(R, classes)):
        for b, q_min in cells:
            w = 2 << b
            for side in ("at", "below"):
                for parity in (0, 1):
                    row = _threshold_row(E, one, order, classes, rng, lane, R, b, w, side, parity, q_min)
                    if row is not None:
                        rows.append(row)
                        labels.append(int(rng.integers(0, classes)))
    return np.array(rows, dtype=np.int64), np.array(labels, dtype=np.int64)


def _threshold_row(E, one, order, classes, rng, lane, R, b, w, side, parity, q_min=1):
    """One row for :func:`divider_rows`' cell (its quotient at least ``q_min``), or None when none is found."""
    qs = [q for q in range(q_min, 129) if q % (2 << b) == ((1 << b) if side == "at" else (1 << b) - 1)]
    rs = range(0, w) if side == "at" else range(-w, 0)
    for j in rng.permutation([c for c in range(classes) if c % R == lane]):
        for gap_j in rng.permutation(256):
            e_j = int(E[gap_j])
            for q in qs:
                k = 2 * q - 1 if side == "at" else 2 * q + 1
                for r in rs:
                    S, rem = divmod(one * e_j - r, k)
                    if rem or S % 2 != parity:
                        continue
                    gaps = _make_sum(E, order, classes, j, gap_j, S - e_j, rng)
                    if gaps is None:
                        continue
                    # Check the cell from the definition of q (loss_error's numerator).
                    e = E[gaps]
                    N, D = int(e[j]) * one + int(e.sum()), 2 * int(e.sum())
                    rem_b = N % (D << (b + 1)) - (D << b)
                    if (0 <= rem_b < w) if side == "at" else (-w <= rem_b < 0):
                        top = int(rng.integers(-128 + int(gaps.max()), 128))
                        return top - gaps
    return None


def _make_sum(E, order, classes, j, gap_j, rest, rng):
    """Gaps (to the row's maximum) for every class, class j's ``gap_j``, whose exponents sum to
    ``E[gap_j] + rest``; the maximum (gap 0) is class j's or another's. None if greedy cannot make it."""
    gaps = np.full(classes, -1)
    gaps[j] = gap_j
    others = [c for c in rng.permutation(classes) if c != j]
    if gap_j != 0:
        gaps[others.pop()] = 0
        rest -= int(E[0])
    if rest < 0:
        return None
    for c in others:
        g = next(int(g) for g in order if E[g] <= rest)
        gaps[c] = g
        rest -= int(E[g])
    return gaps if rest == 0 else None


def _check_matrix(got, want, tensor):
    if not np.array_equal(got, want):
        idx = tuple(int(i) for i in np.argwhere(got != want)[0])
        raise Mismatch(design="train", tensor=tensor, index=idx, expected=int(want[idx]), got=int(got[idx]))


def _check_counters(drv, phase, cycles, gemm_cycles_=0, active=0):
    """The per-phase counters after a directed program: its cycles (all phases), and the GEMM and
    active-row cycles of ``phase``."""
    c = drv.counters()
    got = (sum(c["cycles"]), c["gemm"][phase.value], c["active"][phase.value])
    want = (cycles, gemm_cycles_, active)
    if got != want:
        raise Mismatch(design="train", tensor="counters (cycles, gemm, active)", expected=want, got=got)


@cocotb.test()
async def loss_divider(dut):
    """LOSS ops over :func:`divider_rows`, cross-entropy, at the network's class count and at the most the
    loss unit takes (``CoreGeometry.classes``), then MSE rows at the most: every error against
    :func:`reference.training.loss_error`, and each op's cycles against :func:`hdl.training.program.schedule`."""
    cfg, run, plan, drv = await _setup(dut)
    R, most = plan.geometry.rows, plan.geometry.classes
    seed = int(os.environ.get("STIMULUS_SEED", "1"))
    rng = np.random.default_rng(seed)
    ran = []
    with errors_recorded("train", "loss_divider"):
        for classes, loss in ((plan.layers[-1], Loss.CE), (most, Loss.CE), (most, Loss.MSE)):
            W = -(-classes // R)
            if loss == Loss.CE:
                logits, labels = divider_rows(R, classes, run.n, seed=seed)
            else:
                logits = rng.choice([-128, -127, -1, 0, 1, 126, 127], (4 * R, classes))
                logits[::3] = rng.integers(-128, 128, logits[::3].shape)
                labels = rng.integers(0, classes, len(logits))
            m = len(logits)
            await drv.write_words("vmem", 0, np.pad(logits, ((0, 0), (0, W * R - classes))).reshape(-1, R))
            await drv.write_labels(labels)
            op = dict(kind=Kind.LOSS, phase=Phase.BACKWARD, m=m, k=W, n=classes, loss=loss, vr_base=0, vr_stride=W)
            op.update(dst=Dst.A, dst_base=0, dst_stride=W)
            ops = [op, {"kind": Kind.END, "phase": Phase.BACKWARD}]
            assert await _run_program(dut, drv, ops, 20 * m * W) == 0
            got = unpack_operand(await drv.read_words("a", 0, m * W), m, classes, R)
            name = loss.name.lower()
            _check_matrix(got, loss_error(logits, labels, name, run.n), f"dy (LOSS {loss.name} over {classes} classes)")
            _check_counters(drv, Phase.BACKWARD, schedule(SimpleNamespace(geometry=plan.geometry, ops=ops))[-1]["end"])
            ran.append({"rows": m, "classes": classes, "loss": name})
    record(loss_divider=ran)


def wide_gemms(R, space):
    """Directed GEMM ops ``(mode, phase, M, K, N, P)`` for an R-row core whose operand buffers hold ``space``
    words each:

    - N = 600 in each mode, so that the column indices use their high bits;
    - K = 400 (nt): the tiles' operand offsets k0 · stride (``Tile.a_k0s``, ``b_k0s``) pass 2^12;
    - in tn, where A's offsets are read, the same needs a B past the operand space. B's stride is
      S = space / 16 words, so its rows repeat every P = 16 rows (P, else None: B as drawn) and only the first
      P are stored; row k's address k · S wraps to (k mod 16) · S (the buffers decode the low bits). With
      K = 32 + R, the tile at k0 = 32 has k0 · S = 2 · space, past 2^12 for the default 1,024-word halves;
    - one GEMM in each phase with an odd count of active-row cycles, M · ceil(K/R) · ceil(N/R) = 5 · 1 · 3, so a
      counter bit that flips on every increment shows (the plan's GEMMs all have even counts).
    """
    return [
        (Mode.NN, Phase.FORWARD, 3, 5, 600, None),
        (Mode.NT, Phase.BACKWARD, 3, 5, 600, None),
        (Mode.TN, Phase.BACKWARD, 3, 5, 600, None),
        (Mode.NT, Phase.BACKWARD, 3, 400, 9, None),
        (Mode.TN, Phase.BACKWARD, 3, 32 + R, R * (space // 16), 16),
        *((Mode.NN, phase, 5, R, 2 * R + 1, None) for phase in Phase),
    ]


@cocotb.test()
async def wide_gemm(dut):
    """:func:`wide_gemms`, each a GEMM op alone (a plan's N is a layer's width): C against
    :func:`reference.gemm.gemm`, the GEMM cycles against the engine's model, the active rows M per tile."""
    cfg, run, plan, drv = await _setup(dut)
    R, space = plan.geometry.rows, 2 * plan.geometry.operand_depth
    rng = np.random.default_rng(int(os.environ.get("STIMULUS_SEED", "1")))
    jobs = wide_gemms(R, space)
    with errors_recorded("train", "wide_gemm"):
        for mode, phase, M, K, N, P in jobs:
            name = mode.name.lower()
            a = rng.integers(-128, 128, (K, M) if mode == Mode.TN else (M, K))
            b = rng.integers(-128, 128, (N, K) if mode == Mode.NT else (K, N))
            stored = b
            if P:  # B's rows repeat every P: only the first P are stored, and they fill the space
                stored = b[:P]
                b = stored[np.arange(K) % P]
            (a_words, a_stride), (b_words, b_stride) = pack_operand(a, R), pack_operand(stored, R)
            assert not P or len(b_words) == space
            await drv.write_words("a", 0, a_words)
            await drv.write_words("b", 0, b_words)
            op = dict(kind=Kind.GEMM, phase=phase, mode=mode, m=M, k=K, n=N, a_base=0, a_stride=a_stride)
            op.update(b_base=0, b_stride=b_stride, r_base=0)
            engine, ops = gemm_cycles(R, R, M, K, N), [op, {"kind": Kind.END, "phase": phase}]
            assert await _run_program(dut, drv, ops, 2 * engine + 100) == 0
            got = unpack_results(await drv.read_words("results", 0, result_words(M, N, R)), M, N, R)
            _check_matrix(got, gemm(a, b, name), f"C of a {name} GEMM {M}x{K}x{N}" + (", B wrapped" if P else ""))
            steps = schedule(SimpleNamespace(geometry=plan.geometry, ops=ops))[-1]["end"]  # 3 + engine + 1
            _check_counters(drv, phase, steps, engine, M * -(-K // R) * -(-N // R))
    record(wide_gemm=[f"{mode.name} {M}x{K}x{N} ({phase.name.lower()})" for mode, phase, M, K, N, _ in jobs])


#: The requantizing shifts of :func:`post_shifts`' FWD and DX ops, by operand range. A plan uses FWD shifts
#: x_frac + w_frac - a_frac >= 6 and DX shifts w_frac - dx_extra = 5; the op takes any shift in 0..31, and a
#: bit of the sum below the rounding position shows only at a shift that reaches it.
POST_SHIFTS = {8: tuple(range(8)), 128: (8, 10, 13, 16, 20, 31)}


async def _post_setup(dut):
    """The directed post-op tests' start: the core loaded (:func:`_setup`), ``(plan, driver, R, numerics,
    rng)`` with the rng seeded from ``$STIMULUS_SEED``."""
    cfg, run, plan, drv = await _setup(dut)
    rng = np.random.default_rng(int(os.environ.get("STIMULUS_SEED", "1")))
    return plan, drv, plan.geometry.rows, run.n, rng


async def _fwd_dx_operands(dut, drv, rng, R, nm, M, K, N, bound, bias_bound):
    """One NN GEMM ``C = A·B`` (operands in [-bound, bound)) into the results from word 0, and N bias masters
    (in [-bias_bound, bias_bound)) at bmem word 0: ``(C, the bias FWD adds, A's words, B's words)``."""
    W = -(-N // R)
    a, b = rng.integers(-bound, bound, (M, K)), rng.integers(-bound, bound, (K, N))
    b_master = rng.integers(-bias_bound, bias_bound, N)
    (a_words, a_stride), (b_words, b_stride) = pack_operand(a, R), pack_operand(b, R)
    await drv.write_words("a", 0, a_words)
    await drv.write_words("b", 0, b_words)
    await drv.write_words("bmem", 0, np.pad(b_master, (0, W * R - N)).reshape(W, R))
    op = dict(kind=Kind.GEMM, phase=Phase.FORWARD, mode=Mode.NN, m=M, k=K, n=N, a_base=0, a_stride=a_stride)
    op.update(b_base=0, b_stride=b_stride, r_base=0)
    end = {"kind": Kind.END, "phase": Phase.FORWARD}
    assert await _run_program(dut, drv, [op, end], 2 * gemm_cycles(R, R, M, K, N) + 100) == 0
    return gemm(a, b, "nn"), sat(round_half_up_shift(b_master, nm.master_extra), 32), len(a_words), len(b_words)


def _fwd_dx_ops(M, N, R, s):
    """An FWD (y at vmem word 0) and a DX (dx after it) over the M x N results at word 0, at shift ``s``."""
    W = -(-N // R)
    post = dict(phase=Phase.FORWARD, m=M, k=W, n=N, r_base=0, shift0=s, act=Act.NONE, dst=Dst.NONE)
    fwd = dict(post, kind=Kind.FWD, bb_base=0, vw_base=0, vw_stride=W)
    dx = dict(post, kind=Kind.DX, vr_base=0, vr_stride=W, vw_base=M * W, vw_stride=W)
    return fwd, dx


async def _check_fwd_dx(drv, R, acc, bias, s, how):
    """What :func:`_fwd_dx_ops`' FWD and DX kept: ``sat8(rhu(acc + bias))`` and ``sat8(rhu(acc))``."""
    (M, N), W = acc.shape, -(-acc.shape[1] // R)
    kept = (await drv.read_words("vmem", 0, 2 * M * W)).reshape(2, M, W * R)[:, :, :N]
    _check_matrix(kept[0], sat(round_half_up_shift(acc + bias, s), 8), f"y (FWD {how})")
    _check_matrix(kept[1], sat(round_half_up_shift(acc, s), 8), f"dx (DX {how})")


@cocotb.test()
async def post_shifts(dut):
    """FWD and DX ops at every shift of :data:`POST_SHIFTS` over one GEMM's results: FWD's
    ``sat8(rhu(acc + bias))`` (the bias the master's top, rounded) and DX's ``sat8(rhu(acc))``, as
    :func:`reference.training.forward` defines them, against what the core keeps in vmem."""
    plan, drv, R, nm, rng = await _post_setup(dut)
    M, K, N = 5, R + 1, 2 * R + 3
    end = {"kind": Kind.END, "phase": Phase.FORWARD}
    tried = []
    with errors_recorded("train", "post_shifts"):
        for bound, shifts in POST_SHIFTS.items():
            # Operands in [-bound, bound): at bound 8 the sums stay near sat8's range at shift 0.
            bias_bound = bound**2 << nm.master_extra
            acc, bias, _, _ = await _fwd_dx_operands(dut, drv, rng, R, nm, M, K, N, bound, bias_bound)
            for s in shifts:
                fwd, dx = _fwd_dx_ops(M, N, R, s)
                assert await _run_program(dut, drv, [fwd, dx, end], 4 * M * -(-N // R) + 40) == 0
                await _check_fwd_dx(drv, R, acc, bias, s, f"at shift {s}")
                tried.append(s)
    record(post_shifts=tried)


@cocotb.test()
async def post_behind(dut):
    """Post-ops running ``behind`` a GEMM, both ways round, after one GEMM ``C1 = A1·B1``
    (:func:`_fwd_dx_operands`):

    - an FWD over C1 behind a GEMM that ends first, so the DX after it waits in DECODE;
    - a DX over C1 behind a GEMM that ends last, so the END after it does not wait.

    The kept y and dx against ``sat8(rhu(C1 + bias))`` and ``sat8(rhu(C1))``, the second GEMM's C
    against :func:`reference.gemm.gemm`, and each program's cycles against
    :func:`hdl.training.program.schedule`."""
    plan, drv, R, nm, rng = await _post_setup(dut)
    M, K, N, s = 4 * R + 1, R + 1, 2 * R + 3, 4
    W = -(-N // R)
    end = {"kind": Kind.END, "phase": Phase.FORWARD}
    timing = lambda ops: schedule(SimpleNamespace(geometry=plan.geometry, ops=ops))[-1]["end"]
    with errors_recorded("train", "post_behind"):
        acc, bias, a_base, b_base = await _fwd_dx_operands(dut, drv, rng, R, nm, M, K, N, 16, 1 << 12)
        fwd, dx = _fwd_dx_ops(M, N, R, s)
        r_base = M * W  # the second GEMM's operands after the first's, its results after C1's
        for name, (m2, k2, n2), behind_kind in (
            ("ends first", (1, 1, 1), Kind.FWD),
            ("ends last", (2 * R, 2 * R, 3 * R), Kind.DX),
        ):
            a2, b2 = rng.integers(-128, 128, (m2, k2)), rng.integers(-128, 128, (k2, n2))
            (a2_words, a2_stride), (b2_words, b2_stride) = pack_operand(a2, R), pack_operand(b2, R)
            await drv.write_words("a", a_base, a2_words)
            await drv.write_words("b", b_base, b2_words)
            gemm2 = dict(kind=Kind.GEMM, phase=Phase.FORWARD, mode=Mode.NN, m=m2, k=k2, n=n2)
            gemm2.update(a_base=a_base, a_stride=a2_stride, b_base=b_base, b_stride=b2_stride, r_base=r_base)
            if behind_kind == Kind.FWD:
                ops = [dict(fwd, behind=1), gemm2, dx, end]
            else:
                ops = [fwd, dict(dx, behind=1), gemm2, end]
            engine = gemm_cycles(R, R, m2, k2, n2)
            assert await _run_program(dut, drv, ops, 2 * (engine + M * W) + 100) == 0
            await _check_fwd_dx(drv, R, acc, bias, s, f"with the GEMM beside it that {name}")
            got = unpack_results(await drv.read_words("results", r_base, result_words(m2, n2, R)), m2, n2, R)
            _check_matrix(got, gemm(a2, b2, "nn"), f"C of the GEMM {m2}x{k2}x{n2} a post-op ran behind ({name})")
            active = m2 * -(-k2 // R) * -(-n2 // R)
            _check_counters(drv, Phase.FORWARD, timing(ops), engine, active)
            await drv.write_words("vmem", 0, np.zeros((2 * M * W, R), dtype=np.int64))
    record(post_behind=["FWD behind a GEMM that ends first", "DX behind a GEMM that ends last"])


@cocotb.test()
async def gemm_behind(dut):
    """A GEMM ``behind`` (the sequencer goes on while it runs), ``C = A·B`` of 3 K tiles and 3 column
    blocks, so that its result words hold partial sums before they are final:

    - with an FWD over C that has ``follow`` set, by column: each word read once the GEMM has written
      it final, while the GEMM runs;
    - with a DX over C that does not, which waits in DECODE for the engine to finish.

    The post-op is in the update phase: the GEMM's cycles and rows must still count in the forward
    phase's counters. The kept y and dx against ``sat8(rhu(C + bias))`` and ``sat8(rhu(C))``, and each
    program's cycles against :func:`hdl.training.program.schedule`."""
    plan, drv, R, nm, rng = await _post_setup(dut)
    M, K, N, s = 2 * R + 1, 2 * R + 1, 2 * R + 3, 5
    W = -(-N // R)
    end = {"kind": Kind.END, "phase": Phase.UPDATE}
    timing = lambda ops: schedule(SimpleNamespace(geometry=plan.geometry, ops=ops))[-1]["end"]
    a, b = rng.integers(-128, 128, (M, K)), rng.integers(-128, 128, (K, N))
    b_master = rng.integers(-(1 << 18), 1 << 18, N)
    (a_words, a_stride), (b_words, b_stride) = pack_operand(a, R), pack_operand(b, R)
    acc, bias = gemm(a, b, "nn"), sat(round_half_up_shift(b_master, nm.master_extra), 32)
    gemm_op = dict(kind=Kind.GEMM, phase=Phase.FORWARD, mode=Mode.NN, m=M, k=K, n=N, behind=1)
    gemm_op.update(a_base=0, a_stride=a_stride, b_base=0, b_stride=b_stride, r_base=0)
    engine, active = _gemm_model(gemm_op, R)
    fwd, dx = _fwd_dx_ops(M, N, R, s)
    fwd, dx = dict(fwd, phase=Phase.UPDATE), dict(dx, phase=Phase.UPDATE)
    done = []
    with errors_recorded("train", "gemm_behind"):
        await drv.write_words("a", 0, a_words)
        await drv.write_words("b", 0, b_words)
        await drv.write_words("bmem", 0, np.pad(b_master, (0, W * R - N)).reshape(W, R))
        for name, ops in (
            ("an FWD that follows it", [gemm_op, dict(fwd, follow=1, by_column=1), dx, end]),
            ("a DX that waits for it", [gemm_op, dx, fwd, end]),
        ):
            # The last program's results stay in the buffer: clear them, so that the first K tile's
            # partial sums are what a read too early would see.
            await drv.write_words("vmem", 0, np.zeros((2 * M * W, R), dtype=np.int64))
            assert await _run_program(dut, drv, ops, 3 * (engine + M * W) + 100) == 0
            await _check_fwd_dx(drv, R, acc, bias, s, f"after a GEMM behind, with {name}")
            _check_counters(drv, Phase.FORWARD, timing(ops), engine, active)
            done.append(f"GEMM behind, {name}")
    record(gemm_behind=done)


@cocotb.test()
async def loss_behind(dut):
    """The plan's LOSS ``behind``, with the last layer's dW GEMM after it at the plan's delay
    (:func:`hdl.training.program.loss_gemm_delay`): the GEMM reads each row of dY as weights after the
    loss unit has written it. dY starts as decoys, so a row read too early would show. dY and dW
    against :func:`reference.training.loss_error` and ``Xᵀ·dY``, and the cycles against the schedule;
    then the same one cycle earlier, which must read a decoy: the delay is the least that works."""
    plan, drv, R, nm, rng = await _post_setup(dut)
    i = next(i for i, op in enumerate(plan.ops) if op["kind"] == Kind.LOSS)
    loss_op, gemm_op = plan.ops[i], plan.ops[i + 1]
    L = len(plan.layers) - 1
    end = {"kind": Kind.END, "phase": Phase.BACKWARD}
    x_reg = plan.regions[f"x{L - 1}"]
    batch, classes = plan.batch, plan.layers[-1]
    x = rng.integers(-128, 128, (x_reg.rows, x_reg.cols))
    logits, labels = rng.integers(-128, 128, (batch, classes)), rng.integers(0, classes, batch)
    dy = loss_error(logits, labels, Loss(loss_op["loss"]).name.lower(), nm)
    decoy = np.where(dy == 5, 6, 5)
    timing = lambda ops: schedule(SimpleNamespace(geometry=plan.geometry, ops=ops))[-1]["end"]
    tried = []
    with errors_recorded("train", "loss_behind"):
        assert loss_op.get("behind") and gemm_op["delay"] > 0, "the plan has no GEMM behind its LOSS"
        await drv.write_matrix(f"x{L - 1}", x)
        await drv.write_matrix(f"y{L - 1}", logits)
        await drv.write_labels(labels)
        dy_reg, (decoy_words, _) = plan.regions[f"dy{L - 1}"], pack_operand(decoy, R)
        for delay in (gemm_op["delay"], gemm_op["delay"] - 1):
            for space in ("a", "b"):  # the LOSS writes dY to both; the GEMM reads B's
                await drv.write_words(space, dy_reg.base, decoy_words)
            ops = [loss_op, dict(gemm_op, delay=delay), end]
            assert await _run_program(dut, drv, ops, 4 * timing(ops) + 100) == 0
            _check_matrix(await drv.read_matrix(f"dy{L - 1}"), dy, f"dY (LOSS behind, delay {delay})")
            dw = await drv.read_matrix(f"dw{L - 1}")
            _check_delayed(dw, gemm(x, dy, "tn"), "dW", "the GEMM behind the LOSS", "row of dY", delay, gemm_op)
            if delay == gemm_op["delay"]:
                _check_counters(drv, Phase.BACKWARD, timing(ops), *_gemm_model(gemm_op, R))
            tried.append(f"delay {delay}")
    record(loss_behind=tried)


@cocotb.test()
async def forward_chain(dut):
    """The plan's first layer forward, as the plan runs it: layer 0's GEMM ``behind``, its FWD following
    it and running ``behind`` (ReLU, the ones column, x1 written into A a word column at a time as the
    GEMM finishes acc0), and layer 1's GEMM chained behind layer 0's in the engine, at the plan's
    ``delay`` (:func:`hdl.training.program.least_delay`). x1 starts as decoys, so a word read too
    early would show. acc0's FWD (y0, x1) and acc1 against :func:`reference.training.forward`'s terms and
    ``x1·W1``, the cycles and counters against the schedule; then the same one cycle earlier, which must
    read a decoy: the delay is the least that works (with no delay, on rows 4 say, that run only)."""
    plan, drv, R, nm, rng = await _post_setup(dut)
    gemm0, fwd0, gemm1 = plan.ops[:3]
    end = {"kind": Kind.END, "phase": Phase.FORWARD}
    ins, hidden, outs = plan.layers[:3]
    x0 = rng.integers(-128, 128, (plan.batch, ins))
    w0, w1 = rng.integers(-128, 128, (ins, hidden)), rng.integers(-128, 128, (hidden, outs))
    b_master = rng.integers(-(1 << 20), 1 << 20, hidden)
    bias = sat(round_half_up_shift(b_master, nm.master_extra), 32)
    y0 = sat(round_half_up_shift(gemm(x0, w0) + bias, fwd0["shift0"]), 8)
    x1 = np.concatenate([np.maximum(y0, 0), np.ones((plan.batch, 1), dtype=y0.dtype)], axis=1)
    x1_words, _ = pack_operand(np.where(x1 == 5, 6, 5), R)  # the decoys
    model = SimpleNamespace(geometry=plan.geometry, macs=dict.fromkeys(plan.macs, 0))
    tried = []
    with errors_recorded("train", "forward_chain"):
        assert gemm0.get("behind") and fwd0.get("follow") and fwd0.get("behind"), "the plan chains no forward GEMM"
        await drv.write_matrix("x0", np.concatenate([x0, np.ones((plan.batch, 1), dtype=x0.dtype)], axis=1))
        await drv.write_matrix("w0", w0)
        await drv.write_matrix("w1", w1)
        await drv.write_matrix("b0_master", b_master[None, :])
        for delay in range(gemm1["delay"], max(gemm1["delay"] - 2, -1), -1):
            await drv.write_words("a", plan.regions["x1"].base, x1_words)
            ops = [gemm0, fwd0, dict(gemm1, delay=delay), end]
            model.ops = ops
            cycles = schedule(model)[-1]["end"] if delay == gemm1["delay"] else None
            assert await _run_program(dut, drv, ops, 4 * step_cycles(plan) + 100) == 0
            _check_matrix(await drv.read_matrix("y0", cols=hidden), y0, f"y0 (FWD following its GEMM, delay {delay})")
            _check_matrix(await drv.read_matrix("x1"), x1, f"x1 (FWD following its GEMM, delay {delay})")
            acc1 = await drv.read_matrix("acc1")
            _check_delayed(
                acc1, gemm(x1[:, :hidden], w1[:hidden]), "acc1", "the GEMM chained", "word of x1", delay, gemm1
            )
            if cycles is not None:
                _check_counters(drv, Phase.FORWARD, cycles, *(c["forward"] for c in phase_counts(model)))
            tried.append(f"delay {delay}")
    record(forward_chain=tried)


@cocotb.test()
async def backward_chain(dut):
    """The plan's backward pass through the hidden layer, as the plan runs it: layer 1's dX GEMM
    ``behind``, its DX following it and running ``behind`` (ReLU's mask from y0, dY0 written into A and
    B a word column at a time as the GEMM finishes dX), and layer 0's dW GEMM chained behind the dX GEMM
    at the plan's ``delay``: it reads dY0 as its weights as the DX writes it. dY0 starts as decoys in
    both buffers. dX1, dY0 and dW0 against :func:`reference.training.train_step`'s definitions
    (``dx = sat8(rhu(dY·Wᵀ))``, 0 where ``y <= 0``, ``dW = Xᵀ·dY``), the cycles and counters against the
    schedule; then the same one cycle earlier, which must read a decoy (with no delay, that run only)."""
    plan, drv, R, nm, rng = await _post_setup(dut)
    i = next(i for i, op in enumerate(plan.ops) if op["kind"] == Kind.DX)
    dx_gemm, dx_op, dw_gemm = plan.ops[i - 1 : i + 2]
    end = {"kind": Kind.END, "phase": Phase.BACKWARD}
    ins, hidden, outs = plan.layers[:3]
    dy1, w1 = rng.integers(-128, 128, (plan.batch, outs)), rng.integers(-128, 128, (hidden, outs))
    y0 = rng.integers(-128, 128, (plan.batch, hidden))
    x0 = np.concatenate([rng.integers(-128, 128, (plan.batch, ins)), np.ones((plan.batch, 1), dtype=np.int64)], axis=1)
    dx = sat(round_half_up_shift(dy1 @ w1.T, dx_op["shift0"]), 8)
    dy0 = np.where(y0 > 0, dx, 0)
    dy0_words, _ = pack_operand(np.where(dy0 == 5, 6, 5), R)  # the decoys
    model = SimpleNamespace(geometry=plan.geometry, macs=dict.fromkeys(plan.macs, 0))
    tried = []
    with errors_recorded("train", "backward_chain"):
        assert dx_gemm["mode"] == Mode.NT and dx_op.get("follow") and dx_op.get("behind"), "no chain in the plan"
        assert dw_gemm["kind"] == Kind.GEMM and dw_gemm["mode"] == Mode.TN, "no dW GEMM after the DX"
        dy1_words, _ = pack_operand(dy1, R)
        for space in ("a", "b"):  # the LOSS writes dY1 to both; the dX GEMM reads A's
            await drv.write_words(space, plan.regions["dy1"].base, dy1_words)
        await drv.write_matrix("w1", w1)
        await drv.write_matrix("y0", np.pad(y0, ((0, 0), (0, 1))))
        await drv.write_matrix("x0", x0)
        for delay in range(dw_gemm["delay"], max(dw_gemm["delay"] - 2, -1), -1):
            for space in ("a", "b"):
                await drv.write_words(space, plan.regions["dy0"].base, dy0_words)
            model.ops = ops = [dx_gemm, dx_op, dict(dw_gemm, delay=delay), end]
            cycles = schedule(model)[-1]["end"] if delay == dw_gemm["delay"] else None
            assert await _run_program(dut, drv, ops, 4 * step_cycles(plan) + 100) == 0
            _check_matrix(await drv.read_matrix("dx1"), dx, f"dX1 (DX following its GEMM, delay {delay})")
            _check_matrix(await drv.read_matrix("dy0"), dy0, f"dY0 (DX following its GEMM, delay {delay})")
            dw0 = await drv.read_matrix("dw0")
            _check_delayed(dw0, gemm(x0, dy0, "tn"), "dW0", "the GEMM chained", "word of dY0", delay, dw_gemm)
            if cycles is not None:
                _check_counters(drv, Phase.BACKWARD, cycles, *(c["backward"] for c in phase_counts(model)))
            tried.append(f"delay {delay}")
    record(backward_chain=tried)


def _check_delayed(got, want, tensor, gemm_what, decoy, delay, op):
    """A GEMM's result ``got`` run at ``delay``: ``want`` at the plan's (``op``'s), and not ``want`` one
    cycle short of it, where it must have read a decoy ``decoy``: the plan's delay is the least that works."""
    if delay == op["delay"]:
        _check_matrix(got, want, f"{tensor} ({gemm_what}, delay {delay})")
    elif np.array_equal(got, want):
        raise Mismatch(
            design="train",
            tensor=f"{tensor} with the delay one short ({delay}): it should have read a decoy {decoy}",
            expected=f"a decoy in {tensor}",
            got=f"{tensor} exact",
        )


def _gemm_model(op, R):
    """A GEMM op's engine cycles and active rows (:func:`hdl.training.program.phase_counts`' terms)."""
    M, K, N = op["m"], op["k"], op["n"]
    return gemm_cycles(R, R, M, K, N), M * -(-K // R) * -(-N // R)


@cocotb.test()
async def post_readers(dut):
    """Post-ops ``behind`` the op that reads what they write, after one GEMM ``C1 = A1·B1``
    (:func:`_fwd_dx_operands`), each reader's words pre-filled with other values:

    - a FWD by column (ReLU, ones column) into A, behind a GEMM that reads it as its A: that GEMM's C
      against :func:`reference.gemm.gemm` of the activations, as each hidden layer's FWD of a plan;
    - a FWD with no operand words behind a LOSS over the y it keeps: dY against
      :func:`reference.training.loss_error`, as the last layer's FWD of a plan, the LOSS at the least
      delay with which it reads each logit after the FWD writes it (:func:`hdl.training.program.least_delay`),
      then one cycle short of it, which must read a stale logit;
    - the same FWD writing A: the LOSS waits in DECODE until the FWD is done.

    Each program's cycles against :func:`hdl.training.program.schedule`."""
    plan, drv, R, nm, rng = await _post_setup(dut)
    M, K, N, s = 4 * R + 1, R + 1, 2 * R + 3, 4
    end = {"kind": Kind.END, "phase": Phase.FORWARD}
    timing = lambda ops: schedule(SimpleNamespace(geometry=plan.geometry, ops=ops))[-1]["end"]
    ran = []
    with errors_recorded("train", "post_readers"):
        acc, bias, a_base, b_base = await _fwd_dx_operands(dut, drv, rng, R, nm, M, K, N, 16, 1 << 12)
        r_base = M * -(-N // R)  # results after C1's

        async def stale(space, base, words):  # what a reader would see if it read too early
            await drv.write_words(space, base, rng.integers(-128, 128, (words, R)))

        # A FWD by column, ReLU, with the ones column: the GEMM reads all N + 1 columns as its A.
        k2, n2 = N + 1, R + 1
        W2 = -(-k2 // R)
        b2 = rng.integers(-128, 128, (k2, n2))
        b2_words, b2_stride = pack_operand(b2, R)
        await drv.write_words("b", b_base, b2_words)
        await stale("a", a_base, M * W2)
        fwd, _ = _fwd_dx_ops(M, N, R, s)
        fwd = dict(fwd, act=Act.RELU, ones=1, dst=Dst.A, dst_base=a_base, dst_stride=W2, vw_stride=W2)
        fwd.update(k=W2, behind=1, by_column=1)
        gemm2 = dict(kind=Kind.GEMM, phase=Phase.FORWARD, mode=Mode.NN, m=M, k=k2, n=n2)
        gemm2.update(a_base=a_base, a_stride=W2, b_base=b_base, b_stride=b2_stride, r_base=r_base)
        least_delay(SimpleNamespace(geometry=plan.geometry, ops=[fwd, gemm2]))  # it reads each word after its write
        ops = [fwd, gemm2, end]
        engine = gemm_cycles(R, R, M, k2, n2)
        assert await _run_program(dut, drv, ops, 2 * (engine + M * W2) + 100) == 0
        y = sat(round_half_up_shift(acc + bias, s), 8)
        x2 = np.concatenate([np.maximum(y, 0), np.ones((M, 1), dtype=y.dtype)], axis=1)
        kept = (await drv.read_words("vmem", 0, M * W2)).reshape(M, W2 * R)[:, :N]
        _check_matrix(kept, y, "y (FWD by column behind the GEMM that reads it)")
        got = unpack_results(await drv.read_words("results", r_base, result_words(M, n2, R)), M, n2, R)
        _check_matrix(got, gemm(x2, b2, "nn"), f"C of the GEMM {M}x{k2}x{n2} that reads the FWD behind it")
        _check_counters(drv, Phase.FORWARD, timing(ops), engine, M * W2 * -(-n2 // R))
        ran.append("FWD by column behind a GEMM that reads it")

        # The last layer's FWD (no activation, no ones column) and a LOSS over its y.
        classes = min(plan.geometry.classes, N)
        W = -(-classes // R)
        labels = rng.integers(0, classes, M)
        await drv.write_labels(labels)
        y = sat(round_half_up_shift(acc[:, :classes] + bias[:classes], s), 8)
        fwd, _ = _fwd_dx_ops(M, classes, R, s)
        loss = dict(kind=Kind.LOSS, phase=Phase.BACKWARD, m=M, k=W, n=classes, loss=Loss.CE, vr_base=0)
        loss.update(vr_stride=W, dst=Dst.B, dst_base=b_base, dst_stride=W)
        dy = loss_error(y, labels, "ce", nm)
        for dst, how in ((Dst.NONE, "does not wait"), (Dst.A, "waits")):
            fwd_op = dict(fwd, behind=1, dst=dst, dst_base=a_base, dst_stride=W)
            # Beside the FWD, the LOSS waits the least delay with which it reads each logit after its write
            # (program.least_delay); one cycle short, it must read a stale one.
            least = least_delay(SimpleNamespace(geometry=plan.geometry, ops=[fwd_op, dict(loss)]))
            assert (least > 0) == (dst == Dst.NONE), f"a LOSS {how} with a delay of {least}"
            for delay in (least, least - 1) if least else (0,):
                await stale("vmem", 0, M * W)
                await stale("b", b_base, M * W)
                ops = [fwd_op, dict(loss, delay=delay), end]
                assert await _run_program(dut, drv, ops, 2 * M * (4 * W + 1) + 100) == 0
                got = unpack_operand(await drv.read_words("b", b_base, M * W), M, classes, R)
                if delay < least:
                    if np.array_equal(got, dy):
                        raise Mismatch(
                            design="train",
                            tensor=f"dy with the LOSS's delay one short ({delay}): it should have read a stale logit",
                            expected="dy from a stale logit",
                            got="dy exact",
                        )
                    ran.append(f"LOSS beside a FWD, delay {delay}: a stale logit")
                    continue
                _check_matrix(got, dy, f"dy (LOSS behind a FWD: it {how}, delay {delay})")
                _check_counters(drv, Phase.FORWARD, timing(ops))
                ran.append(f"LOSS behind a FWD with dst {dst.name}: it {how} (delay {delay})")
    record(post_readers=ran)


@cocotb.test()
async def post_padding(dut):
    """Post-ops over a matrix of N = 2R + 1 columns, whose last word has every lane but lane 0 past N,
    with every word they read or write pre-filled with random values, padding lanes included. In the
    lanes past N (PostLane's rule; inside the matrix, post_shifts and the training runs check the values):

    - FWD (ReLU, the ones column): y is 0; the written word is 1 in column N and 0 after;
    - DX: dx and the written dY are 0;
    - UPDATE with momentum: the master weights, the bias masters and the momenta keep what they held, and
      the int8 weights written are 0."""
    plan, drv, R, nm, rng = await _post_setup(dut)
    M, K, N, s = 2 * R + 1, R + 1, 2 * R + 1, 4
    W = -(-N // R)
    end = {"kind": Kind.END, "phase": Phase.FORWARD}
    with errors_recorded("train", "post_padding"):
        _, _, a_base, b_base = await _fwd_dx_operands(dut, drv, rng, R, nm, M, K, N, 16, 1 << 12)
        fills = {}
        for space, base, words, bits in (
            ("vmem", 0, 2 * M * W, 8),
            ("a", a_base, 2 * M * W, 8),
            ("b", b_base, M * W, 8),
            ("wmem", 0, M * W, 16),
            ("bmem", 0, W, 32),
            ("mmem", 0, M * W, 32),
        ):
            fills[space] = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), (words, R))
            await drv.write_words(space, base, fills[space])
        fwd, dx = _fwd_dx_ops(M, N, R, s)
        fwd.update(act=Act.RELU, ones=1, dst=Dst.A, dst_base=a_base, dst_stride=W)
        dx.update(act=Act.RELU, vr_base=0, dst=Dst.A, dst_base=a_base + M * W, dst_stride=W)
        update = dict(kind=Kind.UPDATE, phase=Phase.UPDATE, m=M, k=W, n=N, r_base=0, p_base=0, q_base=0)
        update.update(bb_base=0, shift0=s, shift1=s, momentum=1, dst=Dst.B, dst_base=b_base, dst_stride=W)
        dut.lr.value = 0x3000  # the step's lr (the directed programs' default, 0, would update nothing)
        assert await _run_program(dut, drv, [fwd, dx, update, end], 8 * M * W + 100) == 0
        dut.lr.value = 0

        past = np.arange(W * R) >= N  # the columns past the matrix, in a row of W words
        rows = lambda words, n_rows: np.asarray(words).reshape(n_rows, W * R)
        kept = rows(await drv.read_words("vmem", 0, 2 * M * W), 2 * M)
        _check_matrix(kept[:, past], np.zeros_like(kept[:, past]), "y and dx past N")
        for base, op, ones in ((a_base, "FWD", 1), (a_base + M * W, "DX", 0)):
            written = unpack_operand(await drv.read_words("a", base, M * W), M, W * R, R)[:, past]
            want = np.zeros_like(written)
            want[:, 0] = ones  # FWD's ones column, N, is the first past the matrix
            _check_matrix(written, want, f"{op}'s int8 words past N")
        for space, n_rows in (("wmem", M - 1), ("bmem", 1), ("mmem", M)):
            got = rows(await drv.read_words(space, 0, n_rows * W), n_rows)
            _check_matrix(got[:, past], rows(fills[space][: n_rows * W], n_rows)[:, past], f"{space} past N")
        w8 = unpack_operand(await drv.read_words("b", b_base, (M - 1) * W), M - 1, W * R, R)
        _check_matrix(w8[:, past], np.zeros_like(w8[:, past]), "the int8 weights past N")
    record(post_padding=["FWD", "DX", "UPDATE with momentum"])
