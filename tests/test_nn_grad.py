"""Gradients of every diffsrc.nn layer, activation and loss, through diffsrc.

Each differentiable function of diffsrc.nn is wrapped in a small scalar
objective (a weighted sum of its output, so every output element matters with
a different weight) and its ``ds.grad`` is compared with central finite
differences computed in float64 on small shapes. Inputs are drawn away from
kinks (relu, max, abs, hinge) so the finite differences are meaningful.
"""
import numpy as np
import pytest

import diffsrc as ds
from diffsrc import nn

RTOL = 1e-6
ATOL = 1e-8
EPS = 1e-6


# ------------------------------------------------------------ finite differences

def _leaves(tree, path=()):
    """(path, array) for every float array in a dict tree (or a bare array)."""
    if isinstance(tree, dict):
        for key in tree:
            yield from _leaves(tree[key], path + (key,))
    elif isinstance(tree, np.ndarray) and np.issubdtype(tree.dtype, np.floating):
        yield path, tree


def _get(tree, path):
    for key in path:
        tree = tree[key]
    return tree


def _copy(tree):
    if isinstance(tree, dict):
        return {k: _copy(v) for k, v in tree.items()}
    if isinstance(tree, np.ndarray):
        return tree.copy()
    return tree


def numeric_grad(f, args, i):
    """Central differences of scalar f w.r.t. every element of args[i] (float64)."""
    args = [_copy(a) for a in args]
    target = args[i]
    grad = {} if isinstance(target, dict) else None
    out = []
    for path, leaf in _leaves(target):
        g = np.zeros_like(leaf, dtype=np.float64)
        for idx in np.ndindex(leaf.shape):
            v = leaf[idx]
            h = EPS * max(1.0, abs(v))
            leaf[idx] = v + h
            fp = float(f(*args))
            leaf[idx] = v - h
            fm = float(f(*args))
            leaf[idx] = v
            g[idx] = (fp - fm) / (2 * h)
        out.append((path, g))
    if grad is None:
        return out[0][1]
    return out


def check(f, args, wrt=0):
    """ds.grad(f, wrt) against central differences; returns the analytic gradients."""
    single = isinstance(wrt, int)
    wrts = (wrt,) if single else tuple(wrt)
    analytic = ds.grad(f, wrt=wrt)(*args)
    if single:
        analytic = (analytic,)
    assert len(analytic) == len(wrts)
    for g, i in zip(analytic, wrts):
        numeric = numeric_grad(f, args, i)
        if isinstance(args[i], dict):
            assert isinstance(g, dict) and set(g) == set(args[i]), (
                f"gradient of a dict must be a dict with the same keys, got {g!r}")
            for path, num in numeric:
                got = _get(g, path)
                assert np.shape(got) == num.shape, f"{path}: {np.shape(got)} != {num.shape}"
                np.testing.assert_allclose(got, num, rtol=RTOL, atol=ATOL,
                                           err_msg=f"arg {i} leaf {'/'.join(path)}")
        else:
            assert np.shape(g) == np.shape(args[i])
            np.testing.assert_allclose(g, numeric, rtol=RTOL, atol=ATOL, err_msg=f"arg {i}")
    return analytic[0] if single else analytic


