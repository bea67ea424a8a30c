"""The CuPy backend on a GPU: fused, unfused and NumPy results agree; kernels really
compile and run. Skips without CuPy or a CUDA device."""
import os
import sys

import numpy as np
import pytest

import diffsrc as ds
from diffsrc.backends import Backend, BackendMismatchError
from diffsrc.tree import to_device, tree_leaves

cp = pytest.importorskip("cupy")
try:
    cp.cuda.runtime.getDeviceCount()
except Exception:                      # noqa: BLE001 - any CUDA failure means no GPU here
    pytest.skip("no CUDA device", allow_module_level=True)

pytestmark = pytest.mark.gpu

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))
from workloads import w4, w5, w6, w7  # noqa: E402


@pytest.mark.parametrize("module", [w4, w5, w6, w7], ids=lambda m: m.__name__.split(".")[-1])
@pytest.mark.parametrize("tiny", [True, False])
def test_fused_unfused_and_numpy_agree(module, tiny):
    wl = module.WORKLOADS[0]
    data = module.make_data(tiny=tiny)
    args = wl.args(data["params"], data)
    v0, g0 = ds.value_and_grad(module.loss, wrt=wl.wrt)(*args)
    dev = to_device(args, "gpu")
    fused = ds.value_and_grad(module.loss, wrt=wl.wrt)
    unfused = ds.value_and_grad(module.loss, wrt=wl.wrt, backend=Backend("cupy", fuse=False))
    v1, g1 = fused(*dev)
    v2, g2 = unfused(*dev)
    assert all(isinstance(g, cp.ndarray) for g in tree_leaves(g1))
    rtol = 1e-9 if tiny else 2e-3          # float32 at full size; float64 when tiny
    for value in (v1, v2):
        np.testing.assert_allclose(float(value), v0, rtol=rtol)
    for a, b, ref in zip(tree_leaves(g1), tree_leaves(g2), tree_leaves(g0)):
        scale = float(np.max(np.abs(ref))) or 1.0
        np.testing.assert_allclose(cp.asnumpy(a), ref, atol=rtol * scale, rtol=rtol)
        np.testing.assert_allclose(cp.asnumpy(a), cp.asnumpy(b), atol=rtol * scale,
                                   rtol=rtol)
    functions = list(fused.last.fusion.made.values())
    assert functions and any(f.kernels for f in functions), "no group ran as a kernel"
    assert "cupy.ElementwiseKernel" in ds.source(fused, kernels=True)


def test_reduction_kernel_runs():
    def f(x, y):
        return y * np.sum(np.exp(x) * (x - 1.0))

    df = ds.grad(f, wrt=1)
    x = np.linspace(0, 1, 1000)
    g = df(cp.asarray(x), 2.0)
    np.testing.assert_allclose(float(g), np.sum(np.exp(x) * (x - 1.0)), rtol=1e-12)
    assert "ReductionKernel" in ds.source(df, kernels=True)


def test_mixed_devices_raise():
    def f(a, b):
        return np.sum(a * b)

    with pytest.raises(BackendMismatchError, match="'a' holds NumPy"):
        ds.grad(f)(np.ones(3), cp.ones(3))


def test_explicit_backend_moves_arguments():
    def f(a):
        return np.sum(np.tanh(a))

    g = ds.grad(f, backend="cupy")(np.linspace(-1, 1, 7))
    assert isinstance(g, cp.ndarray)
    np.testing.assert_allclose(cp.asnumpy(g), 1 - np.tanh(np.linspace(-1, 1, 7)) ** 2)


def test_nn_and_optim_train_on_the_gpu():
    from diffsrc import nn, optim
    rng = np.random.default_rng(0)
    params = to_device({"l1": nn.init_dense(rng, 4, 8), "l2": nn.init_dense(rng, 8, 1)}, "gpu")
    X = cp.asarray(rng.standard_normal((32, 4)).astype(np.float32))
    y = cp.sum(X, axis=1, keepdims=True)

    def loss(p, X, y):
        h = np.tanh(nn.dense(X, p["l1"]))
        return np.mean((nn.dense(h, p["l2"]) - y) ** 2)

    opt = optim.adam(1e-2)
    state = opt.init(params)
    vg = ds.value_and_grad(loss)
    first = None
    for _ in range(200):
        value, grads = vg(params, X, y)
        params, state = opt.update(params, grads, state)
        first = float(value) if first is None else first
    assert isinstance(params["l1"]["W"], cp.ndarray)
    assert float(value) < 0.2 * first
