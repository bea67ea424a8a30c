"""Shape manipulation against central finite differences: reshape (-1), ravel, flatten,
transpose (axes), .T, swapaxes, moveaxis, expand_dims, squeeze, broadcast_to,
atleast_1d/2d, concatenate, stack, hstack, vstack, split, array_split, tile, repeat, flip,
roll, pad, diag, diagonal, triu, tril, trace and sliding_window_view."""
import numpy as np
import pytest
from hypothesis import given
from numpy.lib.stride_tricks import sliding_window_view

from numpy_support import FEW, HYP, arrays, check_grad, ds, out, random_array, shapes, st


def source(expr, nargs=1):
    """`def F(x[, y]): y = <expr>; return sum(y (y + 1))` with literal constants."""
    params = ", ".join("xyz"[:nargs])
    return (f"def F({params}):\n    r = {expr}\n"
            f"    return np.sum(r * (r + 1.0))\n")


# expression templates over one array x of shape (2, 3, 4) unless stated
CASES_234 = {
    "reshape": "np.reshape(x, (4, 6))",
    "reshape_minus1": "np.reshape(x, (-1, 2))",
    "reshape_method_args": "x.reshape(3, -1)",
    "reshape_method_tuple": "x.reshape((6, 4))",
    "ravel": "np.ravel(x)",
    "ravel_method": "x.ravel()",
    "flatten": "x.flatten()",
    "transpose": "np.transpose(x)",
    "transpose_axes": "np.transpose(x, (1, 2, 0))",
    "transpose_method": "x.transpose(2, 0, 1)",
    "transpose_method_tuple": "x.transpose((0, 2, 1))",
    "transpose_negative_axes": "np.transpose(x, (-1, 0, -2))",
    "transpose_method_negative": "x.transpose(-2, -1, 0)",
    "T": "x.T",
    "swapaxes": "np.swapaxes(x, 0, 2)",
    "swapaxes_method": "x.swapaxes(-1, 1)",
    "moveaxis": "np.moveaxis(x, 0, -1)",
    "moveaxis_many": "np.moveaxis(x, (0, 1), (2, 0))",
    "expand_dims": "np.expand_dims(x, 1)",
    "expand_dims_tuple": "np.expand_dims(x, (0, -1))",
    "squeeze_none": "np.squeeze(np.expand_dims(x, 0))",
    "broadcast_to": "np.broadcast_to(x[:, :1, :], (5, 2, 3, 4))",
    "atleast_1d": "np.atleast_1d(x)",
    "atleast_2d": "np.atleast_2d(x)",
    "concatenate": "np.concatenate([x, 2.0 * x[:, :2]], axis=1)",
    "concatenate_tuple_neg": "np.concatenate((x[..., :1], x * x), axis=-1)",
    "concatenate_none": "np.concatenate([x, x[0]], axis=None)",
    "stack": "np.stack([x, x * 2.0, np.sin(x)])",
    "stack_axis": "np.stack((x, -x), axis=-1)",
    "hstack": "np.hstack([x, x[:, :1]])",
    "vstack": "np.vstack([x, x[:1] * 3.0])",
    "dstack": "np.dstack([x, x])",
    "tile": "np.tile(x, 2)",
    "tile_tuple": "np.tile(x, (2, 1, 1, 3))",
    "repeat": "np.repeat(x, 2)",
    "repeat_axis": "np.repeat(x, 3, axis=1)",
    "repeat_counts": "np.repeat(x, [1, 0, 2], axis=1)",
    "repeat_method": "x.repeat(2, axis=-1)",
    "flip": "np.flip(x)",
    "flip_axis": "np.flip(x, 1)",
    "flip_axes": "np.flip(x, (0, 2))",
    "negative_step_slice": "x[::-1, ::2, ::-3]",
    "roll": "np.roll(x, 2)",
    "roll_axis": "np.roll(x, -1, axis=2)",
    "roll_tuple": "np.roll(x, (1, 2), axis=(0, 1))",
    "pad": "np.pad(x, 1)",
    "pad_widths": "np.pad(x, ((0, 1), (2, 0), (1, 1)))",
    "pad_constant_values": "np.pad(x, ((1, 1), (0, 0), (0, 2)), mode='constant', "
                           "constant_values=3.0)",
    "pad_edge": "np.pad(x, 2, mode='edge')",
    "pad_reflect": "np.pad(x, ((1, 1), (2, 1), (0, 2)), mode='reflect')",
    "pad_wrap": "np.pad(x, 1, mode='wrap')",
    "diagonal": "np.diagonal(x)",
    "diagonal_offset": "np.diagonal(x, 1, 1, 2)",
    "diagonal_method": "x.diagonal(-1, 2, 1)",
    "trace": "np.trace(x)",
    "trace_axes": "np.trace(x, 1, axis1=1, axis2=2)",
    "trace_method": "x.trace(axis1=0, axis2=2)",
    "triu": "np.triu(x)",
    "tril_k": "np.tril(x, -1)",
    "triu_k": "np.triu(x, 2)",
    "sliding_window_1d": "np.lib.stride_tricks.sliding_window_view(x, 2, axis=-1)",
    "sliding_window_2d": "np.lib.stride_tricks.sliding_window_view(x, (2, 2), axis=(1, 2))",
    "sliding_window_all": "np.lib.stride_tricks.sliding_window_view(x, (1, 2, 3))",
    "rot90": "np.rot90(x, 1, axes=(1, 2))",
    "fliplr": "np.fliplr(x)",
    "flipud": "np.flipud(x)",
    "append": "np.append(x, x[0])",
    "append_axis": "np.append(x, x[:, :1], axis=1)",
}


