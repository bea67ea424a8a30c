"""Returned derivatives never share memory with what the caller holds (passes/owned_outputs.py).

Random programs whose derivatives simplify to an argument, a view of one, a module
constant or another derivative: every returned gradient must be a new array, the
values must still match finite differences, and updating a gradient in place must
leave the arguments, the constant and the other results alone.
"""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import diffsrc as ds
from diffsrc.api import transform
from gradcheck import check_grad, module_from_source

TERMS = ["{p}", "{p} * {q}", "{p} + {q}", "{p} * 1.0", "{p} - 0.0", "{p}.T.T", "-(-{p})",
         "{p}[:, :]", "np.reshape(np.reshape({p}, (12,)), (3, 4))", "{p} * W",
         "{p} if np.sum({q}) > 0 else {q}"]
# statements that carry a value through a loop: its result may be the value it started from
LOOPS = ["{t} = {p}\n    for _ in range({n}):\n        {t} = {t} * 1.0",
         "{t} = {p}\n    for _ in range({n}):\n        {t} = {t} + {q}"]
LOSSES = ["np.sum({t})", "np.sum({t} * {u})", "np.sum({t} * W)"]


@st.composite
def programs(draw):
    """(source, wrt, has_aux): F(a, b) of a chain of TERMS over a, b and the module
    constant W, whose derivatives are often an argument, W or each other."""
    values, lines = ["a", "b", "W"], []
    for i in range(draw(st.integers(1, 4))):
        p, q = draw(st.sampled_from(values)), draw(st.sampled_from(values))
        if draw(st.booleans()):
            lines.append(f"t{i} = " + draw(st.sampled_from(TERMS)).format(p=p, q=q))
        else:
            lines.append(draw(st.sampled_from(LOOPS)).format(t=f"t{i}", p=p, q=q,
                                                             n=draw(st.integers(0, 2))))
        values.append(f"t{i}")
    last = values[-1]
    loss = draw(st.sampled_from(LOSSES)).format(t=last, u=draw(st.sampled_from(values)))
    has_aux = draw(st.booleans())
    body = "".join(f"    {line}\n" for line in lines)
    result = f"{loss}, {last}" if has_aux else loss
    source = f"def F(a, b):\n{body}    return {result}\n"
    return source, draw(st.sampled_from([0, 1, (0, 1)])), has_aux


def _module(source, constant):
    """The program as a module diffsrc can read, W its constant."""
    module = module_from_source(source, "owned_outputs")
    module.W = constant
    return module


def _leaves(tree):
    if isinstance(tree, (tuple, list)):
        return [leaf for item in tree for leaf in _leaves(item)]
    if isinstance(tree, dict):
        return [leaf for item in tree.values() for leaf in _leaves(item)]
    return [tree]


def _assert_owned(grads, held):
    """No gradient shares memory with an array in `held` or with another gradient; each
    is writeable."""
    grads = [g for g in _leaves(grads) if isinstance(g, np.ndarray)]
    for g in grads:
        assert g.flags.writeable
        for h in held:
            assert not np.shares_memory(g, h), "a gradient is an array the caller holds"
    for g, h in itertools.combinations(grads, 2):
        assert not np.shares_memory(g, h), "two results share memory"


@settings(max_examples=60, deadline=None)
@given(programs(), st.integers(0, 1000))
def test_gradients_never_share_memory_with_the_caller(program, seed):
    source, wrt, has_aux = program
    rng = np.random.default_rng(seed)
    a, b, constant = (rng.normal(size=(3, 4)) for _ in range(3))
    module = _module(source, constant)
    saved = [a.copy(), b.copy(), constant.copy()]
    if not has_aux:
        check_grad(module.F, (a, b), wrt=wrt)
    result, grads = ds.value_and_grad(module.F, wrt=wrt, has_aux=has_aux)(a, b)
    aux = [result[1]] if has_aux else []
    _assert_owned(grads, [a, b, constant] + aux)
    unoptimised = transform(module.F, (a, b), (wrt,) if isinstance(wrt, int) else wrt, "grad",
                            optimize=False, has_aux=has_aux).function
    value, plain = unoptimised(a, b)
    _assert_owned(plain, [a, b, constant] + (list(_leaves(value)) if has_aux else []))
    for g in _leaves(grads) + _leaves(plain):
        g[...] = 7.0                       # the caller updates its gradients in place
    for before, after in zip(saved, [a, b, constant]):
        np.testing.assert_array_equal(before, after)


