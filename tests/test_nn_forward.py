"""Forward values of diffsrc.nn against straightforward reference code.

Gradients are checked elsewhere (through diffsrc); here: values, shapes,
numerical stability, and that the differentiable functions keep to the subset
of Python/NumPy that the source transformer supports.
"""
import ast
import inspect
import math

import numpy as np
import pytest

from diffsrc import nn
from diffsrc.nn import activations, init, layers, losses

COURSE_SCORES = np.array([3.2, 5.1, -1.7])  # CAT, CAR, FROG; truth CAT


# ------------------------------------------------------------------ initialisers

def test_fans_conventions():
    assert init.fans((5,)) == (5, 5)
    assert init.fans((784, 100)) == (784, 100)
    assert init.fans((16, 3, 5, 5)) == (75, 400)


@pytest.mark.parametrize("shape", [(400, 300), (64, 8, 3, 3)])
def test_variance_scaling_initialisers(shape):
    rng = np.random.default_rng(0)
    fan_in, fan_out = init.fans(shape)
    glorot_var = 2.0 / (fan_in + fan_out)
    he_var = 2.0 / fan_in
    cases = [(init.xavier_uniform, glorot_var), (init.xavier_normal, glorot_var),
             (init.he_uniform, he_var), (init.he_normal, he_var)]
    for fn, var in cases:
        w = fn(rng, shape)
        assert w.shape == shape and w.dtype == np.float32
        assert np.var(w) == pytest.approx(var, rel=0.05)
        assert abs(np.mean(w)) < 0.05 * math.sqrt(var)
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    assert np.abs(init.xavier_uniform(rng, shape)).max() <= limit
    assert np.abs(init.he_uniform(rng, shape)).max() <= math.sqrt(6.0 / fan_in)
    assert init.xavier_normal(rng, shape, dtype=np.float64).dtype == np.float64


def test_fan_override_and_gain():
    rng = np.random.default_rng(1)
    w = init.he_normal(rng, (200, 200), fan_in=50)
    assert np.var(w) == pytest.approx(2.0 / 50, rel=0.05)
    w = init.xavier_uniform(rng, (200, 200), gain=2.0)
    assert np.var(w) == pytest.approx(4.0 * 2.0 / 400, rel=0.05)


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (8, 2, 2, 2)])
def test_orthogonal(shape):
    w = init.orthogonal(np.random.default_rng(2), shape, dtype=np.float64, gain=3.0)
    assert w.shape == shape
    m = w.reshape(shape[0], -1) / 3.0
    small = min(m.shape)
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    np.testing.assert_allclose(gram, np.eye(small), atol=1e-12)


def test_initialisers_need_a_generator_and_are_reproducible():
    with pytest.raises(TypeError, match="Generator"):
        init.he_normal(0, (2, 2))
    a = init.xavier_uniform(np.random.default_rng(7), (3, 3))
    b = init.xavier_uniform(np.random.default_rng(7), (3, 3))
    np.testing.assert_array_equal(a, b)
    z = init.zeros(np.random.default_rng(0), (2, 3))
    assert z.dtype == np.float32 and not z.any()


# ------------------------------------------------------------------- activations

X = np.linspace(-6.0, 6.0, 49)
HUGE = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])


def test_elementwise_activations_match_definitions():
    np.testing.assert_array_equal(nn.relu(X), np.where(X > 0, X, 0.0))
    np.testing.assert_allclose(nn.leaky_relu(X, 0.1), np.where(X > 0, X, 0.1 * X))
    np.testing.assert_allclose(nn.sigmoid(X), 1.0 / (1.0 + np.exp(-X)), rtol=1e-12)
    np.testing.assert_allclose(nn.tanh(X), np.tanh(X))
    np.testing.assert_allclose(nn.softplus(X), np.log(1.0 + np.exp(X)), rtol=1e-12)
    np.testing.assert_allclose(nn.silu(X), X / (1.0 + np.exp(-X)), rtol=1e-12)
    exact_gelu = np.array([0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0))) for x in X])
    np.testing.assert_allclose(nn.gelu(X), exact_gelu, atol=1e-3)
    np.testing.assert_allclose(
        nn.gelu(X), 0.5 * X * (1 + np.tanh(math.sqrt(2 / math.pi) * (X + 0.044715 * X ** 3))))


