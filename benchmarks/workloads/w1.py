"""W1 - scalar functions (float64; Python floats in, Python floats out).

W1a  F(a, b) = a / (1 + b^2) at (1, 2):  F = 0.2,  dF/da = 0.2,  dF/db = -0.16
W1b  G(x) = 3x^2 + 2x + 1   at 5:       G = 86,   G'(5) = 32

The timed unit is one call, value and gradient, including turning the results into
Python floats: the latency a user sees for a scalar function.  There is no update.

diffsrc column:  ds.value_and_grad(loss, wrt=(0, 1))(1.0, 2.0) -> (value, (da, db))
                 ds.value_and_grad(loss_poly, wrt=0)(5.0)      -> (value, dx)
"""
import sys

import numpy as np  # noqa: F401  (the convention of every workload module)

from harness import Impl, Workload


def make_data(seed=0, tiny=False):
    """The evaluation points (the seed is unused: nothing is random)."""
    return {'params': {'a': 1.0, 'b': 2.0, 'x': 5.0}}


def loss(a, b):
    return a / (1.0 + b ** 2)


def loss_poly(x):
    return 3.0 * x ** 2 + 2.0 * x + 1.0


def hand_value_and_grad(a, b):
    d = 1.0 + b * b
    q = a / d
    return q, (1.0 / d, -2.0 * b * q / d)


def hand_value_and_grad_poly(x):
    return (3.0 * x + 2.0) * x + 1.0, 6.0 * x + 2.0


# ----------------------------------------------------------------------------- peers

def _torch_impl(fn, names, point):
    import torch

    def step():
        xs = [torch.tensor(point[k], dtype=torch.float64, requires_grad=True) for k in names]
        y = fn(*xs)
        gs = torch.autograd.grad(y, xs)
        return (y.item(),) + tuple(g.item() for g in gs)

    def reference():
        out = step()
        return out[0], dict(zip(names, out[1:]))
    return Impl(step, reference)


def _jax_impl(fn, names, point):
    import jax
    jax.config.update('jax_enable_x64', True)
    vg = jax.jit(jax.value_and_grad(fn, argnums=tuple(range(len(names)))))
    args = [point[k] for k in names]

    def step():
        v, gs = vg(*args)
        return (float(v),) + tuple(float(g) for g in gs)

    def reference():
        out = step()
        return out[0], dict(zip(names, out[1:]))
    return Impl(step, reference)


def peer_torch(data):
    return _torch_impl(lambda a, b: a / (1.0 + b ** 2), ('a', 'b'), data['params'])


def peer_jax(data):
    return _jax_impl(loss, ('a', 'b'), data['params'])


def peer_torch_poly(data):
    return _torch_impl(lambda x: 3.0 * x ** 2 + 2.0 * x + 1.0, ('x',), data['params'])


def peer_jax_poly(data):
    return _jax_impl(loss_poly, ('x',), data['params'])


_module = sys.modules[__name__]
WORKLOADS = [
    Workload('W1a', 'scalar F(a,b)', 'scalar F(a,b) = a/(1+b^2)', 'us', 'one call, floats in and out', _module,
             loss, (0, 1), hand_value_and_grad,
             args=lambda p, d: (p['a'], p['b']),
             names=lambda g: {'a': g[0], 'b': g[1]},
             floats=lambda out: (float(out[0]), float(out[1][0]), float(out[1][1])),
             peers={'torch': peer_torch, 'jax': peer_jax},
             expected=(0.2, {'a': 0.2, 'b': -0.16}),
             budget_s=0.5, min_samples=20, warmup=200, target_sample_s=0.005),
    Workload('W1b', 'scalar G(x)', 'scalar G(x) = 3x^2+2x+1', 'us', 'one call, floats in and out', _module,
             loss_poly, 0, hand_value_and_grad_poly,
             args=lambda p, d: (p['x'],),
             names=lambda g: {'x': g},
             floats=lambda out: (float(out[0]), float(out[1])),
             peers={'torch': peer_torch_poly, 'jax': peer_jax_poly},
             expected=(86.0, {'x': 32.0}),
             budget_s=0.5, min_samples=20, warmup=200, target_sample_s=0.005),
]
