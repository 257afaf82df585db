"""cocotb testbench of the GEMM engine: driver and tests."""
