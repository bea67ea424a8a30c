"""Layers as plain functions of (input, params) plus their init functions.

The forward functions are written for diffsrc to differentiate: pure NumPy,
parameters in dicts, no in-place updates. Init functions are ordinary Python
and return fresh parameter dicts (float32 unless a dtype is given); weights
default to Glorot uniform (the Keras default), pass ``w_init=he_normal`` for
deep ReLU stacks.

Images are NCHW; convolution kernels are (out_channels, in_channels, kh, kw).
"""
import numpy as np

from .init import xavier_uniform

__all__ = ["dense", "init_dense", "conv2d", "init_conv2d", "max_pool2d", "avg_pool2d",
           "batch_norm", "init_batch_norm", "layer_norm", "init_layer_norm",
           "dropout", "dropout_mask", "embedding", "init_embedding"]


def dense(x, params):
    """Affine map x @ W + b; x is (..., n_in), W is (n_in, n_out)."""
    return x @ params["W"] + params["b"]


def init_dense(rng, n_in, n_out, w_init=xavier_uniform, dtype=np.float32):
    """{'W': (n_in, n_out) from w_init, 'b': zeros(n_out)}."""
    return {"W": w_init(rng, (n_in, n_out), dtype=dtype),
            "b": np.zeros(n_out, dtype=dtype)}


def conv2d(x, params, stride=1, padding=0):
    """2-D cross-correlation (what deep learning calls convolution) plus bias.

    x is (N, C, H, W), params['W'] is (O, C, kh, kw), params['b'] is (O,);
    stride and padding are ints (zero padding on all four sides). Output is
    (N, O, (H+2p-kh)//stride+1, (W+2p-kw)//stride+1). The windows are a
    strided view, and one tensordot (a single BLAS product) does the rest.
    """
    w = params["W"]
    kh = w.shape[2]
    kw = w.shape[3]
    if padding > 0:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
    windows = windows[:, :, ::stride, ::stride]
    y = np.tensordot(windows, w, axes=([1, 4, 5], [1, 2, 3]))
    return np.transpose(y, (0, 3, 1, 2)) + np.reshape(params["b"], (1, -1, 1, 1))


def init_conv2d(rng, in_channels, out_channels, kernel_size, w_init=xavier_uniform,
                dtype=np.float32):
    """{'W': (out, in, k, k) from w_init (fan_in = in*k*k), 'b': zeros(out)}."""
    shape = (out_channels, in_channels, kernel_size, kernel_size)
    return {"W": w_init(rng, shape, dtype=dtype),
            "b": np.zeros(out_channels, dtype=dtype)}


def _pool_windows(x, size, stride):
    """(N, C, Ho, size, Wo, size): the pooling windows of NCHW x.

    Non-overlapping windows (stride == size) are a reshape of x cropped to a
    multiple of size, which is cheaper to differentiate than a strided view.
    Trailing rows/columns that do not fill a window are dropped.
    """
    if stride == size:
        n, c, h, w = x.shape
        ho = h // size
        wo = w // size
        x = x[:, :, :ho * size, :wo * size]
        return np.reshape(x, (n, c, ho, size, wo, size))
    windows = np.lib.stride_tricks.sliding_window_view(x, (size, size), axis=(2, 3))
    windows = windows[:, :, ::stride, ::stride]
    return np.transpose(windows, (0, 1, 2, 4, 3, 5))


def max_pool2d(x, size=2, stride=None):
    """Max over size x size windows of NCHW x; stride defaults to size."""
    if stride is None:
        stride = size
    return np.max(_pool_windows(x, size, stride), axis=(3, 5))


def avg_pool2d(x, size=2, stride=None):
    """Mean over size x size windows of NCHW x; stride defaults to size."""
    if stride is None:
        stride = size
    return np.mean(_pool_windows(x, size, stride), axis=(3, 5))


def batch_norm(x, params, state, train, momentum=0.9, eps=1e-5):
    """Batch normalisation of (N, D) or (N, C, H, W) input; returns (y, new_state).

    y = gamma * (x - mean) / sqrt(var + eps) + beta, per feature/channel.
    In training the batch statistics are used (biased variance) and the
    running estimates move towards them:
    running = momentum * running + (1 - momentum) * batch, with the unbiased
    variance n/(n-1)*var for the running variance. In evaluation the running
    estimates are used and the state is returned unchanged. Only y is meant
    to be differentiated; new_state is an auxiliary output.
    """
    if x.ndim == 2:
        shape = (1, x.shape[1])
        axes = (0,)
    else:
        shape = (1, x.shape[1], 1, 1)
        axes = (0, 2, 3)
    if train:
        mean = np.mean(x, axis=axes, keepdims=True)
        var = np.var(x, axis=axes, keepdims=True)
        n = x.size // x.shape[1]
        unbiased = np.reshape(var, (-1,)) * (n / max(n - 1, 1))
        new_state = {
            "mean": momentum * state["mean"] + (1.0 - momentum) * np.reshape(mean, (-1,)),
            "var": momentum * state["var"] + (1.0 - momentum) * unbiased,
        }
    else:
        mean = np.reshape(state["mean"], shape)
        var = np.reshape(state["var"], shape)
        new_state = state
    xhat = (x - mean) / np.sqrt(var + eps)
    return np.reshape(params["gamma"], shape) * xhat + np.reshape(params["beta"], shape), new_state


def init_batch_norm(num_features, dtype=np.float32):
    """(params, state): gamma=1, beta=0; running mean 0 and variance 1."""
    params = {"gamma": np.ones(num_features, dtype=dtype),
              "beta": np.zeros(num_features, dtype=dtype)}
    state = {"mean": np.zeros(num_features, dtype=dtype),
             "var": np.ones(num_features, dtype=dtype)}
    return params, state


def layer_norm(x, params, eps=1e-5):
    """Normalise each sample over its last axis, then scale by gamma, shift by beta."""
    mean = np.mean(x, axis=-1, keepdims=True)
    var = np.var(x, axis=-1, keepdims=True)
    return params["gamma"] * (x - mean) / np.sqrt(var + eps) + params["beta"]


def init_layer_norm(dim, dtype=np.float32):
    """{'gamma': ones(dim), 'beta': zeros(dim)}."""
    return {"gamma": np.ones(dim, dtype=dtype), "beta": np.zeros(dim, dtype=dtype)}


def dropout_mask(rng, shape, rate):
    """Boolean keep-mask: each entry kept with probability 1 - rate."""
    return rng.random(shape) >= rate


def dropout(x, rate, rng_or_mask, train=True):
    """Inverted dropout: zero each entry with probability `rate`, scale the rest
    by 1/(1-rate) so evaluation needs no rescaling; identity when not training.

    rng_or_mask is a numpy Generator (a mask is drawn from it) or a mask of
    x's shape from dropout_mask. The mask is a constant for differentiation;
    pass the mask itself to reuse one draw (e.g. in gradient checks).
    """
    if not train or rate == 0.0:
        return x
    mask = rng_or_mask
    if isinstance(rng_or_mask, np.random.Generator):
        mask = dropout_mask(rng_or_mask, x.shape, rate)
    return x * mask / (1.0 - rate)


def embedding(ids, params):
    """Rows of params['E'] (vocab, dim) for integer ids of any shape."""
    return np.take(params["E"], ids, axis=0)


def init_embedding(rng, vocab_size, dim, dtype=np.float32):
    """{'E': N(0, 1/dim) entries}: each embedding vector starts with norm about 1."""
    return {"E": (rng.standard_normal((vocab_size, dim)) / np.sqrt(dim)).astype(dtype)}
