"""ds.hvp, ds.hessian and ds.jacobian against finite differences (float64), for functions
with loops and branches, and the forward/reverse choice of ds.jacobian."""
from collections import namedtuple
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import diffsrc as ds
from gradcheck import arrays, shapes
from test_higher_order import ssm_loss          # the same score network

SETTINGS = settings(max_examples=6, deadline=None, derandomize=True)


def fd_jacobian(f, x, eps=1e-6):
    """Central differences, shaped out.shape + in.shape."""
    x = np.asarray(x, dtype=np.float64)
    cols = []
    for j in range(x.size):
        e = np.zeros_like(x)
        e.flat[j] = eps
        cols.append((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * eps))
    y = np.asarray(f(x))
    return np.stack(cols, axis=-1).reshape(y.shape + x.shape)


def branchy_loop(x, n):
    """A loop whose body branches on run-time values."""
    total = 0.0
    y = x
    for i in range(n):
        if np.sum(y) > 0.0:
            y = np.tanh(y) * x + 0.1 * i
        else:
            y = y * y - np.sin(x)
        total = total + np.sum(y * y)
    return total + np.sum(x ** 4) / 4.0


def away_from_the_branch_boundary(x, n):
    """Finite differences straddling `np.sum(y) > 0` would mix both branches."""
    y = x
    for i in range(n):
        if abs(np.sum(y)) < 1e-3:
            return False
        y = np.tanh(y) * x + 0.1 * i if np.sum(y) > 0.0 else y * y - np.sin(x)
    return True


@SETTINGS
@given(x=arrays((3,)), n=st.integers(0, 3))
def test_hvp_matches_finite_differences_of_the_gradient(x, n):
    assume(away_from_the_branch_boundary(x, n))
    v = np.linspace(-1.0, 1.0, 3)
    g = ds.grad(branchy_loop)
    eps = 1e-6
    fd = (g(x + eps * v, n) - g(x - eps * v, n)) / (2 * eps)
    np.testing.assert_allclose(ds.hvp(branchy_loop)(x, n, v), fd, rtol=1e-5, atol=1e-6)


@SETTINGS
@given(x=arrays((2, 2)), n=st.integers(1, 3))
def test_hessian_of_a_function_with_loops_and_branches(x, n):
    assume(away_from_the_branch_boundary(x, n))
    h = ds.hessian(branchy_loop)(x, n)
    assert h.shape == (2, 2, 2, 2)
    expected = fd_jacobian(lambda z: ds.grad(branchy_loop)(z, n), x)
    np.testing.assert_allclose(h, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h.reshape(4, 4), h.reshape(4, 4).T, rtol=1e-9, atol=1e-9)


def quadratic(x, a):
    return x @ a @ x + np.sum(x)


def test_hessian_of_a_quadratic_form_is_exact():
    a = np.arange(9.0).reshape(3, 3)
    np.testing.assert_allclose(ds.hessian(quadratic)(np.ones(3), a), a + a.T, rtol=0, atol=1e-12)


def cubic(x):
    return x ** 3 - 2.0 * x


def test_hessian_and_jacobian_of_floats_are_floats():
    assert ds.hessian(cubic)(2.0) == pytest.approx(12.0) and type(ds.hessian(cubic)(2.0)) \
        is float
    assert ds.jacobian(cubic)(2.0) == pytest.approx(10.0)


def widen(x):
    """R^n -> R^(3n): fewer inputs than outputs (forward mode)."""
    return np.concatenate([np.sin(x), x * x, np.cumsum(x)])


def narrow(x):
    """R^(m x n) -> R^n: more inputs than outputs (reverse mode)."""
    return np.sum(np.tanh(x) * x, axis=0)


