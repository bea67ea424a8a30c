"""Linear algebra against central finite differences: dot, vdot, inner, outer, matmul
(1-D, batched, broadcast), tensordot, einsum (implicit/explicit, repeated labels,
ellipsis), kron, and numpy.linalg inv, solve, det, slogdet, cholesky, norm, eigh."""
import numpy as np
import pytest
from hypothesis import given

from numpy_support import (FEW, HYP, arrays, check_grad, ds, hnp, out, random_array, shapes,
                           spd, st)


def source(expr, params="x, y"):
    return f"def F({params}):\n    r = {expr}\n    return np.sum(r * (r + 1.0))\n"


# (expression, shape of x, shape of y)
PRODUCTS = {
    "dot_mm": ("np.dot(x, y)", (2, 3), (3, 4)),
    "dot_mv": ("np.dot(x, y)", (2, 3), (3,)),
    "dot_vm": ("np.dot(x, y)", (3,), (3, 2)),
    "dot_vv": ("np.dot(x, y)", (3,), (3,)),
    "dot_scalar": ("np.dot(x, y)", (), (2, 3)),
    "dot_nd": ("np.dot(x, y)", (2, 2, 3), (4, 3, 2)),
    "dot_method": ("x.dot(y)", (2, 3), (3,)),
    "vdot": ("np.vdot(x, y)", (2, 3), (3, 2)),
    "inner_vv": ("np.inner(x, y)", (3,), (3,)),
    "inner_mm": ("np.inner(x, y)", (2, 3), (4, 3)),
    "inner_nd": ("np.inner(x, y)", (2, 1, 3), (2, 3)),
    "inner_scalar": ("np.inner(x, y)", (), (2, 3)),
    "outer": ("np.outer(x, y)", (3,), (4,)),
    "outer_flattens": ("np.outer(x, y)", (2, 2), (3,)),
    "matmul_mm": ("np.matmul(x, y)", (2, 3), (3, 4)),
    "matmul_op": ("x @ y", (2, 3), (3, 4)),
    "matmul_vm": ("x @ y", (3,), (3, 4)),
    "matmul_mv": ("x @ y", (2, 3), (3,)),
    "matmul_vv": ("x @ y", (3,), (3,)),
    "matmul_batched": ("x @ y", (5, 2, 3), (5, 3, 2)),
    "matmul_broadcast": ("x @ y", (2, 1, 2, 3), (4, 3, 2)),
    "matmul_batch_vec": ("x @ y", (4, 2, 3), (3,)),
    "matmul_vec_batch": ("x @ y", (2,), (4, 2, 3)),
    "matmul_matrix_batch": ("np.matmul(x, y)", (2, 3), (4, 3, 2)),
    "tensordot_default": ("np.tensordot(x, y)", (2, 3, 4), (3, 4, 2)),
    "tensordot_int": ("np.tensordot(x, y, 1)", (2, 3), (3, 4)),
    "tensordot_zero": ("np.tensordot(x, y, 0)", (2,), (3,)),
    "tensordot_pairs": ("np.tensordot(x, y, axes=([0, 2], [2, 0]))", (2, 3, 4), (4, 5, 2)),
    "tensordot_single": ("np.tensordot(x, y, axes=(1, 0))", (2, 3, 4), (3, 2)),
    "kron_mm": ("np.kron(x, y)", (2, 3), (3, 2)),
    "kron_vv": ("np.kron(x, y)", (3,), (2,)),
    "kron_mixed": ("np.kron(x, y)", (2,), (2, 3)),
}


@pytest.mark.parametrize("name", list(PRODUCTS))
def test_products_match_finite_differences(name):
    expr, sx, sy = PRODUCTS[name]
    x, y = random_array(sx, 1), random_array(sy, 2)
    check_grad(source(expr), (x, y), wrt=(0, 1))


