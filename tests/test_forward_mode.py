"""Forward mode: ds.jvp against finite-difference Jacobian-vector products, nth derivatives
through nested forward mode, readable tangent source, and clear errors."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import diffsrc as ds
from gradcheck import arrays, shapes
from test_higher_order import quintic, sine, tanh, tanh_4th

SETTINGS = settings(max_examples=6, deadline=None, derandomize=True)


def fd_jvp(f, args, i, v, eps=1e-6):
    """Central finite differences of f along v in argument i (float64)."""
    def shifted(s):
        moved = list(args)
        moved[i] = args[i] + s * v
        return np.asarray(f(*moved), dtype=np.float64)
    return (shifted(eps) - shifted(-eps)) / (2 * eps)


def check_jvp(f, args, i=0, rtol=1e-6, atol=1e-7, seed=0):
    rng = np.random.default_rng(seed)
    x = args[i]
    v = float(rng.normal()) if isinstance(x, float) else rng.normal(size=np.shape(x))
    tangents = [None] * len(args)
    tangents[i] = v
    y, y_dot = ds.jvp(f, tuple(args), tuple(tangents))
    np.testing.assert_allclose(y, f(*args), rtol=1e-12, atol=1e-12)
    assert np.shape(y_dot) == np.shape(y)
    np.testing.assert_allclose(y_dot, fd_jvp(f, args, i, v), rtol=rtol, atol=atol)
    return y_dot


# ------------------------------------------------------------- elementwise and broadcasting
def elementwise(x, b):
    y = np.tanh(x) * np.exp(-x * x) + np.sqrt(x * x + 1.0) / (2.0 + np.sin(b))
    return np.maximum(y, 0.1) - np.log1p(x ** 2) + np.arctan2(x, 1.5) + b - x ** 3


@SETTINGS
@given(shape=shapes(max_dims=2), data=st.data())
def test_jvp_of_elementwise_functions_with_broadcasting(shape, data):
    x = data.draw(arrays(shape))
    b = data.draw(arrays(shape[-1:]))
    check_jvp(elementwise, (x, b), 0)
    check_jvp(elementwise, (x, b), 1)


def test_a_tangent_of_a_broadcast_operand_alone_gets_the_output_shape():
    def f(x, b):
        return np.sum(x + b)
    y, y_dot = ds.jvp(f, (np.ones((3, 2)), np.ones(2)), (None, np.array([1.0, 2.0])))
    assert y_dot == pytest.approx(9.0)


# ----------------------------------------------------------------- reductions and shapes
def reductions(x):
    return (np.sum(x, axis=0) * np.mean(x) + np.max(x, axis=-1, keepdims=True).sum()
            + np.var(x) + np.std(x, axis=0).sum() + np.prod(x[:2]) + np.cumsum(x).sum())


@SETTINGS
@given(shape=shapes(min_dims=2, max_dims=2, min_side=2), data=st.data())
def test_jvp_of_reductions(shape, data):
    """Distinct entries: no ties for max, no zero standard deviation (kinks)."""
    x = data.draw(arrays(shape, lo=0.5, hi=2.0)) + 0.37 * np.arange(np.prod(shape)).reshape(shape)
    check_jvp(reductions, (x,))


def reshuffle(x):
    y = np.concatenate([x.T, x.T[::-1]], axis=1)
    z = np.stack([y, y * 2.0]).reshape(2, -1)
    w = np.pad(z, 1, mode="reflect")[:, 1:-1]
    u = w.copy()
    u[0, 1] = 3.0 * w[1, 0]
    return np.take(u, [0, 3, 3], axis=1) @ np.tile(x[:1], (1, 1)).T[:3]


def test_jvp_of_shape_functions_and_index_updates():
    x = np.random.default_rng(1).normal(size=(2, 3))
    check_jvp(reshuffle, (x,))


def linalg_mix(a):
    s = a @ a.T + 3.0 * np.eye(3)
    l = np.linalg.cholesky(s)
    return (np.linalg.det(s) * np.trace(np.linalg.inv(s)) + np.linalg.solve(s, a[:, 0]).sum()
            + np.linalg.norm(a) + np.sum(l) + np.einsum("ij,ij->", a, a)
            + np.linalg.slogdet(s).logabsdet + np.sum(np.linalg.eigvalsh(s) ** 2))


def test_jvp_of_linear_algebra():
    a = np.random.default_rng(2).normal(size=(3, 3))
    check_jvp(linalg_mix, (a,), rtol=1e-5)


# ------------------------------------------------------------------ control flow, structures
def looped(x, n):
    y = x
    total = 0.0
    for i in range(n):
        if np.sum(y) > 0:
            y = np.sin(y) * x
        else:
            y = y * y - 0.5
        total = total + np.sum(y) * i
    while total > 1.0:
        total = total / 3.0
    return total


@SETTINGS
@given(x=arrays((3,)), n=st.integers(0, 4))
def test_jvp_through_loops_and_branches(x, n):
    check_jvp(looped, (x, n))


def with_dict(params, x):
    h = np.tanh(x @ params["w"] + params["b"])
    return {"out": h, "norm": float(np.sum(h * h))}, params["scale"] * 2


def test_jvp_of_structured_arguments_and_results():
    rng = np.random.default_rng(3)
    params = {"w": rng.normal(size=(2, 3)), "b": rng.normal(size=3), "scale": 1.5}
    x = rng.normal(size=(4, 2))
    t = {"w": rng.normal(size=(2, 3)), "b": rng.normal(size=3), "scale": 0.5}
    (y, s), (y_dot, s_dot) = ds.jvp(with_dict, (params, x), (t, None))
    assert s_dot == 1.0 and type(s_dot) is float
    eps = 1e-6
    plus = with_dict({k: params[k] + eps * t[k] for k in params}, x)[0]
    minus = with_dict({k: params[k] - eps * t[k] for k in params}, x)[0]
    np.testing.assert_allclose(y_dot["out"], (plus["out"] - minus["out"]) / (2 * eps),
                               rtol=1e-6, atol=1e-8)
    assert y_dot["norm"] == pytest.approx((plus["norm"] - minus["norm"]) / (2 * eps), rel=1e-6)


def constant_in_x(x, y):
    return np.sin(y) * np.ones(3), 2.0 * y


def test_zero_output_tangents_are_real_zeros():
    (a, b), (a_dot, b_dot) = ds.jvp(constant_in_x, (np.ones(2), 0.5), (np.ones(2), None))
    assert isinstance(a_dot, np.ndarray) and a_dot.shape == (3,) and not a_dot.any()
    assert b_dot == 0.0 and type(b_dot) is float


def test_tangents_must_match_the_primals():
    with pytest.raises(ValueError, match="structure and shapes"):
        ds.jvp(looped, (np.ones(3), 2), (np.ones(2), None))


# -------------------------------------------------------- nth derivatives, closed forms
def forward_derivative(f):
    """x -> f'(x) by forward mode, a function that can be transformed again."""
    def d(x):
        return ds.jvp(f, (x,), (1.0,))[1]
    return d


