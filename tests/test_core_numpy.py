"""Core transformer acceptance tests: the NumPy core needed by small models.

Elementwise arithmetic with broadcasting, exp/log/sqrt/tanh/sin/cos/maximum,
sum/mean with axis and keepdims, dot, matmul/@, .T, reshape, basic slicing,
dtype preservation (float32 in -> float32 gradient).
"""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import diffsrc as ds

try:
    from gradcheck import (arrays, broadcast_pair, check_grad, floats, nonzero_arrays,
                           positive_arrays, shapes)
except ImportError:  # tests/ turned into a package
    from tests.gradcheck import (arrays, broadcast_pair, check_grad, floats, nonzero_arrays,
                                 positive_arrays, shapes)

HYP = settings(max_examples=25, deadline=None)
EXACT = dict(rtol=1e-12, atol=1e-12)

# ---------------------------------------------------------------------------
# elementwise arithmetic with broadcasting
# ---------------------------------------------------------------------------


def ew_add(a, b):
    return np.sum(np.sin(a + b * 2.0 + 1.0))


def ew_sub(a, b):
    return np.sum((a - b - 0.5) ** 2)


def ew_mul(a, b):
    return np.sum(a * b * a)


def ew_div(a, b):
    return np.sum(a / b + 1.0 / (2.0 + a * a))


def ew_pow(a, b):
    return np.sum(b ** a)


def ew_neg(a, b):
    return np.sum(-a * (-b) + (+a))


def ew_mixed(a, b):
    return np.sum(a * b + a / (1.5 + b * b) - b**2 + 3.0 * a - b)


BROADCAST_CASES = [
    (ew_add, dict()),
    (ew_sub, dict()),
    (ew_mul, dict()),
    (ew_div, dict(lo_b=0.5, hi_b=3.0)),
    (ew_pow, dict(lo_b=0.5, hi_b=3.0)),
    (ew_neg, dict()),
    (ew_mixed, dict()),
]


@pytest.mark.parametrize("fn, kw", BROADCAST_CASES, ids=[c[0].__name__ for c in BROADCAST_CASES])
@HYP
@given(data=st.data())
def test_elementwise_broadcasting_matches_fd(fn, kw, data):
    a, b = data.draw(broadcast_pair(**kw), label="a, b")
    check_grad(fn, (a, b), wrt=(0, 1))


def test_broadcast_gradient_is_reduced_to_argument_shape():
    a = np.arange(6.0).reshape(2, 3)
    b = np.array([1.0, 2.0, 3.0])
    c = np.array([[10.0], [20.0]])
    ga, gb, gc = ds.grad(lambda_free_broadcast, wrt=(0, 1, 2))(a, b, c)
    assert ga.shape == (2, 3) and gb.shape == (3,) and gc.shape == (2, 1)
    np.testing.assert_allclose(ga, np.ones((2, 3)) * b * c, **EXACT)
    np.testing.assert_allclose(gb, np.sum(a * c, axis=0), **EXACT)
    np.testing.assert_allclose(gc, np.sum(a * b, axis=1, keepdims=True), **EXACT)


def lambda_free_broadcast(a, b, c):
    return np.sum(a * b * c)


def scalar_times_array(s, x):
    return np.sum(s * x + x / s)


@HYP
@given(s=floats(0.5, 3.0), x=arrays())
def test_python_float_with_array_gives_float_gradient(s, x):
    gs, gx = check_grad(scalar_times_array, (s, x), wrt=(0, 1))
    assert isinstance(gs, float)


def test_float_gradient_of_scalar_closed_form():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    gs = ds.grad(scalar_times_array)(2.0, x)
    assert isinstance(gs, float)
    assert gs == pytest.approx(10.0 - 10.0 / 4.0, rel=1e-12)


# ---------------------------------------------------------------------------
# elementwise functions
# ---------------------------------------------------------------------------


def u_exp(x):
    return np.sum(np.exp(x) * x)


def u_log(x):
    return np.sum(np.log(x) * x)


def u_sqrt(x):
    return np.sum(np.sqrt(x) + x)


def u_tanh(x):
    return np.sum(np.tanh(x) ** 2)


