"""CPU-side checks of the CuPy backend's portability fixes (no GPU, no CuPy): a fake array
module built over NumPy stands in for CuPy, with CuPy's stricter `linalg.solve`, and a
NumPy subclass with `__cuda_array_interface__` stands in for a device array."""
import re
import types

import numpy as np
import pytest

import diffsrc as ds
from diffsrc import api, runtime
from diffsrc.backends import Backend
from diffsrc.backends.cupy_numpy import BackendUnsupportedError, namespace


class DeviceArray(np.ndarray):
    """What the runtime helpers take for a CuPy array (the interface attribute)."""
    __cuda_array_interface__ = {}


def dev(x):
    return np.asarray(x, dtype=float).view(DeviceArray)


def cupy_solve(a, b):
    """CuPy's rule (cupy/linalg/_solve.py): b is (..., M) or (..., M, K) with a's stack
    dimensions exactly, no broadcasting."""
    if not ((a.ndim == b.ndim or a.ndim == b.ndim + 1) and a.shape[:-1] == b.shape[:a.ndim - 1]):
        raise ValueError("a must have (..., M, M) shape and b must have (..., M) or (..., M, K)")
    return np.linalg.solve(a, b if a.ndim == b.ndim else b[..., None])[..., 0] \
        if a.ndim != b.ndim else np.linalg.solve(a, b)


def fake_cupy(name):
    """A module with NumPy's functions, CuPy's solve, device-typed asarray/stack/repeat
    (repeat refuses device counts, as CuPy's does)."""
    mod = types.ModuleType(name)
    mod.__dict__.update({k: v for k, v in vars(np).items() if not k.startswith("__")})
    mod.ndarray = DeviceArray
    mod.asarray = lambda a, dtype=None, *args, **kw: np.asarray(a, dtype).view(DeviceArray)
    mod.stack = lambda seq, axis=0: np.stack(seq, axis).view(DeviceArray)

    def repeat(a, repeats, axis=None):
        if isinstance(repeats, DeviceArray):
            raise ValueError("cupy.ndarray is not supported for repeats")
        return np.repeat(a, repeats, axis)
    mod.repeat = repeat
    linalg = types.ModuleType(name + ".linalg")
    linalg.__dict__.update({k: v for k, v in vars(np.linalg).items() if not k.startswith("__")})
    linalg.solve = cupy_solve
    mod.linalg = linalg
    mod.random = types.ModuleType(name + ".random")
    mod.random.default_rng = lambda seed=None: StandardDraws(np.random.default_rng(seed))
    return mod


class StandardDraws:
    """A generator with CuPy's Generator's draws (standard ones; no `normal`)."""

    def __init__(self, generator):
        self.standard_normal = generator.standard_normal
        self.random = generator.random
        self.integers = generator.integers


SOLVES = [((3, 3), (3,)), ((3, 3), (3, 2)), ((2, 3, 3), (2, 3, 1)), ((2, 3, 3), (3,)),
          ((2, 3, 3), (3, 4)), ((3, 3), (2, 3, 2))]


@pytest.mark.parametrize("sa, sb", SOLVES)
def test_solve_broadcasts_stacks_as_numpy_does(sa, sb):
    ns = namespace(fake_cupy("fakecupy_solve"))
    rng = np.random.default_rng(0)
    a = rng.normal(size=sa) + 4 * np.eye(3)
    b = rng.normal(size=sb)
    if len(sa) > 2 and len(sb) == 1 or len(sa) != len(sb) and len(sb) > 1:
        with pytest.raises(ValueError):
            cupy_solve(a, b)                 # what the translation has to work around
    np.testing.assert_allclose(ns.linalg.solve(a, b), np.linalg.solve(a, b), rtol=1e-12)


def test_generator_draws_numpy_distributions_from_standard_ones():
    rng = namespace(fake_cupy("fakecupy_random")).random.default_rng(3)
    expected = np.random.default_rng(3)
    np.testing.assert_allclose(rng.normal(1.0, 2.0, size=(2, 3)),
                               1.0 + 2.0 * expected.standard_normal((2, 3)), rtol=1e-15)
    np.testing.assert_allclose(rng.uniform(-1.0, 3.0, size=4),
                               -1.0 + 4.0 * expected.random(4), rtol=1e-15)
    assert rng.integers(0, 9, size=3).tolist() == expected.integers(0, 9, size=3).tolist()
    with pytest.raises(BackendUnsupportedError, match="Generator.zipf"):
        rng.zipf(2.0)


