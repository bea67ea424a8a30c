"""Indexing against central finite differences: basic slicing (negative steps, None,
Ellipsis), integer-array and boolean-mask gathers with repeated indices, take,
take_along_axis, sort through argsort, and `x[idx] = v` functional updates."""
import numpy as np
import pytest
from hypothesis import given

from numpy_support import HYP, arrays, check_grad, ds, hnp, out, random_array, shapes, st


def source(expr, params="x"):
    return f"def F({params}):\n    r = {expr}\n    return np.sum(r * (r + 1.0))\n"


BASIC = {
    "int": "x[1]",
    "negative_int": "x[-1, 2]",
    "slice": "x[1:, :2]",
    "negative_step": "x[::-1]",
    "negative_step_2": "x[2:0:-1, ::-2, 1::-1]",
    "newaxis": "x[None, :, np.newaxis, 0]",
    "ellipsis": "x[..., 1]",
    "ellipsis_middle": "x[0, ..., ::2]",
    "ellipsis_none": "x[..., None]",
    "empty_slice": "x[3:] * 2.0",
    "scalar": "x[1, 2, 3]",
}
ADVANCED = {
    "int_array": "x[np.array([0, 2, 1])]",
    "int_list": "x[[1, 1, 0]]",
    "repeated": "x[np.array([2, 2, 2, 0]), 1]",
    "negative_repeated": "x[:, [-1, -1, 0]]",
    "two_arrays": "x[np.array([0, 1, 1]), np.array([2, 2, 0])]",
    "broadcast_arrays": "x[np.array([[0], [1]]), np.array([0, 2, 2])]",
    "mixed_slice_array": "x[1:, [0, 0, 2], ::2]",
    "bool_mask": "x[x > 0.2]",
    "bool_mask_axis": "x[:, np.array([True, False, True])]",
    "bool_mask_first": "x[np.array([False, True, True])]",
}


@pytest.mark.parametrize("name", list(BASIC) + list(ADVANCED))
def test_indexing_matches_finite_differences(name):
    x = random_array((3, 3, 4), seed=7)
    check_grad(source({**BASIC, **ADVANCED}[name]), (x,))


def gather_repeated(x, idx):
    return np.sum(x[idx] * np.arange(1.0, 1.0 + len(idx)))


def test_repeated_indices_accumulate():
    x = np.array([1.0, 2.0, 3.0])
    idx = np.array([2, 0, 2, 2])
    g = ds.grad(gather_repeated)(x, idx)
    np.testing.assert_array_equal(g, [2.0, 0.0, 1.0 + 3.0 + 4.0])


def gather_arg(x, idx):
    return out(x[idx])


@HYP
@given(data=st.data())
def test_integer_array_gather_over_shapes(data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, max_side=4), label="shape")
    x = data.draw(arrays(shape))
    idx = data.draw(hnp.arrays(np.int64, data.draw(shapes(1, 2, 1, 4)),
                               elements=st.integers(-shape[0], shape[0] - 1)), label="idx")
    check_grad(gather_arg, (x, idx))


def mask_arg(x, mask):
    return out(x[mask] * 2.0)


@HYP
@given(data=st.data())
def test_boolean_mask_gather_over_shapes(data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, max_side=4), label="shape")
    x = data.draw(arrays(shape))
    mask = data.draw(hnp.arrays(np.bool_, shape))
    g = check_grad(mask_arg, (x, mask))
    assert np.all(g[~mask] == 0)


# ------------------------------------------------------------------- take / take_along_axis
TAKE = {
    "take_flat": "np.take(x, np.array([5, 0, 5, 11]))",
    "take_axis": "np.take(x, [2, 0, 2], axis=1)",
    "take_neg_axis": "np.take(x, np.array([[1, 3], [3, 3]]), axis=-1)",
    "take_method": "x.take([1, 1], axis=0)",
    "take_wrap": "np.take(x, [4, -5, 7], axis=2, mode='wrap')",
    "take_clip": "np.take(x, [9, -3, 1], axis=1, mode='clip')",
    "take_along_axis": "np.take_along_axis(x, np.argsort(x, axis=1), axis=1)",
    "take_along_axis_repeat": "np.take_along_axis(x, np.array([[[0, 0, 3]]]), axis=-1)",
    "take_along_axis_none": "np.take_along_axis(x, np.array([0, 7, 7, 23]), axis=None)",
    "take_along_argmax": "np.take_along_axis(x, np.expand_dims(np.argmax(x, axis=0), 0), 0)",
    "sort": "np.sort(x)",
    "sort_axis0": "np.sort(x, axis=0)",
    "sort_none": "np.sort(x, axis=None)",
}


