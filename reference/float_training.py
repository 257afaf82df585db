"""The float (PyTorch, autograd) twin of :mod:`reference.training`.

The same network from the same initial weights (the integer masters,
dequantized), the same batches and the same update rule, in float32: the
accuracy baseline, and the reference the fixed-point gradients are checked
against. Activations of the course material: sigmoid, tanh, ReLU, leaky
ReLU (slope 2^-k) and softmax.
"""

import os

import numpy as np
import torch

__all__ = ["ACTIVATIONS", "FloatMlp", "softmax"]

# These networks are tiny (a few thousand weights, batches of 32): torch's thread pool costs more than it
# gains. One thread ran `sim train`'s 20 float epochs in 4.7 CPU-seconds against 13 with two, and its
# threads spin against the simulators' on a 2-core machine. OMP_NUM_THREADS, if set, is kept.
if "OMP_NUM_THREADS" not in os.environ:
    torch.set_num_threads(1)


def softmax(z):
    return torch.softmax(z, dim=-1)


def _leaky(slope):
    return lambda z: torch.nn.functional.leaky_relu(z, slope)


ACTIVATIONS = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
}


class FloatMlp:
    """``Y = X·W + b`` layers, ``activation`` on hidden layers, linear output."""

    def __init__(self, weights, biases, activation="relu", leaky_slope=2**-3, dtype=torch.float32):
        self.w = [torch.tensor(np.asarray(w), dtype=dtype, requires_grad=True) for w in weights]
        self.b = [torch.tensor(np.asarray(b), dtype=dtype, requires_grad=True) for b in biases]
        self.act = _leaky(leaky_slope) if activation in ("leaky", "leaky_relu") else ACTIVATIONS[activation]
        self.w_momentum = [torch.zeros_like(w) for w in self.w]
        self.b_momentum = [torch.zeros_like(b) for b in self.b]

    @classmethod
    def from_state(cls, state, activation="relu"):
        n = state.numerics
        w = [m / 2.0**n.master_frac for m in state.w_master]
        b = [m / 2.0 ** (state.x_frac(l) + n.master_frac) for l, m in enumerate(state.b_master)]
        return cls(w, b, activation, leaky_slope=2.0**-n.leaky_shift)

    def forward(self, x):
        x = torch.as_tensor(np.asarray(x), dtype=self.w[0].dtype)
        for l, (w, b) in enumerate(zip(self.w, self.b)):
            x = x @ w + b
            if l < len(self.w) - 1:
                x = self.act(x)
        return x

    def loss(self, x, labels, loss="ce"):
        """Cross-entropy averaged over the batch, or MSE ``Σ ½(t - y)²`` averaged over the batch."""
        y = self.forward(x)
        t = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        if loss == "ce":
            return torch.nn.functional.cross_entropy(y, t)
        onehot = torch.nn.functional.one_hot(t, y.shape[1]).to(y.dtype)
        return 0.5 * ((onehot - y) ** 2).sum() / len(t)

    def step(self, x, labels, lr, *, loss="ce", momentum=0.0):
        """One SGD step; with momentum s, ``g = s·g + (1-s)·dW`` from g = 0, ``W -= lr·g``."""
        for p in self.w + self.b:
            p.grad = None
        value = self.loss(x, labels, loss)
        value.backward()
        with torch.no_grad():
            for params, moms in ((self.w, self.w_momentum), (self.b, self.b_momentum)):
                for p, g in zip(params, moms):
                    if momentum:
                        g.mul_(momentum).add_(p.grad, alpha=1 - momentum)
                        p.sub_(lr * g)
                    else:
                        p.sub_(lr * p.grad)
        return float(value.detach())

    def predict(self, x):
        with torch.no_grad():
            return self.forward(x).argmax(dim=1).numpy()