def test_activations_stable_for_huge_inputs():
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        s = nn.sigmoid(HUGE)
        sp = nn.softplus(HUGE)
        nn.silu(HUGE)
        nn.gelu(HUGE)
    np.testing.assert_allclose(s, [0.0, 1.9287498479639178e-22, 0.5, 1.0, 1.0], atol=1e-30)
    np.testing.assert_allclose(sp, [0.0, 1.9287498479639178e-22, math.log(2.0), 50.0, 1000.0])


def test_softmax_course_example():
    p = nn.softmax(COURSE_SCORES)
    np.testing.assert_allclose(p, [0.13, 0.87, 0.00], atol=0.005)
    assert p.sum() == pytest.approx(1.0)


def test_softmax_rows_sum_to_one_along_axis_and_shift_invariant():
    x = np.random.default_rng(3).standard_normal((4, 5, 6)) * 10
    for axis in (0, 1, -1):
        p = nn.softmax(x, axis=axis)
        np.testing.assert_allclose(p.sum(axis=axis), 1.0)
        np.testing.assert_allclose(p, np.exp(x) / np.exp(x).sum(axis=axis, keepdims=True))
    np.testing.assert_allclose(nn.softmax(x + 1000.0), nn.softmax(x), atol=1e-12)


def test_log_softmax_stable_for_large_inputs():
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        out = nn.log_softmax(np.array([[1000.0, 1000.0, -1000.0], [0.0, 2000.0, 0.0]]))
    np.testing.assert_allclose(out, [[math.log(0.5), math.log(0.5), -2000.0 + math.log(0.5)],
                                     [-2000.0, 0.0, -2000.0]])
    x = np.random.default_rng(4).standard_normal((3, 4))
    np.testing.assert_allclose(nn.log_softmax(x, axis=0), np.log(nn.softmax(x, axis=0)))


def test_activations_keep_float32():
    x = np.linspace(-3, 3, 7, dtype=np.float32)
    for fn in (nn.relu, nn.leaky_relu, nn.sigmoid, nn.softplus, nn.gelu, nn.silu,
               nn.softmax, nn.log_softmax):
        assert fn(x).dtype == np.float32, fn.__name__


# ------------------------------------------------------------------------ layers

def naive_conv2d(x, w, b, stride, padding):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.zeros((n, c, h + 2 * padding, wd + 2 * padding))
    xp[:, :, padding:padding + h, padding:padding + wd] = x
    ho = (h + 2 * padding - kh) // stride + 1
    wo = (wd + 2 * padding - kw) // stride + 1
    out = np.zeros((n, o, ho, wo))
    for i in range(n):
        for k in range(o):
            for r in range(ho):
                for s in range(wo):
                    patch = xp[i, :, r * stride:r * stride + kh, s * stride:s * stride + kw]
                    out[i, k, r, s] = np.sum(patch * w[k]) + b[k]
    return out


@pytest.mark.parametrize("stride, padding, kernel, size", [
    (1, 0, (3, 3), (7, 6)), (1, 1, (3, 3), (5, 5)), (2, 0, (3, 2), (7, 8)),
    (2, 2, (5, 5), (6, 7)), (3, 1, (1, 1), (5, 4)),
])
def test_conv2d_matches_naive_loop(stride, padding, kernel, size):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3) + size)
    params = {"W": rng.standard_normal((4, 3) + kernel), "b": rng.standard_normal(4)}
    out = nn.conv2d(x, params, stride=stride, padding=padding)
    expected = naive_conv2d(x, params["W"], params["b"], stride, padding)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)


