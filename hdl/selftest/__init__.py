"""A built-in self-test of the GEMM engine, for the board and for simulation."""
from .bist import GemmSelfTest
from .vectors import default_vectors

__all__ = ["GemmSelfTest", "default_vectors"]