@pytest.mark.parametrize("name", list(CASES_234))
def test_shape_operations_match_finite_differences(name):
    x = random_array((2, 3, 4), seed=3)
    check_grad(source(CASES_234[name]), (x,))


CASES_2D = {
    "diag_extract": "np.diag(x)",
    "diag_extract_k": "np.diag(x, 1)",
    "diag_extract_neg": "np.diag(x, -2)",
    "diag_build": "np.diag(x[0])",
    "diag_build_k": "np.diag(x[:, 1], -1)",
    "atleast_2d_of_1d": "np.atleast_2d(x[0])",
    "atleast_1d_of_0d": "np.atleast_1d(x[0, 0])",
    "hstack_1d": "np.hstack([x[0], x[1], x[:, 0]])",
    "vstack_1d": "np.vstack([x[0], x[1]])",
    "column_stack": "np.column_stack([x[:, 0], x])",
    "squeeze_axis": "np.squeeze(x[:, None, :1], axis=(1, 2))",
    "squeeze_method": "x[None].squeeze(0)",
}


@pytest.mark.parametrize("name", list(CASES_2D))
def test_matrix_shape_operations_match_finite_differences(name):
    x = random_array((3, 4), seed=5)
    check_grad(source(CASES_2D[name]), (x,))


# ----------------------------------------------------------------- splits (static parts)
def split_unpack(x):
    a, b, c = np.split(x, 3, axis=1)
    return out(a * 2.0 + c * c)


def split_indices(x):
    parts = np.split(x, [1, 3])
    return out(parts[0]) + out(parts[2] * 3.0)


def array_split_loop(x):
    total = 0.0
    for k, part in enumerate(np.array_split(x, 3, axis=0)):
        total = total + (k + 1.0) * out(part)
    return total


def hsplit_vsplit(x):
    left, right = np.hsplit(x, 2)
    top, bottom = np.vsplit(x, [1])
    return out(left * right) + out(bottom) + np.sum(top)


def atleast_multi(x, y):
    a, b = np.atleast_2d(x, y)
    return out(a @ b)


def test_split_functions():
    x = random_array((4, 6), seed=11)
    check_grad(split_unpack, (x,))
    check_grad(split_indices, (x,))
    check_grad(array_split_loop, (random_array((5, 2), seed=2),))
    check_grad(hsplit_vsplit, (x,))
    check_grad(atleast_multi, (random_array((3,), 1), random_array((3, 2), 2)), wrt=(0, 1))


def split_count(x):
    return float(len(np.split(x, 3)))


def test_split_length_is_known_statically():
    assert ds.grad(split_count)(np.ones(6)).shape == (6,)


# --------------------------------------------------------- hypothesis: shapes and axes
def concat_pair(x, y):
    return out(np.concatenate([x, y], axis=-1))


