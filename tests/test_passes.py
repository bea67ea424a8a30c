"""Optimisation passes: each preserves values and gradients, and its output verifies."""
import contextlib
import math
import re
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import diffsrc as ds
from diffsrc.api import seed_with_one, transform
from diffsrc.frontend.lower import lower_function
from diffsrc.ir import format_function, verify
from diffsrc.passes import FINAL, optimize
from diffsrc.passes.simplify import simplify
from diffsrc.transforms.reverse import reverse

SETTINGS = settings(max_examples=15, deadline=None)


def arithmetic(a, b):
    t = a * 1.0 + 0.0 - (b - 0.0) / 1.0
    return -(-t) * (a + a * b) / (1.0 + b) + b ** 1


def transcendental(x, y):
    return math.exp(math.log(x * x + 1.0)) * math.sin(y) + math.tanh(x * y)


def with_loop(x, n):
    s = x
    for i in range(n):
        s = s * 0.5 + math.cos(s) * 1.0
    return s


def with_branch(x, y):
    z = x * y
    if z > 0.0:
        w = z * z + 0.0
    else:
        w = z * 1.0 - y
    return w * x


def arrays(x, w):
    h = np.tanh(x @ w)
    return np.sum(h * h) + np.sum(np.exp(np.log(h * h + 1.0))) + np.sum(h.T.T)


def repeated(x):
    a = np.sin(x) * np.sin(x)
    b = np.sin(x) + np.cos(x) * 1.0
    return np.sum(a * b + a)


SCALAR_CASES = [arithmetic, transcendental, with_branch]


_compiled = {}


def _gradients(fn, args, wrt, optimize_code):
    """Value and gradients from the optimised or unoptimised generated code."""
    key = (fn, wrt, optimize_code, tuple(np.shape(a) for a in args))
    if key not in _compiled:
        _compiled[key] = transform(fn, args, wrt, "grad", optimize=optimize_code).function
    return _compiled[key](*args)


def _close(a, b):
    if isinstance(a, tuple):
        return all(_close(x, y) for x, y in zip(a, b))
    return np.allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("fn", SCALAR_CASES, ids=lambda f: f.__name__)
@SETTINGS
@given(a=st.floats(0.1, 2.0), b=st.floats(0.1, 2.0))
def test_optimised_and_unoptimised_code_agree(fn, a, b):
    plain = _gradients(fn, (a, b), (0, 1), False)
    optimised = _gradients(fn, (a, b), (0, 1), True)
    assert _close(plain, optimised)


@SETTINGS
@given(x=st.floats(0.1, 2.0), n=st.integers(0, 5))
def test_loops_agree_optimised_and_not(x, n):
    assert _close(_gradients(with_loop, (x, n), (0,), False),
                  _gradients(with_loop, (x, n), (0,), True))


@SETTINGS
@given(seed=st.integers(0, 10_000))
def test_array_code_agrees_optimised_and_not(seed):
    rng = np.random.default_rng(seed)
    x, w = rng.normal(size=(3, 4)), rng.normal(size=(4, 2))
    assert _close(_gradients(arrays, (x, w), (0, 1), False),
                  _gradients(arrays, (x, w), (0, 1), True))
    assert _close(_gradients(repeated, (x,), (0,), False), _gradients(repeated, (x,), (0,), True))


@pytest.mark.parametrize("fn, args", [(arithmetic, (0.7, 1.3)), (with_loop, (0.4, 3)),
                                      (with_branch, (0.5, -2.0)),
                                      (arrays, (np.ones((2, 3)), np.ones((3, 2))))],
                         ids=["arithmetic", "loop", "branch", "arrays"])
def test_every_pass_output_verifies_and_can_be_printed(fn, args):
    function = lower_function(fn, args)
    reverse(function, (0,))
    seed_with_one(function)
    seen = []
    optimize(function, trace=lambda name, text: seen.append((name, text)))
    assert [name for name, _ in seen] == [name for name, _ in FINAL]
    assert all("%" in text and "pullback(" in text for _, text in seen)
    verify(function)