@SETTINGS
@given(shape=shapes(min_dims=1, max_dims=2, max_side=3), data=st.data())
def test_jacobian_matches_finite_differences_both_ways(shape, data):
    x = data.draw(arrays(shape))
    jw = ds.jacobian(widen)(x.ravel())
    np.testing.assert_allclose(jw, fd_jacobian(widen, x.ravel()), rtol=1e-6, atol=1e-8)
    jn = ds.jacobian(narrow)(x)
    assert jn.shape == x.shape[1:] + x.shape
    np.testing.assert_allclose(jn, fd_jacobian(narrow, x), rtol=1e-6, atol=1e-8)


def test_jacobian_chooses_forward_or_reverse_by_size():
    wide, thin = ds.jacobian(widen), ds.jacobian(narrow)
    wide(np.ones(2))
    thin(np.ones((3, 2)))
    assert "def widen_jvp(" in ds.source(wide)
    assert "_back(" in ds.source(thin)


def scaled(x, k):
    out = x
    while k > 0:
        out = 2.0 * out
        k = k - 1
    return out


def test_jacobian_with_respect_to_a_named_argument_through_a_while_loop():
    j = ds.jacobian(scaled, wrt="x")(np.ones(2), 3)
    np.testing.assert_allclose(j, 8.0 * np.eye(2))


def test_source_of_a_hessian_is_forward_over_reverse():
    h = ds.hessian(quadratic)
    h(np.ones(2), np.eye(2))
    text = ds.source(h)
    compile(text, "<hessian>", "exec")
    assert "def quadratic_grad_jvp(x, a, x_dot):" in text
    assert "t_dot = x_dot @ a" in text and "matmul_left(" in text        # the pullback's code


# ------------------------------------------------------------ sliced score matching, hvp
def test_hvp_of_the_sliced_score_matching_loss_in_its_parameters():
    """Forward over reverse over reverse: the loss already contains a gradient."""
    rng = np.random.default_rng(0)
    params = {"W1": rng.normal(size=(2, 4)), "b1": rng.normal(size=4),
              "W2": rng.normal(size=(4, 2)), "b2": rng.normal(size=2)}
    x, v = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
    t = {k: rng.normal(size=p.shape) for k, p in params.items()}
    hv = ds.hvp(ssm_loss)(params, x, v, t)
    g = ds.grad(ssm_loss)
    eps = 1e-6
    plus = g({k: params[k] + eps * t[k] for k in params}, x, v)
    minus = g({k: params[k] - eps * t[k] for k in params}, x, v)
    for k in params:
        np.testing.assert_allclose(hv[k], (plus[k] - minus[k]) / (2 * eps), rtol=1e-5,
                                   atol=1e-7)


# ------------------------------------------------- structured arguments, second order
@dataclass
class Layer:
    w: np.ndarray
    b: float


Pair = namedtuple("Pair", "w b")


def layer_loss(p, x):
    return np.sum(np.tanh(x @ p.w + p.b) ** 2)


def sum_of_weight_gradient(p, x):
    return np.sum(parts(ds.grad(layer_loss)(p, x))[0])


@pytest.mark.parametrize("cls", [Layer, Pair])
def test_hvp_and_grad_of_grad_with_a_dataclass_or_namedtuple_argument(cls):
    """The gradient's generated code rebuilds the structure with with_fields(...), which
    is read back as a structure."""
    x = np.linspace(-1.0, 1.0, 6).reshape(2, 3)
    p, t = cls(np.array([0.3, -0.2, 0.5]), 0.1), cls(np.array([1.0, 0.5, -1.0]), 1.0)
    g = ds.grad(layer_loss)
    eps = 1e-6
    plus = parts(g(cls(p.w + eps * t.w, p.b + eps * t.b), x))
    minus = parts(g(cls(p.w - eps * t.w, p.b - eps * t.b), x))
    assert type(g(p, x)) is cls and type(ds.hvp(layer_loss)(p, x, t)) is cls
    hv = parts(ds.hvp(layer_loss)(p, x, t))
    for i in range(2):
        np.testing.assert_allclose(hv[i], (plus[i] - minus[i]) / (2 * eps), rtol=1e-6,
                                   atol=1e-8)
    gg = parts(ds.grad(sum_of_weight_gradient)(p, x))
    f = sum_of_weight_gradient
    np.testing.assert_allclose(gg[0], [(f(cls(p.w + eps * e, p.b), x) - f(cls(p.w - eps * e, p.b), x))
                                       / (2 * eps) for e in np.eye(3)], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gg[1], (f(cls(p.w, p.b + eps), x) - f(cls(p.w, p.b - eps), x))
                               / (2 * eps), rtol=1e-6, atol=1e-8)


