"""The CFU-Playground SIMD int8 multiply-accumulate unit."""

from .core import Cfu, CfuCore

__all__ = ["Cfu", "CfuCore"]
