"""Activation functions, written as plain NumPy so diffsrc can differentiate them.

Each is pure, elementwise or reduced along one axis, and numerically stable
for large |x| (no overflow in exp, no log of 0).
"""
import numpy as np

__all__ = ["relu", "leaky_relu", "sigmoid", "tanh", "softplus", "gelu", "silu",
           "softmax", "log_softmax"]

# sqrt(2/pi), the constant of the tanh approximation of GELU.
_GELU_C = 0.7978845608028654


def relu(x):
    """max(x, 0)."""
    return np.maximum(x, 0.0)


def leaky_relu(x, slope=0.01):
    """x for x > 0, slope*x otherwise: keeps a gradient for negative inputs."""
    return np.where(x > 0, x, slope * x)


def sigmoid(x):
    """1/(1+exp(-x)) from e = exp(-|x|), which never overflows: 1/(1+e) for
    x >= 0 and e/(1+e) for x < 0, accurate to full relative precision in
    both tails (0.5*(1+tanh(x/2)) would round sigmoid(-50) to 0)."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def tanh(x):
    """Hyperbolic tangent."""
    return np.tanh(x)


def softplus(x):
    """log(1+exp(x)) as max(x,0) + log1p(exp(-|x|)): exp never sees a large argument."""
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def gelu(x):
    """GELU, tanh approximation: 0.5*x*(1+tanh(sqrt(2/pi)*(x+0.044715*x^3)))."""
    return 0.5 * x * (1.0 + np.tanh(_GELU_C * (x + 0.044715 * x ** 3)))


def silu(x):
    """x*sigmoid(x) (also called swish)."""
    return x * sigmoid(x)


def softmax(x, axis=-1):
    """exp(x)/sum(exp(x)) along axis, shifted by the max so exp cannot overflow."""
    z = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    """log(softmax(x)) without forming softmax: z - log(sum(exp(z))), z = x - max."""
    z = x - np.max(x, axis=axis, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))
