"""W4 - mlp: 784 -> 512 -> 512 -> 10 relu MLP, softmax cross-entropy, SGD (float32).

X (128, 784) ~ N(0, 1), labels (128,) uniform over 10 classes (one-hot Y), seed 1.
loss = mean_i [logsumexp(z_i) - z_i[label_i]],  SGD lr 0.01.
Timed unit: forward + backward + SGD update.

diffsrc column:  vg = ds.value_and_grad(loss, wrt=0)
                 value, grads = vg(params, X, Y)
params is a dict {'W1', 'b1', 'W2', 'b2', 'W3', 'b3'}; grads is a dict with the same keys.
"""
import sys

import numpy as np

from harness import jax_training, sgd, torch_training, Workload
from workloads._data import one_hot, uniform

LR = 0.01
SIZES = (784, 512, 512, 10)
NAMES = ('W1', 'b1', 'W2', 'b2', 'W3', 'b3')


def make_data(seed=1, tiny=False):
    """tiny: float64, sizes 7 -> 6 -> 5 -> 4, batch 5."""
    dtype = np.float64 if tiny else np.float32
    sizes, n = ((7, 6, 5, 4), 5) if tiny else (SIZES, 128)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    labels = rng.integers(0, sizes[-1], size=n)
    params = {}
    for i in range(3):
        params['W%d' % (i + 1)] = uniform(rng, sizes[i], (sizes[i], sizes[i + 1]), dtype)
        params['b%d' % (i + 1)] = uniform(rng, sizes[i], (sizes[i + 1],), dtype)
    return {'X': X, 'labels': labels, 'Y': one_hot(labels, sizes[-1], dtype), 'params': params}


def relu(a):
    return np.maximum(a, 0.0)


def cross_entropy(z, Y):
    """Mean softmax cross-entropy over the last axis, labels one-hot in Y."""
    m = np.max(z, axis=-1, keepdims=True)
    lse = np.log(np.sum(np.exp(z - m), axis=-1, keepdims=True)) + m
    return np.mean(np.sum(Y * (lse - z), axis=-1))


def loss(params, X, Y):
    h1 = relu(X @ params['W1'] + params['b1'])
    h2 = relu(h1 @ params['W2'] + params['b2'])
    return cross_entropy(h2 @ params['W3'] + params['b3'], Y)


def hand_value_and_grad(params, X, Y):
    W1, W2, W3 = params['W1'], params['W2'], params['W3']
    a1 = X @ W1
    a1 += params['b1']
    on1 = a1 > 0.0
    a1 *= on1                                 # a1 is now h1
    a2 = a1 @ W2
    a2 += params['b2']
    on2 = a2 > 0.0
    a2 *= on2                                 # h2
    z = a2 @ W3
    z += params['b3']
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    value = np.mean(np.log(s[:, 0]) - np.einsum('ij,ij->i', Y, z))
    # d/dz: (softmax - Y) / n, computed in e's buffer
    e /= s
    e -= Y
    e *= 1.0 / X.shape[0]
    g = {'W3': a2.T @ e, 'b3': e.sum(axis=0)}
    d2 = e @ W3.T
    d2 *= on2
    g['W2'] = a1.T @ d2
    g['b2'] = d2.sum(axis=0)
    d1 = d2 @ W2.T
    d1 *= on1
    g['W1'] = X.T @ d1
    g['b1'] = d1.sum(axis=0)
    return value, g


# ----------------------------------------------------------------------------- peers

def _torch_forward(torch, p, X, labels):
    F = torch.nn.functional
    h = F.relu(X @ p['W1'] + p['b1'])
    h = F.relu(h @ p['W2'] + p['b2'])
    return F.cross_entropy(h @ p['W3'] + p['b3'], labels)


def peer_torch(data):
    import torch
    X, labels = torch.from_numpy(data['X']), torch.from_numpy(data['labels'])
    return torch_training(data, lambda p: _torch_forward(torch, p, X, labels), LR)


def peer_jax(data):
    import jax
    import jax.numpy as jnp
    X, Y = jnp.asarray(data['X']), jnp.asarray(data['Y'])

    def forward(p, X, Y):
        h = jax.nn.relu(X @ p['W1'] + p['b1'])
        h = jax.nn.relu(h @ p['W2'] + p['b2'])
        return -jnp.mean(jnp.sum(Y * jax.nn.log_softmax(h @ p['W3'] + p['b3']), axis=-1))

    return jax_training(data, forward, (X, Y), LR)


WORKLOADS = [
    Workload('W4', 'mlp', 'mlp 784-512-512-10 relu, batch 128, softmax CE, SGD', 'ms',
             'forward + backward + SGD', sys.modules[__name__],
             loss, 0, hand_value_and_grad,
             args=lambda p, d: (p, d['X'], d['Y']),
             names=lambda g: g,
             update=sgd(LR),
             peers={'torch': peer_torch, 'jax': peer_jax},
             budget_s=0.8, min_samples=10, seed=1),
]
