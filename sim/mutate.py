"""Mutation score: how many injected netlist faults the regression catches (MCY's method).

1. The design's Verilog (:mod:`hdl.generate`, as the benches build it, with Amaranth's source locations) is
   flattened by yosys (``prep; flatten``), and ``mutate -list N -seed S`` picks N mutations of its cells'
   port bits: a bit inverted (``inv``), tied to 0 or 1 (``const0``/``const1``), or XORed with another bit of
   the same port (``cnot0``/``cnot1``).
2. One netlist holds every mutant, each behind ``mutate -ctrl mutsel W i`` (mutsel 0 is the design as
   written). A wrapper module with the design's name and ports reads ``+mutsel=i`` at time zero, so the
   benches run unchanged and one Verilator build serves all mutants (build tag ``mutate-<design>...``).
3. Each mutant runs a focused part of the design's regression (:data:`BENCHES`), ``jobs`` at once, each
   bounded by a wall-clock timeout: it is *killed* if the bench reports a mismatch, fails or hangs.
4. A survivor whose netlist after ``opt_clean`` is the design's, byte for byte, is equivalent at once. Any
   other is tried for equivalence, from the power-on state over every input sequence: yosys makes a
   miter of the design and that one mutant (``miter -equiv``: one output, high when any output differs) as an
   AIGER model with the registers' initial values; ABC simulates it at random (``sim3``), then proves the
   output never rises (``scorr``, which
   merges the registers induction shows equal in both, then ``pdr``, an unbounded proof). ABC can also find
   the input sequence that shows the mutant (a hole in the bench). Where it gives no answer in time, yosys's
   own equivalence flow (``equiv_simple``, ``equiv_induct``: induction from any state where the pairs agree)
   is tried. Proved: *equivalent*. Otherwise it stays a survivor.

``score = killed / (mutants - equivalent)``.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from .coverage import TRAIN_TESTCASES
from .runner import build_tag, repo_root
from .synth import yosys_command

__all__ = [
    "BENCHES",
    "MutateError",
    "mutate",
    "list_mutations",
    "describe",
    "check_equivalent",
    "prove_by_miter",
    "structurally_identical",
]


class MutateError(RuntimeError):
    """The sweep could not be made (yosys failed, or the unmutated design fails its own bench)."""


@dataclass
class Bench:
    """What a mutant runs: the design's bench, parameters, test cases and environment."""

    design: str  #: hdl.generate's name
    test_module: str
    params: dict = field(default_factory=dict)
    testcases: list = field(default_factory=list)
    env: dict = field(default_factory=dict)
    timeout: float = 300.0  #: seconds of wall time a mutant may take before it counts as hung
    #: seconds for the miter and ABC's proof of one survivor; None: not tried (the design's memories, bit-blasted
    #: by ``memory_map``, make the miter too large: yosys alone ran over 300 s on gemm's at 256 words)
    miter_timeout: float | None = 300.0
    equiv_timeout: float = 300.0  #: seconds for yosys's equivalence flow, where the miter gave no answer
    note: str = ""


def _gemm_jobs():
    from .systolic.stimulus import job_list

    return json.dumps(job_list(4, 2, 6, seed=402))


def _train_config(momentum=0.0, loss="ce", activation="relu", lr=0.2):
    from .training.session import run_config

    cfg = run_config((64, 16, 10), 1, 8, lr, momentum, loss, 0, activation, max_steps=2)
    cfg.update(check="full", progress=False, dump=None)
    return json.dumps(cfg)


def _train_variant():
    """test_train_rtl's second variant: momentum, MSE and leaky ReLU."""
    return _train_config(momentum=0.875, loss="mse", activation="leaky", lr=0.05)