def u_sin(x):
    return np.sum(np.sin(x) * x)


def u_cos(x):
    return np.sum(np.cos(x * 2.0))


def u_relu(x):
    return np.sum(np.maximum(x, 0.0) * x)


def u_relu_left(x):
    return np.sum(np.maximum(0.0, x) ** 2)


def u_composed(x):
    return np.sum(np.log(1.0 + np.exp(np.sin(x))) * np.cos(x) + np.sqrt(1.0 + np.tanh(x) ** 2))


UNARY_CASES = [
    (u_exp, arrays()),
    (u_log, positive_arrays()),
    (u_sqrt, positive_arrays()),
    (u_tanh, arrays()),
    (u_sin, arrays()),
    (u_cos, arrays()),
    (u_relu, nonzero_arrays()),
    (u_relu_left, nonzero_arrays()),
    (u_composed, arrays()),
]


@pytest.mark.parametrize("fn, strat", UNARY_CASES, ids=[c[0].__name__ for c in UNARY_CASES])
@HYP
@given(data=st.data())
def test_elementwise_functions_match_fd(fn, strat, data):
    x = data.draw(strat, label="x")
    check_grad(fn, (x,), wrt=0)


@pytest.mark.parametrize(
    "fn, deriv",
    [
        ("exp", lambda x: np.exp(x)),
        ("log", lambda x: 1.0 / x),
        ("sqrt", lambda x: 0.5 / np.sqrt(x)),
        ("tanh", lambda x: 1.0 - np.tanh(x) ** 2),
        ("sin", lambda x: np.cos(x)),
        ("cos", lambda x: -np.sin(x)),
    ],
    ids=["exp", "log", "sqrt", "tanh", "sin", "cos"],
)
def test_elementwise_closed_forms(fn, deriv):
    x = np.array([0.3, 0.9, 1.7, 2.5])
    g = ds.grad(CLOSED_FORM_FUNCS[fn])(x)
    np.testing.assert_allclose(g, deriv(x), **EXACT)


def cf_exp(x):
    return np.sum(np.exp(x))


def cf_log(x):
    return np.sum(np.log(x))


def cf_sqrt(x):
    return np.sum(np.sqrt(x))


def cf_tanh(x):
    return np.sum(np.tanh(x))


def cf_sin(x):
    return np.sum(np.sin(x))


def cf_cos(x):
    return np.sum(np.cos(x))


CLOSED_FORM_FUNCS = dict(exp=cf_exp, log=cf_log, sqrt=cf_sqrt, tanh=cf_tanh, sin=cf_sin,
                         cos=cf_cos)


def maximum_pair(a, b):
    return np.sum(np.maximum(a, b) * (a + 2.0 * b))


@HYP
@given(ab=broadcast_pair())
def test_maximum_of_two_arrays_matches_fd(ab):
    a, b = ab
    assume(np.min(np.abs(np.subtract(a, b))) > 1e-3)
    check_grad(maximum_pair, (a, b), wrt=(0, 1))


def relu_sum(x):
    return np.sum(np.maximum(x, 0.0))


def test_relu_closed_form():
    x = np.array([-1.0, 2.0, -0.5, 3.0])
    np.testing.assert_array_equal(ds.grad(relu_sum)(x), np.array([0.0, 1.0, 0.0, 1.0]))


# ---------------------------------------------------------------------------
# reductions: sum / mean with axis and keepdims
# ---------------------------------------------------------------------------


def red_sum(x, axis, keepdims):
    y = np.sum(x * x, axis=axis, keepdims=keepdims)
    return np.sum(np.sin(y))


def red_mean(x, axis, keepdims):
    y = np.mean(x * x, axis=axis, keepdims=keepdims)
    return np.sum(np.sin(y) * 3.0)


def red_method_sum(x, axis, keepdims):
    y = (x * x).sum(axis=axis, keepdims=keepdims)
    return np.sin(y).sum()


def red_method_mean(x, axis, keepdims):
    y = (x * x).mean(axis=axis, keepdims=keepdims)
    return np.sin(y).mean()