@pytest.mark.parametrize("name", list(TAKE))
def test_take_and_sort_match_finite_differences(name):
    x = random_array((2, 3, 4), seed=9)
    check_grad(source(TAKE[name]), (x,))


def top2(x):
    s = np.sort(x)
    return s[-1] * 2.0 + s[-2]


def test_sort_values_gradient_goes_through_the_permutation():
    x = np.array([0.3, -1.0, 2.0, 1.5])
    np.testing.assert_array_equal(ds.grad(top2)(x), [0.0, 0.0, 2.0, 1.0])


@HYP
@given(data=st.data())
def test_sort_over_shapes(data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, max_side=4), label="shape")
    x = data.draw(arrays(shape)) + np.arange(int(np.prod(shape))).reshape(shape) * 1e-2
    axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    check_grad(source(f"np.sort(x, axis={axis}) * np.linspace(1.0, 2.0, "
                      f"{x.size if axis is None else shape[axis]})" if axis in (None, -1,
                      len(shape) - 1) else f"np.sort(x, axis={axis})"), (x,))


# -------------------------------------------------------------------- x[idx] = v
def set_slice(x, v):
    y = x * 1.0
    y[1:3] = v
    return out(y)


def set_int_array(x, v):
    y = x.copy()
    y[np.array([0, 3])] = v * 2.0
    return out(y)


def set_mask(x, v):
    y = x + 0.0
    y[x > 0.5] = v
    return out(y)


def set_broadcast(x, v):
    y = x.copy()
    y[:, 1] = v
    return out(y * x)


def add_at_slice(x, v):
    y = x.copy()
    y[1:] += v
    return out(y)


def set_in_loop(x, v):
    y = x * 1.0
    for i in range(3):
        y[i] = y[i] * v + float(i)
    return out(y)


def set_scalar(x, v):
    y = x.copy()
    y[2, 1] = v
    return out(y)


SETS = [(set_slice, (5,), (2,)), (set_int_array, (5,), (2,)), (set_mask, (5,), ()),
        (set_broadcast, (3, 4), (3,)), (add_at_slice, (4, 2), (2,)), (set_in_loop, (4,), ()),
        (set_scalar, (3, 2), ())]


@pytest.mark.parametrize("f, xshape, vshape", SETS, ids=[s[0].__name__ for s in SETS])
def test_functional_update_adjoints_for_x_and_v(f, xshape, vshape):
    x = random_array(xshape, 1)
    v = random_array(vshape, 2) if vshape else 0.7
    check_grad(f, (x, v), wrt=(0, 1))


def set_repeated(x, v):
    y = x.copy()
    y[np.array([1, 1])] = v
    return out(y)


def test_functional_update_with_repeated_indices():
    # NumPy keeps the last of the repeated writes, so v[0] does not reach the output
    check_grad(set_repeated, (np.ones(3), np.array([0.5, 2.0])), wrt=(0, 1))


# ------------------------------------------------------------------------ extras
def partition_f(x): return out(np.partition(x, 2) * np.arange(1.0, 6.0))
def partition_axis(x): return out(np.partition(x, (0, 2), axis=0))
def select_f(x): return out(np.select([x > 0.5, x < -0.5], [x * 2.0, x ** 2], default=x))
def select_pos(x, d): return out(np.select([x > 0.0], [x * 3.0], d))
def interp_x(x, fp): return out(np.interp(x, np.array([-1.0, 0.0, 1.5]), fp))
def r_join(a, b): return out(np.r_[a, b * 2.0, 1.0])
def c_join(a, b): return out(np.c_[a, b] @ np.array([1.0, -2.0]))
def r_matrices(a, b): return out(np.r_[a, b])