EINSUM = {
    "matmul": ("'ij,jk->ik'", [(2, 3), (3, 4)]),
    "implicit": ("'ij,jk'", [(2, 3), (3, 4)]),
    "implicit_transpose": ("'ji'", [(2, 3)]),
    "trace": ("'ii'", [(3, 3)]),
    "diag": ("'ii->i'", [(3, 3)]),
    "diag_mixed": ("'iij->ij'", [(2, 2, 3)]),
    "repeated_with_other": ("'ii,i->i'", [(3, 3), (3,)]),
    "sum_all": ("'ijk->'", [(2, 3, 2)]),
    "summed_inside_one": ("'ij,k->k'", [(2, 3), (4,)]),
    "outer": ("'i,j->ij'", [(2,), (3,)]),
    "batched": ("'bij,bjk->bik'", [(4, 2, 3), (4, 3, 2)]),
    "ellipsis": ("'...ij,...jk->...ik'", [(2, 2, 3), (2, 3, 4)]),
    "ellipsis_broadcast": ("'...ij,...jk->...ik'", [(1, 2, 3), (5, 3, 2)]),
    "ellipsis_implicit": ("'...i,...i'", [(2, 3), (3,)]),
    "ellipsis_leading": ("'i...->...'", [(3, 2, 2)]),
    "three_operands": ("'ij,jk,kl->il'", [(2, 3), (3, 2), (2, 2)]),
    "bilinear": ("'i,ij,j'", [(3,), (3, 4), (4,)]),
    "spaces": ("'ij , jk -> ki'", [(2, 3), (3, 4)]),
    "repeated_output_order": ("'ijk->kji'", [(2, 3, 4)]),
}


@pytest.mark.parametrize("name", list(EINSUM))
def test_einsum_matches_finite_differences(name):
    subscripts, shapes = EINSUM[name]
    args = tuple(random_array(s, i + 1) for i, s in enumerate(shapes))
    params = ", ".join("xyz"[:len(args)])
    check_grad(source(f"np.einsum({subscripts}, {params})", params), args,
               wrt=tuple(range(len(args))))


@HYP
@given(data=st.data())
def test_matmul_over_batch_shapes(data):
    n, k, m = (data.draw(st.integers(1, 3)) for _ in range(3))
    bx = data.draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3))
    by = tuple(1 if data.draw(st.booleans()) else d for d in bx)
    by = by[data.draw(st.integers(0, len(by))):]
    x = data.draw(arrays(bx + (n, k)))
    y = data.draw(arrays(by + (k, m)))
    check_grad(source("x @ y"), (x, y), wrt=(0, 1))


# ------------------------------------------------------------------------ numpy.linalg
def inv_f(a): return out(np.linalg.inv(a))
def solve_mat(a, b): return out(np.linalg.solve(a, b))
def det_f(a): return np.linalg.det(a) ** 2 + np.linalg.det(a)
def slogdet_f(a):
    sign, logdet = np.linalg.slogdet(a)
    return logdet * 2.0 + sign
def slogdet_attr(a): return np.linalg.slogdet(a).logabsdet
def chol_f(a): return out(np.linalg.cholesky(a) * np.array([1.0, 2.0, 3.0]))
def chol_sym(a): return out(np.linalg.cholesky(0.5 * (a + a.T)))
def chol_gram(b):
    return out(np.linalg.cholesky(b @ b.T + 3.0 * np.eye(3)))


def well_conditioned(n, seed, batch=()):
    return random_array(batch + (n, n), seed) + 3.0 * np.eye(n)


def test_inv_and_det_match_finite_differences():
    a = well_conditioned(3, 1)
    check_grad(inv_f, (a,))
    check_grad(det_f, (a,))
    check_grad(slogdet_f, (a,))
    check_grad(slogdet_attr, (a - 6.0 * np.eye(3),))     # negative determinant


def test_batched_inv_det_slogdet():
    a = well_conditioned(3, 2, batch=(2,))
    check_grad(inv_f, (a,))
    check_grad(source("np.linalg.det(x)", "x"), (a,))
    check_grad(source("np.linalg.slogdet(x)[1]", "x"), (a,))


SOLVES = [((3, 3), (3,)), ((3, 3), (3, 2)), ((2, 3, 3), (2, 3, 1)), ((2, 3, 3), (3,)),
          ((2, 3, 3), (3, 4))]


@pytest.mark.parametrize("sa, sb", SOLVES)
def test_solve_matches_finite_differences(sa, sb):
    a = well_conditioned(3, 3, batch=sa[:-2])
    b = random_array(sb, 4)
    check_grad(solve_mat, (a, b), wrt=(0, 1))


def test_cholesky_lower_triangle_convention():
    a = spd(3, seed=5)
    g = check_grad(chol_f, (a,))                # exact derivative of what NumPy reads
    assert np.all(np.triu(g, 1) == 0)
    check_grad(chol_sym, (a,))
    check_grad(chol_gram, (random_array((3, 2), 6),))
    check_grad(source("np.linalg.cholesky(x)", "x"), (spd(2, 7, batch=(3,)),))


