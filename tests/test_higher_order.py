"""Higher-order derivatives from the closure property: generated code is differentiated again."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import diffsrc as ds
from gradcheck import check_grad

SETTINGS = settings(max_examples=10, deadline=None)


def nth(f, n):
    for _ in range(n):
        f = ds.grad(f)
    return f


def tanh(x):
    return math.tanh(x)


def quintic(x):
    return x ** 5


def sine(x):
    return math.sin(x)


def tanh_4th(x):
    t = math.tanh(x)
    s = 1.0 - t * t                     # sech^2
    return 16.0 * t * s * s - 8.0 * t ** 3 * s


@SETTINGS
@given(x=st.floats(-2.0, 2.0))
def test_fourth_derivatives_match_closed_forms(x):
    assert nth(tanh, 4)(x) == pytest.approx(tanh_4th(x), rel=1e-9, abs=1e-9)
    assert nth(quintic, 4)(x) == pytest.approx(120.0 * x, rel=1e-9, abs=1e-9)
    assert nth(sine, 4)(x) == pytest.approx(math.sin(x), rel=1e-9, abs=1e-9)


def test_second_derivative_of_polynomial_is_constant():
    def G(x):
        return 3 * x ** 2 + 2 * x + 1
    assert ds.grad(ds.grad(G))(5.0) == 6.0


def loop_power(x, n):
    y = 1.0
    for _ in range(n):
        y = y * x
    return y


@pytest.mark.parametrize("n", [0, 1, 2, 4])
def test_second_derivative_through_a_loop(n):
    d2 = ds.grad(ds.grad(loop_power))
    expected = n * (n - 1) * 1.3 ** (n - 2) if n >= 2 else 0.0
    assert d2(1.3, n) == pytest.approx(expected, rel=1e-10)


def branchy(x):
    if x > 0.0:
        return x ** 3
    return math.sin(x)


@pytest.mark.parametrize("x, expected", [(0.5, 3.0), (-0.5, -math.sin(-0.5))])
def test_second_derivative_through_a_branch(x, expected):
    assert ds.grad(ds.grad(branchy))(x) == pytest.approx(expected, rel=1e-10)


# ---------------------------------------------------------- sliced score matching
def score(params, x):
    h = np.tanh(x @ params["W1"] + params["b1"])
    return h @ params["W2"] + params["b2"]


def v_dot_score(x, params, v):
    return np.sum(v * score(params, x))


def ssm_loss(params, x, v):
    """mean(0.5 ||s(x)||^2 + v . d(v . s(x))/dx): a loss that contains a gradient."""
    s = score(params, x)
    vj = ds.grad(v_dot_score, wrt=0)(x, params, v)
    return np.mean(0.5 * np.sum(s * s, axis=1) + np.sum(v * vj, axis=1))


def _ssm_problem(seed, hidden=6, n=5):
    rng = np.random.default_rng(seed)
    params = {"W1": rng.normal(size=(2, hidden)), "b1": rng.normal(size=hidden),
              "W2": rng.normal(size=(hidden, 2)) * 0.5, "b2": rng.normal(size=2)}
    return params, rng.normal(size=(n, 2)), rng.normal(size=(n, 2))


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 1000))
def test_sliced_score_matching_gradient_matches_finite_differences(seed):
    params, x, v = _ssm_problem(seed)
    check_grad(ssm_loss, (params, x, v), wrt=0, rtol=1e-5, atol=1e-7)


def test_sliced_score_matching_trains():
    params, _, _ = _ssm_problem(0, hidden=16, n=64)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 2)) * 0.5 + 1.0
    step = ds.value_and_grad(ssm_loss)
    losses = []
    for _ in range(60):
        v = rng.normal(size=x.shape)
        loss, g = step(params, x, v)
        params = {k: params[k] - 0.05 * g[k] for k in params}
        losses.append(loss)
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.1


def test_higher_order_source_stays_readable():
    d2 = ds.grad(ds.grad(quintic))
    assert d2(2.0) == pytest.approx(160.0)
    text = ds.source(d2)
    compile(text, "<second-order>", "exec")
    body = text.split('"""')[-1]
    assert "x ** 4" in body and "x ** 3" in body and "unbroadcast" not in body
