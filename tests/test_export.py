"""ds.export: standalone derivative modules that need only NumPy.

Every exported module is imported in ONE fresh interpreter started with `-S -E`
(no site-packages processing, so the editable install of diffsrc is invisible)
whose path holds only the export directory and NumPy's directory; that child
checks that `import diffsrc` fails, calls each exported function on pickled
inputs and pickles the results back. They must equal what ds.grad returns in
this process, bit for bit (it is the same generated code).
"""
import ast
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import diffsrc as ds
from diffsrc.export import ExportError, annotate_source

THIS_FILE = os.path.realpath(__file__)
W_GLOBAL = np.arange(3.0)


def F(a, b):
    return a / (1.0 + b * b)


def mlp_loss(W, b, x, y):
    h = np.tanh(x @ W + b)
    return np.mean((h - y) ** 2)


def dict_loss(params, x):
    h = np.maximum(x @ params["W1"] + params["b1"], 0.0)
    return np.sum((h @ params["W2"]) ** 2)


def loop_loss(x, n):
    s = 0.0
    for i in range(n):
        s = s + np.sin(x * i)
    return np.sum(s * s)


def reads_global(x):
    return np.sum(x * W_GLOBAL)   # <<reads_global>>


def _line(marker):
    with open(THIS_FILE, encoding="utf-8") as fh:
        return next(i for i, line in enumerate(fh, 1) if line.rstrip().endswith(f"# <<{marker}>>"))


RNG = np.random.default_rng(7)
MLP_ARGS = (RNG.normal(size=(3, 2)), RNG.normal(size=2), RNG.normal(size=(5, 3)),
            RNG.normal(size=(5, 2)))
DICT_ARGS = ({"W1": RNG.normal(size=(4, 6)), "b1": RNG.normal(size=6),
              "W2": RNG.normal(size=(6, 2))}, RNG.normal(size=(3, 4)))
LOOP_ARGS = (RNG.normal(size=4), 3)


def _cases():
    """name -> (gradient function, export kwargs, call arguments)."""
    return {
        "scalar": (ds.grad(F, wrt=(0, 1)), {}, (1.0, 2.0)),
        "scalar_single": (ds.grad(F, wrt="b"), {}, (1.0, 2.0)),
        "mlp": (ds.grad(mlp_loss, wrt=("W", "b")), {}, MLP_ARGS),
        "mlp_one_tuple": (ds.grad(mlp_loss, wrt=(0,)), {}, MLP_ARGS),
        "mlp_value": (ds.value_and_grad(mlp_loss, wrt=1), {}, MLP_ARGS),
        "dict": (ds.grad(dict_loss), {}, DICT_ARGS),
        "loop": (ds.grad(loop_loss), {"annotate": True}, LOOP_ARGS),
        "renamed": (ds.grad(F, wrt=(0, 1)), {"name": "dF"}, (1.0, 2.0)),
        "placeholder": (ds.grad(mlp_loss, wrt=("W", "b")), {"placeholder": True}, MLP_ARGS),
    }


