"""The weight-stationary systolic array and its GEMM engine."""
from .array import SystolicArray
from .engine import GemmEngine

__all__ = ["SystolicArray", "GemmEngine"]
