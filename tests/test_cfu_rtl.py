"""The CFU's RTL against the golden model, on Icarus and Verilator."""
from sim.runner import run_cocotb


def test_cfu_rtl(simulator, waves):
    results = run_cocotb("cfu", "sim.cfu.tb_cfu", simulator=simulator, waves=waves,
                         env={"CFU_OPS": "10000", "WORKLOAD_SAMPLES": "8"})
    assert results["random_stream"]["checked"] + results["random_stream"]["dropped_by_reset"] == 10000
    assert results["mlp_workload"]["bit_exact"]