@st.composite
def array_axis_keepdims(draw):
    x = draw(arrays(shapes(1, 3)))
    nd = x.ndim
    choices = [st.none(), st.integers(-nd, nd - 1)]
    if nd >= 2:
        choices.append(
            st.lists(st.integers(0, nd - 1), min_size=2, max_size=nd, unique=True).map(
                lambda v: tuple(sorted(v))))
    axis = draw(st.one_of(*choices))
    keepdims = draw(st.booleans())
    return x, axis, keepdims


@pytest.mark.parametrize("fn", [red_sum, red_mean, red_method_sum, red_method_mean],
                         ids=lambda f: f.__name__)
@HYP
@given(case=array_axis_keepdims())
def test_reductions_with_axis_and_keepdims_match_fd(fn, case):
    x, axis, keepdims = case
    check_grad(fn, (x, axis, keepdims), wrt=0)


def red_sum_axis0(x):
    return np.sum(np.sum(x, axis=0) ** 2)


def red_sum_axis1_keep(x):
    return np.sum((x - np.mean(x, axis=1, keepdims=True)) ** 2)


def red_mean_last(x):
    return np.sum(np.mean(x, axis=-1) ** 3)


def red_positional_axis(x):
    return np.sum(np.sum(x, 1) * np.arange(x.shape[0]))


def red_full_mean(x):
    return np.mean(x**2)


@pytest.mark.parametrize(
    "fn", [red_sum_axis0, red_sum_axis1_keep, red_mean_last, red_positional_axis, red_full_mean],
    ids=lambda f: f.__name__,
)
@HYP
@given(x=arrays(shapes(2, 2)))
def test_literal_axis_reductions_match_fd(fn, x):
    check_grad(fn, (x,), wrt=0)


def test_mean_closed_form():
    x = np.arange(12.0).reshape(3, 4)
    np.testing.assert_allclose(ds.grad(red_full_mean)(x), 2 * x / 12.0, **EXACT)


def test_centering_with_keepdims_closed_form():
    x = np.array([[1.0, 2.0, 6.0], [0.0, -1.0, 4.0]])
    c = x - x.mean(axis=1, keepdims=True)
    # d/dx sum(c**2) = 2c - mean(2c) = 2c (rows of c sum to zero)
    np.testing.assert_allclose(ds.grad(red_sum_axis1_keep)(x), 2 * c, **EXACT)


# ---------------------------------------------------------------------------
# dot, matmul, @, .T
# ---------------------------------------------------------------------------


def dot_vv(u, v):
    return np.dot(u, v) ** 2


def dot_mv(A, v):
    return np.sum(np.tanh(np.dot(A, v)))


def dot_mm(A, B):
    return np.sum(np.sin(np.dot(A, B)))


def dot_method(A, v):
    return np.sum(A.dot(v) ** 2)


def mm_at(A, B):
    return np.sum(np.tanh(A @ B))


def mm_mv(A, v):
    return np.sum((A @ v) ** 2)


def mm_vm(v, A):
    return np.sum(np.sin(v @ A))


def mm_vv(u, v):
    return np.sin(u @ v)


def mm_np_matmul(A, B):
    return np.sum(np.matmul(A, B) ** 2)


def mm_transpose(A, B):
    return np.sum((A.T @ B) ** 2)


def mm_gram(A):
    return np.sum(np.cos(A @ A.T))


def mm_batched(A, B):
    return np.sum(np.tanh(A @ B))


@st.composite
def dims(draw, count):
    return tuple(draw(st.integers(1, 4)) for _ in range(count))