def parts(gradient):
    """(w, b) of a gradient (read inside differentiated code too)."""
    return gradient.w, gradient.b


Point = namedtuple("Point", "x y")


def point_loss(p):
    return p.x * p.y + p.x ** 2


def test_the_gradient_of_a_namedtuple_is_that_namedtuple():
    """At first order too, through grad, value_and_grad, a tuple wrt and pullback."""
    g = ds.grad(point_loss)(Point(1.0, 2.0))
    assert type(g) is Point and g == (4.0, 1.0)
    assert ds.value_and_grad(point_loss)(Point(1.0, 2.0))[1] == Point(4.0, 1.0)
    both = ds.grad(lambda p, q: point_loss(p) * q, wrt=(0, 1))(Point(1.0, 2.0), 2.0)
    assert type(both[0]) is Point and both == (Point(8.0, 2.0), 3.0)
    _, back = ds.pullback(point_loss, Point(np.ones(2), np.ones(2)))
    assert type(back(np.ones(2))[0]) is Point


# ------------------------------------------------------- structured Jacobians, wrt tuples
def fd_blocks(f, args, i, eps=1e-6):
    """Central differences of every float output leaf with respect to every float leaf of
    argument i, as {(output leaf, input leaf): out.shape + in.shape}."""
    from diffsrc.frontend.trees import build, leaves_of, tree_of
    tree = tree_of(args[i])
    leaves = [np.asarray(leaf, dtype=np.float64) for leaf in leaves_of(tree, args[i])]
    out_tree = tree_of(f(*args))
    outs = leaves_of(out_tree, f(*args))
    blocks = {}
    for k, leaf in enumerate(leaves):
        cols = []
        for j in range(leaf.size):
            def moved(s):
                shifted = [x.copy() for x in leaves]
                shifted[k].flat[j] += s
                value = build(tree, [x if np.ndim(x) else float(x) for x in shifted])
                return leaves_of(out_tree, f(*args[:i], value, *args[i + 1:]))
            plus, minus = moved(eps), moved(-eps)
            cols.append([(np.asarray(a) - np.asarray(b)) / (2 * eps) for a, b in zip(plus, minus)])
        for o, out in enumerate(outs):
            blocks[o, k] = np.stack([c[o] for c in cols], axis=-1).reshape(
                np.shape(out) + leaf.shape)
    return blocks


def assert_jacobian(jac, f, args, wrt, single):
    """`jac` (the Jacobian's structure: outputs, then a tuple over wrt when not single,
    then the argument's structure) against finite differences."""
    from diffsrc.frontend.trees import leaves_of, tree_of
    out = f(*args)
    per_output = leaves_of(tree_of(out), jac) if tree_of(out).kind != "leaf" else [jac]
    for n, i in enumerate(wrt):
        expected = fd_blocks(f, args, i)
        tree = tree_of(args[i])
        for o, blocks in enumerate(per_output):
            got = leaves_of(tree, blocks if single else blocks[n])
            for k, block in enumerate(got):
                assert np.shape(block) == expected[o, k].shape
                np.testing.assert_allclose(block, expected[o, k], rtol=1e-5, atol=1e-7)


