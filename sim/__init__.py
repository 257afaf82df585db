"""Simulation: cocotb testbenches, their drivers, simulator runners and the
``python -m sim`` command line."""
