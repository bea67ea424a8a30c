"""Peer-style acceptance tests for NumPy functions on arrays.

Modelled on the kinds of functions autograd's numpy/systematic suites sweep:
unary ufuncs on scalars/vectors/matrices, binary ufuncs with broadcasting,
statistics (sum/mean/prod/var/std/max/min with axis, axis tuples, keepdims,
ddof), dot/matmul/inner/outer/tensordot/einsum/kron/cross, every common shape
function (reshape method and call, ravel, flatten, transpose with axes, swapaxes,
rollaxis, moveaxis, expand_dims, squeeze, flip*, rot90, roll, repeat, tile,
concatenate/stack/vstack/hstack/column_stack, split family, diff, cumsum, sort,
trace/diag/diagonal/tril/triu), indexing (ints, slices, negative steps, lists,
mixed, booleans, repeated indices, np.newaxis, Ellipsis), building arrays from
scalars with np.array, where/clip/maximum-as-relu, ties in max/maximum,
logsumexp, softmax and a numerically stable sigmoid, and float32 inputs.
Every gradient is compared with central finite differences in float64.
"""
import numpy as np
import pytest
from hypothesis import given, settings

import diffsrc as ds

try:
    from gradcheck import arrays, broadcast_pair, check_grad, nonzero_arrays, positive_arrays
except ImportError:  # tests/ turned into a package
    from tests.gradcheck import (arrays, broadcast_pair, check_grad, nonzero_arrays,
                                 positive_arrays)

HYP = settings(max_examples=6, deadline=None)
R = np.random.default_rng(12345)


def randn(*shape):
    return R.standard_normal(shape) if shape else float(R.standard_normal())


def reduce_sin(v):
    """The scalar every array-valued result is reduced to (sum of sines)."""
    return np.sum(np.sin(v))


def case(fn, *args, wrt=0, rtol=1e-5, atol=1e-6, xfail=None):
    marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
    return pytest.param(fn, args, wrt, rtol, atol, marks=marks, id=fn.__name__)


# ---------------------------------------------------------------------------
# unary ufuncs over scalar / vector / matrix / row shapes
# ---------------------------------------------------------------------------

UNARY = {
    "sin": (np.sin, (-2, 2)), "cos": (np.cos, (-2, 2)), "tan": (np.tan, (-1.1, 1.1)),
    "abs": (np.abs, (0.1, 4.0)), "absolute": (np.absolute, (0.1, 4.0)),
    "fabs": (np.fabs, (0.1, 4.0)), "arccosh": (np.arccosh, (1.1, 4.0)),
    "arcsinh": (np.arcsinh, (-0.9, 0.9)), "arctanh": (np.arctanh, (-0.9, 0.9)),
    "arcsin": (np.arcsin, (-0.9, 0.9)), "arccos": (np.arccos, (-0.9, 0.9)),
    "arctan": (np.arctan, (-2, 2)), "cosh": (np.cosh, (-2, 2)), "sinh": (np.sinh, (-2, 2)),
    "tanh": (np.tanh, (-2, 2)), "exp": (np.exp, (-2, 2)), "exp2": (np.exp2, (-2, 2)),
    "expm1": (np.expm1, (-2, 2)), "log": (np.log, (0.2, 2.0)), "log10": (np.log10, (0.2, 2.0)),
    "log1p": (np.log1p, (0.2, 2.0)), "log2": (np.log2, (0.2, 2.0)),
    "sqrt": (np.sqrt, (1.0, 3.0)), "square": (np.square, (-2, 2)),
    "reciprocal": (np.reciprocal, (0.5, 2.0)), "negative": (np.negative, (-2, 2)),
    "deg2rad": (np.deg2rad, (-2, 2)), "rad2deg": (np.rad2deg, (-0.05, 0.05)),
    "radians": (np.radians, (-2, 2)), "degrees": (np.degrees, (-0.05, 0.05)),
    "sign": (np.sign, (-2, 2)), "ceil": (np.ceil, (-1.4, 1.4)), "floor": (np.floor, (-1.4, 1.4)),
    "rint": (np.rint, (-1.4, 1.4)), "real": (np.real, (-2, 2)), "conj": (np.conj, (-2, 2)),
    "positive": (np.positive, (-2, 2)), "cbrt": (np.cbrt, (0.5, 2.0)),
    "sinc": (np.sinc, (0.1, 0.9)),
}


def _in(lims, u):
    return u * (lims[1] - lims[0]) + lims[0]


@pytest.mark.parametrize("shape", [(), (3, 2), (1, 2)], ids=str)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_ufunc(name, shape):
    fn, lims = UNARY[name]
    x = _in(lims, R.uniform(0.05, 0.95, size=shape)) if shape else _in(lims, 0.4)

    def f(v):
        return np.sum(np.sin(fn(v)) * 1.5)

    g = check_grad(f, (x,), 0)
    assert np.shape(g) == np.shape(x)


# ---------------------------------------------------------------------------
# binary ufuncs with broadcasting (hypothesis over shapes)
# ---------------------------------------------------------------------------