CHILD = textwrap.dedent("""
    import importlib, importlib.util, pickle, sys
    sys.path[:0] = [sys.argv[1], sys.argv[2]]
    found = importlib.util.find_spec("diffsrc") is not None
    if found:                         # diffsrc installed into site-packages: hide it
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "diffsrc" or name.startswith("diffsrc."):
                    raise ImportError("blocked")
        sys.meta_path.insert(0, Block())
    try:
        import diffsrc
        importable = True
    except ImportError:
        importable = False
    with open(sys.argv[3], "rb") as f:
        jobs = pickle.load(f)
    out = {"diffsrc_importable": importable, "found_on_path": found}
    for name, (module, function, args) in jobs.items():
        mod = importlib.import_module(module)
        out[name] = getattr(mod, function)(*args)
    out["modules"] = sorted(m for m in sys.modules if m.split(".")[0] not in
                            sys.stdlib_module_names)
    with open(sys.argv[4], "wb") as f:
        pickle.dump(out, f)
""")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Export every case, run them all in one isolated interpreter; (expected, got, texts)."""
    folder = tmp_path_factory.mktemp("exported")
    expected, texts, jobs = {}, {}, {}
    for name, (df, kwargs, args) in _cases().items():
        kwargs = dict(kwargs)
        placeholder = kwargs.pop("placeholder", False)
        if not placeholder:
            expected[name] = df(*args)            # specialises df for these arguments
        text = ds.export(df, folder / f"d_{name}.py", **kwargs)
        if placeholder:                           # exported before any call
            expected[name] = df(*args)
        texts[name] = text
        public = kwargs.get("name") or ast.literal_eval(
            text.split("__all__ = ", 1)[1].split("\n", 1)[0])[0]
        jobs[name] = (f"d_{name}", public, args)
    with open(folder / "jobs.pkl", "wb") as f:
        pickle.dump(jobs, f)
    numpy_dir = os.path.dirname(os.path.dirname(np.__file__))
    proc = subprocess.run([sys.executable, "-S", "-E", "-c", CHILD, str(folder), numpy_dir,
                           str(folder / "jobs.pkl"), str(folder / "out.pkl")],
                          capture_output=True, text=True, timeout=120, cwd=folder)
    assert proc.returncode == 0, proc.stderr
    with open(folder / "out.pkl", "rb") as f:
        got = pickle.load(f)
    return expected, got, texts, folder


def test_child_cannot_import_diffsrc(exported):
    _, got, _, _ = exported
    assert got["diffsrc_importable"] is False
    assert not any(m.startswith("diffsrc") for m in got["modules"])
    third_party = {m.split(".")[0] for m in got["modules"]} - {"__main__"}
    assert {m for m in third_party if not m.startswith("d_")} == {"numpy"}


def _assert_same(a, b):
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    elif isinstance(a, np.ndarray):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


@pytest.mark.parametrize("name", list(_cases()))
def test_exported_equals_ds_grad(exported, name):
    expected, got, _, _ = exported
    _assert_same(got[name], expected[name])


def test_scalar_values_are_the_known_gradient(exported):
    _, got, _, _ = exported
    assert got["scalar"] == pytest.approx((0.2, -0.16), abs=1e-15)
    assert got["scalar_single"] == pytest.approx(-0.16, abs=1e-15)
    assert isinstance(got["scalar"][0], float)
    value, grad_b = got["mlp_value"]
    assert np.ndim(value) == 0 and grad_b.shape == (2,)
    assert isinstance(got["mlp_one_tuple"], tuple) and len(got["mlp_one_tuple"]) == 1
    assert set(got["dict"]) == {"W1", "b1", "W2"}


def test_module_imports_only_numpy_and_math(exported):
    _, _, texts, _ = exported
    for name, text in texts.items():
        tree = ast.parse(text)
        top = set()
        for node in tree.body:
            if isinstance(node, ast.Import):
                top |= {a.name.split(".")[0] for a in node.names}
            assert not isinstance(node, ast.ImportFrom), name
        assert top <= {"numpy", "math"} and "numpy" in top, (name, top)
        assert "diffsrc." not in text.replace("diffsrc.runtime", "")
        assert "import diffsrc" not in text


def test_header_names_function_file_and_version(exported):
    _, _, texts, _ = exported
    head = texts["mlp"].split("\n\n", 1)[0]
    assert f"diffsrc {ds.__version__}" in head
    assert "`mlp_loss`" in head and "test_export.py" in head
    assert "with respect to W, b" in head
    assert "float64 array, 2-d" in head                  # specialised for the last call
    assert "any shape" in texts["placeholder"].split("\n\n", 1)[0]


def test_module_contains_generated_source_and_runtime_helpers(exported):
    _, _, texts, _ = exported
    df = ds.grad(mlp_loss, wrt=("W", "b"))
    df(*MLP_ARGS)
    general = df.compiled_for(MLP_ARGS).source          # exports are never shape-specialised
    assert general != ds.source(df)
    body = general.split("\n", 1)[1]                     # without the `def` line
    assert body in texts["mlp"]
    tree = ast.parse(texts["mlp"])
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    from diffsrc import runtime
    used = {name for name in vars(runtime) if f"{name}(" in body}
    assert used and used <= defined
    assert "_mlp_loss_grad" in defined and "mlp_loss_grad" in defined


def test_name_and_annotate_options(exported):
    _, _, texts, _ = exported
    assert '__all__ = ["dF"]' in texts["renamed"] and "def dF(a, b):" in texts["renamed"]
    assert "# from test_export.py:" in texts["loop"]
    assert "# from " not in texts["mlp"]


def test_export_returns_text_and_writes_file(tmp_path):
    df = ds.grad(F, wrt=0)
    df(1.0, 2.0)
    text = ds.export(df, tmp_path / "dF.py")
    assert (tmp_path / "dF.py").read_text() == text
    assert ds.export(df) == text                          # no path: text only


def test_array_captured_from_a_global_is_a_clear_error(tmp_path):
    df = ds.grad(reads_global)
    df(np.ones(3))
    with pytest.raises(ExportError) as info:
        ds.export(df, tmp_path / "bad.py")
    err = info.value
    assert isinstance(err, ds.DiffsrcError)
    assert "W_GLOBAL" in str(err) and "shape (3,)" in str(err)
    assert "argument" in str(err)
    assert os.path.realpath(err.filename) == THIS_FILE
    assert err.lineno == _line("reads_global")
    assert not (tmp_path / "bad.py").exists()


def test_export_rejects_what_is_not_a_derivative():
    with pytest.raises(TypeError, match="ds.grad"):
        ds.export(F, None)


def test_annotate_source_aligns_comments():
    from diffsrc.ir.nodes import Location
    text = "def f(x):\n    y = x\n    return y\n"
    out = annotate_source(text, {2: Location("/a/b/model.py", 7)})
    assert out.splitlines()[1].rstrip().endswith("# from model.py:7")
    assert out.splitlines()[0] == "def f(x):" and out.splitlines()[2] == "    return y"
    assert annotate_source(text, {}) == text