@HYP
@given(data=st.data())
def test_dot_and_matmul_match_fd(data):
    n, k, m, b = data.draw(dims(4), label="n,k,m,b")
    A = data.draw(arrays((n, k)), label="A")
    B = data.draw(arrays((k, m)), label="B")
    u = data.draw(arrays((k,)), label="u")
    v = data.draw(arrays((k,)), label="v")
    w = data.draw(arrays((n,)), label="w")
    At = data.draw(arrays((k, n)), label="At")
    Ab = data.draw(arrays((b, n, k)), label="Abatch")
    check_grad(dot_vv, (u, v), wrt=(0, 1))
    check_grad(dot_mv, (A, v), wrt=(0, 1))
    check_grad(dot_mm, (A, B), wrt=(0, 1))
    check_grad(dot_method, (A, v), wrt=(0, 1))
    check_grad(mm_at, (A, B), wrt=(0, 1))
    check_grad(mm_mv, (A, v), wrt=(0, 1))
    check_grad(mm_vm, (w, A), wrt=(0, 1))
    check_grad(mm_vv, (u, v), wrt=(0, 1))
    check_grad(mm_np_matmul, (A, B), wrt=(0, 1))
    check_grad(mm_transpose, (At, B), wrt=(0, 1))
    check_grad(mm_gram, (A,), wrt=0)
    check_grad(mm_batched, (Ab, B), wrt=(0, 1))


def matmul_sum(A, B):
    return np.sum(A @ B)


def test_matmul_closed_form():
    A = np.arange(6.0).reshape(2, 3)
    B = np.arange(12.0).reshape(3, 4) / 10.0
    gA, gB = ds.grad(matmul_sum, wrt=(0, 1))(A, B)
    np.testing.assert_allclose(gA, np.ones((2, 4)) @ B.T, **EXACT)
    np.testing.assert_allclose(gB, A.T @ np.ones((2, 4)), **EXACT)


def dot_plain(u, v):
    return np.dot(u, v)


def test_dot_closed_form():
    u = np.array([1.0, 2.0, 3.0])
    v = np.array([-1.0, 0.5, 4.0])
    gu, gv = ds.grad(dot_plain, wrt=(0, 1))(u, v)
    np.testing.assert_allclose(gu, v, **EXACT)
    np.testing.assert_allclose(gv, u, **EXACT)


def transpose_weighted(A, W):
    return np.sum(A.T * W)


def test_transpose_closed_form():
    A = np.arange(6.0).reshape(2, 3)
    W = np.arange(6.0).reshape(3, 2) + 1.0
    np.testing.assert_allclose(ds.grad(transpose_weighted)(A, W), W.T, **EXACT)


# ---------------------------------------------------------------------------
# reshape
# ---------------------------------------------------------------------------


def rs_method(x, w):
    n, m = x.shape
    return np.sum(x.reshape(m, n) * w)


def rs_method_tuple(x, w):
    n, m = x.shape
    return np.sum(x.reshape((m, n)) * w)


def rs_function(x, w):
    n, m = x.shape
    return np.sum(np.reshape(x, (m, n)) * w)


def rs_flatten(x, w):
    return np.sum(x.reshape(-1) * w.reshape(-1))


def rs_infer(x, w):
    n, m = x.shape
    return np.sum(x.reshape(m, -1) * w)


@pytest.mark.parametrize("fn", [rs_method, rs_method_tuple, rs_function, rs_flatten, rs_infer],
                         ids=lambda f: f.__name__)
def test_reshape_closed_form(fn):
    x = np.arange(6.0).reshape(2, 3)
    w = np.arange(6.0).reshape(3, 2) * 0.5 - 1.0
    g = ds.grad(fn)(x, w)
    assert g.shape == (2, 3)
    np.testing.assert_allclose(g, w.reshape(2, 3), **EXACT)


def rs_nonlinear(x):
    n, m = x.shape
    y = np.tanh(x.reshape(m, n))
    return np.sum(y @ y.reshape(n, m) + y.reshape(-1)[0] * 2.0)


@HYP
@given(x=arrays(shapes(2, 2)))
def test_reshape_matches_fd(x):
    check_grad(rs_nonlinear, (x,), wrt=0)


# ---------------------------------------------------------------------------
# basic slicing
# ---------------------------------------------------------------------------


def sl_row(x):
    return np.sum(np.sin(x[0]) * 2.0)


def sl_range(x):
    return np.sum(x[1:3] ** 2)


def sl_column(x):
    return np.sum(x[:, 0] * x[:, -1])


def sl_step(x):
    return np.sum(np.exp(x[::2]))


def sl_last(x):
    return np.sum(x[-1] ** 3)


def sl_2d(x):
    return np.sum(np.tanh(x[1:, :-1]))