def nth_forward(f, n):
    for _ in range(n):
        f = forward_derivative(f)
    return f


@settings(max_examples=5, deadline=None, derandomize=True)
@given(x=st.floats(-2.0, 2.0))
def test_fourth_derivatives_by_jvp_of_jvp(x):
    assert nth_forward(tanh, 4)(x) == pytest.approx(tanh_4th(x), rel=1e-9, abs=1e-9)
    assert nth_forward(quintic, 4)(x) == pytest.approx(120.0 * x, rel=1e-9, abs=1e-9)
    assert nth_forward(sine, 4)(x) == pytest.approx(math.sin(x), rel=1e-9, abs=1e-9)


@settings(max_examples=5, deadline=None, derandomize=True)
@given(x=st.floats(-2.0, 2.0))
def test_fourth_derivatives_forward_over_reverse(x):
    for f, expected in ((tanh, tanh_4th(x)), (quintic, 120.0 * x), (sine, math.sin(x))):
        third = ds.grad(ds.grad(ds.grad(f)))
        assert ds.jvp(third, (x,), (1.0,))[1] == pytest.approx(expected, rel=1e-9, abs=1e-9)
        assert ds.hvp(ds.grad(f))(x, 1.0) == pytest.approx(
            ds.grad(ds.grad(ds.grad(f)))(x), rel=1e-9, abs=1e-9)


def test_reverse_over_forward():
    d = forward_derivative(quintic)
    assert ds.grad(d)(1.5) == pytest.approx(20.0 * 1.5 ** 3, rel=1e-12)


# --------------------------------------------------------------------- readable source
def mlp_loss(w, x):
    h = np.tanh(x @ w)
    return np.sum(h * h)


def test_the_tangent_source_is_readable():
    rng = np.random.default_rng(4)
    w, x = rng.normal(size=(3, 2)), rng.normal(size=(4, 3))
    jvp_fn = ds.jvp(mlp_loss)
    jvp_fn((w, x), (np.ones_like(w), None))
    text = ds.source(jvp_fn)
    compile(text, "<jvp>", "exec")
    assert "def mlp_loss_jvp(w, x, w_dot):" in text
    assert "h_dot" in text and "zeros_like" not in text and "unreduce" not in text


def test_source_of_hvp_shows_the_forward_over_reverse_code():
    h = ds.hvp(mlp_loss)
    w, x = np.ones((3, 2)), np.ones((4, 3))
    h(w, x, np.ones((3, 2)))
    text = ds.source(h)
    assert "def mlp_loss_grad_jvp(w, x, w_dot):" in text and "w_bar_dot" in text
    assert "raised" not in ds.source(h, annotate=True) and "# from" in ds.source(h, annotate=True)


# -------------------------------------------------------------------------------- errors
def reverse_only_square(x):
    return x * x


def uses_reverse_only(a):
    p = reverse_only_square(a)
    return np.sum(p)