#: design -> its bench; functions fill in what needs an import.
BENCHES = {
    "cfu": Bench(
        "cfu",
        "sim.cfu.tb_cfu",
        testcases=[
            "reset_state",
            "reset_mid_flight",
            "corner_cases",
            "throughput_and_latency",
            "corners_stalled",
            "latency_with_gaps",
            "random_stream",
        ],
        env={"CFU_OPS": "3000", "STIMULUS_SEED": "1"},
        timeout=60,
        note="tb_cfu less the MLP workload: 3,000 random commands, resets, latencies, stalled corners",
    ),
    "gemm": Bench(
        "gemm",
        "sim.systolic.tb_gemm",
        params={"rows": 4, "cols": 2, "operand_depth": 256, "result_depth": 256},
        testcases=["gemm_jobs", "reset_between_gemms", "long_gemms"],
        env={"GEMM_JOBS": _gemm_jobs, "STIMULUS_SEED": "3"},
        timeout=60,
        miter_timeout=None,
        note="4x2 array (C < R: the weight-bank hazard binds): 19 GEMMs at random bases vs NumPy and the cycle "
        "model, resets; two GEMMs at M = 2^11 (M + R = 2^11 over three tiles, M = 2^11 over two): cycles and the "
        "wrapped result space; K = 258; one row over 33 and 152 tiles (32 and 151 weight stalls)",
    ),
    "gemm_cfu": Bench(
        "gemm_cfu",
        "sim.cfu.tb_gemm_cfu",
        params={"cols": 4, "operand_depth": 64, "result_depth": 64, "channels": 4},
        testcases=[
            "random_stream",
            "odd_shapes",
            "double_buffered",
            "control_ops",
            "reset_mid_gemm",
            "throughput",
            "corner_cases",
        ],
        env={"GEMM_CFU_OPS": "3000", "STIMULUS_SEED": "1"},
        timeout=120,
        miter_timeout=None,
        note="tb_gemm_cfu on an 8x4 engine with 64-word buffers and 4 channels (test_gemm_cfu_rtl's small "
        "geometry, where addresses wrap): 3,000 random commands mixing GEMMs and MAC4-family ops with gaps, "
        "back-pressure and resets; odd shapes read back as READ32 and READ8; double buffering; control ops "
        "and refusals; resets mid-GEMM, mid-transfer and in a wait; one instruction a cycle; corners",
    ),
    "loss_unit": Bench(
        "loss_unit",
        "sim.training.tb_loss_unit",
        params={"classes": 10, "lanes": 8},
        testcases=["loss_rows"],
        env={"LOSS_ROWS": "150"},
        timeout=60,
        note="10 classes, 8 lanes: 150 random rows back to back, both losses, gaps, back-pressure; 341 CE rows near a "
        "rounding step; 256 rows at the divider's thresholds; 60 rows outside the contract, with the unit's "
        "defined answer",
    ),
    "train": Bench(
        "train",
        "sim.training.tb_train",
        params={"rows": 4},
        testcases=["train_run", "train_variant", *TRAIN_TESTCASES],  # the regression's tb_train tests
        # reset_mid_step resets halfway through the last UPDATE that runs behind a GEMM (from the schedule).
        env={"TRAIN_CONFIG": _train_config, "TRAIN_VARIANT": _train_variant},
        timeout=60,
        miter_timeout=None,
        # Each round of yosys's flow takes about 3 minutes on the core (its cone of 20,000 paired wires).
        equiv_timeout=900,
        note="rows 4: 2 steps of 64-16-10 batch 8, every kept tensor checked, cycles, GEMM cycles and active rows "
        "against the models, counters hold while idle, then 2 more with momentum, MSE and leaky ReLU; bad ops; "
        "reset mid-step; LOSS over the divider's threshold rows at 10 and 16 classes and MSE rows at 16; GEMMs "
        "of N = 600 in each mode, of K = 400, a tn GEMM whose B wraps the operand space, and with odd active-row "
        "counts in each phase; FWD and DX at shifts 0 to 31; post-ops behind a GEMM that ends first and last; "
        "a FWD by column behind the GEMM that reads it, and behind a LOSS over its y; FWD, DX and UPDATE "
        "lanes past N over random masters and momenta",
    ),
}


def _params(bench):
    if bench.design == "train":
        from hdl.training.program import CoreGeometry

        return CoreGeometry(**bench.params).params
    return dict(bench.params)


def _env(bench):
    return {k: v() if callable(v) else v for k, v in bench.env.items()}


def _yosys(script, cwd, log):
    yosys = yosys_command()
    r = subprocess.run([yosys, "-q", "-l", log, "-s", script], cwd=cwd, capture_output=True, text=True)
    if r.returncode:
        raise MutateError(f"yosys failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]} (log: {cwd / log})")


