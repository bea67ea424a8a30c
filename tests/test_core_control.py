"""Core transformer acceptance tests: control flow.

if/elif/else, for over range/arrays/lists/zip/enumerate, while with
data-dependent trip counts, break/continue/early return, nested loops, and
the structural promise that the derivative of a loop is a loop (the generated
source contains a real `for`/`while`, and it does not grow with the trip count).
"""
import ast
import math
import re

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import diffsrc as ds

try:
    from gradcheck import arrays, check_grad, floats, nonzero_floats, numeric_grad
except ImportError:  # tests/ turned into a package
    from tests.gradcheck import arrays, check_grad, floats, nonzero_floats, numeric_grad

HYP = settings(max_examples=25, deadline=None)
EXACT = dict(rel=1e-12, abs=1e-12)

# ---------------------------------------------------------------------------
# if / elif / else
# ---------------------------------------------------------------------------


def piecewise(x):
    if x < -1.0:
        y = -x * 2.0
    elif x < 0.5:
        y = x * x
    elif x < 2.0:
        y = math.sin(x) * 3.0
    else:
        y = x**3
    return y + x


def if_no_else(x, y):
    z = x * y
    if z > 1.0:
        z = z * z
    return z + y


def if_many_vars(x, y):
    a = x
    b = y
    if x > y:
        a, b = b * 2.0, a * a
        c = a + b
    else:
        c = a * b
        b = b + 1.0
    return a * b + c


def nested_if(x, y):
    if x > 0:
        if y > 0:
            return x * y
        else:
            r = x - y * y
    else:
        if y > x:
            r = x * x * y
        else:
            r = y
    return r * 2.0


def array_condition(w, x):
    s = np.sum(w * x)
    if s > 0:
        out = np.sum(np.tanh(w) * x)
    else:
        out = np.sum(w**2)
    return out


def bool_ops(x, y):
    if x > 0 and y > 0:
        return x * y
    if x > 0 or y > 1.0:
        return x + 2.0 * y
    if not (x < -1.0):
        return x * x
    return y * y * y


@pytest.mark.parametrize("x, expected", [
    (-2.0, -2.0 + 1.0),
    (0.0, 0.0 + 1.0),
    (0.25, 0.5 + 1.0),
    (1.0, 3.0 * math.cos(1.0) + 1.0),
    (3.0, 27.0 + 1.0),
])
def test_if_elif_else_every_branch_closed_form(x, expected):
    assert ds.grad(piecewise)(x) == pytest.approx(expected, **EXACT)


@HYP
@given(x=floats(-4, 4))
def test_if_elif_else_matches_fd(x):
    assume(min(abs(x - t) for t in (-1.0, 0.5, 2.0)) > 1e-3)
    check_grad(piecewise, (x,), wrt=0)


@pytest.mark.parametrize("fn", [if_no_else, if_many_vars, nested_if, bool_ops],
                         ids=lambda f: f.__name__)
@HYP
@given(x=nonzero_floats(0.1, 3.0), y=nonzero_floats(0.1, 3.0))
def test_branchy_functions_match_fd(fn, x, y):
    assume(abs(x - y) > 1e-3 and abs(x * y - 1.0) > 1e-3 and abs(y - 1.0) > 1e-3
           and abs(x + 1.0) > 1e-3)
    check_grad(fn, (x, y), wrt=(0, 1))


def test_both_branches_of_if_are_taken():
    df = ds.grad(if_no_else, wrt=(0, 1))
    gx, gy = df(2.0, 3.0)  # z = 6 > 1: z*z + y
    assert gx == pytest.approx(2 * 6.0 * 3.0, **EXACT)
    assert gy == pytest.approx(2 * 6.0 * 2.0 + 1.0, **EXACT)
    gx, gy = df(0.1, 3.0)  # z = 0.3: z + y
    assert gx == pytest.approx(3.0, **EXACT)
    assert gy == pytest.approx(0.1 + 1.0, **EXACT)


def test_branch_on_array_condition():
    w = np.array([0.5, -0.2, 0.3])
    x = np.array([1.0, 2.0, 3.0])
    check_grad(array_condition, (w, x), wrt=(0, 1))
    check_grad(array_condition, (w, -x), wrt=(0, 1))


# ---------------------------------------------------------------------------
# for loops
# ---------------------------------------------------------------------------


def for_range(x, n):
    y = x
    for i in range(n):
        y = math.sin(y) + x * 0.5
    return y


def for_range_start_stop_step(x, start, stop, step):
    acc = 0.0
    for i in range(start, stop, step):
        acc = acc * 0.5 + x**2 * i
    return acc


def for_power(x, n):
    p = 1.0
    for _ in range(n):
        p = p * x
    return p


def for_array_rows(W, x):
    acc = 0.0
    for row in W:
        acc = acc + np.tanh(np.dot(row, x))
    return acc


