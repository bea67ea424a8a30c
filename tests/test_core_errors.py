"""Core transformer acceptance tests: errors, argument safety and the cache.

* Each documented error is raised, is a `diffsrc.DiffsrcError`, names the
  construct, and carries `.filename` / `.lineno` pointing at THIS file and the
  offending line (located by marker comments `# <<name>>`).
* The user's arguments are never mutated, and returned gradients do not alias
  them.
* The transformation is cached: a second call does not re-transform; a
  redefined function is re-transformed.
"""
import contextlib
import importlib
import math
import os
import re
import sys
import textwrap
import time
import traceback
import uuid
from dataclasses import dataclass

import numpy as np
import pytest

import diffsrc as ds

try:
    from gradcheck import assert_args_equal, deep_copy_args
except ImportError:  # tests/ turned into a package
    from tests.gradcheck import assert_args_equal, deep_copy_args

THIS_FILE = os.path.realpath(__file__)
EXACT = dict(rel=1e-12, abs=1e-12)


def _line(marker):
    """Line number (1-based) of the line in this file carrying `# <<marker>>`."""
    tag = "# <<" + marker + ">>"
    with open(THIS_FILE, encoding="utf-8") as fh:
        hits = [i for i, line in enumerate(fh, 1) if line.rstrip().endswith(tag)]
    assert len(hits) == 1, (marker, hits)
    return hits[0]


def _assert_points_here(exc, *markers):
    assert exc.filename is not None, f"{type(exc).__name__} has no filename: {exc}"
    assert os.path.realpath(exc.filename) == THIS_FILE, (exc.filename, THIS_FILE)
    allowed = {_line(m) for m in markers}
    assert exc.lineno in allowed, f"lineno {exc.lineno} not in {sorted(allowed)}: {exc}"


def _raise_via_grad(fn, *args, wrt=0):
    """Build and call the gradient; the error may come from either step."""
    ds.grad(fn, wrt=wrt)(*args)


# ---------------------------------------------------------------------------
# hierarchy
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["UnsupportedSyntaxError", "NoRuleError", "NonScalarOutputError",
                                  "NonDifferentiableError", "SourceUnavailableError"])
def test_error_hierarchy(name):
    import diffsrc

    cls = getattr(ds, name)
    assert issubclass(cls, diffsrc.DiffsrcError)
    assert issubclass(diffsrc.DiffsrcError, Exception)
    assert cls is not diffsrc.DiffsrcError


# ---------------------------------------------------------------------------
# unsupported syntax
# ---------------------------------------------------------------------------


def uses_try(x):
    try:  # <<try>>
        y = x * 2.0
    except ValueError:
        y = x
    return y


def uses_try_finally(x):
    y = x
    try:  # <<try_finally>>
        y = y * 2.0
    finally:
        y = y + 1.0
    return y


def uses_with(x):
    y = x + 1.0
    with contextlib.nullcontext():  # <<with>>
        y = y * 2.0
    return y


def uses_yield(x):  # <<yield_def>>
    y = x * 2.0
    yield y  # <<yield>>


COUNTER = 0


def uses_global_write(x):
    global COUNTER  # <<global_decl>>
    COUNTER = COUNTER + 1  # <<global_write>>
    return x * 2.0


def make_nonlocal_writer():
    count = 0

    def writer(x):
        nonlocal count  # <<nonlocal_decl>>
        count += 1  # <<nonlocal_write>>
        return x * 2.0

    return writer


async def uses_async(x):  # <<async>>
    return x * 2.0


def helper_with_try(x):
    try:  # <<helper_try>>
        return x * 3.0
    except ZeroDivisionError:
        return x


def calls_helper_with_try(x):
    return helper_with_try(x) + x


UNSUPPORTED = [
    ("try", uses_try, ("try",), "try"),
    ("try_finally", uses_try_finally, ("try_finally",), "try"),
    ("with", uses_with, ("with",), "with"),
    ("yield", uses_yield, ("yield", "yield_def"), "yield"),
    ("global", uses_global_write, ("global_decl", "global_write"), "global"),
    ("nonlocal", make_nonlocal_writer(), ("nonlocal_decl", "nonlocal_write"), "nonlocal"),
    ("async", uses_async, ("async",), "async"),
    ("callee_try", calls_helper_with_try, ("helper_try",), "try"),
]