def test_conv2d_is_cross_correlation_not_flipped():
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 0, 0] = 1.0  # top-left pixel
    w = np.arange(9.0).reshape(1, 1, 3, 3)
    out = nn.conv2d(x, {"W": w, "b": np.zeros(1)}, padding=1)
    # Output (1,1) sees the input window centred on (1,1): pixel (0,0) meets w[0,0].
    assert out[0, 0, 1, 1] == w[0, 0, 0, 0]
    assert out[0, 0, 0, 0] == w[0, 0, 1, 1]


def naive_pool(x, size, stride, reduce):
    n, c, h, w = x.shape
    ho, wo = (h - size) // stride + 1, (w - size) // stride + 1
    out = np.zeros((n, c, ho, wo))
    for r in range(ho):
        for s in range(wo):
            window = x[:, :, r * stride:r * stride + size, s * stride:s * stride + size]
            out[:, :, r, s] = reduce(window, axis=(2, 3))
    return out


@pytest.mark.parametrize("size, stride, hw", [
    (2, None, (8, 6)), (2, 2, (7, 5)), (3, None, (9, 9)), (3, 2, (7, 8)), (2, 1, (4, 5)),
])
def test_pooling_matches_naive_loop(size, stride, hw):
    x = np.random.default_rng(6).standard_normal((2, 3) + hw)
    step = size if stride is None else stride
    got_max = nn.max_pool2d(x, size, stride)
    got_avg = nn.avg_pool2d(x, size, stride)
    np.testing.assert_allclose(got_max, naive_pool(x, size, step, np.max))
    np.testing.assert_allclose(got_avg, naive_pool(x, size, step, np.mean))


def test_dense_and_init_dense():
    rng = np.random.default_rng(8)
    params = nn.init_dense(rng, 4, 3)
    assert params["W"].shape == (4, 3) and params["b"].shape == (3,)
    assert params["W"].dtype == np.float32 and not params["b"].any()
    params = {"W": rng.standard_normal((4, 3)), "b": rng.standard_normal(3)}
    x = rng.standard_normal((5, 4))
    expected = np.array([[sum(x[i, k] * params["W"][k, j] for k in range(4)) + params["b"][j]
                          for j in range(3)] for i in range(5)])
    np.testing.assert_allclose(nn.dense(x, params), expected)


def test_init_conv2d_uses_kernel_fan_in():
    params = nn.init_conv2d(np.random.default_rng(9), 8, 32, 3, w_init=nn.he_normal)
    assert params["W"].shape == (32, 8, 3, 3) and params["b"].shape == (32,)
    assert np.var(params["W"]) == pytest.approx(2.0 / 72, rel=0.1)


@pytest.mark.parametrize("shape, axes", [((64, 5), (0,)), ((16, 3, 4, 5), (0, 2, 3))])
def test_batch_norm_training_statistics_and_running_update(shape, axes):
    rng = np.random.default_rng(10)
    x = rng.standard_normal(shape) * 3.0 + 2.0
    x_before = x.copy()
    c = shape[1]
    params, state = nn.init_batch_norm(c, dtype=np.float64)
    y, new_state = nn.batch_norm(x, params, state, train=True, momentum=0.8)
    np.testing.assert_allclose(y.mean(axis=axes), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=axes), 1.0, rtol=1e-4)
    n = x.size // c
    np.testing.assert_allclose(new_state["mean"], 0.2 * x.mean(axis=axes))
    np.testing.assert_allclose(new_state["var"], 0.8 + 0.2 * x.var(axis=axes) * n / (n - 1))
    np.testing.assert_array_equal(state["mean"], np.zeros(c))  # input state untouched
    np.testing.assert_array_equal(x, x_before)

    params = {"gamma": np.arange(1.0, c + 1), "beta": np.full(c, -1.0)}
    y2, _ = nn.batch_norm(x, params, state, train=True)
    bshape = (1, c) + (1,) * (len(shape) - 2)
    np.testing.assert_allclose(y2, y * params["gamma"].reshape(bshape) - 1.0, atol=1e-12)


