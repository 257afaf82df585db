"""Formal proofs of the handshakes (sim/formal, run by SymbiYosys): they hold, and they have teeth.

`make test` proves the MAC4 CFU's and the GEMM engine's property groups (about
30 s of CPU) and checks that broken variants fail; `make regress` adds the GEMM
CFU's broken variants and the whole of `python -m sim formal` (the GEMM CFU's
groups and every cover too).
"""

import json
import shutil
import subprocess
import sys

import pytest

from sim.formal.cfu import CfuHarness
from sim.formal.gemm import GemmHarness
from sim.formal.gemm_cfu import GemmCfuHarness
from sim.formal.run import Job, jobs, run_job

pytestmark = pytest.mark.skipif(shutil.which("yosys-abc") is None, reason="yosys-abc (Debian's yosys) is missing")


def _run(job, tmp_path):
    r = run_job(job, tmp_path)
    assert r["status"] in ("proved", "passed", "covered", "failed"), r
    return r


def test_cfu_proved(tmp_path):
    """Every group of the MAC4 CFU's at once (`sim formal` runs them one by one)."""
    r = _run(Job("cfu", "all", CfuHarness, "prove", 20), tmp_path)
    assert r["status"] == "proved", r


@pytest.mark.parametrize("group", sorted(GemmHarness.GROUPS))
def test_gemm_group_proved(group, tmp_path):
    (job,) = [j for j in jobs(["gemm"]) if j.group == group]
    r = _run(job, tmp_path)
    assert r["status"] == "proved", r


@pytest.mark.parametrize(
    "design, make, group, message",
    [
        ("cfu", lambda g: CfuHarness({g}, fault="drop"), "count", "the oldest pending command answers in time"),
        ("cfu", lambda g: CfuHarness({g}, fault="drop"), "order", "responses in command order"),
        ("cfu", lambda g: CfuHarness({g}, fault="unstable"), "backpressure", "a blocked payload holds"),
        ("gemm", lambda g: GemmHarness({g}, fault="late_fall"), "busy", "one busy window per start taken"),
    ],
)
def test_a_broken_design_fails(design, make, group, message, tmp_path):
    """A response swallowed, a payload that moves under back-pressure, a busy that falls late:
    each breaks a proof, with a counterexample trace."""
    r = _run(Job(design, group, (lambda: make(group)), "prove", 20), tmp_path)
    assert r["status"] == "failed", r
    assert message in r["failed"], r
    assert r["trace"] and r["trace"].endswith(".vcd")
    assert (tmp_path / design / f"{group}.il").exists() and (tmp_path / design / f"{group}.sby").exists()


@pytest.mark.regress
@pytest.mark.parametrize("fault, group", [("drop", "order"), ("unstable", "backpressure")])
def test_a_broken_gemm_cfu_fails(fault, group, tmp_path):
    r = _run(Job("gemm_cfu", group, (lambda: GemmCfuHarness({group}, fault=fault)), "prove", 20), tmp_path)
    assert r["status"] == "failed" and r["trace"], r


def test_cover_reached(tmp_path):
    """A cover is stated as "never": reaching it is a counterexample, reported as covered."""
    (job,) = [j for j in jobs(["cfu"]) if j.group == "cover_backpressured"]
    assert _run(job, tmp_path)["status"] == "covered"


def test_cli_bad_arguments():
    for args in (["--depth", "0"], ["--designs", "train"], ["--bogus"]):
        p = subprocess.run([sys.executable, "-m", "sim", "formal", *args], capture_output=True, text=True)
        assert p.returncode == 2, (args, p.stderr)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("sim: error:"), p.stderr


def test_cli_failure_exits_1(tmp_path, monkeypatch, capsys):
    """A failed proof: its assertion and counterexample .vcd printed, one `sim: error:` line, exit 1."""
    import sim.formal.run
    from sim.cli import main

    faulty = [Job("cfu", "backpressure", (lambda: CfuHarness({"backpressure"}, fault="unstable")), "prove", 20)]
    monkeypatch.setattr(sim.formal.run, "jobs", lambda designs, depth: faulty)
    assert main(["formal", "--designs", "cfu", "--out", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert "cfu backpressure: FAILED" in out and "a blocked payload holds" in out and ".vcd" in out, out
    assert err.strip().splitlines() == ["sim: error: formal: 1 failed: cfu backpressure"], err


@pytest.mark.regress
def test_make_formal(tmp_path):
    """The whole of `python -m sim formal`: every group of every design proved (or BMC-checked to
    the depth) and every cover reached."""
    p = subprocess.run(
        [sys.executable, "-m", "sim", "formal", "--json", "--out", str(tmp_path)], capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr
    records = json.loads(p.stdout)
    assert {r["design"] for r in records} == {"cfu", "gemm_cfu", "gemm"}
    for r in records:
        assert r["status"] in ("proved", "passed", "covered"), r
        assert r["status"] != "passed" or r["depth"] >= 20, r
