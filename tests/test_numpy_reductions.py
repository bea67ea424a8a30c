"""Reductions and scans against central finite differences: axis None/int/negative/tuple,
keepdims, function and method forms; prod and cumprod with zeros; ties of max/min."""
import numpy as np
import pytest
from hypothesis import assume, given

from numpy_support import (FEW, HYP, arrays, axis_and_keepdims, check_grad, distinct_arrays,
                           ds, hnp, numeric_grad, out, positive_arrays, random_array, shapes,
                           st)


REDUCTIONS = {
    "sum": "np.sum(x, axis={axis}, keepdims={keepdims})",
    "sum_method": "x.sum(axis={axis}, keepdims={keepdims})",
    "sum_positional": "np.sum(x, {axis}, None, None, {keepdims})",
    "mean": "np.mean(x, axis={axis}, keepdims={keepdims})",
    "mean_method": "x.mean({axis}, keepdims={keepdims})",
    "prod": "np.prod(x, axis={axis}, keepdims={keepdims})",
    "prod_method": "x.prod(axis={axis}, keepdims={keepdims})",
    "max": "np.max(x, axis={axis}, keepdims={keepdims})",
    "max_method": "x.max(axis={axis}, keepdims={keepdims})",
    "amax": "np.amax(x, axis={axis}, keepdims={keepdims})",
    "min": "np.min(x, axis={axis}, keepdims={keepdims})",
    "min_method": "x.min(axis={axis}, keepdims={keepdims})",
    "amin": "np.amin(x, axis={axis}, keepdims={keepdims})",
    "nanmax": "np.nanmax(x, axis={axis}, keepdims={keepdims})",
    "ptp": "np.ptp(x, axis={axis}, keepdims={keepdims})",
    "var": "np.var(x, axis={axis}, keepdims={keepdims})",
    "var_ddof_method": "x.var(axis={axis}, keepdims={keepdims}, ddof=1)",
    "std": "np.std(x, axis={axis}, keepdims={keepdims})",
    "std_ddof": "np.std(x, axis={axis}, ddof=1, keepdims={keepdims})",
    "std_method": "x.std(axis={axis}, keepdims={keepdims})",
    "nansum": "np.nansum(x, axis={axis}, keepdims={keepdims})",
    "nanmean": "np.nanmean(x, axis={axis}, keepdims={keepdims})",
    "average": "np.average(x, axis={axis}, keepdims={keepdims})",
}
NEEDS_DISTINCT = {"max", "max_method", "amax", "min", "min_method", "amin", "nanmax", "ptp"}


def source(expr, **constants):
    """A function (as source text) whose axis/keepdims are literals: compile-time constants."""
    call = expr.format(**{k: repr(v) for k, v in constants.items()})
    return f"def F(x):\n    y = {call}\n    return np.sum(y * (y + 1.0))\n"


@pytest.mark.parametrize("name", list(REDUCTIONS))
@FEW
@given(data=st.data())
def test_reduction_axis_keepdims_matches_finite_differences(name, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, max_side=3), label="shape")
    axis, keepdims = data.draw(axis_and_keepdims(len(shape)), label="axis, keepdims")
    if name in NEEDS_DISTINCT:
        x = data.draw(distinct_arrays(shape), label="x")
    elif name.startswith("prod"):
        x = data.draw(arrays(shape, lo=0.3, hi=2.0), label="x")
    else:
        x = data.draw(arrays(shape), label="x")
    n = x.size / np.sum(x, axis=axis, keepdims=keepdims).size
    if "ddof" in name:
        assume(n > 1)
    if name.startswith("std"):
        assume(np.min(np.std(x, axis=axis)) > 1e-2)
    check_grad(source(REDUCTIONS[name], axis=axis, keepdims=keepdims), (x,))


# the axis may also be a run-time value (an argument of the differentiated function)
def r_sum(x, axis, keepdims): return out(np.sum(x, axis=axis, keepdims=keepdims))
def r_mean(x, axis, keepdims): return out(np.mean(x, axis=axis, keepdims=keepdims))
def r_max(x, axis, keepdims): return out(np.max(x, axis=axis, keepdims=keepdims))
def r_var(x, axis, keepdims): return out(np.var(x, axis=axis, keepdims=keepdims))