def test_a_primitive_without_tangent_rule_names_itself_the_order_and_the_line():
    from diffsrc.rules import registry
    ds.adjoint(reverse_only_square)(lambda y_bar, y, x: (2 * x * y_bar,))
    try:
        a = np.eye(2)
        np.testing.assert_allclose(ds.grad(uses_reverse_only)(a), 2 * a)
        with pytest.raises(ds.NoRuleError) as info:
            ds.jvp(uses_reverse_only, (a,), (a,))
    finally:
        del registry.PRIMITIVES[reverse_only_square]      # keeps the coverage page as is
    message = str(info.value)
    assert "reverse_only_square" in message and "forward mode" in message
    assert "test_forward_mode.py" in message and \
        str(uses_reverse_only.__code__.co_firstlineno + 1) in message


def uses_eigh(a):
    w, v = np.linalg.eigh(a @ a.T)
    return np.sum(w ** 2) + np.sum(v[:, 0] ** 2 * w)


def test_an_error_in_generated_code_differentiated_again_points_at_the_users_line():
    a = np.random.default_rng(5).normal(size=(3, 3))
    check_jvp(uses_eigh, (a,), rtol=1e-5)
    with pytest.raises(ds.NoRuleError) as info:
        ds.hvp(uses_eigh)(a, a)
    message = str(info.value)
    assert "eigh_adjoint" in message and "second order (hvp)" in message
    assert f"test_forward_mode.py:{uses_eigh.__code__.co_firstlineno + 1}:" in message


def softsign(x):
    return x / (1.0 + abs(x))


def opaque_softsign(x):
    return softsign(x)


def uses_user_rule(x):
    return opaque_softsign(x) * 2.0


def test_a_user_adjoint_rule_needs_a_tangent_rule_in_forward_mode():
    @ds.adjoint(opaque_softsign)
    def _(y_bar, y, x):
        return (y_bar / (1.0 + abs(x)) ** 2,)

    assert ds.grad(uses_user_rule)(0.5) == pytest.approx(2.0 / 1.5 ** 2)
    with pytest.raises(ds.NoRuleError, match=r"opaque_softsign.*second order \(hvp\)"):
        ds.hvp(uses_user_rule)(0.5, 1.0)
    with pytest.raises(ds.NoRuleError, match=r"opaque_softsign.*forward mode"):
        ds.jvp(uses_user_rule, (0.5,), (1.0,))

    @ds.tangent(opaque_softsign)
    def _(dots, y, x):
        (x_dot,) = dots
        return x_dot / (1.0 + abs(x)) ** 2

    assert ds.jvp(uses_user_rule, (0.5,), (1.0,))[1] == pytest.approx(2.0 / 1.5 ** 2)


# ------------------------------------------------ one operand's tangent: no copy, right shape
def shifted(x, b):
    return np.tanh(x + b) - b


@pytest.mark.parametrize("x, b, which", [
    (np.ones((3, 2)), np.ones(2), 0), (np.ones((3, 2)), np.ones(2), 1),
    (np.ones((3, 2), np.float32), np.ones(2), 0), (1.5, np.ones(2, np.float32), 0),
    (np.ones(2), np.ones((3, 2), np.float32), 0)])
def test_a_tangent_of_one_operand_has_the_outputs_shape_and_dtype(x, b, which):
    """Broadcast (a view), cast where the other operand widens the dtype, never copied
    when it already has the output's shape; what the caller gets is theirs to write."""
    args = (x, b)
    tangents = [None, None]
    tangents[which] = np.ones_like(args[which]) if which or not isinstance(x, float) else 1.0
    y, y_dot = ds.jvp(shifted, args, tuple(tangents))
    assert np.shape(y_dot) == np.shape(y) and y_dot.dtype == y.dtype and y_dot.flags.writeable
    slope = 1 - np.tanh(np.add(x, b, dtype=np.float64)) ** 2 - which    # closed form
    np.testing.assert_allclose(y_dot, slope, rtol=1e-6 if y.dtype == np.float64 else 1e-5)
    text = ds.source(ds.jvp(shifted))
    assert "unreduce" not in text


def test_spread_tangents_differentiate_again_both_ways():
    """Forward over forward and reverse over forward through a broadcast operand's tangent."""
    def dot_along_b(x, b):
        return np.sum(ds.jvp(shifted, (x, b), (None, np.ones_like(b)))[1])
    x, b = np.linspace(-1.0, 1.0, 6).reshape(3, 2), np.array([0.2, -0.4])
    g = ds.grad(dot_along_b, wrt=1)(x, b)
    np.testing.assert_allclose(g, fd_grad_of(dot_along_b, x, b), rtol=1e-6, atol=1e-8)
    _, second = ds.jvp(dot_along_b, (x, b), (None, np.array([1.0, 0.0])))
    np.testing.assert_allclose(second, g[0], rtol=1e-9)


def fd_grad_of(f, x, b, eps=1e-6):
    return np.array([(f(x, b + eps * e) - f(x, b - eps * e)) / (2 * eps) for e in np.eye(b.size)])
