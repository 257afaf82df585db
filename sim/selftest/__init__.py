"""cocotb test of the GEMM self-test."""
