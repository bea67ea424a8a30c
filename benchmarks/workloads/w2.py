"""W2 - sine-train: full-batch Adam step of the sine generator (float32).

x[k] = sin(2*pi*2*k/100), k = 0..999.  Windows X[i] = x[i:i+10], targets Y[i] = x[i+10]
for i = 0..989: X (990, 10), Y (990, 1).  Model 10 -> 64 relu -> 1 tanh
(W1 10x64, b1 64, W2 64x1, b2 1), loss MSE, Adam(1e-3, 0.9, 0.999, 1e-8).
Timed unit: forward + backward + Adam update.

diffsrc column:  vg = ds.value_and_grad(loss, wrt=(0, 1, 2, 3))
                 value, (gW1, gb1, gW2, gb2) = vg(W1, b1, W2, b2, X, Y)
"""
import sys

import numpy as np

from harness import adam, adam_state, Impl, jax_training, Workload
from workloads._data import sine_model, sine_series

LR = 1e-3
NAMES = ('W1', 'b1', 'W2', 'b2')


def make_data(seed=0, tiny=False):
    """tiny: float64, a 40-sample series (30 windows) and 6 hidden units."""
    dtype = np.float64 if tiny else np.float32
    x = sine_series(40 if tiny else 1000, dtype)
    X = np.lib.stride_tricks.sliding_window_view(x[:-1], 10).copy()
    Y = x[10:, None].copy()
    params = sine_model(np.random.default_rng(seed), dtype, hidden=6 if tiny else 64)
    return {'X': X, 'Y': Y, 'params': params}


def loss(W1, b1, W2, b2, X, Y):
    h = np.maximum(X @ W1 + b1, 0.0)
    y = np.tanh(h @ W2 + b2)
    r = y - Y
    return np.mean(r * r)


def hand_value_and_grad(W1, b1, W2, b2, X, Y):
    a = X @ W1
    a += b1
    on = a > 0.0
    h = a * on
    y = np.tanh(h @ W2 + b2)
    r = y - Y
    value = np.mean(r * r)
    # d/da2 of mean(r^2) through tanh: 2 r (1 - y^2) / n
    y *= y
    np.subtract(1.0, y, out=y)
    y *= r
    y *= 2.0 / r.size
    d2 = y                                   # (n, 1)
    gW2 = h.T @ d2
    gb2 = d2.sum(axis=0)
    dh = d2 * W2.T                           # outer product (n,1)*(1,64): cheaper than a k=1 GEMM
    dh *= on
    gW1 = X.T @ dh
    gb1 = dh.sum(axis=0)
    return value, (gW1, gb1, gW2, gb2)


# ----------------------------------------------------------------------------- peers

def peer_torch(data):
    import torch
    X, Y = torch.from_numpy(data['X']), torch.from_numpy(data['Y'])

    def forward(W1, b1, W2, b2):
        y = torch.tanh(torch.relu(X @ W1 + b1) @ W2 + b2)
        return torch.nn.functional.mse_loss(y, Y)

    params = [torch.tensor(data['params'][k], requires_grad=True) for k in NAMES]
    opt = torch.optim.Adam(params, lr=LR)

    def step():
        opt.zero_grad(set_to_none=True)
        out = forward(*params)
        out.backward()
        opt.step()
        return out

    def reference():
        ps = [torch.tensor(data['params'][k], requires_grad=True) for k in NAMES]
        out = forward(*ps)
        gs = torch.autograd.grad(out, ps)
        return out.item(), {k: g.numpy() for k, g in zip(NAMES, gs)}
    return Impl(step, reference)


def peer_jax(data):
    import jax
    import jax.numpy as jnp
    X, Y = jnp.asarray(data['X']), jnp.asarray(data['Y'])

    def forward(p, X, Y):
        y = jnp.tanh(jax.nn.relu(X @ p['W1'] + p['b1']) @ p['W2'] + p['b2'])
        return jnp.mean((y - Y) ** 2)

    return jax_training(data, forward, (X, Y), LR, "adam")


WORKLOADS = [
    Workload('W2', 'sine-train', 'sine-train 990x10 -> 64 relu -> 1 tanh, Adam', 'ms',
             'forward + backward + Adam, full batch', sys.modules[__name__],
             loss, (0, 1, 2, 3), hand_value_and_grad,
             args=lambda p, d: (p['W1'], p['b1'], p['W2'], p['b2'], d['X'], d['Y']),
             names=lambda g: dict(zip(NAMES, g)),
             update=adam(LR), init_state=adam_state,
             peers={'torch': peer_torch, 'jax': peer_jax},
             budget_s=0.6, min_samples=10, seed=0),
]
