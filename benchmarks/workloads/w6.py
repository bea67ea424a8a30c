"""W6 - lstm: character-level LSTM language model, full BPTT, SGD (float32).

V = 65, E = 64, H = 256, T = 50, B = 32.  tokens (32, 51) uniform over V (seed 3);
inputs = tokens[:, :50], targets = tokens[:, 1:] (one-hot Y, (32, 50, 65)).
x_t = Emb[inputs[:, t]];  G = x_t @ Wih + b + h @ Whh, gates in the order i, f, g, o;
c = sigmoid(f) c + sigmoid(i) tanh(g);  h = sigmoid(o) tanh(c);  h0 = c0 = 0.
logits_t = h_t @ Wout + bout;  loss = mean cross-entropy over all 1600 positions.
Params Emb (65,64) ~ N(0,1), Wih (64,1024), Whh (256,1024), b (1024,), Wout (256,65),
bout (65,), the last five U(+-1/sqrt(256)).  SGD lr 0.01.
The input projection is one matmul over all steps in every implementation.

diffsrc column:  vg = ds.value_and_grad(loss, wrt='params')
                 value, grads = vg(params, inputs, Y)
params is a dict {'Emb', 'Wih', 'Whh', 'b', 'Wout', 'bout'}; inputs is an int64 (32, 50)
array; the loss has a Python `for` loop over time that appends to a list, then np.stack.
"""
import sys

import numpy as np

from harness import jax_training, sgd, torch_training, Workload
from workloads._data import one_hot, uniform

LR = 0.01
NAMES = ('Emb', 'Wih', 'Whh', 'b', 'Wout', 'bout')


def make_data(seed=3, tiny=False):
    """tiny: float64, V=7, E=3, H=4, T=5, B=2."""
    dtype = np.float64 if tiny else np.float32
    V, E, H, T, B = (7, 3, 4, 5, 2) if tiny else (65, 64, 256, 50, 32)
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, V, size=(B, T + 1))
    params = {'Emb': rng.standard_normal((V, E)).astype(dtype),
              'Wih': uniform(rng, H, (E, 4 * H), dtype),
              'Whh': uniform(rng, H, (H, 4 * H), dtype),
              'b': uniform(rng, H, (4 * H,), dtype),
              'Wout': uniform(rng, H, (H, V), dtype),
              'bout': uniform(rng, H, (V,), dtype)}
    inputs, targets = tokens[:, :T].copy(), tokens[:, 1:].copy()
    return {'inputs': inputs, 'targets': targets, 'Y': one_hot(targets, V, dtype),
            'params': params}


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def cross_entropy(z, Y):
    """Mean softmax cross-entropy over the last axis, labels one-hot in Y."""
    m = np.max(z, axis=-1, keepdims=True)
    lse = np.log(np.sum(np.exp(z - m), axis=-1, keepdims=True)) + m
    return np.mean(np.sum(Y * (lse - z), axis=-1))


def loss(params, inputs, Y):
    Whh = params['Whh']
    n, steps = inputs.shape
    hidden = Whh.shape[0]
    xw = params['Emb'][inputs] @ params['Wih'] + params['b']       # (B, T, 4H)
    h = np.zeros((n, hidden), dtype=Whh.dtype)
    c = np.zeros((n, hidden), dtype=Whh.dtype)
    hs = []
    for t in range(steps):
        gates = xw[:, t, :] + h @ Whh
        i = sigmoid(gates[:, :hidden])
        f = sigmoid(gates[:, hidden:2 * hidden])
        g = np.tanh(gates[:, 2 * hidden:3 * hidden])
        o = sigmoid(gates[:, 3 * hidden:])
        c = f * c + i * g
        h = o * np.tanh(c)
        hs.append(h)
    logits = np.stack(hs, axis=1) @ params['Wout'] + params['bout']  # (B, T, V)
    return cross_entropy(logits, Y)


# ----------------------------------------------------------------------------- hand

