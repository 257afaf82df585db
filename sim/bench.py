"""Benchmarks behind docs/performance.md (``make bench``).

Numbers come from runs, never from tests: tests assert cycle counts (which
are deterministic), this module measures wall-clock speed.
"""

import platform
import time

from .runner import run_cocotb

__all__ = ["bench_cfu", "bench_gemm"]


def bench_cfu(simulators, ops=20000):
    """Ops per cycle without back-pressure, and simulated cycles per second."""
    out = {"machine": f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}"}
    for simulator in simulators:
        start = time.perf_counter()
        results = run_cocotb(
            "cfu",
            "sim.cfu.tb_cfu",
            simulator=simulator,
            quiet=True,
            testcase=["throughput_and_latency", "random_stream", "mlp_workload"],
            env={"CFU_OPS": str(ops), "WORKLOAD_SAMPLES": "360"},
        )
        stream = results["random_stream"]
        workload = results["mlp_workload"]
        out[simulator] = {
            "ops_per_cycle_no_backpressure": results["throughput"]["mixed"]["ops_per_cycle"],
            "latency_fast_mac4_slow": [
                results["throughput"][k]["busy_cycles"] - results["throughput"][k]["ops"]
                for k in ("fast", "MAC4", "slow")
            ],
            "random_stream_ops": stream["commands"],
            "random_stream_cycles": stream["cycles"],
            "mlp_workload_commands": workload["commands"],
            "mlp_workload_cycles": workload["cycles"],
            "mlp_workload_sim_cycles_per_second": round(workload["sim_cycles_per_second"]),
            "wall_seconds_total": round(time.perf_counter() - start, 1),
        }
    return out


def bench_gemm(simulators, rows=8, cols=8, m=64, k=64, n=64):
    """The 64x64x64 GEMM on an 8x8 array: cycles, utilization, simulated cycles/s.

    Python loads the operands and reads the results one word a cycle; while
    the array computes it only waits for ``busy`` to fall, so the compute
    phase runs at the simulator's own speed. Speed is measured over that phase.
    """
    import json

    from reference.gemm import gemm_cycles, scalesim_cycles

    out = {}
    for simulator in simulators:
        results = run_cocotb(
            "gemm",
            "sim.systolic.tb_gemm",
            simulator=simulator,
            quiet=True,
            params={"rows": rows, "cols": cols},
            testcase="gemm_cli",
            env={"GEMM_JOBS": json.dumps([[m, k, n, "nn", "random"]])},
        )
        r = results["gemm_cli"]
        out[simulator] = {
            "shape": [m, k, n],
            "array": [rows, cols],
            "cycles": r["cycles"],
            "model_cycles": gemm_cycles(rows, cols, m, k, n),
            "scalesim_cycles": scalesim_cycles(rows, cols, m, k, n),
            "utilization": round(m * k * n / (rows * cols * r["cycles"]), 4),
            "transfer_cycles": r["transfer_cycles"],
            "bit_exact": r["bit_exact"],
            "compute_cycles_per_second": round(r["cycles"] / r["compute_wall_seconds"]),
        }
    return out
