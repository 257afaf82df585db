"""The fixed-point training datapath (issue 4): its numerics and its units."""
from .numerics import Numerics, exp_rom

__all__ = ["Numerics", "exp_rom"]
