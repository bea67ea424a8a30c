"""api.py's guarded call: arguments exactly like the first call's run the compiled code
straight away; anything else takes the general path, with the same results.

A fresh ds.value_and_grad answers its first call through the general path, so it is
the reference for every call a long-lived one answers through its guard.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import diffsrc as ds
from diffsrc.api import GradientFunction

SETTINGS = settings(max_examples=30, deadline=None)


def loss(x, y):
    return np.sum(np.tanh(x) * y) + np.sum(x * x)


class Sub(np.ndarray):
    """An array subclass: never mistaken for a plain array."""


def _array(shape, dtype=np.float64):
    return np.linspace(-1.0, 1.0, int(np.prod(shape))).reshape(shape).astype(dtype)


KINDS = {
    "f64 (2, 3)": lambda: _array((2, 3)),
    "f32 (2, 3)": lambda: _array((2, 3), np.float32),
    "f64 (3, 2)": lambda: _array((3, 2)),
    "f64 (1, 1)": lambda: _array((1, 1)),
    "f64 ()": lambda: np.array(0.3),
    "big-endian f64 (2, 3)": lambda: _array((2, 3), np.dtype(">f8")),
    "subclass (2, 3)": lambda: _array((2, 3)).view(Sub),
    "np.float64": lambda: np.float64(0.3),
    "np.float32": lambda: np.float32(0.3),
    "float": lambda: 0.3,
}


def _same(got, expected):
    if isinstance(expected, (tuple, list)):
        assert type(got) is type(expected) and len(got) == len(expected)
        for a, b in zip(got, expected):
            _same(a, b)
        return
    if isinstance(expected, dict):
        assert type(got) is dict and list(got) == list(expected)      # keys in order
        _same(tuple(got.values()), tuple(expected.values()))
        return
    assert type(got) is type(expected), (got, expected)
    assert np.shape(got) == np.shape(expected) and np.result_type(got) == \
        np.result_type(expected)
    np.testing.assert_array_equal(got, expected)


SCALES = ["f64 ()", "f64 (1, 1)", "np.float64", "np.float32", "float", "like x"]


@SETTINGS
@given(calls=st.lists(st.tuples(st.sampled_from(sorted(KINDS)), st.sampled_from(SCALES)),
                      min_size=2, max_size=8))
def test_every_call_answers_as_the_general_path_would(calls):
    vg = ds.value_and_grad(loss, wrt=(0, 1))
    for x_kind, y_kind in calls:
        x = KINDS[x_kind]()
        y = np.cos(x) if y_kind == "like x" else KINDS[y_kind]()
        expected = ds.value_and_grad(loss, wrt=(0, 1))(x, y)
        _same(vg(x, y), expected)
        _same(vg(x=x, y=y), expected)


def test_the_guard_is_built_once_for_plain_arguments():
    vg = ds.value_and_grad(loss, wrt=(0, 1))
    vg(_array((2, 3)), 0.5)
    assert type(vg) is not GradientFunction and isinstance(vg, GradientFunction)
    guarded = type(vg)
    vg(_array((3, 2)), 0.5)
    assert type(vg) is guarded
    container = ds.grad(lambda p: np.sum(p["w"] ** 2))
    container({"w": _array((2, 3))})
    assert type(container) is not GradientFunction        # a dict of arrays is guarded too
    odd_keys = ds.grad(lambda p: np.sum(p[1] ** 2))
    odd_keys({1: _array((2, 3))})
    assert type(odd_keys) is GradientFunction       # keys that are not strings: general path


def container_loss(p, scale):
    """Reads a dict of arrays (or numbers), a list and a nested tuple."""
    total = np.sum(p["w"] * p["b"]) + np.sum(p["nested"][0] ** 2) * p["nested"][1]
    return (total + np.sum(np.tanh(p["list"][0]))) * scale


CONTAINER_LEAVES = {
    "f64 (2, 3)": lambda: _array((2, 3)),
    "f32 (2, 3)": lambda: _array((2, 3), np.float32),
    "f64 (3,)": lambda: _array((3,)),
    "float": lambda: 0.7,
    "np.float64": lambda: np.float64(0.7),
}


@SETTINGS
@given(calls=st.lists(st.tuples(st.sampled_from(sorted(CONTAINER_LEAVES)),
                                st.sampled_from(sorted(CONTAINER_LEAVES)),
                                st.booleans(), st.booleans()), min_size=2, max_size=6))
def test_containers_answer_as_the_general_path_would(calls):
    """Leaf kinds, key order and list-or-tuple change from call to call; every answer
    is the general path's, and the gradients are the caller's own arrays."""
    vg = ds.value_and_grad(container_loss, wrt=(0, 1))
    for w_kind, b_kind, reverse_keys, as_list in calls:
        w, b = CONTAINER_LEAVES[w_kind](), CONTAINER_LEAVES[b_kind]()
        p = {"w": w, "b": b, "nested": (_array((2,)), 0.5), "list": [_array((2, 2))]}
        if reverse_keys:
            p = dict(reversed(p.items()))
        if as_list:
            p["nested"] = list(p["nested"])
        expected = ds.value_and_grad(container_loss, wrt=(0, 1))(p, 2.0)
        got = vg(p, 2.0)
        _same(got, expected)
        for g in got[1][0].values():
            if isinstance(g, np.ndarray):
                assert g.flags.writeable
                assert not any(np.shares_memory(g, a) for a in (w, b) if type(a) is np.ndarray)


def test_an_array_reshaped_in_place_is_seen():
    vg = ds.value_and_grad(loss, wrt=(0, 1))
    x, y = _array((2, 3)), _array((2, 3))
    vg(x, y)
    x.shape = y.shape = (3, 2)
    _same(vg(x, y), ds.value_and_grad(loss, wrt=(0, 1))(x, y))


def test_wrong_calls_fail_as_they_would_on_the_function():
    vg = ds.value_and_grad(loss, wrt=(0, 1))
    vg(0.3, 0.4)
    with pytest.raises(TypeError):
        vg(0.3)
    with pytest.raises(TypeError):
        vg(0.3, 0.4, 0.5)
    with pytest.raises(TypeError):
        vg(0.3, z=0.4)


def scaled(x, y, scale=2.0, *more):
    return np.sum(x * y) * scale


def test_a_signature_with_defaults_passes_other_calls_on_as_given():
    vg = ds.value_and_grad(scaled, wrt=(0, 1))
    x, y = _array((2, 3)), _array((2, 3))
    vg(x, y, 2.0)
    _same(vg(x, y, 2.0), ds.value_and_grad(scaled, wrt=(0, 1))(x, y, 2.0))
    _same(vg(x, y, scale=3.0), ds.value_and_grad(scaled, wrt=(0, 1))(x, y, scale=3.0))
    _same(vg(x, y), ds.value_and_grad(scaled, wrt=(0, 1))(x, y))


def test_gradients_are_the_callers_own_writeable_arrays():
    df = ds.grad(lambda x: np.sum(x))           # the adjoint of a sum: one broadcast 1.0
    x = _array((2, 3))
    for _ in range(3):
        g = df(x)
        assert g.flags.writeable and not np.shares_memory(g, x)
        g[...] = 7.0
    np.testing.assert_array_equal(df(x), np.ones((2, 3)))


def with_aux(x, s):
    h = np.tanh(x) * s
    return np.sum(h * h), (h, np.sum(h))


@pytest.mark.parametrize("with_value", [False, True])
def test_auxiliary_results_and_float_gradients_come_back_as_on_the_general_path(with_value):
    make = ds.value_and_grad if with_value else ds.grad
    df = make(with_aux, wrt=(0, 1), has_aux=True)
    x = _array((2, 3))
    for _ in range(3):
        got = df(x, 0.7)
        _same(got, make(with_aux, wrt=(0, 1), has_aux=True)(x, 0.7))
    grads = got[1] if with_value else got[0]
    assert isinstance(grads[1], float)              # a float argument's gradient is a float


def squares(x):
    return np.sum(x * x)


def test_source_shows_the_code_of_the_last_call():
    df = ds.grad(squares)
    df(0.5)
    for arg in (0.5, _array((2, 3)), 0.5, _array((1, 1)), 0.25):
        df(arg)
        fresh = ds.grad(squares)
        fresh(arg)
        assert df.last is fresh.last and ds.source(df) == ds.source(fresh)


def picks(x, i):
    return np.sum(x[i] * x[i])


def test_errors_in_guarded_calls_name_the_users_line():
    df = ds.grad(picks)
    df(_array((3, 2)), 1)
    df(_array((3, 2)), 2)
    with pytest.raises(IndexError) as info:
        df(_array((3, 2)), 5)
    assert any("raised in generated code" in note for note in info.value.__notes__)
