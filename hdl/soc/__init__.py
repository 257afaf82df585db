"""A minimal SoC: VexRiscv (CFU Playground's CPU) with this project's CFU."""

from .soc import CfuSoc, vexriscv_verilog

__all__ = ["CfuSoc", "vexriscv_verilog"]