def test_factor_cancellation_of_the_seed_document():
    source = ds.source(ds.grad(lambda a, b: (a + a * b) / (1 + b), wrt=(0, 1)))
    body = [line.strip() for line in source.splitlines()[2:]]
    assert body[-1] == "return a, (1.0, b_bar)"
    assert not any("/" in line for line in body)


def test_simplification_removes_identities_from_the_source():
    df = ds.grad(lambda x: x * 1.0 + 0.0)
    assert df(2.0) == 1.0
    source = ds.source(df)
    assert "* 1.0" not in source and "+ 0.0" not in source


def test_simplifier_keeps_dtype_changing_identities():
    """`mask * 1.0` turns booleans into floats: it must stay."""
    def f(x):
        mask = x > 0.0
        return np.sum(x * (mask * 1.0))
    function = lower_function(f, (np.ones(3),))
    simplify(function)
    assert "const 1.0" in format_function(function)
    x = np.array([1.0, -2.0, 3.0])
    assert np.allclose(ds.grad(f)(x), [1.0, 0.0, 1.0])


def test_cse_shares_repeated_pure_calls():
    source = ds.source(ds.grad(repeated))
    forward = source.split("_bar")[0]
    assert forward.count("np.sin(x)") == 1


def test_unoptimised_source_is_available():
    df = ds.grad(arithmetic, wrt=(0, 1))
    df(0.3, 0.4)
    plain, optimised = ds.source(df, optimize=False), ds.source(df)
    assert plain != optimised and len(optimised) < len(plain)


# ----------------------------------------------------------- shape specialisation, out= buffers

def broadcast_mix(a, b):
    h = np.maximum(a * b + b, 0.0) - np.exp(-a) / (1.0 + b * b)
    return np.mean(h * h) + np.sum(a + a)


def mlp_like(W, b, x, y):
    h = np.tanh(x @ W + b)
    r = h @ np.ones((W.shape[1], 1)) - y
    return np.mean(r * r)


def reductions(x, w):
    s = np.sum(x * w, axis=-1, keepdims=True)
    m = np.max(x, axis=0)
    return np.sum(np.log(1.0 + s * s)) + np.sum(m * m) + np.mean(x, axis=1) @ np.ones(x.shape[0])


SHAPE_CASES = {
    "broadcast": (broadcast_mix, lambda rng, n, m: (rng.normal(size=(n, m)),
                                                    rng.normal(size=(m,))), (0, 1)),
    "broadcast_rows": (broadcast_mix, lambda rng, n, m: (rng.normal(size=(n, 1)),
                                                         rng.normal(size=(1, m))), (0, 1)),
    "mlp_outer": (mlp_like, lambda rng, n, m: (rng.normal(size=(m, 1)), rng.normal(size=(1,)),
                                               rng.normal(size=(n, m)),
                                               rng.normal(size=(n, 1))), (0, 1)),
    "mlp": (mlp_like, lambda rng, n, m: (rng.normal(size=(m, 3)), rng.normal(size=(3,)),
                                         rng.normal(size=(n, m)), rng.normal(size=(n, 1))),
            (0, 1)),
    "reductions": (reductions, lambda rng, n, m: (rng.normal(size=(n, m)),
                                                  rng.normal(size=(m,))), (0, 1)),
}


def in_place_at_any_size():
    """Small test arrays take the in-place path that large ones take."""
    from diffsrc.passes import inplace
    return mock.patch.object(inplace, "MIN_INPLACE_BYTES", 0)


@contextlib.contextmanager
def large_array_paths():
    """Small test arrays take every path large ones take: in place, over long rows."""
    from diffsrc.codegen import python as codegen
    with in_place_at_any_size(), mock.patch.dict(codegen.LONG_ROWS_MIN_BYTES,
                                                 {"number": 0, "array": 0}), \
            mock.patch.object(codegen, "LONG_ROWS_MIN_REPEATS", 0):
        yield


@pytest.fixture
def always_in_place():
    with in_place_at_any_size():
        yield


