"""A small float MLP in NumPy (ReLU hidden layers, softmax cross-entropy),
trained with minibatch SGD and momentum: the source of the int8 model that the
CFU workloads run."""

from functools import lru_cache

import numpy as np

from .digits import load_split

__all__ = ["train_float_mlp", "digits_mlp"]


def train_float_mlp(x, y, layers, *, epochs=40, batch=32, lr=0.05, momentum=0.9, seed=0):
    """Return ``(weights, biases)``, ``weights[l]`` of shape (in, out)."""
    rng = np.random.default_rng(seed)
    ws = [rng.normal(0, np.sqrt(2 / n_in), (n_in, n_out)) for n_in, n_out in zip(layers, layers[1:])]
    bs = [np.zeros(n_out) for n_out in layers[1:]]
    vw = [np.zeros_like(w) for w in ws]
    vb = [np.zeros_like(b) for b in bs]
    n_classes = layers[-1]
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch):
            idx = order[start : start + batch]
            acts = [x[idx]]
            for l, (w, b) in enumerate(zip(ws, bs)):
                z = acts[-1] @ w + b
                acts.append(np.maximum(z, 0) if l < len(ws) - 1 else z)
            logits = acts[-1]
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            grad = (p - np.eye(n_classes)[y[idx]]) / len(idx)
            for l in reversed(range(len(ws))):
                gw, gb = acts[l].T @ grad, grad.sum(axis=0)
                if l:
                    grad = (grad @ ws[l].T) * (acts[l] > 0)
                vw[l] = momentum * vw[l] - lr * gw
                vb[l] = momentum * vb[l] - lr * gb
                ws[l] += vw[l]
                bs[l] += vb[l]
    return ws, bs


def float_predict(ws, bs, x):
    for l, (w, b) in enumerate(zip(ws, bs)):
        x = x @ w + b
        if l < len(ws) - 1:
            x = np.maximum(x, 0)
    return np.argmax(x, axis=1)


@lru_cache(maxsize=4)
def digits_mlp(layers=(64, 32, 10), seed=0):
    """The float digits MLP and its TFLM int8 quantization.

    Returns ``(quantized_mlp, float_test_accuracy)``.
    """
    from .tflm import quantize_mlp

    x_train, y_train, x_test, y_test = load_split()
    ws, bs = train_float_mlp(x_train, y_train, list(layers), seed=seed)
    float_acc = float(np.mean(float_predict(ws, bs, x_test) == y_test))
    return quantize_mlp(ws, bs, x_train), float_acc