def _source_verilog(design, params):
    """The design's Verilog as hdl.generate makes it, but with Amaranth's source locations (``src``)."""
    from amaranth.back import verilog

    from hdl import generate

    where, cls = generate.DESIGNS[design]
    module = generate._MODULE_NAMES.get(design, cls)
    import importlib

    build = generate._FACTORIES.get(design) or getattr(importlib.import_module(where), cls)
    return module, verilog.convert(build(**params), name=module, emit_src=True)


def work_dir(bench, count, seed):
    """``build/mutate/<design and parameters>/s<seed>-n<count>``: one sweep's netlists, lists and proofs."""
    return repo_root() / "build" / "mutate" / build_tag(bench.design, _params(bench)) / f"s{seed}-n{count}"


def list_mutations(bench, count, seed):
    """Flatten the design (``design.il`` in the work directory) and return ``(top, mutation lines)``."""
    work = work_dir(bench, count, seed)
    work.mkdir(parents=True, exist_ok=True)
    top, text = _source_verilog(bench.design, _params(bench))
    (work / "design.v").write_text(text)
    # The mutations are of the flattened netlist; design.il is what the miters read too.
    (work / "list.ys").write_text(
        f"read_verilog design.v\nprep -top {top}\nflatten\nopt_clean\nwrite_rtlil design.il\n"
        f"mutate -list {count} -seed {seed} -cfg pick_cover_prcnt 80 -o mutations.txt\n"
    )
    _yosys("list.ys", work, "list.log")
    lines = [ln.strip() for ln in (work / "mutations.txt").read_text().splitlines() if ln.strip()]
    return top, lines


def _fields(line):
    """``mutate -mode inv -module M ...`` -> {"mode": "inv", "module": "M", ...} (``src`` a list)."""
    words = line.split()[1:]
    out = {"src": []}
    for k, v in zip(words[::2], words[1::2]):
        if k == "-src":
            out["src"].append(v)
        else:
            out[k.lstrip("-")] = v
    return out


def _sources(line):
    """The Amaranth source lines (``hdl/...py:N``) yosys kept for a mutation's cell."""
    root = str(repo_root()) + os.sep
    return [re.sub(r"\.\d+-\d+\.\d+$", "", s.replace(root, "")) for s in _fields(line)["src"] if ".py:" in s]


def describe(line, common=()):
    """A mutation in a line: mode, the wire bit it hits, and where in the Amaranth source (less the
    ``common`` lines, such as a submodule's instantiation, that flattening adds to most cells)."""
    f = _fields(line)
    src = [s for s in _sources(line) if s not in common]
    wire = f"{f['wire']}[{f['wirebit']}]" if "wire" in f else f"{f['cell']}.{f['port']}[{f['portbit']}]"
    ctrl = f" with bit {f['ctrlbit']}" if "ctrlbit" in f else ""
    return f"{f['mode']}{ctrl} {wire} ({', '.join(dict.fromkeys(src)) or 'no source location'})"


def _apply_args(line):
    """The yosys arguments that apply a listed mutation (``-wire``/``-src`` only document it)."""
    f = _fields(line)
    keys = ("mode", "module", "cell", "port", "portbit", "ctrlbit")
    return " ".join(f"-{k} {f[k]}" for k in keys if k in f)


def _ports(verilog, module):
    """The ports of ``module`` in yosys's Verilog: [(direction, range or '', name)]."""
    body = re.search(rf"^module {re.escape(module)}\((.*?)\);(.*?)^endmodule", verilog, re.S | re.M)
    names = [p.strip() for p in body.group(1).split(",")]
    decl = dict(
        (m.group(3), (m.group(1), m.group(2) or ""))
        for m in re.finditer(r"^\s*(input|output)\s+(\[[^\]]+\]\s*)?(\S+)\s*;", body.group(2), re.M)
    )
    return [(decl[n][0], decl[n][1].strip(), n) for n in names]