def eigh_vals(a):
    w, v = np.linalg.eigh(a)
    return out(w * np.array([1.0, 2.0, 3.0]))


def eigh_vecs(a):
    w, v = np.linalg.eigh(a)
    return np.sum(np.abs(v[:, 0]) * np.array([1.0, 2.0, 3.0])) + np.sum(w)


def eigh_attrs(a):
    res = np.linalg.eigh(0.5 * (a + a.T))
    return out(res.eigenvalues) + np.sum(res.eigenvectors[:, -1] ** 4)


def eigvalsh_f(a): return out(np.linalg.eigvalsh(a))


def test_eigh_matches_finite_differences():
    a = spd(3, seed=8) + np.diag([0.0, 2.0, 5.0])       # well-separated eigenvalues
    check_grad(eigh_vals, (a,))
    check_grad(eigh_vecs, (a,), rtol=1e-4, atol=1e-6)
    check_grad(eigh_attrs, (a,), rtol=1e-4, atol=1e-6)
    check_grad(eigvalsh_f, (a,))
    check_grad(source("np.linalg.eigh(x, UPLO='U')[0]", "x"), (a,))


NORMS = {
    "default_vector": ("np.linalg.norm(x)", (4,)),
    "default_matrix": ("np.linalg.norm(x)", (2, 3)),
    "default_3d": ("np.linalg.norm(x)", (2, 3, 2)),
    "ord1": ("np.linalg.norm(x, 1)", (4,)),
    "ord2": ("np.linalg.norm(x, 2)", (4,)),
    "ord3": ("np.linalg.norm(x, 3)", (4,)),
    "ord_half": ("np.linalg.norm(x, 0.5)", (4,)),
    "ord_inf": ("np.linalg.norm(x, np.inf)", (4,)),
    "ord_minus_inf": ("np.linalg.norm(x, -np.inf)", (4,)),
    "axis": ("np.linalg.norm(x, axis=1)", (3, 4)),
    "axis_keepdims": ("np.linalg.norm(x, axis=0, keepdims=True)", (3, 4)),
    "axis_ord1": ("np.linalg.norm(x, 1, axis=-1)", (2, 3, 4)),
    "fro": ("np.linalg.norm(x, 'fro')", (3, 4)),
    "nuc": ("np.linalg.norm(x, 'nuc')", (3, 4)),
    "spectral": ("np.linalg.norm(x, 2)", (3, 4)),
    "spectral_min": ("np.linalg.norm(x, -2)", (3, 4)),
    "matrix_1": ("np.linalg.norm(x, 1)", (3, 4)),
    "matrix_minus_1": ("np.linalg.norm(x, -1)", (3, 4)),
    "matrix_inf": ("np.linalg.norm(x, np.inf)", (3, 4)),
    "matrix_minus_inf": ("np.linalg.norm(x, -np.inf)", (3, 4)),
    "matrix_axes": ("np.linalg.norm(x, 'fro', axis=(0, 2))", (2, 3, 4)),
    "matrix_axes_nuc": ("np.linalg.norm(x, 'nuc', axis=(2, 1), keepdims=True)", (2, 3, 4)),
    "matrix_axes_inf": ("np.linalg.norm(x, np.inf, axis=(-1, 0))", (2, 3, 4)),
}


@pytest.mark.parametrize("name", list(NORMS))
def test_norms_match_finite_differences(name):
    expr, shape = NORMS[name]
    x = random_array(shape, 11)
    check_grad(source(expr, "x"), (x,), rtol=1e-5, atol=1e-6)


def norm_sum(x): return np.linalg.norm(x)


def test_norm_at_zero_is_zero_not_nan():
    np.testing.assert_array_equal(ds.grad(norm_sum)(np.zeros(3)), np.zeros(3))


def multi_dot_f(a, b, c): return out(np.linalg.multi_dot([a, b, c]))


def test_multi_dot():
    check_grad(multi_dot_f, (random_array((3,), 1), random_array((3, 4), 2),
                             random_array((4, 2), 3)), wrt=(0, 1, 2))