@pytest.mark.parametrize("f", [r_sum, r_mean, r_max, r_var])
@pytest.mark.parametrize("axis, keepdims", [(0, False), (-1, True), ((0, 2), False),
                                            (None, True)])
def test_axis_and_keepdims_passed_at_run_time(f, axis, keepdims):
    x = np.random.default_rng(1).uniform(-2, 2, size=(2, 3, 4))
    check_grad(f, (x, axis, keepdims))


def test_reductions_of_scalars_and_empty_axis_tuple():
    check_grad(source(REDUCTIONS["sum"], axis=None, keepdims=False), (np.array(1.7),))
    check_grad(source(REDUCTIONS["max"], axis=(), keepdims=False),
               (np.array([[1.0, 3.0], [2.0, 0.0]]),))
    check_grad(source(REDUCTIONS["mean"], axis=(), keepdims=True), (np.array([1.0, 3.0]),))


# ------------------------------------------------------------------ prod with zeros
def prod_all(x): return np.prod(x)
def prod_axis(x): return np.sum(np.prod(x, axis=1) * np.array([1.0, 2.0, 3.0]))


def test_prod_with_one_zero_is_exact():
    x = np.array([2.0, 0.0, 3.0, 4.0])
    np.testing.assert_array_equal(ds.grad(prod_all)(x), [0.0, 24.0, 0.0, 0.0])
    check_grad(prod_all, (x,))


def test_prod_with_two_zeros_is_zero_and_finite():
    x = np.array([2.0, 0.0, 3.0, 0.0])
    g = ds.grad(prod_all)(x)
    np.testing.assert_array_equal(g, np.zeros(4))


def test_prod_along_axis_with_zeros_matches_finite_differences():
    x = np.array([[1.5, 0.0, 2.0], [0.0, 0.0, 1.0], [0.5, -1.0, 3.0]])
    check_grad(prod_axis, (x,))


# ------------------------------------------------------------------------ ties
def max_of_pair(x): return np.max(np.array([x, x]))
def max_rows(x): return np.sum(np.max(np.array([[x, x], [x, 0.5]]), axis=1))
def min_cols(x):
    m = np.array([[x, x, x], [x, 0.5, 0.5], [0.5, 0.5, 0.5], [x, x, 0.5]])
    return np.sum(np.min(m, axis=0))


def test_max_min_ties_share_the_adjoint_equally():
    np.testing.assert_allclose(ds.grad(max_of_pair)(1.0), 1.0)
    x = np.array([3.0, 1.0, 3.0, 2.0])
    np.testing.assert_array_equal(ds.grad(r_max)(x, None, False), [3.5, 0, 3.5, 0])
    check_grad(max_rows, (1.0,))
    check_grad(max_rows, (-1.0,))
    check_grad(min_cols, (1.0,))
    check_grad(min_cols, (-1.0,))


# ------------------------------------------------------------------------ scans
def cp(x, axis): return out(np.cumprod(x, axis=axis))


SCANS = {"cumsum": "np.cumsum(x, axis={axis})", "cumsum_method": "x.cumsum(axis={axis})",
         "cumprod": "np.cumprod(x, axis={axis})", "cumprod_method": "x.cumprod({axis})"}


@pytest.mark.parametrize("name", list(SCANS))
@HYP
@given(data=st.data())
def test_cumulative_scans(name, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, max_side=4), label="shape")
    axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    x = data.draw(arrays(shape, lo=-1.5, hi=1.5), label="x")
    check_grad(source(SCANS[name], axis=axis), (x,))


def test_cumprod_with_zeros_is_exact():
    x = np.array([2.0, 0.0, 3.0, 0.5, 0.0, 1.5])
    check_grad(cp, (x, 0))
    x2 = np.array([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]])
    check_grad(cp, (x2, 1))
    check_grad(cp, (x2, None))


# ------------------------------------------------------------------- weighted average
def avg_w(a, w): return out(np.average(a, axis=1, weights=w))
def avg_w_full(a, w): return out(np.average(a, weights=w))
def avg_w_pos(a, w): return out(np.average(a, 0, w, keepdims=True))


