"""The fixed-point training datapath (issue 4): its units. Its numerics are the spec's
(:mod:`reference.training_numerics`), re-exported here."""

from reference.training_numerics import Numerics, exp_rom

__all__ = ["Numerics", "exp_rom"]