def add_sub_mul_logaddexp(a, b):
    return np.sum(np.tanh(np.add(a, b)) + np.subtract(a, b) ** 2 + np.sin(np.multiply(a, b))
                  + np.logaddexp(a, b) * np.logaddexp2(b, a))


@HYP
@given(pair=broadcast_pair())
def test_binary_ufuncs_broadcast(pair):
    check_grad(add_sub_mul_logaddexp, pair, (0, 1))


@HYP
@given(pair=broadcast_pair(lo=-2.0, hi=2.0, lo_b=0.8, hi_b=2.0))
def test_true_divide_and_power_broadcast(pair):
    def f(a, b):
        return np.sum(np.true_divide(a, b) + np.power(b, a) - np.divide(b, a * a + 1.0))
    check_grad(f, pair, (0, 1))


@HYP
@given(pair=broadcast_pair(lo=0.3, hi=2.0))
def test_hypot_broadcast(pair):
    def f(a, b):
        return np.sum(np.hypot(a, b) * np.hypot(b, -a))
    check_grad(f, pair, (0, 1))


@HYP
@given(pair=broadcast_pair(lo=0.05, hi=0.9, lo_b=1.0, hi_b=1.9))
def test_remainder_broadcast(pair):
    def f(a, b):
        return np.sum(np.remainder(a, b) * np.mod(a, b))
    check_grad(f, pair, (0, 1))


@HYP
@given(pair=broadcast_pair())
def test_maximum_minimum_broadcast(pair):
    a, b = pair
    b = b + 0.0371      # keep the operands apart (no ties)

    def f(u, v):
        return np.sum(np.maximum(u, v) * 2.0 + np.minimum(u, v) ** 2 + np.fmax(u, v) - np.fmin(u, v))
    check_grad(f, (a, b), (0, 1))


# ---------------------------------------------------------------------------
# statistics with axis / keepdims / ddof
# ---------------------------------------------------------------------------

STATS = {"sum": np.sum, "mean": np.mean, "prod": np.prod, "var": np.var, "std": np.std,
         "max": np.max, "min": np.min}


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, 0, -1, (0, 1)], ids=str)
@pytest.mark.parametrize("name", sorted(STATS))
def test_statistics_axis_keepdims(name, axis, keepdims):
    fn = STATS[name]
    x = R.uniform(0.3, 1.5, size=(2, 3)) * np.where(R.random((2, 3)) > 0.5, 1.0, -1.0)

    def f(v):
        return reduce_sin(fn(v, axis=axis, keepdims=keepdims))

    check_grad(f, (x,), 0)


@pytest.mark.parametrize("ddof", [0, 1, 2])
@pytest.mark.parametrize("axis", [None, 1])
def test_var_std_ddof(ddof, axis):
    x = randn(3, 4)

    def f(v):
        return reduce_sin(np.var(v, axis=axis, ddof=ddof)) + reduce_sin(np.std(v, axis=axis, ddof=ddof))

    check_grad(f, (x,), 0)


def stats_on_scalar(x):
    return np.sum(x) + np.mean(x) * 2.0 + np.prod(x) + np.var(x) * x


def extrema_on_scalar(x):
    return np.max(x) * 2.0 + np.min(x) * np.amax(x)


def stats_as_methods(x):
    return (x.sum() + x.mean(axis=0).sum() + x.max(axis=1).sum() + x.min() + x.prod(axis=1).sum()
            + x.var() + x.std(axis=0).sum())


def sum_axis_tuple(x):
    return reduce_sin(np.sum(x, axis=(1, 2)))


def stats_on_column(x):
    return reduce_sin(np.mean(x, axis=0)) + reduce_sin(np.sum(x, axis=1, keepdims=True))


def test_stats_scalar_argument():
    check_grad(stats_on_scalar, (0.7,), 0)
    check_grad(stats_on_scalar, (randn(),), 0)


def test_extrema_of_python_float():
    check_grad(extrema_on_scalar, (0.7,), 0)


def test_stats_methods_and_axis_tuple():
    check_grad(stats_as_methods, (R.uniform(0.5, 1.5, (3, 4)),), 0)
    check_grad(sum_axis_tuple, (randn(3, 4, 2),), 0)
    check_grad(stats_on_column, (randn(3, 1),), 0)
    check_grad(stats_on_column, (randn(1, 3),), 0)


# ties: the gradient of a max with several maximal entries must still sum to 1


def max_of_equal_pair(x):
    return np.max(np.array([x, x]))


def rowmax_with_ties(x):
    return np.sum(np.max(np.array([[x, x], [x, 0.5]]), axis=1))


def colmin_three_way(x):
    m = np.array([[x, x, x], [x, 0.5, 0.5], [0.5, 0.5, 0.5], [x, x, 0.5]])
    return np.sum(np.min(m, axis=0))


def maximum_of_self(x):
    return np.maximum(x, x)