@HYP
@given(data=st.data())
def test_tensordot_over_random_axis_pairings(data):
    na, nb = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    k = data.draw(st.integers(0, min(na, nb)))
    a_axes = data.draw(st.permutations(range(na)))[:k]
    b_axes = data.draw(st.permutations(range(nb)))[:k]
    sa = [data.draw(st.integers(1, 3)) for _ in range(na)]
    sb = [data.draw(st.integers(1, 3)) for _ in range(nb)]
    for i, j in zip(a_axes, b_axes):
        sb[j] = sa[i]
    x, y = data.draw(arrays(tuple(sa))), data.draw(arrays(tuple(sb)))
    axes = (list(a_axes), [j - nb if data.draw(st.booleans()) else j for j in b_axes])
    check_grad(source(f"np.tensordot(x, y, axes={axes!r})"), (x, y), wrt=(0, 1))


@HYP
@given(data=st.data())
def test_einsum_over_random_contractions(data):
    letters = "abcd"
    sizes = {c: data.draw(st.integers(1, 3)) for c in letters}
    t1 = "".join(data.draw(st.lists(st.sampled_from(letters), min_size=1, max_size=3,
                                    unique=True)))
    t2 = "".join(data.draw(st.lists(st.sampled_from(letters), min_size=1, max_size=3,
                                    unique=True)))
    pool = sorted(set(t1 + t2))
    outs = "".join(data.draw(st.permutations(pool))[:data.draw(st.integers(0, len(pool)))])
    x = data.draw(arrays(tuple(sizes[c] for c in t1)))
    y = data.draw(arrays(tuple(sizes[c] for c in t2)))
    check_grad(source(f"np.einsum('{t1},{t2}->{outs}', x, y)"), (x, y), wrt=(0, 1))


# ------------------------------------------------------------------------ extras
def _numpy_crosses_2_vectors():
    import warnings
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            np.cross(np.ones(2), np.ones(2))
    except ValueError:
        return False
    return True


_CROSS_OF_2_VECTORS = _numpy_crosses_2_vectors()
EXTRA_PRODUCTS = {
    "cross3": ("np.cross(x, y)", (2, 3), (3,)),
    "cross2": ("np.cross(x, y)", (4, 2), (4, 2)),
    "linalg_cross": ("np.linalg.cross(x, y)", (3,), (2, 3)),
    "convolve_full": ("np.convolve(x, y)", (5,), (3,)),
    "convolve_same": ("np.convolve(x, y, mode='same')", (5,), (3,)),
    "convolve_valid": ("np.convolve(x, y, 'valid')", (5,), (3,)),
    "convolve_short_first": ("np.convolve(x, y, 'same')", (2,), (5,)),
    "correlate_valid": ("np.correlate(x, y)", (5,), (3,)),
    "correlate_full": ("np.correlate(x, y, 'full')", (4,), (3,)),
    "correlate_same_short": ("np.correlate(x, y, 'same')", (3,), (5,)),
    "vecdot": ("np.vecdot(x, y)", (2, 3), (3,)),
    "linalg_vecdot": ("np.linalg.vecdot(x, y)", (4,), (2, 4)),
    "linalg_outer": ("np.linalg.outer(x, y)", (3,), (2,)),
    "linalg_tensordot": ("np.linalg.tensordot(x, y, axes=1)", (2, 3), (3, 2)),
    "linalg_matmul": ("np.linalg.matmul(x, y)", (2, 3), (3,)),
}


NEEDS_OLD_NUMPY = {"cross2": pytest.mark.skipif(
    not _CROSS_OF_2_VECTORS, reason="this NumPy's np.cross rejects 2-vectors (deprecated in "
    "NumPy 2.0, removed later): there is no reference function to differentiate")}


@pytest.mark.parametrize("name", [pytest.param(n, marks=NEEDS_OLD_NUMPY.get(n, ()))
                                  for n in EXTRA_PRODUCTS])
@pytest.mark.filterwarnings("ignore:Arrays of 2-dimensional vectors:DeprecationWarning")
def test_more_products(name):
    expr, sx, sy = EXTRA_PRODUCTS[name]
    check_grad(source(expr), (random_array(sx, 1), random_array(sy, 2)), wrt=(0, 1))


def svd_values(a): return out(np.linalg.svd(a, compute_uv=False))
def svd_vectors(a):
    u, s, vh = np.linalg.svd(a, full_matrices=False)
    return out(u[:, :1] @ vh[:1, :] * 3.0) + np.sum(s ** 2)
def svd_square_full(a):
    res = np.linalg.svd(a)
    return out(res.U @ np.diag(res.S ** 3) @ res.Vh)