def for_list(ws, x):
    y = x
    for w in ws:
        y = y * w + math.sin(w)
    return y


def for_zip(xs, ys):
    acc = 0.0
    for x, y in zip(xs, ys):
        acc = acc + x * y * y
    return acc


def for_enumerate(x, ws):
    acc = 0.0
    for i, w in enumerate(ws):
        acc = acc + w * x ** (i + 1)
    return acc


def for_range_len(xs):
    acc = 1.0
    for i in range(len(xs)):
        acc = acc * (1.0 + xs[i] * i)
    return acc


def for_fib(a, b, n):
    for _ in range(n):
        a, b = b, a + b * 0.5
    return a * b


def for_rnn(W, U, xs, h0):
    h = h0
    for t in range(xs.shape[0]):
        h = np.tanh(W @ h + U @ xs[t])
    return np.sum(h**2)


def for_zero_iterations(x, n):
    acc = x * 3.0
    for i in range(n):
        acc = acc * x
    return acc


@pytest.mark.parametrize("n", [0, 1, 2, 7, 30])
def test_for_range_runtime_bound(n):
    check_grad(for_range, (0.7, n), wrt=0)


@pytest.mark.parametrize("n", [0, 1, 3, 6])
def test_for_power_closed_form(n):
    expected = n * 1.3 ** (n - 1) if n > 0 else 0.0
    assert ds.grad(for_power)(1.3, n) == pytest.approx(expected, **EXACT)


@pytest.mark.parametrize("start, stop, step", [
    (0, 5, 1), (1, 10, 3), (10, 0, -2), (5, 5, 1), (-3, 4, 2), (7, -2, -3),
])
def test_for_range_start_stop_step(start, stop, step):
    check_grad(for_range_start_stop_step, (1.1, start, stop, step), wrt=0)


@HYP
@given(W=arrays(st.tuples(st.integers(1, 5), st.just(3))), x=arrays((3,)))
def test_for_over_array_rows(W, x):
    check_grad(for_array_rows, (W, x), wrt=(0, 1))


@HYP
@given(ws=st.lists(floats(-1.5, 1.5), min_size=0, max_size=6), x=floats())
def test_for_over_list(ws, x):
    check_grad(for_list, (ws, x), wrt=(0, 1))


@HYP
@given(data=st.data())
def test_for_over_zip(data):
    n = data.draw(st.integers(0, 6))
    xs = data.draw(st.lists(floats(), min_size=n, max_size=n))
    ys = data.draw(st.lists(floats(), min_size=n + 1, max_size=n + 2))  # zip truncates
    gx, gy = check_grad(for_zip, (xs, ys), wrt=(0, 1))
    assert all(g == 0.0 for g in gy[n:])


def test_for_over_enumerate():
    check_grad(for_enumerate, (1.3, [0.5, -1.0, 2.0, 0.25]), wrt=(0, 1))
    g = ds.grad(for_enumerate)(2.0, [1.0, 1.0, 1.0])
    assert g == pytest.approx(1.0 + 2 * 2.0 + 3 * 4.0, **EXACT)


def test_for_range_len_indexing_list():
    check_grad(for_range_len, ([0.3, -0.7, 1.2, 0.9],), wrt=0)


@pytest.mark.parametrize("n", [0, 1, 5, 12])
def test_for_tuple_carried_state(n):
    check_grad(for_fib, (0.3, 0.8, n), wrt=(0, 1))


@HYP
@given(data=st.data())
def test_for_rnn_over_time(data):
    T = data.draw(st.integers(1, 5))
    W = data.draw(arrays((3, 3), -1, 1))
    U = data.draw(arrays((3, 2), -1, 1))
    xs = data.draw(arrays((T, 2), -1, 1))
    h0 = data.draw(arrays((3,), -1, 1))
    check_grad(for_rnn, (W, U, xs, h0), wrt=(0, 1, 2, 3))


def test_zero_iteration_loop():
    assert ds.grad(for_zero_iterations)(2.0, 0) == pytest.approx(3.0, **EXACT)
    assert ds.grad(for_zero_iterations)(2.0, 2) == pytest.approx(9 * 4.0, **EXACT)


# ---------------------------------------------------------------------------
# while loops with data-dependent trip counts
# ---------------------------------------------------------------------------


def while_doubling(x):
    y = x
    while y < 100.0:
        y = y * 2.0
    return y


def newton_sqrt(a):
    x = a
    while abs(x * x - a) > 1e-12 * a:
        x = 0.5 * (x + a / x)
    return x


def while_counter(x, n):
    i = 0
    acc = 0.0
    while i < n:
        acc = acc + math.cos(x * i)
        i += 1
    return acc