def maximum_broadcast_ties(x):
    return np.sum(np.maximum(np.array([x, x, 0.5]), np.array([[x, 0.5, x], [x, x, 0.5]])))


@pytest.mark.parametrize("f,x,expected", [
    (max_of_equal_pair, 1.0, 1.0),
    (rowmax_with_ties, 1.0, 2.0),
    (rowmax_with_ties, -1.0, 1.0),
    (colmin_three_way, 0.2, 3.0),
    (colmin_three_way, 1.0, 0.0),
    (maximum_of_self, 1.0, 1.0),
    (maximum_broadcast_ties, 1.0, 5.0),
    (maximum_broadcast_ties, 2.0, 5.0),
], ids=lambda v: getattr(v, "__name__", str(v)))
def test_extrema_with_ties(f, x, expected):
    # every candidate equals the others: d/dx of the extremum is exactly `expected`
    assert ds.grad(f)(x) == pytest.approx(expected, rel=1e-12)


# ---------------------------------------------------------------------------
# products: dot, matmul, inner, outer, tensordot, einsum, kron, cross
# ---------------------------------------------------------------------------


def f_dot(x, y):
    return reduce_sin(np.dot(x, y))


def f_matmul(x, y):
    return reduce_sin(np.matmul(x, y))


def f_matmul_op(x, y):
    return reduce_sin(x @ y)


def f_dot_method(x, y):
    return reduce_sin(x.dot(y))


def f_inner(x, y):
    return reduce_sin(np.inner(x, y))


def f_outer(x, y):
    return reduce_sin(np.outer(x, y))


def f_kron(x, y):
    return reduce_sin(np.kron(x, y))


def f_cross(x, y):
    return reduce_sin(np.cross(x, y))


def f_vdot(x, y):
    return np.sin(np.vdot(x, y))


DOT_PAIRS = [(1.5, 0.3), (randn(3), randn(3)), (randn(2, 3), randn(3)), (randn(3), randn(3, 4)),
             (randn(2, 3), randn(3, 4)), (randn(2, 2, 3), randn(3, 4)), (randn(2, 3), 0.3),
             (0.4, randn(3, 4)), (randn(2, 2, 3), randn(2, 3, 4))]
MATMUL_PAIRS = [(randn(3), randn(3)), (randn(2, 3), randn(3, 4)), (randn(3), randn(3, 4)),
                (randn(2, 3), randn(3)), (randn(2, 2, 3), randn(2, 3, 4)),
                (randn(2, 2, 3), randn(3, 4)), (randn(3), randn(2, 3, 4))]
INNER_PAIRS = [(1.5, 0.3), (randn(3), randn(3)), (randn(2, 3), randn(4, 3)), (randn(3), randn(4, 3))]


@pytest.mark.parametrize("i", range(len(DOT_PAIRS)))
def test_dot_pairs(i):
    check_grad(f_dot, DOT_PAIRS[i], (0, 1))


@pytest.mark.parametrize("f", [f_matmul, f_matmul_op], ids=lambda f: f.__name__)
@pytest.mark.parametrize("i", range(len(MATMUL_PAIRS)))
def test_matmul_pairs(f, i):
    check_grad(f, MATMUL_PAIRS[i], (0, 1))


@pytest.mark.parametrize("i", range(len(INNER_PAIRS)))
def test_inner_pairs(i):
    check_grad(f_inner, INNER_PAIRS[i], (0, 1))


def test_outer_kron_cross_vdot_dotmethod():
    check_grad(f_outer, (randn(4), randn(3)), (0, 1))
    check_grad(f_outer, (randn(2, 2), randn(3)), (0, 1))
    check_grad(f_kron, (randn(2, 2), randn(3, 2)), (0, 1))
    check_grad(f_vdot, (randn(5), randn(5)), (0, 1))
    check_grad(f_dot_method, (randn(2, 3), randn(3)), (0, 1))


def test_cross():
    check_grad(f_cross, (randn(3), randn(3)), (0, 1))
    check_grad(f_cross, (randn(4, 3), randn(4, 3)), (0, 1))


def inner_as_output(x, y):
    return np.inner(x, y)


def tensordot_as_output(a, b):
    return np.tensordot(a, b, 2) * 1.0


def test_full_contraction_as_output():
    check_grad(inner_as_output, (randn(3), randn(3)), (0, 1))
    check_grad(tensordot_as_output, (randn(2, 2), randn(2, 2)), (0, 1))


def td_axes_pairs(a, b):
    return reduce_sin(np.tensordot(a, b, axes=[(1,), (0,)]))


def td_axes_two(a, b):
    return reduce_sin(np.tensordot(a, b, axes=[(0, 1), (1, 2)]))


def td_axes_swapped(a, b):
    return reduce_sin(np.tensordot(a, b, axes=[(1, 0), (2, 1)]))


def td_int_axes_1(a, b):
    return reduce_sin(np.tensordot(a, b, axes=1))


def td_int_axes_2(a, b):
    return reduce_sin(np.tensordot(a, b, 2))


