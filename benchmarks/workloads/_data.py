"""Deterministic data and parameter generation shared by the workloads.

Nothing here is differentiated.  Parameters use torch.nn.Linear's default scheme,
U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn from one numpy Generator per workload, in
the order the workload lists them, so every implementation starts from identical values.
"""
import numpy as np


def uniform(rng, fan_in, shape, dtype):
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def sine_series(n=1000, dtype=np.float32):
    """2 Hz sine sampled at 100 Hz: x[k] = sin(2*pi*2*k/100)."""
    t = np.arange(n) / 100.0
    return np.sin(4.0 * np.pi * t).astype(dtype)


def sine_model(rng, dtype, hidden=64, window=10):
    """The 10 -> 64 relu -> 1 tanh model of W2 and W3."""
    return {'W1': uniform(rng, window, (window, hidden), dtype),
            'b1': uniform(rng, window, (hidden,), dtype),
            'W2': uniform(rng, hidden, (hidden, 1), dtype),
            'b2': uniform(rng, hidden, (1,), dtype)}


def eight_gaussians(rng, n, dtype, radius=2.0, std=0.05):
    """n points from a mixture of 8 Gaussians evenly spaced on a circle."""
    k = rng.integers(0, 8, size=n)
    angle = k * (np.pi / 4.0)
    centres = radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return (centres + std * rng.standard_normal((n, 2))).astype(dtype)


def one_hot(labels, classes, dtype):
    out = np.zeros(labels.shape + (classes,), dtype)
    np.put_along_axis(out, labels[..., None], 1.0, axis=-1)
    return out
