"""Core transformer acceptance tests: calls.

User helper functions (module level and in another module), recursion with a
base case, mutual recursion, closures and nested defs, lambdas, methods,
decorated functions, and name resolution (`from numpy import tanh`,
`import numpy as xp`, `import math as pymath`, `from math import sin, cos`).
"""
import functools
import math
import math as pymath
from math import cos, sin

import numpy as np
import numpy as xp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy import tanh

import diffsrc as ds

try:
    import gradcheck
    from gradcheck import arrays, check_grad, floats, nonzero_floats
except ImportError:  # tests/ turned into a package
    from tests import gradcheck
    from tests.gradcheck import arrays, check_grad, floats, nonzero_floats

HYP = settings(max_examples=25, deadline=None)
EXACT = dict(rel=1e-12, abs=1e-12)

# ---------------------------------------------------------------------------
# module-level helpers
# ---------------------------------------------------------------------------


def sq(x):
    return x * x


def uses_sq(x):
    return sq(x) + sq(2.0 * x) + sq(sq(x))


def helper_two_returns(a, b):
    return a * b, a + b


def uses_tuple_helper(x, y):
    p, s = helper_two_returns(x, y)
    q = helper_two_returns(p, s)[0]
    return q + s


def helper_kw(x, scale=2.0, shift=0.0):
    return scale * x * x + shift


def uses_kwargs(x, y):
    return helper_kw(x) + helper_kw(x, scale=y) + helper_kw(y, shift=x, scale=3.0)


def level3(x):
    return math.sin(x) * x


def level2(x):
    return level3(x) + level3(2.0 * x)


def level1(x):
    return level2(x) * level2(x + 1.0)


def helper_array(W, x):
    return np.tanh(W @ x)


def uses_array_helper(W, x):
    h = helper_array(W, x)
    return np.sum(helper_array(W, h) ** 2)


def helper_with_branch(x):
    if x > 0:
        return x * x
    return -x


def helper_with_loop(x, n):
    for _ in range(n):
        x = x * 0.5 + math.cos(x)
    return x


def uses_control_helpers(x, n):
    return helper_with_branch(x) + helper_with_loop(x, n) * helper_with_branch(x - 1.0)


def uses_other_module(x, w):
    return gradcheck.poly_helper(x, 2.0) + gradcheck.scaled_tanh_sum(w, x)


def test_helper_closed_form():
    # x^2 + 4x^2 + x^4 -> 10x + 4x^3
    assert ds.grad(uses_sq)(1.5) == pytest.approx(15.0 + 4 * 1.5**3, **EXACT)


@pytest.mark.parametrize(
    "fn, args, wrt",
    [
        (uses_sq, (0.7,), 0),
        (uses_tuple_helper, (0.7, -1.3), (0, 1)),
        (uses_kwargs, (0.7, -1.3), (0, 1)),
        (level1, (0.7,), 0),
        (uses_control_helpers, (0.7, 3), 0),
        (uses_control_helpers, (-0.7, 0), 0),
        (uses_other_module, (0.7, np.array([0.3, -1.0, 2.0])), (0, 1)),
    ],
    ids=["sq", "tuple_helper", "kwargs", "three_levels", "control+", "control-", "other_module"],
)
def test_helpers_match_fd(fn, args, wrt):
    check_grad(fn, args, wrt=wrt)


@HYP
@given(data=st.data())
def test_array_helper_matches_fd(data):
    n = data.draw(st.integers(1, 4))
    W = data.draw(arrays((n, n), -1, 1))
    x = data.draw(arrays((n,), -1, 1))
    check_grad(uses_array_helper, (W, x), wrt=(0, 1))


def test_grad_of_helper_from_other_module_directly():
    g = ds.grad(gradcheck.poly_helper, wrt=(0, 1))(2.0, 3.0)
    assert g[0] == pytest.approx(3 * 3.0 * 4.0 + 1.5, **EXACT)
    assert g[1] == pytest.approx(8.0, **EXACT)


# ---------------------------------------------------------------------------
# recursion
# ---------------------------------------------------------------------------


def rpow(x, n):
    if n == 0:
        return 1.0
    return x * rpow(x, n - 1)