def td_int_axes_0(a, b):
    return reduce_sin(np.tensordot(a, b, axes=0))


def td_negative_axes(a, b):
    return reduce_sin(np.tensordot(a, b, axes=[[-1], [0]]))


def td_scalar_times_ones(x):
    return np.tensordot(x * np.ones((2, 2)), x * np.ones((2, 2)), 2)


@pytest.mark.parametrize("f,a,b", [
    (td_axes_pairs, randn(2, 3, 2), randn(3, 4, 2)),
    (td_axes_two, randn(2, 3, 4), randn(2, 2, 3, 4)),
    (td_axes_swapped, randn(2, 3), randn(1, 2, 3)),
    (td_int_axes_1, randn(4, 2, 2), randn(2, 2, 4)),
    (td_int_axes_2, randn(4, 2, 2), randn(2, 2, 4)),
    (td_int_axes_0, randn(4), randn(3)),
    (td_negative_axes, randn(2, 6), randn(6, 3)),
], ids=lambda v: getattr(v, "__name__", "arr"))
def test_tensordot(f, a, b):
    check_grad(f, (a, b), (0, 1))


def test_tensordot_of_scalar_products():
    assert ds.grad(td_scalar_times_ones)(1.5) == pytest.approx(4 * 2 * 1.5, rel=1e-12)


EINSUM = [
    ("ij->ji", (randn(3, 4),)),
    ("ii->i", (randn(3, 3),)),
    ("ii", (randn(3, 3),)),
    ("ij->", (randn(3, 4),)),
    ("ij,jk->ik", (randn(2, 3), randn(3, 4))),
    ("...ij,...jk->...ik", (randn(2, 2, 3), randn(2, 3, 4))),
    ("...ij,...jk->...ik", (randn(2, 3), randn(2, 3, 4))),
    ("ijk,lji->lki", (randn(3, 4, 4), randn(4, 4, 3))),
    ("...jk,...lj->...lk", (randn(3, 4, 4), randn(4, 4))),
    ("...,...->...", (randn(3, 4, 4), randn(4, 4))),
    ("jk...,lj...->lk...", (randn(3, 2, 4), randn(2, 3, 4))),
    ("j...k,lj...->lk...", (randn(2, 2, 2), randn(2, 2, 2))),
    ("ijk,lji,lli->lki", (randn(3, 4, 4), randn(4, 4, 3), randn(4, 4, 3))),
    ("i,i", (randn(5), randn(5))),
    ("i,j->ij", (randn(3), randn(4))),
    ("bij,bjk->bik", (randn(2, 3, 4), randn(2, 4, 2))),
]


@pytest.mark.parametrize("i", range(len(EINSUM)), ids=lambda i: EINSUM[i][0])
def test_einsum(i):
    spec, operands = EINSUM[i]
    if len(operands) == 1:
        def f(a):
            return reduce_sin(np.einsum(spec, a))
    elif len(operands) == 2:
        def f(a, b):
            return reduce_sin(np.einsum(spec, a, b))
    else:
        def f(a, b, c):
            return reduce_sin(np.einsum(spec, a, b, c))
    check_grad(f, operands, tuple(range(len(operands))))


def einsum_literal_spec(a, b):
    return np.sum(np.einsum("ij,jk->ik", a, b) ** 2)


def einsum_sublist_form(a, b):
    return reduce_sin(np.einsum(a, [0, 1], b, [1, 2], [0, 2]))


def test_einsum_literal_spec():
    check_grad(einsum_literal_spec, (randn(2, 3), randn(3, 2)), (0, 1))


def test_einsum_sublist():
    check_grad(einsum_sublist_form, (randn(2, 3), randn(3, 2)), (0, 1))


# ---------------------------------------------------------------------------
# shape functions
# ---------------------------------------------------------------------------


def sh_reshape_method_tuple(x):
    return reduce_sin(x.reshape((5 * 4, 3)) * np.arange(3.0))


def sh_reshape_method_ints(x):
    return reduce_sin(x.reshape(4 * 5, 3) * np.arange(3.0))


def sh_reshape_call(x):
    return reduce_sin(np.reshape(x, (20, 3)) * np.arange(3.0))


def sh_reshape_minus_one(x):
    return reduce_sin(x.reshape(-1, 6) * np.arange(6.0))


def sh_ravel_flatten(x):
    return reduce_sin(x.ravel() * np.arange(60.0)) + reduce_sin(np.ravel(x) ** 2) + np.sum(x.flatten()[::7])


def sh_transpose_T(x):
    return reduce_sin(x.T[0]) + reduce_sin(x.T * np.arange(5.0)[:, None, None])


def sh_transpose_axes(x):
    return reduce_sin(np.transpose(x, (2, 0, 1))[1]) + reduce_sin(x.transpose(1, 2, 0)[0])


def sh_swap_move(x):
    return reduce_sin(np.swapaxes(x, 0, 2)[0]) + reduce_sin(np.moveaxis(x, 0, -1)[..., 0])