def while_true_break(x):
    y = x
    k = 0
    while True:
        y = y * 1.5 + 0.1
        k = k + 1
        if y > 10.0 or k > 50:
            break
    return y * y


@pytest.mark.parametrize("x, trips", [(1.5, 7), (3.0, 6), (30.0, 2), (150.0, 0)])
def test_while_data_dependent_trip_count(x, trips):
    assert ds.grad(while_doubling)(x) == pytest.approx(2.0**trips, **EXACT)


@HYP
@given(x=floats(0.3, 120.0))
def test_while_doubling_matches_fd(x):
    k = 0
    y = x
    while y < 100.0:
        y *= 2.0
        k += 1
    last_tested = y / 2.0 if k else y  # the value compared with 100 that decided the exit
    assume(abs(last_tested - 100.0) > 1e-2)
    check_grad(while_doubling, (x,), wrt=0)


@HYP
@given(a=floats(0.5, 50.0))
def test_while_newton_sqrt(a):
    # at a == 1 the start value is already the root: the loop runs zero times and the
    # program's derivative there is that of `x = a`, i.e. 1, not 1/(2 sqrt(a))
    assume(abs(a * a - a) > 1e-12 * a)
    g = ds.grad(newton_sqrt)(a)
    assert g == pytest.approx(0.5 / math.sqrt(a), rel=1e-6)


@pytest.mark.parametrize("n", [0, 1, 4, 9])
def test_while_with_counter(n):
    check_grad(while_counter, (0.4, n), wrt=0)


@HYP
@given(x=floats(0.5, 9.0))
def test_while_true_with_break(x):
    y = x * 1.5 + 0.1
    while y <= 10.0:
        assume(abs(y - 10.0) > 1e-3)
        y = y * 1.5 + 0.1
    assume(abs(y - 10.0) > 1e-3)
    check_grad(while_true_break, (x,), wrt=0)


# ---------------------------------------------------------------------------
# break, continue, early return
# ---------------------------------------------------------------------------


def for_break(x, limit):
    y = x
    for i in range(100):
        y = y * 1.1 + 0.05 * x
        if y > limit:
            break
    return y


def for_continue(x, n):
    acc = 0.0
    for i in range(n):
        if i % 2 == 0:
            continue
        acc = acc + x**i
    return acc


def early_return_in_loop(x, ws):
    acc = 0.0
    for w in ws:
        acc = acc + w * x
        if acc > 5.0:
            return acc * acc
    return acc - x


def early_return_top(x):
    if x < 0:
        return -x * 3.0
    y = x * x
    if y > 4.0:
        return y * x
    return y + 1.0


def while_break_continue(x):
    y = x
    i = 0
    while i < 20:
        i += 1
        if i % 3 == 0:
            continue
        y = y + math.sin(y) * 0.5
        if y > 3.0:
            break
    return y


@HYP
@given(x=floats(0.2, 3.0), limit=floats(1.0, 50.0))
def test_break_matches_fd(x, limit):
    # stay away from the data-dependent exit threshold
    y = x
    for _ in range(100):
        y = y * 1.1 + 0.05 * x
        if y > limit:
            break
    assume(abs(y - limit) > 1e-3 and abs(y - 0.05 * x - limit * 1.1) > 1e-3)
    check_grad(for_break, (x, limit), wrt=(0, 1))


@pytest.mark.parametrize("n", [0, 1, 2, 6, 9])
def test_continue(n):
    expected = sum(i * 1.2 ** (i - 1) for i in range(n) if i % 2)
    assert ds.grad(for_continue)(1.2, n) == pytest.approx(expected, **EXACT)


@pytest.mark.parametrize("x", [0.5, 2.0, 4.0])
def test_early_return_inside_loop(x):
    ws = [1.0, 0.5, 2.0, 0.25]
    check_grad(early_return_in_loop, (x, ws), wrt=(0, 1))


@pytest.mark.parametrize("x, expected", [(-1.0, -3.0), (1.0, 2.0), (3.0, 27.0)])
def test_early_return_at_top_level(x, expected):
    assert ds.grad(early_return_top)(x) == pytest.approx(expected, **EXACT)


