"""The CFU's RTL against the golden model, on Icarus and Verilator.

Each run is sim/cfu/tb_cfu.py's cocotb tests: 10,000 constrained-random
commands with gaps, back-pressure and a reset mid-stream; a reset with ops
waiting; reset values; directed corners (a reset in each pipeline state,
long back-pressure); throughput and latencies; the slow ops' corners under
back-pressure; every response's cycle against the latency rule, with gaps;
the int8 digits MLP as CFU commands. Every response is compared bit for bit
inside the testbench; a mismatch fails the cocotb test and so this one. Every
functional coverage bin of sim/cfu/coverage.py must be hit.
"""

from sim.runner import run_cocotb

OPS = 10_000


def test_cfu_rtl(simulator, waves, report, functional_coverage):
    results = run_cocotb(
        "cfu", "sim.cfu.tb_cfu", simulator=simulator, waves=waves, env={"CFU_OPS": str(OPS), "WORKLOAD_SAMPLES": "8"}
    )
    stream = results["random_stream"]
    assert stream["checked"] + stream["dropped_by_reset"] == OPS
    assert results["throughput"]["mixed"]["ops_per_cycle"] == 1.0
    workload = results["mlp_workload"]
    assert workload["bit_exact"]
    functional_coverage(results, f"cfu on {simulator}")
    report(
        f"cfu on {simulator}: {stream['checked']} random commands checked "
        f"({stream['dropped_by_reset']} dropped by the mid-stream reset); int8 MLP on "
        f"{workload['samples']} images: {workload['commands']} commands in {workload['cycles']} cycles"
    )
    if waves:
        report(f"cfu on {simulator}: waves in {results['waves']}")