def sh_rollaxis(x):
    return reduce_sin(np.rollaxis(x, 2, 0)[1]) + reduce_sin(np.rollaxis(x, 1)[0])


def sh_expand_squeeze(x):
    y = np.expand_dims(x, 1)
    return reduce_sin(np.squeeze(y[:, :, :1, :])) + reduce_sin(y.squeeze(axis=1)[1])


def sh_flips(x):
    return (reduce_sin(np.flipud(x)[0]) + reduce_sin(np.fliplr(x)[:, 0]) + reduce_sin(np.flip(x, 0)[0])
            + reduce_sin(x[::-1, ::-1][0]))


def sh_rot90(x):
    return reduce_sin(np.rot90(x)[0]) + reduce_sin(np.rot90(x, 2)[1])


def sh_roll(x):
    return reduce_sin(np.roll(x, 2, axis=1)[0]) + reduce_sin(np.roll(x, -1)[:3])


def sh_repeat(x):
    return (reduce_sin(np.repeat(x, 2, axis=1) * np.arange(8.0)) + reduce_sin(np.repeat(x, 3)[::2])
            + reduce_sin(np.repeat(x, 1, axis=0)[0]))


def sh_tile(x):
    return reduce_sin(np.tile(x, (2, 3)) * np.arange(12.0).reshape(2, 6)) + reduce_sin(np.tile(x, 2)[0])


def sh_concatenate(x):
    c = np.ones((2, 4))
    return (reduce_sin(np.concatenate((c, x, c)) * np.arange(4.0))
            + reduce_sin(np.concatenate([x, x * 2.0], axis=1)[0])
            + reduce_sin(np.concatenate((c, x), 0)[1:]))


def sh_stacks(x):
    return (reduce_sin(np.stack([x, x * x])[1]) + reduce_sin(np.stack((x, x), axis=1)[:, 0])
            + reduce_sin(np.vstack((x, x[:1]))[-1]) + reduce_sin(np.hstack([x, x])[:, 3:5])
            + reduce_sin(np.column_stack((x[:, 0], x[:, 1]))))


def sh_stack_1d(v):
    return (reduce_sin(np.stack((v, v * 2.0), axis=1)[0]) + reduce_sin(np.vstack((v, v))[1])
            + reduce_sin(np.hstack((v, v))[2:]) + reduce_sin(np.column_stack((v, 3.0 * v))[1]))


def sh_split(x):
    a, b = np.split(x, 2, axis=1)
    parts = np.array_split(x, 3, axis=1)
    top, bottom = np.vsplit(x, [1])
    left, right = np.hsplit(x, 2)
    return (reduce_sin(a * b) + reduce_sin(parts[2]) + np.sum(top) * 2.0 + reduce_sin(bottom)
            + reduce_sin(left - right))


def sh_diff_cumsum(x):
    return (reduce_sin(np.diff(x, axis=0)) + reduce_sin(np.diff(x, n=2, axis=1))
            + reduce_sin(np.cumsum(x, axis=0)) + reduce_sin(np.cumsum(x)) + reduce_sin(x.cumsum(axis=1)))


def sh_cumprod(x):
    return reduce_sin(np.cumprod(x, axis=1))


def sh_sort(x):
    return reduce_sin(np.sort(x) * np.arange(7.0)) + reduce_sin(np.sort(x)[:2])


def sh_partition_like(x):
    return np.sum(np.sort(x)[-3:] ** 2)


def sh_trace_diag(x):
    return (np.trace(x) + np.trace(x, offset=1) * 2.0 + reduce_sin(np.diag(x)) + reduce_sin(np.diag(x, k=-1))
            + reduce_sin(np.diagonal(x)) + reduce_sin(np.diag(np.diag(x))))


def sh_diag_from_vector(v):
    return reduce_sin(np.diag(v) * np.arange(25.0).reshape(5, 5)) + reduce_sin(np.diag(v, k=1)[0])


def sh_trace_3d(x):
    return reduce_sin(np.trace(x, offset=1)) + reduce_sin(np.diagonal(x, axis1=-1, axis2=-2))


def sh_tril_triu(x):
    return (reduce_sin(np.tril(x)) + reduce_sin(np.triu(x, k=1) * 2.0) + reduce_sin(np.tril(x, k=-1) * 3.0)
            + reduce_sin(np.triu(x, 2)))


def sh_atleast(x):
    return (reduce_sin(np.atleast_1d(x)) + reduce_sin(np.atleast_2d(x) * 2.0)
            + reduce_sin(np.atleast_3d(x) * 3.0))


def sh_broadcast_to(v):
    return reduce_sin(np.broadcast_to(v, (3, 4)) * np.arange(12.0).reshape(3, 4))


def sh_pad(x):
    return reduce_sin(np.pad(x, 1) * 2.0) + reduce_sin(np.pad(x, ((0, 1), (2, 0)))[0])


def sh_astype_copy(x):
    y = x.astype(np.float64).copy()
    return reduce_sin(y * np.array(x))