@pytest.mark.parametrize("case", sorted(SHAPE_CASES))
@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(1, 4), m=st.integers(1, 4))
def test_specialised_code_agrees_with_general_code(case, seed, n, m):
    fn, make, wrt = SHAPE_CASES[case]
    args = make(np.random.default_rng(seed), n, m)
    before = [a.copy() for a in args]
    with large_array_paths():
        special = transform(fn, args, wrt, "grad", specialize=True)
    general = transform(fn, args, wrt, "grad")
    got, expected = special.function(*args), general.function(*args)
    assert _close(got, expected)
    for g, a in zip(got[1], (args[i] for i in wrt)):
        assert np.shape(g) == np.shape(a)
    assert all(np.array_equal(a, b) for a, b in zip(args, before))   # nothing mutated
    verify(special.ir)


def test_specialised_mlp_gradient_reads_like_hand_written_code(always_in_place):
    rng = np.random.default_rng(0)
    args = (rng.normal(size=(4, 3)), rng.normal(size=(3,)), rng.normal(size=(5, 4)),
            rng.normal(size=(5, 1)))
    df = ds.grad(mlp_like, wrt=(0, 1))
    df(*args)
    text = ds.source(df)
    for helper in ("unbroadcast(", "unreduce(", "matmul_left(", "matmul_right(", "np.size("):
        assert helper not in text, text
    assert "t_bar.sum(axis=0)" in text and "x.T @ t_bar" in text, text
    assert "+= b" in text, text                  # the product's buffer takes the bias


def test_shapes_past_the_limit_share_general_code():
    from diffsrc import api
    df = ds.grad(broadcast_mix)
    rng = np.random.default_rng(1)
    for n in range(1, api.SPECIALISED_SHAPES + 3):
        a, b = rng.normal(size=(n, 2)), rng.normal(size=(2,))
        general = transform(broadcast_mix, (a, b), (0,), "grad").function(a, b)[1]
        np.testing.assert_allclose(df(a, b), general, rtol=1e-12)
    specialised = [key for key in df.cache if key[-1] is not None]
    assert len(specialised) == api.SPECIALISED_SHAPES
    assert any(key[-1] is None for key in df.cache)


def test_in_place_never_writes_into_arguments_or_values_read_later(always_in_place):
    def f(x, w):
        t = x * w
        u = t + 1.0                  # t is read again below: no write into it
        return np.sum(u * t) + np.sum(np.exp(x))

    x, w = np.ones((3, 2)), np.full((3, 2), 2.0)
    special = transform(f, (x, w), (0, 1), "grad", specialize=True)
    value, (gx, gw) = special.function(x, w)
    assert np.array_equal(x, np.ones((3, 2))) and np.array_equal(w, np.full((3, 2), 2.0))
    np.testing.assert_allclose(gx, w * (2 * x * w + 1.0) + np.exp(x))
    np.testing.assert_allclose(gw, x * (2 * x * w + 1.0))


def test_specialize_is_a_printable_verified_pass():
    args = (np.ones((2, 3)), np.ones((3, 2)))
    function = lower_function(arrays, args)
    reverse(function, (0,))
    seed_with_one(function)
    seen = []
    optimize(function, trace=lambda name, text: seen.append(name), args=args)
    assert seen.index("specialize") < seen.index("inplace") < seen.index("dce after inplace")
    verify(function)


def rnn_like(W, x):
    h = np.zeros((x.shape[0], W.shape[1]))
    hs = []
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t, :] @ W + h)
        hs = hs + [h]
    return np.sum(np.stack(hs, axis=1) ** 2)


def conv_pool_like(K, x):
    n, s = x.shape[0], x.shape[1]
    cols = []
    for i in range(2):
        for j in range(2):
            cols.append(x[:, i:i + s - 1, j:j + s - 1])
    y = np.maximum(np.stack(cols, axis=-1) @ K, 0.0)
    half = (s - 1) // 2
    windows = np.reshape(y[:, :2 * half, :2 * half], (n, half, 2, half, 2))
    return np.sum(np.max(windows, axis=(2, 4)) ** 2)


