"""Reductions and scans: sum, mean, prod, max/min, var/std, cumsum/cumprod, average, ptp.

Every rule takes `axis` (None, an int, a tuple, negatives allowed) and `keepdims`
as NumPy does; `unreduce` puts a reduced adjoint back into the shape of the input.

Conventions:
  max/min/amax/amin/nanmax/nanmin/ptp  ties share the adjoint equally among the
                     tied entries (autograd's and JAX's convention; sums to the
                     adjoint, so max(x, x) has derivative 1)
  prod, cumprod      exact when the input has zeros: computed without dividing by x
  std                undefined (NaN) where the standard deviation is 0
"""
import numpy as np

from .lowering_hooks import is_none, is_true, positional
from .registry import (Method, adjoint_rule, from_source, is_zero, linear, register,
                       tangent_rule)
from ..runtime import (average_adjoint, cov_adjoint, cumprod_adjoint, extremum_share,
                       max_shift, nanvar_adjoint, prod_adjoint, quantile_adjoint, undiff,
                       unreduce)

FAMILY = "reductions"

for _name in ("sum mean prod max min amax amin var std cumsum cumprod average ptp nansum "
              "nanmean nanmax nanmin diff nanvar nanstd median quantile percentile cov "
              "corrcoef").split():
    register(getattr(np, _name), emit=f"np.{_name}").meta["family"] = FAMILY
for _name in ("sum mean prod max min var std cumsum cumprod").split():
    register(Method(_name)).meta["family"] = FAMILY
register(np.average).meta["lower"] = positional(
    np.average, {"a": None, "axis": None, "weights": None})
for _helper in (average_adjoint, cov_adjoint, cumprod_adjoint, extremum_share, nanvar_adjoint,
                prod_adjoint, quantile_adjoint, undiff, unreduce):
    register(_helper)
register(max_shift, nondiff=True).meta["family"] = FAMILY


@adjoint_rule(np.sum, Method("sum"))
def sum_adjoint(y_bar, y, x, axis=None, dtype=None, out=None, keepdims=False, initial=None,
                where=True):
    """Entries left out by a `where=` mask get no adjoint."""
    if is_true(where):
        return (unreduce(y_bar, x, axis, keepdims),)
    return (unreduce(y_bar, x, axis, keepdims) * where,)


@adjoint_rule(np.mean, Method("mean"))
def mean_adjoint(y_bar, y, x, axis=None, dtype=None, out=None, keepdims=False, where=True):
    """1/n each; with a `where=` mask, 1/(entries selected) for the selected ones."""
    if is_true(where):
        return (unreduce(y_bar, x, axis, keepdims) / (np.size(x) / np.size(y)),)
    mask = np.broadcast_to(where, np.shape(x))
    count = np.sum(mask, axis=axis, keepdims=True, dtype=np.result_type(x))
    return (unreduce(y_bar, x, axis, keepdims) * mask / count,)


@adjoint_rule(np.prod, Method("prod"))
def prod_rule(y_bar, y, x, axis=None, dtype=None, out=None, keepdims=False, initial=None,
              where=True):
    """The product of the other entries, computed without division: exact with zeros."""
    if is_true(where):
        return (prod_adjoint(y_bar, x, axis, keepdims),)
    return (prod_adjoint(y_bar, np.where(where, x, 1), axis, keepdims) * where,)


@adjoint_rule(np.max, np.amax, np.min, np.amin, np.nanmax, np.nanmin, Method("max"),
              Method("min"))
def extremum_adjoint(y_bar, y, x, axis=None, out=None, keepdims=False, initial=None,
                     where=True):
    """Ties share the adjoint equally (each of k tied maxima gets 1/k of it); entries
    outside a `where=` mask, and all entries when `initial` wins, get none."""
    if is_true(where) and is_none(initial):
        return (extremum_share(y_bar, y, x, axis, keepdims),)
    chosen = x == unreduce(y, x, axis, keepdims)
    if not is_true(where):
        chosen = chosen & where
    count = np.sum(chosen, axis=axis, keepdims=True, dtype=np.result_type(x))
    if not is_none(initial):
        count = np.maximum(count, 1)
    return (unreduce(y_bar, x, axis, keepdims) * chosen / count,)


