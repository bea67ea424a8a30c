"""ds.hvp, ds.hessian and ds.jacobian against finite differences (float64), for functions
with loops and branches, and the forward/reverse choice of ds.jacobian."""
from collections import namedtuple
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import diffsrc as ds
from gradcheck import arrays, shapes

SETTINGS = settings(max_examples=6, deadline=None, derandomize=True)


def fd_jacobian(f, x, eps=1e-6):
    """Central differences, shaped out.shape + in.shape."""
    x = np.asarray(x, dtype=np.float64)
    cols = []
    for j in range(x.size):
        e = np.zeros_like(x)
        e.flat[j] = eps
        cols.append((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * eps))
    y = np.asarray(f(x))
    return np.stack(cols, axis=-1).reshape(y.shape + x.shape)


def branchy_loop(x, n):
    """A loop whose body branches on run-time values."""
    total = 0.0
    y = x
    for i in range(n):
        if np.sum(y) > 0.0:
            y = np.tanh(y) * x + 0.1 * i
        else:
            y = y * y - np.sin(x)
        total = total + np.sum(y * y)
    return total + np.sum(x ** 4) / 4.0


def away_from_the_branch_boundary(x, n):
    """Finite differences straddling `np.sum(y) > 0` would mix both branches."""
    y = x
    for i in range(n):
        if abs(np.sum(y)) < 1e-3:
            return False
        y = np.tanh(y) * x + 0.1 * i if np.sum(y) > 0.0 else y * y - np.sin(x)
    return True


@SETTINGS
@given(x=arrays((3,)), n=st.integers(0, 3))
def test_hvp_matches_finite_differences_of_the_gradient(x, n):
    assume(away_from_the_branch_boundary(x, n))
    v = np.linspace(-1.0, 1.0, 3)
    g = ds.grad(branchy_loop)
    eps = 1e-6
    fd = (g(x + eps * v, n) - g(x - eps * v, n)) / (2 * eps)
    np.testing.assert_allclose(ds.hvp(branchy_loop)(x, n, v), fd, rtol=1e-5, atol=1e-6)


@SETTINGS
@given(x=arrays((2, 2)), n=st.integers(1, 3))
def test_hessian_of_a_function_with_loops_and_branches(x, n):
    assume(away_from_the_branch_boundary(x, n))
    h = ds.hessian(branchy_loop)(x, n)
    assert h.shape == (2, 2, 2, 2)
    expected = fd_jacobian(lambda z: ds.grad(branchy_loop)(z, n), x)
    np.testing.assert_allclose(h, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h.reshape(4, 4), h.reshape(4, 4).T, rtol=1e-9, atol=1e-9)


def quadratic(x, a):
    return x @ a @ x + np.sum(x)


def test_hessian_of_a_quadratic_form_is_exact():
    a = np.arange(9.0).reshape(3, 3)
    np.testing.assert_allclose(ds.hessian(quadratic)(np.ones(3), a), a + a.T, rtol=0, atol=1e-12)


def cubic(x):
    return x ** 3 - 2.0 * x


def test_hessian_and_jacobian_of_floats_are_floats():
    assert ds.hessian(cubic)(2.0) == pytest.approx(12.0) and type(ds.hessian(cubic)(2.0)) \
        is float
    assert ds.jacobian(cubic)(2.0) == pytest.approx(10.0)


def widen(x):
    """R^n -> R^(3n): fewer inputs than outputs (forward mode)."""
    return np.concatenate([np.sin(x), x * x, np.cumsum(x)])


def narrow(x):
    """R^(m x n) -> R^n: more inputs than outputs (reverse mode)."""
    return np.sum(np.tanh(x) * x, axis=0)


@SETTINGS
@given(shape=shapes(min_dims=1, max_dims=2, max_side=3), data=st.data())
def test_jacobian_matches_finite_differences_both_ways(shape, data):
    x = data.draw(arrays(shape))
    jw = ds.jacobian(widen)(x.ravel())
    np.testing.assert_allclose(jw, fd_jacobian(widen, x.ravel()), rtol=1e-6, atol=1e-8)
    jn = ds.jacobian(narrow)(x)
    assert jn.shape == x.shape[1:] + x.shape
    np.testing.assert_allclose(jn, fd_jacobian(narrow, x), rtol=1e-6, atol=1e-8)


def test_jacobian_chooses_forward_or_reverse_by_size():
    wide, thin = ds.jacobian(widen), ds.jacobian(narrow)
    wide(np.ones(2))
    thin(np.ones((3, 2)))
    assert "def widen_jvp(" in ds.source(wide)
    assert "_back(" in ds.source(thin)