@FEW
@given(data=st.data())
def test_average_with_weights_in_both_arguments(data):
    m, n = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4))
    a = data.draw(arrays((m, n)))
    w1 = data.draw(positive_arrays((n,)))
    check_grad(avg_w, (a, w1), wrt=(0, 1))
    w2 = data.draw(positive_arrays((m, n)))
    check_grad(avg_w_full, (a, w2), wrt=(0, 1))
    w0 = data.draw(positive_arrays((m,)))
    check_grad(avg_w_pos, (a, w0), wrt=(0, 1))


# ------------------------------------------------------------------------- diff
def d1(x): return out(np.diff(x))
def d2(x): return out(np.diff(x, n=2, axis=0))


@FEW
@given(x=arrays(hnp.array_shapes(min_dims=2, max_dims=2, min_side=3, max_side=4)))
def test_diff(x):
    check_grad(d1, (x,))
    check_grad(d2, (x,))


# ------------------------------------------------------------------------ nan*
def nan_sum(x): return np.nansum(x) * 2.0
def nan_mean(x): return np.nanmean(x, axis=0).sum()


def test_nan_reductions_ignore_nans():
    x = np.array([[1.0, np.nan], [2.0, 3.0]])
    np.testing.assert_array_equal(ds.grad(nan_sum)(x), [[2.0, 0.0], [2.0, 2.0]])
    np.testing.assert_array_equal(ds.grad(nan_mean)(x), [[0.5, 0.0], [0.5, 1.0]])


# ------------------------------------------------------------------------ extras
EXTRAS = {
    "nanvar": "np.nanvar(x, axis={axis}, keepdims={keepdims})",
    "nanstd_ddof": "np.nanstd(x, axis={axis}, ddof=1, keepdims={keepdims})",
    "median": "np.median(x, axis={axis}, keepdims={keepdims})",
    "quantile": "np.quantile(x, 0.3, axis={axis}, keepdims={keepdims})",
    "quantile_many": "np.quantile(x, [0.1, 0.5, 0.9], axis={axis}, keepdims={keepdims})",
    "percentile": "np.percentile(x, 75.0, axis={axis}, keepdims={keepdims})",
}


@pytest.mark.parametrize("name", list(EXTRAS))
@pytest.mark.parametrize("axis, keepdims", [(None, False), (0, False), (-1, True),
                                            ((0, 2), False), (1, True)])
def test_order_statistics_and_nan_moments(name, axis, keepdims):
    x = random_array((3, 4, 2), 5) + np.arange(24).reshape(3, 4, 2) * 1e-2
    check_grad(source(EXTRAS[name], axis=axis, keepdims=keepdims), (x,))


def nanvar_nan(x): return np.sum(np.nanvar(x, axis=0)) + np.nanstd(x)


def test_nan_moments_ignore_nans():
    x = np.array([[1.0, np.nan], [2.5, 3.0], [0.5, -1.0]])
    g = ds.grad(nanvar_nan)(x)
    assert g[0, 1] == 0.0 and np.all(np.isfinite(g))
    clean = x[:, :1]
    check_grad(nanvar_nan, (np.hstack([clean, clean * 2.0]),))


COVS = ["np.cov(x)", "np.cov(x, rowvar=False)", "np.cov(x, bias=True)", "np.cov(x, ddof=0)",
        "np.cov(x[0])", "np.corrcoef(x)", "np.corrcoef(x, rowvar=False)"]


@pytest.mark.parametrize("expr", COVS)
def test_covariance_and_correlation(expr):
    check_grad(f"def F(x):\n    c = {expr}\n    return np.sum(c * (c + 1.0))\n",
               (random_array((3, 5), 6),))


def extrema_of_float(x):
    return np.max(x) * 2.0 + np.min(x * x) + np.ptp(np.array([x, 1.0]))


def test_reductions_of_a_python_float():
    g = check_grad(extrema_of_float, (0.7,))
    assert isinstance(g, float)


# --------------------------------------------------------------- where= and initial=
MASK = np.array([[True, False, True], [False, True, True]])
WHERE = {
    "sum": "np.sum(x * x, axis=1, where=MASK)",
    "sum_method": "(x * x).sum(where=MASK)",
    "mean": "np.mean(x * x, axis=0, where=MASK)",
    "prod": "np.prod(x, where=MASK)",
    "max": "np.max(x, axis=1, where=MASK, initial=-10.0)",
    "min_initial": "np.min(x, initial=0.8)",
    "nansum": "np.nansum(x, axis=0, where=MASK)",
}