def away_from_zero(rng, shape, lo=0.1, hi=2.0):
    """float64 entries with lo <= |x| <= hi and random signs."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(lo, hi, size=shape)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# ------------------------------------------------------------------ activations

def relu_obj(x, w):
    return np.sum(nn.relu(x) * w)


def leaky_relu_obj(x, w):
    return np.sum(nn.leaky_relu(x, 0.1) * w)


def sigmoid_obj(x, w):
    return np.sum(nn.sigmoid(x) * w)


def tanh_obj(x, w):
    return np.sum(nn.tanh(x) * w)


def softplus_obj(x, w):
    return np.sum(nn.softplus(x) * w)


def gelu_obj(x, w):
    return np.sum(nn.gelu(x) * w)


def silu_obj(x, w):
    return np.sum(nn.silu(x) * w)


def softmax_obj(x, w):
    return np.sum(nn.softmax(x) * w)


def softmax_axis0_obj(x, w):
    return np.sum(nn.softmax(x, axis=0) * w)


def log_softmax_obj(x, w):
    return np.sum(nn.log_softmax(x) * w)


ACTIVATIONS = [relu_obj, leaky_relu_obj, sigmoid_obj, tanh_obj, softplus_obj, gelu_obj,
               silu_obj, softmax_obj, softmax_axis0_obj, log_softmax_obj]


@pytest.mark.parametrize("obj", ACTIVATIONS, ids=lambda f: f.__name__[:-4])
def test_activation_gradients(obj, rng):
    x = away_from_zero(rng, (3, 4), hi=3.0)
    w = rng.standard_normal((3, 4))
    check(obj, (x, w), wrt=0)


def test_sigmoid_gradient_in_both_tails():
    # the stable sigmoid branches on the sign of x: both branches must differentiate
    x = np.array([-30.0, -5.0, -0.3, 0.3, 5.0, 30.0])
    g = ds.grad(sigmoid_obj)(x, np.ones_like(x))
    e = np.exp(-np.abs(x))
    np.testing.assert_allclose(g, e / (1.0 + e) ** 2, rtol=1e-12, atol=0)


def test_relu_gradient_is_step():
    x = np.array([-2.0, -0.5, 0.5, 2.0])
    np.testing.assert_array_equal(ds.grad(relu_obj)(x, np.ones(4)), [0.0, 0.0, 1.0, 1.0])


# ----------------------------------------------------------------------- layers

def dense_obj(x, params, w):
    return np.sum(nn.dense(x, params) * w)


def test_dense_gradients(rng):
    x = rng.standard_normal((5, 3))
    params = nn.init_dense(rng, 3, 4, dtype=np.float64)
    params["b"] = rng.standard_normal(4)
    w = rng.standard_normal((5, 4))
    gx, gp = check(dense_obj, (x, params, w), wrt=(0, 1))
    # closed forms: dL/dW = x^T w, dL/db = column sums of w, dL/dx = w W^T
    np.testing.assert_allclose(gp["W"], x.T @ w, rtol=1e-12)
    np.testing.assert_allclose(gp["b"], w.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(gx, w @ params["W"].T, rtol=1e-12)


def conv_obj(x, params, w, stride, padding):
    return np.sum(nn.conv2d(x, params, stride, padding) * w)


@pytest.mark.parametrize("stride,padding", [(1, 0), (1, 1), (2, 0), (2, 1)])
def test_conv2d_gradients(stride, padding, rng):
    x = rng.standard_normal((2, 2, 5, 5))
    params = nn.init_conv2d(rng, 2, 3, 3, dtype=np.float64)
    params["b"] = rng.standard_normal(3)
    out = nn.conv2d(x, params, stride, padding)
    w = rng.standard_normal(out.shape)
    check(conv_obj, (x, params, w, stride, padding), wrt=(0, 1))


def max_pool_obj(x, w, size, stride):
    return np.sum(nn.max_pool2d(x, size, stride) * w)


def avg_pool_obj(x, w, size, stride):
    return np.sum(nn.avg_pool2d(x, size, stride) * w)


def _distinct(rng, shape):
    """Entries a permutation of well-separated values: no ties inside a window."""
    n = int(np.prod(shape))
    return (rng.permutation(n).astype(np.float64) * 0.37).reshape(shape)


@pytest.mark.parametrize("size,stride,hw", [(2, 2, 4), (2, 2, 5), (3, 1, 5), (2, 1, 4)])
def test_pooling_gradients(size, stride, hw, rng):
    x = _distinct(rng, (2, 2, hw, hw))
    out_shape = nn.max_pool2d(x, size, stride).shape
    w = rng.standard_normal(out_shape)
    gmax = check(max_pool_obj, (x, w, size, stride), wrt=0)
    check(avg_pool_obj, (x, w, size, stride), wrt=0)
    if stride == size:
        # non-overlapping max pooling routes each upstream value to one input
        assert np.count_nonzero(gmax) == w.size


def batch_norm_obj(x, params, state, w, train):
    y, _ = nn.batch_norm(x, params, state, train)
    return np.sum(y * w)


@pytest.mark.parametrize("shape", [(6, 3), (3, 2, 2, 3)])
@pytest.mark.parametrize("train", [True, False])
def test_batch_norm_gradients(shape, train, rng):
    x = rng.standard_normal(shape)
    channels = shape[1]
    params = {"gamma": rng.uniform(0.5, 1.5, channels), "beta": rng.standard_normal(channels)}
    state = {"mean": rng.standard_normal(channels) * 0.1,
             "var": rng.uniform(0.5, 1.5, channels)}
    w = rng.standard_normal(shape)
    gx, gp = check(batch_norm_obj, (x, params, state, w, train), wrt=(0, 1))
    if train:
        # a batch-normalised output is invariant to shifting a channel of x
        axes = (0,) if len(shape) == 2 else (0, 2, 3)
        np.testing.assert_allclose(gx.sum(axis=axes), 0.0, atol=1e-10)


def layer_norm_obj(x, params, w):
    return np.sum(nn.layer_norm(x, params) * w)


def test_layer_norm_gradients(rng):
    x = rng.standard_normal((3, 5))
    params = {"gamma": rng.uniform(0.5, 1.5, 5), "beta": rng.standard_normal(5)}
    w = rng.standard_normal((3, 5))
    gx, _ = check(layer_norm_obj, (x, params, w), wrt=(0, 1))
    np.testing.assert_allclose(gx.sum(axis=-1), 0.0, atol=1e-10)


def dropout_obj(x, mask, w):
    return np.sum(nn.dropout(x, 0.25, mask) * w)


def dropout_eval_obj(x, mask, w):
    return np.sum(nn.dropout(x, 0.25, mask, False) * w)


def test_dropout_gradients(rng):
    x = rng.standard_normal((4, 6))
    mask = nn.dropout_mask(rng, x.shape, 0.25)
    assert 0 < mask.sum() < mask.size
    w = rng.standard_normal((4, 6))
    (g,) = check(dropout_obj, (x, mask, w), wrt=(0,))
    np.testing.assert_allclose(g, w * mask / 0.75, rtol=1e-12)
    (g,) = check(dropout_eval_obj, (x, mask, w), wrt=(0,))
    np.testing.assert_allclose(g, w, rtol=1e-12)


def embedding_obj(params, ids, w):
    return np.sum(nn.embedding(ids, params) * w)


def test_embedding_gradients_accumulate_repeated_ids(rng):
    params = {"E": rng.standard_normal((5, 3))}
    ids = np.array([[0, 2], [2, 4]])
    w = rng.standard_normal((2, 2, 3))
    g = check(embedding_obj, (params, ids, w), wrt=0)
    np.testing.assert_allclose(g["E"][2], w[0, 1] + w[1, 0], rtol=1e-12)
    np.testing.assert_array_equal(g["E"][[1, 3]], 0.0)


# ------------------------------------------------------------------------ losses

def mse_obj(pred, target):
    return nn.mse(pred, target)


def test_mse_gradient(rng):
    pred = rng.standard_normal((4, 3))
    target = rng.standard_normal((4, 3))
    g = check(mse_obj, (pred, target), wrt=0)
    np.testing.assert_allclose(g, 2 * (pred - target) / pred.size, rtol=1e-12)


def xent_obj(logits, labels):
    return nn.softmax_cross_entropy(logits, labels)


def test_softmax_cross_entropy_gradient_ids_and_one_hot(rng):
    logits = rng.standard_normal((4, 5)) * 2
    labels = np.array([0, 3, 4, 3])
    g = check(xent_obj, (logits, labels), wrt=0)
    one_hot = np.eye(5)[labels]
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(g, (p - one_hot) / 4, rtol=1e-10, atol=1e-14)
    g2 = check(xent_obj, (logits, one_hot), wrt=0)
    np.testing.assert_allclose(g2, g, rtol=1e-12)


def test_softmax_cross_entropy_gradient_stable_for_huge_logits():
    logits = np.array([[1000.0, 0.0, -1000.0]])
    g = ds.grad(xent_obj)(logits, np.array([1]))
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, [[1.0, -1.0, 0.0]], atol=1e-12)


def bce_obj(logits, targets):
    return nn.binary_cross_entropy_with_logits(logits, targets)


def test_binary_cross_entropy_with_logits_gradient(rng):
    logits = away_from_zero(rng, (3, 4), hi=4.0)
    targets = rng.uniform(0, 1, (3, 4))
    g = check(bce_obj, (logits, targets), wrt=0)
    np.testing.assert_allclose(g, (1 / (1 + np.exp(-logits)) - targets) / 12, rtol=1e-10)


def hinge_obj(scores, labels):
    return nn.multiclass_hinge(scores, labels)


def test_multiclass_hinge_gradient(rng):
    scores = _distinct(rng, (4, 5)) / 3.0 - 2.0
    labels = np.array([1, 0, 4, 2])
    margins = scores - scores[np.arange(4), labels][:, None] + 1.0
    assert np.all(np.abs(margins) > 1e-3)  # away from the kink
    g = check(hinge_obj, (scores, labels), wrt=0)
    active = (margins > 0) & (np.arange(5) != labels[:, None])
    expected = active.astype(float)
    expected[np.arange(4), labels] = -active.sum(axis=1)
    np.testing.assert_allclose(g, expected / 4, rtol=1e-12)


def focal_obj(logits, labels, gamma, alpha):
    return nn.focal_loss(logits, labels, gamma, alpha)


@pytest.mark.parametrize("gamma,alpha", [(0.0, None), (2.0, None), (2.0, 0.25), (1.5, 0.5)])
def test_focal_loss_gradient_multiclass(gamma, alpha, rng):
    logits = rng.standard_normal((4, 3))
    labels = np.array([0, 2, 1, 2])
    g = check(focal_obj, (logits, labels, gamma, alpha), wrt=0)
    if gamma == 0.0 and alpha is None:
        np.testing.assert_allclose(g, ds.grad(xent_obj)(logits, labels), rtol=1e-12)


@pytest.mark.parametrize("gamma,alpha", [(2.0, None), (2.0, 0.25)])
def test_focal_loss_gradient_binary(gamma, alpha, rng):
    logits = away_from_zero(rng, (3, 4), hi=3.0)
    targets = (rng.uniform(size=(3, 4)) > 0.5).astype(np.float64)
    check(focal_obj, (logits, targets, gamma, alpha), wrt=0)


def l1_obj(params):
    return nn.l1_penalty(params, 0.3)


def l2_obj(params):
    return nn.l2_penalty(params, 0.3)


def elastic_obj(params):
    return nn.elastic_net_penalty(params, 0.2, 0.7)


def test_penalty_gradients_over_nested_dicts(rng):
    params = {"l1": {"W": away_from_zero(rng, (2, 3)), "b": away_from_zero(rng, (3,))},
              "out": away_from_zero(rng, (3,))}
    g1 = check(l1_obj, (params,), wrt=0)
    g2 = check(l2_obj, (params,), wrt=0)
    ge = check(elastic_obj, (params,), wrt=0)
    np.testing.assert_allclose(g1["l1"]["W"], 0.3 * np.sign(params["l1"]["W"]), rtol=1e-12)
    np.testing.assert_allclose(g2["out"], 0.6 * params["out"], rtol=1e-12)
    np.testing.assert_allclose(ge["l1"]["b"], 0.2 * np.sign(params["l1"]["b"])
                               + 1.4 * params["l1"]["b"], rtol=1e-12)


def distill_obj(student, teacher):
    return nn.distillation_loss(student, teacher, 3.0)


def test_distillation_loss_gradient(rng):
    student = rng.standard_normal((3, 4))
    teacher = rng.standard_normal((3, 4))
    gs, gt = check(distill_obj, (student, teacher), wrt=(0, 1))
    # d/ds of T^2 KL(p_t || p_s) = T (p_s - p_t) / N
    ps = np.exp(student / 3) / np.exp(student / 3).sum(axis=1, keepdims=True)
    pt = np.exp(teacher / 3) / np.exp(teacher / 3).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(gs, 3.0 * (ps - pt) / 3, rtol=1e-10, atol=1e-14)
    assert np.abs(gt).max() > 0


# ----------------------------------------------------- a whole model, end to end

def mlp_loss(params, x, labels):
    h = nn.relu(nn.dense(x, params["hidden"]))
    return nn.softmax_cross_entropy(nn.dense(h, params["out"]), labels) \
        + nn.l2_penalty({"a": params["hidden"]["W"], "b": params["out"]["W"]}, 1e-2)


def test_mlp_loss_gradient_over_a_parameter_tree(rng):
    params = {"hidden": nn.init_dense(rng, 4, 6, w_init=nn.he_normal, dtype=np.float64),
              "out": nn.init_dense(rng, 6, 3, dtype=np.float64)}
    params["hidden"]["b"] = rng.uniform(0.05, 0.2, 6)
    x = rng.standard_normal((5, 4))
    labels = np.array([0, 1, 2, 1, 0])
    check(mlp_loss, (params, x, labels), wrt=0)


def test_float32_parameters_get_float32_gradients(rng):
    params = nn.init_dense(rng, 3, 2)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    g = ds.grad(dense_obj, wrt=1)(x, params, np.ones((4, 2), np.float32))
    assert g["W"].dtype == np.float32 and g["b"].dtype == np.float32