@pytest.mark.parametrize("fn, markers, word", [c[1:] for c in UNSUPPORTED],
                         ids=[c[0] for c in UNSUPPORTED])
def test_unsupported_syntax_raises_with_file_and_line(fn, markers, word):
    with pytest.raises(ds.UnsupportedSyntaxError) as ei:
        _raise_via_grad(fn, 1.5)
    exc = ei.value
    assert isinstance(exc, ds.DiffsrcError)
    assert word in str(exc).lower(), f"message does not name `{word}`: {exc}"
    _assert_points_here(exc, *markers)


def test_unsupported_syntax_does_not_run_side_effects():
    before = COUNTER
    with pytest.raises(ds.UnsupportedSyntaxError):
        _raise_via_grad(uses_global_write, 1.0)
    assert COUNTER == before


@pytest.mark.parametrize("api", ["ir", "value_and_grad", "pullback"])
def test_unsupported_syntax_from_other_entry_points(api):
    with pytest.raises(ds.UnsupportedSyntaxError) as ei:
        if api == "ir":
            ds.ir(uses_try)
        elif api == "value_and_grad":
            ds.value_and_grad(uses_try)(1.5)
        else:
            y, back = ds.pullback(uses_try, 1.5)
            back(1.0)
    _assert_points_here(ei.value, "try")


def test_unsupported_syntax_in_source_string_reports_its_line():
    src = "def F(a):\n    try:\n        return a * a\n    except ValueError:\n        return a\n"
    with pytest.raises(ds.UnsupportedSyntaxError) as ei:
        ds.grad(src)(1.5)
    assert ei.value.lineno == 2
    assert "try" in str(ei.value).lower()


# ---------------------------------------------------------------------------
# no rule / no source
# ---------------------------------------------------------------------------

_OPAQUE_UFUNC = np.frompyfunc(lambda v: v * 2.0, 1, 1)


def calls_opaque_ufunc(x):
    y = x * 3.0
    return _OPAQUE_UFUNC(y) + x  # <<norule_ufunc>>


def calls_nextafter(x):
    y = x * 3.0
    return math.nextafter(y, 100.0) * x  # <<norule_nextafter>>


@pytest.mark.parametrize("fn, marker", [(calls_opaque_ufunc, "norule_ufunc"),
                                        (calls_nextafter, "norule_nextafter")],
                         ids=["frompyfunc", "math.nextafter"])
def test_callee_without_rule_or_source(fn, marker):
    with pytest.raises(ds.NoRuleError) as ei:
        _raise_via_grad(fn, 1.5)
    _assert_points_here(ei.value, marker)


_ns = {}
exec(compile("def nosrc(x):\n    return x * 2.0\n", "<diffsrc-test-no-source>", "exec"), _ns)
NOSRC = _ns["nosrc"]


def calls_nosrc(x):
    return NOSRC(x) + x  # <<call_nosrc>>


def test_source_unavailable_for_top_level_function():
    with pytest.raises(ds.SourceUnavailableError) as ei:
        _raise_via_grad(NOSRC, 1.5)
    assert "nosrc" in str(ei.value)


def test_source_unavailable_for_callee():
    with pytest.raises((ds.SourceUnavailableError, ds.NoRuleError)) as ei:
        _raise_via_grad(calls_nosrc, 1.5)
    assert "nosrc" in str(ei.value)
    _assert_points_here(ei.value, "call_nosrc")


# ---------------------------------------------------------------------------
# non-scalar output
# ---------------------------------------------------------------------------


def vector_out(x):  # <<vector_def>>
    return x * 2.0  # <<vector_ret>>


def matrix_out(x):  # <<matrix_def>>
    y = x[:, None] * x[None, :]
    return y  # <<matrix_ret>>