LOOP_CASES = {
    "rnn": (rnn_like, lambda rng, n, m: (rng.normal(size=(3, 3)) * 0.5,
                                         rng.normal(size=(n, m, 3)))),
    "conv_pool": (conv_pool_like, lambda rng, n, m: (rng.normal(size=(4,)),
                                                     rng.normal(size=(n, m + 2, m + 2)))),
}


@pytest.mark.parametrize("case", sorted(LOOP_CASES))
@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(1, 3), m=st.integers(1, 4))
def test_specialised_loops_agree_with_general_code_and_finite_differences(case, seed, n, m):
    fn, make = LOOP_CASES[case]
    args = make(np.random.default_rng(seed), n, m)
    with large_array_paths():
        special = transform(fn, args, (0,), "grad", specialize=True)
    general = transform(fn, args, (0,), "grad")
    got, expected = special.function(*args), general.function(*args)
    assert _close(got, expected)
    from gradcheck import numeric_grad
    np.testing.assert_allclose(got[1], numeric_grad(fn, args, 0), rtol=1e-5, atol=1e-6)


# ------------------------------------------------- memory: out= helpers, views, early release

def deep_relu(W1, W2, W3, x):
    h1 = np.maximum(x @ W1, 0.0)
    h2 = np.maximum(h1 @ W2 + 1.0, 0.0)
    return np.sum(np.tanh(h2 @ W3) ** 2)


def crops(x, w):
    n = x.shape[1]
    whole = x[:, :n] * w                 # all of x, in order: the slice is x itself
    flipped = x[::-1, :n]                # all of x too, but reversed
    even = x[:, :2 * (n // 2)]           # all of x only where n is even
    return np.sum(whole * flipped) + np.sum(np.maximum(even, 0.0) ** 2)


def branch_then_loop(W, x, k):
    h = x @ W
    if k > 1:
        g = np.tanh(h)
    else:
        g = h * 2.0
    for i in range(k):
        g = np.maximum(g @ W, 0.0) * 0.5 + g
    return np.sum(g * g)


def _integer_valued(rng, shape):
    """Small integers as floats: relu inputs hit exactly 0 (ties) often."""
    return rng.integers(-2, 3, size=shape).astype(float)


MEMORY_CASES = {
    "deep_relu": (deep_relu, lambda rng, n, m: (rng.normal(size=(m, 4)),
                                                rng.normal(size=(4, 3)),
                                                rng.normal(size=(3, 2)),
                                                rng.normal(size=(n, m))), (0, 1, 2)),
    "crops": (crops, lambda rng, n, m: (rng.normal(size=(n, m)), rng.normal(size=(m,))),
              (0, 1)),
    "branch_then_loop": (branch_then_loop, lambda rng, n, m: (
        rng.normal(size=(m, m)) * 0.5, rng.normal(size=(n, m)), n), (0, 1)),
}


@pytest.mark.parametrize("case", sorted(MEMORY_CASES))
@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(1, 4), m=st.integers(1, 5))
def test_memory_planned_code_agrees_with_general_code_and_finite_differences(case, seed, n, m):
    fn, make, wrt = MEMORY_CASES[case]
    args = make(np.random.default_rng(seed), n, m)
    before = [np.copy(a) for a in args]
    with large_array_paths():
        special = transform(fn, args, wrt, "grad", specialize=True)
    got, expected = special.function(*args), transform(fn, args, wrt, "grad").function(*args)
    assert _close(got, expected)
    assert all(np.array_equal(a, b) for a, b in zip(args, before))   # nothing mutated
    from gradcheck import numeric_grad
    for g, numeric in zip(got[1], numeric_grad(fn, args, wrt)):
        np.testing.assert_allclose(g, numeric, rtol=1e-5, atol=1e-6)


@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(1, 6), m=st.integers(1, 5))
def test_relu_ties_written_over_the_adjoint_agree_with_general_code(seed, n, m):
    """winner_share(g, x, 0.0, out=g): ties (x == 0) take half of g, read before g is
    overwritten."""
    rng = np.random.default_rng(seed)
    args = (_integer_valued(rng, (m, 4)), _integer_valued(rng, (4, 3)),
            rng.normal(size=(3, 2)), _integer_valued(rng, (n, m)))
    with in_place_at_any_size():
        special = transform(deep_relu, args, (0, 1, 2), "grad", specialize=True)
    assert "out=" in special.source
    general = transform(deep_relu, args, (0, 1, 2), "grad")
    assert _close(special.function(*args), general.function(*args))