@adjoint_rule(np.ptp)
def ptp_adjoint(y_bar, y, x, axis=None, out=None, keepdims=False):
    """max - min; ties of the max (or of the min) share its part equally."""
    g = unreduce(y_bar, x, axis, keepdims)
    high = x == np.max(x, axis=axis, keepdims=True)
    low = x == np.min(x, axis=axis, keepdims=True)
    return (g * high / np.sum(high, axis=axis, keepdims=True, dtype=np.result_type(x))
            - g * low / np.sum(low, axis=axis, keepdims=True, dtype=np.result_type(x)),)


@adjoint_rule(np.var, Method("var"))
def var_adjoint(y_bar, y, x, axis=None, dtype=None, out=None, ddof=0, keepdims=False,
                correction=None, where=True, mean=None):
    """2 (x - mean) / (n - ddof); `correction` is NumPy 2's name for ddof. The `where=`
    and `mean=` keywords are not supported (an error when the pullback runs)."""
    if not is_true(where) or not is_none(mean):
        raise NotImplementedError("np.var/np.std with where= or mean= have no derivative rule")
    if correction is not None:
        ddof = correction
    centered = x - np.mean(x, axis=axis, keepdims=True)
    count = np.size(x) / np.size(y)
    return (unreduce(y_bar, x, axis, keepdims) * 2 * centered / (count - ddof),)


@adjoint_rule(np.std, Method("std"))
def std_adjoint(y_bar, y, x, axis=None, dtype=None, out=None, ddof=0, keepdims=False,
                correction=None, where=True, mean=None):
    """(x - mean) / ((n - ddof) std); NaN where std == 0 (a kink of sqrt). The `where=`
    and `mean=` keywords are not supported (an error when the pullback runs)."""
    if not is_true(where) or not is_none(mean):
        raise NotImplementedError("np.var/np.std with where= or mean= have no derivative rule")
    if correction is not None:
        ddof = correction
    centered = x - np.mean(x, axis=axis, keepdims=True)
    count = np.size(x) / np.size(y)
    return (unreduce(y_bar / y, x, axis, keepdims) * centered / (count - ddof),)


@adjoint_rule(np.nansum)
def nansum_adjoint(y_bar, y, x, axis=None, dtype=None, out=None, keepdims=False, initial=None,
                   where=True):
    """NaN entries (and entries outside a `where=` mask) are ignored and get no adjoint."""
    if is_true(where):
        return (unreduce(y_bar, x, axis, keepdims) * ~np.isnan(x),)
    return (unreduce(y_bar, x, axis, keepdims) * (~np.isnan(x) & where),)


