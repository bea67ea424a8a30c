"""W8 - sliced score matching: a loss that contains a gradient (grad-of-grad), SGD (float32).

Score network s: 2 -> 128 tanh -> 128 tanh -> 2 (linear output).  x (512, 2) from the
8-Gaussian mixture of W7, v (512, 2) ~ N(0, I), seed 5.
loss = mean_i [ 1/2 ||s(x_i)||^2 + v_i . d(v_i . s(x_i))/dx_i ]      (= v^T J v per sample)
The inner derivative is w.r.t. the *input*, so d loss / d params is a second derivative.
SGD lr 1e-3.  Timed unit: loss + parameter gradient + update.

The plain loss calls `ds.grad` on its own helper; the module global `ds` is bound by the
harness to diffsrc (diffsrc column) or to a shim over autograd.grad (autograd column).

diffsrc column:  vg = ds.value_and_grad(loss, wrt=0)
                 value, grads = vg(params, x, v)
  with, inside loss:  ds.grad(v_dot_score, wrt=0)(x, params, v)   (nested grad)
params is a dict {'W1', 'b1', 'W2', 'b2', 'W3', 'b3'}; grads is a dict with the same keys.

Hand version: v^T J v by forward mode (J v pushed through the net beside the primal),
then one reverse pass over primal and tangent together.  (Stacking primal and tangent
rows into one matmul per layer was measured slower: larger temporaries, more page faults.)
"""
import sys

import numpy as np

from harness import jax_training, sgd, torch_training, Workload
from workloads._data import eight_gaussians, uniform

LR = 1e-3
NAMES = ('W1', 'b1', 'W2', 'b2', 'W3', 'b3')

ds = None  # bound by the harness: diffsrc, or a shim with the same grad(f, wrt) call


def make_data(seed=5, tiny=False):
    """tiny: float64, batch 6, hidden 5."""
    dtype = np.float64 if tiny else np.float32
    n, hidden = (6, 5) if tiny else (512, 128)
    rng = np.random.default_rng(seed)
    x = eight_gaussians(rng, n, dtype)
    v = rng.standard_normal((n, 2)).astype(dtype)
    sizes = (2, hidden, hidden, 2)
    params = {}
    for i in range(3):
        params['W%d' % (i + 1)] = uniform(rng, sizes[i], (sizes[i], sizes[i + 1]), dtype)
        params['b%d' % (i + 1)] = uniform(rng, sizes[i], (sizes[i + 1],), dtype)
    return {'x': x, 'v': v, 'params': params}


def score(params, x):
    h = np.tanh(x @ params['W1'] + params['b1'])
    h = np.tanh(h @ params['W2'] + params['b2'])
    return h @ params['W3'] + params['b3']


def v_dot_score(x, params, v):
    return np.sum(v * score(params, x))


def loss(params, x, v):
    s = score(params, x)
    vj = ds.grad(v_dot_score, wrt=0)(x, params, v)       # row i: v_i^T J_i
    return np.mean(0.5 * np.sum(s * s, axis=1) + np.sum(v * vj, axis=1))


def loss_explicit(params, x, v):
    """The same loss with each sample's 2x2 Jacobian formed explicitly (for checks)."""
    W1, W2, W3 = params['W1'], params['W2'], params['W3']
    h1 = np.tanh(x @ W1 + params['b1'])
    h2 = np.tanh(h1 @ W2 + params['b2'])
    s = h2 @ W3 + params['b3']
    J = np.einsum('ij,nj,jk,nk,ko->nio', W1, 1.0 - h1 * h1, W2, 1.0 - h2 * h2, W3)
    return np.mean(0.5 * np.sum(s * s, axis=1) + np.einsum('ni,nio,no->n', v, J, v))


def hand_value_and_grad(params, x, v):
    W1, W2, W3 = params['W1'], params['W2'], params['W3']
    n = x.shape[0]
    # forward: primal (h, s) and tangent in direction v (t = pre-activation, u = activation)
    h1 = np.tanh(x @ W1 + params['b1'])
    d1 = 1.0 - h1 * h1
    t1 = v @ W1
    u1 = t1 * d1
    h2 = np.tanh(h1 @ W2 + params['b2'])
    d2 = 1.0 - h2 * h2
    t2 = u1 @ W2
    u2 = t2 * d2
    s = h2 @ W3 + params['b3']
    jv = u2 @ W3                                         # J v, row per sample
    value = np.mean(0.5 * np.sum(s * s, axis=1) + np.sum(v * jv, axis=1))
    # reverse: the adjoint of s is s/n, that of J v is v/n
    gs = s * (1.0 / n)
    gj = v * (1.0 / n)
    ones = np.ones(n, x.dtype)
    g = {'W3': h2.T @ gs + u2.T @ gj, 'b3': ones @ gs}
    gh2 = gs @ W3.T
    gu2 = gj @ W3.T
    gt2 = gu2 * d2
    gh2 -= 2.0 * h2 * (gu2 * t2)                         # through d2 = 1 - h2^2
    gh2 *= d2                                            # now the adjoint of the pre-activation
    g['W2'] = h1.T @ gh2 + u1.T @ gt2
    g['b2'] = ones @ gh2
    gh1 = gh2 @ W2.T
    gu1 = gt2 @ W2.T
    gt1 = gu1 * d1
    gh1 -= 2.0 * h1 * (gu1 * t1)
    gh1 *= d1
    g['W1'] = x.T @ gh1 + v.T @ gt1
    g['b1'] = ones @ gh1
    return value, g


# ----------------------------------------------------------------------------- peers

def peer_torch(data):
    import torch
    x0, v = torch.from_numpy(data['x']), torch.from_numpy(data['v'])

    def forward(p):
        x = x0.clone().requires_grad_(True)
        h = torch.tanh(x @ p['W1'] + p['b1'])
        h = torch.tanh(h @ p['W2'] + p['b2'])
        s = h @ p['W3'] + p['b3']
        (vj,) = torch.autograd.grad((v * s).sum(), x, create_graph=True)
        return (0.5 * (s * s).sum(1) + (v * vj).sum(1)).mean()

    return torch_training(data, forward, LR)


def peer_jax(data):
    import jax
    import jax.numpy as jnp
    x, v = jnp.asarray(data['x']), jnp.asarray(data['v'])

    def net(p, x):
        h = jnp.tanh(x @ p['W1'] + p['b1'])
        h = jnp.tanh(h @ p['W2'] + p['b2'])
        return h @ p['W3'] + p['b3']

    def forward(p, x, v):
        s = net(p, x)
        vj = jax.grad(lambda y: jnp.sum(v * net(p, y)))(x)
        return jnp.mean(0.5 * jnp.sum(s * s, axis=1) + jnp.sum(v * vj, axis=1))

    return jax_training(data, forward, (x, v), LR)


WORKLOADS = [
    Workload('W8', 'ssm (grad-of-grad)', 'sliced score matching (grad-of-grad) 2-128-128-2 tanh, batch 512, SGD',
             'ms', 'loss + parameter gradient + SGD', sys.modules[__name__],
             loss, 0, hand_value_and_grad,
             args=lambda p, d: (p, d['x'], d['v']),
             names=lambda g: g,
             update=sgd(LR),
             peers={'torch': peer_torch, 'jax': peer_jax},
             budget_s=0.6, min_samples=10, seed=5),
]
