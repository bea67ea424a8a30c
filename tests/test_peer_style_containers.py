"""Peer-style acceptance tests for containers: lists, tuples, dicts, nesting.

Modelled on the kinds of checks in autograd's list/tuple/dict suites and
Tangent's subscript tests: gradients with respect to a list / tuple / dict
argument come back in the same structure (unused entries get zeros), the same
entry read twice accumulates, iteration over dict keys/values/items, sorted()
and enumerate(), slicing a list (including a nested list whose first entry is a
list), lists built, appended to and popped in loops, helpers that take and
return containers, tuple unpacking and swapping, and a namedtuple / dataclass of
parameters.  Every gradient is compared with central finite differences.
"""
import collections
import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import diffsrc as ds

try:
    from gradcheck import arrays, check_grad
except ImportError:  # tests/ turned into a package
    from tests.gradcheck import arrays, check_grad

HYP = settings(max_examples=10, deadline=None)
R = np.random.default_rng(99)


def three_arrays():
    return [R.standard_normal((5, 6)), R.standard_normal((4, 3)), R.standard_normal((2, 4))]


# ---------------------------------------------------------------------------
# list / tuple / dict getters: repeated reads accumulate, unused entries are zero
# ---------------------------------------------------------------------------


def list_getter(items):
    A = np.sum(items[0])
    B = np.sum(items[1])
    C = np.sum(items[1])
    return A + B + C


def dict_getter(d):
    A = np.sum(d["item_1"])
    B = np.sum(d["item_2"])
    C = np.sum(d["item_2"])
    return A + B + C


def test_list_getter():
    arg = three_arrays()
    g = ds.grad(list_getter)(arg)
    assert isinstance(g, list) and len(g) == 3
    assert np.allclose(g[0], 1.0) and np.allclose(g[1], 2.0) and np.allclose(g[2], 0.0)
    assert [x.shape for x in g] == [x.shape for x in arg]


def test_tuple_getter():
    arg = tuple(three_arrays())
    g = ds.grad(list_getter)(arg)
    assert isinstance(g, tuple) and len(g) == 3
    assert np.allclose(g[0], 1.0) and np.allclose(g[1], 2.0) and np.allclose(g[2], 0.0)


def test_dict_getter():
    a, b, c = three_arrays()
    arg = {"item_1": a, "item_2": b, "item_X": c}
    g = ds.grad(dict_getter)(arg)
    assert isinstance(g, dict) and set(g) == set(arg)
    assert np.allclose(g["item_1"], 1.0) and np.allclose(g["item_2"], 2.0)
    assert np.allclose(g["item_X"], 0.0) and g["item_X"].shape == c.shape


# ---------------------------------------------------------------------------
# gradients through containers, checked against finite differences
# ---------------------------------------------------------------------------


def seq_sin_cos(items):
    return np.sum(np.sin(items[0])) + np.sum(np.cos(items[1]))


def dict_sin_cos(d):
    return np.sum(np.sin(d["item_1"])) + np.sum(np.cos(d["item_2"]))


def dict_iter_sorted(d):
    A = 0.0
    B = 0.0
    for i, k in enumerate(sorted(d)):
        A = A + np.sum(np.sin(d[k])) * (i + 1.0)
        B = B + np.sum(np.cos(d[k]))
    return A + B


def dict_items_values_keys(d):
    A = 0.0
    B = 0.0
    for i, (k, v) in enumerate(d.items()):
        A = A + np.sum(np.sin(v)) * (i + 1.0)
        B = B + np.sum(np.cos(v))
    for v in d.values():
        A = A + np.sum(np.sin(v))
    for k in d.keys():
        A = A + np.sum(np.cos(d[k]))
    return A + B


def dict_get_and_in(d):
    s = d.get("w", 0.0) * 2.0 + d.get("missing", 1.5)
    if "b" in d:
        s = s + np.sum(d["b"] ** 2)
    return np.sum(s)


def dict_keys_sorted_reversed(d):
    weights = [np.sum(np.cos(d[k])) * (i + 1.0) for i, k in enumerate(sorted(d.keys(),
                                                                              reverse=True))]
    return sum(weights)


def dict_len_loop(d):
    total = 0.0
    for key in d:
        total = total + np.sum(d[key]) / len(d)
    return total


def small_dict():
    return {"a": R.standard_normal((2, 3)), "b": R.standard_normal(3), "c": R.standard_normal(1)}


@pytest.mark.parametrize("f", [seq_sin_cos], ids=lambda f: f.__name__)
@pytest.mark.parametrize("kind", [list, tuple])
def test_sequence_fd(f, kind):
    arg = kind(x[:2, :2] for x in three_arrays())
    g = check_grad(f, (arg,), 0)
    assert type(g) is kind


