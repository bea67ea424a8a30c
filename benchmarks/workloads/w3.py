"""W3 - sine-steer: online steering of the sine generator, batch 1 (float32).

W2's model with fixed random parameters (seed 0).  gen[0:10] = x[0:10]; for t = 10..999:
    y = model(gen[t-10:t] as a (1, 10) batch)          the prediction
    g = d (x[t] - y)^2 / d W2                           the last weight only
    W2 <- W2 - 0.05 * g / (||g|| + 1e-12)
    gen[t] = y                                          (made before the update)
Timed unit: the whole 990-step loop, restarted from the initial W2.  It is bound by
per-call dispatch (64-element arrays), not by arithmetic.

diffsrc column:  dW2 = ds.grad(step_loss_and_prediction, wrt='W2', has_aux=True)
                 g, y = dW2(W2, W1, b1, b2, window, target)  window (1, 10), target float32
(has_aux returns the prediction made on the way, so y and g come from one pass, as in
the hand column; autograd's grad has no aux, so its column runs a second, plain forward.)

Gradient check: the first-step gradient, plus W2 and gen[199] after the loop has run to
t = 200.  The closed loop amplifies float32 rounding, so later states are not compared.
"""
import sys

import numpy as np

from harness import Impl, Workload, autograd_fn, jax_sync, unoptimised
from workloads._data import sine_model, sine_series

LR = 0.05
T_END = 1000
CHECK_T = 200


def make_data(seed=0, tiny=False):
    """tiny: the same shapes in float64 (the model is already small)."""
    dtype = np.float64 if tiny else np.float32
    return {'x': sine_series(1000, dtype),
            'params': sine_model(np.random.default_rng(seed), dtype)}


def predict(W2, W1, b1, b2, window):
    h = np.maximum(window @ W1 + b1, 0.0)
    return np.tanh(h @ W2 + b2)


def step_loss(W2, W1, b1, b2, window, target):
    r = target - predict(W2, W1, b1, b2, window)
    return np.sum(r * r)


def step_loss_and_prediction(W2, W1, b1, b2, window, target):
    y = predict(W2, W1, b1, b2, window)
    r = target - y
    return np.sum(r * r), y


def hand_predict_and_grad(W2, W1, b1, b2, window, target):
    """(y, dL/dW2) in one forward pass: dL/dW2 = -2 (target - y)(1 - y^2) h^T."""
    a = window @ W1
    a += b1
    h = np.maximum(a, 0.0, out=a)
    y = np.tanh(h @ W2 + b2)
    yv = y[0, 0]
    return y, h.T * (-2.0 * (target - yv) * (1.0 - yv * yv))


def hand_grad(W2, W1, b1, b2, window, target):
    """What ds.grad(step_loss, wrt='W2') returns."""
    return hand_predict_and_grad(W2, W1, b1, b2, window, target)[1]


def steer(x, W2_0, predict_and_grad, T=T_END):
    """The steering loop; predict_and_grad(W2, window, target) -> (y, g)."""
    W2 = W2_0.copy()
    gen = np.empty_like(x)
    gen[:10] = x[:10]
    for t in range(10, T):
        y, g = predict_and_grad(W2, gen[t - 10:t].reshape(1, 10), x[t])
        W2 -= LR * g / (np.sqrt(np.sum(g * g)) + 1e-12)
        gen[t] = y[0, 0]
    return W2, gen


def _first_args(data):
    """step_loss's arguments at the first step of the loop."""
    x, p = data['x'], data['params']
    return (p['W2'], p['W1'], p['b1'], p['b2'], x[0:10].reshape(1, 10), x[10])


def _steer_impl(data, grad_w2, predict_and_grad):
    x, W2_0 = data['x'], data['params']['W2']
    first = _first_args(data)

    def step():
        return steer(x, W2_0, predict_and_grad)

    def reference():
        g = grad_w2(*first)
        W2, gen = steer(x, W2_0, predict_and_grad, CHECK_T)
        return float(step_loss(*first)), {'W2': g, 'W2_t200': W2, 'gen_t199': gen[CHECK_T - 1]}
    return Impl(step, reference, lambda: grad_w2(*first))


def _with_plain_predict(data, grad_w2):
    p = data['params']
    W1, b1, b2 = p['W1'], p['b1'], p['b2']

    def predict_and_grad(W2, window, target):
        return (predict(W2, W1, b1, b2, window),
                grad_w2(W2, W1, b1, b2, window, target))
    return _steer_impl(data, grad_w2, predict_and_grad)


def impl_hand(wl, data):
    p = data['params']
    W1, b1, b2 = p['W1'], p['b1'], p['b2']

    def predict_and_grad(W2, window, target):
        return hand_predict_and_grad(W2, W1, b1, b2, window, target)
    return _steer_impl(data, hand_grad, predict_and_grad)