def structured(p, y, k):
    """A dict argument, a dict-of-tuple output, a loop with a branch, a float leaf."""
    z = p["w"][:2] * y
    for i in range(k):
        if np.sum(z) > 0.0:
            z = np.sin(z) * p["s"] + p["w"][1:]
        else:
            z = z * y - p["s"]
    return {"z": z, "extra": (np.sum(p["w"] ** 2) * y[0], p["s"] * np.tanh(y))}


@SETTINGS
@given(w=arrays((3,)), s=st.floats(-2.0, 2.0), y=arrays((2,)), k=st.integers(0, 3))
def test_jacobian_of_structured_arguments_and_outputs_matches_finite_differences(w, s, y, k):
    p = {"w": w, "s": s}
    z = p["w"][:2] * y
    for i in range(k):      # keep finite differences on one side of the branch
        assume(abs(np.sum(z)) > 1e-3)
        z = np.sin(z) * s + w[1:] if np.sum(z) > 0.0 else z * y - s
    for wrt, single in [(0, True), ("y", True), ((0, 1), False), (("y", "p"), False)]:
        jac = ds.jacobian(structured, wrt=wrt)(p, y, k)
        indices = [{"p": 0, "y": 1}.get(w, w) for w in ((wrt,) if single else wrt)]
        assert_jacobian(jac, structured, (p, y, k), indices, single)
        if wrt == 0:
            assert type(jac["extra"][0]["s"]) is float          # a 0-d output by a float


def two_outputs(x, a):
    return np.tanh(a @ x), [np.sum(x * x), x[0] * a]


def test_jacobian_forward_and_reverse_agree_on_structured_outputs():
    """Few inputs, many outputs (forward) and the reverse of it give the same blocks."""
    rng = np.random.default_rng(1)
    x, a = rng.normal(size=2), rng.normal(size=(3, 2))
    forward = ds.jacobian(two_outputs, wrt=0)(x, a)            # 2 inputs < 13 outputs
    reverse = ds.jacobian(two_outputs, wrt=(0, 1))(x, a)       # 8 inputs < 13: forward too
    assert "_jvp(" in ds.source(ds.jacobian(two_outputs))
    wide = ds.jacobian(lambda x, a: np.sum(a @ x), wrt=(0, 1))
    assert wide(x, a)[1].shape == (3, 2) and "_back(" in ds.source(wide)
    np.testing.assert_allclose(wide(x, a)[1], np.outer(np.ones(3), x))
    np.testing.assert_allclose(forward[0], reverse[0][0], rtol=1e-12)
    np.testing.assert_allclose(forward[1][1], reverse[1][1][0], rtol=1e-12)
    assert_jacobian(reverse, two_outputs, (x, a), (0, 1), False)


def many_inputs(params, x):
    """More input entries than output entries: reverse mode, with a loop's tape."""
    h = x
    for w in params:
        h = np.tanh(h @ w)
    return {"mean": np.mean(h), "h": h[0]}


def test_reverse_mode_jacobian_through_a_loop_calls_the_pullback_afresh_per_row():
    rng = np.random.default_rng(2)
    params = [rng.normal(size=(3, 3)), rng.normal(size=(3, 2))]
    x = rng.normal(size=(4, 3))
    j = ds.jacobian(many_inputs)
    jac = j(params, x)
    assert "_back(" in ds.source(j)
    assert jac["h"][1].shape == (2, 3, 2) and isinstance(jac["mean"], list)
    assert_jacobian(jac, many_inputs, (params, x), (0,), True)


def with_constants(x):
    return np.sin(x), None, 3, 2.0


def test_jacobian_of_constant_and_non_array_outputs():
    """None stays None; an int or a constant output has a zero Jacobian, both ways."""
    for x in (np.ones(2), np.ones(7)):
        jac = ds.jacobian(with_constants)(x)
        np.testing.assert_allclose(jac[0], np.diag(np.cos(x)))
        assert jac[1] is None and not np.any(jac[2]) and not np.any(jac[3])
        assert jac[2].shape == jac[3].shape == x.shape


