"""Benchmarks behind docs/performance.md (``make bench``).

Numbers come from runs, never from tests: tests assert cycle counts (which
are deterministic), this module measures wall-clock speed.
"""
import platform
import time

from .runner import run_cocotb

__all__ = ["bench_cfu"]


def bench_cfu(simulators, ops=20000):
    """Ops per cycle without back-pressure, and simulated cycles per second."""
    out = {"machine": f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}"}
    for simulator in simulators:
        start = time.perf_counter()
        results = run_cocotb("cfu", "sim.cfu.tb_cfu", simulator=simulator, quiet=True,
                             testcase=["throughput_and_latency", "random_stream", "mlp_workload"],
                             env={"CFU_OPS": str(ops), "WORKLOAD_SAMPLES": "360"})
        stream = results["random_stream"]
        workload = results["mlp_workload"]
        out[simulator] = {
            "ops_per_cycle_no_backpressure": results["throughput"]["mixed"]["ops_per_cycle"],
            "latency_fast_slow": [results["throughput"][k]["busy_cycles"] - results["throughput"][k]["ops"]
                                        for k in ("fast", "slow")],
            "random_stream_ops": stream["commands"],
            "random_stream_cycles": stream["cycles"],
            "mlp_workload_commands": workload["commands"],
            "mlp_workload_cycles": workload["cycles"],
            "mlp_workload_sim_cycles_per_second": round(workload["sim_cycles_per_second"]),
            "wall_seconds_total": round(time.perf_counter() - start, 1),
        }
    return out
