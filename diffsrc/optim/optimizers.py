"""Optimizers as pure update functions over parameter trees.

Each factory returns ``Optimizer(init, update)``::

    opt = adam(lr=1e-3)
    state = opt.init(params)
    params, state = opt.update(params, grads, state)

State is a plain dict (a parameter tree itself, so ``diffsrc.tree.save``
checkpoints it) whose "step" counts the updates done so far. ``lr`` is a
float or a schedule: a function of that step count (0 for the first update),
see ``diffsrc.optim.schedules``. Updates build new arrays; the params, grads
and state passed in are never modified. grads must have the structure of
params (a mismatch raises, naming the path).

Where ``eps`` appears it is added outside the square root,
g / (sqrt(G) + eps), as in Kingma & Ba; the course notes put it inside,
g / sqrt(G + eps), which differs only by O(eps). Square roots are written
``** 0.5`` so that Python-float leaves stay Python floats.
"""
from collections import namedtuple

from ..tree import global_norm, tree_map, tree_scale, tree_zeros_like

__all__ = ["Optimizer", "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam",
           "adamw", "clip_by_global_norm"]

Optimizer = namedtuple("Optimizer", ["init", "update"])


def _rate(lr, step):
    return float(lr(step)) if callable(lr) else lr


def sgd(lr):
    """Plain gradient descent: p <- p - lr*g."""
    def init(params):
        return {"step": 0}

    def update(params, grads, state):
        a = _rate(lr, state["step"])
        new_params = tree_map(lambda p, g: p - a * g, params, grads)
        return new_params, {"step": state["step"] + 1}

    return Optimizer(init, update)


def momentum(lr, beta=0.9):
    """Heavy ball (course form): v <- beta*v + g; p <- p - lr*v; v starts at 0."""
    def init(params):
        return {"step": 0, "velocity": tree_zeros_like(params)}

    def update(params, grads, state):
        a = _rate(lr, state["step"])
        v = tree_map(lambda v, g: beta * v + g, state["velocity"], grads)
        new_params = tree_map(lambda p, v: p - a * v, params, v)
        return new_params, {"step": state["step"] + 1, "velocity": v}

    return Optimizer(init, update)


def nesterov(lr, beta=0.9):
    """Nesterov momentum: v <- beta*v + g; p <- p - lr*(g + beta*v).

    This is the usual rewrite of "take the gradient at the look-ahead point
    p + beta*v" in terms of the gradient at the current parameters, which is
    the one the caller has.
    """
    def init(params):
        return {"step": 0, "velocity": tree_zeros_like(params)}

    def update(params, grads, state):
        a = _rate(lr, state["step"])
        v = tree_map(lambda v, g: beta * v + g, state["velocity"], grads)
        new_params = tree_map(lambda p, g, v: p - a * (g + beta * v), params, grads, v)
        return new_params, {"step": state["step"] + 1, "velocity": v}

    return Optimizer(init, update)


def adagrad(lr=0.01, eps=1e-8):
    """Adagrad: G <- G + g^2; p <- p - lr*g/(sqrt(G)+eps). Steps shrink in
    directions that have seen large gradients."""
    def init(params):
        return {"step": 0, "sum_sq": tree_zeros_like(params)}

    def update(params, grads, state):
        a = _rate(lr, state["step"])
        acc = tree_map(lambda s, g: s + g * g, state["sum_sq"], grads)
        new_params = tree_map(lambda p, g, s: p - a * g / (s ** 0.5 + eps),
                              params, grads, acc)
        return new_params, {"step": state["step"] + 1, "sum_sq": acc}

    return Optimizer(init, update)


def rmsprop(lr=1e-3, beta=0.9, eps=1e-8):
    """RMSProp: G <- beta*G + (1-beta)*g^2; p <- p - lr*g/(sqrt(G)+eps). Adagrad
    with a moving average, so the step size does not decay to zero."""
    def init(params):
        return {"step": 0, "mean_sq": tree_zeros_like(params)}

    def update(params, grads, state):
        a = _rate(lr, state["step"])
        acc = tree_map(lambda s, g: beta * s + (1.0 - beta) * g * g, state["mean_sq"], grads)
        new_params = tree_map(lambda p, g, s: p - a * g / (s ** 0.5 + eps),
                              params, grads, acc)
        return new_params, {"step": state["step"] + 1, "mean_sq": acc}

    return Optimizer(init, update)


def _adam(lr, beta1, beta2, eps, weight_decay):
    def init(params):
        return {"step": 0, "m": tree_zeros_like(params), "v": tree_zeros_like(params)}

    def update(params, grads, state):
        a = _rate(lr, state["step"])
        t = state["step"] + 1
        m = tree_map(lambda m, g: beta1 * m + (1.0 - beta1) * g, state["m"], grads)
        v = tree_map(lambda v, g: beta2 * v + (1.0 - beta2) * g * g, state["v"], grads)
        c1 = 1.0 - beta1 ** t
        c2 = 1.0 - beta2 ** t

        def step(p, m, v):
            return p - a * ((m / c1) / ((v / c2) ** 0.5 + eps) + weight_decay * p)

        return tree_map(step, params, m, v), {"step": t, "m": m, "v": v}

    return Optimizer(init, update)


def adam(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    """Adam (Kingma & Ba): moving averages m, v of g and g^2, bias-corrected by
    1 - beta^t (t = 1 on the first step) because they start at 0;
    p <- p - lr * m_hat / (sqrt(v_hat) + eps)."""
    return _adam(lr, beta1, beta2, eps, 0.0)


def adamw(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01):
    """AdamW (Loshchilov & Hutter): Adam plus decoupled weight decay,
    p <- p - lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * p); the decay
    is not divided by sqrt(v_hat), unlike an L2 term added to the loss."""
    return _adam(lr, beta1, beta2, eps, weight_decay)


def clip_by_global_norm(grads, max_norm):
    """grads scaled by min(1, max_norm / global_norm(grads)): the direction is
    kept and the joint norm capped at max_norm. Always returns new arrays."""
    norm = global_norm(grads)
    scale = max_norm / norm if norm > max_norm else 1.0
    return tree_scale(grads, scale)