@pytest.mark.parametrize("name", list(WHERE))
def test_reductions_with_where_and_initial(name):
    src = (f"def F(x):\n    MASK = np.array([[True, False, True], [False, True, True]])\n"
           f"    y = {WHERE[name]}\n    return np.sum(y * (y + 1.0))\n")
    x = random_array((2, 3), 41, 0.5, 2.0) + np.arange(6).reshape(2, 3) * 0.01
    g = check_grad(src, (x,))
    if name.startswith(("sum", "mean", "prod", "nansum")):
        assert np.all(g[~MASK] == 0)


def var_where(x): return np.var(x, where=MASK)


def test_var_with_where_is_an_error_not_a_wrong_gradient():
    with pytest.raises(NotImplementedError, match="where="):
        ds.grad(var_where)(random_array((2, 3), 1))


# ------------------------------------------------------- pooling: max over short window axes
def pool_max(x):
    """2x2 max-pool of an (n, h, w, c) array as reshape + max over the two window axes."""
    n, h, w, c = x.shape
    return np.max(np.reshape(x, (n, h // 2, 2, w // 2, 2, c)), axis=(2, 4))


def pool_loss(x):
    return out(pool_max(x))


def pool_tie_reference(x):
    """The gradient of pool_loss by the tie-sharing convention, written directly."""
    n, h, w, c = x.shape
    win = x.reshape(n, h // 2, 2, w // 2, 2, c)
    y = win.max(axis=(2, 4), keepdims=True)
    chosen = win == y
    return ((2 * y + 1) * chosen / chosen.sum(axis=(2, 4), keepdims=True)).reshape(x.shape)


@FEW
@given(data=st.data())
def test_max_pool_over_window_axes_matches_finite_differences(data):
    n, h, w, c = (data.draw(st.integers(1, 3)) for _ in range(4))
    x = data.draw(distinct_arrays((n, 2 * h, 2 * w, c)), label="x")
    check_grad(pool_loss, (x,))


@FEW
@given(data=st.data())
def test_max_pool_ties_share_the_adjoint(data):
    """Many exact ties (relu zeros, repeated values): each tied entry gets 1/k."""
    shape = (data.draw(st.integers(1, 3)), 4, 2 * data.draw(st.integers(1, 3)),
             data.draw(st.integers(1, 3)))
    levels = data.draw(hnp.arrays(np.int64, shape, elements=st.integers(-2, 2)), label="x")
    x = np.maximum(levels * 0.5, 0.0)
    np.testing.assert_allclose(ds.grad(pool_loss)(x), pool_tie_reference(x), rtol=1e-12)


def pool_hvp_source():
    return ("def F(x):\n    n, h, w, c = x.shape\n"
            "    y = np.max(np.reshape(x * x, (n, h // 2, 2, w // 2, 2, c)), axis=(2, 4))\n"
            "    return np.sum(y * (y + 1.0))\n")


def test_max_pool_hessian_vector_product():
    df = ds.grad(pool_hvp_source())
    v = random_array((2, 4, 4, 3), 7)

    def hvp(x):
        return np.sum(df(x) * v)

    x = random_array((2, 4, 4, 3), 8, 0.2, 2.0) + np.arange(96).reshape(2, 4, 4, 3) * 1e-2
    numeric = numeric_grad(hvp, (x,), 0, eps=1e-5)
    np.testing.assert_allclose(ds.grad(hvp)(x), numeric, rtol=1e-4, atol=1e-5)


@HYP
@given(data=st.data())
def test_window_sum_is_the_masked_count(data):
    from diffsrc.runtime import window_sum
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=3))
    axes = tuple(sorted(data.draw(st.sets(st.integers(0, len(shape) - 1), min_size=1))))
    mask = data.draw(hnp.arrays(np.bool_, shape))
    np.testing.assert_array_equal(window_sum(mask, axes, np.float32),
                                  mask.sum(axis=axes, keepdims=True, dtype=np.float32))