def test_partition_select_interp():
    x = random_array((5,), 21)
    check_grad(partition_f, (x,))
    check_grad(partition_axis, (random_array((4, 3), 22),))
    check_grad(select_f, (np.array([0.9, -0.1, -1.2, 0.2, 0.7]),))
    check_grad(select_pos, (np.array([0.9, -0.1, -1.2]), np.array([0.3, 0.6, 0.9])),
               wrt=(0, 1))
    check_grad(interp_x, (np.array([-1.5, -0.3, 0.4, 1.2, 2.0]), np.array([0.5, -1.0, 2.0])),
               wrt=(0, 1))


def test_r_and_c_index_tricks_are_differentiable():
    a, b = random_array((3,), 23), random_array((2,), 24)
    check_grad(r_join, (a, b), wrt=(0, 1))
    check_grad(c_join, (a, a * 0.5 + 1.0), wrt=(0, 1))
    check_grad(r_matrices, (random_array((2, 3), 1), random_array((1, 3), 2)), wrt=(0, 1))


def r_with_range(x): return out(np.r_[x, np.ones(3), 1:4] * np.r_[0:10])


def test_r_with_slices_as_constant_ranges():
    check_grad(r_with_range, (random_array((4,), 25),))


class Squares:
    def __getitem__(self, x):
        return x * x


SQUARES = Squares()


def subscript_of_constant_object(x):
    return SQUARES[x] + 0.0 * x


def test_subscript_of_a_constant_object_with_a_differentiated_index():
    assert ds.grad(subscript_of_constant_object)(3.0) == pytest.approx(6.0)


# ------------------------------------------------------------- hypothesis over shapes
@HYP
@given(data=st.data())
def test_take_and_take_along_axis_over_shapes(data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, max_side=4), label="shape")
    x = data.draw(arrays(shape))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    n = shape[axis]
    idx = data.draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=5), label="idx")
    check_grad(source(f"np.take(x, {idx!r}, axis={axis})"), (x,))
    flat = data.draw(st.lists(st.integers(0, x.size - 1), min_size=1, max_size=5))
    check_grad(source(f"np.take(x, {flat!r})"), (x,))
    k = data.draw(st.integers(1, 3))
    along = np.asarray(data.draw(hnp.arrays(np.int64, tuple(k if d == axis % len(shape) else s
                                                          for d, s in enumerate(shape)),
                                          elements=st.integers(0, n - 1))))
    check_grad(source(f"np.take_along_axis(x, np.array({along.tolist()!r}), axis={axis})"),
               (x,))


# ------------------------------------------ embedding lookups: many rows gathered by one array
def embed_loss(x, idx):
    return out(x[idx] * np.linspace(0.5, 1.5, x.shape[1]))


@HYP
@given(data=st.data())
def test_embedding_gather_sums_repeated_rows(data):
    """Large enough for scatter_add's sorted path; repeated and negative row indices."""
    v = data.draw(st.integers(1, 6), label="rows")
    idx = data.draw(hnp.arrays(np.int64, (8, 8), elements=st.integers(-v, v - 1)), label="idx")
    x = data.draw(arrays((v, 64)), label="x")
    expected = np.zeros_like(x)
    np.add.at(expected, idx, (2 * x[idx] * np.linspace(0.5, 1.5, 64) + 1)
              * np.linspace(0.5, 1.5, 64))
    np.testing.assert_allclose(ds.grad(embed_loss)(x, idx), expected, rtol=1e-12, atol=1e-12)


def test_embedding_gather_matches_finite_differences():
    idx = np.random.default_rng(3).integers(-4, 4, size=(70,))
    check_grad(embed_loss, (random_array((4, 64), 5), idx))


def test_scatter_add_bounds_and_empty_indices():
    from diffsrc.runtime import scatter_add
    with pytest.raises(IndexError):
        scatter_add(np.zeros((3, 64)), np.full(100, -4), np.ones((100, 64)))
    with pytest.raises(IndexError):
        scatter_add(np.zeros((0, 64)), np.zeros(100, np.int64), np.ones((100, 64)))
    out = np.ones((3, 64))
    scatter_add(out, np.zeros((0, 2), np.int64), np.ones((0, 2, 64)))
    np.testing.assert_array_equal(out, 1.0)