def hand_value_and_grad(params, inputs, Y):
    """Time-major forward with stored gate activations, then BPTT.  Returns (value, dict)."""
    Emb, Wih, Whh, Wout = params['Emb'], params['Wih'], params['Whh'], params['Wout']
    B, T = inputs.shape
    H = Whh.shape[0]
    V = Wout.shape[1]
    dt = Whh.dtype
    tok = inputs.T.reshape(-1)                          # row t*B + b
    X = Emb[tok]                                        # (T*B, E)
    XW = (X @ Wih).reshape(T, B, 4 * H)
    XW += params['b']
    A = np.empty((T, B, 4 * H), dt)                     # activated gates i, f, g, o
    C = np.empty((T, B, H), dt)
    TC = np.empty((T, B, H), dt)                        # tanh(c)
    Hs = np.empty((T, B, H), dt)
    h = np.zeros((B, H), dt)
    c = np.zeros((B, H), dt)
    for t in range(T):
        G = h @ Whh
        G += XW[t]
        a = A[t]
        np.negative(G, out=a)
        np.exp(a, out=a)
        a += 1.0
        np.reciprocal(a, out=a)
        np.tanh(G[:, 2 * H:3 * H], out=a[:, 2 * H:3 * H])
        np.multiply(a[:, H:2 * H], c, out=C[t])
        C[t] += a[:, :H] * a[:, 2 * H:3 * H]
        c = C[t]
        np.tanh(c, out=TC[t])
        h = np.multiply(a[:, 3 * H:], TC[t], out=Hs[t])
    Hf = Hs.reshape(T * B, H)
    Yf = Y.transpose(1, 0, 2).reshape(T * B, V)
    z = Hf @ Wout
    z += params['bout']
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    value = np.mean(np.log(s[:, 0]) - np.einsum('ij,ij->i', Yf, z))
    e /= s
    e -= Yf
    e *= 1.0 / (T * B)                                  # dL/dlogits
    ones = np.ones(T * B, dt)
    g = {'Wout': Hf.T @ e, 'bout': ones @ e}
    dHs = (e @ Wout.T).reshape(T, B, H)
    dG = np.empty((T, B, 4 * H), dt)
    dh_next = np.zeros((B, H), dt)
    dc = np.zeros((B, H), dt)
    WhhT = np.ascontiguousarray(Whh.T)
    for t in range(T - 1, -1, -1):
        a = A[t]
        i, f, gg, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        tc = TC[t]
        dh = dHs[t] + dh_next
        dgt = dG[t]
        # output gate: h = o tanh(c)
        np.multiply(dh, tc, out=dgt[:, 3 * H:])
        dgt[:, 3 * H:] *= o * (1.0 - o)
        # cell: dc += dh o (1 - tanh(c)^2)
        dh *= o
        dh *= 1.0 - tc * tc
        dc += dh
        np.multiply(dc, gg, out=dgt[:, :H])             # input gate
        dgt[:, :H] *= i * (1.0 - i)
        if t > 0:
            np.multiply(dc, C[t - 1], out=dgt[:, H:2 * H])  # forget gate
            dgt[:, H:2 * H] *= f * (1.0 - f)
        else:
            dgt[:, H:2 * H] = 0.0
        np.multiply(dc, i, out=dgt[:, 2 * H:3 * H])     # candidate
        dgt[:, 2 * H:3 * H] *= 1.0 - gg * gg
        dc *= f
        dh_next = dgt @ WhhT
    dGf = dG.reshape(T * B, 4 * H)
    g['Whh'] = Hs[:-1].reshape(-1, H).T @ dG[1:].reshape(-1, 4 * H)    # h_{t-1} = 0 at t = 0
    g['Wih'] = X.T @ dGf
    g['b'] = ones @ dGf
    rows = np.zeros((T * B, Emb.shape[0]), dt)          # embedding: one-hot^T @ dX
    rows[np.arange(T * B), tok] = 1.0
    g['Emb'] = rows.T @ (dGf @ Wih.T)
    return value, g


# ----------------------------------------------------------------------------- peers

def peer_torch(data):
    import torch
    F = torch.nn.functional
    inputs = torch.from_numpy(data['inputs'])
    targets = torch.from_numpy(data['targets']).reshape(-1)

    def forward(p):
        xw = p['Emb'][inputs] @ p['Wih'] + p['b']
        n, steps = inputs.shape
        h = torch.zeros(n, p['Whh'].shape[0])
        c = torch.zeros_like(h)
        hs = []
        for t in range(steps):
            i, f, g, o = (xw[:, t] + h @ p['Whh']).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            hs.append(h)
        logits = torch.stack(hs, 1) @ p['Wout'] + p['bout']
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets)

    return torch_training(data, forward, LR)


def peer_jax(data):
    import jax
    import jax.numpy as jnp
    inputs, Y = jnp.asarray(data['inputs']), jnp.asarray(data['Y'])

    def forward(p, inputs, Y):
        xw = p['Emb'][inputs.T] @ p['Wih'] + p['b']                 # (T, B, 4H)
        H = p['Whh'].shape[0]

        def cell(carry, x):
            h, c = carry
            i, f, g, o = jnp.split(x + h @ p['Whh'], 4, axis=1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), h

        zero = jnp.zeros((inputs.shape[0], H), xw.dtype)
        _, hs = jax.lax.scan(cell, (zero, zero), xw)                 # (T, B, H)
        logp = jax.nn.log_softmax(hs @ p['Wout'] + p['bout'])
        return -jnp.mean(jnp.sum(jnp.swapaxes(Y, 0, 1) * logp, axis=-1))

    return jax_training(data, forward, (inputs, Y), LR)


WORKLOADS = [
    Workload('W6', 'lstm', 'lstm V65 E64 H256 T50 B32, full BPTT, SGD', 'ms',
             'forward + BPTT + SGD', sys.modules[__name__],
             loss, 'params', hand_value_and_grad,
             args=lambda p, d: (p, d['inputs'], d['Y']),
             names=lambda g: g,
             update=sgd(LR),
             peers={'torch': peer_torch, 'jax': peer_jax},
             budget_s=1.5, min_samples=5, warmup=1, seed=3),
]