def test_dead_arrays_are_deleted_before_the_next_large_allocation(always_in_place):
    rng = np.random.default_rng(0)
    args = (rng.normal(size=(5, 4)), rng.normal(size=(4, 3)), rng.normal(size=(3, 2)),
            rng.normal(size=(6, 5)))
    source = transform(deep_relu, args, (0, 1, 2), "grad", specialize=True).source
    lines = [line.strip() for line in source.splitlines()]
    deleted = [name for line in lines if line.startswith("del ")
               for name in line[4:].split(", ")]
    assert deleted, source
    for name in deleted:                 # never read again before it is assigned again
        after = lines[next(i for i, line in enumerate(lines) if line.startswith("del ") and
                           name in line[4:].split(", ")) + 1:]
        for line in after:
            if line.startswith(f"{name} = "):
                break
            assert not re.search(rf"\b{name}\b", line), (name, source)


def test_early_release_lowers_the_peak_of_a_gradient_call():
    import tracemalloc
    rng = np.random.default_rng(0)
    args = (rng.normal(size=(256, 256)), rng.normal(size=(256, 256)),
            rng.normal(size=(256, 8)), rng.normal(size=(128, 256)))

    def peak(function):
        tracemalloc.start()
        try:
            function(*args)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    special = transform(deep_relu, args, (0, 1, 2), "grad", specialize=True)
    general = transform(deep_relu, args, (0, 1, 2), "grad")
    assert "del " in special.source
    assert peak(special.function) < peak(general.function)


@SETTINGS
@given(seed=st.integers(0, 10_000), shape=st.lists(st.integers(1, 4), min_size=1, max_size=5),
       data=st.data())
def test_window_extremum_share_is_the_tie_sharing_formula(seed, shape, data):
    """Windows of <= 8 entries go offset by offset (pooling): the same floats as
    chosen * (g / count) over the whole array."""
    from diffsrc.runtime import extremum_share
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, size=shape).astype(data.draw(st.sampled_from([np.float32,
                                                                         np.float64])))
    axes = tuple(sorted(data.draw(st.sets(st.integers(0, len(shape) - 1), min_size=1))))
    keepdims = data.draw(st.booleans())
    y = x.max(axis=axes, keepdims=keepdims)
    g = rng.normal(size=y.shape)
    chosen = x == x.max(axis=axes, keepdims=True)
    expected = chosen * (g.reshape(chosen.sum(axis=axes, keepdims=True).shape) /
                         chosen.sum(axis=axes, keepdims=True, dtype=x.dtype))
    got = extremum_share(g, y, x, axes, keepdims)
    assert got.dtype == expected.dtype and np.array_equal(got, expected)


# ------------------------------------------------ relu before pooling, long rows

def relu_pool(K, x, c):
    """A clamp at c (relu for c = 0), then a 2x2 max-pool that drops an odd row/column."""
    n, s = x.shape[0], x.shape[1]
    y = np.maximum(x * K[0] + K[1], c)
    half = s // 2
    windows = np.reshape(y[:, :2 * half, :2 * half, :], (n, half, 2, half, 2, y.shape[-1]))
    return np.sum(np.max(windows, axis=(2, 4)) ** 2)