def sl_ellipsis(x):
    return np.sum(x[..., 0] ** 2)


def sl_newaxis(x):
    return np.sum(x[None] * x[:, None])


def sl_element(x):
    return x[0, 1] * x[1, 0] + x[-1, -1]


def sl_runtime_index(x, i):
    return np.sum(x[i] ** 2) + np.sum(x[i:] * 2.0)


def sl_negative_step(x):
    return np.sum(x[::-1] * np.arange(x.shape[0])[:, None])


SLICE_CASES = [sl_row, sl_range, sl_column, sl_step, sl_last, sl_2d, sl_ellipsis, sl_element,
               sl_negative_step]


@pytest.mark.parametrize("fn", SLICE_CASES, ids=lambda f: f.__name__)
@HYP
@given(x=arrays(st.tuples(st.integers(2, 4), st.integers(2, 4))))
def test_basic_slicing_matches_fd(fn, x):
    check_grad(fn, (x,), wrt=0)


@HYP
@given(x=arrays(st.tuples(st.integers(1, 4))))
def test_newaxis_outer_product_matches_fd(x):
    check_grad(sl_newaxis, (x,), wrt=0)


@pytest.mark.parametrize("i", [0, 1, 2, -1])
def test_runtime_int_index(i):
    x = np.arange(12.0).reshape(3, 4) / 7.0
    check_grad(sl_runtime_index, (x, i), wrt=0)


def test_slice_gradient_scatters_into_zeros():
    x = np.arange(12.0).reshape(3, 4)
    g = ds.grad(sl_2d)(x)
    expected = np.zeros_like(x)
    expected[1:, :-1] = 1.0 - np.tanh(x[1:, :-1]) ** 2
    np.testing.assert_allclose(g, expected, **EXACT)


# ---------------------------------------------------------------------------
# dtype preservation, zeros, constants and shapes
# ---------------------------------------------------------------------------


def f32_tanh(x):
    return np.sum(np.tanh(x) * x)


def f32_constants(x):
    return np.mean((x * 0.5 + 1.0) ** 2)


def f32_param_f64_data(w, X):
    return np.sum((X @ w) ** 2)


@HYP
@given(x=arrays(shapes(1, 2), -2.0, 2.0, dtype=np.float32))
def test_float32_in_float32_gradient(x):
    g = check_grad(f32_tanh, (x,), wrt=0, rtol=2e-3, atol=2e-4)
    assert g.dtype == np.float32


def test_float32_with_python_float_constants_stays_float32():
    x = np.linspace(-1, 1, 7).astype(np.float32)
    g = ds.grad(f32_constants)(x)
    assert isinstance(g, np.ndarray) and g.dtype == np.float32 and g.shape == (7,)
    np.testing.assert_allclose(g, (x * 0.5 + 1.0) / 7.0, rtol=1e-5)


def test_float32_parameter_with_float64_data():
    w = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    X = np.arange(6.0).reshape(2, 3)
    g = ds.grad(f32_param_f64_data)(w, X)
    assert g.dtype == np.float32 and g.shape == (3,)
    np.testing.assert_allclose(g, 2 * X.T @ (X @ w.astype(np.float64)), rtol=1e-5)


