"""Build the firmware, then run it on the SoC (``python -m sim soc``)."""

import fcntl
import json

from ..runner import locked, repo_root, run_cocotb
from .bound import gemm_port_bound
from .firmware import STATS, build_firmware

__all__ = ["run_soc", "soc_summary"]


def soc_summary(results):
    """The testbench's ``soc`` section, with every figure of ``stats`` per image
    (the firmware's totals stay under ``totals``), the speedups, the GEMM way's
    port-bandwidth bound (:func:`sim.soc.bound.gemm_port_bound`) and the waveform's path."""
    r = dict(results["soc"])
    n = r["images"]
    r["totals"] = {name: r[name] for name in STATS}
    r.update({name: r[name] / n for name in STATS})

    def ratio(a, b):
        return r[a] / r[b] if r[b] else None

    r["speedup"] = ratio("software_cycles", "cfu_cycles")
    r["gemm_speedup"] = ratio("software_cycles", "gemm_cycles")
    r["gemm_vs_mac4"] = ratio("cfu_cycles", "gemm_cycles")
    r["gemm_bound"] = gemm_port_bound(r["shapes"], n)
    r["waves"] = results.get("waves")
    return r


def run_soc(simulator="verilator", images=8, waves=False, cold=False):
    """The firmware (rebuilt from source) on VexRiscv + CFU for the first ``images``
    test images, with the weights in the data cache or (``cold``) not; returns the
    testbench's report (:func:`soc_summary`).

    A firmware whose outputs differ from the golden model's raises
    :class:`sim.runner.Mismatch` (its ``results`` hold the report)."""
    name = f"{images}-cold" if cold else f"{images}"
    out = repo_root() / "build" / "soc" / f"firmware-{name}"
    out.mkdir(parents=True, exist_ok=True)
    # Runs with the same images share this firmware: one builds it and runs
    # on it before the next may rewrite it (the SoC's RAM is made from it).
    with locked(out, fcntl.LOCK_EX):
        binary, symbols = build_firmware(out, images=images, cold=cold)
        results = run_cocotb(
            "soc",
            "sim.soc.tb_soc",
            simulator=simulator,
            params={"firmware": str(binary)},
            tag=f"soc-{name}",
            waves=waves,
            quiet=True,
            env={"SOC_IMAGES": str(images), "SOC_COLD": str(int(cold)), "SOC_SYMBOLS": json.dumps(symbols)},
        )
    return soc_summary(results)
