"""Peer-style acceptance tests for Python language features under ds.grad.

Modelled on the kinds of functions other AD projects' suites feed their `grad`:
closures (over floats, arrays, and functions), lambdas (assigned, inline,
returned by a factory), default and keyword arguments, *args, module globals,
classes and methods, recursion, helper calls, isinstance checks, asserts,
early return, break/continue in for and while loops, nested loops, generic
wrappers that forward *args (as autograd's combo checks do), functools.partial,
decorators, int parameters that are never differentiated, functions whose
gradient is zero or whose output is constant, size-1 array outputs, and
non-scalar outputs being refused.  Gradients are compared with central finite
differences in float64.
"""
import functools
import math

import numpy as np
import pytest
from hypothesis import given, settings

import diffsrc as ds

try:
    from gradcheck import arrays, check_grad, floats
except ImportError:  # tests/ turned into a package
    from tests.gradcheck import arrays, check_grad, floats

HYP = settings(max_examples=10, deadline=None)
R = np.random.default_rng(5)
SCALE = 1.7
OFFSETS = np.array([0.5, -0.25, 1.0])


# ---------------------------------------------------------------------------
# closures and lambdas
# ---------------------------------------------------------------------------


def make_scaler(scale):
    def scaled(x):
        return np.sum(np.sin(x) * scale)
    return scaled


def make_array_closure(w):
    def inner(x):
        return np.sum(np.tanh(w * x) + w)
    return inner


def make_fn_closure(fn):
    def wrapper(x):
        return np.sum(fn(x) ** 2)
    return wrapper


def closure_inside(x):
    k = 3.0

    def inner(y):
        return y * k * x
    return inner(x) + inner(2.0)


def assigned_lambda(x):
    sq = lambda y: y * y      # noqa: E731
    return sq(x) + sq(2.0 * x)


def inline_lambda(x):
    return (lambda y: y * y * y)(x)


def lambda_capturing_argument(x):
    f = lambda y: x * y       # noqa: E731
    return f(x) + f(3.0)


def lambda_map(xs):
    return sum(map(lambda v: v * v, xs))


def higher_order_apply(x):
    def twice(fn, v):
        return fn(fn(v))
    return twice(np.sin, x) + twice(lambda u: u * 2.0, x)


def test_closures():
    check_grad(make_scaler(2.5), (R.standard_normal(3),), 0)
    check_grad(make_array_closure(R.standard_normal(3)), (R.standard_normal(3),), 0)
    check_grad(make_fn_closure(np.tanh), (R.standard_normal(3),), 0)
    check_grad(make_fn_closure(np.exp), (R.standard_normal(3),), 0)
    check_grad(closure_inside, (0.7,), 0)


def test_closure_cache_sees_new_cell_values():
    g1 = ds.grad(make_scaler(2.0))(np.zeros(2))
    g2 = ds.grad(make_scaler(5.0))(np.zeros(2))
    assert np.allclose(g1, 2.0) and np.allclose(g2, 5.0)


def make_static_closures(offset, axis, idx, cond, reps):
    def f_trace(x):
        return np.sum(np.sin(np.trace(x, offset=offset)))

    def f_sum(x):
        return np.sum(np.sin(np.sum(x, axis=axis)))

    def f_index(x):
        return np.sum(np.sin(x[idx]))

    def f_where(x):
        return np.sum(np.sin(np.where(cond, x, 2.0 * x)))

    def f_repeat(x):
        return np.sum(np.sin(np.repeat(x, reps, axis=axis)))
    return [f_trace, f_sum, f_index, f_where, f_repeat]


@pytest.mark.parametrize("params", [
    (1, 0, [0, 2, 2], R.standard_normal((4, 5)) > 0, 2),
    (-2, 1, (1, slice(None)), R.standard_normal((4, 5)) > 0, 0),
], ids=["first", "second"])
def test_closures_over_static_parameters(params):
    # the same code closed over different ints/lists/masks: each gets its own derivative
    x = R.standard_normal((4, 5))
    for f in make_static_closures(*params):
        check_grad(f, (x,), 0)