def test_repeat_takes_device_counts():
    ns = namespace(fake_cupy("fakecupy_repeat"))
    x = np.arange(3.0)
    assert ns.repeat(x, dev([1, 0, 2]).astype(np.int64)).tolist() == [0.0, 2.0, 2.0]


def test_method_reduction_with_where_is_emitted_as_the_function():
    def f(x):
        mask = np.array([[True, False, True], [False, True, True]])
        return np.sum((x * x).sum(where=mask) + x.max(initial=10.0, where=mask))

    df = ds.grad(f)
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(df(x), 2 * x * np.array([[1, 0, 1], [0, 1, 1]]))
    text = ds.source(df)
    assert "where=mask" in text and "initial=10.0" in text
    assert not re.search(r"(?<!np)\.(sum|max)\([^)]*where=", text), text   # no method form left


def test_bind_moves_integer_constants_too(monkeypatch):
    fake = fake_cupy("fakecupy_bind")
    monkeypatch.setattr(Backend, "module", lambda self: fake)
    space = Backend("cupy").bind({"r": np.arange(3), "w": np.ones(2), "n": 3})
    assert type(space["r"]) is DeviceArray and type(space["w"]) is DeviceArray
    assert space["n"] == 3


def test_r_ranges_run_on_the_device_backend(monkeypatch):
    """np.r_[0:10] is folded to an integer constant that meets device operands."""
    fake = fake_cupy("fakecupy_r")
    monkeypatch.setattr(Backend, "module", lambda self: fake)

    def f(x):
        return np.sum(np.r_[x, np.ones(3), 1:4] * np.r_[0:10])

    df = ds.grad(f, backend=Backend("cupy", fuse=False))
    np.testing.assert_allclose(df(np.arange(4.0)), np.arange(4.0))


def test_scalar_seed_lands_on_the_operands_device(monkeypatch):
    monkeypatch.setattr(runtime, "array_module", lambda x: fake_cupy("fakecupy_seed"))
    assert type(runtime._arr(1.0, np.ones(2), dev([1.0, 2.0]))) is DeviceArray
    assert type(runtime._arr(1.0, np.ones(2))) is np.ndarray
    g = dev([1.0])
    assert runtime._arr(g, np.ones(2)) is g


def test_unreduce_of_a_list_of_device_values_stays_on_the_device(monkeypatch):
    monkeypatch.setattr(runtime, "array_module", lambda x: fake_cupy("fakecupy_unreduce"))
    out = runtime.unreduce(1.0, [1.0, dev(2.0), 3.0])
    assert type(out) is DeviceArray and out.tolist() == [1.0, 1.0, 1.0]
    assert runtime.unreduce(2.0, [1.0, 2.0]).tolist() == [2.0, 2.0]


def test_unrepeat_with_device_counts(monkeypatch):
    counts = np.array([1, 0, 2]).view(DeviceArray)
    counts.get = lambda: np.array([1, 0, 2])
    g = np.array([1.0, 2.0, 3.0])
    assert runtime.unrepeat(g, np.zeros(3), counts).tolist() == [1.0, 0.0, 5.0]


class ZeroD:
    """A 0-d device array's gradient for a float leaf (what CuPy gives back)."""
    ndim = 0

    def __float__(self):
        return 2.5


def test_float_leaves_in_containers_come_back_as_floats():
    grad = {"a": ZeroD(), "layers": [{"b": ZeroD()}, (ZeroD(), np.ones(2))]}
    arg = {"a": 1.0, "layers": [{"b": 2.0}, (3.0, np.ones(2))]}
    out = api._as_float_like(grad, arg)
    assert out["a"] == 2.5 and type(out["a"]) is float
    assert type(out["layers"][0]["b"]) is float and type(out["layers"][1][0]) is float
    zero_d_arg = {"a": np.asarray(1.0)}
    kept = api._as_float_like({"a": ZeroD()}, zero_d_arg)
    assert isinstance(kept["a"], ZeroD)       # a 0-d array argument keeps an array gradient