def _with_aux_prediction(data, grad_and_y):
    """predict_and_grad from one has_aux gradient call."""
    p = data['params']
    W1, b1, b2 = p['W1'], p['b1'], p['b2']

    def predict_and_grad(W2, window, target):
        g, y = grad_and_y(W2, W1, b1, b2, window, target)
        return y, g
    return _steer_impl(data, lambda *args: grad_and_y(*args)[0], predict_and_grad)


def impl_diffsrc(wl, data):
    import diffsrc as ds
    return _with_aux_prediction(data, ds.grad(step_loss_and_prediction, wrt='W2',
                                              has_aux=True))


def impl_diffsrc_noopt(wl, data):
    import diffsrc as ds
    return _with_aux_prediction(data, unoptimised(
        ds.grad(step_loss_and_prediction, wrt='W2', has_aux=True), _first_args(data)))


def impl_autograd(wl, data):
    import autograd
    return _with_plain_predict(data, autograd.grad(autograd_fn(wl, step_loss), 0))


# ----------------------------------------------------------------------------- peers

def peer_torch(data):
    import torch
    x = torch.from_numpy(data['x'])
    p = {k: torch.from_numpy(v) for k, v in data['params'].items()}
    W1, b1, b2 = p['W1'], p['b1'], p['b2']

    def grad_and_y(W2, window, target):
        W2 = W2.detach().requires_grad_(True)
        y = torch.tanh(torch.relu(window @ W1 + b1) @ W2 + b2)
        (g,) = torch.autograd.grad(((target - y) ** 2).sum(), W2)
        return g, y.detach()

    def loop(T=T_END):
        W2 = p['W2'].clone()
        gen = torch.empty(T_END, dtype=x.dtype)
        gen[:10] = x[:10]
        for t in range(10, T):
            g, y = grad_and_y(W2, gen[t - 10:t].view(1, 10), x[t])
            W2 -= LR * g / (g.norm() + 1e-12)
            gen[t] = y[0, 0]
        return W2, gen

    def reference():
        g, _ = grad_and_y(p['W2'], x[0:10].view(1, 10), x[10])
        y = torch.tanh(torch.relu(x[0:10].view(1, 10) @ W1 + b1) @ p['W2'] + b2)
        W2, gen = loop(CHECK_T)
        return (((x[10] - y) ** 2).sum().item(),
                {'W2': g.numpy(), 'W2_t200': W2.numpy(), 'gen_t199': gen[CHECK_T - 1].numpy()})
    return Impl(loop, reference)


def peer_jax(data):
    import jax
    import jax.numpy as jnp
    x = jnp.asarray(data['x'])
    p = {k: jnp.asarray(v) for k, v in data['params'].items()}

    def sq_err(W2, window, target):
        y = jnp.tanh(jax.nn.relu(window @ p['W1'] + p['b1']) @ W2 + p['b2'])
        return jnp.sum((target - y) ** 2), y

    grad_y = jax.grad(sq_err, has_aux=True)

    @jax.jit
    def one_step(W2, gen, t):
        window = jax.lax.dynamic_slice(gen, (t - 10,), (10,)).reshape(1, 10)
        g, y = grad_y(W2, window, x[t])
        return W2 - LR * g / (jnp.linalg.norm(g) + 1e-12), gen.at[t].set(y[0, 0])

    gen0 = jnp.zeros_like(x).at[:10].set(x[:10])
    first = jax.jit(jax.value_and_grad(sq_err, has_aux=True))

    def loop(T=T_END):
        W2, gen = p['W2'], gen0
        for t in range(10, T):
            W2, gen = one_step(W2, gen, t)
        return W2, gen

    def reference():
        (value, _), g = first(p['W2'], x[0:10].reshape(1, 10), x[10])
        W2, gen = loop(CHECK_T)
        return float(value), {'W2': np.asarray(g), 'W2_t200': np.asarray(W2),
                              'gen_t199': np.asarray(gen[CHECK_T - 1])}
    return Impl(loop, reference, sync=jax_sync)


WORKLOADS = [
    Workload('W3', 'sine-steer', 'sine-steer 990 online steps, batch 1, grad wrt W2 only', 'ms',
             'the whole 990-step loop', sys.modules[__name__],
             step_loss, 'W2', hand_grad,
             args=lambda p, d: (p['W2'], p['W1'], p['b1'], p['b2'],
                                d['x'][0:10].reshape(1, 10), d['x'][10]),
             names=lambda g: {'W2': g},
             peers={'torch': peer_torch, 'jax': peer_jax},
             impls={'hand': impl_hand, 'diffsrc': impl_diffsrc, 'autograd': impl_autograd,
                    'diffsrc-noopt': impl_diffsrc_noopt},
             budget_s=1.2, min_samples=5, warmup=1, seed=0),
]
