"""The `diffsrc` command line, driven in subprocesses (`python -m diffsrc ...`).

Every command and every error case runs as its own process. To keep the file
fast, all the processes of the table below are started together by one fixture
(a few at a time) and each test then checks its own result. Expected outputs are
computed in this process with the Python API on the same file, so the tests
check that the CLI shows what diffsrc generates, whatever the code looks like.
"""
import concurrent.futures
import difflib
import importlib.util
import os
import pickle
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import diffsrc as ds
from diffsrc import cli

MODEL = textwrap.dedent('''\
    import numpy as np
    import diffsrc as ds

    W0 = np.arange(3.0)


    def F(a, b):
        return a / (1.0 + b * b)


    def loss(W, b, x, y):
        h = np.tanh(x @ W + b)
        return np.mean((h - y) ** 2)


    def param_loss(params, x):
        h = np.tanh(x @ params["W"] + params["b"])
        return np.sum(h ** 2)


    def reads_global(x):
        return np.sum(x * W0)


    @ds.grad(wrt="x")
    def decorated(x, y):
        return np.sum(x * y)


    class Model:
        def energy(self, x):
            return np.sum(x ** 2)


    def with_try(x):
        try:
            return x * 2.0
        except ValueError:
            return x


    CONSTANT = 3

    if __name__ == "__main__":
        raise SystemExit("the __main__ block must not run")
    ''')

FILES = {
    "model.py": MODEL,
    "broken.py": "import numpy as np\n\ndef f(x):\n    return np.sum(x ** 2\n",
    "fails_on_import.py": "import numpy as np\n\nraise RuntimeError('no data here')\n",
    "exits.py": "import sys\nsys.exit(4)\n",
}

PARAMS_EXAMPLE = '({"W": np.ones((3, 2)), "b": np.zeros(2)}, np.ones((4, 3)))'

# name -> argv after `python -m diffsrc`
CASES = {
    "version": ["--version"],
    "show": ["show", "model.py:F"],
    "show_example": ["show", "model.py:F", "--example", "(1.0, 2.0)"],
    "show_wrt": ["show", "model.py:loss", "--wrt", "W,1"],
    "show_structured": ["show", "model.py:param_loss", "--example", PARAMS_EXAMPLE,
                        "--wrt", "params"],
    "show_decorated": ["show", "model.py:decorated"],
    "show_method": ["show", "model.py:Model.energy", "--example", "(Model(), np.ones(3))",
                    "--wrt", "x"],
    "show_ir": ["show", "model.py:F", "--ir"],
    "show_ir_source": ["show", "model.py:F", "--ir", "--source"],
    "show_no_opt": ["show", "model.py:F", "--wrt", "a", "--no-opt"],
    "show_diff": ["show", "model.py:F", "--wrt", "a", "--diff"],
    "show_diff_ir": ["show", "model.py:F", "--wrt", "a", "--diff", "--ir"],
    "show_annotate": ["show", "model.py:loss", "--wrt", "W,b", "--annotate"],
    "show_pullback": ["show", "model.py:F", "--mode", "pullback"],
    "show_primal": ["show", "model.py:F", "--mode", "primal"],
    "color_always": ["show", "model.py:F", "--color", "always"],
    "color_never": ["show", "model.py:F", "--color", "never"],
    "export": ["export", "model.py:loss", "--wrt", "W,b", "-o", "dloss.py"],
    "export_example": ["export", "model.py:F", "--example", "(1.0, 2.0)", "-o", "dF.py",
                       "--name", "dF"],
    "export_stdout": ["export", "model.py:F", "--with-value"],
    # errors
    "err_no_file": ["show", "missing.py:F"],
    "err_no_function": ["show", "model.py:G"],
    "err_not_function": ["show", "model.py:CONSTANT"],
    "err_target": ["show", "model.py"],
    "err_syntax": ["show", "broken.py:f"],
    "err_import": ["show", "fails_on_import.py:f"],
    "err_exit": ["show", "exits.py:f"],
    "err_unsupported": ["show", "model.py:with_try"],
    "err_unsupported_export": ["export", "model.py:with_try", "-o", "never.py"],
    "err_wrt": ["show", "model.py:F", "--wrt", "c"],
    "err_example": ["show", "model.py:F", "--example", "(1.0, undefined)"],
    "show_jvp": ["show", "model.py:F", "--mode", "jvp"],
    "err_diff_no_opt": ["show", "model.py:F", "--diff", "--no-opt"],
    "err_export_closure": ["export", "model.py:reads_global", "-o", "never.py"],
    "err_no_command": [],
}


