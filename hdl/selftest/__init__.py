"""A built-in self-test of the GEMM engine, for the board and for simulation."""
from .bist import GemmSelfTest
from .vectors import default_vectors, expected_cycles, VECTOR_SEED

__all__ = ["GemmSelfTest", "default_vectors", "expected_cycles", "VECTOR_SEED"]