@adjoint_rule(np.nanmean)
def nanmean_adjoint(y_bar, y, x, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    """NaN entries get no adjoint; the others share as in mean over the non-NaN count."""
    valid = ~np.isnan(x)
    count = np.sum(valid, axis=axis, keepdims=True, dtype=np.result_type(x))
    return (unreduce(y_bar, x, axis, keepdims) * valid / count,)


@adjoint_rule(np.cumsum, Method("cumsum"))
def cumsum_adjoint(y_bar, y, x, axis=None, dtype=None, out=None):
    """The reversed cumulative sum of the adjoint (over the flattened input for axis=None)."""
    if axis is None:
        return (np.reshape(np.flip(np.cumsum(np.flip(np.ravel(y_bar)))), np.shape(x)),)
    return (np.flip(np.cumsum(np.flip(y_bar, axis), axis=axis), axis),)


@adjoint_rule(np.cumprod, Method("cumprod"))
def cumprod_rule(y_bar, y, x, axis=None, dtype=None, out=None):
    """One reverse sweep, without division: exact with zeros in x."""
    return (cumprod_adjoint(y_bar, y, x, axis),)


@adjoint_rule(np.average)
def average_rule(y_bar, y, a, axis=None, weights=None, returned=False, keepdims=False):
    """Weighted mean sum(a w) / sum(w); the weights are differentiable too.

    1-D weights along `axis` and weights shaped like `a` are both supported.
    """
    if is_none(weights):
        return (unreduce(y_bar, a, axis, keepdims) / (np.size(a) / np.size(y)),)
    both = average_adjoint(y_bar, y, a, weights, axis, keepdims)
    return both[0], None, both[1]


@adjoint_rule(np.diff)
def diff_adjoint(y_bar, y, a, n=1, axis=-1, **kwargs):
    return (undiff(y_bar, a, n, axis),)


@adjoint_rule(np.nanvar)
def nanvar_rule(y_bar, y, x, axis=None, dtype=None, out=None, ddof=0, keepdims=False,
                **kwargs):
    """As var over the non-NaN entries; NaN entries get no adjoint."""
    return (nanvar_adjoint(y_bar, x, axis, ddof, keepdims),)


@adjoint_rule(np.nanstd)
def nanstd_rule(y_bar, y, x, axis=None, dtype=None, out=None, ddof=0, keepdims=False,
                **kwargs):
    """As std over the non-NaN entries; NaN entries get no adjoint."""
    return (nanvar_adjoint(y_bar, x, axis, ddof, keepdims, y),)


@adjoint_rule(np.median)
def median_adjoint(y_bar, y, a, axis=None, out=None, overwrite_input=False, keepdims=False):
    """The middle entry gets the adjoint; for an even count the two middle ones share it
    (ties among equal values: stable sort order)."""
    return (quantile_adjoint(y_bar, a, 0.5, axis, keepdims),)


@adjoint_rule(np.quantile)
def quantile_rule(y_bar, y, a, q, axis=None, out=None, overwrite_input=False,
                  method="linear", keepdims=False, **kwargs):
    """Linear interpolation between two order statistics: they share the adjoint with the
    interpolation weights (q gets none). Other methods are not supported."""
    return quantile_adjoint(y_bar, a, q, axis, keepdims, method), None


@adjoint_rule(np.percentile)
def percentile_rule(y_bar, y, a, q, axis=None, out=None, overwrite_input=False,
                    method="linear", keepdims=False, **kwargs):
    """np.quantile with q / 100."""
    return quantile_adjoint(y_bar, a, np.asarray(q) / 100.0, axis, keepdims, method), None


@adjoint_rule(np.cov)
def cov_rule(y_bar, y, m, y2=None, rowvar=True, bias=False, ddof=None, **kwargs):
    """(G + G^T) (m - mean) / (N - ddof) for the covariance of the rows (or columns with
    rowvar=False); the `y`, fweights and aweights arguments are not supported."""
    return (cov_adjoint(y_bar, m, rowvar, bias, ddof),)


def _corrcoef_lower(low, args, kwargs):
    """np.corrcoef(x) is lowered to cov(x) / sqrt(outer(diag, diag)), differentiable calls."""
    if len(args) > 1 or set(kwargs) - {"rowvar"}:
        values = [low.value(a) for a in args] + [low.value(v) for v in kwargs.values()]
        return low.b.call(np.corrcoef, values, kwnames=tuple(kwargs))
    c = low.primitive(np.cov, list(args), dict(kwargs))
    d = low.primitive(np.sqrt, [low.primitive(np.diagonal, [c], {})], {})
    return low.primitive(__import__("operator").truediv,
                         [c, low.primitive(np.outer, [d, d], {})], {})


register(np.corrcoef).meta["lower"] = _corrcoef_lower



@adjoint_rule(undiff)
def undiff_adjoint(c, r, g, x, n=1, axis=-1):
    """undiff is linear in the adjoint it moves: its own adjoint is np.diff."""
    return (np.diff(c, n, axis), None)


@adjoint_rule(extremum_share)
def extremum_share_adjoint(c, r, g, y, x, axis=None, keepdims=False):
    """Linear in g: its adjoint sums the tied entries' shares back to the reduced shape.
    Which entries tie is piecewise constant in x and y, so they get none."""
    chosen = x == unreduce(y, x, axis, keepdims)
    count = np.sum(chosen, axis=axis, keepdims=True, dtype=np.result_type(x))
    return np.sum(c * chosen / count, axis=axis, keepdims=keepdims), None, None


# ------------------------------------------------------------------------ tangent rules
# Linear reductions are their own tangents. The others reduce disjoint slices of x, and
# their adjoints spread the output adjoint over each slice times a weight: with a unit
# output adjoint, the adjoint is the partial derivative, and the tangent is the sum of
# weight * x_dot over the reduced axes.
linear(np.sum, Method("sum"), np.mean, Method("mean"), np.cumsum, Method("cumsum"), np.diff,
       undiff, unreduce, quantile_adjoint, extremum_share)


def weighted_sum(weights, x_dot, axis, keepdims):
    """The tangent of a reduction from its partial derivatives (an adjoint with unit seed)."""
    return np.sum(weights[0] * x_dot, axis=axis, keepdims=keepdims)


@tangent_rule(np.prod, Method("prod"))
def prod_tangent(dots, y, x, axis=None, dtype=None, out=None, keepdims=False, initial=None,
                 where=True):
    """Exact with zeros (no division)."""
    partials = prod_rule(np.ones_like(y), y, x, axis, dtype, out, keepdims, initial, where)
    return weighted_sum(partials, dots[0], axis, keepdims)


@tangent_rule(np.max, np.amax, np.min, np.amin, np.nanmax, np.nanmin, Method("max"),
              Method("min"))
def extremum_tangent(dots, y, x, axis=None, out=None, keepdims=False, initial=None, where=True):
    """Tied extrema share: the mean of their tangents."""
    partials = extremum_adjoint(np.ones_like(y), y, x, axis, out, keepdims, initial, where)
    return weighted_sum(partials, dots[0], axis, keepdims)


@tangent_rule(np.ptp)
def ptp_tangent(dots, y, x, axis=None, out=None, keepdims=False):
    """Tied extrema share, as max and min."""
    return weighted_sum(ptp_adjoint(np.ones_like(y), y, x, axis, out, keepdims), dots[0], axis,
                        keepdims)


@tangent_rule(np.var, Method("var"))
def var_tangent(dots, y, x, axis=None, dtype=None, out=None, ddof=0, keepdims=False,
                correction=None, where=True, mean=None):
    partials = var_adjoint(np.ones_like(y), y, x, axis, dtype, out, ddof, keepdims, correction,
                           where, mean)
    return weighted_sum(partials, dots[0], axis, keepdims)


@tangent_rule(np.std, Method("std"))
def std_tangent(dots, y, x, axis=None, dtype=None, out=None, ddof=0, keepdims=False,
                correction=None, where=True, mean=None):
    """NaN where std == 0, as the adjoint."""
    partials = std_adjoint(np.ones_like(y), y, x, axis, dtype, out, ddof, keepdims, correction,
                           where, mean)
    return weighted_sum(partials, dots[0], axis, keepdims)


@tangent_rule(np.nansum)
def nansum_tangent(dots, y, x, axis=None, dtype=None, out=None, keepdims=False, initial=None,
                   where=True):
    partials = nansum_adjoint(np.ones_like(y), y, x, axis, dtype, out, keepdims, initial, where)
    return weighted_sum(partials, dots[0], axis, keepdims)


@tangent_rule(np.nanmean)
def nanmean_tangent(dots, y, x, axis=None, dtype=None, out=None, keepdims=False):
    partials = nanmean_adjoint(np.ones_like(y), y, x, axis, dtype, out, keepdims)
    return weighted_sum(partials, dots[0], axis, keepdims)


@tangent_rule(np.nanvar)
def nanvar_tangent(dots, y, x, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
    partials = nanvar_rule(np.ones_like(y), y, x, axis, dtype, out, ddof, keepdims)
    return weighted_sum(partials, dots[0], axis, keepdims)


@tangent_rule(np.nanstd)
def nanstd_tangent(dots, y, x, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
    partials = nanstd_rule(np.ones_like(y), y, x, axis, dtype, out, ddof, keepdims)
    return weighted_sum(partials, dots[0], axis, keepdims)


@tangent_rule(np.median)
def median_tangent(dots, y, a, axis=None, out=None, overwrite_input=False, keepdims=False):
    """The middle entry's tangent (the mean of the two middle ones for an even count)."""
    partials = median_adjoint(np.ones_like(y), y, a, axis, out, overwrite_input, keepdims)
    return weighted_sum(partials, dots[0], axis, keepdims)


def weighted_total(a, w, axis):
    """sum(a w) over `axis`, w shaped like a or 1-D along `axis` (np.average's weights)."""
    if np.ndim(w) == np.ndim(a):
        return np.sum(a * w, axis=axis)
    return np.moveaxis(a, axis, -1) @ w


@tangent_rule(np.average)
def average_tangent(dots, y, a, axis=None, weights=None, returned=False, keepdims=False):
    """y = sum(a w) / W: y_dot = (sum(a_dot w) + sum((a - y) w_dot)) / W."""
    if is_none(weights):
        return np.mean(dots[0], axis=axis, keepdims=keepdims)
    if len(dots) < 3 or is_zero(dots[2]):
        return np.average(dots[0], axis, weights, keepdims=keepdims)
    w_total = weighted_total(np.ones_like(a), weights, axis)
    mean = np.reshape(y, np.shape(w_total))
    total = weighted_total(a, dots[2], axis) - mean * weighted_total(np.ones_like(a), dots[2], axis)
    if not is_zero(dots[0]):
        total = total + weighted_total(dots[0], weights, axis)
    return np.reshape(total / w_total, np.shape(y))


@tangent_rule(np.cumprod, Method("cumprod"))
def cumprod_tangent(dots, y, x, axis=None, dtype=None, out=None):
    """y_dot[k] = y_dot[k-1] x[k] + y[k-1] x_dot[k] along the axis: exact with zeros."""
    x_dot = dots[0]
    if axis is None:
        x, x_dot, axis = np.ravel(x), np.ravel(x_dot), 0
    xm = np.moveaxis(x, axis, 0)
    ym = np.moveaxis(np.reshape(y, np.shape(x)), axis, 0)
    dm = np.moveaxis(x_dot, axis, 0)
    out_dot = dm * 1.0
    for k in range(1, np.shape(xm)[0]):
        out_dot[k] = out_dot[k - 1] * xm[k] + ym[k - 1] * dm[k]
    return np.moveaxis(out_dot, 0, axis)


@tangent_rule(np.quantile)
def quantile_tangent(dots, y, a, q, axis=None, out=None, overwrite_input=False,
                     method="linear", keepdims=False, **kwargs):
    """Each quantile interpolates two order statistics: their tangents, with the same
    weights (the adjoint's partial derivatives, one quantile at a time)."""
    qs = np.ravel(q)
    ys = np.reshape(y, (np.size(q),) + np.shape(y)[np.ndim(q):])
    parts = [np.sum(quantile_adjoint(np.ones_like(ys[k]), a, qs[k], axis, keepdims, method)
                    * dots[0], axis=axis, keepdims=keepdims) for k in range(np.size(q))]
    return np.reshape(np.stack(parts), np.shape(y))


@tangent_rule(np.percentile)
def percentile_tangent(dots, y, a, q, axis=None, out=None, overwrite_input=False,
                       method="linear", keepdims=False, **kwargs):
    """np.quantile with q / 100."""
    return quantile_tangent(dots, y, a, np.asarray(q) / 100.0, axis, out, overwrite_input,
                            method, keepdims)


@tangent_rule(np.cov)
def cov_tangent(dots, y, m, y2=None, rowvar=True, bias=False, ddof=None, **kwargs):
    """cov is quadratic in m, so (cov(m + dm) - cov(m - dm)) / 2 is its tangent exactly."""
    dm = dots[0]
    return (np.cov(m + dm, y2, rowvar, bias, ddof, **kwargs)
            - np.cov(m - dm, y2, rowvar, bias, ddof, **kwargs)) / 2.0


from_source(average_adjoint, cov_adjoint, cumprod_adjoint, nanvar_adjoint, prod_adjoint)
