"""W5 - cnn: conv-pool-conv-pool-dense, batch 64, softmax cross-entropy, SGD (float32).

X (64, 1, 28, 28) ~ N(0, 1), labels uniform over 10 classes (one-hot Y), seed 2.
conv 3x3 1->16 (valid, cross-correlation, + bias), relu, 2x2 max-pool  -> (64, 16, 13, 13)
conv 3x3 16->32 (valid, + bias), relu, 2x2 max-pool (floor: 11 -> 5)   -> (64, 32, 5, 5)
flatten in (C, H, W) order (800), dense 800 -> 10, softmax CE (mean).  SGD lr 0.01.
Params K1 (16,1,3,3), c1 (16,), K2 (32,16,3,3), c2 (32,), Wd (800,10), bd (10,).

The plain loss works in NHWC: a convolution is an im2col built from the 9 shifted
slices (np.stack) and one matmul; pooling is reshape + max over the two window axes.
The hand version is the same algorithm written for speed: 9 slice copies into one
buffer, strided maxima for pooling, gradients routed back by hand.

diffsrc column:  vg = ds.value_and_grad(loss, wrt=(0, 1, 2, 3, 4, 5))
                 value, (gK1, gc1, gK2, gc2, gWd, gbd) = vg(K1, c1, K2, c2, Wd, bd, X, Y)
"""
import sys

import numpy as np

from harness import jax_training, sgd, torch_training, Workload
from workloads._data import one_hot, uniform

LR = 0.01
NAMES = ('K1', 'c1', 'K2', 'c2', 'Wd', 'bd')


def make_data(seed=2, tiny=False):
    """tiny: float64, X (3, 1, 16, 16), 2 and 3 channels (16 -> 14 -> 7 -> 5 -> 2), 4 classes."""
    dtype = np.float64 if tiny else np.float32
    n, side, c1, c2, classes = (3, 16, 2, 3, 4) if tiny else (64, 28, 16, 32, 10)
    flat = c2 * (((side - 2) // 2 - 2) // 2) ** 2
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 1, side, side)).astype(dtype)
    labels = rng.integers(0, classes, size=n)
    params = {'K1': uniform(rng, 9, (c1, 1, 3, 3), dtype),
              'c1': uniform(rng, 9, (c1,), dtype),
              'K2': uniform(rng, 9 * c1, (c2, c1, 3, 3), dtype),
              'c2': uniform(rng, 9 * c1, (c2,), dtype),
              'Wd': uniform(rng, flat, (flat, classes), dtype),
              'bd': uniform(rng, flat, (classes,), dtype)}
    return {'X': X, 'labels': labels, 'Y': one_hot(labels, classes, dtype), 'params': params}


def conv3x3(x, K, c):
    """Valid 3x3 cross-correlation, NHWC: x (n, h, w, ci), K (co, ci, 3, 3) -> (n, h-2, w-2, co)."""
    n, h, w, ci = x.shape
    co = K.shape[0]
    cols = []
    for i in range(3):
        for j in range(3):
            cols.append(x[:, i:i + h - 2, j:j + w - 2, :])
    patches = np.reshape(np.stack(cols, axis=3), (n * (h - 2) * (w - 2), 9 * ci))
    kernel = np.reshape(np.transpose(K, (2, 3, 1, 0)), (9 * ci, co))
    return np.reshape(patches @ kernel, (n, h - 2, w - 2, co)) + c


def maxpool2(x):
    """2x2 max-pool with stride 2, NHWC; an odd last row/column is dropped."""
    n, h, w, c = x.shape
    ph = h // 2
    pw = w // 2
    windows = np.reshape(x[:, :2 * ph, :2 * pw, :], (n, ph, 2, pw, 2, c))
    return np.max(windows, axis=(2, 4))


def relu(a):
    return np.maximum(a, 0.0)


def cross_entropy(z, Y):
    """Mean softmax cross-entropy over the last axis, labels one-hot in Y."""
    m = np.max(z, axis=-1, keepdims=True)
    lse = np.log(np.sum(np.exp(z - m), axis=-1, keepdims=True)) + m
    return np.mean(np.sum(Y * (lse - z), axis=-1))


def loss(K1, c1, K2, c2, Wd, bd, X, Y):
    x = np.transpose(X, (0, 2, 3, 1))
    h = maxpool2(relu(conv3x3(x, K1, c1)))
    h = maxpool2(relu(conv3x3(h, K2, c2)))
    f = np.reshape(np.transpose(h, (0, 3, 1, 2)), (X.shape[0], -1))
    return cross_entropy(f @ Wd + bd, Y)


# ----------------------------------------------------------------------------- hand

def _im2col(x):
    """(n, h, w, c) -> (n*(h-2)*(w-2), 9*c): 9 slice copies into one buffer."""
    n, h, w, c = x.shape
    ho, wo = h - 2, w - 2
    P = np.empty((n, ho, wo, 3, 3, c), x.dtype)
    for i in range(3):
        for j in range(3):
            P[:, :, :, i, j, :] = x[:, i:i + ho, j:j + wo, :]
    return P.reshape(n * ho * wo, 9 * c)


def _col2im(dP, shape):
    """Adjoint of _im2col: 9 shifted accumulations (from a tap-major copy of dP)."""
    n, h, w, c = shape
    ho, wo = h - 2, w - 2
    taps = np.ascontiguousarray(dP.reshape(n, ho, wo, 3, 3, c).transpose(3, 4, 0, 1, 2, 5))
    dx = np.zeros(shape, dP.dtype)
    for i in range(3):
        for j in range(3):
            dx[:, i:i + ho, j:j + wo, :] += taps[i, j]
    return dx