def fast_pow(x, n):
    if n == 0:
        return 1.0
    half = fast_pow(x, n // 2)
    if n % 2 == 0:
        return half * half
    return half * half * x


def rsum_squares(xs):
    if len(xs) == 0:
        return 0.0
    return xs[0] ** 2 + rsum_squares(xs[1:])


def tree_eval(x, depth):
    if depth == 0:
        return math.sin(x)
    return tree_eval(x * 0.5, depth - 1) + tree_eval(x + 0.1, depth - 1) * 0.5


def ev(x, n):
    if n == 0:
        return x
    return od(math.sin(x) + x, n - 1)


def od(x, n):
    if n == 0:
        return x * x
    return ev(x * 0.7, n - 1)


@pytest.mark.parametrize("n", [0, 1, 2, 5, 8])
def test_recursive_power_closed_form(n):
    expected = n * 1.3 ** (n - 1) if n else 0.0
    assert ds.grad(rpow)(1.3, n) == pytest.approx(expected, **EXACT)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 10])
def test_fast_power_recursion(n):
    expected = n * 1.1 ** (n - 1) if n else 0.0
    assert ds.grad(fast_pow)(1.1, n) == pytest.approx(expected, rel=1e-12, abs=1e-12)


@HYP
@given(xs=st.lists(floats(), min_size=0, max_size=5))
def test_recursion_over_list_slices(xs):
    g = ds.grad(rsum_squares)(xs)
    assert isinstance(g, list) and len(g) == len(xs)
    assert g == [pytest.approx(2 * v, **EXACT) for v in xs]


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_tree_recursion(depth):
    check_grad(tree_eval, (0.8, depth), wrt=0)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 6])
def test_mutual_recursion(n):
    check_grad(ev, (0.4, n), wrt=0)
    check_grad(od, (0.4, n), wrt=0)


# ---------------------------------------------------------------------------
# closures, nested defs, lambdas
# ---------------------------------------------------------------------------


def make_scaled(k):
    def f(x):
        return k * x * x

    return f


def make_array_closure(w):
    def f(x):
        return np.sum(np.tanh(w * x))

    return f


def make_composed(g):
    def f(x):
        return g(x) * 2.0

    return f


def nested_captures_active(x):
    def inner(y):
        return y * x

    return inner(x) + inner(1.0)


def nested_two_levels(x, y):
    def outer(a):
        def inner(b):
            return a * b + x

        return inner(a * y)

    return outer(x) + outer(2.0)


def lambda_inside(x):
    g = lambda t: t * t * x  # noqa: E731
    return g(x) + g(2.0)


def lambda_higher_order(xs):
    f = lambda v: math.exp(v) * 0.5  # noqa: E731
    return sum([f(v) for v in xs])


cube = lambda x: x**3  # noqa: E731


def apply_twice(fn, x):
    return fn(fn(x))


def test_closure_over_float():
    assert ds.grad(make_scaled(3.0))(2.0) == pytest.approx(12.0, **EXACT)


def test_closures_from_same_code_with_different_cells():
    f2, f5 = make_scaled(2.0), make_scaled(5.0)
    assert ds.grad(f2)(1.0) == pytest.approx(4.0, **EXACT)
    assert ds.grad(f5)(1.0) == pytest.approx(10.0, **EXACT)
    assert ds.grad(f2)(1.0) == pytest.approx(4.0, **EXACT)


def test_closure_over_array():
    w = np.array([0.5, -1.0, 2.0])
    f = make_array_closure(w)
    g = ds.grad(f)(0.3)
    assert g == pytest.approx(float(np.sum(w * (1 - np.tanh(w * 0.3) ** 2))), **EXACT)
    x = np.array([0.1, 0.2, 0.3])
    check_grad(f, (x,), wrt=0)


def test_closure_over_function():
    f = make_composed(sq)
    assert ds.grad(f)(3.0) == pytest.approx(12.0, **EXACT)
    f = make_composed(math.sin)
    assert ds.grad(f)(0.3) == pytest.approx(2 * math.cos(0.3), **EXACT)


def test_closure_cell_rebinding_is_seen():
    k = 1.0

    def f(x):
        return k * x

    assert ds.grad(f)(2.0) == pytest.approx(1.0, **EXACT)
    k = 4.0  # noqa: F841 - the cell changes; the gradient must follow
    assert ds.grad(f)(2.0) == pytest.approx(4.0, **EXACT)


