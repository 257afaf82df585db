"""The CFU-Playground units: the SIMD int8 MAC (``Cfu``) and the GEMM CFU (``GemmCfu``), which adds
the systolic GEMM engine's ops (funct3 6 and 7) to the MAC's."""

from .core import Cfu, CfuCore
from .gemm_cfu import CombinedCfuCore, GemmCfu, GemmCfuCore

__all__ = ["Cfu", "CfuCore", "GemmCfu", "GemmCfuCore", "CombinedCfuCore"]