def tuple_out(x):  # <<tuple_def>>
    return x * 2.0, x + 1.0  # <<tuple_ret>>


@pytest.mark.parametrize(
    "fn, arg, markers",
    [
        (vector_out, np.array([1.0, 2.0, 3.0]), ("vector_def", "vector_ret")),
        (matrix_out, np.array([1.0, 2.0]), ("matrix_def", "matrix_ret")),
        (tuple_out, 1.5, ("tuple_def", "tuple_ret")),
    ],
    ids=["vector", "matrix", "tuple"],
)
def test_non_scalar_output(fn, arg, markers):
    with pytest.raises(ds.NonScalarOutputError) as ei:
        _raise_via_grad(fn, arg)
    _assert_points_here(ei.value, *markers)
    with pytest.raises(ds.NonScalarOutputError):
        ds.value_and_grad(fn)(arg)


def test_non_scalar_output_is_fine_for_pullback():
    y, back = ds.pullback(vector_out, np.array([1.0, 2.0]))
    np.testing.assert_allclose(back(np.array([1.0, -1.0]))[0], [2.0, -2.0])


# ---------------------------------------------------------------------------
# wrt names a non-differentiable argument
# ---------------------------------------------------------------------------


def int_arg(x, count):  # <<int_def>>
    return x**count


def bool_arg(x, use_flag):  # <<bool_def>>
    return x * 2.0 if use_flag else x


def str_arg(x, mode_name):  # <<str_def>>
    return x * 2.0 if mode_name == "double" else x


def plain(x):  # <<plain_def>>
    return x * x


@pytest.mark.parametrize(
    "fn, args, wrt, name, marker",
    [
        (int_arg, (2.0, 3), 1, "count", "int_def"),
        (int_arg, (2.0, 3), "count", "count", "int_def"),
        (int_arg, (2.0, 3), (0, 1), "count", "int_def"),
        (bool_arg, (2.0, True), 1, "use_flag", "bool_def"),
        (bool_arg, (2.0, False), "use_flag", "use_flag", "bool_def"),
        (str_arg, (2.0, "double"), 1, "mode_name", "str_def"),
        (plain, (3,), 0, "x", "plain_def"),
    ],
    ids=["int", "int_by_name", "int_in_tuple", "bool", "bool_by_name", "str", "int_value"],
)
def test_wrt_names_non_differentiable_argument(fn, args, wrt, name, marker):
    with pytest.raises(ds.NonDifferentiableError) as ei:
        ds.grad(fn, wrt=wrt)(*args)  # <<nondiff_call>>
    exc = ei.value
    assert name in str(exc), f"message does not name the argument `{name}`: {exc}"
    _assert_points_here(exc, marker, "nondiff_call")


def sum_plain(x):
    return np.sum(x * 2.0)


def test_wrt_integer_array_is_non_differentiable():
    with pytest.raises(ds.NonDifferentiableError):
        ds.grad(sum_plain)(np.arange(3))


def test_non_differentiable_error_from_value_and_grad():
    with pytest.raises(ds.NonDifferentiableError):
        ds.value_and_grad(int_arg, wrt="count")(2.0, 3)


# ---------------------------------------------------------------------------
# exceptions raised by the user's code inside generated code
# ---------------------------------------------------------------------------


def bad_shapes(W, x):
    h = np.tanh(x * 2.0)
    z = W @ h  # <<bad_shapes_line>>
    return np.sum(z * z)


def test_user_exception_names_users_file_and_line():
    # a NumPy shape error raised while the generated code runs the user's line
    W = np.ones((2, 3))
    with pytest.raises(ValueError) as ei:
        ds.grad(bad_shapes)(W, np.ones(4))
    assert not isinstance(ei.value, ds.DiffsrcError)  # the user's own error, unchanged
    text = "".join(traceback.format_exception(ei.type, ei.value, ei.tb))
    base = re.escape(os.path.basename(THIS_FILE))
    assert re.search(base + r"\D{1,40}" + str(_line("bad_shapes_line")) + r"\b", text), text
    g = ds.grad(bad_shapes)(W, np.ones(3) * 0.1)
    h = np.tanh(0.2) * np.ones(3)
    np.testing.assert_allclose(g, 2 * np.outer(W @ h, h), rtol=1e-12)


