"""``python -m sim topology``: SCALE-Sim GEMM topologies, our cycle model against SCALE-Sim's
figure, and the RTL against the model, cycle for cycle."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reference.gemm import gemm_cycles, ideal_cycles, scalesim_cycles
from sim.topology import TopologyError, model_report, read_topology

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "digits_and_cnn_gemm.csv"


def _sim(*args):
    return subprocess.run([sys.executable, "-m", "sim", *args], capture_output=True, text=True, env=os.environ)


def test_reads_scalesims_gemm_format_with_trailing_commas(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("Layer, M, N, K,\nfc1, 64, 64, 64,\n\n conv , 25,12 ,72,\nlast,1,2,3\n")
    assert read_topology(path) == [("fc1", 64, 64, 64), ("conv", 25, 12, 72), ("last", 1, 2, 3)]
    assert [name for name, *_ in read_topology(EXAMPLE)][:2] == ["digits_fc0", "digits_fc1"]


def test_the_figures_per_layer():
    """Ours is gemm_cycles; SCALE-Sim's is (2R + C + M - 2)·⌈K/R⌉·⌈N/C⌉ - 1, as SCALE-Sim 3.0.0 prints it
    (FIELD_NOTES: 64³ on 8x8 is 5,504 by the formula, reported as 5,503)."""
    records, totals = model_report([("a", 64, 64, 64), ("b", 5, 3, 17)], 8, 8)
    a, b = records
    assert a["scalesim_cycles"] == 5503 == scalesim_cycles(8, 8, 64, 64, 64) - 1
    assert a["cycles"] == gemm_cycles(8, 8, 64, 64, 64) and a["ideal_cycles"] == 4096
    assert a["utilization"] == pytest.approx(64**3 / (64 * a["cycles"]))
    assert b["cycles"] == gemm_cycles(8, 8, 5, 17, 3) and b["ideal_cycles"] == ideal_cycles(8, 8, 5, 17, 3)
    assert totals["cycles"] == a["cycles"] + b["cycles"] and totals["macs"] == 64**3 + 5 * 3 * 17


@pytest.mark.parametrize(
    "text, cause",
    [
        ("", "empty"),
        (
            "Layer, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n",
            "convolution",
        ),
        ("Layer, M, N, K,\n", "no layers"),
        ("Layer, M, N, K,\nfc, 4, 4,\n", "line 2: 3 fields, expected 4"),
        ("Layer, M, N, K,\nfc, 4, x, 4,\n", "line 2: N of fc must be a whole number of 1 or more, not 'x'"),
        ("Layer, M, N, K,\nfc, 0, 4, 4,\n", "M of fc must be a whole number of 1 or more, not '0'"),
        ("Layer, M, N, K,\nfc, 70000, 4, 4,\n", "at most 65535"),
        ("Layer, M, N, K,\nfc, 1, 4, 4,\nfc, 2, 2, 2,\n", "line 3: a second layer named 'fc'"),
        ("Layer, M, N, K,\nfc, 1, 4, 4, 2:4,\n", "sparsity"),
    ],
)
def test_bad_topologies_get_one_line(tmp_path, text, cause):
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(TopologyError, match=cause):
        read_topology(path)
    r = _sim("topology", str(path))
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and cause in r.stderr, r.stderr


def test_bad_options_get_one_line(tmp_path):
    for args, cause in [
        (["missing.csv"], "cannot read missing.csv"),
        ([str(EXAMPLE), "--rows", "3"], "--rows must be a power of two"),
        ([str(EXAMPLE), "--rtl", "--cols", "64"], "at most 32x32"),
        ([str(EXAMPLE), "--plot", str(tmp_path / "p.xyz")], "--plot: cannot write a .xyz file"),
    ]:
        r = _sim("topology", *args)
        assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and cause in r.stderr, (args, r.stderr)
    big = tmp_path / "big.csv"
    big.write_text("Layer, M, N, K,\nhuge, 60000, 64, 4096,\n")
    r = _sim("topology", str(big), "--rtl")
    assert r.returncode == 2 and "leave --rtl out" in r.stderr and len(r.stderr.splitlines()) == 1


def test_example_topology_json_and_plot(tmp_path):
    png = tmp_path / "t.png"
    r = _sim("topology", str(EXAMPLE), "--rows", "16", "--cols", "4", "--json", "--plot", str(png))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["array"] == [16, 4] and len(out["layers"]) == 8
    for layer in out["layers"]:
        M, N, K = layer["M"], layer["N"], layer["K"]
        assert layer["cycles"] == gemm_cycles(16, 4, M, K, N)
        assert layer["scalesim_cycles"] == scalesim_cycles(16, 4, M, K, N) - 1
        assert layer["rtl_cycles"] is None
    assert png.stat().st_size > 10_000


def test_rtl_equals_the_model_on_every_layer(tmp_path):
    """Three layers at once on the 8x8 engine (the build `infer --engine gemm` uses), two simulations in parallel."""
    path = tmp_path / "small.csv"
    path.write_text("Layer, M, N, K,\nfc, 9, 10, 17,\nconv, 20, 8, 27,\nthin, 1, 3, 70,\n")
    r = _sim("topology", str(path), "--rtl", "--jobs", "2", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["totals"]["rtl_equals_model"] is True and out["totals"]["rtl_bit_exact"] is True
    assert [layer["rtl_cycles"] for layer in out["layers"]] == [layer["cycles"] for layer in out["layers"]]


@pytest.mark.regress
def test_scalesim_itself_reports_our_figure(tmp_path):
    """Real SCALE-Sim 3.0.0: its "Total Cycles" for each layer of the example equal the figure `topology`
    reports, and its "Overall Util %" our utilization at its cycles. SCALE-Sim crashes on numpy 2.4, so it
    runs in $SCALESIM_PYTHON (an interpreter with scalesim and numpy < 2.4), or here if it imports."""
    python = os.environ.get("SCALESIM_PYTHON")
    if not python:
        pytest.importorskip(
            "scalesim", reason="scalesim is not installed; set SCALESIM_PYTHON to an interpreter with it"
        )
        python = sys.executable
    R, C = 8, 8
    cfg = tmp_path / "scale.cfg"
    cfg.write_text(
        "[general]\nrun_name = mlhw\n\n[architecture_presets]\nArrayHeight: 8\nArrayWidth: 8\n"
        "IfmapSramSzkB: 65536\nFilterSramSzkB: 65536\nOfmapSramSzkB: 65536\nIfmapOffset: 0\n"
        "FilterOffset: 10000000\nOfmapOffset: 20000000\nBandwidth: 10\nDataflow: ws\nMemoryBanks: 1\n"
        "ReadRequestBuffer: 512\nWriteRequestBuffer: 512\n\n[layout]\nIfmapCustomLayout: False\n"
        "IfmapSRAMBankBandwidth: 10\nIfmapSRAMBankNum: 10\nIfmapSRAMBankPort: 2\nFilterCustomLayout: False\n"
        "FilterSRAMBankBandwidth: 10\nFilterSRAMBankNum: 10\nFilterSRAMBankPort: 2\n\n[sparsity]\n"
        "SparsitySupport: false\n\n[run_presets]\nInterfaceBandwidth: CALC\nUseRamulatorTrace: False\n"
    )
    layout = tmp_path / "layout.csv"
    layout.write_text("Layer,\n")
    r = subprocess.run(
        [
            python,
            "-m",
            "scalesim.scale",
            "-c",
            str(cfg),
            "-t",
            str(EXAMPLE),
            "-l",
            str(layout),
            "-p",
            str(tmp_path / "out"),
            "-i",
            "gemm",
            "-s",
            "N",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stdout[-1500:] + r.stderr[-1500:]
    (report,) = (tmp_path / "out").rglob("COMPUTE_REPORT.csv")
    rows = [[c.strip() for c in row] for row in csv.reader(report.open())]
    cycles, util = rows[0].index("Total Cycles"), rows[0].index("Overall Util %")
    theirs = [row for row in rows[1:] if row and row[0]]
    ours, _ = model_report(read_topology(EXAMPLE), R, C)
    assert [int(float(row[cycles])) for row in theirs] == [r["scalesim_cycles"] for r in ours]
    assert [float(row[util]) for row in theirs] == pytest.approx([100 * r["scalesim_utilization"] for r in ours])
