"""Weight initialisers.

Each takes a ``numpy.random.Generator``, a shape and a dtype (float32 unless
given) and returns a new array. A Generator is required, not a seed, so that
successive layers drawn from one generator get different weights.

Fan conventions (``fans(shape)``):

* 1-D ``(n,)``: fan_in = fan_out = n.
* 2-D ``(n_in, n_out)``: the dense layer ``x @ W`` convention.
* 3-D and more ``(out, in, *kernel)``: convolution kernels;
  fan_in = in * prod(kernel), fan_out = out * prod(kernel).

``fan_in=``/``fan_out=`` override these where a weight is used differently
(for example recurrent matrices stacked side by side).
"""
import math

import numpy as np

__all__ = ["fans", "xavier_uniform", "xavier_normal", "he_uniform", "he_normal",
           "zeros", "orthogonal"]


def fans(shape):
    """(fan_in, fan_out) of a weight of this shape, per the module conventions."""
    shape = tuple(shape)
    if len(shape) == 0:
        raise ValueError("a weight needs at least one dimension")
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _check_rng(rng):
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"expected a numpy.random.Generator, got {type(rng).__name__}; "
                        "use numpy.random.default_rng(seed)")


def _fans(shape, fan_in, fan_out):
    default_in, default_out = fans(shape)
    return (default_in if fan_in is None else fan_in,
            default_out if fan_out is None else fan_out)


def xavier_uniform(rng, shape, dtype=np.float32, gain=1.0, fan_in=None, fan_out=None):
    """Glorot uniform: U(-a, a), a = gain*sqrt(6/(fan_in+fan_out)); keeps the
    activation and gradient variances equal across tanh-like layers."""
    _check_rng(rng)
    fi, fo = _fans(shape, fan_in, fan_out)
    limit = gain * math.sqrt(6.0 / (fi + fo))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def xavier_normal(rng, shape, dtype=np.float32, gain=1.0, fan_in=None, fan_out=None):
    """Glorot normal: N(0, s^2), s = gain*sqrt(2/(fan_in+fan_out))."""
    _check_rng(rng)
    fi, fo = _fans(shape, fan_in, fan_out)
    std = gain * math.sqrt(2.0 / (fi + fo))
    return (std * rng.standard_normal(size=shape)).astype(dtype)


def he_uniform(rng, shape, dtype=np.float32, fan_in=None):
    """Kaiming uniform: U(-a, a), a = sqrt(6/fan_in); for ReLU layers, which
    zero half their inputs and so need twice the Glorot variance."""
    _check_rng(rng)
    fi, _ = _fans(shape, fan_in, None)
    limit = math.sqrt(6.0 / fi)
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def he_normal(rng, shape, dtype=np.float32, fan_in=None):
    """Kaiming normal: N(0, 2/fan_in) (not truncated)."""
    _check_rng(rng)
    fi, _ = _fans(shape, fan_in, None)
    return (math.sqrt(2.0 / fi) * rng.standard_normal(size=shape)).astype(dtype)


def zeros(rng, shape, dtype=np.float32):
    """All zeros (biases); takes rng only to share the initialiser signature."""
    _check_rng(rng)
    return np.zeros(shape, dtype=dtype)


def orthogonal(rng, shape, dtype=np.float32, gain=1.0):
    """A (semi-)orthogonal matrix scaled by gain; dimensions after the first are
    flattened, so rows (or columns, whichever are fewer) are orthonormal.
    Keeps the norm of signals through deep linear or recurrent stacks."""
    _check_rng(rng)
    shape = tuple(shape)
    if len(shape) < 2:
        raise ValueError("orthogonal initialisation needs at least two dimensions")
    rows, cols = shape[0], math.prod(shape[1:])
    a = rng.standard_normal(size=(max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    # Fix the sign ambiguity of QR so the result is uniformly distributed.
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return (gain * q).reshape(shape).astype(dtype)
