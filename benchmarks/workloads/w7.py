"""W7 - ddpm: the noise-prediction MLP of a 2-D toy DDPM, batch 512, Adam (float32).

Data (seed 4; sampled once, outside the timed step): x0 (512, 2) from 8 Gaussians on a
circle (radius 2, std 0.05); betas = linspace(1e-4, 0.02, 1000), abar = cumprod(1 - beta);
t ~ U{0..999}; eps ~ N(0, I); x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps; the
t-embedding is [sin(t w_k), cos(t w_k)], w_k = 10000^(-k/8), k = 0..7, so inp (512, 18).
Model 18 -> 128 SiLU -> 128 SiLU -> 2 predicts eps; loss = mean((eps_hat - eps)^2).
Adam(1e-3), torch's formula.  Timed unit: forward + backward + Adam update.

diffsrc column:  vg = ds.value_and_grad(loss, wrt=(0, 1, 2, 3, 4, 5))
                 value, (gW1, gb1, gW2, gb2, gW3, gb3) = vg(W1, b1, W2, b2, W3, b3, inp, eps)
"""
import sys

import numpy as np

from harness import adam, adam_state, jax_training, torch_training, Workload
from workloads._data import eight_gaussians, uniform

LR = 1e-3
NAMES = ('W1', 'b1', 'W2', 'b2', 'W3', 'b3')


def make_data(seed=4, tiny=False):
    """tiny: float64, batch 6, hidden 5."""
    dtype = np.float64 if tiny else np.float32
    n, hidden = (6, 5) if tiny else (512, 128)
    rng = np.random.default_rng(seed)
    x0 = eight_gaussians(rng, n, dtype)
    abar = np.cumprod(1.0 - np.linspace(1e-4, 0.02, 1000))
    t = rng.integers(0, 1000, size=n)
    eps = rng.standard_normal((n, 2))
    xt = np.sqrt(abar[t])[:, None] * x0 + np.sqrt(1.0 - abar[t])[:, None] * eps
    angle = t[:, None] * 10000.0 ** (-np.arange(8) / 8.0)
    inp = np.concatenate([xt, np.sin(angle), np.cos(angle)], axis=1).astype(dtype)
    sizes = (18, hidden, hidden, 2)
    params = {}
    for i in range(3):
        params['W%d' % (i + 1)] = uniform(rng, sizes[i], (sizes[i], sizes[i + 1]), dtype)
        params['b%d' % (i + 1)] = uniform(rng, sizes[i], (sizes[i + 1],), dtype)
    return {'inp': inp, 'eps': eps.astype(dtype), 'params': params}


def silu(a):
    return a / (1.0 + np.exp(-a))


def loss(W1, b1, W2, b2, W3, b3, inp, eps):
    h = silu(inp @ W1 + b1)
    h = silu(h @ W2 + b2)
    r = h @ W3 + b3 - eps
    return np.mean(r * r)


def _silu_fwd(a):
    """(silu(a), silu'(a)) with one exp: s = sigmoid(a), silu' = s (1 + a (1 - s))."""
    s = np.exp(-a)
    s += 1.0
    np.reciprocal(s, out=s)
    h = a * s
    d = 1.0 - s
    d *= a
    d += 1.0
    d *= s
    return h, d


def hand_value_and_grad(W1, b1, W2, b2, W3, b3, inp, eps):
    a1 = inp @ W1
    a1 += b1
    h1, d1 = _silu_fwd(a1)
    a2 = h1 @ W2
    a2 += b2
    h2, d2 = _silu_fwd(a2)
    r = h2 @ W3
    r += b3
    r -= eps
    value = np.mean(r * r)
    r *= 2.0 / r.size                                   # dL/d eps_hat
    ones = np.ones(r.shape[0], r.dtype)
    gW3, gb3 = h2.T @ r, ones @ r
    g = r @ W3.T
    g *= d2
    gW2, gb2 = h1.T @ g, ones @ g
    g = g @ W2.T
    g *= d1
    return value, (inp.T @ g, ones @ g, gW2, gb2, gW3, gb3)


# ----------------------------------------------------------------------------- peers

def peer_torch(data):
    import torch
    F = torch.nn.functional
    inp, eps = torch.from_numpy(data['inp']), torch.from_numpy(data['eps'])

    def forward(p):
        h = F.silu(inp @ p['W1'] + p['b1'])
        h = F.silu(h @ p['W2'] + p['b2'])
        return F.mse_loss(h @ p['W3'] + p['b3'], eps)

    return torch_training(data, forward, LR, "adam")


def peer_jax(data):
    import jax
    import jax.numpy as jnp
    inp, eps = jnp.asarray(data['inp']), jnp.asarray(data['eps'])

    def forward(p, inp, eps):
        h = jax.nn.silu(inp @ p['W1'] + p['b1'])
        h = jax.nn.silu(h @ p['W2'] + p['b2'])
        return jnp.mean((h @ p['W3'] + p['b3'] - eps) ** 2)

    return jax_training(data, forward, (inp, eps), LR, "adam")


WORKLOADS = [
    Workload('W7', 'ddpm', 'ddpm eps-MLP 18-128-128-2 SiLU, batch 512, Adam', 'ms',
             'forward + backward + Adam', sys.modules[__name__],
             loss, (0, 1, 2, 3, 4, 5), hand_value_and_grad,
             args=lambda p, d: tuple(p[k] for k in NAMES) + (d['inp'], d['eps']),
             names=lambda g: dict(zip(NAMES, g)),
             update=adam(LR), init_state=adam_state,
             peers={'torch': peer_torch, 'jax': peer_jax},
             budget_s=0.6, min_samples=10, seed=4),
]
