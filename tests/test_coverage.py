"""Code coverage (sim/coverage.py, ``python -m sim coverage``): the figures come
from Verilator's coverage data, the reports are written, bad arguments get one
error line. The full run, every design with the regression's stimulus, is
``make coverage``."""

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sim import coverage as cov

# A point of each kind, in Verilator's key format (\x01name\x02value pairs).
_KEY = "\x01f\x02{f}\x01l\x02{l}\x01t\x02{t}\x01page\x02v_{t}/Top\x01o\x02{o}\x01h\x02Top"
VERILOG = """module Top(input clk, output reg q);
  reg \\$auto$verilog_backend.cc:2355:dump_module$1  = 0;
  always @* begin
    if (\\$auto$verilog_backend.cc:2355:dump_module$1 ) begin end
    q = clk ? 1'h1 : 1'h0;
  end
endmodule
"""


def _dat(path, points):
    path.write_text("# SystemC::Coverage-3\n" + "".join(f"C '{k}' {c}\n" for k, c in points))
    return path


def _points(verilog):
    key = lambda line, kind, comment: _KEY.format(f=verilog, l=line, t=kind, o=comment)  # noqa: E731
    return key, [
        (key(4, "branch", "if"), 0),  # the time-0 trigger's arms: excluded
        (key(4, "branch", "else"), 3),
        (key(5, "branch", "cond_then"), 2),
        (key(5, "branch", "cond_else"), 0),
        (key(5, "line", "block"), 5),
        (key(1, "toggle", "q:0->1"), 1),
        (key(1, "toggle", "q:1->0"), 0),
    ]


def test_merge_adds_counts_and_summary_counts_points(tmp_path):
    verilog = tmp_path / "top.v"
    verilog.write_text(VERILOG)
    key, points = _points(verilog)
    a = _dat(tmp_path / "a.dat", points)
    b = _dat(tmp_path / "b.dat", [(key(5, "branch", "cond_else"), 4), (key(5, "line", "block"), 1)])
    merged = cov.merge([a, b])
    assert merged[key(5, "branch", "cond_else")] == 4 and merged[key(5, "line", "block")] == 6
    s = cov.summarize(merged)
    assert s["line"] == {"hit": 3, "total": 3, "pct": 100.0}
    assert s["toggle"] == {"hit": 1, "total": 2, "pct": 50.0}
    assert [e["points"] for e in s["excluded"]] == [2]
    s = cov.summarize(cov.merge([a]))
    assert s["line"] == {"hit": 2, "total": 3, "pct": 66.67}
    assert [(u["line"], u["comment"]) for u in s["uncovered"]] == [(5, "cond_else")]

    cov.write_reports(cov.merge([a]), tmp_path)
    info = (tmp_path / "coverage.info").read_text()
    assert f"SF:{verilog}" in info and "DA:5,0" in info and "BRDA:5,0,1,-" in info and "DA:4," not in info
    annotated = (tmp_path / "annotated" / "top.v").read_text().splitlines()
    assert annotated[3].startswith("-000000 ") and annotated[4].startswith("%000000 ")
    assert cov.merge([tmp_path / "coverage.dat"]) == cov.merge([a])  # the merged file reads back


def _test_module(name):
    """A module of tests/ by path (whatever pytest's import mode)."""
    spec = importlib.util.spec_from_file_location(f"_coverage_{name}", Path(__file__).parent / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_workloads_are_the_regressions():
    """The coverage runs use the tests' own parameters (tests/test_*_rtl.py)."""
    test_cfu_rtl, test_gemm_cfu_rtl, test_gemm_rtl, test_train_rtl = map(
        _test_module, ("test_cfu_rtl", "test_gemm_cfu_rtl", "test_gemm_rtl", "test_train_rtl")
    )

    assert cov.CFU_OPS == test_cfu_rtl.OPS
    assert (cov.GEMM_CFU_OPS, cov.GEMM_CFU_SEED) == (test_gemm_cfu_rtl.OPS, test_gemm_cfu_rtl.SEED)
    assert cov.GEMM_ARRAYS == test_gemm_rtl.ARRAYS and cov.GEMM_BUFFERS == test_gemm_rtl.SMALL_BUFFERS
    assert {k: v for k, v in test_train_rtl.SMALL.items() if k in cov.TRAIN_SMALL} == cov.TRAIN_SMALL
    assert cov.TRAIN_TESTCASES == (*test_train_rtl.ROBUSTNESS_CASES, *test_train_rtl.DIRECTED_CASES)
    assert set(cov.WORKLOADS) == set(cov.DESIGNS)


def test_cfu_coverage_from_a_short_run(tmp_path):
    """A short CFU run on Verilator: the summary's figures are those of the merged .dat."""
    r = cov.run_design("cfu", tmp_path, workloads=[("short", lambda: cov._cfu(ops=300, samples=1))])
    out = tmp_path / "cfu"
    assert r["report"] == str(out) and r["runs"] == 1
    points = cov.merge([out / "coverage.dat"])
    kinds = [cov.fields(k)["t"] for k in points]
    assert r["toggles_total"] == kinds.count("toggle") > 0
    assert r["lines_total"] + r["lines_excluded"] == kinds.count("line") + kinds.count("branch")
    assert r["lines_total"] > 100 and r["lines_excluded"] > 0
    for kind in ("line", "toggle"):
        hit, total = r[f"{kind}s_hit"], r[f"{kind}s_total"]
        assert 0 < hit <= total and r[f"{kind}_pct"] == round(100 * hit / total, 2)
    assert r["line_pct"] > 90
    assert json.loads((out / "summary.json").read_text())["lines_hit"] == r["lines_hit"]
    assert (out / "coverage.info").read_text().count("SF:") == 1
    assert (out / "annotated" / "cfu.v").exists()
    missed = (out / "uncovered.txt").read_text().splitlines()
    assert len(missed) == r["lines_total"] - r["lines_hit"]


@pytest.mark.parametrize(
    "args, cause",
    [
        (["--designs", "selftest"], r"--designs: invalid choice: 'selftest'"),
        (["--designs"], r"--designs: expected at least one argument"),
        (["--frobnicate"], r"unrecognized arguments: --frobnicate"),
        (["--out", "/proc/nope"], r"--out: cannot write in /proc/nope"),
    ],
)
def test_bad_arguments(args, cause):
    r = subprocess.run([sys.executable, "-m", "sim", "coverage", *args], capture_output=True, text=True, env=os.environ)
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sim: error: ") and re.search(cause, lines[0]), r.stderr


@pytest.mark.regress
def test_every_design_reaches_95_percent_of_lines(tmp_path):
    """``make coverage``'s run: every design's line coverage at least 95%."""
    records = cov.coverage(out=tmp_path)
    low = [(r["design"], r["line_pct"]) for r in records if r["line_pct"] < 95]
    assert not low, low