def build_mutants(work, top, lines):
    """Write ``mutants.v`` in ``work``: every mutation behind ``mutsel`` (1..N), and a wrapper ``top``
    reading ``+mutsel``."""
    width = max(1, len(lines).bit_length())
    script = ["read_rtlil design.il"]
    script += [f"mutate -ctrl mutsel {width} {i} {_apply_args(ln)}" for i, ln in enumerate(lines, 1)]
    script += [f"rename {top} {top}_mutants", "opt_clean", "write_verilog -noattr netlist.v"]
    (work / "mutants.ys").write_text("\n".join(script) + "\n")
    _yosys("mutants.ys", work, "mutants.log")
    netlist = (work / "netlist.v").read_text()
    ports = [p for p in _ports(netlist, f"{top}_mutants") if p[2] != "mutsel"]
    wrapper = [f"module {top}({', '.join(n for _, _, n in ports)});"]
    wrapper += [f"  {d} {r + ' ' if r else ''}{n};" for d, r, n in ports]
    wrapper += [
        f"  reg [{width - 1}:0] mutsel = 0;",
        '  initial if (!$value$plusargs("mutsel=%d", mutsel)) mutsel = 0;',
        f"  {top}_mutants mutants ({', '.join(f'.{n}({n})' for _, _, n in ports)}, .mutsel(mutsel));",
        "endmodule",
    ]
    path = work / "mutants.v"
    # yosys's netlist trips Verilator lints the generated Verilog does not (overlapping casez of $pmux,
    # bit-level loops through vectors): waived here, for this file only.
    head = "".join(f"/* verilator lint_off {w} */\n" for w in ("CASEOVERLAP", "UNOPTFLAT", "CASEINCOMPLETE", "WIDTH"))
    wrapper.insert(0, "\n// The design's ports; +mutsel=i picks mutant i (0: none).")
    path.write_text(head + netlist + "\n".join(wrapper) + "\n")
    return path


def _tag(bench, verilog):
    """The sweep's own build (``mutate-<design and parameters>-s<seed>-n<count>``), apart from the benches'."""
    return f"mutate-{build_tag(bench.design, _params(bench))}-{Path(verilog).parent.name}"


def _train_timing(results, bench, env):
    """What tests/test_train_rtl.py checks beside the bench: each phase's GEMM cycles equal the engine's
    cycle model, its active rows M per tile of each GEMM (docs/systolic.md), and a step's cycles
    docs/training.md's timing; for ``train_run`` and, when it ran, ``train_variant``. None, or what differs."""
    runs = [(results, env["TRAIN_CONFIG"])]
    if "TRAIN_VARIANT" in env:
        runs.append((results.get("variant", {}), env["TRAIN_VARIANT"]))
    for figures, config in runs:
        differs = _train_run_timing(figures, bench, json.loads(config))
        if differs:
            return differs
    return None


def _train_run_timing(results, bench, cfg):
    from hdl.training.program import CoreGeometry, plan_step

    from .training.session import timing_differs

    kw = dict(loss=cfg["loss"], activation=cfg["activation"], momentum=cfg["momentum"])
    return timing_differs(results, plan_step(cfg["layers"], cfg["batch"], CoreGeometry(**_params(bench)), **kw))


#: design -> a check of the results dict beyond the bench's own asserts (as the design's pytest does).
RESULT_CHECKS = {"train": _train_timing}


def run_mutant(bench, verilog, index, env):
    """Run ``bench`` on mutant ``index`` in this process: ``{"outcome": "passed" | "failed", "detail"}``."""
    from .runner import SimulationError, run_cocotb

    try:
        results = run_cocotb(
            bench.design,
            bench.test_module,
            simulator="verilator",
            params=_params(bench),
            testcase=bench.testcases,
            env=env,
            quiet=True,
            tag=_tag(bench, verilog),
            verilog=verilog,
            plusargs=[f"+mutsel={index}"],
        )
    except SimulationError as e:  # Mismatch included
        return {"outcome": "failed", "detail": str(e).splitlines()[0][:300]}
    check = RESULT_CHECKS.get(bench.design)
    differs = check(results, bench, env) if check else None
    if differs:
        return {"outcome": "failed", "detail": differs[:300]}
    return {"outcome": "passed", "detail": ""}