def test_nested_def_capturing_differentiated_variable():
    # x*x + x -> 2x + 1
    assert ds.grad(nested_captures_active)(3.0) == pytest.approx(7.0, **EXACT)


def test_nested_defs_two_levels():
    check_grad(nested_two_levels, (0.7, -1.2), wrt=(0, 1))


def test_nested_def_inside_test_function():
    def local(x, y):
        def helper(t):
            return t * y

        return helper(x) ** 2

    gx, gy = ds.grad(local, wrt=(0, 1))(2.0, 3.0)
    assert gx == pytest.approx(2 * 6.0 * 3.0, **EXACT)
    assert gy == pytest.approx(2 * 6.0 * 2.0, **EXACT)


def test_lambda_inside_function():
    # x^3 + 4x -> 3x^2 + 4
    assert ds.grad(lambda_inside)(2.0) == pytest.approx(16.0, **EXACT)


def test_lambda_called_in_list_comprehension():
    xs = [0.1, -0.3, 0.7]
    g = ds.grad(lambda_higher_order)(xs)
    assert g == [pytest.approx(0.5 * math.exp(v), **EXACT) for v in xs]


def test_grad_of_module_level_lambda():
    assert ds.grad(cube)(2.0) == pytest.approx(12.0, **EXACT)


def test_grad_of_lambda_on_its_own_line():
    f = lambda a, b: a * b + a ** 2  # noqa: E731
    ga, gb = ds.grad(f, wrt=(0, 1))(3.0, 4.0)
    assert ga == pytest.approx(10.0, **EXACT)
    assert gb == pytest.approx(3.0, **EXACT)


def test_grad_of_inline_lambda_argument():
    g = ds.grad(lambda x: math.sin(x) * x)(0.5)
    assert g == pytest.approx(math.cos(0.5) * 0.5 + math.sin(0.5), **EXACT)


@pytest.mark.parametrize("fn, x, expected", [
    (sq, 1.5, 4 * 1.5**3),                                      # (x^2)^2
    (math.sin, 0.5, math.cos(math.sin(0.5)) * math.cos(0.5)),   # builtin with a rule
    (cube, 1.1, 9 * 1.1**8),                                    # (x^3)^3
])
def test_function_passed_as_argument_correct_or_rejected(fn, x, expected):
    # Higher-order use: the function argument has no adjoint, x has one.  Either
    # the right gradient or a diffsrc error - never a wrong number.
    try:
        g = ds.grad(apply_twice, wrt=1)(fn, x)
    except ds.DiffsrcError:
        return
    assert g == pytest.approx(expected, **EXACT)


# ---------------------------------------------------------------------------
# methods
# ---------------------------------------------------------------------------


class Quadratic:
    def __init__(self, a, b):
        self.a = a
        self.b = b

    def value(self, x):
        return self.a * x * x + self.b * x

    def twice(self, x):
        return self.value(x) * 2.0 + self.helper(x)

    @staticmethod
    def helper(x):
        return math.sin(x)

    @classmethod
    def unit(cls, x):
        return cls(1.0, 0.0).value(x)


def uses_object(x, q):
    return q.value(x) + q.twice(x * 0.5)


def uses_classmethod(x):
    return Quadratic.unit(x) + Quadratic.helper(x)


class Layer:
    def __init__(self, W, b):
        self.W = W
        self.b = b

    def __call__(self, x):
        return np.tanh(x @ self.W + self.b)


def uses_callable_object(x, layer):
    return np.sum(layer(x) ** 2)


def test_bound_method_wrt_first_explicit_argument():
    q = Quadratic(3.0, 2.0)
    assert ds.grad(q.value)(2.0) == pytest.approx(14.0, **EXACT)
    check_grad(q.twice, (0.7,), wrt=0)


def test_method_calls_inside_function():
    q = Quadratic(3.0, 2.0)
    check_grad(uses_object, (0.7, q), wrt=0)


def test_static_and_class_methods():
    # x^2 + sin x
    assert ds.grad(uses_classmethod)(0.4) == pytest.approx(0.8 + math.cos(0.4), **EXACT)


def test_callable_object():
    rng = np.random.default_rng(3)
    layer = Layer(rng.normal(size=(3, 2)), rng.normal(size=(2,)))
    x = rng.normal(size=(4, 3))
    check_grad(uses_callable_object, (x, layer), wrt=0)


