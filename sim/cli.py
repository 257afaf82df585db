"""``python -m sim``: the project's command line.

Every bad argument or missing tool ends in one ``sim: error: ...`` line and a
non-zero exit, never a traceback; arguments are checked before any
simulation starts. A design that disagrees with its golden model ends in one
``sim: error: mismatch in ...`` line, ``bit_exact: false`` in ``--json``,
and exit status 1.
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from .mutate import BENCHES as MUTATE_BENCHES
from .runner import SIMULATORS, Mismatch, SimulationError, ToolMissing, waves_requested

__all__ = ["main", "MAX_ARRAY"]

#: The largest GEMM array side the command line builds. Amaranth alone takes
#: about 10 s to elaborate a 32x32 engine and 40 s for 64x64 (before
#: Verilator compiles it); 1024x1024 would run for hours.
MAX_ARRAY = 32
#: A waveform estimated above this gets a warning before the run.
WAVES_WARN_BYTES = 1 << 30
#: Verilator's VCD of the default training core: about 60 MB a step of the
#: default 64-32-10 network, batch 32 (measured).
TRAIN_VCD_BYTES_PER_STEP = 60e6


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _UsageError(message)


class _UsageError(Exception):
    pass


def _whole(minimum, why=""):
    """An argparse type: a whole number of at least ``minimum``."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more{why}, not {value}")
        return value

    return parse


_positive_int = _whole(1)
_seed = _whole(0, " (it seeds NumPy's generator)")
_seed_pnr = _whole(1, " (nextpnr's placer seed)")


def _probe_dir(path, option):
    """Create ``path`` if need be and check that a file can be written in it."""
    path = Path(path)
    try:
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(f"{path} is a file, not a folder")
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".sim-probe-"):
            pass
    except OSError as e:
        raise _UsageError(f"{option}: cannot write in {path}: {e.strerror or e}") from None


def _probe_file(path, option, suffixes=None):
    """Check, before the run, that ``path`` can be written (its folder is created)."""
    path = Path(path)
    if path.is_dir():
        raise _UsageError(f"{option}: {path} is a folder, not a file")
    if suffixes and path.suffix.lower().lstrip(".") not in suffixes:
        raise _UsageError(
            f"{option}: cannot write a {path.suffix or 'suffix-less'} file; use one of .{', .'.join(sorted(suffixes))}"
        )
    _probe_dir(path.parent, option)
    if path.exists() and not os.access(path, os.W_OK):
        raise _UsageError(f"{option}: {path} is not writable")


def _warn_waves(estimate, what):
    if estimate > WAVES_WARN_BYTES:
        print(f"sim: warning: the waveform of {what} will take about {estimate / 1e9:.1f} GB", file=sys.stderr)


def _print_waves(args, path):
    """The waveform's path: in the text output, or on stderr beside ``--json``."""
    if path and args.json:
        print(f"waves: {path}", file=sys.stderr)


def _cmd_cfu(args):
    """The int8 digits MLP through the CFU, checked bit-exactly against TFLM's kernel."""
    from reference.digits import load_split

    from .runner import run_cocotb

    n_test = len(load_split()[3])
    samples = n_test if args.samples is None else args.samples
    if samples > n_test:
        raise _UsageError(f"--samples: the digits test split has {n_test} images, not {samples}")
    try:
        results = run_cocotb(
            "cfu",
            "sim.cfu.tb_cfu",
            simulator=args.simulator,
            testcase="mlp_workload",
            env={"WORKLOAD_SAMPLES": str(samples)},
            waves=args.waves,
            quiet=True,
        )
    except Mismatch as e:
        e.summary = {
            "simulator": args.simulator,
            "samples": samples,
            "bit_exact": False,
            "mismatch": e.mismatch,
            "waves": e.results.get("waves"),
        }
        raise
    w = results["mlp_workload"]
    _print_waves(args, results.get("waves"))
    summary = {
        "simulator": args.simulator,
        "samples": w["samples"],
        "commands": w["commands"],
        "cycles": w["cycles"],
        "ops_per_cycle": w["commands"] / w["cycles"],
        "bit_exact": w["bit_exact"],
        "int8_accuracy": w["int8_accuracy"],
        "float_accuracy": w["float_accuracy_full_test_split"],
        "sim_cycles_per_second": w["sim_cycles_per_second"],
        "layers": w["layers"],
        "waves": results.get("waves"),
    }
    if args.json:
        print(json.dumps(summary))
        return
    print(
        f"int8 MLP {'-'.join(str(l['in']) for l in w['layers'])}-{w['layers'][-1]['out']} on "
        f"{w['samples']} digits test images, run as CFU commands on {args.simulator}"
    )
    for layer in w["layers"]:
        print(
            f"  layer {layer['layer']} ({layer['in']}->{layer['out']}): {layer['commands']} commands, "
            f"{layer['cycles']} cycles"
        )
    print(
        f"  checked: every output equals TFLite Micro's int8 fully-connected kernel (reference/tflm.py): "
        f"{'bit-exact' if w['bit_exact'] else 'MISMATCH'}"
    )
    print(f"  cycles: {w['cycles']} for {w['commands']} commands ({summary['ops_per_cycle']:.3f} ops/cycle)")
    print(
        f"  accuracy: int8 {100 * w['int8_accuracy']:.1f}% on these images; "
        f"float model {100 * summary['float_accuracy']:.1f}% on the whole test split"
    )
    print(f"  simulation speed: {w['sim_cycles_per_second']:,.0f} cycles/s")
    if results.get("waves"):
        print(f"  waves: {results['waves']}")