@HYP
@given(x=floats(-2.0, 2.9))
def test_while_with_break_and_continue(x):
    check_grad(while_break_continue, (x,), wrt=0, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------
# nested loops
# ---------------------------------------------------------------------------


def nested_matvec(W, x):
    n, m = W.shape
    acc = 0.0
    for i in range(n):
        s = 0.0
        for j in range(m):
            s = s + W[i, j] * x[j]
        acc = acc + np.tanh(s)
    return acc


def nested_triangular(x, n):
    acc = 0.0
    for i in range(n):
        for j in range(i):
            acc = acc + x ** (j + 1) / (i + 1)
    return acc


def nested_while_for(x):
    y = x
    k = 0
    while k < 3:
        for i in range(k + 1):
            y = y * 0.9 + math.sin(y)
        k += 1
    return y


def nested_break(xs):
    total = 0.0
    for row in xs:
        for v in row:
            if v < 0:
                break
            total = total + v * v
    return total


@HYP
@given(W=arrays(st.tuples(st.integers(1, 4), st.integers(1, 4))), data=st.data())
def test_nested_loops_equal_matvec(W, data):
    x = data.draw(arrays((W.shape[1],)))
    gW, gx = check_grad(nested_matvec, (W, x), wrt=(0, 1))
    s = W @ x
    np.testing.assert_allclose(gW, np.outer(1 - np.tanh(s) ** 2, x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n", [0, 1, 4])
def test_nested_triangular_loops(n):
    check_grad(nested_triangular, (0.8, n), wrt=0)


def test_nested_while_and_for():
    check_grad(nested_while_for, (0.7,), wrt=0)


def test_nested_loop_with_inner_break():
    xs = [[1.0, 2.0, -1.0, 5.0], [-2.0, 3.0], [0.5, 0.5]]
    g = ds.grad(nested_break)(xs)
    assert g == [[2.0, 4.0, 0.0, 0.0], [0.0, 0.0], [1.0, 1.0]]


# ---------------------------------------------------------------------------
# the derivative of a loop is a loop
# ---------------------------------------------------------------------------


def loop_fn(x, n):
    h = x
    for i in range(n):
        h = np.tanh(h * 1.5 + 0.1)
    return np.sum(h)


def while_fn(x, tol):
    y = x
    while y > tol:
        y = y * 0.5 + math.sin(y) * 0.01
    return y


def _loop_statements(src):
    tree = ast.parse(src)
    return [n for n in ast.walk(tree) if isinstance(n, (ast.For, ast.While))]


def _source_after_call(fn, *args):
    df = ds.grad(fn)
    df(*args)
    return ds.source(df)


def test_generated_source_contains_real_for_or_while():
    src = _source_after_call(loop_fn, np.array([0.1, 0.2]), 5)
    assert _loop_statements(src), src
    assert re.search(r"^\s*(for|while)\b", src, re.M), src


def test_generated_source_of_while_contains_a_loop():
    src = _source_after_call(while_fn, 40.0, 1.0)
    assert _loop_statements(src), src


def test_loop_not_unrolled_source_independent_of_trip_count():
    x = np.array([0.1, -0.2, 0.3])
    src3 = _source_after_call(loop_fn, x, 3)
    src50 = _source_after_call(loop_fn, x, 50)
    assert len(src50) <= len(src3) + 64, (len(src3), len(src50))
    n3 = len(re.findall(r"\btanh\b", src3))
    n50 = len(re.findall(r"\btanh\b", src50))
    assert n50 == n3 and n50 < 10, (n3, n50)
    assert len(src50.splitlines()) < 150


def test_while_not_unrolled_source_independent_of_trip_count():
    short = _source_after_call(while_fn, 2.0, 1.0)
    long = _source_after_call(while_fn, 1e6, 1.0)
    assert len(long) <= len(short) + 64
    n_short = len(re.findall(r"\b(sin|cos)\b", short))
    n_long = len(re.findall(r"\b(sin|cos)\b", long))
    assert n_long == n_short and n_long < 10, (n_short, n_long)


def test_loop_gradient_correct_for_long_trip_count():
    x = np.array([0.1, -0.2, 0.3])
    check_grad(loop_fn, (x, 50), wrt=0)
    check_grad(loop_fn, (x, 3), wrt=0)


def test_long_loop_runs_in_reasonable_memory_and_time():
    # 20000 iterations: a trace-based or unrolled implementation would blow up
    g = ds.grad(for_range)(0.7, 20000)
    assert math.isfinite(g)
    # fixed point of y = sin(y) + 0.35: derivative converges
    g2 = ds.grad(for_range)(0.7, 20001)
    assert g == pytest.approx(g2, rel=1e-3, abs=1e-6)


def nested_loops(x, w):
    for i in range(3):
        for j in range(2):
            x = np.tanh(w * x + 0.1 * j)
    return x


@pytest.mark.parametrize("fn", [nested_loops])
def test_a_pullback_can_run_again_after_its_loops_popped_their_tapes(fn):
    x, w = np.array([0.5, -0.2]), 0.7
    y, back = ds.pullback(fn, x, w)
    first = back(np.ones(2))
    second = back(np.array([2.0, -1.0]))
    third = back(np.ones(2))
    np.testing.assert_allclose(third[0], first[0], rtol=0, atol=0)
    assert third[1] == first[1]
    expected = numeric_grad(lambda x_: np.sum(fn(x_, w) * np.array([2.0, -1.0])), (x,), 0)
    np.testing.assert_allclose(second[0], expected, rtol=1e-6, atol=1e-8)