def test_generated_frames_have_source_lines():
    # generated code is registered with linecache: every frame of a traceback
    # that passes through it shows a real line of text
    with pytest.raises(ValueError) as ei:
        ds.grad(bad_shapes)(np.ones((2, 3)), np.ones(5))
    frames = traceback.extract_tb(ei.tb)
    missing = [f"{f.filename}:{f.lineno}" for f in frames if not (f.line or "").strip()]
    assert not missing, missing


# ---------------------------------------------------------------------------
# the user's arguments are never mutated; gradients do not alias them
# ---------------------------------------------------------------------------


@dataclass
class Box:
    w: np.ndarray
    s: float


def mut_inplace_copy(x):
    y = x.copy()
    y[0] *= 3.0
    y[1:] += 1.0
    return np.sum(y * y)


def mut_dict(p, xs):
    q = dict(p)
    q["w"] = q["w"] * 2.0
    ys = list(xs)
    ys.append(q["b"])
    return np.sum(q["w"] ** 2) + sum(v * v for v in ys)


def mut_box(b, x):
    return np.sum(np.tanh(b.w * x)) * b.s


def mut_identity_like(x):
    return 0.5 * np.sum(x * x)


def mut_sum(x):
    return np.sum(x)


MUTATION_CASES = [
    (mut_inplace_copy, lambda: (np.array([1.0, 2.0, 3.0]),), 0),
    (mut_dict, lambda: ({"w": np.array([1.0, -2.0]), "b": 0.5}, [1.0, 2.0]), (0, 1)),
    (mut_box, lambda: (Box(np.array([0.3, -0.1]), 2.0), np.array([1.0, 2.0])), (0, 1)),
    (mut_identity_like, lambda: (np.array([[1.0, 2.0], [3.0, 4.0]]),), 0),
    (mut_sum, lambda: (np.array([1.0, 2.0]),), 0),
]


@pytest.mark.parametrize("fn, make_args, wrt", MUTATION_CASES,
                         ids=[c[0].__name__ for c in MUTATION_CASES])
def test_arguments_never_mutated(fn, make_args, wrt):
    args = make_args()
    before = deep_copy_args(args)
    ds.grad(fn, wrt=wrt)(*args)
    assert_args_equal(before, args)
    ds.value_and_grad(fn, wrt=wrt)(*args)
    assert_args_equal(before, args)
    y, back = ds.pullback(fn, *args)
    assert_args_equal(before, args)
    back(1.0)
    back(2.0)
    assert_args_equal(before, args)


@pytest.mark.parametrize("fn", [mut_identity_like, mut_sum, mut_inplace_copy],
                         ids=lambda f: f.__name__)
def test_returned_gradient_is_independent_of_argument(fn):
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    before = x.copy()
    g = ds.grad(fn)(x)
    assert isinstance(g, np.ndarray) and g.flags.writeable
    assert not np.shares_memory(g, x)
    g += 100.0  # an optimizer updating in place must not touch the parameters
    np.testing.assert_array_equal(x, before)
    g2 = ds.grad(fn)(x)
    assert not np.shares_memory(g, g2)
    np.testing.assert_allclose(g2, g - 100.0)


def test_cotangent_passed_to_pullback_not_mutated():
    x = np.array([1.0, 2.0, 3.0])
    y, back = ds.pullback(vector_out, x)
    ybar = np.array([1.0, -1.0, 0.5])
    ybar_before = ybar.copy()
    back(ybar)
    np.testing.assert_array_equal(ybar, ybar_before)


# ---------------------------------------------------------------------------
# cache
# ---------------------------------------------------------------------------


def cache_probe(x, n):
    acc = 0.0
    for i in range(n):
        if x > 0:
            acc = acc + math.sin(x * i) * x
        else:
            acc = acc - math.cos(x) ** 2
    y = acc * x + math.exp(-x * x)
    return y / (1.0 + y * y)