def _cmd_cfu_gemm(args):
    """The combined GEMM CFU's constrained-random regression: GEMM and MAC4 ops, checked op by op."""
    from .runner import run_cocotb

    env = {"GEMM_CFU_OPS": str(args.ops), "STIMULUS_SEED": str(args.seed)}
    try:
        results = run_cocotb(
            "gemm_cfu",
            "sim.cfu.tb_gemm_cfu",
            simulator=args.simulator,
            testcase="random_stream",
            seed=args.seed,
            env=env,
            waves=args.waves,
            quiet=True,
        )
    except Mismatch as e:
        e.summary = {
            "simulator": args.simulator,
            "seed": args.seed,
            "ops": args.ops,
            "bit_exact": False,
            "mismatch": e.mismatch,
            "waves": e.results.get("waves"),
        }
        raise
    r = results["random_stream"]
    _print_waves(args, results.get("waves"))
    summary = {
        "simulator": args.simulator,
        "seed": args.seed,
        "ops": r["commands"],
        "checked": r["checked"],
        "skipped_undefined": r["skipped_undefined"],
        "dropped_by_reset": r["dropped_by_reset"],
        "gemms": r["gemms_started"],
        "result_words_checked": r["read32_checked"] + r["read8_checked"],
        "definition_checks": r["definition_checks"],
        "resets": len(r["resets"]),
        "resets_mid_gemm": sum(1 for x in r["resets"] if x["engine_busy"]),
        "cycles": r["cycles"],
        "sim_cycles_per_second": r["cycles_per_second"],
        "bit_exact": True,
        "waves": results.get("waves"),
    }
    if args.json:
        print(json.dumps(summary))
        return
    print(f"GEMM CFU (MAC4 family + GEMM ops), {args.ops} random commands, seed {args.seed}, on {args.simulator}")
    print(
        f"  checked:  {summary['checked']:,} responses bit for bit against reference/cfu_gemm.py "
        f"({summary['skipped_undefined']} undefined after a reset, {summary['dropped_by_reset']} dropped by "
        f"{summary['resets']} resets, {summary['resets_mid_gemm']} of them mid-GEMM)"
    )
    print(
        f"  GEMMs:    {summary['gemms']} started; {summary['result_words_checked']:,} result words read back "
        f"(READ32 and READ8); {summary['definition_checks']:,} answers also checked against the definitions"
    )
    print(f"  cycles:   {summary['cycles']:,} ({summary['sim_cycles_per_second']:,.0f} simulated cycles/s)")
    if results.get("waves"):
        print(f"  waves:    {results['waves']}")


def _pow2_at_least(n, floor):
    p = floor
    while p < n:
        p *= 2
    return p