@HYP
@given(data=st.data())
def test_concatenate_and_stack_over_shapes(data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, max_side=3), label="shape")
    k = data.draw(st.integers(1, 3))
    x = data.draw(arrays(shape))
    y = data.draw(arrays(shape[:-1] + (k,)))
    check_grad(concat_pair, (x, y), wrt=(0, 1))
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)), label="axis")
    check_grad(source(f"np.stack([x, y * x], axis={axis})", 2), (x, x + 1.0), wrt=(0, 1))


@HYP
@given(data=st.data())
def test_reshape_transpose_moveaxis_over_shapes(data):
    shape = data.draw(shapes(min_dims=1, max_dims=4, max_side=3), label="shape")
    x = data.draw(arrays(shape))
    perm = data.draw(st.permutations(range(len(shape))), label="perm")
    perm = [axis - len(shape) if data.draw(st.booleans()) else axis for axis in perm]
    check_grad(source(f"np.transpose(x, {tuple(perm)!r})"), (x,))
    check_grad(source(f"x.reshape({(-1,) + shape[:1]!r})"), (x,))
    src, dst = data.draw(st.integers(-len(shape), len(shape) - 1)), data.draw(
        st.integers(-len(shape), len(shape) - 1))
    check_grad(source(f"np.moveaxis(x, {src}, {dst})"), (x,))


@HYP
@given(data=st.data())
def test_broadcast_to_tile_repeat_over_shapes(data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, max_side=3), label="shape")
    x = data.draw(arrays(shape))
    target = tuple(n if data.draw(st.booleans()) else (1 if n == 1 else n) for n in shape)
    target = tuple(3 if n == 1 and data.draw(st.booleans()) else n for n in target)
    lead = data.draw(st.lists(st.integers(1, 3), max_size=2).map(tuple))
    check_grad(source(f"np.broadcast_to(x, {lead + target!r})"), (x,))
    reps = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=4).map(tuple))
    check_grad(source(f"np.tile(x, {reps!r})"), (x,))
    axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    r = data.draw(st.integers(1, 3))
    check_grad(source(f"np.repeat(x, {r}, axis={axis})"), (x,))


@HYP
@given(data=st.data())
def test_pad_roll_flip_over_shapes(data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, min_side=2, max_side=3), label="shape")
    x = data.draw(arrays(shape))
    widths = tuple(tuple(data.draw(st.integers(0, 2)) for _ in range(2)) for _ in shape)
    mode = data.draw(st.sampled_from(["constant", "edge", "symmetric", "wrap"]))
    check_grad(source(f"np.pad(x, {widths!r}, mode={mode!r})"), (x,))
    shift = data.draw(st.integers(-4, 4))
    axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    check_grad(source(f"np.roll(x, {shift}, axis={axis})"), (x,))
    check_grad(source(f"np.flip(x, {axis})"), (x,))


@FEW
@given(data=st.data())
def test_sliding_window_view_over_shapes(data):
    n = data.draw(st.integers(3, 6))
    m = data.draw(st.integers(3, 5))
    x = data.draw(arrays((n, m)))
    kh, kw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    check_grad(source(f"np.lib.stride_tricks.sliding_window_view(x, ({kh}, {kw}))"), (x,))


# a 2-D convolution written with sliding_window_view + einsum, as nn.conv2d does
def conv2d(x, w):
    windows = sliding_window_view(x, w.shape, axis=(0, 1))
    return out(np.einsum("ijkl,kl->ij", windows, w))


def test_convolution_through_sliding_windows():
    check_grad(conv2d, (random_array((5, 6), 1), random_array((3, 2), 2)), wrt=(0, 1))


# ------------------------------------------------------------------------ extras
EXTRAS = {
    "rollaxis": "np.rollaxis(x, 2)",
    "rollaxis_start": "np.rollaxis(x, 0, 2)",
    "rollaxis_neg": "np.rollaxis(x, -1, 1)",
    "matrix_transpose": "np.matrix_transpose(x)",
    "linalg_matrix_transpose": "np.linalg.matrix_transpose(x)",
    "linalg_trace": "np.linalg.trace(x)",
    "linalg_trace_offset": "np.linalg.trace(x, offset=1)",
    "linalg_diagonal": "np.linalg.diagonal(x, offset=-1)",
}


@pytest.mark.parametrize("name", list(EXTRAS))
def test_more_shape_functions(name):
    check_grad(source(EXTRAS[name]), (random_array((2, 3, 4), 13),))