@pytest.mark.parametrize("f", [
    dict_iter_sorted, dict_keys_sorted_reversed, dict_items_values_keys, dict_len_loop], ids=lambda f: f.__name__)
def test_dict_fd(f):
    check_grad(f, (small_dict(),), 0)


def test_dict_with_float_leaf():
    d = small_dict()
    d["c"] = 0.7
    g = check_grad(dict_len_loop, (d,), 0)
    assert isinstance(g["c"], float)


def test_dict_sin_cos():
    d = {"item_1": R.standard_normal((2, 2)), "item_2": R.standard_normal(3),
         "item_X": R.standard_normal(2)}
    g = check_grad(dict_sin_cos, (d,), 0)
    assert np.all(g["item_X"] == 0)


def test_dict_get_and_in():
    d = {"w": R.standard_normal(3), "b": R.standard_normal(2)}
    check_grad(dict_get_and_in, (d,), 0)


# ---------------------------------------------------------------------------
# slicing lists, nested lists, list of mixed leaves
# ---------------------------------------------------------------------------


def list_slice_object(xs):
    s = slice(None, -1, None)
    y = xs[s]
    return y[0] * 2.0 + y[-1]


def list_slice_literal(xs):
    y = xs[1:3]
    return y[0] * y[1]


def nested_list_slice(xs):
    return np.sum(xs[1:][0]) * xs[2] + np.sum(xs[0][0])


def list_negative_index(xs):
    return xs[-1] * xs[-2] + xs[0]


def test_list_slices():
    check_grad(list_slice_object, ([1.0, 2.0, 3.0],), 0)
    check_grad(list_slice_literal, ([1.0, 2.0, 3.0],), 0)
    check_grad(list_negative_index, ([1.0, 2.0, 3.0, -0.5],), 0)


def test_nested_list_mixed_leaves():
    g = check_grad(nested_list_slice, ([[1.0], 2.0, 1.5],), 0)
    assert isinstance(g[0], list)


# ---------------------------------------------------------------------------
# lists built, appended to, popped in loops; sum/len/zip/enumerate/reversed
# ---------------------------------------------------------------------------


def append_in_loop(x, n):
    ys = []
    for i in range(n):
        ys.append(x * (i + 1.0))
    return np.sum(np.stack(ys) ** 2)


def append_pop_stack(a):
    stack = []
    v = a
    for i in range(3):
        stack.append(v)
        v = v * a
    total = 0.0
    while len(stack) > 0:
        total = total + stack.pop() * 2.0
    return total + v


def pop_default_and_index(a, b):
    xs = [a, b, a * b]
    last = xs.pop()
    first = xs.pop(0)
    return last * first + xs[0]


def builtin_sum_of_list(x, y):
    return np.sum(np.sin(sum([x, y])))


def builtin_sum_of_generator_list(xs):
    return sum(xs) * xs[0]


def zip_enumerate(xs, ws):
    s = 0.0
    for i, (x, w) in enumerate(zip(xs, ws)):
        s = s + (i + 1.0) * x * w
    return s


def zip_reversed(xs, ws):
    s = 0.0
    for x, w in zip(xs, ws):
        s = s + x * w
    for x in reversed(xs):
        s = s * 0.5 + x
    return s


def list_concat_and_repeat(a, b):
    xs = [a, b] + [a * b]
    ys = xs * 2
    return ys[0] * ys[4] + ys[5] + len(ys)


def list_of_arrays_loop(ws, x):
    h = x
    for w in ws:
        h = np.tanh(w @ h)
    return np.sum(h)


def list_insert_extend(a, b):
    xs = [a]
    xs.extend([b, a * b])
    xs.insert(0, b * b)
    return xs[0] + xs[1] * xs[3]


def list_element_assignment(a, b):
    xs = [0.0, 0.0, 0.0]
    xs[0] = a
    xs[2] = a * b
    xs[1] = xs[0] + xs[2]
    return xs[1] * xs[0]


def test_list_loops():
    check_grad(append_in_loop, (R.standard_normal(3), 4), 0)
    check_grad(pop_default_and_index, (0.8, -1.3), (0, 1))
    check_grad(builtin_sum_of_list, (R.standard_normal((2, 3)), R.standard_normal((2, 3))), (0, 1))
    check_grad(builtin_sum_of_generator_list, ([0.5, -1.0, 2.0],), 0)
    check_grad(zip_reversed, ([0.5, -1.0, 2.0], [1.5, 0.3, -0.2]), (0, 1))
    check_grad(list_concat_and_repeat, (0.8, -1.3), (0, 1))
    check_grad(list_insert_extend, (0.8, -1.3), (0, 1))
    check_grad(list_element_assignment, (0.8, -1.3), (0, 1))