def svdvals_f(a): return out(np.linalg.svdvals(a))
def qr_f(a):
    q, r = np.linalg.qr(a)
    return out(q * 2.0) + out(r)
def qr_attrs(a):
    res = np.linalg.qr(a)
    return np.sum(res.Q @ res.R * a)
def pinv_f(a): return out(np.linalg.pinv(a))


@pytest.mark.parametrize("shape", [(4, 3), (3, 4), (3, 3)])
def test_svd_pinv(shape):
    a = random_array(shape, 31)
    check_grad(svd_values, (a,))
    check_grad(svdvals_f, (a,))
    check_grad(svd_vectors, (a,), rtol=1e-4, atol=1e-6)
    check_grad(pinv_f, (a,), rtol=1e-4, atol=1e-6)
    if shape[0] == shape[1]:
        check_grad(svd_square_full, (a,), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("shape", [(4, 3), (3, 3)])
def test_qr(shape):
    a = random_array(shape, 32) + np.eye(*shape) * 2.0
    check_grad(qr_f, (a,), rtol=1e-5, atol=1e-6)
    check_grad(qr_attrs, (a,))


@pytest.mark.parametrize("n", [0, 1, 3, -2])
def test_matrix_power(n):
    a = random_array((3, 3), 33) * 0.5 + np.eye(3)
    check_grad(source(f"np.linalg.matrix_power(x, {n})", "x"), (a,))


NORMS_API = {
    "vector_norm": ("np.linalg.vector_norm(x)", (2, 3)),
    "vector_norm_axis": ("np.linalg.vector_norm(x, axis=(0, 2), keepdims=True)", (2, 3, 2)),
    "vector_norm_ord1": ("np.linalg.vector_norm(x, axis=-1, ord=1)", (2, 3)),
    "vector_norm_inf": ("np.linalg.vector_norm(x, ord=np.inf)", (2, 3)),
    "matrix_norm": ("np.linalg.matrix_norm(x)", (2, 3, 4)),
    "matrix_norm_nuc": ("np.linalg.matrix_norm(x, ord='nuc', keepdims=True)", (2, 3, 4)),
}


@pytest.mark.parametrize("name", list(NORMS_API))
def test_array_api_norms(name):
    expr, shape = NORMS_API[name]
    check_grad(source(expr, "x"), (random_array(shape, 12),))


def inner_output(x, y): return np.inner(x, y)
def tensordot_output(a, b): return np.tensordot(a, b, 2)
def einsum_output(a, b): return np.einsum("ij,ij", a, b)
def kron_output(a, b): return np.kron(a, b) @ np.ones(1)


def test_zero_dimensional_products_as_the_function_output():
    a, b = random_array((3,), 1), random_array((3,), 2)
    check_grad(inner_output, (a, b), wrt=(0, 1))
    check_grad(tensordot_output, (random_array((2, 2), 3), random_array((2, 2), 4)), wrt=(0, 1))
    check_grad(einsum_output, (random_array((2, 2), 5), random_array((2, 2), 6)), wrt=(0, 1))
    check_grad(kron_output, (random_array((1,), 7), random_array((1,), 8)), wrt=(0, 1))


def einsum_sublists(a, b):
    return out(np.einsum(a, [0, 1], b, [1, 2], [2, 0]))


def einsum_sublists_implicit(a, b):
    return out(np.einsum(a, [Ellipsis, 1], b, [1]))


def test_einsum_interleaved_sublist_form():
    check_grad(einsum_sublists, (random_array((2, 3), 1), random_array((3, 4), 2)), wrt=(0, 1))
    check_grad(einsum_sublists_implicit, (random_array((2, 3), 3), random_array((3,), 4)),
               wrt=(0, 1))


# ------------------------------------------------------------- hypothesis over shapes
@FEW
@given(data=st.data())
def test_linalg_functions_over_sizes_and_batches(data):
    n = data.draw(st.integers(1, 4), label="n")
    batch = data.draw(st.lists(st.integers(1, 2), max_size=1).map(tuple), label="batch")
    a = data.draw(arrays(batch + (n, n), -1.0, 1.0)) + 3.0 * np.eye(n)
    check_grad(inv_f, (a,))
    check_grad(source("np.linalg.det(x)", "x"), (a,))
    check_grad(source("np.linalg.slogdet(x)[1]", "x"), (a,))
    k = data.draw(st.integers(1, 3))
    b = data.draw(arrays(batch + (n, k)))
    check_grad(solve_mat, (a, b), wrt=(0, 1))
    # distinct eigenvalues: at a repeated one eigvalsh has a kink, where finite differences
    # and any derivative disagree
    s = a @ np.swapaxes(a, -1, -2) + np.diag(np.arange(n) * 2.0)
    check_grad(source("np.linalg.cholesky(x)", "x"), (s,))
    check_grad(source("np.linalg.eigvalsh(x)", "x"), (s,), rtol=1e-4, atol=1e-6)


@HYP
@given(data=st.data())
def test_vector_and_matrix_norms_over_shapes(data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, max_side=4), label="shape")
    x = data.draw(nonzero_like(shape))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    order = data.draw(st.sampled_from([None, 1, 2, 3, np.inf]), label="ord")
    keepdims = data.draw(st.booleans())
    check_grad(source(f"np.linalg.norm(x, {order!r}, axis={axis}, keepdims={keepdims})"
                      .replace("inf", "np.inf"), "x"), (x,), rtol=1e-4, atol=1e-6)
    if len(shape) >= 2:
        order = data.draw(st.sampled_from(["fro", "nuc", 1, np.inf]), label="matrix ord")
        check_grad(source(f"np.linalg.norm(x, {order!r}, axis=(0, -1))".replace("inf",
                                                                                "np.inf"),
                          "x"), (x,), rtol=1e-4, atol=1e-6)


