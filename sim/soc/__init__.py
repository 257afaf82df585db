"""VexRiscv co-simulation: firmware build and the cocotb test."""