def test_batch_norm_eval_uses_running_statistics():
    x = np.random.default_rng(11).standard_normal((6, 2, 3, 3))
    params = {"gamma": np.array([2.0, 1.0]), "beta": np.array([0.0, 1.0])}
    state = {"mean": np.array([1.0, -1.0]), "var": np.array([4.0, 0.25])}
    y, same = nn.batch_norm(x, params, state, train=False, eps=0.0)
    assert same is state
    expected = np.stack([2.0 * (x[:, 0] - 1.0) / 2.0, (x[:, 1] + 1.0) / 0.5 + 1.0], axis=1)
    np.testing.assert_allclose(y, expected)


def test_layer_norm_normalises_last_axis():
    x = np.random.default_rng(12).standard_normal((3, 4, 10)) * 5 + 1
    params = nn.init_layer_norm(10, dtype=np.float64)
    y = nn.layer_norm(x, params)
    np.testing.assert_allclose(y.mean(axis=-1), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=-1), 1.0, rtol=1e-4)
    params = {"gamma": np.full(10, 2.0), "beta": np.full(10, 3.0)}
    np.testing.assert_allclose(nn.layer_norm(x, params), 2.0 * y + 3.0)


def test_dropout_with_generator_mask_and_eval():
    x = np.ones((200, 50))
    y = nn.dropout(x, 0.25, np.random.default_rng(13), train=True)
    assert set(np.unique(y)) == {0.0, 1.0 / 0.75}
    assert np.mean(y == 0.0) == pytest.approx(0.25, abs=0.02)
    y2 = nn.dropout(x, 0.25, np.random.default_rng(13), train=True)
    np.testing.assert_array_equal(y, y2)
    mask = nn.dropout_mask(np.random.default_rng(13), x.shape, 0.25)
    np.testing.assert_array_equal(nn.dropout(x, 0.25, mask), y)
    assert nn.dropout(x, 0.5, np.random.default_rng(0), train=False) is x
    assert nn.dropout(x, 0.0, np.random.default_rng(0)) is x
    assert nn.dropout(x.astype(np.float32), 0.5, mask).dtype == np.float32


def test_embedding_lookup():
    params = nn.init_embedding(np.random.default_rng(14), 10, 4)
    assert params["E"].shape == (10, 4) and params["E"].dtype == np.float32
    ids = np.array([[1, 3, 3], [0, 9, 2]])
    out = nn.embedding(ids, params)
    assert out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out[1, 1], params["E"][9])
    np.testing.assert_array_equal(out, params["E"][ids])


# ------------------------------------------------------------------------ losses

def test_mse():
    assert nn.mse(np.array([1.0, 2.0, 4.0]), np.array([1.0, 0.0, 1.0])) == pytest.approx(13 / 3)


def test_course_hinge_and_cross_entropy():
    assert nn.multiclass_hinge(COURSE_SCORES, 0) == pytest.approx(2.9)
    p_cat = math.exp(3.2) / (math.exp(3.2) + math.exp(5.1) + math.exp(-1.7))
    assert nn.softmax_cross_entropy(COURSE_SCORES, 0) == pytest.approx(-math.log(p_cat))
    assert nn.softmax_cross_entropy(COURSE_SCORES, 0) == pytest.approx(-math.log(0.13), abs=0.01)


def test_hinge_batch_mean_and_margin():
    scores = np.array([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]])
    labels = np.array([0, 1, 2])
    # Per-sample losses from the course example: 2.9, 0, 12.9.
    assert nn.multiclass_hinge(scores, labels) == pytest.approx((2.9 + 0.0 + 12.9) / 3)
    expected = np.mean([sum(max(0.0, s[j] - s[y] + 0.5) for j in range(3) if j != y)
                        for s, y in zip(scores, labels)])
    assert nn.multiclass_hinge(scores, labels, margin=0.5) == pytest.approx(expected)


