"""A built-in self-test of the GEMM engine, for the board and for simulation."""

from .bist import GemmSelfTest

__all__ = ["GemmSelfTest"]