def _colsum(a):
    """Sum over rows as a GEMV: much faster than a.sum(axis=0) for tall, narrow a."""
    return np.ones(a.shape[0], a.dtype) @ a


def _quads(h):
    """The four stride-2 views whose elementwise max is the 2x2 pool (floor)."""
    H, W = h.shape[1] // 2 * 2, h.shape[2] // 2 * 2
    return [h[:, i:H:2, j:W:2] for i in (0, 1) for j in (0, 1)]


def _pool(h):
    q = _quads(h)
    p = np.maximum(q[0], q[1])
    np.maximum(p, q[2], out=p)
    np.maximum(p, q[3], out=p)
    return p


def _unpool_relu(h, p, dp):
    """Gradient w.r.t. the pre-relu activation of pool(relu(a)) = p, h = relu(a).

    dp is first masked by p > 0: a window whose max is 0 had a <= 0 everywhere, so relu
    blocks it; a positive max sits where a > 0, so no separate relu mask is needed."""
    dp = dp * (p > 0.0)
    da = np.zeros_like(h)
    for q, dq in zip(_quads(h), _quads(da)):
        np.multiply(q == p, dp, out=dq)
    return da


def hand_value_and_grad(K1, c1, K2, c2, Wd, bd, X, Y):
    n = X.shape[0]
    x = np.ascontiguousarray(np.transpose(X, (0, 2, 3, 1)))
    k1 = K1.transpose(2, 3, 1, 0).reshape(-1, K1.shape[0])
    k2 = K2.transpose(2, 3, 1, 0).reshape(-1, K2.shape[0])
    P1 = _im2col(x)
    h1 = (P1 @ k1).reshape(n, x.shape[1] - 2, x.shape[2] - 2, -1)
    h1 += c1
    np.maximum(h1, 0.0, out=h1)
    p1 = _pool(h1)
    P2 = _im2col(p1)
    h2 = (P2 @ k2).reshape(n, p1.shape[1] - 2, p1.shape[2] - 2, -1)
    h2 += c2
    np.maximum(h2, 0.0, out=h2)
    p2 = _pool(h2)
    f = p2.transpose(0, 3, 1, 2).reshape(n, -1)
    z = f @ Wd
    z += bd
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    value = np.mean(np.log(s[:, 0]) - np.einsum('ij,ij->i', Y, z))
    e /= s
    e -= Y
    e *= 1.0 / n                              # dL/dz
    gWd = f.T @ e
    gbd = e.sum(axis=0)
    dp2 = (e @ Wd.T).reshape(n, p2.shape[3], p2.shape[1], p2.shape[2]).transpose(0, 2, 3, 1)
    da2 = _unpool_relu(h2, p2, dp2).reshape(-1, h2.shape[3])
    gK2 = (P2.T @ da2).reshape(3, 3, K2.shape[1], K2.shape[0]).transpose(3, 2, 0, 1)
    gc2 = _colsum(da2)
    dp1 = _col2im(da2 @ k2.T, p1.shape)
    da1 = _unpool_relu(h1, p1, dp1).reshape(-1, h1.shape[3])
    gK1 = (P1.T @ da1).reshape(3, 3, K1.shape[1], K1.shape[0]).transpose(3, 2, 0, 1)
    gc1 = _colsum(da1)
    return value, (gK1, gc1, gK2, gc2, gWd, gbd)


# ----------------------------------------------------------------------------- peers

def peer_torch(data):
    import torch
    F = torch.nn.functional
    X, labels = torch.from_numpy(data['X']), torch.from_numpy(data['labels'])

    def forward(p):
        h = F.max_pool2d(F.relu(F.conv2d(X, p['K1'], p['c1'])), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, p['K2'], p['c2'])), 2)
        return F.cross_entropy(h.flatten(1) @ p['Wd'] + p['bd'], labels)

    return torch_training(data, forward, LR)


def peer_jax(data):
    import jax
    import jax.numpy as jnp
    from jax import lax
    X, Y = jnp.asarray(data['X']), jnp.asarray(data['Y'])

    def conv(x, K, c):
        y = lax.conv_general_dilated(x, K, (1, 1), 'VALID',
                                     dimension_numbers=('NCHW', 'OIHW', 'NCHW'))
        return y + c[:, None, None]

    def pool(x):
        return lax.reduce_window(x, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), 'VALID')

    def forward(p, X, Y):
        h = pool(jax.nn.relu(conv(X, p['K1'], p['c1'])))
        h = pool(jax.nn.relu(conv(h, p['K2'], p['c2'])))
        z = h.reshape(h.shape[0], -1) @ p['Wd'] + p['bd']
        return -jnp.mean(jnp.sum(Y * jax.nn.log_softmax(z), axis=-1))

    return jax_training(data, forward, (X, Y), LR)


WORKLOADS = [
    Workload('W5', 'cnn', 'cnn conv16-pool-conv32-pool-dense, batch 64, SGD', 'ms',
             'forward + backward + SGD', sys.modules[__name__],
             loss, (0, 1, 2, 3, 4, 5), hand_value_and_grad,
             args=lambda p, d: tuple(p[k] for k in NAMES) + (d['X'], d['Y']),
             names=lambda g: dict(zip(NAMES, g)),
             update=sgd(LR),
             peers={'torch': peer_torch, 'jax': peer_jax},
             budget_s=1.0, min_samples=10, seed=2),
]