def _cmd_gemm(args):
    """One random int8 GEMM through the systolic array, checked against NumPy."""
    from hdl.systolic import GemmEngine
    from reference.gemm import gemm_cycles, ideal_cycles, scalesim_cycles, stored_shapes

    from .runner import run_cocotb

    R, C, M, K, N = args.rows, args.cols, args.m, args.k, args.n
    if R & (R - 1):
        raise _UsageError(f"--rows must be a power of two (the operand buffers bank by rows), not {R}")
    if max(R, C) > MAX_ARRAY:
        raise _UsageError(
            f"--rows and --cols: at most {MAX_ARRAY} here, not {R}x{C} (a 64x64 engine takes "
            f"Amaranth about 40 s to elaborate and Verilator minutes to build)"
        )
    stuck = args.inject_fault
    if stuck and not (stuck[0] < R and stuck[1] < C):
        raise _UsageError(f"--inject-fault: PE {stuck[0]},{stuck[1]} is outside the {R}x{C} array")
    if max(M, K, N) >= 1 << 16:
        raise _UsageError("M, K and N must be below 65536 (16-bit configuration registers)")
    (a_rows, a_cols), (b_rows, b_cols) = stored_shapes(M, K, N, args.mode)
    defaults = GemmEngine.geometry(R, C)
    params = {
        "rows": R,
        "cols": C,
        "operand_depth": _pow2_at_least(
            max(a_rows * -(-a_cols // R), b_rows * -(-b_cols // R)), defaults.operand_depth
        ),
        "result_depth": _pow2_at_least(M * -(-N // C), defaults.result_depth),
    }
    if params["operand_depth"] > 1 << 16 or params["result_depth"] > 1 << 16:
        raise _UsageError(
            f"{M}x{K}x{N} needs buffers of {params['operand_depth']} operand and "
            f"{params['result_depth']} result words; the largest is 65536"
        )
    if stuck:
        params["stuck_pe"] = list(stuck)  # its own build directory: gemm-...-stuck_peR_C
    jobs = [[M, K, N, args.mode, "random"]]

    def summary(r):
        macs = M * K * N
        return {
            "cycles": r["cycles"],
            "transfer_cycles": r["transfer_cycles"],
            "macs": macs,
            "ideal_cycles": ideal_cycles(R, C, M, K, N),
            "utilization": macs / (R * C * r["cycles"]),
            "model_cycles": gemm_cycles(R, C, M, K, N, args.mode),
            "scalesim_cycles": scalesim_cycles(R, C, M, K, N),
            "bit_exact": r["bit_exact"],
            "seed": r["seed"],
            "c_sum": r["c_sum"],
        }

    try:
        results = run_cocotb(
            "gemm",
            "sim.systolic.tb_gemm",
            simulator=args.simulator,
            params=params,
            testcase="gemm_cli",
            seed=args.seed,
            waves=args.waves,
            quiet=True,
            env={"GEMM_JOBS": json.dumps(jobs), "STIMULUS_SEED": str(args.seed)},
        )
    except Mismatch as e:
        if "gemm_cli" in e.results:
            e.summary = {**summary(e.results["gemm_cli"]), "mismatch": e.mismatch}
        raise
    r = results["gemm_cli"]
    out = summary(r)
    _print_waves(args, results.get("waves"))
    if args.json:
        print(json.dumps(out))
    else:
        print(f"GEMM {M}x{K}x{N} ({args.mode}) on a {R}x{C} array, {args.simulator}")
        for key, value in out.items():
            print(f"  {key:16s} {value:.4f}" if isinstance(value, float) else f"  {key:16s} {value}")
        print(f"  {'weight_stall':16s} {r['weight_stall_cycles']}")
        print(f"  {'sim speed':16s} {r['cycles'] / r['compute_wall_seconds']:,.0f} cycles/s (compute phase)")
        if results.get("waves"):
            print(f"  {'waves':16s} {results['waves']}")
    if out["cycles"] != out["model_cycles"]:
        raise SimulationError(f"the cycle model ({out['model_cycles']}) disagrees with the RTL ({out['cycles']})")


def _cmd_synth(args):
    """FPGA resources (yosys synth_xilinx -family xc7): the CFUs, GEMM engines, the 8x8 self-test, the training core."""
    from .synth import XC7A100T, synthesize

    # (design, params, array): array is the record's "RxC", None for the MAC CFU.
    targets = [("cfu", {}, None)] if "cfu" in args.designs else []
    pairs = {"dsp_pairs": True} if args.dsp_pairs else {}
    if "gemm_cfu" in args.designs:
        targets.append(("gemm_cfu", {}, "8x8"))  # cfu.v's combined unit, default geometry: an 8x8 engine
    if "selftest" in args.designs:
        targets.append(("selftest", {"rows": 8, "cols": 8}, "8x8"))
    if "train" in args.designs:
        from hdl.training.program import CoreGeometry, fit_geometry

        for rows, cols in _arrays(args.arrays or ["8x8"]):
            if rows != cols:
                raise _UsageError(f"--arrays: the training core's array is square, not {rows}x{cols}")
            g = fit_geometry((64, 32, 10), 32, rows, base=CoreGeometry(**pairs))  # make sim's network
            # The default CoreGeometry, as make sim builds it, keeps its short build name.
            targets.append(("train", {} if g == CoreGeometry() else g.params, f"{rows}x{cols}"))
    if "gemm" in args.designs:
        for rows, cols in _arrays(args.arrays or ["4x4", "8x8", "16x16"]):
            targets.append(("gemm", {"rows": rows, "cols": cols, **pairs}, f"{rows}x{cols}"))
    rows = []
    for design, params, array in targets:
        try:
            rows.append({**synthesize(design, **params), "array": array, "dsp_pairs": bool(params.get("dsp_pairs"))})
        except ValueError as e:
            raise _UsageError(str(e)) from None
        except RuntimeError as e:
            raise SimulationError(str(e)) from None
        if not args.json:
            r = rows[-1]
            print(
                f"{r['design']}: {r['lut']} LUT, {r['ff']} FF, {r['dsp48e1']} DSP48E1, "
                f"{r['bram36']:g} RAMB36 ({r['yosys_seconds']} s)",
                file=sys.stderr,
            )
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print("| design | LUT | FF | DSP48E1 | BRAM (RAMB36) | fits xc7a100t |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        share = r["share_of_xc7a100t"]
        print(
            f"| {r['design']} | {r['lut']:,} ({share['lut']:.1%}) | {r['ff']:,} ({share['ff']:.1%}) | "
            f"{r['dsp48e1']} ({share['dsp48e1']:.1%}) | {r['bram36']:g} ({share['bram36']:.1%}) | "
            f"{'yes' if r['fits_xc7a100t'] else 'no'} |"
        )
    print(f"| xc7a100t | {XC7A100T['lut']:,} | {XC7A100T['ff']:,} | {XC7A100T['dsp48e1']} | {XC7A100T['bram36']} | |")


def _arrays(sizes):
    """``--arrays`` RxC texts -> [(rows, cols)], checked against MAX_ARRAY."""
    out = []
    for size in sizes:
        rows, _, cols = size.partition("x")
        if not (rows.isdigit() and cols.isdigit()):
            raise _UsageError(f"--arrays: {size!r} is not RxC, for example 8x8")
        if max(int(rows), int(cols)) > MAX_ARRAY:
            raise _UsageError(
                f"--arrays: at most {MAX_ARRAY}x{MAX_ARRAY}, not {size} (a 64x64 engine takes "
                f"Amaranth about 40 s to elaborate and yosys far longer to synthesize)"
            )
        out.append((int(rows), int(cols)))
    return out


#: ``sim timing``'s designs; the training core is left out unless named (about 20 minutes here). Its
#: post unit and loss unit alone (``post``, ``loss_unit``) take minutes.
TIMING_DESIGNS = ("cfu", "gemm_cfu", "gemm", "selftest", "train", "post", "loss_unit", "soc")
TIMING_DEFAULT = ("cfu", "gemm_cfu", "gemm", "selftest")


def _cmd_mutate(args):
    """Mutation score: yosys mutants of a design's netlist, each run through a part of its regression."""
    from .mutate import BENCHES, MutateError, mutate

    try:
        # Progress goes to stderr: with --json too when stderr is a terminal (a sweep of the training core
        # runs over an hour), so that only the JSON is on stdout and a pipe or a test sees no progress.
        progress = not args.json or sys.stderr.isatty()
        record, rows = mutate(args.design, count=args.count, seed=args.seed, jobs=args.jobs, progress=progress)
    except MutateError as e:
        raise SimulationError(str(e)) from None
    if args.json:
        print(json.dumps(record, indent=1))
        return
    equivalent = [r for r in rows if r["status"] == "equivalent"]
    print(
        f"{record['design']} ({BENCHES[args.design].note}): {record['mutants']} mutants, {record['killed']} killed, "
        f"{record['survived']} survived, {record['equivalent']} equivalent; score {100 * record['score']:.1f}% "
        f"(seed {record['seed']})"
    )
    for r in equivalent:
        print(f"  equivalent #{r['index']} {r['mutation']}")
    for s in record["survivors"]:
        print(f"  survivor {s}")


def _cmd_timing(args):
    """Fmax on a Lattice ECP5 (yosys synth_ecp5, nextpnr-ecp5 out of context) and xc7 LUT levels of each design."""
    from .timing import DEVICES, timing

    arrays = _arrays(args.arrays)
    targets = []
    for design in dict.fromkeys(args.designs):
        for array in arrays if design in ("gemm", "selftest") else [None]:
            targets.append((design, array))
    from hdl.generate import to_verilog

    from .timing import design_params

    for design, array in targets:  # a design its parameters cannot build fails here, before any run
        try:
            to_verilog(design, **design_params(design, array))
        except ValueError as e:
            raise _UsageError(f"{design} {'x'.join(map(str, array or ()))}: {e}") from None
    records = []
    for design, array in targets:
        try:
            r = timing(design, array, device=args.device, seed=args.seed)
        except ValueError as e:
            raise _UsageError(str(e)) from None
        except RuntimeError as e:
            raise SimulationError(str(e)) from None
        records.append(r)
        if not args.json:
            print(
                f"{r['design']}{' ' + r['array'] if r['array'] else ''}: "
                + (f"{r['fmax_mhz']:.1f} MHz" if r["fmax_mhz"] else r.get("note", "no clock"))
                + f" (yosys {r['yosys_seconds']} s, nextpnr {r['nextpnr_seconds']} s)",
                file=sys.stderr,
            )
    if args.json:
        print(json.dumps(records, indent=1))
        return
    part = DEVICES[args.device][0]
    print(f"ECP5 {part}, nextpnr-ecp5 out of context, seed {args.seed}; xc7: synth_xilinx LUT levels")
    print("| design | Fmax (MHz) | critical path (start -> end) | LUT4 | FF | MULT18X18D | EBR | xc7 LUT levels |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for r in records:
        name = f"{r['design']} {r['array']}" if r["array"] else r["design"]
        path = r["critical_path"]
        where = f"`{path['start']}` -> `{path['end']}`" if path else r.get("note", "")
        fmax = f"{r['fmax_mhz']:.1f}" if r["fmax_mhz"] else "-"
        print(
            f"| {name} | {fmax} | {where} | {r['lut4']} | {r['ff']} | {r['dsp']} | {r['ebr']} | "
            f"{r['xc7_lut_levels']} ({r['xc7_lut_levels_io']} with ports) |"
        )
    for r in records:
        if r["slow_endpoints"]:
            slow = ", ".join(f"`{e['register']}` {e['ns']} ns" for e in r["slow_endpoints"])
            print(f"\n{r['design']}{' ' + r['array'] if r['array'] else ''}, inputs settling after 10 ns: {slow}")


def _cmd_formal(args):
    """Formal proofs of the handshakes (SymbiYosys): per design and property group, proved or BMC-checked to a depth."""
    from .formal.run import DEFAULT_DEPTH, describe, jobs, run_job

    out_dir = Path(args.out)
    _probe_dir(out_dir, "--out")
    records = []
    for job in jobs(list(dict.fromkeys(args.designs)), args.depth or DEFAULT_DEPTH):
        r = run_job(job, out_dir)
        records.append(r)
        print(describe(r), file=sys.stderr if args.json else sys.stdout, flush=True)
    if args.json:
        print(json.dumps(records, indent=1))
    failed = [f"{r['design']} {r['group']}" for r in records if r["status"] == "failed"]
    if failed:
        raise SimulationError(f"formal: {len(failed)} failed: {', '.join(failed)}")


def _cmd_soc(args):
    """The int8 digits MLP on VexRiscv: plain C, the MAC4 CFU, the GEMM CFU; cycles per image and speedups."""
    from reference.digits import load_split

    from .soc.firmware import GEMM_PHASES, FirmwareError, FirmwareTooBig
    from .soc.run import run_soc, soc_summary

    n_test = len(load_split()[2])
    if args.images > n_test:
        raise _UsageError(f"--images: the digits test split has {n_test} images, not {args.images}")
    try:
        r = run_soc(args.simulator, images=args.images, waves=args.waves, cold=args.cold)
    except FirmwareTooBig as e:
        # The firmware keeps every image's inputs and activations in the SoC's RAM.
        raise _UsageError(f"--images: {e}") from None
    except FirmwareError as e:
        raise SimulationError(str(e)) from None
    except Mismatch as e:
        if "soc" in e.results:
            e.summary = {**_soc_out(soc_summary(e.results)), "mismatch": e.mismatch}
        raise
    out = _soc_out(r)
    _print_waves(args, r.get("waves"))
    if args.json:
        print(json.dumps(out))
        return
    n, bound = r["images"], r["gemm_bound"]
    print(f"digits MLP (64-32-10, both layers) on {n} images, VexRiscv_FullCfu + CFU, {args.simulator}")
    print("  per image:   cycles  instructions  cycles/MAC  speedup")
    for way, label in (("software", "software"), ("cfu", "MAC4 CFU"), ("gemm", "GEMM CFU")):
        cycles = r[f"{way}_cycles"]
        print(
            f"  {label:9} {cycles:9,.0f} {r[f'{way}_instructions']:13,.0f} "
            f"{cycles * n / r['macs']:11.2f} {r['software_cycles'] / cycles:8.2f}x"
        )
    print(f"  GEMM over MAC4: {r['gemm_vs_mac4']:.2f}x")
    print(
        f"  GEMM engine per image: busy {r['gemm_busy']:.1f} cycles = waited on {r['gemm_wait']:.1f} "
        f"+ overlapped with the CPU {r['gemm_overlap']:.1f}; {r['gemm_transfers']:.1f} transfers"
    )
    phases = ", ".join(f"{p} {r[f'gemm_{p}']:.0f}" for p in GEMM_PHASES)
    print(f"  GEMM steps per image: {phases}")
    print(
        f"  port bound per image: {bound['port_cycles']:.1f} cycles ({bound['instructions']:,} transfers of "
        f"{bound['bytes']:,} bytes a batch at one a cycle); {bound['critical_cycles']:.1f} with the GEMMs' "
        f"own time on the critical path"
    )
    print(
        f"  checked:  every way's hidden and output int8 activations against the golden model: "
        f"{'bit-exact' if r['bit_exact'] else 'MISMATCH'}"
    )
    print(f"  simulation speed: {r['sim_cycles_per_second']:,.0f} cycles/s")
    if r.get("waves"):
        print(f"  waves: {r['waves']}")


def _soc_out(r):
    """The JSON of ``python -m sim soc``: every figure per image."""
    from .soc.firmware import GEMM_COUNTERS, GEMM_PHASES, WAYS

    return {
        "images": r["images"],
        "weights_cached": r["weights_cached"],
        "software_cycles": r["software_cycles"],
        "cfu_cycles": r["cfu_cycles"],
        "speedup": r["speedup"],
        "gemm_cycles": r["gemm_cycles"],
        "gemm_speedup": r["gemm_speedup"],
        "gemm_vs_mac4": r["gemm_vs_mac4"],
        "bit_exact": r["bit_exact"],
        "instructions_retired": {way: r[f"{way}_instructions"] for way in WAYS},
        "gemm_counters": {c: r[f"gemm_{c}"] for c in GEMM_COUNTERS},
        "gemm_phases": {p: r[f"gemm_{p}"] for p in GEMM_PHASES},
        "gemm_bound": {k: r["gemm_bound"][k] for k in ("port_cycles", "critical_cycles")},
    }


def _fault(text):
    kind, _, where = text.partition("=")
    r, _, c = where.partition(",")
    if kind != "stuck-pe" or not (r.isdigit() and c.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not stuck-pe=R,C (for example stuck-pe=0,1)")
    return int(r), int(c)


def _layers(text):
    try:
        layers = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of widths") from None
    return layers


def _cmd_train(args):
    """Train the digits MLP in fixed point beside its float twin: golden model alone, or through the RTL."""
    from reference.digits import load_split

    from .train import TrainError, train
    from .training.session import run_config, total_steps

    waves = waves_requested(args.waves) if args.backend != "reference" else False
    if args.backend == "reference" and (args.check != "weights" or args.waves or args.dsp_pairs):
        raise _UsageError("--dsp-pairs, --check and --waves apply to the RTL backends (icarus, verilator)")
    if args.dump:
        _probe_dir(args.dump, "--dump")
    if args.plot:
        import matplotlib.backends.backend_agg as agg

        _probe_file(args.plot, "--plot", set(agg.FigureCanvasAgg.get_supported_filetypes()))
    keys = [
        "bit_exact",
        "array",
        "test_accuracy",
        "float_test_accuracy",
        "steps",
        "cycles",
        "cycles_by_phase",
        "utilization",
        "sim_cycles_per_second",
        "ceiling_cycles_per_second",
    ]
    if waves:
        try:
            cfg = run_config(
                args.layers,
                args.epochs,
                args.batch,
                args.lr,
                args.momentum,
                args.loss,
                args.seed,
                args.activation,
                max_steps=args.steps,
            )
        except TrainError as e:
            raise _UsageError(str(e)) from None
        steps = total_steps(cfg, len(load_split()[0]))
        if args.backend == "verilator":
            _warn_waves(steps * TRAIN_VCD_BYTES_PER_STEP, f"{steps} training steps (--steps N cuts it short)")
    try:
        r = train(
            layers=args.layers,
            epochs=args.epochs,
            batch=args.batch,
            lr=args.lr,
            momentum=args.momentum,
            loss=args.loss,
            seed=args.seed,
            activation=args.activation,
            dump=args.dump,
            plot=args.plot,
            progress=not args.json,
            backend=args.backend,
            check=args.check,
            waves=waves,
            max_steps=args.steps,
            array=args.array or 8,
            dsp_pairs=args.dsp_pairs,
            ceiling=args.backend == "verilator" and not waves,  # Icarus would take minutes over it
        )
    except TrainError as e:
        raise _UsageError(str(e)) from None
    except Mismatch as e:
        e.summary = {**{k: None for k in keys}, "bit_exact": False, "mismatch": e.mismatch}
        raise
    _print_waves(args, r.get("waves"))
    if args.json:
        print(json.dumps({k: r[k] for k in keys}))
        return
    rtl = args.backend != "reference"
    what = (
        f"the training core on {args.backend}, checked against the golden model every step ({args.check})"
        if rtl
        else "the bit-exact golden model"
    )
    print(f"MLP {'-'.join(map(str, args.layers))} on digits through {what}")
    print(
        f"  {args.epochs} epochs, batch {args.batch}, lr {r['lr_applied']:.6g} as applied, loss {args.loss}, "
        f"momentum {args.momentum}, {args.activation}"
    )
    print(f"  steps:           {r['steps']}")
    if rtl:
        print(
            f"  bit-exact:       {'yes' if r['bit_exact'] else 'NO'} (weights and biases after every step"
            f"{', and every kept tensor' if args.check == 'full' else ''})"
        )
        print(f"  cycles:          {r['cycles']:,} ({r['cycles_per_step']:,} a step) on a {r['array']} array")
        g = r["geometry"]
        if g["dsp_pairs"]:
            print("  multipliers:     one per two PEs (--dsp-pairs: INT8 packing, 25 x 18 DSP48E1)")
        print(
            f"  memories (words): operands 2 x {g['operand_depth']}, results 2 x {g['result_depth']}, "
            f"activations {g['vmem_depth']}, weights {g['wmem_depth']}, biases {g['bmem_depth']}, "
            f"momenta {g['mmem_depth']} (sized for this network and batch)"
        )
        for phase, cycles in r["cycles_by_phase"].items():
            util = r["utilization_by_phase"][phase]
            print(
                f"    {phase:<9} {cycles:>11,} cycles, GEMM busy {r['gemm_cycles_by_phase'][phase]:>11,}, "
                f"array utilization {100 * util if util is not None else 0:5.1f}%"
            )
        print(f"  utilization:     {100 * r['utilization']:.1f}% of the array's MACs over the whole step")
        print(
            f"  speed:           {r['sim_cycles_per_second']:,.0f} simulated cycles/s "
            f"({r['sim_cycles']:,} cycles with the host's transfers, {r['wall_seconds']:.1f} s)"
        )
        if r["ceiling_cycles_per_second"]:
            print(
                f"                   {r['sim_cycles_per_second'] / r['ceiling_cycles_per_second']:.0%} of this "
                f"core's ceiling, {r['ceiling_cycles_per_second']:,.0f} cycles/s (steps with no host transfer)"
            )
        if r.get("waves"):
            print(f"  waves:           {r['waves']}")
    print(
        f"  test accuracy:   fixed point {100 * r['test_accuracy']:.1f}%, float {100 * r['float_test_accuracy']:.1f}%"
    )
    if args.plot:
        print(f"  curves:          {args.plot}")
    if args.dump:
        print(f"  first step:      {Path(args.dump) / 'step0.npz'}")


def _cmd_verilog(args):
    """The CFU Playground kit, the Nexys A7 self-test build plan and the digits MLP as a .tflite model."""
    from hdl.boards.nexys_a7 import write_build_plan
    from hdl.cfu.kit import write_cfu_kit
    from reference.tflite_model.export import write_digits_model

    _probe_dir(args.out, "--out")
    for path in write_cfu_kit(Path(args.out) / "cfu_playground"):
        print(path)
    for path in write_build_plan(Path(args.out) / "nexys_a7"):
        print(path)
    for path in write_digits_model(args.out):  # digits_mlp.tflite and its test images, for `sim infer`
        print(path)


def _cmd_bench(args):
    """Measure the figures of docs/performance.md: CFU ops/cycle, GEMM cycles, simulation speed."""
    from .bench import bench_cfu, bench_gemm

    out = {}
    if "cfu" in args.designs:
        out["cfu"] = bench_cfu(args.simulators, ops=args.ops)
    if "gemm" in args.designs:
        out["gemm"] = bench_gemm(args.simulators)
    print(json.dumps(out, indent=1))


def _cmd_infer(args):
    """An int8 .tflite model on an engine (NumPy, the CFU or GEMM RTL, SoC firmware), checked against TFLite Micro."""
    from .infer.engines import EngineUnavailable, engine_spec
    from .infer.run import InferError, infer, load_checked, prepare_inputs, write_outputs
    from .infer.tflm import TflmError, tflm_available

    try:
        spec = engine_spec(args.engine)
    except EngineUnavailable as e:
        raise _UsageError(str(e)) from None
    if args.inputs is not None and args.samples is not None:
        raise _UsageError("--inputs and --samples: give one (the rows to run, or how many random rows)")
    if args.quantize and args.inputs is None:
        raise _UsageError("--quantize applies to --inputs (float rows to quantize)")
    if spec.design is None and args.waves:
        raise _UsageError("--waves applies to the RTL engines (cfu, gemm, soc)")
    check = args.check or ("tflm" if tflm_available() else "none")
    if check == "tflm" and not tflm_available():
        raise _UsageError("--check tflm: tflite-micro is not installed (run `make install`)")
    try:
        graph, data = load_checked(args.model)
        if args.outputs:
            _probe_file(args.outputs, "--outputs", {"npy", "npz"})
            if Path(args.outputs).suffix.lower() == ".npy" and len(graph.outputs) > 1:
                raise _UsageError(f"--outputs: the model has {len(graph.outputs)} outputs; write them to a .npz")
        rows = prepare_inputs(graph, args.inputs, args.quantize, args.samples, args.seed)
        from reference.tflite_model.run import group_inputs

        group_inputs(graph, rows)  # whole batches, before any simulation
    except InferError as e:
        raise _UsageError(str(e)) from None
    except ValueError as e:  # ModelError from group_inputs
        raise _UsageError(str(e)) from None
    try:
        report, outputs = infer(
            graph, data, args.model, rows, args.engine, args.simulator, check == "tflm", waves=args.waves
        )
    except TflmError as e:
        raise SimulationError(str(e)) from None
    except InferError as e:  # the soc engine: the model does not fit in the SoC's RAM
        raise _UsageError(str(e)) from None
    except Mismatch as e:
        if not args.json:  # the table shows which layers differ; main() prints the first difference
            _print_infer(e.summary, graph, args)
        raise
    if args.outputs:
        write_outputs(args.outputs, outputs)
    _print_waves(args, report.get("waves"))
    if args.json:
        print(json.dumps(report))
        return
    _print_infer(report, graph, args)


def _print_infer(r, graph, args):
    x = graph.tensor(graph.inputs[0])
    outs = ", ".join(f"{graph.tensor(i).dtype.lower()}{list(graph.tensor(i).shape)}" for i in graph.outputs)
    print(f"{r['model']}: {len(graph.operators)} ops, input {x.dtype.lower()}{list(x.shape)}, output {outs}")
    where = f" on {r['simulator']}" if r["simulator"] else ""
    print(f"engine {r['engine']}: {r['engine_description']}{where}; {r['rows']} rows")
    print(f"  {'#':>3}  {'op':<16} {'output':<18} {'engine':<9} {'MACs':>11} {'cycles':>10} {'util':>6}  mismatches")
    for layer in r["layers"]:
        util = f"{100 * layer['utilization']:5.1f}%" if layer.get("utilization") is not None else "     -"
        cycles = f"{layer['cycles']:,}" if layer.get("cycles") is not None else "-"
        mism = "-" if layer["mismatches"] is None else f"{layer['mismatches']}"
        macs = f"{layer['macs']:,}" if layer["macs"] else "-"
        print(
            f"  {layer['index']:>3}  {layer['op']:<16} {str(layer['shape']):<18} {layer['engine']:<9} {macs:>11} "
            f"{cycles:>10} {util}  {mism}"
        )
    t = r["totals"]
    util = f", {100 * t['utilization']:.1f}% of the engine's peak" if t["utilization"] is not None else ""
    cycles = f"{t['cycles']:,} cycles{util}" if t["cycles"] else "no cycles (NumPy)"
    print(f"  total: {t['accelerated_ops']} accelerated ops, {t['macs']:,} MACs, {cycles}")
    if r["check"]:
        print(
            f"  checked against TFLite Micro, every op's output tensor: "
            f"{'bit-exact' if r['bit_exact'] else 'MISMATCH'} ({t['mismatches']} elements differ)"
        )
    else:
        print("  not checked (--check none, or tflite-micro missing)")
    if args.outputs:
        print(f"  outputs: {args.outputs}")
    if r.get("waves"):
        print(f"  waves: {r['waves']}")


def _cmd_topology(args):
    """A SCALE-Sim GEMM topology (Layer, M, N, K,): our cycle model against SCALE-Sim's, optionally on the RTL."""
    from .topology import TopologyError, model_report, plot, read_topology, rtl_params, run_rtl

    R, C = args.rows, args.cols
    if R & (R - 1):
        raise _UsageError(f"--rows must be a power of two (the operand buffers bank by rows), not {R}")
    if args.rtl and max(R, C) > MAX_ARRAY:
        raise _UsageError(f"--rtl: arrays of at most {MAX_ARRAY}x{MAX_ARRAY} here, not {R}x{C}")
    if args.plot:
        import matplotlib.backends.backend_agg as agg

        _probe_file(args.plot, "--plot", set(agg.FigureCanvasAgg.get_supported_filetypes()))
    try:
        layers = read_topology(args.topology)
        if args.rtl:
            rtl_params(layers, R, C)  # every layer fits, before any simulation
    except TopologyError as e:
        raise _UsageError(str(e)) from None
    records, totals = model_report(layers, R, C)
    out = {
        "topology": str(args.topology),
        "array": [R, C],
        "dataflow": "weight stationary (K on rows, N on columns, M streamed)",
    }
    if args.rtl:
        measured, params = run_rtl(layers, R, C, args.simulator, jobs=args.jobs, progress=not args.json)
        out["rtl"] = {"simulator": args.simulator, "engine": params}
        for r in records:
            m = measured[r["layer"]]
            r["rtl_cycles"], r["rtl_bit_exact"] = m["cycles"], m["bit_exact"]
            if m["error"]:
                r["rtl_error"] = m["error"]
        totals["rtl_cycles"] = sum(r["rtl_cycles"] or 0 for r in records)
        totals["rtl_equals_model"] = all(r["rtl_cycles"] == r["cycles"] for r in records)
        totals["rtl_bit_exact"] = all(r["rtl_bit_exact"] for r in records)
    out["layers"], out["totals"] = records, totals
    if args.plot:
        plot(args.plot, records, R, C, f"{Path(args.topology).name} on {R}x{C}")
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{args.topology}: {len(records)} GEMM layers on a {R}x{C} weight-stationary array")
        head = f"  {'layer':<14} {'M':>6} {'N':>6} {'K':>6} {'MACs':>13} {'cycles':>11} {'SCALE-Sim':>11} "
        head += f"{'ideal':>11} {'util':>6}"
        print(head + ("  RTL" if args.rtl else ""))
        for r in records:
            rtl = ""
            if args.rtl:
                rtl = f"  {r['rtl_cycles']:,}" if r["rtl_cycles"] is not None else "  failed"
                rtl += "" if r["rtl_cycles"] == r["cycles"] else " (differs)"
            print(
                f"  {r['layer']:<14} {r['M']:>6} {r['N']:>6} {r['K']:>6} {r['macs']:>13,} {r['cycles']:>11,} "
                f"{r['scalesim_cycles']:>11,} {r['ideal_cycles']:>11,} {100 * r['utilization']:5.1f}%{rtl}"
            )
        t = totals
        print(
            f"  total: {t['macs']:,} MACs in {t['cycles']:,} cycles ({100 * t['utilization']:.1f}% utilization); "
            f"SCALE-Sim {t['scalesim_cycles']:,} ({100 * t['scalesim_utilization']:.1f}%); "
            f"ours/SCALE-Sim {t['cycles_vs_scalesim']:.2f}"
        )
        if args.rtl:
            print(
                f"  RTL ({args.simulator}): {t['rtl_cycles']:,} cycles, "
                f"{'equal to the model on every layer' if t['rtl_equals_model'] else 'DIFFERS from the model'}, "
                f"products {'bit-exact' if t['rtl_bit_exact'] else 'WRONG'}"
            )
        if args.plot:
            print(f"  plot: {args.plot}")
    if args.rtl:
        bad = [r for r in records if r["rtl_cycles"] != r["cycles"] or not r["rtl_bit_exact"]]
        if bad:
            r = bad[0]
            raise SimulationError(
                r.get("rtl_error")
                or f"layer {r['layer']}: the RTL took {r['rtl_cycles']} cycles, the cycle model says {r['cycles']}"
            )


def _cmd_coverage(args):
    """Line and toggle coverage of the regression's benches on Verilator, per design (reports in build/coverage/)."""
    from .coverage import run_design

    _probe_dir(args.out, "--out")
    records = []
    for design in dict.fromkeys(args.designs):
        r = run_design(design, args.out, progress=None if args.json else lambda line: print(line, file=sys.stderr))
        records.append(r)
        if not args.json:
            print(
                f"{design}: line {r['line_pct']}% ({r['lines_hit']}/{r['lines_total']}), toggle {r['toggle_pct']}% "
                f"({r['toggles_hit']}/{r['toggles_total']}), {r['runs']} runs, {r['seconds']} s",
                file=sys.stderr,
            )
    if args.json:
        print(json.dumps(records, indent=1))
        return
    print("| design | line coverage (points) | toggle coverage (points) | excluded | report |")
    print("|---|---:|---:|---:|---|")
    for r in records:
        print(
            f"| {r['design']} | {r['line_pct']}% ({r['lines_hit']}/{r['lines_total']}) | {r['toggle_pct']}% "
            f"({r['toggles_hit']}/{r['toggles_total']}) | {r['lines_excluded']} | {r['report']} |"
        )


def _rtl_options(parser, simulator_default="verilator"):
    """The options every RTL-running command shares."""
    parser.add_argument("--simulator", choices=SIMULATORS, default=simulator_default)
    parser.add_argument("--waves", action="store_true", help="write a waveform (FST on Icarus, VCD on Verilator)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _parser():
    p = _Parser(prog="python -m sim", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    c = sub.add_parser("cfu", help=_cmd_cfu.__doc__)
    c.add_argument(
        "--samples",
        type=_positive_int,
        default=None,
        help="digits test images to classify (default: the whole 360-image test split)",
    )
    _rtl_options(c)
    c.set_defaults(func=_cmd_cfu)

    q = sub.add_parser("cfu-gemm", help=_cmd_cfu_gemm.__doc__)
    q.add_argument("--ops", type=_positive_int, default=4000, help="random commands (default 4000)")
    q.add_argument("--seed", type=_seed, default=0, help="seeds the command stream, its gaps, back-pressure and resets")
    _rtl_options(q)
    q.set_defaults(func=_cmd_cfu_gemm)

    g = sub.add_parser("gemm", help=_cmd_gemm.__doc__)
    g.add_argument("--rows", type=_positive_int, default=8, help="array rows R (default 8)")
    g.add_argument("--cols", type=_positive_int, default=8, help="array columns C (default 8)")
    g.add_argument("--m", type=_positive_int, required=True)
    g.add_argument("--k", type=_positive_int, required=True)
    g.add_argument("--n", type=_positive_int, required=True)
    g.add_argument(
        "--mode",
        choices=["nn", "nt", "tn"],
        default="nn",
        help="nn: A·B; nt: A·Bᵀ (B stored N×K); tn: Aᵀ·B (A stored K×M)",
    )
    g.add_argument(
        "--seed",
        type=_seed,
        default=0,
        help="seed of the random operands: NumPy's default_rng(seed).integers(-128, 128) draws A as stored, then B",
    )
    g.add_argument(
        "--inject-fault",
        metavar="stuck-pe=R,C",
        type=_fault,
        default=None,
        help="build the engine with PE (R, C)'s weight stuck at 0, to see a mismatch reported",
    )
    _rtl_options(g)
    g.set_defaults(func=_cmd_gemm)

    o = sub.add_parser("soc", help=_cmd_soc.__doc__)
    o.add_argument(
        "--images",
        "--samples",
        dest="images",
        type=_positive_int,
        default=8,
        help="the batch: the first N digits test images (default 8; --samples is the same option)",
    )
    o.add_argument(
        "--cold",
        action="store_true",
        help="time a first inference: the weights not in the data cache (by default they are, as after earlier ones)",
    )
    _rtl_options(o)
    o.set_defaults(func=_cmd_soc)

    t = sub.add_parser("train", help=_cmd_train.__doc__)
    t.add_argument(
        "--backend",
        choices=["reference", "icarus", "verilator"],
        default="reference",
        help="reference: the golden model alone (default); icarus/verilator: the training core, "
        "checked against it every step",
    )
    t.add_argument("--layers", type=_layers, default=(64, 32, 10), help="widths, default 64,32,10")
    t.add_argument("--epochs", type=_positive_int, default=20, help="default 20")
    t.add_argument("--batch", type=_positive_int, default=32, help="minibatch size, default 32")
    t.add_argument("--lr", type=float, default=0.2, help="learning rate, default 0.2 (applied as lr/batch in 16 bits)")
    t.add_argument("--momentum", type=float, default=0.0, help="0, or 0.875 (s = 1 - 2^-3)")
    t.add_argument("--loss", choices=["ce", "mse"], default="ce")
    t.add_argument("--seed", type=_seed, default=0, help="seeds the initial weights and the batch order")
    t.add_argument(
        "--activation", choices=["relu", "leaky"], default="relu", help="hidden layers' activation (leaky: slope 1/8)"
    )
    t.add_argument(
        "--check",
        choices=["weights", "full"],
        default="weights",
        help="RTL: compare weights and biases after every step, or every tensor the core keeps",
    )
    t.add_argument(
        "--steps",
        type=_positive_int,
        default=None,
        help="stop after this many steps (for --waves: about 60 MB of VCD a step on verilator)",
    )
    t.add_argument(
        "--array",
        type=_positive_int,
        default=None,
        metavar="R",
        help="an R x R array, R a power of two up to 32 (default 8); the memories are sized "
        "from --layers and --batch. The update works on words of R output units and the "
        "stochastic rounding's draws follow it, so R also picks the reference's draw order",
    )
    t.add_argument(
        "--dsp-pairs",
        action="store_true",
        help="RTL: two PEs of a row share one multiplier (half the DSP48E1s; a 16x16 core fits the Nexys A7)",
    )
    t.add_argument("--waves", action="store_true", help="RTL: write a waveform of the run")
    t.add_argument("--json", action="store_true", help="print one JSON object")
    t.add_argument("--dump", metavar="DIR", help="write DIR/step0.npz: the first step's tensors")
    t.add_argument(
        "--plot",
        metavar="PNG",
        default="build/train_curves.png",
        help="loss and accuracy curves (default build/train_curves.png)",
    )
    t.set_defaults(func=_cmd_train)

    i = sub.add_parser("infer", help=_cmd_infer.__doc__)
    i.add_argument("model", metavar="MODEL.tflite", help="an int8 TFLite model")
    i.add_argument(
        "--engine",
        choices=["reference", "cfu", "gemm", "soc"],
        default="gemm",
        help="where FULLY_CONNECTED and CONV_2D run: reference (NumPy), cfu (MAC4/POST on the Cfu RTL), "
        "gemm (the GemmEngine RTL, default), soc (firmware on VexRiscv through the GEMM CFU); other ops run in NumPy",
    )
    i.add_argument("--inputs", metavar="X.npy", help="input rows (rows, *input shape without its batch axis)")
    i.add_argument("--quantize", action="store_true", help="quantize float --inputs with the input's scale")
    i.add_argument("--samples", type=_positive_int, default=None, help="random int8 rows (default 1)")
    i.add_argument("--seed", type=_seed, default=0, help="seed of --samples (NumPy's default_rng)")
    i.add_argument("--outputs", metavar="Y.npy", help="write the model's outputs, rows first (.npz for several)")
    i.add_argument(
        "--check",
        choices=["tflm", "none"],
        default=None,
        help="compare every op's output with TFLite Micro's interpreter (default: tflm when installed)",
    )
    _rtl_options(i)
    i.set_defaults(func=_cmd_infer)

    p_top = sub.add_parser("topology", help=_cmd_topology.__doc__)
    p_top.add_argument("topology", metavar="FILE.csv", help="SCALE-Sim GEMM topology: 'Layer, M, N, K,' rows")
    p_top.add_argument("--rows", type=_positive_int, default=8, help="array rows R (default 8)")
    p_top.add_argument("--cols", type=_positive_int, default=8, help="array columns C (default 8)")
    p_top.add_argument(
        "--rtl", action="store_true", help="run every layer's GEMM on the RTL; its cycles must equal the model's"
    )
    p_top.add_argument(
        "--jobs", type=_positive_int, default=None, help="--rtl: simulations at once (default: one per core)"
    )
    p_top.add_argument("--simulator", choices=SIMULATORS, default="verilator")
    p_top.add_argument("--json", action="store_true", help="print one JSON object")
    p_top.add_argument("--plot", metavar="PNG", help="cycles and utilization per layer, against SCALE-Sim's")
    p_top.set_defaults(func=_cmd_topology)

    v = sub.add_parser("verilog", help=_cmd_verilog.__doc__)
    v.add_argument(
        "--out",
        default="build",
        help="output folder (default: build): writes cfu_playground/, nexys_a7/, digits_mlp.tflite and "
        "digits_test.npy in it",
    )
    v.set_defaults(func=_cmd_verilog)

    y = sub.add_parser("synth", help=_cmd_synth.__doc__)
    y.add_argument(
        "--designs",
        nargs="+",
        choices=["cfu", "gemm_cfu", "gemm", "selftest", "train"],
        default=["cfu", "gemm_cfu", "gemm", "selftest", "train"],
        help="default: all (the training core alone takes yosys about 9 minutes)",
    )
    y.add_argument(
        "--arrays",
        nargs="+",
        default=None,
        help="array sizes, RxC: the engine's (default 4x4 8x8 16x16) and the training core's (square; default 8x8)",
    )
    y.add_argument(
        "--dsp-pairs",
        action="store_true",
        help="engines and training cores whose PEs share a multiplier two by two (INT8 packing)",
    )
    y.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    y.set_defaults(func=_cmd_synth)

    tm = sub.add_parser("timing", help=_cmd_timing.__doc__)
    tm.add_argument(
        "--designs",
        nargs="+",
        choices=TIMING_DESIGNS,
        default=list(TIMING_DEFAULT),
        help=f"default: {' '.join(TIMING_DEFAULT)}; name train to add the training core "
        "(about 20 minutes here: 3 of yosys, 14 of nextpnr, 3 of synth_xilinx), or its post unit "
        "(post) or loss unit (loss_unit) alone, in minutes",
    )
    tm.add_argument("--arrays", nargs="+", default=["8x8"], help="array sizes RxC of gemm and selftest (default 8x8)")
    tm.add_argument(
        "--device",
        choices=["85k", "25k"],
        default="85k",
        help="85k: LFE5UM-85F-8BG381 (default); 25k: LFE5U-25F-8MG285, the OrangeCrab's",
    )
    tm.add_argument("--seed", type=_seed_pnr, default=1, help="nextpnr's placer seed (default 1)")
    tm.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    tm.set_defaults(func=_cmd_timing)

    fm = sub.add_parser("formal", help=_cmd_formal.__doc__)
    fm.add_argument("--designs", nargs="+", choices=["cfu", "gemm_cfu", "gemm"], default=["cfu", "gemm_cfu", "gemm"])
    fm.add_argument(
        "--depth",
        type=_positive_int,
        default=None,
        help="BMC depth in cycles (default 20; the covers take at least 25/30)",
    )
    fm.add_argument("--out", default="build/formal", help="where the RTLIL, .sby and runs go (default build/formal)")
    fm.add_argument("--json", action="store_true", help="print the records as JSON (the lines go to stderr)")
    fm.set_defaults(func=_cmd_formal)
    from .coverage import DESIGNS as COVERAGE_DESIGNS

    cv = sub.add_parser("coverage", help=_cmd_coverage.__doc__)
    cv.add_argument(
        "--designs",
        nargs="+",
        choices=COVERAGE_DESIGNS,
        default=list(COVERAGE_DESIGNS),
        help=f"default: all ({' '.join(COVERAGE_DESIGNS)})",
    )
    cv.add_argument("--out", default="build/coverage", help="reports go to OUT/<design>/ (default build/coverage)")
    cv.add_argument("--json", action="store_true", help="print a JSON list of one record a design")
    cv.set_defaults(func=_cmd_coverage)

    mu = sub.add_parser("mutate", help=_cmd_mutate.__doc__)
    mu.add_argument("--design", choices=list(MUTATE_BENCHES), required=True)
    mu.add_argument("--count", type=_whole(1), default=40, help="mutants (default 40)")
    mu.add_argument(
        "--seed", type=_whole(0, " (yosys mutate's seed)"), default=1, help="yosys mutate -seed (default 1)"
    )
    mu.add_argument("--jobs", type=_positive_int, default=None, help="mutants at once (default: one per core)")
    mu.add_argument(
        "--json", action="store_true", help="print one JSON object (progress still on stderr if it is a terminal)"
    )
    mu.set_defaults(func=_cmd_mutate)

    b = sub.add_parser("bench", help=_cmd_bench.__doc__)
    b.add_argument("--simulators", nargs="+", choices=SIMULATORS, default=list(SIMULATORS))
    b.add_argument("--ops", type=_positive_int, default=20000, help="commands in the CFU's random stream")
    b.add_argument("--designs", nargs="+", choices=["cfu", "gemm"], default=["cfu", "gemm"])
    b.set_defaults(func=_cmd_bench)
    return p


def main(argv=None):
    parser = _parser()
    args = None
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            raise _UsageError(f"choose a command: {', '.join(parser._subparsers._group_actions[0].choices)}")
        args.func(args)
    except _UsageError as e:
        print(f"sim: error: {e}", file=sys.stderr)
        return 2
    except Mismatch as e:
        if getattr(args, "json", False):
            print(json.dumps(e.summary))
        if e.results.get("waves"):
            print(f"waves: {e.results['waves']}", file=sys.stderr)
        print(f"sim: error: {e}", file=sys.stderr)
        return 1
    except (SimulationError, ToolMissing) as e:
        print(f"sim: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("sim: interrupted", file=sys.stderr)
        return 130
    return 0