SHAPE_CASES = [
    case(sh_reshape_method_tuple, randn(5, 3, 4)),
    case(sh_reshape_method_ints, randn(5, 3, 4)),
    case(sh_reshape_call, randn(5, 3, 4)),
    case(sh_reshape_minus_one, randn(2, 3, 2)),
    case(sh_ravel_flatten, randn(5, 3, 4)),
    case(sh_transpose_T, randn(3, 4, 5)),
    case(sh_transpose_axes, randn(2, 3, 4)),
    case(sh_swap_move, randn(2, 3, 4)),
    case(sh_rollaxis, randn(2, 3, 4)),
    case(sh_expand_squeeze, randn(3, 1, 4)),
    case(sh_flips, randn(3, 4)),
    case(sh_rot90, randn(3, 4)),
    case(sh_roll, randn(3, 4)),
    case(sh_repeat, randn(3, 4)),
    case(sh_tile, randn(1, 2)),
    case(sh_concatenate, randn(2, 4)),
    case(sh_stacks, randn(3, 4)),
    case(sh_stack_1d, randn(3)),
    case(sh_split, randn(4, 6)),
    case(sh_diff_cumsum, randn(4, 5)),
    case(sh_cumprod, R.uniform(0.5, 1.5, (3, 4))),
    case(sh_sort, randn(7)),
    case(sh_partition_like, randn(7)),
    case(sh_trace_diag, randn(5, 5)),
    case(sh_diag_from_vector, randn(5)),
    case(sh_trace_3d, randn(3, 4, 4)),
    case(sh_tril_triu, randn(5, 5)),
    case(sh_atleast, randn(2, 3)),
    case(sh_atleast, 1.2),
    case(sh_broadcast_to, randn(4)),
    case(sh_pad, randn(2, 3)),
    case(sh_astype_copy, randn(2, 3)),
]