@pytest.mark.parametrize("f", [assigned_lambda, inline_lambda, lambda_capturing_argument,
                               higher_order_apply], ids=lambda f: f.__name__)
def test_lambdas(f):
    check_grad(f, (0.7,), 0)


def test_lambda_map():
    check_grad(lambda_map, ([0.5, -1.0, 2.0],), 0)


def map_over_arrays(x, y):
    c = np.sum(y)
    return np.sum(np.array(list(map(lambda a, b: np.sin(a) * b * c, x, y))))


def test_map_of_two_arrays_is_a_loop():
    check_grad(map_over_arrays, (R.standard_normal(4), R.standard_normal(4)), (0, 1))


def test_grad_of_lambda_directly():
    f = lambda x, y: np.sum(x * np.sin(y))      # noqa: E731
    check_grad(f, (R.standard_normal(3), R.standard_normal(3)), (0, 1))


# ---------------------------------------------------------------------------
# default args, keyword args, *args, globals
# ---------------------------------------------------------------------------


def with_defaults(x, p=2.0, shift=0.5):
    return (x + shift) ** p


def calls_with_keywords(x, y):
    return with_defaults(x) + with_defaults(x, p=3.0) + with_defaults(y, shift=x, p=1.5)


def star_args_sum(*xs):
    return xs[0] * xs[1] + np.sin(xs[-1])


def star_args_forwarder(x, y):
    return star_args_sum(x, y, x * y)


def kwonly(x, *, scale=2.0):
    return scale * x * x


def uses_kwonly(x):
    return kwonly(x) + kwonly(x, scale=x)


def uses_globals(x):
    return np.sum(x * SCALE + OFFSETS) * math.pi


def kwargs_helper(x, **kw):
    return x * kw["a"] + kw.get("b", 1.0)


def uses_kwargs_helper(x):
    return kwargs_helper(x, a=x, b=2.0) * kwargs_helper(x, a=3.0)


def test_default_and_keyword_args():
    check_grad(with_defaults, (0.7,), 0)
    check_grad(with_defaults, (0.7, 3.0), (0, 1))
    check_grad(calls_with_keywords, (0.7, 1.2), (0, 1))
    check_grad(uses_kwonly, (0.7,), 0)
    check_grad(uses_kwargs_helper, (0.7,), 0)


def test_grad_called_with_keyword_arguments():
    g = ds.grad(with_defaults, wrt="shift")(0.7, shift=0.2, p=3.0)
    assert g == pytest.approx(3.0 * 0.9 ** 2, rel=1e-12)


def test_star_args():
    check_grad(star_args_forwarder, (0.7, -1.2), (0, 1))
    g = ds.grad(star_args_sum, wrt=(0, 2))(0.7, -1.2, 0.3)
    assert g == pytest.approx((-1.2, math.cos(0.3)))


def test_globals():
    check_grad(uses_globals, (R.standard_normal(3),), 0)


# ---------------------------------------------------------------------------
# generic forwarding wrappers (the way autograd's combo checks call numpy)
# ---------------------------------------------------------------------------


def reduce_to_scalar(v):
    return np.sum(np.sin(v))


def make_forwarder(fun, fixed_args, argnums):
    def scalar_fun(*new_args):
        full_args = list(fixed_args)
        for i, argnum in enumerate(argnums):
            full_args[argnum] = new_args[i]
        return reduce_to_scalar(fun(*full_args))
    return scalar_fun


def make_forwarder_kwargs(fun, fixed_args, kwargs, argnums):
    def scalar_fun(*new_args):
        full_args = list(fixed_args)
        for i, argnum in enumerate(argnums):
            full_args[argnum] = new_args[i]
        return reduce_to_scalar(fun(*full_args, **kwargs))
    return scalar_fun