@settings(max_examples=40, deadline=None)
@given(programs(), st.integers(0, 1000))
def test_tangents_never_share_memory_with_the_caller(program, seed):
    source, _, has_aux = program
    rng = np.random.default_rng(seed)
    a, b, constant, a_dot, b_dot = (rng.normal(size=(3, 4)) for _ in range(5))
    module = _module(source, constant)
    y, y_dot = ds.jvp(module.F, (a, b), (a_dot, b_dot))
    held = [a, b, constant, a_dot, b_dot] + [v for v in _leaves(y) if isinstance(v, np.ndarray)]
    _assert_owned(y_dot, held)
    eps = 1e-6
    ahead, behind = module.F(a + eps * a_dot, b + eps * b_dot), \
        module.F(a - eps * a_dot, b - eps * b_dot)
    for tangent, plus, minus in zip(_leaves(y_dot), _leaves(ahead), _leaves(behind)):
        np.testing.assert_allclose(tangent, (plus - minus) / (2 * eps), rtol=1e-5, atol=1e-6)


def _write(name, body):
    return _module(f"def {name}{body}", None)


def test_a_shared_gradient_is_copied_and_a_fresh_one_returned_as_it_is():
    module = _write("F", "(a, b):\n    return np.sum(a * b)\n")
    a, b = np.ones(3), np.full(3, 2.0)
    df = ds.grad(module.F, wrt=(0, 1))
    ga, gb = df(a, b)                     # d/da is b itself, d/db is a
    code = df.last.source                 # the code specialised to these arguments
    assert "a.copy()" in code and "b.copy()" in code
    _assert_owned((ga, gb), [a, b])
    np.testing.assert_array_equal(ga, b)
    fresh = _write("G", "(a):\n    return np.sum(np.sin(a))\n")
    dg = ds.grad(fresh.G)
    np.testing.assert_allclose(dg(a), np.cos(a))
    assert "copy" not in dg.last.source


def test_pullback_never_returns_the_cotangent_it_was_given():
    module = _write("F", "(x):\n    return x + 1.0\n")
    x, cotangent = np.arange(3.0), np.ones(3)
    y, back = ds.pullback(module.F, x)
    (x_bar,) = back(cotangent)
    assert not np.shares_memory(x_bar, cotangent)
    np.testing.assert_array_equal(x_bar, cotangent)


def test_leaves_of_a_structured_gradient_are_copied_where_shared():
    module = _write("F", "(params, x):\n    return np.sum(params['w'] * x + params['v'])\n")
    params, x = {"w": np.ones(3), "v": np.arange(3.0)}, np.full(3, 4.0)
    grads = ds.grad(module.F)(params, x)
    _assert_owned(grads, [x, params["w"], params["v"]])
    np.testing.assert_array_equal(grads["w"], x)
    np.testing.assert_array_equal(grads["v"], np.ones(3))


@pytest.mark.parametrize("a, b", [(2.0, 3.0), (np.float64(2.0), np.float64(3.0))])
def test_numbers_come_back_as_numbers(a, b):
    module = _write("F", "(a, b):\n    return a * b\n")
    ga, gb = ds.grad(module.F, wrt=(0, 1))(a, b)
    assert (ga, gb) == (b, a) and type(ga) is type(b)


def test_a_copied_gradient_differentiates_again():
    inner = _write("F", "(x, b):\n    return np.sum(x * b)\n")
    module = _module("def G(x, b):\n    return np.sum(ds.grad(F)(x, b) * x)\n", None)
    module.F, module.ds = inner.F, ds
    x, b = np.arange(3.0), np.full(3, 2.0)
    df = ds.grad(inner.F)
    df(x, b)
    assert "b.copy()" in df.last.source   # d/dx is b itself: copied
    check_grad(module.G, (x, b), wrt=(0, 1))
