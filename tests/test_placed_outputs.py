"""A pooling adjoint scattered into zeros is written there directly (passes/placed_outputs.py,
runtime extremum_share / clamped_extremum_share with like= and at=); the ties a relu before
a pool leaves come from runtime.tie_mask."""
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffsrc import runtime
from diffsrc.api import transform
from diffsrc.ir import verify
from diffsrc.passes import placed_outputs
from gradcheck import numeric_grad
from test_passes import large_array_paths

SETTINGS = settings(max_examples=15, deadline=None)


def relu_pool(K, x):
    """A relu, then a 2x2 max-pool that crops an odd last row and column."""
    n, s = x.shape[0], x.shape[1]
    y = np.maximum(x * K[0] + K[1], 0.0)
    half = s // 2
    windows = np.reshape(y[:, :2 * half, :2 * half, :], (n, half, 2, half, 2, y.shape[-1]))
    return np.sum(np.max(windows, axis=(2, 4)) ** 2)


def min_pool(K, x):
    """No clamp: a 2x2 min-pool of a crop (extremum_share itself is placed)."""
    y = x * K[0] + K[1]
    half = x.shape[1] // 2
    windows = np.reshape(y[1:2 * half + 1, :2 * half, :2 * half, :],
                         (-1, half, 2, half, 2, y.shape[-1]))
    return np.sum(np.sin(np.min(windows, axis=(2, 4))))


def merged_crop(K, x):
    """A crop whose reshape merges axes: the zeros' slice cannot be viewed with the
    result's shape, so the helper scatters its result as before (run-time fallback)."""
    y = np.tanh(x * K[0] + K[1])
    cut = y[:, :, 1:, :]
    return np.sum(np.max(np.reshape(cut, (cut.shape[0], -1)), axis=1) * K[2])


def crop_then_sum(K, x):
    """The crop's adjoint is added to another: left to the in-place pass's add_into."""
    y = x * K[0] + K[1]
    s = x.shape[1] // 2 * 2
    return np.sum(np.max(y[:, :s, :s, :], axis=3) ** 2) + np.sum(np.sin(y))


PLACED = {"relu_pool": relu_pool, "min_pool": min_pool, "merged_crop": merged_crop}
CASES = dict(PLACED, crop_then_sum=crop_then_sum)


@pytest.mark.parametrize("case", sorted(CASES))
@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(1, 3), half=st.integers(1, 3),
       odd=st.booleans(), channels=st.integers(1, 3), ties=st.booleans())
def test_gradients_agree_with_the_scatter_and_finite_differences(case, seed, n, half, odd,
                                                                channels, ties):
    """Bit for bit the code without the pass, close to unoptimised code, the finite
    differences where there are no ties; the verifier accepts every pass's output."""
    fn = CASES[case]
    rng = np.random.default_rng(seed)
    shape = (n + 1, 2 * half + odd, 2 * half + odd, channels)
    x = rng.integers(-2, 3, size=shape) * 0.5 if ties else rng.normal(size=shape)
    K = np.array([1.0, 0.0, 1.5]) if ties else rng.normal(size=3)
    with large_array_paths():
        special = transform(fn, (K, x), (0, 1), "grad", specialize=True)
        with mock.patch.object(placed_outputs.PlacedOutputs, "place", return_value=False):
            scattered = transform(fn, (K, x), (0, 1), "grad", specialize=True)
    verify(special.ir)
    placed = "like=" in special.source
    assert placed == (case in PLACED and (odd or case != "relu_pool")), special.source
    got = special.function(K, x)
    expected = scattered.function(K, x)
    assert all(np.array_equal(a, b) for a, b in zip(got[1], expected[1]))
    plain = transform(fn, (K, x), (0, 1), "grad", optimize=False).function(K, x)
    for g, p in zip(got[1], plain[1]):
        np.testing.assert_allclose(g, p, rtol=1e-10, atol=1e-12)
    if not ties:
        for g, numeric in zip(got[1], numeric_grad(fn, (K, x), (0, 1))):
            np.testing.assert_allclose(g, numeric, rtol=1e-5, atol=1e-6)