class Run:
    def __init__(self, proc):
        self.rc, self.out, self.err = proc.returncode, proc.stdout, proc.stderr

    def __repr__(self):
        return f"rc={self.rc}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    for name, text in FILES.items():
        (folder / name).write_text(text)
    return folder


def _env():
    env = dict(os.environ)
    env.pop("NO_COLOR", None)
    env.pop("DIFFSRC_TRACEBACK", None)
    return env


@pytest.fixture(scope="module")
def runs(work):
    def one(argv):
        proc = subprocess.run([sys.executable, "-m", "diffsrc", *argv], cwd=work,
                              capture_output=True, text=True, timeout=120, env=_env())
        return Run(proc)
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(one, argv) for name, argv in CASES.items()}
        return {name: f.result() for name, f in futures.items()}


@pytest.fixture(scope="module")
def model(work):
    """model.py imported in this process, under the same path the CLI sees."""
    spec = importlib.util.spec_from_file_location("cli_test_model", work / "model.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def _source(fn, wrt, args=None, optimize=True, annotate=False):
    from diffsrc.api import _example_args
    df = ds.grad(fn, wrt=wrt)
    args = _example_args(fn) if args is None else args
    compiled = df.compiled_for(args, optimize)
    if annotate:
        from diffsrc.export import annotate_source
        return annotate_source(compiled.source, compiled.line_locs)
    return compiled.source


def ok(run):
    assert run.rc == 0, run
    assert "Traceback" not in run.err, run
    return run


# ---------------------------------------------------------------------- success
def test_version(runs):
    assert ok(runs["version"]).out.strip() == f"diffsrc {ds.__version__}"


def test_show_prints_the_generated_gradient(runs, model):
    out = ok(runs["show"]).out
    assert out == _source(model.F, (0, 1))          # default: every array/float argument
    assert "def F_grad(a, b):" in out and "a_bar" in out and "b_bar" in out


def test_show_with_example_arguments(runs, model):
    assert ok(runs["show_example"]).out == _source(model.F, (0, 1), (1.0, 2.0))


def test_show_wrt_by_name_and_position(runs, model):
    expected = _source(model.loss, ("W", "b"))
    assert ok(runs["show_wrt"]).out == expected           # --wrt W,1
    assert "W_bar" in expected and "b_bar" in expected and "x_bar" not in expected


def test_show_structured_arguments(runs, model):
    args = eval(PARAMS_EXAMPLE, {"np": np})
    out = ok(runs["show_structured"]).out
    assert out == _source(model.param_loss, "params", args)
    assert "'W'" in out and "'b'" in out


def test_show_decorated_gradient_uses_its_wrt(runs, model):
    out = ok(runs["show_decorated"]).out
    assert out == _source(model.decorated.fn, "x")
    assert "x_bar" in out and "y_bar" not in out


def test_show_method(runs, model):
    out = ok(runs["show_method"]).out
    assert out == _source(model.Model.energy, "x", (model.Model(), np.ones(3)))


def test_show_ir(runs):
    out = ok(runs["show_ir"]).out
    assert out.startswith("function F(%0<a>, %1<b>):")
    assert "pullback(" in out and "def " not in out
    numbers = [int(n) for n in re.findall(r"%(\d+)", out)]
    assert min(numbers) == 0 and len(set(numbers)) > 5


def test_show_ir_and_source(runs, model):
    out = ok(runs["show_ir_source"]).out
    ir_part, source_part = out.split("# ---- generated source ----\n")
    assert ir_part.startswith("# ---- IR ----\nfunction F(")
    assert source_part == _source(model.F, (0, 1))


def test_show_without_optimisation(runs, model):
    assert ok(runs["show_no_opt"]).out == _source(model.F, "a", optimize=False)


def test_show_diff(runs, model):
    before = _source(model.F, "a", optimize=False)
    after = _source(model.F, "a")
    out = ok(runs["show_diff"]).out
    if before == after:
        assert "changed nothing" in out
    else:
        expected = "".join(difflib.unified_diff(
            before.splitlines(True), after.splitlines(True),
            "generated source before the optimisation passes",
            "generated source after the optimisation passes"))
        assert out == expected
        assert any(line.startswith("-    ") for line in out.splitlines())


def test_show_diff_ir(runs):
    out = ok(runs["show_diff_ir"]).out
    assert "IR before the optimisation passes" in out or "IR: the optimisation" in out
    assert "def " not in out.replace("generated source", "")


def test_show_annotate(runs, model):
    out = ok(runs["show_annotate"]).out
    assert out == _source(model.loss, ("W", "b"), annotate=True)
    line = next(i for i, text in enumerate(MODEL.splitlines(), 1) if "x @ W + b" in text)
    assert re.search(rf"x @ W.*# from model\.py:{line}$", out, re.M)


def test_show_pullback_and_primal(runs):
    out = ok(runs["show_pullback"]).out
    assert "def F_pullback(a, b):" in out and "def F_back(" in out
    primal = ok(runs["show_primal"]).out
    assert primal.startswith("def F(a, b):") and "_bar" not in primal


def test_highlighting_only_when_asked_or_on_a_terminal(runs):
    pytest.importorskip("pygments")
    assert "\x1b[" in ok(runs["color_always"]).out
    assert "\x1b[" not in ok(runs["color_never"]).out
    assert "\x1b[" not in ok(runs["show"]).out           # piped: plain
    strip = re.sub(r"\x1b\[[0-9;]*m", "", runs["color_always"].out)
    assert strip == runs["color_never"].out


def test_highlighting_on_a_tty(work):
    pytest.importorskip("pygments")
    pty = pytest.importorskip("pty")
    outputs = {}
    for label, extra in (("tty", {}), ("no_color", {"NO_COLOR": "1"})):
        master, slave = pty.openpty()
        proc = subprocess.Popen([sys.executable, "-m", "diffsrc", "show", "model.py:F"],
                                cwd=work, stdout=slave, stderr=subprocess.PIPE,
                                env={**_env(), "TERM": "xterm", **extra})
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        os.close(master)
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
        proc.stderr.close()
        outputs[label] = b"".join(chunks).decode()
    assert "\x1b[" in outputs["tty"]
    assert "\x1b[" not in outputs["no_color"] and "def F_grad" in outputs["no_color"]


def test_export_writes_a_module_that_runs_without_diffsrc(runs, work, model):
    ok(runs["export"])
    ok(runs["export_example"])
    assert "wrote dloss.py" in runs["export"].err
    assert "Generated by diffsrc" in (work / "dloss.py").read_text()
    rng = np.random.default_rng(0)
    args = (rng.normal(size=(3, 2)), rng.normal(size=2), rng.normal(size=(5, 3)),
            rng.normal(size=(5, 2)))
    with open(work / "args.pkl", "wb") as f:
        pickle.dump(args, f)
    child = textwrap.dedent("""
        import pickle, sys
        sys.path[:0] = [sys.argv[1], sys.argv[2]]
        try:
            import diffsrc
            sys.exit("diffsrc is importable")
        except ImportError:
            pass
        import dloss, dF
        args = pickle.load(open("args.pkl", "rb"))
        pickle.dump((dloss.loss_grad(*args), dF.dF(1.0, 2.0)), sys.stdout.buffer)
    """)
    numpy_dir = os.path.dirname(os.path.dirname(np.__file__))
    proc = subprocess.run([sys.executable, "-S", "-E", "-c", child, str(work), numpy_dir],
                          cwd=work, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    (dW, db), dF = pickle.loads(proc.stdout)
    eW, eb = ds.grad(model.loss, wrt=("W", "b"))(*args)
    np.testing.assert_array_equal(dW, eW)
    np.testing.assert_array_equal(db, eb)
    assert dF == ds.grad(model.F, wrt=(0, 1))(1.0, 2.0) == pytest.approx((0.2, -0.16))


def test_export_to_stdout(runs):
    out = ok(runs["export_stdout"]).out
    assert '__all__ = ["F_value_and_grad"]' in out
    compile(out, "<exported>", "exec")
    assert runs["export_stdout"].err == ""


# ----------------------------------------------------------------------- errors
def error(run, status=1):
    assert run.rc == status, run
    assert run.out == "", run
    assert "Traceback" not in run.err, run
    return run.err


def test_missing_file(runs):
    assert "missing.py: no such file" in error(runs["err_no_file"])


def test_missing_function(runs):
    err = error(runs["err_no_function"])
    assert "model.py has no function 'G'" in err
    assert "F" in err and "loss" in err                  # lists what is there
    assert "CONSTANT in model.py is an int, not a function" in error(runs["err_not_function"])


def test_bad_target_is_a_usage_error(runs):
    assert "expected FILE.py:FUNCTION" in error(runs["err_target"], 2)
    assert error(runs["err_no_command"], 2)


def test_syntax_error_in_user_file(runs):
    err = error(runs["err_syntax"])
    assert re.search(r"broken\.py:4:\d+: syntax error: ", err)
    assert "return np.sum(x ** 2" in err and "^" in err


def test_user_file_failing_on_import(runs):
    assert "fails_on_import.py:3: importing the file raised RuntimeError: no data here" in \
        error(runs["err_import"])
    assert "sys.exit(4)" in error(runs["err_exit"])


def _model_line(text):
    return next(i for i, line in enumerate(MODEL.splitlines(), 1) if line.strip() == text)


def test_unsupported_construct_points_at_the_line(runs):
    line = _model_line("try:")
    for name in ("err_unsupported", "err_unsupported_export"):
        err = error(runs[name])
        assert re.match(rf"model\.py:{line}: error: UnsupportedSyntaxError: .*try", err), err
        assert f"{line} | try:" in err                          # shows the offending line


def test_bad_wrt_and_example(runs):
    assert "has no argument named 'c'" in error(runs["err_wrt"], 2)
    assert "NameError" in error(runs["err_example"]) and "--example" in runs["err_example"].err


def test_forward_mode_shows_the_tangent_code(runs):
    run = runs["show_jvp"]
    assert run.rc == 0 and "def F_jvp(a, b, a_dot, b_dot):" in run.out
    compile(run.out, "<jvp>", "exec")


def test_diff_and_no_opt_conflict(runs):
    assert "--no-opt" in error(runs["err_diff_no_opt"], 2)


def test_export_of_a_captured_array_fails_clearly(runs, work):
    err = error(runs["err_export_closure"])
    line = _model_line("return np.sum(x * W0)")
    assert re.match(rf"model\.py:{line}: error: ExportError: ", err), err
    assert "W0" in err and "argument" in err
    assert not (work / "never.py").exists()


# ------------------------------------------------------------------ entry point
def test_console_script_entry_point():
    from importlib.metadata import entry_points
    scripts = [e for e in entry_points(group="console_scripts") if e.name == "diffsrc"]
    assert scripts and scripts[0].value == "diffsrc.cli:main"
    assert scripts[0].load() is cli.main


@pytest.fixture
def in_process(work, monkeypatch, capsys):
    """Run cli.main here, undoing what loading the user's file changes."""
    import io
    monkeypatch.chdir(work)
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)

    def run(*argv):
        out = io.StringIO()
        try:
            status = cli.main(list(argv), stdout=out)
        except SystemExit as exc:            # argparse: --help, usage errors
            status = exc.code
        captured = capsys.readouterr()
        return status, out.getvalue() + captured.out, captured.err
    yield run
    for name in set(sys.modules) - before:
        if name in ("model",) or name.startswith("_diffsrc_user_"):
            del sys.modules[name]


def test_main_in_process_matches_subprocess(runs, in_process):
    status, out, _ = in_process("show", "model.py:F")
    assert status == 0 and out == runs["show"].out


def test_in_process_help_nested_names_and_hvp(in_process):
    status, out, _ = in_process("--help")
    assert status == 0 and "show" in out and "export" in out
    status, out, err = in_process("show", "model.py:Model.nope")
    assert status == 1 and "Model has no function 'nope'" in err and "energy" in err
    status, out, err = in_process("show", "model.py:F", "--mode", "hvp", "--wrt", "b")
    assert status == 0 and "def F_grad_jvp(a, b, b_dot):" in out and "b_bar_dot" in out