def nonzero_like(shape):
    """Random signs; magnitudes 0.3 + 0.61 i0 + 0.13 i1 + 0.029 i2 make entries, and the row
    and column sums over axes (0, -1), pairwise distinct (no ties for inf/1-norms); a small
    irregular term keeps the matrices full rank (the nuclear norm has a kink otherwise)."""
    weights = (0.61, 0.13, 0.029)[:len(shape)]
    mags = 0.3 + sum(w * np.arange(n).reshape([-1 if d == k else 1 for d in range(len(shape))])
                     for k, (w, n) in enumerate(zip(weights, shape)))
    size = int(np.prod(shape))
    mags = mags + 0.003 * np.sin(np.arange(size) * 2.7 + 1.0).reshape(shape)   # full rank
    return arrays(shape).map(lambda a: np.where(a < 0, -1.0, 1.0) * mags)


@HYP
@given(data=st.data())
def test_small_products_over_shapes(data):
    sx = data.draw(shapes(min_dims=0, max_dims=2, max_side=3), label="sx")
    sy = data.draw(shapes(min_dims=0, max_dims=2, max_side=3), label="sy")
    x, y = data.draw(arrays(sx)), data.draw(arrays(sy))
    check_grad(source("np.outer(x, y)"), (x, y), wrt=(0, 1))
    check_grad(source("np.kron(x, y)"), (x, y), wrt=(0, 1))
    if (sx[-1:] or (1,)) == (sy[-1:] or (1,)) or not sx or not sy:
        check_grad(source("np.inner(x, y)"), (x, y), wrt=(0, 1))
    if x.size == y.size:
        check_grad(source("np.vdot(x, y)"), (x, y), wrt=(0, 1))
    if not sx or not sy or sx[-1] == sy[0 if len(sy) == 1 else -2]:
        check_grad(source("np.dot(x, y)"), (x, y), wrt=(0, 1))


def eig_sum_sq(a): return np.sum(np.linalg.eigvalsh(a) ** 2)


def test_eigenvalue_adjoints_are_exact_for_degenerate_spectra():
    a = 2.0 * np.eye(3)
    np.testing.assert_allclose(ds.grad(eig_sum_sq)(a), np.tril(2 * 2.0 * np.eye(3)) * 1.0)
    check_grad(eigvalsh_f, (np.diag([1.0, 1.0, 3.0]),))     # symmetric in the eigenvalues


def wide_product(a, b):
    return out(a @ b)


@pytest.mark.parametrize("m, k, n", [(2, 4, 6), (4, 2, 6), (2, 6, 4), (3, 3, 3)])
def test_matmul_adjoints_are_c_contiguous(m, k, n):
    """Whichever product the adjoint computes, it comes back in C order (a Fortran-order
    gradient makes the optimizer's elementwise updates many times slower)."""
    a, b = random_array((m, k), 1), random_array((k, n), 2)
    ga, gb = check_grad(wide_product, (a, b), wrt=(0, 1))
    assert ga.flags.c_contiguous and gb.flags.c_contiguous