def test_cross_entropy_ids_one_hot_and_stability():
    rng = np.random.default_rng(15)
    logits = rng.standard_normal((6, 4))
    labels = rng.integers(0, 4, size=6)
    expected = -np.mean(np.log(nn.softmax(logits))[np.arange(6), labels])
    assert nn.softmax_cross_entropy(logits, labels) == pytest.approx(expected)
    assert nn.softmax_cross_entropy(logits, np.eye(4)[labels]) == pytest.approx(expected)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        big = nn.softmax_cross_entropy(np.array([[1000.0, 0.0], [0.0, 1000.0]]), np.array([1, 1]))
    assert big == pytest.approx(500.0)


def test_binary_cross_entropy_with_logits():
    z = np.linspace(-5, 5, 11)
    t = (np.arange(11) % 2).astype(float)
    p = 1 / (1 + np.exp(-z))
    expected = -np.mean(t * np.log(p) + (1 - t) * np.log(1 - p))
    assert nn.binary_cross_entropy_with_logits(z, t) == pytest.approx(expected)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        big = nn.binary_cross_entropy_with_logits(np.array([1000.0, -1000.0]),
                                                  np.array([0.0, 0.0]))
    assert big == pytest.approx(500.0)


def test_focal_loss_reduces_to_cross_entropy_and_matches_formula():
    rng = np.random.default_rng(16)
    logits = rng.standard_normal((5, 3)) * 2
    labels = rng.integers(0, 3, size=5)
    assert nn.focal_loss(logits, labels, gamma=0.0) == pytest.approx(
        nn.softmax_cross_entropy(logits, labels))
    pt = nn.softmax(logits)[np.arange(5), labels]
    assert nn.focal_loss(logits, labels, gamma=2.0, alpha=0.5) == pytest.approx(
        np.mean(-0.5 * (1 - pt) ** 2 * np.log(pt)))

    z = rng.standard_normal(8) * 3
    t = (rng.random(8) > 0.5).astype(float)
    assert nn.focal_loss(z, t, gamma=0.0) == pytest.approx(
        nn.binary_cross_entropy_with_logits(z, t))
    p = 1 / (1 + np.exp(-z))
    pt = np.where(t == 1, p, 1 - p)
    at = np.where(t == 1, 0.25, 0.75)
    assert nn.focal_loss(z, t, gamma=2.0, alpha=0.25) == pytest.approx(
        np.mean(-at * (1 - pt) ** 2 * np.log(pt)))
    # Easy examples are down-weighted much more than hard ones.
    easy = nn.focal_loss(np.array([4.0]), np.array([1.0])) / nn.focal_loss(
        np.array([4.0]), np.array([1.0]), gamma=0.0)
    hard = nn.focal_loss(np.array([-1.0]), np.array([1.0])) / nn.focal_loss(
        np.array([-1.0]), np.array([1.0]), gamma=0.0)
    assert easy < 1e-3 < 0.5 < hard


def test_penalties_over_flat_and_nested_dicts():
    flat = {"W": np.array([[1.0, -2.0]]), "b": np.array([3.0])}
    nested = {"l1": {"W": np.array([1.0, -2.0])}, "l2": {"W": np.array([[3.0]]), "b": 0.5}}
    assert nn.l1_penalty(flat, 0.1) == pytest.approx(0.6)
    assert nn.l2_penalty(flat, 0.1) == pytest.approx(1.4)
    assert nn.l1_penalty(nested, 1.0) == pytest.approx(6.5)
    assert nn.l2_penalty(nested, 2.0) == pytest.approx(2 * 14.25)
    assert nn.elastic_net_penalty(nested, 1.0, 2.0) == pytest.approx(6.5 + 28.5)