@pytest.mark.parametrize("fun,args,argnums", [
    (np.dot, (R.standard_normal((2, 3)), R.standard_normal(3)), (0, 1)),
    (np.matmul, (R.standard_normal((2, 3)), R.standard_normal((3, 2))), (1,)),
    (np.einsum, ("ij,jk->ik", R.standard_normal((2, 3)), R.standard_normal((3, 2))), (1, 2)),
    (np.tanh, (R.standard_normal(4),), (0,)),
    (np.maximum, (R.standard_normal(3), R.standard_normal(3)), (0, 1)),
    (np.concatenate, ((R.standard_normal(2), R.standard_normal(3)),), (0,)),
], ids=["dot", "matmul", "einsum", "tanh", "maximum", "concatenate_tuple_arg"])
def test_forwarding_wrapper(fun, args, argnums):
    f = make_forwarder(fun, args, argnums)
    check_grad(f, tuple(args[i] for i in argnums), tuple(range(len(argnums))))


@pytest.mark.parametrize("fun,args,kwargs", [
    (np.sum, (R.standard_normal((2, 3)),), {"axis": 0, "keepdims": True}),
    (np.transpose, (R.standard_normal((2, 3, 4)),), {"axes": (2, 0, 1)}),
    (np.tensordot, (R.standard_normal((2, 3)), R.standard_normal((3, 2))), {"axes": 1}),
], ids=["sum", "transpose", "tensordot"])
def test_forwarding_wrapper_with_kwargs(fun, args, kwargs):
    argnums = tuple(range(len(args)))
    f = make_forwarder_kwargs(fun, args, kwargs, argnums)
    check_grad(f, args, argnums)


def partial_base(x, y, scale=1.0):
    return np.sum(np.sin(x) * y) * scale


def test_partial():
    part = functools.partial(partial_base, y=R.standard_normal(3), scale=2.0)
    x = R.standard_normal(3)
    g = ds.grad(part)(x)
    assert np.allclose(g, np.cos(x) * part.keywords["y"] * 2.0)


def test_decorated():
    def base(x, y, scale=1.0):
        return np.sum(np.sin(x) * y) * scale

    x = R.standard_normal(3)

    def logged(fn):
        @functools.wraps(fn)
        def inner(*a, **k):
            return fn(*a, **k)
        return inner

    decorated = logged(base)
    check_grad(decorated, (x, R.standard_normal(3)), (0, 1))


# ---------------------------------------------------------------------------
# classes
# ---------------------------------------------------------------------------


class Quadratic:
    def __init__(self, a, b):
        self.a = a
        self.b = b

    def value(self, x):
        return np.sum(self.a * x * x + self.b * x)

    def __call__(self, x):
        return self.value(x) + np.sum(np.sin(x))


class Model:
    def __init__(self, W):
        self.W = W

    def loss(self, x):
        return np.sum(np.tanh(self.W @ x) ** 2)


def uses_object(x):
    q = Quadratic(2.0, -1.0)
    return q.value(x) + q(x)


def uses_constructed_from_arg(x):
    q = Quadratic(x, 1.0)
    return q.value(x)


def test_classes():
    check_grad(uses_object, (R.standard_normal(3),), 0)
    check_grad(uses_constructed_from_arg, (0.7,), 0)
    q = Quadratic(R.standard_normal(3), 0.5)
    check_grad(q.value, (R.standard_normal(3),), 0)
    m = Model(R.standard_normal((2, 3)))
    x = R.standard_normal(3)
    g = ds.grad(m.loss)(x)
    expected = m.W.T @ (2 * np.tanh(m.W @ x) * (1 - np.tanh(m.W @ x) ** 2))
    assert np.allclose(g, expected)


def test_callable_instance():
    q = Quadratic(R.standard_normal(3), 0.5)
    check_grad(q, (R.standard_normal(3),), 0)


def model_loss(model, x):
    return model.loss(x)