def cache_probe_two(x, n):
    acc = 0.0
    for i in range(n):
        acc = acc + math.tanh(x * i) * x + math.sqrt(1.0 + x * x)
    return acc * acc / (1.0 + acc * acc)


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def test_second_call_does_not_retransform():
    t_first, g1 = _timed(lambda: ds.grad(cache_probe)(0.7, 3))
    later = []
    df = ds.grad(cache_probe)
    for _ in range(7):
        t, g = _timed(lambda: df(0.7, 3))
        later.append(t)
        assert g == g1
    t_later = sorted(later)[len(later) // 2]  # median
    assert t_later < t_first / 5, (t_first, later)


def test_new_grad_object_for_same_function_reuses_transformation():
    t_first, g1 = _timed(lambda: ds.grad(cache_probe_two)(0.4, 3))
    later = []
    for _ in range(7):
        t, g = _timed(lambda: ds.grad(cache_probe_two)(0.4, 3))
        later.append(t)
        assert g == g1
    t_later = sorted(later)[len(later) // 2]
    assert t_later < t_first / 5, (t_first, later)


def cube_any(x):
    return np.sum(x * x * x)


def test_cache_distinguishes_argument_kinds():
    df = ds.grad(cube_any)
    g_float = df(2.0)
    assert isinstance(g_float, float) and g_float == pytest.approx(12.0, **EXACT)
    g_vec = df(np.array([1.0, 2.0]))
    assert g_vec.shape == (2,) and g_vec.dtype == np.float64
    np.testing.assert_allclose(g_vec, [3.0, 12.0])
    g_mat = df(np.ones((2, 3), dtype=np.float32))
    assert g_mat.shape == (2, 3) and g_mat.dtype == np.float32
    np.testing.assert_allclose(g_mat, 3.0)
    assert df(2.0) == pytest.approx(12.0, **EXACT)
    np.testing.assert_allclose(df(np.array([1.0, 2.0])), [3.0, 12.0])


def test_cached_gradient_follows_runtime_values():
    gx = ds.grad(int_arg, wrt=0)(2.0, 3)
    assert gx == pytest.approx(12.0, **EXACT)
    g_both = ds.grad(bool_arg, wrt=0)(2.0, True)
    g_other = ds.grad(bool_arg, wrt=0)(2.0, False)
    assert g_both == pytest.approx(2.0, **EXACT) and g_other == pytest.approx(1.0, **EXACT)


def test_redefined_function_is_retransformed():
    def f(x):
        return x * x

    assert ds.grad(f)(3.0) == pytest.approx(6.0, **EXACT)

    def f(x):  # noqa: F811 - same name, new body
        return x * x * x

    assert ds.grad(f)(3.0) == pytest.approx(27.0, **EXACT)


def test_redefined_source_string_is_retransformed():
    assert ds.grad("def F(a):\n    return a * a\n")(3.0) == pytest.approx(6.0, **EXACT)
    assert ds.grad("def F(a):\n    return a * a * a\n")(3.0) == pytest.approx(27.0, **EXACT)


def test_reloaded_module_is_retransformed(tmp_path):
    name = "diffsrc_reload_probe_" + uuid.uuid4().hex[:12]
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent("""
        def f(x):
            return x * x
    """))
    sys.path.insert(0, str(tmp_path))
    try:
        mod = importlib.import_module(name)
        assert ds.grad(mod.f)(3.0) == pytest.approx(6.0, **EXACT)
        path.write_text(textwrap.dedent("""
            def f(x):
                y = x * x * x
                return y + 0.0
        """))
        st = os.stat(path)
        os.utime(path, (st.st_atime + 10, st.st_mtime + 10))
        importlib.invalidate_caches()
        mod = importlib.reload(mod)
        assert mod.f(3.0) == 27.0
        assert ds.grad(mod.f)(3.0) == pytest.approx(27.0, **EXACT)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)
