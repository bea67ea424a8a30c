"""Second order through the NumPy rules: the gradient of a function of a gradient
(Hessian-vector products) against central finite differences of the compiled gradient.
The adjoint helpers the rules call (scatter-adds, splits, product adjoints) have rules
of their own, so the generated pullbacks can be differentiated again."""
import numpy as np
import pytest

from numpy_support import ds, numeric_grad, random_array

BODIES = {
    "mean": "np.mean(x * x, axis=0)",
    "max": "np.max(x * x, axis=1)",
    "var": "np.var(x * x, axis=0)",
    "std": "np.std(x * x + 1.0, axis=0)",
    "cumsum": "np.cumsum(x * x, axis=0)",
    "reshape": "np.reshape(x * x, (9,))",
    "transpose": "np.transpose(x * x)",
    "concatenate": "np.concatenate([x * x, x], axis=1)",
    "stack": "np.stack([x * x, x])",
    "hstack": "np.hstack([x * x, x])",
    "split": "np.split(x * x, 3)[1] * np.split(x, 3)[2]",
    "tile": "np.tile(x * x, 2)",
    "repeat": "np.repeat(x * x, 2, axis=0)",
    "pad": "np.pad(x * x, 1)",
    "pad_reflect": "np.pad(x * x, 1, mode='reflect')",
    "diag": "np.diag(x * x)",
    "diagonal": "np.diagonal(x * x) * x",
    "trace": "np.trace(x * x) * x",
    "diff": "np.diff(x * x, axis=0)",
    "sliding_window": "np.lib.stride_tricks.sliding_window_view(x * x, (2, 2))",
    "getitem_repeated": "(x * x)[[0, 0, 2]]",
    "take": "np.take(x * x, [0, 0, 2], axis=1)",
    "take_along_axis": "np.take_along_axis(x * x, np.array([[0], [2], [1]]), 1)",
    "sort": "np.sort(x * x)",
    "matmul": "(x * x) @ x",
    "dot": "np.dot(x * x, x)",
    "inner": "np.inner(x * x, x)",
    "outer": "np.outer(x * x, x)",
    "tensordot": "np.tensordot(x * x, x, 1)",
    "einsum": "np.einsum('ij,jk->ik', x * x, x)",
    "einsum_trace": "np.einsum('ii', x * x) * x",
    "kron": "np.kron(x * x, x[0])",
    "norm": "np.linalg.norm(x * x + 1.0, axis=0)",
    "inv": "np.linalg.inv(x + 3.0 * np.eye(3))",
    "det": "np.linalg.det(x + 3.0 * np.eye(3)) * x",
    "array": "np.array([x[0] * x[1], x[2]])",
    "astype": "(x * x).astype(np.float64)",
    "maximum": "np.maximum(x * x, 0.5)",
    "where": "np.where(x > 0, x * x, x)",
}


def source(body):
    return f"def F(x):\n    y = {body}\n    return np.sum(np.sin(y) * (y + 1.0))\n"


@pytest.mark.parametrize("name", list(BODIES))
def test_hessian_vector_products_match_finite_differences(name):
    df = ds.grad(source(BODIES[name]))
    v = random_array((3, 3), 1)

    def hvp(x):
        return np.sum(df(x) * v)

    x = random_array((3, 3), 2, -1.4, 1.4)
    analytic = ds.grad(hvp)(x)
    numeric = numeric_grad(hvp, (x,), 0, eps=1e-5)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-4, atol=1e-5)


MORE = {
    "convolve": "np.convolve(x[0] * x[1], x[2], 'same')",
    "correlate": "np.correlate(x[0] * x[1], x[2][:2], 'full')",
    "vecdot": "np.vecdot(x * x, x[0])",
    "cross": "np.cross(x * x, x[1])",
    "rollaxis": "np.rollaxis((x * x)[None], 2)",
    "item": "(x[0, :1] * x[1, :1]).item() * x",
}


@pytest.mark.parametrize("name", list(MORE))
def test_more_hessian_vector_products(name):
    df = ds.grad(source(MORE[name]))
    v = random_array((3, 3), 3)

    def hvp(x):
        return np.sum(df(x) * v)

    x = random_array((3, 3), 4, -1.4, 1.4)
    np.testing.assert_allclose(ds.grad(hvp)(x), numeric_grad(hvp, (x,), 0, eps=1e-5),
                               rtol=1e-4, atol=1e-5)