def ignores_second(x, y):
    return np.sum(x * 2.0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_unused_array_argument_gets_zeros_of_same_shape_and_dtype(dtype):
    x = np.ones((2, 3), dtype=dtype)
    y = np.ones((4,), dtype=dtype)
    gx, gy = ds.grad(ignores_second, wrt=(0, 1))(x, y)
    assert gy.shape == (4,) and gy.dtype == dtype
    assert not np.any(gy)
    np.testing.assert_array_equal(gx, np.full((2, 3), 2.0, dtype=dtype))


def const_arrays(x):
    c = np.array([1.0, 2.0, 3.0])
    o = np.ones_like(x)
    z = np.zeros(x.shape)
    r = np.arange(x.shape[0]) * 1.0
    return np.sum(c * x + o * x * x + z + r * x)


def test_array_constants_inside_function():
    x = np.array([0.5, -1.0, 2.0])
    g = ds.grad(const_arrays)(x)
    np.testing.assert_allclose(g, np.array([1.0, 2.0, 3.0]) + 2 * x + np.arange(3.0), **EXACT)


def shape_driven(x):
    n = x.shape[0]
    m = len(x)
    s = x.size
    d = x.ndim
    return np.sum(x) / n + np.sum(x * x) / (m * s) + d * np.sum(x)


def test_shapes_flow_through():
    x = np.arange(1.0, 7.0).reshape(3, 2)
    g = ds.grad(shape_driven)(x)
    np.testing.assert_allclose(g, 1 / 3 + 2 * x / 18.0 + 2.0, **EXACT)


def returns_numpy_scalar_element(x):
    return x[1] * x[2]


def test_output_is_numpy_scalar_element():
    x = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(ds.grad(returns_numpy_scalar_element)(x), [0.0, 3.0, 2.0], **EXACT)


# ---------------------------------------------------------------------------
# small models
# ---------------------------------------------------------------------------


def mlp_loss(W1, b1, W2, b2, X, Y):
    h = np.tanh(X @ W1 + b1)
    z = np.maximum(h @ W2 + b2, 0.0) + 0.1 * (h @ W2 + b2)
    return np.mean((z - Y) ** 2)


def softmax_xent(W, b, X, Y):
    logits = X @ W + b
    e = np.exp(logits)
    p = e / np.sum(e, axis=1, keepdims=True)
    return -np.mean(np.sum(Y * np.log(p), axis=1))


@HYP
@given(data=st.data())
def test_mlp_loss_matches_fd(data):
    n, d, h, o = data.draw(dims(4), label="n,d,h,o")
    W1 = data.draw(arrays((d, h), -1, 1))
    b1 = data.draw(arrays((h,), -1, 1))
    W2 = data.draw(arrays((h, o), -1, 1))
    b2 = data.draw(arrays((o,), -1, 1))
    X = data.draw(arrays((n, d), -1, 1))
    Y = data.draw(arrays((n, o), -1, 1))
    z = np.tanh(X @ W1 + b1) @ W2 + b2
    assume(np.min(np.abs(z)) > 1e-3)  # away from the relu kink
    check_grad(mlp_loss, (W1, b1, W2, b2, X, Y), wrt=(0, 1, 2, 3))


def test_softmax_cross_entropy_closed_form():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(4, 3))
    b = rng.normal(size=(3,))
    X = rng.normal(size=(5, 4))
    Y = np.eye(3)[[0, 2, 1, 1, 0]]
    gW, gb = ds.grad(softmax_xent, wrt=(0, 1))(W, b, X, Y)
    logits = X @ W + b
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    dlogits = (p - Y) / 5.0
    np.testing.assert_allclose(gW, X.T @ dlogits, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gb, dlogits.sum(axis=0), rtol=1e-10, atol=1e-12)
    check_grad(softmax_xent, (W, b, X, Y), wrt=(0, 1, 2))


def test_article_steering_gradient_wrt_last_layer_only():
    # MODELS.md item 2: g = 2(y - z2) * (-z1 * sech^2(a2)) w.r.t. W2 only
    rng = np.random.default_rng(1)
    W1, b1 = rng.normal(size=(10, 8)) * 0.3, rng.normal(size=(8,)) * 0.1
    W2, b2 = rng.normal(size=(8, 1)) * 0.3, rng.normal(size=(1,)) * 0.1
    x, y = rng.normal(size=(10,)), 0.37

    g = ds.grad(steer_loss, wrt="W2")(W1, b1, W2, b2, x, y)
    z1 = np.maximum(x @ W1 + b1, 0.0)
    a2 = z1 @ W2 + b2
    z2 = np.tanh(a2)
    expected = 2 * (y - z2) * (-z1[:, None] * (1 - np.tanh(a2) ** 2))
    assert g.shape == W2.shape
    np.testing.assert_allclose(g, expected, rtol=1e-10, atol=1e-14)


def steer_loss(W1, b1, W2, b2, x, y):
    z1 = np.maximum(x @ W1 + b1, 0.0)
    z2 = np.tanh(z1 @ W2 + b2)
    return np.sum((y - z2) ** 2)
