"""The registry covers the NumPy list of issue 3, docs/numpy_coverage.md is generated from
it and up to date, and every rule template only calls helpers registered as primitives."""
import importlib.util
import inspect
import os
import subprocess
import sys
import types

import numpy as np
import pytest

import diffsrc  # noqa: F401  (registers every rule)
from diffsrc import runtime
from diffsrc.rules import creation, indexing, linalg, reductions, registry, shape, ufuncs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_generator():
    spec = importlib.util.spec_from_file_location(
        "gen_coverage", os.path.join(ROOT, "docs", "gen_coverage.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_listed_function_has_a_rule_or_is_declared_constant():
    text, gaps = load_generator().generate()
    assert gaps == [], f"listed NumPy functions without a rule: {gaps}"
    assert "NOT REGISTERED" not in text and "**no rule**" not in text


def without_notes(text):
    """The page less the last table column (rule docstrings, which other modules own and
    may reword): what must never be stale is which forms exist and which have rules."""
    lines = []
    for line in text.splitlines():
        if line.startswith("|") and line.count("|") >= 4:
            line = line[:line.rstrip().rstrip("|").rfind("|") + 1]
        lines.append(line)
    return "\n".join(lines)


def test_coverage_page_is_generated_and_up_to_date():
    # In a fresh interpreter: other tests register their own rules (@ds.adjoint) in this one.
    script = ("import importlib.util, sys; spec = importlib.util.spec_from_file_location("
              f"'gen', {os.path.join(ROOT, 'docs', 'gen_coverage.py')!r}); "
              "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
              "sys.stdout.write(m.generate()[0])")
    text = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True).stdout
    path = os.path.join(ROOT, "docs", "numpy_coverage.md")
    with open(path) as f:
        current = f.read()
    assert without_notes(current) == without_notes(text), \
        "docs/numpy_coverage.md is stale: run python docs/gen_coverage.py"
    assert text.count("\n|") == current.count("\n|")


FAMILIES = [ufuncs, reductions, shape, indexing, linalg, creation]


def templates():
    seen = []
    for module in FAMILIES:
        for name, obj in vars(module).items():
            if isinstance(obj, types.FunctionType) and obj.__module__ == module.__name__ and \
                    any(e.adjoint is obj for e in registry.PRIMITIVES.values()):
                seen.append(obj)
    return seen


@pytest.mark.parametrize("template", templates(), ids=lambda t: f"{t.__module__}.{t.__name__}")
def test_rule_templates_call_only_registered_helpers(template):
    """An unregistered runtime helper would be inlined into the pullback, not called."""
    for name in template.__code__.co_names:
        obj = template.__globals__.get(name)
        if isinstance(obj, types.FunctionType) and obj.__module__ == runtime.__name__:
            assert registry.lookup(obj) is not None, f"{name} is not a registered primitive"
        elif isinstance(obj, types.FunctionType) and obj.__module__.startswith("diffsrc"):
            # anything else must fold away while transforming (ds.export copies only runtime)
            entry = registry.lookup(obj)
            assert entry is not None and entry.meta.get("lower") is not None, \
                f"{name} ({obj.__module__}) would be called by generated code: move it to runtime"


@pytest.mark.parametrize("template", templates(), ids=lambda t: f"{t.__module__}.{t.__name__}")
def test_rules_with_kinks_or_ties_document_their_convention(template):
    name = template.__name__
    kinky = ("abs", "maximum", "minimum", "fmax", "fmin", "clip", "extremum", "ptp", "sort",
             "prod", "cumprod", "hypot", "sinc", "heaviside", "norm", "cholesky", "eigh", "std")
    if any(k in name for k in kinky):
        assert inspect.getdoc(template), f"{name} must document its subgradient convention"


def test_ndarray_methods_of_differentiable_functions_are_registered():
    missing = []
    for entry in list(registry.PRIMITIVES.values()):
        fn = entry.fn
        name = getattr(fn, "__name__", None)
        if entry.adjoint is None or name is None or vars(np).get(name) is not fn:
            continue
        method = getattr(np.ndarray, name, None)
        if callable(method) and name not in ("sort", "fill", "put", "resize", "partition",
                                             "choose", "compress", "searchsorted", "view",
                                             "conj", "conjugate") and \
                registry.lookup(registry.Method(name)) is None:
            missing.append(name)
    assert missing == [], f"ndarray methods without an entry: {missing}"


def exported_workload(x, w):
    h = np.pad(x, 1, mode="reflect")
    win = np.lib.stride_tricks.sliding_window_view(h, (2, 2))
    y = np.einsum("ijkl,kl->ij", win, w)
    z = np.sort(y, axis=1)[:, -2:]
    parts = np.split(y, [2], axis=0)
    return (np.prod(z * 0.1 + 3.0) + np.linalg.norm(y, 1) + np.take(y, [0, 0, 3]).sum()
            + np.tile(w, 2).max() + np.sum(parts[1] ** 2) + np.sum(x.astype(np.float32))
            + np.trace(np.linalg.inv(w @ w.T + 2.0 * np.eye(2))) + np.repeat(x, 2).std())


def test_derivatives_using_the_numpy_helpers_export_to_a_numpy_only_module(tmp_path):
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(4, 4)), rng.normal(size=(2, 2))
    df = diffsrc.grad(exported_workload, wrt=(0, 1))
    expected = df(x, w)
    path = tmp_path / "dworkload.py"
    diffsrc.export(df, str(path), args=(x, w))
    text = path.read_text()
    assert "import diffsrc" not in text and "from diffsrc" not in text
    namespace = {"__name__": "dworkload"}
    exec(compile(text, str(path), "exec"), namespace)
    grads = namespace["exported_workload_grad"](x, w)      # ds.grad's calling convention
    assert len(grads) == 2
    for got, want in zip(grads, expected):
        np.testing.assert_allclose(got, want, rtol=1e-12)
