"""The command line: bad arguments get one error line naming the cause; --json
gets exactly its keys; a faulty design is reported as such; concurrent runs
each report their own results."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reference.gemm import gemm, gemm_cycles


def _sim(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "sim", *args], capture_output=True, text=True, env={**os.environ, **(env or {})}
    )


def _popen(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "sim", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


GEMM = ["gemm", "--m", "3", "--k", "3", "--n", "3"]


@pytest.mark.parametrize(
    "args, cause",
    [
        ([], r"choose a command"),
        (["frobnicate"], r"invalid choice: 'frobnicate'"),
        (["gemm", "--m", "0", "--k", "3", "--n", "3"], r"--m: must be 1 or more, not 0"),
        (GEMM + ["--mode", "tt"], r"--mode: invalid choice: 'tt'"),
        (["gemm", "--m", "3", "--k", "x", "--n", "3"], r"--k: 'x' is not a whole number"),
        (GEMM + ["--rows", "3"], r"--rows must be a power of two"),
        (GEMM + ["--simulator", "vcs"], r"--simulator: invalid choice"),
        (GEMM + ["--seed", "-1"], r"--seed: must be 0 or more"),
        (GEMM + ["--rows", "1024", "--cols", "1024"], r"at most 32 here, not 1024x1024"),
        (GEMM + ["--cols", "64"], r"at most 32 here, not 8x64"),
        (GEMM + ["--rows", "2", "--cols", "2", "--inject-fault", "stuck-pe=2,0"], r"PE 2,0 is outside the 2x2 array"),
        (GEMM + ["--inject-fault", "stuck=1"], r"'stuck=1' is not stuck-pe=R,C"),
        (["cfu", "--samples", "0"], r"--samples: must be 1 or more"),
        (["cfu-gemm", "--ops", "0"], r"--ops: must be 1 or more, not 0"),
        (["cfu-gemm", "--seed", "-3"], r"--seed: must be 0 or more"),
        (["cfu", "--samples", "100000"], r"--samples: the digits test split has 360 images, not 100000"),
        (["soc", "--samples", "361"], r"--images: the digits test split has 360 images, not 361"),
        (["soc", "--images", "300"], r"--images: the firmware with 300 images does not fit in the SoC.s 64 KB of RAM"),
        (["train", "--layers", "64,32"], r"--layers must start with 64 .* and end with 10"),
        (["train", "--layers", "64,x,10"], r"'64,x,10' is not a comma-separated list"),
        (["train", "--momentum", "0.5"], r"--momentum must be 0 or 0.875"),
        (["train", "--lr", "0"], r"--lr must be a finite number above 0, not 0.0"),
        (["train", "--lr", "-1"], r"--lr must be a finite number above 0, not -1.0"),
        (["train", "--lr", "nan"], r"--lr must be a finite number above 0, not nan"),
        (["train", "--lr", "inf"], r"--lr must be a finite number above 0, not inf"),
        (["train", "--lr", "1e9"], r"does not fit the 16-bit fixed-point learning rate .* below 31.99"),
        (["train", "--seed", "-1"], r"--seed: must be 0 or more"),
        (["train", "--loss", "hinge"], r"--loss: invalid choice: 'hinge'"),
        (["train", "--check", "full"], r"--dsp-pairs, --check and --waves apply to the RTL backends"),
        (["train", "--dsp-pairs"], r"--dsp-pairs, --check and --waves apply to the RTL backends"),
        (["train", "--array", "12"], r"--array must be one of"),
        (["train", "--dump", "/dev/null/step"], r"--dump: cannot write in /dev/null/step"),
        (["train", "--plot", "/dev/null/curves.png"], r"--plot: cannot write in /dev/null"),
        (["train", "--plot", "curves.xyz"], r"--plot: cannot write a .xyz file"),
        (["train", "--backend", "verilator", "--batch", "1438"], r"--batch must be between 1 and 1437"),
        (["train", "--backend", "verilator", "--array", "3"], r"--array must be one of 2, 4, 8, 16, 32 .*not 3"),
        (["train", "--backend", "verilator", "--array", "64"], r"--array must be one of 2, 4, 8, 16, 32 .*not 64"),
        (
            ["train", "--backend", "icarus", "--layers", "64,3000,10", "--batch", "256"],
            r"64,3000,10 with batch 256 on a 8x8 array need 195072 words of operand buffer A; 16-bit addresses "
            r"reach 65536",
        ),
        (
            ["train", "--backend", "verilator", "--layers", "64,2000,10", "--batch", "1", "--array", "2"],
            r"64,2000,10 with batch 1 on a 2x2 array need 75005 words of operand buffer B; 16-bit",
        ),
        (["verilog", "--out", "/dev/null/out"], r"--out: cannot write in /dev/null/out"),
        (["synth", "--designs", "gemm", "--arrays", "64x64"], r"--arrays: at most 32x32, not 64x64"),
        (["synth", "--designs", "gemm", "--arrays", "8by8"], r"'8by8' is not RxC"),
        (["synth", "--designs", "train", "--arrays", "8x4"], r"the training core's array is square, not 8x4"),
        (["timing", "--designs", "gemm", "--arrays", "8by8"], r"'8by8' is not RxC"),
        (["timing", "--designs", "selftest", "--arrays", "64x64"], r"--arrays: at most 32x32, not 64x64"),
        (["timing", "--designs", "gemm", "--arrays", "3x4"], r"gemm 3x4: rows must be a power of two, not 3"),
        (["timing", "--designs", "fpu"], r"--designs: invalid choice: 'fpu'"),
        (["timing", "--device", "45k"], r"--device: invalid choice: '45k'"),
        (["timing", "--seed", "0"], r"--seed: must be 1 or more"),
    ],
)
def test_bad_arguments_one_line(args, cause):
    result = _sim(*args)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sim: error: "), result.stderr
    assert re.search(cause, lines[0]), lines[0]
    assert "Traceback" not in result.stderr


def test_train_waves_warning(monkeypatch, capsys):
    """A waveform estimated above 1 GB is announced before the run starts."""
    import sim.train
    from sim.cli import main

    def stop(**kw):
        raise sim.train.TrainError("stopped before the run")

    monkeypatch.setattr(sim.train, "train", stop)
    assert main(["train", "--backend", "verilator", "--waves", "--json", "--plot", ""]) == 2
    err = capsys.readouterr().err.splitlines()
    assert re.fullmatch(r"sim: warning: the waveform of 880 training steps .* about \d+\.\d GB", err[0]), err
    assert main(["train", "--backend", "verilator", "--waves", "--steps", "2", "--json", "--plot", ""]) == 2
    assert "warning" not in capsys.readouterr().err


def test_train_mismatch_says_no(monkeypatch, capsys):
    """A training run whose core disagrees: --json with bit_exact false, one report line, exit 1."""
    import sim.train
    from sim.cli import main
    from sim.runner import Mismatch

    where = {
        "design": "train",
        "where": "train_run, check weights",
        "detail": "step 3, layer 0, tensor w_new, index (1, 2): expected 5, got 7",
    }

    def disagree(**kw):
        raise Mismatch(where, {})

    monkeypatch.setattr(sim.train, "train", disagree)
    assert main(["train", "--backend", "verilator", "--steps", "4", "--json", "--plot", ""]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["bit_exact"] is False and json.loads(out)["mismatch"] == where
    assert err.splitlines() == [
        "sim: error: mismatch in train (train_run, check weights): step 3, layer 0, "
        "tensor w_new, index (1, 2): expected 5, got 7"
    ]


def _operands(seed, M, K, N):
    """--seed's documented meaning: default_rng(seed).integers(-128, 128) draws A, then B."""
    rng = np.random.default_rng(seed)
    return rng.integers(-128, 128, (M, K)), rng.integers(-128, 128, (K, N))


