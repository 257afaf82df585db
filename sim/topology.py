"""``python -m sim topology``: SCALE-Sim GEMM topologies against this project's array.

SCALE-Sim's GEMM topology is a CSV with the header ``Layer, M, N, K,`` and a
trailing comma on each row. Its weight-stationary dataflow maps K to the
array's rows and N to its columns and streams M: the mapping of
:func:`reference.gemm.gemm_cycles` (A' M×K, B' K×N on an R×C array). For each
layer this reports

* ``cycles``: our cycle model (:func:`reference.gemm.gemm_cycles`), which the
  RTL meets exactly (``--rtl`` runs it and checks);
* ``scalesim_cycles``: SCALE-Sim 3.0.0's "Total Cycles" as it reports them,
  ``(2R + C + M - 2)·⌈K/R⌉·⌈N/C⌉ - 1`` (the index of the last cycle, measured
  against the tool, stalls 0 with large SRAMs);
* ``ideal_cycles``: ``⌈M·N·K / (R·C)⌉``; ``utilization``: MACs over R·C·cycles;
  ``scalesim_utilization``: the same at SCALE-Sim's cycles, which is its
  "Overall Util %" (also measured).
"""

import csv
import json
import os
from concurrent.futures import ProcessPoolExecutor, as_completed

from reference.gemm import gemm_cycles, ideal_cycles, scalesim_cycles, stored_shapes

__all__ = ["TopologyError", "read_topology", "model_report", "rtl_params", "run_rtl", "plot"]

HEADER = ["layer", "m", "n", "k"]
#: The configuration registers are 16 bits; the buffers at most 65536 words.
MAX_DIM = (1 << 16) - 1
MAX_DEPTH = 1 << 16


class TopologyError(ValueError):
    """A file that is not a SCALE-Sim GEMM topology, or a layer the RTL cannot hold: one line."""