def test_grad_wrt_object_parameters():
    m = Model(R.standard_normal((2, 3)))
    x = R.standard_normal(3)
    g = ds.grad(model_loss, wrt=1)(m, x)
    assert g.shape == (3,)


# ---------------------------------------------------------------------------
# recursion
# ---------------------------------------------------------------------------


def power_rec(x, n):
    if n == 0:
        return 1.0
    return x * power_rec(x, n - 1)


def fib_like(x, n):
    if n <= 1:
        return x
    return fib_like(x, n - 1) + 0.5 * fib_like(x * x, n - 2)


def nested_recursion_closure(x):
    def rec(k, acc):
        if k == 0:
            return acc
        return rec(k - 1, acc + x * k)
    return rec(3, 0.0)


def test_recursion():
    assert ds.grad(power_rec)(1.3, 4) == pytest.approx(4 * 1.3 ** 3, rel=1e-12)
    check_grad(fib_like, (0.7, 4), 0)


def test_nested_recursive_def():
    check_grad(nested_recursion_closure, (0.7,), 0)


def nested_recursion_on_argument(x, n):
    def rec(k, acc):
        if k == 0:
            return acc
        return rec(k - 1, acc * x)
    return rec(n, 1.0)


def test_nested_recursion_on_a_run_time_depth_is_a_clear_error():
    with pytest.raises(ds.errors.TransformError, match=r"test_peer_style_python\.py:\d+: "
                       r"nested function rec calls itself"):
        ds.grad(nested_recursion_on_argument)(0.7, 3)


# ---------------------------------------------------------------------------
# control flow: early return, break/continue, nested loops, while with break
# ---------------------------------------------------------------------------


def early_return(x):
    if x > 1.0:
        return x * x
    y = np.sin(x)
    if y < 0:
        return -y * 3.0
    return y


def return_in_loop(x):
    s = 0.0
    for i in range(10):
        s = s + x * i
        if s > 4.0:
            return s * x
    return s


def break_loop(x):
    r = 0.0
    for i in range(10):
        r = r + x
        if r > 5:
            break
    return r * r


def continue_loop(x):
    r = 0.0
    for i in range(6):
        if i % 2 == 0:
            continue
        r = r + x * i
    return r


def while_with_break(x):
    y = x
    while True:
        y = y * 1.5
        if y > 10.0:
            break
    return y


def nested_loops_data_dependent(x):
    s = x
    for i in range(3):
        j = 0
        while j < i + 1:
            s = np.sin(s) + x
            j += 1
    return s


def loop_over_array_rows(X):
    total = 0.0
    for row in X:
        total = total + np.sum(row ** 2) * np.max(row)
    return total


def loop_else(x):
    for i in range(3):
        if x * i > 100.0:
            break
    else:
        x = x * 2.0
    return x * x


@pytest.mark.parametrize("x", [-0.8, 0.45, 1.3, 2.4])
@pytest.mark.parametrize("f", [early_return, return_in_loop, break_loop, continue_loop,
                               nested_loops_data_dependent, loop_else],
                         ids=lambda f: f.__name__)
def test_control_flow(f, x):
    check_grad(f, (x,), 0)


@pytest.mark.parametrize("x", [0.45, 1.3, 2.4])
def test_while_true_with_break(x):
    check_grad(while_with_break, (x,), 0)


def test_loop_over_array_rows():
    check_grad(loop_over_array_rows, (R.standard_normal((3, 4)),), 0)


# ---------------------------------------------------------------------------
# builtins and checks that carry no gradient
# ---------------------------------------------------------------------------


def isinstance_checks(x, flag):
    assert isinstance(x, (float, np.ndarray))
    if isinstance(flag, bool) and flag:
        return np.sum(x * 2.0)
    return np.sum(x * 3.0)


def builtins_mix(x, y):
    return (max(x, y) * 2.0 + min(x, y) + abs(x - 2.0 * y) + float(x) * round(1.6)
            + sum([x, y, 1.0]) + len([x, y]) + int(3.7))


