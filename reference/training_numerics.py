"""The training datapath's fixed-point formats, its LFSR and its exponent ROM:
the spec, in one place. The RTL (:mod:`hdl.training`) implements it and the
golden model (:mod:`reference.training`) computes with it.
``docs/numerics.md`` ("Training") explains each one."""

from dataclasses import dataclass

import numpy as np

__all__ = ["Numerics", "exp_rom", "LFSR_TAPS", "LFSR_SEED"]

#: The stochastic rounding's 16-bit Galois LFSR: x^16 + x^14 + x^13 + x^11 + 1, and its seed.
LFSR_TAPS, LFSR_SEED = 0xB400, 0xACE1


@dataclass(frozen=True)
class Numerics:
    """Fixed-point formats: the number of fractional bits of each tensor."""

    x_frac: int = 7  #: input pixels in [0, 1]: int8
    w_frac: int = 6  #: GEMM weights: int8 (±2, steps of 1/64), the master's top byte
    master_extra: int = 8  #: master weights/biases: 8 more fractional bits
    a_frac: int = 3  #: pre-activations, activations and logits: int8 (±16, steps of 1/8)
    e_frac_ce: int = 7  #: errors with cross-entropy: int8 (±1, steps of 1/128)
    lr_frac: int = 16  #: learning rate (already divided by the batch size): unsigned 16-bit
    dx_extra: int = 1  #: backpropagated errors (dX) keep this many more fractional bits per layer
    momentum_shift: int = 3  #: momentum s = 1 - 2^-momentum_shift
    leaky_shift: int = 3  #: leaky ReLU slope 2^-leaky_shift

    def e_frac(self, loss, depth=0):
        """Fractional bits of dL/dY for the layer ``depth`` layers below the output."""
        return (self.e_frac_ce if loss == "ce" else self.a_frac) + depth * self.dx_extra

    @property
    def master_frac(self):
        return self.w_frac + self.master_extra


def exp_rom(numerics):
    """The softmax's exponent ROM: ``E[d] = round_half_up(2^15 · e^(-d / 2^a_frac))``, d = 0..255."""
    d = np.arange(256)
    return [int(v) for v in np.floor(np.exp(-d / (1 << numerics.a_frac)) * (1 << 15) + 0.5)]
