"""The weight-stationary systolic array and its GEMM engine."""

from .array import SystolicArray
from .engine import GemmEngine
from .signatures import GemmConfig, GemmCounters, Mode

__all__ = ["SystolicArray", "GemmEngine", "Mode", "GemmConfig", "GemmCounters"]