def builtin_pow(x, y):
    return pow(x, 2) + pow(y, x) + pow(x, 3.0) * y


def builtin_max_of_list(xs):
    return max(xs) * min(xs) + max(xs[0], xs[1], xs[2])


def fstring_and_assert(x):
    assert x > 0, f"x must be positive, got {x}"
    label = f"value={x:.3f}"
    return x * x + len(label)


def test_builtins():
    for flag in (True, False):
        check_grad(isinstance_checks, (R.standard_normal(3), flag), 0)
        check_grad(isinstance_checks, (0.6, flag), 0)
    check_grad(builtins_mix, (0.7, -1.3), (0, 1))
    check_grad(builtin_max_of_list, ([0.7, -1.3, 2.2],), 0)


def assert_with_plain_message(x):
    assert x > 0, "x must be positive"
    label = f"value={x:.3f}"
    return x * x + len(label)


def test_assert_plain_message_and_fstring_value():
    check_grad(assert_with_plain_message, (0.7,), 0)


def test_assert_with_fstring_message():
    check_grad(fstring_and_assert, (0.7,), 0)


def test_builtin_pow():
    check_grad(builtin_pow, (0.7, 1.3), (0, 1))


# ---------------------------------------------------------------------------
# int parameters, zero gradients, constants, size-1 outputs, non-scalar outputs
# ---------------------------------------------------------------------------


def int_as_exponent_and_index(x, n, k):
    return np.sum(x ** n) + x[k] * n


def zero_gradient_paths(x):
    y = np.floor(x) + np.sign(x) + (x > 0) * 1.0 + np.round(x)
    return np.sum(y) + np.sum(np.zeros_like(x) * 3.0)


def constant_float(x):
    return 2.5


def argument_unused(x, y):
    return np.sum(y ** 2)


def stop_gradient_like(x):
    c = float(np.sum(x))          # float() of an array value: still differentiable here
    return c * 2.0


def test_int_parameters():
    x = R.standard_normal(4)
    check_grad(int_as_exponent_and_index, (x, 3, 2), 0)
    with pytest.raises(ds.errors.DiffsrcError):
        ds.grad(int_as_exponent_and_index, wrt=1)(x, 3, 2)


def test_zero_and_constant_gradients():
    x = np.array([0.3, -1.2, 2.7])
    g = ds.grad(zero_gradient_paths)(x)
    assert g.shape == x.shape and np.all(g == 0)
    assert ds.grad(constant_float)(0.3) == 0.0
    g = ds.grad(constant_float)(x)
    assert isinstance(g, np.ndarray) and g.shape == (3,) and np.all(g == 0)
    g = ds.grad(argument_unused)(x, x)
    assert np.all(g == 0) and g.shape == x.shape
    check_grad(stop_gradient_like, (x,), 0)


def singleton_keepdims(x):
    return np.sum(np.sin(x), keepdims=True)


def singleton_axis0(x):
    return np.sum(np.sin(x), axis=0)


@pytest.mark.parametrize("f,shape", [(singleton_keepdims, (3, 3)), (singleton_axis0, (3, 1))],
                         ids=["keepdims", "axis0"])
def test_size_one_array_output(f, shape):
    x = R.standard_normal(shape)
    g = ds.grad(f)(x)
    assert np.allclose(g, np.cos(x))


def test_non_scalar_output_refused():
    with pytest.raises(ds.errors.DiffsrcError):
        ds.grad(lambda x: x * 2)(np.zeros(2))


def test_value_and_grad_and_pullback_agree():
    f = lambda x: np.sum(np.sin(x) ** 2)     # noqa: E731
    x = R.standard_normal(5)
    v, g = ds.value_and_grad(f)(x)
    assert v == pytest.approx(f(x)) and np.allclose(g, ds.grad(f)(x))
    y, back = ds.pullback(f, x)
    (gx,) = back(1.0)
    assert np.allclose(gx, g)
    assert "def" in ds.source(ds.grad(f))