def scaled(x, k):
    out = x
    while k > 0:
        out = 2.0 * out
        k = k - 1
    return out


def test_jacobian_with_respect_to_a_named_argument_through_a_while_loop():
    j = ds.jacobian(scaled, wrt="x")(np.ones(2), 3)
    np.testing.assert_allclose(j, 8.0 * np.eye(2))


def test_source_of_a_hessian_is_forward_over_reverse():
    h = ds.hessian(quadratic)
    h(np.ones(2), np.eye(2))
    text = ds.source(h)
    compile(text, "<hessian>", "exec")
    assert "def quadratic_grad_jvp(x, a, x_dot):" in text
    assert "t_dot = x_dot @ a" in text and "matmul_left(" in text        # the pullback's code


# ------------------------------------------------------------ sliced score matching, hvp
def score(params, x):
    h = np.tanh(x @ params["W1"] + params["b1"])
    return h @ params["W2"] + params["b2"]


def v_dot_score(x, params, v):
    return np.sum(v * score(params, x))


def ssm_loss(params, x, v):
    s = score(params, x)
    vj = ds.grad(v_dot_score, wrt=0)(x, params, v)
    return np.mean(0.5 * np.sum(s * s, axis=1) + np.sum(v * vj, axis=1))


def test_hvp_of_the_sliced_score_matching_loss_in_its_parameters():
    """Forward over reverse over reverse: the loss already contains a gradient."""
    rng = np.random.default_rng(0)
    params = {"W1": rng.normal(size=(2, 4)), "b1": rng.normal(size=4),
              "W2": rng.normal(size=(4, 2)), "b2": rng.normal(size=2)}
    x, v = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
    t = {k: rng.normal(size=p.shape) for k, p in params.items()}
    hv = ds.hvp(ssm_loss)(params, x, v, t)
    g = ds.grad(ssm_loss)
    eps = 1e-6
    plus = g({k: params[k] + eps * t[k] for k in params}, x, v)
    minus = g({k: params[k] - eps * t[k] for k in params}, x, v)
    for k in params:
        np.testing.assert_allclose(hv[k], (plus[k] - minus[k]) / (2 * eps), rtol=1e-5,
                                   atol=1e-7)


# ------------------------------------------------- structured arguments, second order
@dataclass
class Layer:
    w: np.ndarray
    b: float


Pair = namedtuple("Pair", "w b")


def layer_loss(p, x):
    return np.sum(np.tanh(x @ p.w + p.b) ** 2)


def sum_of_weight_gradient(p, x):
    return np.sum(parts(ds.grad(layer_loss)(p, x))[0])


@pytest.mark.parametrize("cls", [Layer, Pair])
def test_hvp_and_grad_of_grad_with_a_dataclass_or_namedtuple_argument(cls):
    """The gradient's generated code rebuilds the structure with with_fields(...), which
    is read back as a structure."""
    x = np.linspace(-1.0, 1.0, 6).reshape(2, 3)
    p, t = cls(np.array([0.3, -0.2, 0.5]), 0.1), cls(np.array([1.0, 0.5, -1.0]), 1.0)
    g = ds.grad(layer_loss)
    eps = 1e-6
    plus = parts(g(cls(p.w + eps * t.w, p.b + eps * t.b), x))
    minus = parts(g(cls(p.w - eps * t.w, p.b - eps * t.b), x))
    hv = parts(ds.hvp(layer_loss)(p, x, t))
    for i in range(2):
        np.testing.assert_allclose(hv[i], (plus[i] - minus[i]) / (2 * eps), rtol=1e-6,
                                   atol=1e-8)
    gg = parts(ds.grad(sum_of_weight_gradient)(p, x))
    f = sum_of_weight_gradient
    np.testing.assert_allclose(gg[0], [(f(cls(p.w + eps * e, p.b), x) - f(cls(p.w - eps * e, p.b), x))
                                       / (2 * eps) for e in np.eye(3)], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gg[1], (f(cls(p.w, p.b + eps), x) - f(cls(p.w, p.b - eps), x))
                               / (2 * eps), rtol=1e-6, atol=1e-8)


def parts(gradient):
    """(w, b) of a gradient (a namedtuple argument's gradient comes back a plain tuple)."""
    return (gradient.w, gradient.b) if hasattr(gradient, "w") else tuple(gradient)