# ---------------------------------------------------------------------------
# decorated functions
# ---------------------------------------------------------------------------

REGISTRY = []


def register(fn):
    REGISTRY.append(fn.__name__)
    return fn


def times_two(fn):
    @functools.wraps(fn)
    def wrapper(x):
        return 2.0 * fn(x)

    return wrapper


def varargs_shift(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs) + args[0] * 10.0

    return wrapper


@register
def registered(x):
    return x**3


@times_two
def doubled(x):
    return x**3


@varargs_shift
def shifted(x):
    return x**3


def calls_decorated(x):
    return registered(x) + doubled(x)


def test_identity_decorator():
    assert ds.grad(registered)(2.0) == pytest.approx(12.0, **EXACT)


def test_wrapping_decorator_is_differentiated_not_skipped():
    # doubled(x) = 2 x^3: reading only the inner source would give 3x^2 (wrong)
    assert ds.grad(doubled)(2.0) == pytest.approx(24.0, **EXACT)


def test_decorated_helper_called_inside_function():
    assert ds.grad(calls_decorated)(2.0) == pytest.approx(12.0 + 24.0, **EXACT)


def test_varargs_wrapper_is_correct_or_rejected():
    # *args/**kwargs wrappers: a correct gradient (3x^2 + 10) or a diffsrc error,
    # never the gradient of the undecorated function.
    try:
        g = ds.grad(shifted)(2.0)
    except ds.DiffsrcError:
        return
    assert g == pytest.approx(22.0, **EXACT)


def test_grad_decorator_stacked_on_user_decorator():
    @ds.grad
    @register
    def h(x):
        return x * x * 5.0

    assert h(1.0) == pytest.approx(10.0, **EXACT)


# ---------------------------------------------------------------------------
# name resolution: aliases and from-imports
# ---------------------------------------------------------------------------


def from_numpy_tanh(x):
    return np.sum(tanh(x) * 2.0)


def numpy_alias(x):
    return xp.sum(xp.exp(x) * xp.sin(x))


def math_alias(x):
    return pymath.exp(x) + pymath.sqrt(x)


def from_math(x):
    return sin(x) * cos(x)


def mixed_names(W, x):
    return xp.sum(tanh(W @ x)) + pymath.cos(float(xp.sum(x))) * 0.0 + sin(1.0)


def shadowed_np(x):
    np = xp  # a local named like a module
    return np.sum(np.cos(x))


def test_from_numpy_import_tanh():
    x = np.array([0.2, -0.5, 1.0])
    np.testing.assert_allclose(ds.grad(from_numpy_tanh)(x), 2 * (1 - np.tanh(x) ** 2),
                               rtol=1e-12)


def test_numpy_under_another_alias():
    x = np.array([0.2, -0.5, 1.0])
    np.testing.assert_allclose(ds.grad(numpy_alias)(x),
                               np.exp(x) * (np.sin(x) + np.cos(x)), rtol=1e-12)


def test_math_under_another_alias():
    assert ds.grad(math_alias)(2.0) == pytest.approx(math.exp(2.0) + 0.25 / math.sqrt(0.5),
                                                      **EXACT)


def test_from_math_import():
    assert ds.grad(from_math)(0.3) == pytest.approx(math.cos(0.6), **EXACT)


def test_mixed_aliases():
    W = np.array([[0.5, -0.2], [0.1, 0.3]])
    x = np.array([1.0, -2.0])
    check_grad(mixed_names, (W, x), wrt=(0, 1))


def test_local_variable_shadowing_module_name():
    x = np.array([0.2, -0.5, 1.0])
    np.testing.assert_allclose(ds.grad(shadowed_np)(x), -np.sin(x), rtol=1e-12)


@HYP
@given(x=floats(0.2, 3.0))
def test_aliases_match_fd(x):
    check_grad(math_alias, (x,), wrt=0)
    check_grad(from_math, (x,), wrt=0)


@HYP
@given(x=arrays())
def test_numpy_aliases_match_fd(x):
    check_grad(from_numpy_tanh, (x,), wrt=0)
    check_grad(numpy_alias, (x,), wrt=0)


@HYP
@given(x=nonzero_floats(0.3, 2.0), n=st.integers(0, 6))
def test_recursive_power_matches_fd(x, n):
    check_grad(rpow, (x, n), wrt=0)