def test_distillation_loss():
    rng = np.random.default_rng(17)
    teacher = rng.standard_normal((4, 5)) * 3
    student = rng.standard_normal((4, 5))
    assert nn.distillation_loss(teacher + 7.0, teacher, 3.0) == pytest.approx(0.0, abs=1e-12)
    T = 2.5
    pt = np.exp(teacher / T) / np.exp(teacher / T).sum(axis=1, keepdims=True)
    ps = np.exp(student / T) / np.exp(student / T).sum(axis=1, keepdims=True)
    expected = T ** 2 * np.mean(np.sum(pt * np.log(pt / ps), axis=1))
    assert nn.distillation_loss(student, teacher, T) == pytest.approx(expected)
    assert expected > 0


# ------------------------------------------- contract with the source transformer

DIFFERENTIABLE = [
    activations.relu, activations.leaky_relu, activations.sigmoid, activations.tanh,
    activations.softplus, activations.gelu, activations.silu, activations.softmax,
    activations.log_softmax,
    layers.dense, layers.conv2d, layers._pool_windows, layers.max_pool2d, layers.avg_pool2d,
    layers.batch_norm, layers.layer_norm, layers.dropout, layers.embedding,
    losses.mse, losses._class_mask, losses.softmax_cross_entropy,
    losses.binary_cross_entropy_with_logits, losses.multiclass_hinge, losses.focal_loss,
    losses.l1_penalty, losses.l2_penalty, losses.elastic_net_penalty,
    losses.distillation_loss,
]

# Exactly the NumPy names the differentiable code calls: derivative rules must
# exist for these (argument forms used are listed in the report to the core team).
NUMPY_USED = {
    "abs", "arange", "exp", "expand_dims", "log", "log1p", "max", "maximum", "mean",
    "ndim", "pad", "reshape", "sqrt", "sum", "take", "tanh", "tensordot", "transpose",
    "var", "where", "lib.stride_tricks.sliding_window_view", "random.Generator",
}
# Builtins called on non-differentiated values (shapes, flags, rates).
BUILTINS_USED = {"isinstance", "max"}
FORBIDDEN = (ast.AugAssign, ast.Try, ast.With, ast.Global, ast.Nonlocal, ast.Yield,
             ast.YieldFrom, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp,
             ast.Lambda, ast.Starred)


def _np_name(node):
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id == "np":
        return ".".join(reversed(parts))
    return None


def test_differentiable_code_stays_in_the_supported_subset():
    used = set()
    builtins = set()
    local = {fn.__name__ for fn in DIFFERENTIABLE} | {"dropout_mask"}
    for fn in DIFFERENTIABLE:
        tree = ast.parse(inspect.getsource(fn))
        fdef = tree.body[0]
        assert fdef.args.vararg is None and fdef.args.kwarg is None, fn.__name__
        for node in ast.walk(fdef):
            assert not isinstance(node, FORBIDDEN), (fn.__name__, type(node).__name__)
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    assert not isinstance(target, (ast.Subscript, ast.Attribute)), fn.__name__
            if isinstance(node, ast.Call):
                if isinstance(node.func, ast.Name):
                    if node.func.id not in local:
                        builtins.add(node.func.id)
                else:
                    assert _np_name(node.func) is not None, (fn.__name__, ast.unparse(node))
            if isinstance(node, ast.keyword):
                assert node.arg != "out", fn.__name__
            if isinstance(node, ast.Attribute):
                name = _np_name(node)
                if name is not None and not isinstance(getattr(node, "ctx", None), ast.Store):
                    used.add(name)
    # Drop attribute prefixes (np.lib, np.lib.stride_tricks) seen while walking.
    used = {u for u in used if not any(v.startswith(u + ".") for v in used)}
    assert used == NUMPY_USED
    assert builtins == BUILTINS_USED