@pytest.mark.parametrize("kind", ["list", "array"])
def test_enumerate_of_zip(kind):
    xs, ws = [0.5, -1.0, 2.0], [1.5, 0.3, -0.2]
    if kind == "array":
        xs, ws = np.array(xs), np.array(ws)
    check_grad(zip_enumerate, (xs, ws), (0, 1))


def test_append_then_pop_in_while_loop():
    check_grad(append_pop_stack, (0.8,), 0)


def test_list_of_weight_matrices():
    ws = [R.standard_normal((3, 3)) * 0.5 for _ in range(3)]
    g = check_grad(list_of_arrays_loop, (ws, R.standard_normal(3)), (0, 1))
    assert isinstance(g[0], list) and len(g[0]) == 3


# ---------------------------------------------------------------------------
# helpers taking and returning containers; tuple unpacking and swapping
# ---------------------------------------------------------------------------


def split_pair(x):
    return x * 2.0, x * x


def make_record(x, y):
    return {"sum": x + y, "prod": x * y, "parts": [x, y]}


def uses_container_helpers(x, y):
    a, b = split_pair(x)
    rec = make_record(a, y)
    return rec["sum"] * b + rec["prod"] + rec["parts"][1] * rec["parts"][0]


def swap_in_loop(a, b):
    for i in range(3):
        a, b = b, a * b + 0.1
    return a + 2.0 * b


def star_unpack(xs):
    first, *rest = xs
    return first * sum(rest)


def nested_unpack(t):
    (a, b), c = t
    return a * b * c


def tuple_returned_then_indexed(x):
    return split_pair(x)[1] + split_pair(x * 3.0)[0]


def test_container_helpers():
    check_grad(uses_container_helpers, (0.7, -1.1), (0, 1))
    check_grad(swap_in_loop, (0.7, -1.1), (0, 1))
    check_grad(star_unpack, ([0.5, -1.0, 2.0],), 0)
    check_grad(nested_unpack, (((0.5, -1.0), 2.0),), 0)
    check_grad(tuple_returned_then_indexed, (0.7,), 0)


# ---------------------------------------------------------------------------
# namedtuple and dataclass parameters
# ---------------------------------------------------------------------------

Affine = collections.namedtuple("Affine", ["W", "b"])


@dataclasses.dataclass
class Layer:
    W: np.ndarray
    b: np.ndarray
    name: str = "dense"


def affine_loss(p, x):
    return np.sum(np.tanh(x @ p.W + p.b) ** 2)


def dict_of_layers_loss(params, x):
    h = x
    for name in ["l1", "l2"]:
        h = np.tanh(h @ params[name]["W"] + params[name]["b"])
    return np.sum(h ** 2)


def test_namedtuple_and_dataclass_params():
    W, b, x = R.standard_normal((3, 2)), R.standard_normal(2), R.standard_normal((4, 3))
    g = check_grad(affine_loss, (Layer(W, b), x), 0)
    assert isinstance(g, Layer)


def test_namedtuple_params():
    W, b, x = R.standard_normal((3, 2)), R.standard_normal(2), R.standard_normal((4, 3))
    g = check_grad(affine_loss, (Affine(W, b), x), 0)
    assert isinstance(g, Affine)


def test_nested_dict_of_layers():
    params = {"l1": {"W": R.standard_normal((3, 4)), "b": R.standard_normal(4)},
              "l2": {"W": R.standard_normal((4, 2)), "b": R.standard_normal(2)}}
    g = check_grad(dict_of_layers_loss, (params, R.standard_normal((2, 3))), 0)
    assert set(g) == {"l1", "l2"} and set(g["l1"]) == {"W", "b"}


# ---------------------------------------------------------------------------
# outputs that are containers: grad refuses them, pullback handles them
# ---------------------------------------------------------------------------


def returns_pair(a):
    return 2.0 * a, a


def test_container_output_rejected_by_grad():
    with pytest.raises(ds.DiffsrcError):
        ds.grad(returns_pair)(2.0)


def test_container_output_pullback():
    y, back = ds.pullback(returns_pair, 2.0)
    assert y == (4.0, 2.0)
    (ga,) = back((1.0, 1.0))
    assert ga == pytest.approx(3.0)


# ---------------------------------------------------------------------------
# hypothesis: list of arrays of random length
# ---------------------------------------------------------------------------


@HYP
@given(n=st.integers(1, 4), x=arrays((3,)))
def test_list_length_property(n, x):
    def f(items):
        total = 0.0
        for i, v in enumerate(items):
            total = total + np.sum(np.sin(v) * (i + 1.0))
        return total

    items = [x * (k + 1.0) for k in range(n)]
    g = check_grad(f, (items,), 0)
    assert isinstance(g, list) and len(g) == n
