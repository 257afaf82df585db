"""The weight-stationary systolic array and its GEMM engine."""
from .array import SystolicArray
from .engine import GemmEngine
from .signatures import Mode, GemmConfig, GemmCounters

__all__ = ["SystolicArray", "GemmEngine", "Mode", "GemmConfig", "GemmCounters"]