def test_gemm_json_keys():
    result = _sim(*"gemm --rows 2 --cols 3 --m 5 --k 7 --n 4 --mode tn --json".split())
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) == {
        "cycles",
        "transfer_cycles",
        "macs",
        "ideal_cycles",
        "utilization",
        "model_cycles",
        "scalesim_cycles",
        "bit_exact",
        "seed",
        "c_sum",
    }
    assert out["bit_exact"] is True
    assert out["cycles"] == out["model_cycles"] == gemm_cycles(2, 3, 5, 7, 4, "tn")
    assert out["macs"] == 5 * 7 * 4
    # Operands in (A: 7 rows of 3 words; B: 7 rows of 2) and results out (5 rows x 2 words).
    assert out["transfer_cycles"] == 7 * 3 + 7 * 2 + 5 * 2


def test_cfu_gemm_json():
    """A short random run of the GEMM CFU: every command answered and checked, exactly its keys."""
    result = _sim(*"cfu-gemm --ops 300 --seed 3 --simulator icarus --json".split())
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) == {
        "simulator",
        "seed",
        "ops",
        "checked",
        "skipped_undefined",
        "dropped_by_reset",
        "gemms",
        "result_words_checked",
        "definition_checks",
        "resets",
        "resets_mid_gemm",
        "cycles",
        "sim_cycles_per_second",
        "bit_exact",
        "waves",
    }
    assert out["bit_exact"] is True and out["seed"] == 3 and out["ops"] == 300
    assert out["checked"] + out["skipped_undefined"] + out["dropped_by_reset"] == 300
    assert out["gemms"] > 0 and out["result_words_checked"] > 0


