"""The engines ``infer`` can run a model's accelerated layers on, described without
loading cocotb or Amaranth (the command line reads this before any simulation).

Every engine runs the layers :data:`reference.tflite_model.kernels.ACCELERATED`
lowers to a GEMM (FULLY_CONNECTED, CONV_2D through im2col); the other ops run
in the NumPy reference in every engine. An RTL engine is a cocotb test
(:mod:`sim.infer.tb_infer`) that builds its design once and runs the whole
model in one simulation: ``gemm(layer)`` coroutines in :mod:`sim.infer.rtl`.

Adding an engine: an :class:`EngineSpec` here, a class with ``start()`` and
``gemm(layer)`` in :mod:`sim.infer.rtl`. The ``soc`` engine is the exception: one
firmware image runs every layer in one simulation of the SoC (:mod:`sim.infer.soc`).
"""

from dataclasses import dataclass, field

from reference.cfu_gemm_isa import DEFAULT_GEOMETRY

__all__ = ["EngineSpec", "ENGINES", "EngineUnavailable", "engine_spec"]


class EngineUnavailable(RuntimeError):
    """The engine exists in the command line but cannot run here yet (one line)."""


@dataclass(frozen=True)
class EngineSpec:
    name: str
    what: str  # one line for the report
    design: str | None = None  # the RTL design built for it (sim.runner's name); None: NumPy only
    params: dict = field(default_factory=dict)  # the design's parameters
    macs_per_cycle: int | None = None  # the engine's peak, for utilization
    unavailable: str | None = None  # why it cannot run yet


#: The GEMM engine's geometry for ``infer``: 8x8, the default buffers (also ``python -m sim gemm``'s build).
GEMM_PARAMS = {"rows": 8, "cols": 8, "operand_depth": 1024, "result_depth": 512}

ENGINES = {
    "reference": EngineSpec("reference", "NumPy reference (TFLM's definitions)"),
    "cfu": EngineSpec("cfu", "MAC4/POST instructions through the Cfu RTL", design="cfu", macs_per_cycle=4),
    "gemm": EngineSpec(
        "gemm",
        "GemmEngine RTL (8x8 systolic array), output stage in NumPy",
        design="gemm",
        params=GEMM_PARAMS,
        macs_per_cycle=GEMM_PARAMS["rows"] * GEMM_PARAMS["cols"],
    ),
    "soc": EngineSpec(
        "soc",
        "firmware on VexRiscv through the GEMM CFU (fc_gemm.c), im2col on the host",
        design="soc",
        macs_per_cycle=DEFAULT_GEOMETRY.rows * DEFAULT_GEOMETRY.cols,
    ),
}


def engine_spec(name):
    spec = ENGINES.get(name)
    if spec is None:
        raise ValueError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
    if spec.unavailable:
        raise EngineUnavailable(spec.unavailable)
    return spec
