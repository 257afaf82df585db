"""The command line: bad arguments get one error line; --json gets exactly its keys."""
import json
import subprocess
import sys

import pytest

from reference.gemm import gemm_cycles


def _sim(*args):
    return subprocess.run([sys.executable, "-m", "sim", *args], capture_output=True, text=True)


@pytest.mark.parametrize("args", [
    [],
    ["frobnicate"],
    ["gemm", "--m", "0", "--k", "3", "--n", "3"],
    ["gemm", "--m", "3", "--k", "3", "--n", "3", "--mode", "tt"],
    ["gemm", "--m", "3", "--k", "x", "--n", "3"],
    ["gemm", "--rows", "3", "--m", "3", "--k", "3", "--n", "3"],
    ["gemm", "--m", "3", "--k", "3", "--n", "3", "--simulator", "vcs"],
    ["cfu", "--samples", "0"],
    ["cfu", "--samples", "100000"],
    ["train", "--layers", "64,32"],
    ["train", "--layers", "64,x,10"],
    ["train", "--momentum", "0.5"],
    ["train", "--lr", "0"],
    ["train", "--loss", "hinge"],
    ["train", "--check", "full"],
    ["train", "--backend", "verilator", "--batch", "300"],
    ["train", "--backend", "icarus", "--layers", "64,300,10"],
    ["train", "--backend", "verilator", "--layers", "64,32,32,32,32,32,32,10", "--batch", "64"],
])
def test_bad_arguments_one_line(args):
    result = _sim(*args)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sim: error: "), result.stderr
    assert "Traceback" not in result.stderr


def test_gemm_json_keys():
    result = _sim("gemm", "--rows", "2", "--cols", "3", "--m", "5", "--k", "7", "--n", "4",
                  "--mode", "tn", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) == {"cycles", "transfer_cycles", "macs", "ideal_cycles", "utilization",
                        "model_cycles", "scalesim_cycles", "bit_exact"}
    assert out["bit_exact"] is True
    assert out["cycles"] == out["model_cycles"] == gemm_cycles(2, 3, 5, 7, 4, "tn")
    assert out["macs"] == 5 * 7 * 4
    # Operands in (A: 7 rows of 3 words; B: 7 rows of 2) and results out (5 rows x 2 words).
    assert out["transfer_cycles"] == 7 * 3 + 7 * 2 + 5 * 2


def test_train_rtl_json():
    result = _sim("train", "--backend", "verilator", "--steps", "3", "--json", "--plot", "")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) == {"bit_exact", "test_accuracy", "float_test_accuracy", "steps", "cycles",
                        "cycles_by_phase", "utilization", "sim_cycles_per_second"}
    assert out["bit_exact"] is True and out["steps"] == 3
    assert out["cycles"] == sum(out["cycles_by_phase"].values()) > 0
    assert 0 < out["utilization"] < 1 and out["sim_cycles_per_second"] > 0