def test_jacobian_of_float32_keeps_float32():
    j = ds.jacobian(lambda x: np.sin(x) * 2.0)(np.ones(3, dtype=np.float32))
    assert j.dtype == np.float32 and j.shape == (3, 3)


def test_jacobian_with_respect_to_an_int_leaf_names_it():
    with pytest.raises(ds.errors.NonDifferentiableError, match=r"argument 0\['n'\].*int"):
        ds.jacobian(lambda p: p["x"] * p["n"])({"x": np.ones(2), "n": 3})


def coupled(x, y):
    return np.sum(np.sin(x) * y[:2]) + np.sum(y ** 3) * x[0]


@SETTINGS
@given(x=arrays((2,)), y=arrays((3,)))
def test_hessian_with_a_tuple_wrt_gives_blocks(x, y):
    """H[i][j] is shaped in_i.shape + in_j.shape; H[1][0] is H[0][1] transposed."""
    h = ds.hessian(coupled, wrt=(0, "y"))(x, y)
    assert [[b.shape for b in row] for row in h] == [[(2, 2), (2, 3)], [(3, 2), (3, 3)]]
    g = ds.grad(coupled, wrt=(0, 1))
    for i, arg in enumerate((x, y)):
        for j in range(2):
            fd = fd_jacobian(lambda z: g(*[z if k == j else a for k, a in enumerate((x, y))])[i],
                             (x, y)[j])
            np.testing.assert_allclose(h[i][j], fd, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h[1][0], h[0][1].T, rtol=1e-12, atol=1e-12)


def test_hessian_of_a_dict_of_parameters_is_a_dict_of_dicts():
    def loss(p):
        return np.sum(np.tanh(p["w"]) * p["b"]) + p["c"] ** 2 * p["b"][0]
    p = {"w": np.array([0.3, -0.2]), "b": np.array([1.0, 2.0]), "c": 1.5}
    h = ds.hessian(loss)(p)
    assert h["w"]["w"].shape == (2, 2) and h["b"]["c"].shape == (2,)
    assert type(h["c"]["c"]) is float and h["c"]["c"] == pytest.approx(2.0)
    np.testing.assert_allclose(h["w"]["b"], np.diag(1 - np.tanh(p["w"]) ** 2))
    np.testing.assert_allclose(h["b"]["c"], [2 * 1.5, 0.0])


# ----------------------------------------------------------------- ds.ir and ds.source
@pytest.mark.parametrize("make", [
    lambda: ds.jvp(branchy_loop), lambda: ds.hvp(branchy_loop),
    lambda: ds.hessian(branchy_loop), lambda: ds.jacobian(branchy_loop)])
def test_ir_and_source_of_forward_mode_transforms_with_loops(make):
    """Before a call (stand-in arguments) and after one (the code that ran)."""
    x, n = np.array([0.5, -1.0]), 2
    for called in (False, True):
        t = make()
        if called:
            if isinstance(t, ds.higher.JvpFunction):
                t((x, n), (np.ones(2), None))
            else:
                t(x, n, np.ones(2)) if isinstance(t, ds.higher.HvpFunction) else t(x, n)
        text, ir = ds.source(t), ds.ir(t)
        compile(text, "<jvp>", "exec")
        reverse = called and getattr(t, "forward_only", True) is False   # 2 inputs, 1 output
        assert ("_pullback(" if reverse else "_jvp(") in text and "for " in text
        assert "function branchy_loop" in ir and " = for " in ir
        assert ("  pullback(" in ir) if reverse else ("_jvp(" in ir and "x_dot" in text)
        assert not called or ("n_dot" not in text and "n_dot" not in ir)
    assert "n_dot" not in ds.ir(make(), x, n)


def test_the_jvp_docstring_names_the_users_function():
    text = ds.source(ds.jvp(branchy_loop))
    line = branchy_loop.__code__.co_firstlineno
    assert f'"""Generated by diffsrc from branchy_loop ({__file__}:{line})."""' in text