@pytest.mark.parametrize("f,args,wrt,rtol,atol", SHAPE_CASES)
def test_shape_functions(f, args, wrt, rtol, atol):
    check_grad(f, args, wrt, rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------
# indexing
# ---------------------------------------------------------------------------


def ix_ints(x):
    return np.sin(x[3, 0, 1]) + x[-1, -2, -3] * x[0, 0, 0]


def ix_slices(x):
    return reduce_sin(x[::-1, 2:4, :]) + reduce_sin(x[1:-1:2, ::3, -2:])


def ix_lists(x):
    return reduce_sin(x[[0, 1, 2], :, :]) + reduce_sin(x[:, [2, 0]])


def ix_mixed(x):
    return reduce_sin(x[3, 2:, [1, 3]]) + reduce_sin(x[[0, 4], 1, 1:3])


def ix_fanout(x):
    y = x[::-1, 2:4, :]
    z = x[::-1, 3:5, :]
    return reduce_sin(y + z)


def ix_slice_of_slice(x):
    y = x[2:6]
    z = y[1:3]
    return reduce_sin(z) + reduce_sin(y[::-2])


def ix_repeated(x):
    return np.sum(x[[0, 0]]) + np.sum(x[[0, 1, 0]] ** 2) + np.sum(x[np.array([2, 2, 1])] * 3.0)


def ix_dot_halves(x):
    return np.dot(x[:2], x[2:])


def ix_boolean_mask(x):
    return np.sum(x[x > 0] ** 2) + np.sum(x[np.array([True, False, True, False, True])])


def ix_boolean_mask_2d(x):
    mask = x > 0.1
    return np.sum(np.where(mask, x, 0.0) ** 2) + np.sum(x[mask])


def ix_newaxis_ellipsis(x):
    return reduce_sin(x[..., 1]) + reduce_sin(x[:, np.newaxis, :] * x[np.newaxis]) + reduce_sin(x[None, 0, ...])


def ix_int_array_2d(x):
    rows = np.array([0, 2, 2])
    cols = np.array([1, 0, 1])
    return reduce_sin(x[rows, cols]) + reduce_sin(x[np.ix_([0, 1], [1, 2])])


def ix_take(x):
    return reduce_sin(np.take(x, [0, 2, 2])) + reduce_sin(np.take(x, [1, 0], axis=0))


def ix_loop_index(x):
    s = 0.0
    for i in range(x.shape[0]):
        s = s + x[i] * x[-1 - i]
    return s


def ix_len_and_shape(x):
    assert len(x) == 3
    n, m = x.shape
    return reduce_sin(x) * n + np.sum(x[:, m - 1])


def ix_cast_index_from_data(W):
    inds = np.floor(np.abs(W[:, -1]) * 0.0).astype(np.int64)    # all zeros, computed from W
    new_W = W[:, :-1]
    return np.sum(new_W[inds] ** 2)


INDEX_CASES = [
    case(ix_ints, randn(5, 6, 4)),
    case(ix_slices, randn(5, 6, 4)),
    case(ix_lists, randn(5, 6, 4)),
    case(ix_mixed, randn(5, 6, 4)),
    case(ix_fanout, randn(5, 6, 4)),
    case(ix_slice_of_slice, randn(7)),
    case(ix_repeated, randn(3)),
    case(ix_dot_halves, randn(4)),
    case(ix_boolean_mask, np.array([0.5, -0.7, 1.2, -0.3, 0.9])),
    case(ix_boolean_mask_2d, np.array([[0.5, -0.7, 1.2], [-0.3, 0.9, 0.4]])),
    case(ix_newaxis_ellipsis, randn(3, 4)),
    case(ix_int_array_2d, randn(3, 3)),
    case(ix_take, randn(3, 2)),
    case(ix_loop_index, randn(5)),
    case(ix_len_and_shape, randn(3, 2)),
    case(ix_cast_index_from_data, randn(5, 4)),
]


@pytest.mark.parametrize("f,args,wrt,rtol,atol", INDEX_CASES)
def test_indexing(f, args, wrt, rtol, atol):
    check_grad(f, args, wrt, rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------
# building arrays from scalars / arrays
# ---------------------------------------------------------------------------


def build_1d(x):
    return reduce_sin(np.array([x, x * 1.0, x + 2.5]))


def build_2d(x):
    return reduce_sin(np.array([[x, x * 1.0, x + 2.5], [x ** 2, x, x / 2.0]]))


def build_fanout(x):
    A = np.array([[x, x * 1.0, x + 2.5], [x ** 2, x, x / 2.0]])
    return reduce_sin(A + A)


def build_from_scalar(x):
    return reduce_sin(np.array(x))


def build_from_arrays(x):
    return reduce_sin(np.array([x, x])) + reduce_sin(np.array([[2 * x, x + 1], [x, x]]))


def build_asarray_list(x):
    return np.sum(np.asarray([x[0], x[1] * x[2], 1.0]) ** 2)


def build_linspace(x, y):
    return reduce_sin(np.linspace(x, y, 5))


def build_many_scalars(x):
    arr = [x * (i + 1.0) for i in range(50)]
    return np.sum(np.array(arr))


def build_ones_zeros_full(x):
    return np.sum(x * np.ones(3) + np.zeros((2, 3)) + np.full((2, 3), 0.5) * x + np.eye(3)[0] * x)


BUILD_CASES = [
    case(build_1d, 3.0),
    case(build_2d, 3.0),
    case(build_fanout, 3.0),
    case(build_from_scalar, 3.0),
    case(build_from_arrays, randn(3, 2)),
    case(build_asarray_list, randn(3)),
    case(build_linspace, 1.2, 3.4, wrt=(0, 1)),
    case(build_linspace, 1.2, -3.4, wrt=(0, 1)),
    case(build_many_scalars, 1.5),
    case(build_ones_zeros_full, 0.7),
]


@pytest.mark.parametrize("f,args,wrt,rtol,atol", BUILD_CASES)
def test_array_building(f, args, wrt, rtol, atol):
    check_grad(f, args, wrt, rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------
# where / clip / relu / softplus / logsumexp / softmax / stable sigmoid
# ---------------------------------------------------------------------------

COND = R.standard_normal((4, 5)) > 0


def nn_where(x, y):
    return reduce_sin(np.where(COND, x, y))


def nn_where_scalar_branch(x):
    return np.sum(np.where(x > 0, x, 0.1 * x) ** 2) + np.sum(np.where(x < 0.5, 1.0, x))


def nn_clip(x):
    return reduce_sin(np.clip(x, a_min=0.1, a_max=1.1)) + reduce_sin(np.clip(x, -0.5, 0.5) * 2.0) + reduce_sin(x.clip(0.0, 1.0))


def nn_relu_maximum(x):
    return np.sum(np.maximum(x, 0.0) ** 2) + np.sum(np.maximum(0.0, x) * 3.0)


def nn_relu_mask(x):
    return np.sum(x * (x > 0)) + np.sum((x > 0) * x ** 2)


def nn_softplus(x):
    return np.sum(np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0.0))


def nn_logsumexp(x):
    m = np.max(x, axis=-1, keepdims=True)
    return np.sum(m[..., 0] + np.log(np.sum(np.exp(x - m), axis=-1)))


def nn_softmax_xent(x):
    z = x - np.max(x, axis=1, keepdims=True)
    p = np.exp(z) / np.sum(np.exp(z), axis=1, keepdims=True)
    return -np.sum(np.log(p[:, 0])) + np.sum(p * np.arange(x.shape[1]))


def nn_stable_sigmoid(x):
    pos = 1.0 / (1.0 + np.exp(-np.abs(x)))
    s = np.where(x >= 0, pos, 1.0 - pos)
    return np.sum(s * np.arange(1.0, x.size + 1.0))


def nn_sigmoid_tanh_form(x):
    return np.sum(0.5 * (np.tanh(0.5 * x) + 1.0) ** 2)


def nn_nan_to_num(x):
    y = np.array([0.0, np.nan, np.inf, -np.inf])
    return np.sum(np.sin(np.nan_to_num(x + y)))


def nn_mse_and_l2(W, X, t):
    pred = X @ W
    return np.mean((pred - t) ** 2) + 0.01 * np.sum(W * W) + 0.5 * np.linalg.norm(W)


NN_CASES = [
    case(nn_where, randn(4, 5), randn(4, 5), wrt=(0, 1)),
    case(nn_where_scalar_branch, np.array([0.7, -0.3, 1.2, -1.5, 0.2])),
    case(nn_clip, np.array([[-0.8, 0.05, 0.3], [0.7, 1.3, -0.2]])),
    case(nn_relu_maximum, np.array([[-0.8, 0.05, 0.3], [0.7, 1.3, -0.2]])),
    case(nn_relu_mask, np.array([[-0.8, 0.05, 0.3], [0.7, 1.3, -0.2]])),
    case(nn_softplus, np.array([-2.5, -0.3, 0.4, 3.0])),
    case(nn_logsumexp, randn(3, 4)),
    case(nn_logsumexp, randn(5)),
    case(nn_softmax_xent, randn(3, 4)),
    case(nn_stable_sigmoid, np.array([-30.0, -1.2, -0.1, 0.3, 2.0, 40.0])),
    case(nn_sigmoid_tanh_form, randn(2, 3)),
    case(nn_nan_to_num, randn(4)),
    case(nn_mse_and_l2, randn(3, 2), randn(5, 3), randn(5, 2), wrt=0),
]


@pytest.mark.parametrize("f,args,wrt,rtol,atol", NN_CASES)
def test_nn_style(f, args, wrt, rtol, atol):
    check_grad(f, args, wrt, rtol=rtol, atol=atol)


def test_stable_sigmoid_extremes_finite():
    g = ds.grad(nn_stable_sigmoid)(np.array([-800.0, 800.0]))
    assert np.all(np.isfinite(g))


# ---------------------------------------------------------------------------
# index tricks, select/partition, linear algebra
# ---------------------------------------------------------------------------



def concat_by_r(x):
    c = np.ones((3, 2))
    return reduce_sin(np.r_[x, c, x])


def concat_by_r_with_range(x):
    return reduce_sin(np.r_[x, np.ones(3), 1:4])


def concat_by_c(x):
    return reduce_sin(np.c_[x, np.ones((3, 2)), x])


def select_branches(x):
    return np.sum(np.select([x > 0.5, x < -0.5], [x * x, -x], default=1.1 * x))


def smallest_by_partition(x):
    return np.sum(np.partition(x, 3)[:3] ** 2)


def linalg_mix(A, b):
    return (np.sum(np.linalg.solve(A, b)) + np.sum(np.linalg.inv(A) ** 2) + np.linalg.norm(b)
            + np.linalg.norm(A, "fro") + np.linalg.slogdet(A)[1] + np.linalg.det(A))


MISC_CASES = [
    case(concat_by_r, randn(3, 2)),
    case(concat_by_r_with_range, randn(3)),
    case(concat_by_c, randn(3, 2)),
    case(select_branches, np.array([0.7, -0.8, 0.1])),
    case(smallest_by_partition, randn(7)),
    case(linalg_mix, randn(3, 3) + 3.0 * np.eye(3), randn(3), wrt=(0, 1)),
]


@pytest.mark.parametrize("f,args,wrt,rtol,atol", MISC_CASES)
def test_misc_numpy(f, args, wrt, rtol, atol):
    check_grad(f, args, wrt, rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------
# hypothesis sweeps over shapes
# ---------------------------------------------------------------------------


@HYP
@given(x=arrays())
def test_chain_of_unary_property(x):
    def f(v):
        return np.sum(np.tanh(np.sin(v) * np.cos(v)) + np.exp(-v * v) + np.arctan(v) ** 2)
    check_grad(f, (x,), 0)


@HYP
@given(x=positive_arrays())
def test_log_sqrt_power_property(x):
    def f(v):
        return np.sum(np.log(v) * np.sqrt(v) + v ** 1.7 + 1.0 / v) / v.size
    check_grad(f, (x,), 0)


@HYP
@given(x=nonzero_arrays())
def test_abs_sign_property(x):
    def f(v):
        return np.sum(np.abs(v) ** 1.5 * np.sign(v) + np.abs(v * 2.0))
    check_grad(f, (x,), 0)


# ---------------------------------------------------------------------------
# dtypes
# ---------------------------------------------------------------------------


def sum_of_squares(x):
    return np.sum(x ** 2)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_gradient_keeps_dtype(dtype):
    x = np.linspace(-1.0, 1.0, 6).reshape(2, 3).astype(dtype)
    g = ds.grad(sum_of_squares)(x)
    assert g.dtype == dtype and g.shape == x.shape
    assert np.allclose(g.astype(np.float64), 2.0 * x.astype(np.float64), rtol=1e-2)


def test_float32_gradient_matches_fd():
    x = R.standard_normal((3, 4)).astype(np.float32)
    check_grad(nn_softmax_xent, (x,), 0, rtol=2e-3, atol=2e-3)
