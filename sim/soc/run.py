"""Build the firmware, then run it on the SoC (``python -m sim soc``)."""

import fcntl
import json

from ..runner import locked, repo_root, run_cocotb
from .firmware import build_firmware

__all__ = ["run_soc", "soc_summary"]


def soc_summary(results):
    """The testbench's ``soc`` section, with the speedup and the waveform's path."""
    r = dict(results["soc"])
    r["speedup"] = r["software_cycles"] / r["cfu_cycles"] if r["cfu_cycles"] else None
    r["waves"] = results.get("waves")
    return r


def run_soc(simulator="verilator", samples=2, waves=False):
    """Firmware (rebuilt from source) on VexRiscv + CFU; returns the testbench's report.

    A firmware whose outputs differ from the golden model's raises
    :class:`sim.runner.Mismatch` (its ``results`` hold the report)."""
    out = repo_root() / "build" / "soc" / f"firmware-{samples}"
    out.mkdir(parents=True, exist_ok=True)
    # Runs with the same samples share this firmware: one builds it and runs
    # on it before the next may rewrite it (the SoC's RAM is made from it).
    with locked(out, fcntl.LOCK_EX):
        binary, symbols, _, _ = build_firmware(out, samples=samples)
        results = run_cocotb(
            "soc",
            "sim.soc.tb_soc",
            simulator=simulator,
            params={"firmware": str(binary)},
            tag=f"soc-{samples}",
            waves=waves,
            quiet=True,
            env={"SOC_SAMPLES": str(samples), "SOC_SYMBOLS": json.dumps(symbols)},
        )
    return soc_summary(results)