def _worker():
    """``python -c 'from sim.mutate import _worker; _worker()'``: one mutant, JSON in on stdin and out on stdout."""
    job = json.loads(sys.stdin.read())
    result = run_mutant(BENCHES[job["design"]], job["verilog"], job["index"], job["env"])
    print("\n" + json.dumps(result))


def _run_in_subprocess(bench, verilog, index, env, timeout):
    """One mutant in a child process of its own session, killed (and counted as hung) after ``timeout`` s."""
    job = json.dumps({"design": bench.design, "verilog": str(verilog), "index": index, "env": env})
    start = time.perf_counter()
    p = subprocess.Popen(
        [sys.executable, "-c", "from sim.mutate import _worker; _worker()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=repo_root(),
        start_new_session=True,
    )
    try:
        out, err = p.communicate(job, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        return {"outcome": "hung", "detail": f"no end within {timeout:.0f} s", "seconds": timeout}
    except BaseException:  # interrupted: the child runs in a session of its own, so end it here
        os.killpg(p.pid, signal.SIGKILL)
        raise
    seconds = time.perf_counter() - start
    try:
        result = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = (err or out).strip().splitlines()[-1:] or ["no output"]
        result = {"outcome": "failed", "detail": f"the bench process died: {tail[0][:300]}"}
    result["seconds"] = round(seconds, 1)
    return result


def _gold_and_gate(top, line, cut_memories=False):
    """yosys commands: the design as module ``gold`` and, mutated by ``line``, as module ``gate``; with
    ``cut_memories``, both without their memories (:data:`CUT_MEMORIES`)."""
    args = _apply_args(line).replace(f"-module {_fields(line)['module']}", "-module gate")
    return [
        "read_rtlil design.il",
        *([NAME_MEMORY_PORTS] if cut_memories else []),
        f"copy {top} gate",
        f"rename {top} gold",
        f"mutate {args}",
        *(CUT_MEMORIES if cut_memories else []),
        "opt_clean",
    ]


#: yosys commands that cut the memories out of both versions (``equiv_make`` takes no memories: yosys 0.23 stops
#: on an assertion, ``packed_memids``, and after ``memory_unpack`` refuses them). Each read port's data becomes an
#: input, the same one in both versions, and the signals into every port (addresses, enables, write data) become
#: outputs, which the flow must prove equal. That is sound: if the outputs and every port's inputs agree whatever
#: the memories return, then with real memories, written alike and read at the same addresses, they agree too.
#: It is an over-approximation, so a proof that needs the memories' contents fails rather than passes.
#: ``expose`` passes over private (``$``) names, and a port's wire left undriven would read as undefined, which
#: ``equiv_simple`` takes as "any value": a vacuous proof. So the ports' wires get public names first
#: (:data:`NAME_MEMORY_PORTS`, in the design before it is copied, so that both versions share them).
MEMORY_PORTS = "t:$mem_v2 %x:+[RD_DATA,RD_ADDR,RD_EN,RD_ARST,RD_SRST,WR_ADDR,WR_DATA,WR_EN] t:$mem_v2 %d"
NAME_MEMORY_PORTS = f"rename -enumerate -pattern memory_port_% {MEMORY_PORTS}"
CUT_MEMORIES = [
    "expose -input t:$mem_v2 %x:+[RD_DATA] t:$mem_v2 %d",
    "expose t:$mem_v2 %x:+[RD_ADDR,RD_EN,RD_ARST,RD_SRST,WR_ADDR,WR_DATA,WR_EN] t:$mem_v2 %d",
    "delete t:$mem_v2",
]


def _equiv_script(top, line, blacklist):
    return "\n".join(
        [
            *_gold_and_gate(top, line, cut_memories=True),
            f"equiv_make -blacklist {blacklist} gold gate equiv",
            "hierarchy -top equiv",
            # Merges the cells the two versions share (same type, inputs already paired): their outputs are
            # then equal by construction, and the SAT proofs below are left the mutation's cone, without which
            # they ran over 9 minutes on the training core's multipliers.
            "equiv_struct",
            "equiv_simple -seq 2",
            "equiv_induct -seq 2",
            "equiv_status",
        ]
    )


def _top_ports(il):
    return set(re.findall(r"^\s*wire .*\b(?:input|output|inout) \d+ \\?(\S+)$", il, re.M))


#: ABC on the miter: first random simulation from power-on (``sim3``: 20 rounds of 64 cycles, seed 1: a concrete input
#: sequence, found in milliseconds where the mutant shows easily), then merge the registers induction shows equal
#: in both copies and prove the one output is never 1 (PDR). ABC prints "Property proved" or "Output 0 of miter
#: ... was asserted in frame N".
ABC_SEARCH = "read_aiger {aig}; strash; sim3 -F 64 -W 16 -R 20 -N 1 -T 20"
ABC_SCRIPT = "read_aiger {aig}; strash; scorr; dc2; pdr"


def _miter_script(top, line, aig):
    return "\n".join(
        [
            *_gold_and_gate(top, line),
            # trigger = any output of gold and gate differs; the inputs (reset and clock too) are shared and free
            "miter -equiv -flatten gold gate miter",
            "hierarchy -top miter",
            "memory_map",
            "opt -fast",
            "techmap",
            "opt -fast",
            "async2sync",
            "dffunmap",
            "setundef -undriven -anyseq",
            "aigmap",
            "opt_clean",
            # -zinit: registers start at their initial (reset) values, as in simulation
            f"write_aiger -zinit {aig}",
        ]
    )


def _normalized(work, name, mutation=None, timeout=300):
    """The design (or, with ``mutation``, one mutant of it) as RTLIL after ``opt_clean -purge``, without source
    attributes and with every private name enumerated: two texts are equal only if the netlists are."""
    script = ["read_rtlil design.il", *([f"mutate {mutation}"] if mutation else [])]
    script += ["opt_clean -purge", "setattr -unset src", "setattr -mod -unset src", "rename -enumerate"]
    script += [f"write_rtlil {name}.il"]
    (work / f"{name}.ys").write_text("\n".join(script) + "\n")
    subprocess.run([yosys_command(), "-q", "-s", f"{name}.ys"], cwd=work, capture_output=True, timeout=timeout)
    path = work / f"{name}.il"
    text = path.read_text() if path.exists() else None
    path.unlink(missing_ok=True)
    return None if text is None else re.sub(r"^autoidx \d+\n", "", text, flags=re.M)


def structurally_identical(work, index, line):
    """Whether mutant ``index`` is the design's own netlist once yosys drops what drives nothing (``opt_clean``):
    a mutation that ties a bit to the constant it has already, or changes logic nothing reads. Sound and
    quick; it proves only those."""
    import hashlib

    work = work / "struct"
    work.mkdir(exist_ok=True)
    shutil.copy(work.parent / "design.il", work / "design.il")
    # The design's normalized netlist, once per design text (a sweep after an RTL change has a new one).
    norm = work / f"design-{hashlib.sha256((work / 'design.il').read_bytes()).hexdigest()[:16]}.norm"
    if not norm.exists():
        gold = _normalized(work, "gold")
        if gold is None:
            return False
        norm.write_text(gold)
    try:
        gate = _normalized(work, f"m{index}", _apply_args(line))
    except subprocess.TimeoutExpired:
        return False
    return gate is not None and gate == norm.read_text()


def prove_by_miter(work, top, index, line, timeout=300):
    """Mutant ``index`` against the design from power-on, for every input sequence: ``True`` (ABC proves no
    output ever differs), ``(False, frame)`` (ABC finds an input sequence on which an output differs in that
    cycle: not equivalent), or why there is no answer (a string)."""
    abc = shutil.which("yosys-abc")
    if abc is None:
        return "not tried: yosys-abc is missing (Debian's yosys package: run `make install`)"
    work = work / "miter"
    work.mkdir(exist_ok=True)
    if (
        not (work / "design.il").exists()
        or (work / "design.il").read_bytes() != (work.parent / "design.il").read_bytes()
    ):
        shutil.copy(work.parent / "design.il", work / "design.il")
    aig = f"m{index}.aig"
    (work / f"m{index}.ys").write_text(_miter_script(top, line, aig) + "\n")
    deadline = time.perf_counter() + timeout
    try:
        r = subprocess.run(
            [yosys_command(), "-q", "-l", f"m{index}.log", "-s", f"m{index}.ys"],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if r.returncode:
            return f"not tried: yosys could not make the miter (log: {work / f'm{index}.log'})"
        log = ""
        for script in (ABC_SEARCH, ABC_SCRIPT):
            r = subprocess.run(
                [abc, "-c", script.format(aig=aig)],
                cwd=work,
                capture_output=True,
                text=True,
                timeout=max(1.0, deadline - time.perf_counter()),
            )
            log += r.stdout + r.stderr
            if re.search(r"was asserted in frame", r.stdout):
                break
    except subprocess.TimeoutExpired:
        return f"not proved: the miter and ABC gave no answer in {timeout} s"
    (work / f"m{index}.abc.log").write_text(log)
    cex = re.search(r"was asserted in frame (\d+)", log)
    if re.search(r"^Property proved", log, re.M) and not cex:
        return True
    if cex:
        return False, int(cex.group(1))
    return f"not proved (ABC: see {work / f'm{index}.abc.log'})"


def check_equivalent(work, top, index, line, rounds=6, timeout=120):
    """Whether yosys proves mutant ``index`` equivalent to the design: True, or why not (a string).

    yosys's equivalence flow (``equiv_make``, ``equiv_simple``, ``equiv_induct``, ``equiv_status``) pairs the
    design's and the mutant's wires by name and proves each pair equal, assuming the others (induction over
    time for registers). The proof is sound only if every pair is proved. A wire the mutation changes by
    construction cannot be: it is unpaired (``-blacklist``), so that the pairs after it must be proved from
    both versions, and the flow runs again; up to ``rounds`` times, or until an unproved pair is an output.

    The memories are cut out first (:data:`CUT_MEMORIES`): the signals into their ports count as outputs,
    never unpaired. A mutation of a memory's own port is not tried (its changed signal would be cut away).
    """
    design = work / "design.il"
    work = work / "equiv"
    work.mkdir(exist_ok=True)
    text = design.read_text()
    if not (work / "design.il").exists() or (work / "design.il").read_text() != text:
        shutil.copy(design, work / "design.il")
    cell = re.escape(_fields(line)["cell"].lstrip("\\"))
    if re.search(rf"^\s*cell \$mem_v2 \\?{cell}$", text, re.M):
        return "not tried: the mutation is on a memory's own port"
    ports = _top_ports(text)
    unpaired = []
    deadline = time.perf_counter() + timeout
    for _ in range(rounds):
        (work / f"m{index}.blacklist").write_text("".join(n + "\n" for n in unpaired))
        (work / f"m{index}.ys").write_text(_equiv_script(top, line, f"m{index}.blacklist") + "\n")
        try:
            subprocess.run(
                [yosys_command(), "-q", "-l", f"m{index}.log", "-s", f"m{index}.ys"],
                cwd=work,
                capture_output=True,
                timeout=max(1.0, deadline - time.perf_counter()),
            )
        except subprocess.TimeoutExpired:
            return f"not proved: yosys's equivalence flow gave no answer in {timeout} s"
        log = (work / f"m{index}.log").read_text()
        ports |= set(re.findall(r"^New module port: gold/(\S+)$", log, re.M))  # the memories' ports
        if "Equivalence successfully proven!" in log:
            return True
        # "Unproven $equiv <cell>: \\wire_gold [bit] \\wire_gate [bit]"
        names = re.findall(r"Unproven \$equiv \S+: \\?(\S+?)_gold\b", log)
        error = re.search(r"^ERROR: (.*)$", log, re.M)
        if error:  # e.g. yosys 0.23's equiv_make on the training core's memories
            return f"not tried: yosys failed ({error.group(1)[:120]}; log: {work / f'm{index}.log'})"
        if not names:
            return f"not proved (yosys: see {work / f'm{index}.log'})"
        outputs = sorted(set(names) & ports)
        if outputs:
            return f"not proved: the mutated value reaches output {', '.join(outputs)} with no proof it never differs"
        fresh = [n for n in dict.fromkeys(names) if n not in unpaired]
        if not fresh:
            return f"not proved (yosys: see {work / f'm{index}.log'})"
        unpaired += fresh
    return f"not proved: still unproved wires after {rounds} rounds ({', '.join(unpaired[-3:])}...)"


def mutate(design, count=40, seed=1, jobs=None, progress=True):
    """Run the sweep; return the record ``python -m sim mutate --json`` prints, and the per-mutant table."""
    if design not in BENCHES:
        raise ValueError(f"unknown design {design!r}; choose one of {', '.join(BENCHES)}")
    from .runner import ensure_simulator

    ensure_simulator("verilator")
    bench = BENCHES[design]
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if progress else (lambda *a: None)
    t0 = time.perf_counter()
    top, lines = list_mutations(bench, count, seed)
    counts = {}
    for ln in lines:
        for s in set(_sources(ln)):
            counts[s] = counts.get(s, 0) + 1
    common = {s for s, n in counts.items() if n > len(lines) / 2}
    work = work_dir(bench, count, seed)
    verilog = build_mutants(work, top, lines)
    env = _env(bench)
    say(f"mutate {design}: {len(lines)} mutants of {top} (seed {seed}); building and running the original...")
    # mutsel 0 first: it builds the model once (the runs below only share it) and must pass.
    base = _run_in_subprocess(bench, verilog, 0, env, max(bench.timeout, 1800))
    if base["outcome"] != "passed":
        raise MutateError(f"{design}: the unmutated netlist (mutsel=0) fails its bench: {base['detail']}")
    say(f"mutate {design}: original passes in {base['seconds']} s; running {len(lines)} mutants")
    workers = max(1, min(jobs or os.cpu_count() or 1, len(lines)))
    rows = [None] * len(lines)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {
            pool.submit(_run_in_subprocess, bench, verilog, i + 1, env, bench.timeout): i for i in range(len(lines))
        }
        for n, fut in enumerate(as_completed(futures), 1):
            i = futures[fut]
            r = fut.result()
            rows[i] = {"index": i + 1, "mutation": describe(lines[i], common), **r}
            say(f"  [{n}/{len(lines)}] mutant {i + 1}: {r['outcome']} ({r.get('seconds')} s) {rows[i]['mutation']}")
    for row, line in zip(rows, lines):
        if row["outcome"] == "passed":
            if structurally_identical(work, row["index"], line):
                proof = "same"
            elif bench.miter_timeout is None:
                proof = "not tried (the design's memories)"
            else:
                proof = prove_by_miter(work, top, row["index"], line, timeout=bench.miter_timeout)
            if proof == "same":
                proof, row["why"] = True, "the design's own netlist once yosys drops what drives nothing (opt_clean)"
            elif proof is True:
                row["why"] = "ABC proves no output can differ, from power-on (miter: scorr, pdr)"
            elif isinstance(proof, tuple):
                row["why"] = (
                    f"not equivalent: ABC finds inputs from power-on on which an output differs in cycle {proof[1]}"
                )
            else:
                miter = proof
                proof = check_equivalent(work, top, row["index"], line, timeout=bench.equiv_timeout)
                row["why"] = (
                    "yosys proves no output can differ (equiv_simple, equiv_induct)"
                    if proof is True
                    else f"{proof}; miter: {miter}"
                )
            row["status"] = "equivalent" if proof is True else "survived"
            say(f"  mutant {row['index']} survived the bench; yosys: {row['why']}")
        else:
            row["status"] = "killed"
    killed = sum(r["status"] == "killed" for r in rows)
    equivalent = sum(r["status"] == "equivalent" for r in rows)
    survived = len(rows) - killed - equivalent
    record = {
        "design": design,
        "mutants": len(rows),
        "killed": killed,
        "survived": survived,
        "equivalent": equivalent,
        "score": killed / (len(rows) - equivalent) if len(rows) > equivalent else None,
        "survivors": [f"#{r['index']} {r['mutation']}: {r['why']}" for r in rows if r["status"] == "survived"],
        "seed": seed,
    }
    (work / "report.json").write_text(
        json.dumps({**record, "bench": bench.note, "seconds": time.perf_counter() - t0, "rows": rows}, indent=1)
    )
    shutil.rmtree(repo_root() / "build" / "sim" / _tag(bench, verilog) / "verilator" / "runs", ignore_errors=True)
    return record, rows
