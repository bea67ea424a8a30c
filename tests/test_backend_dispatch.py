"""The backend's CPU-side logic: dispatch, fusion groups, the fused code path, and the
CUDA text of every kernel (compiled with nvcc where nvcc exists). No GPU needed."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import diffsrc as ds
from diffsrc import backends
from diffsrc.backends import Backend, BackendMismatchError, detect
from diffsrc.backends.cupy import Unsupported, kernel_source
from diffsrc.ir.nodes import walk_ops
from diffsrc.passes.fusion import find_groups, format_groups, verify_groups

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))
from workloads import w4, w5, w6, w7  # noqa: E402

WORKLOADS = [w4, w5, w6, w7]


class FakeDeviceArray:
    """Looks like a CuPy array to the dispatcher (module name and CUDA interface)."""
    __module__ = "cupy._core.core"
    __cuda_array_interface__ = {}
    dtype, shape, ndim = np.dtype("float64"), (3,), 1


def test_detect_follows_the_arguments():
    assert detect((np.ones(2), 1.0)) == backends.NUMPY
    assert detect(({"W": FakeDeviceArray()}, 2)) == backends.CUPY


def test_mixing_devices_names_both_arguments():
    with pytest.raises(BackendMismatchError, match=r"argument 'X' holds NumPy.*'params'"):
        detect(({"W": FakeDeviceArray()}, np.ones(3)), names=("params", "X"))


def test_grad_reports_mixed_arguments():
    def f(a, b):
        return np.sum(a * b)

    with pytest.raises(BackendMismatchError, match="'b' holds CuPy"):
        ds.grad(f)(np.ones(3), FakeDeviceArray())


def test_unknown_backend_is_an_error():
    with pytest.raises(ValueError, match="unknown backend"):
        ds.grad(lambda x: x, backend="tpu")


def test_numpy_source_has_no_backend_header():
    def f(x):
        return np.sum(np.tanh(x))

    df = ds.grad(f)
    df(np.ones(3))
    assert not ds.source(df).startswith("# backend")
    assert "no fused kernels (backend: numpy)" in ds.source(df, kernels=True)


@pytest.fixture
def numpy_as_device(monkeypatch):
    """Run the CuPy backend's whole code path (fusion, fused calls, kernel text) with
    NumPy bound as the array module: every fused call takes its op-by-op path."""
    monkeypatch.setattr(Backend, "module", lambda self: np)


@pytest.mark.parametrize("module", WORKLOADS, ids=lambda m: m.__name__.split(".")[-1])
def test_fused_code_path_equals_numpy(numpy_as_device, module):
    from diffsrc.tree import tree_leaves
    wl = module.WORKLOADS[0]
    data = module.make_data(tiny=True)
    args = wl.args(data["params"], data)
    v0, g0 = ds.value_and_grad(module.loss, wrt=wl.wrt)(*args)
    fused = ds.value_and_grad(module.loss, wrt=wl.wrt, backend="cupy")
    v1, g1 = fused(*args)
    np.testing.assert_allclose(v1, v0, rtol=1e-12)
    for a, b in zip(tree_leaves(g1), tree_leaves(g0)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    text = ds.source(fused, kernels=True)
    assert text.startswith("# backend: cupy (fused elementwise kernels)")
    assert "= fused_" in text and "cupy.ElementwiseKernel fused_" in text


def test_fused_call_reads_like_the_program(numpy_as_device):
    def f(W, b, x):
        h = np.maximum(x @ W + b, 0.0)
        return np.sum(h * h)

    df = ds.grad(f, wrt=(0, 1), backend="cupy")
    df(np.ones((3, 2)), np.ones(2), np.ones((4, 3)))
    src = ds.source(df)
    assert "t, h, t_1 = fused_add_maximum_mul(x @ W, b)" in src, src


def _fill_then_fuse(x):
    y = np.zeros(5)
    for i in range(5):
        y[i] = x[i] * 2.0
    return np.sum(np.tanh(y) * x)


def test_fused_code_keeps_in_place_updates(numpy_as_device):
    """The fused path runs the in-place pass too: `y[i] = v` writes into y (no copy per
    iteration), and the elementwise ops still become fused calls."""
    df = ds.grad(_fill_then_fuse, backend="cupy")
    x = np.linspace(0, 1, 5)
    np.testing.assert_allclose(df(x), ds.grad(_fill_then_fuse)(x), rtol=1e-14)
    src = ds.source(df)
    assert "y[i] = " in src and "index_update" not in src, src
    assert "= fused_tanh_mul(y, x)" in src, src


def _scatter_then_fill(x, idx):
    y = x * x
    y[idx] = x[:2] * 3.0
    for i in range(2):
        y[i] = x[i] * 2.0
    return np.sum(y * y)


def test_repeated_index_writes_stay_ordered_on_the_device(numpy_as_device):
    """CuPy leaves the winner of repeated writes `y[idx] = v` open, so on its backend a
    write through an index array goes through index_update (NumPy's last write wins);
    a write at a loop counter stays in place. NumPy code keeps both in place."""
    x, idx = np.linspace(0.5, 1.5, 4), np.array([3, 3])
    device = ds.grad(_scatter_then_fill, backend=Backend("cupy", fuse=False))
    np.testing.assert_allclose(device(x, idx), ds.grad(_scatter_then_fill)(x, idx), rtol=1e-14)
    device_source, numpy_source = ds.source(device), ds.source(ds.grad(_scatter_then_fill))
    assert "= index_update(y, idx, " in device_source and "y[i] = " in device_source, \
        device_source
    assert "index_update(y, idx" not in numpy_source and "y[idx] = " in numpy_source, \
        numpy_source


def _groups(module, kinds=None):
    wl = module.WORKLOADS[0]
    data = module.make_data(tiny=True)
    args = wl.args(data["params"], data)
    df = ds.value_and_grad(module.loss, wrt=wl.wrt, backend=Backend("cupy", fuse=False))
    fn = df.compiled_for(args).ir
    return fn, find_groups(fn, [fn.body, fn.pullback])


@pytest.mark.parametrize("module", WORKLOADS, ids=lambda m: m.__name__.split(".")[-1])
def test_fusion_groups_are_valid_and_printable(numpy_as_device, module):
    _, groups = _groups(module)
    assert groups
    verify_groups(groups)
    text = format_groups(groups)
    assert text.count("group ") == len(groups)
    for group in groups:
        assert len(group.ops) >= 2 and group.outputs


def test_a_group_ending_in_a_sum_is_a_reduction(numpy_as_device):
    def f(x, y):
        return y * np.sum(np.exp(x) * (x - 1.0))

    df = ds.grad(f, wrt=1, backend="cupy")
    x = np.linspace(0, 1, 5)
    g = df(x, 2.0)
    np.testing.assert_allclose(g, np.sum(np.exp(x) * (x - 1.0)))
    fn = df.last.ir
    groups = find_groups(fn, [fn.body, fn.pullback])
    assert any(g.reduction is not None for g in groups), format_groups(groups)
    assert "ReductionKernel" in ds.source(df, kernels=True)


def _sum_of_products(x, y):
    return y * np.sum(np.exp(x) * (x - 1.0))


def _reduction_groups():
    """The IR and groups of a gradient with a group that ends in a sum."""
    df = ds.grad(_sum_of_products, wrt=1, backend=Backend("cupy", fuse=False))
    fn = df.compiled_for((np.linspace(0, 1, 5), 2.0)).ir
    return fn, find_groups(fn, [fn.body, fn.pullback])


def _all_kernels():
    """(label, KernelText) for every group of the workloads and of a reduction, in float32
    and float64."""
    out = []
    for module in WORKLOADS + ["reduction"]:
        fn, groups = _reduction_groups() if module == "reduction" else _groups(module)
        name = getattr(module, "__name__", module)
        constant = {op.result.id: op.attrs["value"] for block in (fn.body, fn.pullback)
                    for op in walk_ops(block) if op.opname == "const"}
        for n, group in enumerate(groups):
            names = {v.id: f"in{k}" for k, v in enumerate(group.inputs)}
            names.update({v.id: f"out{k}" for k, v in enumerate(group.outputs)})
            consts = {v.id: constant[v.id] for v in group.inputs if v.id in constant}
            args = [v for v in group.inputs if v.id not in consts]
            for dtype in ("float32", "float64"):
                kinds = [(np.dtype(dtype), (4, 3))] * len(args)
                try:
                    text = kernel_source(group, names, kinds, consts)
                except Unsupported:
                    continue
                out.append((f"{name}-{n}-{dtype}", text))
    return out


needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed")


@needs_nvcc
def test_every_kernel_compiles_with_nvcc(numpy_as_device, tmp_path):
    kernels = _all_kernels()
    assert len(kernels) >= 10
    assert any(text.reduction_type for _, text in kernels), "no ReductionKernel compiled"
    unit = "\n".join(text.cuda() for _, text in _unique(kernels))
    path = tmp_path / "kernels.cu"
    path.write_text(unit)
    result = subprocess.run(["nvcc", "--ptx", "-arch=sm_80", str(path), "-o",
                             str(tmp_path / "kernels.ptx")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-4000:] + "\n" + unit[:4000]


def _unique(kernels):
    """One copy of each kernel text (the same group text shows up once per name)."""
    seen, out = set(), []
    for label, text in kernels:
        text.name = f"{text.name}_{len(out)}"
        if text.cuda() not in seen:
            seen.add(text.cuda())
            out.append((label, text))
    return out


def test_cupy_namespace_translates_numpy_api():
    """The CuPy backend's `np` (backends/cupy_numpy.py), built over NumPy here, gives
    NumPy's results for the calls CuPy spells differently."""
    from diffsrc.backends.cupy_numpy import BackendUnsupportedError, namespace
    ns = namespace(np)
    x = np.arange(1.0, 7.0).reshape(2, 3)
    mask = np.array([[True, False, True], [False, True, True]])
    assert ns.sum(x, axis=1, where=mask).tolist() == np.sum(x, axis=1, where=mask).tolist()
    np.testing.assert_allclose(ns.mean(x, axis=0, where=mask), np.mean(x, axis=0, where=mask))
    assert ns.max(x, axis=1, where=mask, initial=-10.0).tolist() == \
        np.max(x, axis=1, where=mask, initial=-10.0).tolist()
    assert ns.min(x, initial=0.5) == 0.5 and ns.prod(x, where=mask) == np.prod(x, where=mask)
    assert ns.take(x, [5, 9], mode="clip").tolist() == [6.0, 6.0]
    assert ns.take(x, [-1, 7], mode="wrap").tolist() == np.take(x, [-1, 7], mode="wrap").tolist()
    np.testing.assert_allclose(ns.linalg.vector_norm(x, axis=(0, 1), keepdims=True),
                               np.linalg.vector_norm(x, axis=(0, 1), keepdims=True))
    np.testing.assert_allclose(ns.linalg.matrix_norm(x, ord="nuc"),
                               np.linalg.matrix_norm(x, ord="nuc"))
    np.testing.assert_allclose(ns.linalg.svdvals(x), np.linalg.svdvals(x))
    assert ns.linalg.trace(np.eye(3), offset=0) == 3.0
    assert ns.vecdot(x, x).tolist() == np.vecdot(x, x).tolist()
    assert ns.dot(x, 2.0).tolist() == (2 * x).tolist()
    assert ns.asarray([x[0, 0], 2.0]).tolist() == [1.0, 2.0]
    assert ns.tensordot(np.float64(2.0), x, axes=([], [])).tolist() == (2 * x).tolist()
    assert ns.linalg.qr(np.eye(2) + 1).Q.shape == (2, 2)
    with pytest.raises(BackendUnsupportedError, match=r"np\.no_such_function has no CuPy"):
        ns.no_such_function
    assert not hasattr(ns.linalg, "no_such_function")


def test_gpu_without_cupy_is_a_clear_error(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_cupy(name, *args, **kwargs):
        if name == "cupy":
            raise ImportError("No module named 'cupy'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cupy)
    from diffsrc.errors import DiffsrcError
    from diffsrc.tree import to_device
    with pytest.raises(DiffsrcError, match="needs CuPy and a CUDA GPU"):
        to_device({"W": np.ones(2)}, "gpu")



# ---------------------------------------------------------------- --device gpu without CuPy

EXAMPLE_NAMES = ("sine_steering", "source_code_derivatives", "linear_classifiers", "mlp_digits",
                 "cnn_digits", "pairwise_distances")


def test_require_device_without_cupy_is_a_clear_error(monkeypatch):
    from diffsrc.backends import require_device
    assert require_device("cpu") is np
    monkeypatch.setitem(sys.modules, "cupy", None)          # import cupy -> ImportError
    with pytest.raises(ds.DiffsrcError, match="needs CuPy and a CUDA GPU"):
        require_device("gpu")
    with pytest.raises(ValueError, match="unknown device"):
        require_device("tpu")


def test_examples_with_device_gpu_and_no_cupy_say_so():
    """Every example takes --device {cpu,gpu}; where CuPy cannot be imported (made so here,
    whatever is installed), --device gpu stops at once with the reason, exit status 2."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    procs = {}
    for name in EXAMPLE_NAMES:
        path = os.path.join(root, "examples", f"{name}.py")
        code = ("import runpy, sys; sys.modules['cupy'] = None; "
                f"sys.argv = [{path!r}, '--smoke', '--device', 'gpu']; "
                f"runpy.run_path({path!r}, run_name='__main__')")
        procs[name] = subprocess.Popen([sys.executable, "-c", code], cwd=root, text=True,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, (name, out[-2000:], err[-2000:])
        assert "--device" in err and "needs CuPy and a CUDA GPU" in err, (name, err)
        assert not out, (name, out)