def test_gemm_fault_says_no():
    """A PE stuck at 0: bit_exact false in --json, one report line, exit 1; the same again on the second run,
    whose build is up to date (cocotb's "Skipping compilation" warning must not reach stderr)."""
    args = "gemm --rows 2 --cols 2 --m 3 --k 4 --n 3 --simulator icarus --inject-fault stuck-pe=1,0 --json".split()
    _sim(*args)  # builds it, if no earlier run has
    result = _sim(*args)
    assert result.returncode == 1, result.stderr
    out = json.loads(result.stdout)
    assert out["bit_exact"] is False and out["mismatch"]["design"] == "gemm"
    assert out["cycles"] == gemm_cycles(2, 2, 3, 4, 3)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert re.fullmatch(
        r"sim: error: mismatch in gemm \(gemm_cli\): 3x4x3 nn on 2x2: C\[\d, \d\] expected -?\d+, "
        r"got -?\d+; it left the array in cycle \d+ after start .*",
        lines[0],
    ), lines[0]


def test_waves_env_path_reported():
    """WAVES=1 (which cocotb's runner honours by itself) writes the run's own waveform and says where."""
    result = _sim(
        "gemm",
        "--rows",
        "2",
        "--cols",
        "2",
        "--m",
        "2",
        "--k",
        "2",
        "--n",
        "2",
        "--simulator",
        "icarus",
        "--json",
        env={"WAVES": "1"},
    )
    assert result.returncode == 0, result.stderr
    (line,) = [l for l in result.stderr.splitlines() if l.startswith("waves: ")]
    path = Path(line.removeprefix("waves: "))
    assert path.is_file() and path.stat().st_size > 0 and path.parent.parent.name == "runs"


def test_concurrent_gemm_runs_own_results():
    """Two runs of one shape and build at once, different seeds: each reports its own product."""
    shape = dict(M=6, K=5, N=7)
    procs = {
        seed: _popen(
            "gemm",
            "--rows",
            "2",
            "--cols",
            "2",
            "--m",
            "6",
            "--k",
            "5",
            "--n",
            "7",
            "--simulator",
            "icarus",
            "--seed",
            str(seed),
            "--json",
        )
        for seed in (11, 12)
    }
    for seed, (returncode, stdout, stderr) in _outputs(procs, 600).items():
        assert returncode == 0, stderr
        out = json.loads(stdout)
        a, b = _operands(seed, shape["M"], shape["K"], shape["N"])
        assert out["seed"] == seed and out["bit_exact"] is True
        assert out["c_sum"] == int(gemm(a, b, "nn").sum())


def _outputs(procs, timeout):
    """Each process's (returncode, stdout, stderr); none is left running."""
    out = {}
    try:
        for key, p in procs.items():
            stdout, stderr = p.communicate(timeout=timeout)
            out[key] = p.returncode, stdout, stderr
        return out
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.communicate()