def read_topology(path):
    """``[(name, M, N, K)]`` from a SCALE-Sim GEMM topology CSV (``Layer, M, N, K,``)."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as e:
        raise TopologyError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    lines = [(i + 1, [c.strip() for c in row]) for i, row in enumerate(rows)]
    lines = [(n, row[:-1] if row and row[-1] == "" else row) for n, row in lines if any(c for c in row)]
    if not lines:
        raise TopologyError(f"{path}: empty; a SCALE-Sim GEMM topology starts with 'Layer, M, N, K,'")
    n, header = lines[0]
    if [c.lower() for c in header] != HEADER:
        hint = " (a convolution topology? only the GEMM format is read)" if len(header) > 4 else ""
        raise TopologyError(f"{path} line {n}: header {', '.join(header)!r}, expected 'Layer, M, N, K,'{hint}")
    layers, names = [], set()
    for n, row in lines[1:]:
        if len(row) == 5:  # SCALE-Sim's optional sparsity ratio N:M
            if row[4].replace(" ", "") not in ("1:1", ""):
                raise TopologyError(f"{path} line {n}: sparsity ratio {row[4]}; only dense layers (1:1) are modeled")
            row = row[:4]
        if len(row) != 4:
            raise TopologyError(f"{path} line {n}: {len(row)} fields, expected 4 (name, M, N, K)")
        name, *dims = row
        if not name:
            raise TopologyError(f"{path} line {n}: the layer has no name")
        if name in names:
            raise TopologyError(f"{path} line {n}: a second layer named {name!r}")
        names.add(name)
        values = []
        for label, text in zip("MNK", dims):
            if not text.isdigit() or int(text) < 1:
                raise TopologyError(
                    f"{path} line {n}: {label} of {name} must be a whole number of 1 or more, not {text!r}"
                )
            if int(text) > MAX_DIM:
                raise TopologyError(
                    f"{path} line {n}: {label} of {name} is {text}; at most {MAX_DIM} (16-bit registers)"
                )
            values.append(int(text))
        layers.append((name, *values))
    if not layers:
        raise TopologyError(f"{path}: no layers after the header")
    return layers


def model_report(layers, R, C):
    """Per-layer records from the cycle models, and totals."""
    records = []
    for name, M, N, K in layers:
        macs = M * N * K
        cycles = gemm_cycles(R, C, M, K, N)
        scalesim = scalesim_cycles(R, C, M, K, N) - 1  # as SCALE-Sim reports it: the last cycle's index
        records.append(
            {
                "layer": name,
                "M": M,
                "N": N,
                "K": K,
                "macs": macs,
                "cycles": cycles,
                "scalesim_cycles": scalesim,
                "ideal_cycles": ideal_cycles(R, C, M, K, N),
                "utilization": macs / (R * C * cycles),
                "scalesim_utilization": macs / (R * C * scalesim),
                "cycles_vs_scalesim": cycles / scalesim,
                "rtl_cycles": None,
            }
        )
    macs = sum(r["macs"] for r in records)
    cycles = sum(r["cycles"] for r in records)
    scalesim = sum(r["scalesim_cycles"] for r in records)
    totals = {
        "layers": len(records),
        "macs": macs,
        "cycles": cycles,
        "scalesim_cycles": scalesim,
        "ideal_cycles": sum(r["ideal_cycles"] for r in records),
        "utilization": macs / (R * C * cycles),
        "scalesim_utilization": macs / (R * C * scalesim),
        "cycles_vs_scalesim": cycles / scalesim,
    }
    return records, totals


def _pow2_at_least(n, floor):
    p = floor
    while p < n:
        p *= 2
    return p


def rtl_params(layers, R, C):
    """The engine every layer's GEMM (mode nn, one half of each buffer) fits in, or :class:`TopologyError`."""
    from hdl.systolic import GemmEngine

    defaults = GemmEngine.geometry(R, C)
    operand = result = 0
    for name, M, N, K in layers:
        (ar, ac), (br, bc) = stored_shapes(M, K, N, "nn")
        need_op = max(ar * -(-ac // R), br * -(-bc // R))
        need_res = M * -(-N // C)
        if need_op > MAX_DEPTH or need_res > MAX_DEPTH:
            raise TopologyError(
                f"--rtl: layer {name} ({M}x{N}x{K}) needs {need_op} operand and {need_res} result words on "
                f"{R}x{C}; the largest buffer is {MAX_DEPTH}: leave --rtl out for this topology"
            )
        operand, result = max(operand, need_op), max(result, need_res)
    return {
        "rows": R,
        "cols": C,
        "operand_depth": _pow2_at_least(operand, defaults.operand_depth),
        "result_depth": _pow2_at_least(result, defaults.result_depth),
    }


def _rtl_layer(params, simulator, M, N, K, seed):
    """One layer's GEMM on the RTL (``sim gemm``'s test): a plain dict, picklable across processes."""
    from .runner import Mismatch, SimulationError, run_cocotb

    try:
        results = run_cocotb(
            "gemm",
            "sim.systolic.tb_gemm",
            simulator=simulator,
            params=params,
            testcase="gemm_cli",
            seed=seed,
            quiet=True,
            env={"GEMM_JOBS": json.dumps([[M, K, N, "nn", "random"]]), "STIMULUS_SEED": str(seed)},
        )
    except Mismatch as e:
        return {"cycles": e.results.get("gemm_cli", {}).get("cycles"), "bit_exact": False, "error": str(e)}
    except SimulationError as e:
        return {"cycles": None, "bit_exact": None, "error": str(e)}
    r = results["gemm_cli"]
    return {"cycles": r["cycles"], "bit_exact": r["bit_exact"], "error": None}


def run_rtl(layers, R, C, simulator, jobs=None, progress=True):
    """Every layer's GEMM on the R×C engine, ``jobs`` simulations at once (default: one per core), with
    a progress bar on stderr. Returns ``{layer name: {"cycles", "bit_exact", "error"}}``."""
    from tqdm import tqdm

    from .runner import ensure_simulator, run_cocotb

    ensure_simulator(simulator)
    params = rtl_params(layers, R, C)
    # Build once here (a 1x1x1 GEMM), so that the parallel runs only share the build.
    run_cocotb(
        "gemm",
        "sim.systolic.tb_gemm",
        simulator=simulator,
        params=params,
        testcase="gemm_cli",
        quiet=True,
        env={"GEMM_JOBS": json.dumps([[1, 1, 1, "nn", "random"]])},
    )
    workers = max(1, min(jobs or os.cpu_count() or 1, len(layers)))
    out = {}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {
            pool.submit(_rtl_layer, params, simulator, M, N, K, i): name for i, (name, M, N, K) in enumerate(layers)
        }
        bar = tqdm(total=len(layers), desc=f"RTL {R}x{C} ({workers} at once)", unit="layer", disable=not progress)
        for f in as_completed(futures):
            out[futures[f]] = f.result()
            bar.update(1)
        bar.close()
    return out, params


def plot(path, records, R, C, title):
    """Cycles (ours, SCALE-Sim's, ideal; RTL where measured) and utilization per layer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [r["layer"] for r in records]
    x = np.arange(len(records))
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(6.0, 0.7 * len(records) + 2), 7), sharex=True)
    w = 0.27
    ax1.bar(x - w, [r["cycles"] for r in records], w, label="this array (cycle model)")
    ax1.bar(x, [r["scalesim_cycles"] for r in records], w, label="SCALE-Sim 3.0.0 (as it reports)")
    ax1.bar(x + w, [r["ideal_cycles"] for r in records], w, label="ideal")
    rtl = [(i, r["rtl_cycles"]) for i, r in enumerate(records) if r.get("rtl_cycles") is not None]
    if rtl:
        ax1.plot([i - w for i, _ in rtl], [c for _, c in rtl], "k.", label="RTL (measured)")
    ax1.set_yscale("log")
    ax1.set_ylabel("cycles")
    ax1.legend(fontsize=7, ncol=4, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    fig.suptitle(title)
    ax2.bar(x - w / 2, [100 * r["utilization"] for r in records], w, label="this array")
    ax2.bar(x + w / 2, [100 * r["scalesim_utilization"] for r in records], w, label="SCALE-Sim (its Overall Util %)")
    ax2.set_ylabel(f"utilization of {R}x{C} MACs (%)")
    ax2.set_ylim(0, 105)
    ax2.set_xticks(x)
    ax2.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
    ax2.legend(fontsize=7, ncol=2, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