def mesh_xy(a, b):
    X, Y = np.meshgrid(a, b)
    return out(X * Y + X)


def mesh_ij3(a, b, c):
    A, B, C = np.meshgrid(a, b, c, indexing="ij")
    return out(A * B - C * A)


def mesh_sparse(a, b):
    X, Y = np.meshgrid(a, b, sparse=True)
    return out(X * Y)


def test_meshgrid():
    a, b, c = random_array((3,), 1), random_array((2,), 2), random_array((4,), 3)
    check_grad(mesh_xy, (a, b), wrt=(0, 1))
    check_grad(mesh_ij3, (a, b, c), wrt=(0, 1, 2))
    check_grad(mesh_sparse, (a, b), wrt=(0, 1))


# ------------------------------------------------------------- hypothesis over shapes
@HYP
@given(data=st.data())
def test_diagonals_over_shapes(data):
    n, m = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    lead = data.draw(st.lists(st.integers(1, 2), max_size=1).map(tuple))
    x = data.draw(arrays(lead + (n, m)))
    k = data.draw(st.integers(-(n - 1), m - 1), label="k")
    a1, a2 = len(lead), len(lead) + 1
    check_grad(source(f"np.diagonal(x, {k}, {a1}, {a2})"), (x,))
    check_grad(source(f"np.trace(x, {k}, {a1}, {a2})"), (x,))
    check_grad(source(f"np.triu(x, {k})"), (x,))
    check_grad(source(f"np.tril(x, {k})"), (x,))
    if not lead:
        check_grad(source(f"np.diag(x, {k})"), (x,))
        check_grad(source(f"np.diag(x[0], {k})"), (x,))


@HYP
@given(data=st.data())
def test_squeeze_expand_atleast_over_shapes(data):
    shape = data.draw(shapes(min_dims=0, max_dims=3, max_side=3), label="shape")
    x = data.draw(arrays(shape))
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)), label="axis")
    check_grad(source(f"np.expand_dims(x, {axis})"), (x,))
    check_grad(source("np.squeeze(x)"), (x,))
    check_grad(source("np.atleast_1d(x)"), (x,))
    check_grad(source("np.atleast_2d(x)"), (x,))
    check_grad(source("np.ravel(x)"), (x,))


@HYP
@given(data=st.data())
def test_splits_and_stacks_over_shapes(data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, max_side=5), label="shape")
    x = data.draw(arrays(shape))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    n = shape[axis]
    sections = data.draw(st.integers(1, 4))
    check_grad(source(f"np.concatenate(np.array_split(x, {sections}, axis={axis})[::-1], "
                      f"axis={axis})"), (x,))
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=3)))
    check_grad(source(f"np.split(x, {cuts!r}, axis={axis})[-1]"), (x,))
    check_grad(source("np.hstack([x, x * 2.0])"), (x,))
    check_grad(source("np.vstack([x, x * 2.0])"), (x,))


# ------------------------------------------- im2col: stacking shifted windows of one array
def im2col_loss(x, k):
    """A valid 2x2 convolution of (n, h, w, c) as a stack of shifted windows and a matmul."""
    n, h, w, c = x.shape
    cols = []
    for i in range(2):
        for j in range(2):
            cols.append(x[:, i:i + h - 1, j:j + w - 1, :])
    patches = np.reshape(np.stack(cols, axis=3), (n * (h - 1) * (w - 1), 4 * c))
    return out(patches @ k)


@FEW
@given(data=st.data())
def test_stack_of_shifted_windows_matches_finite_differences(data):
    n, h, w, c = (data.draw(st.integers(1, 3)) for _ in range(4))
    x = data.draw(arrays((n, h + 1, w + 1, c)), label="x")
    k = data.draw(arrays((4 * c, 2)), label="k")
    check_grad(im2col_loss, (x, k), wrt=(0, 1))


@HYP
@given(data=st.data())
def test_unstack_gives_the_slices(data):
    from diffsrc.runtime import unstack
    shape = data.draw(shapes(min_dims=1, max_dims=4, max_side=4), label="shape")
    g = data.draw(arrays(shape))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    parts = unstack(g, shape[axis], axis)
    assert len(parts) == shape[axis]
    for i, part in enumerate(parts):
        np.testing.assert_array_equal(part, np.take(g, i, axis=axis))