def ceiling_min_pool(K, x, c):
    """A ceiling written with the number first, then a 2x2 min-pool."""
    n, s = x.shape[0], x.shape[1]
    y = np.minimum(c, x * K[0] + K[1])
    windows = np.reshape(y[:, :2 * (s // 2), :2 * (s // 2), :], (n, s // 2, 2, s // 2, 2, -1))
    return np.sum(np.sin(np.min(windows, axis=(2, 4))))


def relu_max_over_rows(K, x, c):
    """The maximum over a long axis (the general extremum_share path), no views between."""
    return np.sum(np.max(np.maximum(x * K[0] + K[1], c), axis=1) * K[2])


CLAMP_CASES = {"relu_pool": relu_pool, "ceiling_min_pool": ceiling_min_pool,
               "relu_max_over_rows": relu_max_over_rows}


@pytest.mark.parametrize("case", sorted(CLAMP_CASES))
@SETTINGS
@given(seed=st.integers(0, 10_000), shape=st.tuples(st.integers(1, 3), st.integers(2, 5),
                                                     st.integers(1, 3)),
       c=st.sampled_from([0.0, 0.5, -1.0]), ties=st.booleans())
def test_clamp_before_an_extremum_shares_on_the_reduced_shape(case, seed, shape, c, ties):
    """winner_share(U(extremum_share(...)), t, c) -> U(clamped_extremum_share(...)): the same
    floats as general code, ties at the clamp (t == c) and in the windows included, and the
    finite-difference gradient where there are none."""
    fn = CLAMP_CASES[case]
    rng = np.random.default_rng(seed)
    n, s, channels = shape
    x = rng.integers(-2, 3, size=(n, s, s, channels)) * 0.5 if ties else \
        rng.normal(size=(n, s, s, channels))
    K = np.array([1.0, 0.0, 1.5]) if ties else rng.normal(size=3)
    with large_array_paths():
        special = transform(fn, (K, x, c), (0, 1), "grad", specialize=True)
    assert "clamped_extremum_share(" in special.source and \
        "winner_share(" not in special.source, special.source
    got = special.function(K, x, c)
    assert _close(got, transform(fn, (K, x, c), (0, 1), "grad").function(K, x, c))
    if not ties:
        from gradcheck import numeric_grad
        for g, numeric in zip(got[1], numeric_grad(fn, (K, x, c), (0, 1))):
            np.testing.assert_allclose(g, numeric, rtol=1e-5, atol=1e-6)


def test_the_clamp_writes_over_its_input_once_its_ties_are_found(always_in_place):
    """With t == c taken before the relu, nothing reads t after it: relu in place."""
    rng = np.random.default_rng(0)
    args = (rng.normal(size=3), rng.normal(size=(2, 5, 5, 3)), 0.0)
    source = transform(relu_pool, args, (0, 1), "grad", specialize=True).source
    assert re.search(r"ties = tie_mask\((\w+), c\)\n.*np\.maximum\(\1, c, out=\1\)", source), \
        source


def test_a_relu_writes_over_its_input_and_shares_from_its_output(always_in_place):
    """winner_share(g, t, 0.0) -> masked_share(g, t > 0.0, tie_mask(t, 0.0)): both masks
    are made before the relu, which is then the last reader of t and writes over it."""
    rng = np.random.default_rng(0)
    args = (rng.normal(size=(3, 4)), rng.normal(size=(4, 3)), rng.normal(size=(3, 2)),
            rng.normal(size=(5, 3)))
    source = transform(deep_relu, args, (0, 1, 2), "grad", specialize=True).source
    made = re.findall(r"ties(?:_\d+)? = tie_mask\((\w+), 0\.0\)\n\s*wins(?:_\d+)? = \1 > 0\.0\n"
                      r"\s*np\.maximum\(\1, 0\.0, out=\1\)", source)
    assert len(made) == 2, source
    assert source.count("masked_share(") == 2 and "winner_share(" not in source, source


@SETTINGS
@given(seed=st.integers(0, 10_000), shape=st.lists(st.integers(1, 4), min_size=0, max_size=3),
       c=st.sampled_from([0.0, 1.0, -0.5]), clamp=st.sampled_from([np.maximum, np.minimum]),
       data=st.data())
def test_masked_share_is_the_winner_share(seed, shape, c, clamp, data):
    """masked_share with the forward pass's masks (and winner_share, which makes them as it
    goes) is g where the clamped side wins, half of g at ties, zero elsewhere (NaN
    included), writing over g or not."""
    from diffsrc.runtime import masked_share, tie_mask, winner_share
    rng = np.random.default_rng(seed)
    t = rng.choice(np.array([c, c - 1.0, c + 2.0, np.nan]), size=shape) \
        if data.draw(st.booleans()) else rng.normal(size=shape)
    g = rng.normal(size=shape)
    a, b = (t, c) if clamp is np.maximum else (c, t)
    expected = np.where(np.greater(a, b), g, np.where(np.equal(a, b), 0.5 * g, 0.0))
    np.testing.assert_array_equal(winner_share(g, a, b), expected)
    written = g.copy()                   # the in-place pass passes out= the adjoint itself
    got = masked_share(written, np.greater(a, b), tie_mask(t, c),
                       out=written if data.draw(st.booleans()) else None)
    np.testing.assert_array_equal(got, expected)


def test_a_clamp_read_elsewhere_keeps_its_own_share():
    """The relu's output also feeds a sum: its adjoint is not the pooling's alone."""
    def f(x):
        y = np.maximum(x, 0.0)
        return np.sum(np.max(np.reshape(y, (2, 2, 3)), axis=1) ** 2) + np.sum(y)

    x = np.random.default_rng(0).normal(size=(4, 3))
    special = transform(f, (x,), (0,), "grad", specialize=True)
    assert "clamped_extremum_share(" not in special.source
    assert _close(special.function(x), transform(f, (x,), (0,), "grad").function(x))


@SETTINGS
@given(seed=st.integers(0, 10_000), shape=st.lists(st.integers(1, 4), min_size=1, max_size=4),
       c=st.sampled_from([0.0, 1.0, -0.5]), data=st.data())
def test_clamped_extremum_share_is_the_composition(seed, shape, c, data):
    """Bit for bit the two steps it fuses, for maximum and minimum clamps, max and min
    reductions, with and without ties (at the clamp, in a window), NaNs included."""
    from diffsrc.runtime import clamped_extremum_share, extremum_share, winner_share
    rng = np.random.default_rng(seed)
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    t = (rng.integers(-2, 3, size=shape) * 0.5).astype(dtype) if data.draw(st.booleans()) \
        else rng.normal(size=shape).astype(dtype)
    if not data.draw(st.booleans()):
        t[t == c] += dtype(0.25)                 # no ties at the clamp: the fused path
    if data.draw(st.booleans()):
        t.flat[-1] = np.nan
    axes = tuple(sorted(data.draw(st.sets(st.integers(0, len(shape) - 1), min_size=1))))
    keepdims = data.draw(st.booleans())
    clamp = data.draw(st.sampled_from([np.maximum, np.minimum]))
    x = clamp(t, c)
    y = (x.min if data.draw(st.booleans()) else x.max)(axis=axes, keepdims=keepdims)
    g = rng.normal(size=y.shape).astype(dtype)
    if g.size and data.draw(st.booleans()):
        g.flat[0] = np.nan
    a, b = (t, c) if clamp is np.maximum else (c, t)
    expected = winner_share(extremum_share(g, y, x, axes, keepdims), a, b)
    got = clamped_extremum_share(g, y, x, axes, keepdims, clamp, c, t == c)
    assert got.dtype == expected.dtype and np.array_equal(got, expected, equal_nan=True)


@SETTINGS
@given(seed=st.integers(0, 10_000), shape=st.lists(st.integers(1, 5), min_size=1, max_size=4),
       row=st.integers(1, 40), data=st.data())
def test_long_rows_is_the_ufunc(seed, shape, row, data):
    """The same floats (signed zeros, infinities and NaNs included) as the ufunc on the
    operands as given, in either order, with and without out=, for rows of any length."""
    from diffsrc import runtime
    rng = np.random.default_rng(seed)
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.5, -2.0], dtype)
    large = rng.choice(specials, size=shape) if data.draw(st.booleans()) else \
        rng.normal(size=shape).astype(dtype)
    trailing = data.draw(st.integers(0, len(shape)))
    short = data.draw(st.sampled_from([0.0, -0.0, 1, 0.1, 2.5, float("nan")])) \
        if trailing == 0 else rng.choice(specials, size=(1,) * data.draw(st.integers(
            0, len(shape) - trailing)) + tuple(shape[len(shape) - trailing:]))
    ufunc = data.draw(st.sampled_from([np.add, np.subtract, np.multiply, np.divide,
                                       np.maximum, np.minimum]))
    a, b = (large, short) if data.draw(st.booleans()) else (short, large)
    in_place = data.draw(st.booleans())
    out = np.array(large) if in_place else None
    with mock.patch.object(runtime, "LONG_ROW", row), np.errstate(all="ignore"):
        expected = ufunc(a, b)
        got = runtime.long_rows(ufunc, a, b, out=out)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert np.array_equal(got, expected, equal_nan=True)
    assert np.array_equal(np.signbit(got), np.signbit(expected))
    assert not in_place or got is out


def bias_layer(W, b, x):
    return np.sum(np.tanh(x @ W + b) ** 2)


@SETTINGS
@given(seed=st.integers(0, 10_000), rows=st.integers(100, 400), width=st.integers(1, 12),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_a_bias_of_many_short_rows_sums_them_with_a_product(seed, rows, width, dtype):
    """From 256 rows (widths below 64) a bias's adjoint is sum_leading (a row of ones
    times the rows): the gradient of the general code and of finite differences."""
    rng = np.random.default_rng(seed)
    args = tuple(rng.normal(size=shape).astype(dtype)
                 for shape in ((3, width), (width,), (rows, 3)))
    special = transform(bias_layer, args, (0, 1), "grad", specialize=True)
    assert ("sum_leading(" in special.source) == (rows >= 256), special.source
    got, expected = special.function(*args), transform(bias_layer, args, (0, 1), "grad").function(
        *args)
    tolerance = {"rtol": 1e-4, "atol": 1e-4} if dtype == np.float32 else {"rtol": 1e-10,
                                                                              "atol": 1e-10}
    for g, e in zip(got[1], expected[1]):
        assert g.dtype == dtype and np.allclose(g, e, **tolerance)
    if dtype == np.float64:
        from gradcheck import numeric_grad
        for g, numeric in zip(got[1], numeric_grad(bias_layer, args, (0, 1))):
            np.testing.assert_allclose(g, numeric, rtol=1e-5, atol=1e-6)


def test_a_bias_repeating_over_few_long_rows_is_added_in_place():
    """(512, 64) float64 is 256 KiB but only 512 rows: NumPy's own loop, not long_rows."""
    rng = np.random.default_rng(0)
    args = (rng.normal(size=(8, 64)), rng.normal(size=(64,)), rng.normal(size=(512, 8)))
    special = transform(bias_layer, args, (0, 1), "grad", specialize=True)
    assert "long_rows(np.add" not in special.source and "+= b" in special.source, \
        special.source
    assert _close(special.function(*args), transform(bias_layer, args, (0, 1), "grad").function(
        *args))


def test_bias_and_relu_of_a_large_array_run_over_long_rows():
    """x @ W + b and np.maximum(., 0.0) on (n, 32) arrays: long_rows, both writing into
    the product."""
    def layer(W, b, x):
        return np.sum(np.maximum(x @ W + b, 0.0) ** 2)

    rng = np.random.default_rng(0)
    args = (rng.normal(size=(8, 32)), rng.normal(size=(32,)), rng.normal(size=(1024, 8)))
    special = transform(layer, args, (0, 1), "grad", specialize=True)
    assert "long_rows(np.add, t, b, out=t)" in special.source, special.source
    assert "long_rows(np.maximum, t, 0.0, out=t)" in special.source, special.source
    assert _close(special.function(*args), transform(layer, args, (0, 1), "grad").function(*args))
