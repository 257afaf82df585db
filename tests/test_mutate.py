"""``python -m sim mutate``: yosys mutants of a design's netlist against a part of its regression.

The fast tests check the command line and a three-mutant run on the CFU (the unmutated netlist,
mutsel 0, must pass its bench, or the run stops; two of the three are known to change a response).
The sweeps of every design (40 mutants, score at least 95%) are in ``make regress`` and ``make mutate``.
"""

import json

import pytest

from sim.cli import main
from sim.mutate import BENCHES, describe, prove_by_miter, structurally_identical

KEYS = {"design", "mutants", "killed", "survived", "equivalent", "score", "survivors", "seed"}


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--design", "soc"],
        ["--design", "cfu", "--count", "0"],
        ["--design", "cfu", "--count", "many"],
        ["--design", "cfu", "--seed", "-1"],
        ["--design", "cfu", "--jobs", "0"],
    ],
)
def test_mutate_bad_arguments(argv, capsys):
    assert main(["mutate", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sim: error: ")


def test_describe():
    line = (
        r"mutate -mode inv -module Cfu -cell $flatten\core.$add$x -port Y -portbit 3 -wire core.post_x "
        r"-wirebit 3 -src /nowhere/design.v:1.2-3.4 -src hdl/cfu/core.py:188.1-188.9"
    )
    assert describe(line) == "inv core.post_x[3] (hdl/cfu/core.py:188)"


# r accumulates a; y shows only r's two low bits. An adder's carries run upward, so a fault in bit 2 or 3
# of r, a or the sum never reaches y (equivalent), and one in bit 0 or 1 does, a cycle or two after power-on.
TOY = """module toy(input clk, input rst, input [3:0] a, output [1:0] y);
  reg [3:0] r = 4'd5;
  always @(posedge clk) if (rst) r <= 4'd5; else r <= r + a;
  assign y = r[1:0];
endmodule
"""


def _toy_mutations(work, top, verilog, count, seed):
    """``verilog`` (module ``top``) as the sweep prepares a design (``design.il`` in ``work``), and
    ``count`` mutations of it drawn by yosys's ``mutate -list``."""
    import subprocess

    from sim.synth import yosys_command

    (work / f"{top}.v").write_text(verilog)
    script = f"read_verilog {top}.v\nprep -top {top}\nflatten\nopt_clean\nwrite_rtlil design.il\n"
    script += f"mutate -list {count} -seed {seed} -o mutations.txt\n"
    subprocess.run([yosys_command(), "-q", "-p", script], cwd=work, check=True)
    return [ln for ln in (work / "mutations.txt").read_text().splitlines() if ln.strip()]


def test_equivalence_checks_tell_equivalent_from_observable(tmp_path):
    from sim.mutate import _fields

    lines = _toy_mutations(tmp_path, "toy", TOY, 40, 3)
    seen = {True: 0, False: 0}
    same = 0
    for i, line in enumerate(lines, 1):
        f = _fields(line)
        if structurally_identical(tmp_path, i, line):  # e.g. const1 on a bit of the reset value 5 that is 1
            same += 1
            assert prove_by_miter(tmp_path, "toy", i, line, timeout=60) is True, line
        if f["port"] not in ("A", "B", "Y", "D", "Q") or "$procmux" in f["cell"]:
            continue  # the clock, the reset and the reset value (a constant: const1 on a 1 changes nothing)
        observable = int(f["portbit"]) < 2
        proof = prove_by_miter(tmp_path, "toy", i, line, timeout=60)
        if observable:
            assert not structurally_identical(tmp_path, i, line), line
            assert isinstance(proof, tuple) and proof[0] is False and proof[1] >= 0, (line, proof)
        else:
            assert proof is True, (line, proof)
        seen[observable] += 1
    assert seen[True] >= 3 and seen[False] >= 3 and same >= 1, (seen, same)


# TOY with a memory: r accumulates a word read from it. yosys's equivalence flow cuts the memory out (its read
# data an input shared by both versions, the signals into its ports outputs), so a fault that changes what is
# written or read must never be proved equivalent, and one in bits 2 or 3 of the adder still is.
TOY_MEMORY = """module toymem(input clk, input rst, input we, input [2:0] wa, input [3:0] wd, input [2:0] ra,
                   output [1:0] y);
  reg [3:0] mem [0:7];
  reg [3:0] r = 4'd5;
  always @(posedge clk) begin
    if (we) mem[wa] <= wd;
    if (rst) r <= 4'd5; else r <= r + mem[ra];
  end
  assign y = r[1:0];
endmodule
"""


def test_equivalence_flow_with_a_memory(tmp_path):
    from sim.mutate import _fields, check_equivalent

    lines = _toy_mutations(tmp_path, "toymem", TOY_MEMORY, 60, 5)
    assert "$mem_v2" in (tmp_path / "design.il").read_text()
    seen = {"adder, high": 0, "adder, low": 0, "memory": 0}
    for i, line in enumerate(lines, 1):
        f = _fields(line)
        cell, bit = f["cell"], int(f["portbit"])
        if "$add" in cell and f["port"] in ("A", "B", "Y"):
            kind = "adder, high" if bit >= 2 else "adder, low"
        elif "mem" in cell or f.get("wire", "") in ("wa", "wd", "ra", "we"):
            kind = "memory"  # a memory's own port, or a signal into one
        else:
            continue
        proof = check_equivalent(tmp_path, "toymem", i, line, timeout=60)
        if kind == "adder, high":
            assert proof is True, (line, proof)
        else:
            assert proof is not True, (line, proof)
        seen[kind] += 1
    assert min(seen.values()) >= 2, seen


def test_mutate_cfu_small(capsys, report):
    assert main(["mutate", "--design", "cfu", "--count", "3", "--seed", "1", "--jobs", "1", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert set(record) == KEYS
    assert record["design"] == "cfu" and record["mutants"] == 3 and record["seed"] == 1
    assert record["killed"] + record["survived"] + record["equivalent"] == 3
    # Seed 1's first two mutants flip bits of POST's and RDBPOT's datapath: the bench must see them.
    assert record["killed"] >= 2
    assert len(record["survivors"]) == record["survived"]
    report(f"mutate cfu, 3 mutants (seed 1): {record['killed']} killed, score {record['score']:.2f}")


# Below the target today (docs/verification.md lists their survivors): strict, so that closing
# the gaps turns the xfail into a failure that asks for this list to shrink.
BELOW_TARGET = {"train", "gemm_cfu"}


@pytest.mark.regress
@pytest.mark.parametrize(
    "design",
    [
        pytest.param(d, marks=pytest.mark.xfail(strict=True, reason="below 95%: survivors in docs/verification.md"))
        if d in BELOW_TARGET
        else d
        for d in BENCHES
    ],
)
def test_mutation_score(design, report):
    """The issue's target: at least 40 mutants, at least 95% of the non-equivalent ones killed."""
    from sim.mutate import mutate

    record, _ = mutate(design, count=40, seed=1, progress=False)
    assert record["mutants"] >= 40
    assert record["score"] >= 0.95, record["survivors"]
    report(
        f"mutate {design}: {record['mutants']} mutants, {record['killed']} killed, {record['equivalent']} "
        f"equivalent, score {100 * record['score']:.1f}%"
    )


@pytest.mark.parametrize("tty", [False, True], ids=["piped", "terminal"])
def test_mutate_json_shows_progress_on_a_terminal_only(monkeypatch, capsys, tty):
    """``sim mutate --json`` keeps stdout for the JSON; its progress goes to stderr when that is a terminal."""
    import sys

    import sim.mutate

    asked = []

    def fake(design, count, seed, jobs, progress):
        asked.append(progress)
        return {"design": design, "mutants": 0, "killed": 0, "survived": 0, "equivalent": 0}, []

    monkeypatch.setattr(sim.mutate, "mutate", fake)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty)
    assert main(["mutate", "--design", "cfu", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["design"] == "cfu"
    assert asked == [tty]
