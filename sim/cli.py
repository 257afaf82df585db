"""``python -m sim``: the project's command line.

Every bad argument or missing tool ends in one ``sim: error: ...`` line and a
non-zero exit, never a traceback.
"""
import argparse
import json
import sys
from pathlib import Path

from .runner import SIMULATORS, SimulationError, ToolMissing

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _UsageError(message)


class _UsageError(Exception):
    pass


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _cmd_cfu(args):
    """The int8 digits MLP through the CFU, checked bit-exactly against TFLM's kernel."""
    from .runner import run_cocotb
    from reference.digits import load_split

    n_test = len(load_split()[3])
    samples = n_test if args.samples is None else args.samples
    if samples > n_test:
        raise _UsageError(f"--samples: the digits test split has {n_test} images, not {samples}")
    results = run_cocotb("cfu", "sim.cfu.tb_cfu", simulator=args.simulator, testcase="mlp_workload",
                         env={"WORKLOAD_SAMPLES": str(samples)}, waves=args.waves, quiet=True)
    w = results["mlp_workload"]
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
    print(f"int8 MLP {'-'.join(str(l['in']) for l in w['layers'])}-{w['layers'][-1]['out']} on "
          f"{w['samples']} digits test images, run as CFU commands on {args.simulator}")
    for layer in w["layers"]:
        print(f"  layer {layer['layer']} ({layer['in']}->{layer['out']}): {layer['commands']} commands, "
              f"{layer['cycles']} cycles")
    print(f"  checked: every output equals TFLite Micro's int8 fully-connected kernel (reference/tflm.py): "
          f"{'bit-exact' if w['bit_exact'] else 'MISMATCH'}")
    print(f"  cycles: {w['cycles']} for {w['commands']} commands ({summary['ops_per_cycle']:.3f} ops/cycle)")
    print(f"  accuracy: int8 {100 * w['int8_accuracy']:.1f}% on these images; "
          f"float model {100 * summary['float_accuracy']:.1f}% on the whole test split")
    print(f"  simulation speed: {w['sim_cycles_per_second']:,.0f} cycles/s")
    if results.get("waves"):
        print(f"  waves: {results['waves']}")


def _cmd_verilog(args):
    """Verilog and C header for CFU Playground."""
    from hdl.cfu.kit import write_cfu_kit

    for path in write_cfu_kit(Path(args.out) / "cfu_playground"):
        print(path)


def _cmd_bench(args):
    """Measure ops/cycle and simulated cycles/s of the CFU on each simulator."""
    from .bench import bench_cfu

    print(json.dumps(bench_cfu(args.simulators, ops=args.ops), indent=1))


def _parser():
    p = _Parser(prog="python -m sim", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    c = sub.add_parser("cfu", help=_cmd_cfu.__doc__)
    c.add_argument("--simulator", choices=SIMULATORS, default="verilator")
    c.add_argument("--samples", type=_positive_int, default=None,
                   help="digits test images to classify (default: the whole 360-image test split)")
    c.add_argument("--waves", action="store_true", help="write a waveform (FST on Icarus, VCD on Verilator)")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(func=_cmd_cfu)

    v = sub.add_parser("verilog", help=_cmd_verilog.__doc__)
    v.add_argument("--out", default="build", help="output folder (default: build)")
    v.set_defaults(func=_cmd_verilog)

    b = sub.add_parser("bench", help=_cmd_bench.__doc__)
    b.add_argument("--simulators", nargs="+", choices=SIMULATORS, default=list(SIMULATORS))
    b.add_argument("--ops", type=_positive_int, default=20000, help="commands in the random stream")
    b.set_defaults(func=_cmd_bench)
    return p


def main(argv=None):
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            raise _UsageError(f"choose a command: {', '.join(parser._subparsers._group_actions[0].choices)}")
        args.func(args)
    except _UsageError as e:
        print(f"sim: error: {e}", file=sys.stderr)
        return 2
    except (SimulationError, ToolMissing) as e:
        print(f"sim: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("sim: interrupted", file=sys.stderr)
        return 130
    return 0