TRAIN_JSON_KEYS = {
    "bit_exact",
    "array",
    "test_accuracy",
    "float_test_accuracy",
    "steps",
    "cycles",
    "cycles_by_phase",
    "utilization",
    "sim_cycles_per_second",
    "ceiling_cycles_per_second",
}


def test_concurrent_train_runs_own_results():
    """Two training runs on one Verilator build at once, seeds 4 and 6: each
    reports the accuracy (read from its own run's results) that the golden
    model reaches with its own seed, and ``--json``'s keys and figures (the
    checks of a ``train --backend verilator --json`` run)."""
    from sim.train import train

    seeds = (4, 6)  # after 2 steps, 23.6% and 10.8% (seeds 1, 2 and 3 all give 15.3%)
    args = ["train", "--backend", "verilator", "--steps", "2", "--json", "--plot", ""]
    procs = {seed: _popen(*args, "--seed", str(seed)) for seed in seeds}
    try:
        want = {seed: train(seed=seed, max_steps=2, plot=None, progress=False)["test_accuracy"] for seed in seeds}
    finally:
        outputs = _outputs(procs, 900)
    assert want[seeds[0]] != want[seeds[1]], "the seeds must give different accuracies for this test to mean anything"
    for seed, (returncode, stdout, stderr) in outputs.items():
        assert returncode == 0, stderr
        out = json.loads(stdout)
        assert set(out) == TRAIN_JSON_KEYS
        assert out["bit_exact"] is True and out["steps"] == 2 and out["array"] == "8x8"
        assert out["test_accuracy"] == want[seed], seed
        assert out["cycles"] == sum(out["cycles_by_phase"].values()) > 0
        assert 0 < out["utilization"] < 1 and out["sim_cycles_per_second"] > 0 and out["ceiling_cycles_per_second"] > 0


def test_synth_records_carry_the_array(monkeypatch, capsys):
    """``sim synth --designs train gemm --arrays 16x16 --dsp-pairs --json`` builds the 16x16 training core
    (make sim's network, its memories from fit_geometry, PEs paired) and the paired 16x16 engine; each
    record carries ``array`` and ``dsp_pairs`` beside ``fits_xc7a100t``. yosys is replaced by a recorder."""
    import sim.synth
    from hdl.training.program import CoreGeometry, fit_geometry
    from sim.cli import main

    asked = []

    def fake(design, **params):
        asked.append((design, params))
        return {"design": design, "lut": 1, "ff": 1, "dsp48e1": 1, "bram36": 1, "fits_xc7a100t": True}

    monkeypatch.setattr(sim.synth, "synthesize", fake)
    assert main(["synth", "--designs", "train", "gemm", "--arrays", "16x16", "--dsp-pairs", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert asked == [
        ("train", fit_geometry((64, 32, 10), 32, 16, base=CoreGeometry(dsp_pairs=True)).params),
        ("gemm", {"rows": 16, "cols": 16, "dsp_pairs": True}),
    ]
    assert [(r["array"], r["dsp_pairs"], r["fits_xc7a100t"]) for r in out] == [("16x16", True, True)] * 2
    asked.clear()
    assert main(["synth", "--designs", "train", "cfu", "--json"]) == 0  # the defaults: make sim's core
    assert asked == [("cfu", {}), ("train", {})]
    out = json.loads(capsys.readouterr().out)
    assert [(r["array"], r["dsp_pairs"]) for r in out] == [(None, False), ("8x8", False)]


def test_synth_reports_a_failed_yosys_in_one_line(monkeypatch, capsys):
    """A yosys that fails (here: killed, as the out-of-memory killer does) is one error line and exit 1, not a
    traceback."""
    import signal
    import subprocess

    import sim.synth
    from sim.cli import main

    monkeypatch.setattr(sim.synth, "write_verilog", lambda design, path, **params: "Cfu")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, -signal.SIGKILL, "", ""))
    assert main(["synth", "--designs", "cfu"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sim: error: yosys failed on cfu, killed by SIGKILL (out of memory?)")