def _crop(data, shape):
    """A basic index of an array of `shape`: a slice (any step) or an int per axis."""
    parts = []
    for n in shape:
        if n > 1 and data.draw(st.booleans()):
            parts.append(data.draw(st.integers(-n, n - 1)))
        else:
            start = data.draw(st.integers(0, n - 1))
            parts.append(slice(start, data.draw(st.integers(start + 1, n)),
                               data.draw(st.integers(1, 2))))
    return tuple(parts)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), shape=st.lists(st.integers(1, 4), min_size=2, max_size=4),
       data=st.data())
def test_a_placed_share_is_the_scatter_of_the_share(seed, shape, data):
    """extremum_share and clamped_extremum_share with like= and at= give unindex of their
    result bit for bit: ties, NaNs, another dtype (no direct write), a reshape that merges
    axes of a strided slice (no view of the zeros), an index that is not basic."""
    rng = np.random.default_rng(seed)
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    like = (rng.integers(-2, 3, size=shape) * 0.5).astype(dtype) if data.draw(st.booleans()) \
        else rng.normal(size=shape).astype(dtype)
    if data.draw(st.booleans()):
        like.flat[-1] = np.nan
    at = [0] * len(shape) if data.draw(st.booleans()) and shape[0] > 1 else _crop(data, shape)
    if isinstance(at, list):                     # an integer array index
        at = (np.array(at[:1] * 2),) + tuple(slice(None) for _ in shape[1:])
    t = like[at]
    if not t.size:
        return
    if t.ndim and data.draw(st.booleans()):
        t = t.reshape(-1)                         # merges axes: a view only when contiguous
    first = 1 if t.ndim > 1 and data.draw(st.booleans()) else 0   # pooling: not leading
    axes = tuple(sorted(data.draw(st.sets(st.integers(first, t.ndim - 1), min_size=1)))) \
        if t.ndim else None
    keepdims = data.draw(st.booleans())
    if data.draw(st.booleans()):
        t = t.astype(np.float64)                  # the result's dtype differs from like's
    clamp = data.draw(st.sampled_from([None, np.maximum, np.minimum]))
    x = t if clamp is None else clamp(t, 0.0)
    y = x.max(axis=axes, keepdims=keepdims)
    g = rng.normal(size=y.shape).astype(t.dtype)
    if clamp is None:
        share = runtime.extremum_share(g, y, x, axes, keepdims)
        got = runtime.extremum_share(g, y, x, axes, keepdims, like=like, at=at)
    else:
        args = (g, y, x, axes, keepdims, clamp, 0.0, t == 0.0)
        share = runtime.clamped_extremum_share(*args)
        got = runtime.clamped_extremum_share(*args, like=like, at=at)
    expected = runtime.unindex(share.reshape(np.shape(like[at])), like, at)
    assert got.dtype == expected.dtype and np.array_equal(got, expected, equal_nan=True)


@SETTINGS
@given(seed=st.integers(0, 10_000), shape=st.lists(st.integers(1, 4), min_size=2, max_size=4),
       c=st.sampled_from([0.0, 0.5, -1.0]), data=st.data())
def test_tie_mask_gives_the_shares_of_the_comparison(seed, shape, c, data):
    """tie_mask(t, c) holds t == c (a broadcast False without ties), and its views give
    clamped_extremum_share the same floats as views of t == c: ties, NaNs, crops."""
    rng = np.random.default_rng(seed)
    t = rng.integers(-2, 3, size=shape) * 0.5 if data.draw(st.booleans()) else \
        rng.normal(size=shape)
    if data.draw(st.booleans()):
        t[t == c] += 0.25                         # no ties
    if data.draw(st.booleans()):
        t.flat[0] = np.nan
    ties = runtime.tie_mask(t, c)
    assert ties.dtype == bool and np.array_equal(ties, t == c)
    at = _crop(data, shape)
    clamp = data.draw(st.sampled_from([np.maximum, np.minimum]))
    x = clamp(t, c)[at]
    if not x.size or not x.ndim:
        return
    axes = tuple(sorted(data.draw(st.sets(st.integers(0, x.ndim - 1), min_size=1))))
    y = x.max(axis=axes)
    g = rng.normal(size=y.shape)
    got = runtime.clamped_extremum_share(g, y, x, axes, False, clamp, c, ties[at])
    expected = runtime.clamped_extremum_share(g, y, x, axes, False, clamp, c, (t == c)[at])
    assert np.array_equal(got, expected, equal_nan=True)