# ---------------------------------------------------------------------------
# nested differentiation
# ---------------------------------------------------------------------------


def inner_grad_in_outer(x):
    inner_fun = lambda y: x * y       # noqa: E731
    return x * ds.grad(inner_fun)(2.0)


def test_grad_inside_differentiated_function():
    assert ds.grad(inner_grad_in_outer)(1.5) == pytest.approx(3.0)


def inner_grad_of_nested_def(x, w):
    params = {"w": w}

    def loss(v, scale=2.0):
        return scale * np.sum(np.sin(params["w"] * v) * x[0])
    g = ds.grad(loss, wrt="v")(x)
    value, g2 = ds.value_and_grad(lambda t: np.sum(w * t ** 2))(x)
    return np.sum(g * g) + value * np.sum(g2)


def test_grad_of_a_nested_def_capturing_arguments():
    check_grad(inner_grad_of_nested_def, (R.standard_normal(3), R.standard_normal(3)), (0, 1))


def inner_grad_using_a_lambda(x):
    h = lambda y: y * y       # noqa: E731
    return ds.grad(lambda y: h(y) * x)(1.0)


def test_grad_of_a_lambda_calling_a_lambda_is_a_clear_error():
    with pytest.raises(ds.errors.UnsupportedSyntaxError,
                       match=r"test_peer_style_python\.py:\d+: ds.grad of function <lambda>"):
        ds.grad(inner_grad_using_a_lambda)(1.0)


def test_hessian_vector_product_by_grad_of_grad():
    v = R.standard_normal(4)

    def fun(x):
        return np.sin(np.dot(x, v))
    dfun = ds.grad(fun)

    def dir_deriv(x, u):
        return np.dot(u, dfun(x))
    x, u = R.standard_normal(4), R.standard_normal(4)
    hvp = ds.grad(dir_deriv)(x, u)
    expected = -np.sin(np.dot(x, v)) * v * np.dot(u, v)
    assert np.allclose(hvp, expected)


def test_grad_of_grad_array():
    f = lambda x: np.sum(x ** 3)      # noqa: E731
    df_sum = lambda x: np.sum(ds.grad(f)(x))       # noqa: E731
    x = R.standard_normal(3)
    assert np.allclose(ds.grad(df_sum)(x), 6.0 * x)


def test_grad_of_grad_sin():
    df = ds.grad(lambda x: np.sin(x) * 2.0)
    assert ds.grad(df)(0.3) == pytest.approx(-2.0 * np.sin(0.3), rel=1e-12)


HMAT = R.standard_normal((4, 4))


def quadratic_form(x):
    return np.dot(np.dot(x, HMAT), x)


grad_quadratic_form = ds.grad(quadratic_form)


def gradient_component(x, i):
    return grad_quadratic_form(x)[i]


def test_hessian_rows_by_nested_grad():
    x = R.standard_normal(4)
    rows = [ds.grad(gradient_component)(x, i) for i in range(4)]
    assert np.allclose(np.stack(rows), HMAT + HMAT.T)


# ---------------------------------------------------------------------------
# hypothesis over a function mixing most of the above
# ---------------------------------------------------------------------------


def mixed_program(x, w):
    def layer(h, k):
        return np.tanh(h * w + k)

    h = x
    outs = []
    for k in range(3):
        h = layer(h, k * 0.1)
        if np.sum(h) > 0:
            outs.append(h * 2.0)
        else:
            outs.append(-h)
    total = 0.0
    for o in outs:
        total = total + np.sum(o ** 2)
    return total


@HYP
@given(x=arrays((3,)), w=floats(-1.5, 1.5))
def test_mixed_program_property(x, w):
    from hypothesis import assume
    # stay away from the branch boundary sum(h) == 0
    h = x
    for k in range(3):
        h = np.tanh(h * w + k * 0.1)
        assume(abs(np.sum(h)) > 1e-3)
    check_grad(mixed_program, (x, w), (0, 1))
