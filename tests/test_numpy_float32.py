"""float32 in, float32 out: every rule of the NumPy families keeps float32 gradients
(no silent upcast to float64 in generated code), and they agree with float64 ones."""
import numpy as np
import pytest

import test_numpy_indexing as T_IDX
import test_numpy_linalg as T_LIN
import test_numpy_reductions as T_RED
import test_numpy_shape as T_SHP
import test_numpy_ufuncs as T_UF
from numpy_support import ds, grad_float32, random_array, spd


def close_to_float64(f, args, wrt=0):
    g32 = grad_float32(f, tuple(a.astype(np.float32) for a in args), wrt)
    g64 = ds.grad(f, wrt=wrt)(*args)
    for a, b in zip(g32 if isinstance(wrt, tuple) else (g32,),
                    g64 if isinstance(wrt, tuple) else (g64,)):
        scale = 1.0 + np.max(np.abs(b))
        assert np.max(np.abs(a - b)) <= 2e-3 * scale, (a, b)


UNARY_DOMAINS = {"u_sqrt": (0.3, 3), "u_log": (0.3, 3), "u_log2": (0.3, 3), "u_log10": (0.3, 3),
                 "u_log1p": (0.3, 3), "u_arccosh": (1.2, 3), "u_tan": (-0.9, 0.9),
                 "u_arcsin": (-0.9, 0.9), "u_arccos": (-0.9, 0.9), "u_arctanh": (-0.9, 0.9),
                 "u_float_power": (0.3, 3), "u_op_pow": (0.3, 3)}


@pytest.mark.parametrize("f", [f for f, _ in T_UF.UNARY] + T_UF.CLIPS + T_UF.ZERO,
                         ids=lambda f: f.__name__)
def test_elementwise_unary(f):
    lo, hi = UNARY_DOMAINS.get(f.__name__, (0.2, 1.8))
    x = random_array((2, 3), 1, lo, hi)
    close_to_float64(f, (x,))


@pytest.mark.parametrize("f", [f for f, _ in T_UF.BINARY], ids=lambda f: f.__name__)
def test_elementwise_binary_with_broadcasting(f):
    a, b = random_array((2, 3), 1, 0.3, 2.0), random_array((3,), 2, 0.3, 2.0)
    close_to_float64(f, (a, b), wrt=(0, 1))


def test_python_float_constants_with_float32_scalar_like_arrays():
    x = np.array(0.7, dtype=np.float32)
    g = ds.grad(T_UF.u_exp2)(x)
    assert g.dtype == np.float32


@pytest.mark.parametrize("name", list(T_RED.REDUCTIONS))
def test_reductions(name):
    x = random_array((2, 3, 4), 3, 0.3, 2.0) + np.arange(24).reshape(2, 3, 4) * 0.05
    close_to_float64(T_RED.source(T_RED.REDUCTIONS[name], axis=(0, 2), keepdims=False), (x,))
    close_to_float64(T_RED.source(T_RED.REDUCTIONS[name], axis=None, keepdims=True), (x,))


@pytest.mark.parametrize("name", list(T_RED.SCANS))
def test_scans(name):
    x = random_array((3, 4), 4, 0.3, 1.5)
    close_to_float64(T_RED.source(T_RED.SCANS[name], axis=1), (x,))


def test_weighted_average():
    close_to_float64(T_RED.avg_w, (random_array((2, 3), 1), random_array((3,), 2, 0.5, 2)),
                     wrt=(0, 1))


@pytest.mark.parametrize("name", list(T_SHP.CASES_234))
def test_shape_operations(name):
    close_to_float64(T_SHP.source(T_SHP.CASES_234[name]), (random_array((2, 3, 4), 5),))


@pytest.mark.parametrize("name", list(T_SHP.CASES_2D))
def test_matrix_shape_operations(name):
    close_to_float64(T_SHP.source(T_SHP.CASES_2D[name]), (random_array((3, 4), 5),))


@pytest.mark.parametrize("name", list(T_IDX.BASIC) + list(T_IDX.ADVANCED) + list(T_IDX.TAKE))
def test_indexing(name):
    expr = {**T_IDX.BASIC, **T_IDX.ADVANCED, **T_IDX.TAKE}[name]
    shape = (2, 3, 4) if name in T_IDX.TAKE else (3, 3, 4)
    close_to_float64(T_IDX.source(expr), (random_array(shape, 6),))


@pytest.mark.parametrize("name", list(T_LIN.PRODUCTS))
def test_products(name):
    expr, sx, sy = T_LIN.PRODUCTS[name]
    close_to_float64(T_LIN.source(expr), (random_array(sx, 1), random_array(sy, 2)),
                     wrt=(0, 1))


@pytest.mark.parametrize("name", list(T_LIN.EINSUM))
def test_einsum(name):
    subscripts, shapes = T_LIN.EINSUM[name]
    args = tuple(random_array(s, i + 1) for i, s in enumerate(shapes))
    params = ", ".join("xyz"[:len(args)])
    close_to_float64(T_LIN.source(f"np.einsum({subscripts}, {params})", params), args,
                     wrt=tuple(range(len(args))))


@pytest.mark.parametrize("name", list(T_LIN.NORMS))
def test_norms(name):
    expr, shape = T_LIN.NORMS[name]
    close_to_float64(T_LIN.source(expr, "x"), (random_array(shape, 11),))


def test_linalg_decompositions():
    a = T_LIN.well_conditioned(3, 1)
    for f in (T_LIN.inv_f, T_LIN.det_f, T_LIN.slogdet_f):
        close_to_float64(f, (a,))
    close_to_float64(T_LIN.solve_mat, (a, random_array((3, 2), 2)), wrt=(0, 1))
    close_to_float64(T_LIN.chol_f, (spd(3, 5),))
    s = spd(3, 8) + np.diag([0.0, 2.0, 5.0])
    close_to_float64(T_LIN.eigh_vals, (s,))
    close_to_float64(T_LIN.eigvalsh_f, (s,))


def mixed_precision(x, w):
    return np.sum(np.tanh(x @ w) * 2.0)


def test_float32_argument_in_a_float64_computation_gets_a_float32_gradient():
    x = random_array((2, 3), 1).astype(np.float32)
    w = random_array((3, 2), 2)
    gx, gw = ds.grad(mixed_precision, wrt=(0, 1))(x, w)
    assert gx.dtype == np.float32 and gw.dtype == np.float64
