"""Every example's --smoke mode, run as its own command, checked on what it prints.

With DIFFSRC_TEST_DEVICE=gpu every example runs with `--device gpu` (CuPy).

The six examples start together (each in its own process, one BLAS thread
each) the first time a test asks for one; each test then asserts on the
figures its example printed and on the plots it saved.
"""
import os
import re
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
NAMES = ("sine_steering", "source_code_derivatives", "linear_classifiers", "mlp_digits",
         "cnn_digits", "pairwise_distances")
PLOTTING = ("sine_steering", "mlp_digits", "cnn_digits")    # these take --out DIR
TIMEOUT = 300


class Run:
    def __init__(self, name, returncode, stdout, stderr, seconds):
        self.name = name
        self.returncode = returncode
        self.out = stdout
        self.err = stderr
        self.seconds = seconds

    def check(self):
        assert self.returncode == 0, (
            f"examples/{self.name}.py --smoke exited with {self.returncode}\n"
            f"--- stdout (end)\n{self.out[-3000:]}\n--- stderr (end)\n{self.err[-3000:]}")
        return self.out

    def number(self, pattern):
        """The float captured by the first group of `pattern` in the output."""
        m = re.search(pattern, self.out)
        assert m, f"{self.name}: no line matching {pattern!r} in\n{self.out[-3000:]}"
        return float(m.group(1))


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    """A fresh folder for the plots, so runs in parallel never see each other's files."""
    return str(tmp_path_factory.mktemp("examples_out"))


@pytest.fixture(scope="module")
def runs(out_dir):
    env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
    procs = {}
    start = time.perf_counter()
    for name in NAMES:
        command = [sys.executable, os.path.join(EXAMPLES, f"{name}.py"), "--smoke"]
        if name in PLOTTING:
            command += ["--out", out_dir]
        if os.environ.get("DIFFSRC_TEST_DEVICE") == "gpu":     # as in gradcheck.py
            command += ["--device", "gpu"]
        procs[name] = subprocess.Popen(
            command, cwd=ROOT,
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = {}
    for name, proc in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        results[name] = Run(name, proc.returncode, stdout, stderr, time.perf_counter() - start)
    return results


def saved(out_dir, name):
    path = os.path.join(out_dir, name)
    assert os.path.isfile(path) and os.path.getsize(path) > 1000, f"{path} was not saved"


# ------------------------------------------------------------- sine steering

def test_sine_steering(runs, out_dir):
    run = runs["sine_steering"]
    out = run.check()
    assert run.number(r"training: 200 epochs of Adam \(batch 256\), final MSE ([\d.e+-]+)") < 0.01
    free = run.number(r"cumulative squared error, free-running: ([\d.]+)")
    steered = run.number(r"cumulative squared error, steered: +([\d.]+)")
    ratio = run.number(r"steered / free ratio: ([\d.]+)")
    assert ratio == pytest.approx(steered / free, rel=1e-3, abs=1e-4)
    assert ratio < 0.2, "steering must leave a small fraction of the free-running error"
    # diffsrc's gradient is the article's hand-derived formula
    assert run.number(r"sech\^2\(a2\)\): max abs difference ([\d.e+-]+)") < 1e-12
    assert run.number(r"largest \|g\| entry ([\d.e+-]+)") > 1e-3
    # the printed pullback differentiates with respect to W2 only
    source = out.split("with respect to W2 only:")[1].split("diffsrc vs hand-derived")[0]
    assert "def step_loss_grad(W2, params, window, y):" in source
    assert "W2_bar = " in source and "return" in source
    for other in ("W_bar", "b_bar", "window_bar", "params_bar", "a1_bar", "z1_bar"):
        assert other not in source, f"the W2 pullback computes {other}"
    assert run.number(r"W2-only gradient ([\d.]+) us") > 0
    for name in ("t0-199", "t400-599", "cumulative"):
        saved(out_dir, f"sine_steering_{name}_smoke.png")


# ------------------------------------------------------ source-code derivatives

def test_source_code_derivatives(runs):
    run = runs["source_code_derivatives"]
    out = run.check()
    assert run.number(r"F\(1, 2\) = ([\d.e+-]+)") == pytest.approx(0.2, abs=1e-15)
    m = re.search(r"gradient \(dF/da, dF/db\) = \(([\d.e+-]+), ([\d.e+-]+)\)", out)
    assert m and float(m.group(1)) == pytest.approx(0.2, abs=1e-15)
    assert float(m.group(2)) == pytest.approx(-0.16, abs=1e-15)
    assert "function F(" in out and "** %" in out           # the SSA IR
    assert "def F_grad(a, b):" in out and "b_bar" in out    # the pullback source
    assert "the same from F's source text: (0.2, -0.16)" in out
    assert run.number(r"dG/dx at x = 5: ([\d.e+-]+)") == 32.0
    m = re.search(r"\(K1, K2\) after 1000 steps of lr 1e-3: \(([\d.e+-]+), ([\d.e+-]+)\)", out)
    assert m, out
    k1, k2 = float(m.group(1)), float(m.group(2))
    assert k1 == pytest.approx(0.33427804653861276, abs=1e-9)   # the post's Zygote run
    assert k2 == pytest.approx(0.4996408206795386, abs=1e-9)
    assert "def H_grad(a, b):" in out
    # MODELS 3: (a + a*b)/(1 + b) must simplify to `a` in the generated code
    h_source = out.split("def H_grad(a, b):")[1].split("\n\n")[0]
    assert re.search(r"return a, \(1\.0, ", h_source), h_source
    assert "/" not in h_source.split('"""')[-1], h_source
    m = re.search(r"gradient at \(1.5, 2\): \(([\d.e+-]+), ([\d.e+-]+)\)", out)
    assert float(m.group(1)) == pytest.approx(1.0, abs=1e-12)
    assert float(m.group(2)) == pytest.approx(0.0, abs=1e-12)
    first = run.number(r"Point fit: first call ([\d.]+) ms")
    later = run.number(r"median later call ([\d.]+) us")
    assert first * 1e3 > 10 * later, "the first call (transformation) is the expensive one"


# --------------------------------------------------------- linear classifiers

def test_linear_classifiers(runs):
    run = runs["linear_classifiers"]
    out = run.check()
    assert run.number(r"multiclass hinge loss: ([\d.]+)") == pytest.approx(2.9, abs=1e-4)
    assert run.number(r"\(diffsrc.nn: ([\d.]+)\)") == pytest.approx(2.9, abs=1e-4)
    assert "softmax:     [0.13 0.87 0.  ]" in out
    assert run.number(r"exp\(scores\): \[ *([\d.]+)") == pytest.approx(24.53, abs=0.01)
    ce = run.number(r"cross-entropy: ([\d.]+) = -log\(0.13")
    assert ce == pytest.approx(2.0404, abs=1e-4)
    assert run.number(r"largest gradient difference from the closed forms: ([\d.e+-]+)") < 1e-12
    assert out.count("max diff") == 4 + 2 * 3
    svm = run.number(r"test accuracy SVM ([\d.]+)")
    soft = run.number(r"softmax ([\d.]+)\n")
    assert svm > 0.85 and soft > 0.8


# ------------------------------------------------------------------------ MLP

MLP_RUNS = ("SGD", "momentum", "Nesterov", "Adagrad", "RMSProp", "Adam", "Adam+dropout",
            "Adam+batchnorm", "Adam+elastic")


def test_mlp_digits(runs, out_dir):
    run = runs["mlp_digits"]
    run.check()
    accs = {name: run.number(rf"{re.escape(name)}: test accuracy ([\d.]+)") for name in MLP_RUNS}
    assert all(acc > 0.9 for acc in accs.values()), accs
    assert max(accs.values()) >= 0.97, accs
    assert run.number(r"best: \S+ with test accuracy ([\d.]+)") == max(accs.values())
    saved(out_dir, "mlp_digits_loss_smoke.png")


# ------------------------------------------------------------------------ CNN

def test_cnn_digits(runs, out_dir):
    run = runs["cnn_digits"]
    out = run.check()
    acc = run.number(r"test accuracy: ([\d.]+)")
    assert acc >= 0.98
    assert run.number(r"max \|logit difference\| ([\d.e+-]+)") < 1e-10
    assert run.number(r"max \|gradient difference\| ([\d.e+-]+)") < 1e-10
    assert out.count("* (A_bar > 0)") + out.count("* (h_bar > 0)") == 3   # guided ReLU rule
    line = re.search(r"FGSM test accuracy vs epsilon: (.*)", out).group(1)
    fgsm = dict((float(e), float(a)) for e, a in re.findall(r"eps=([\d.]+): ([\d.]+)", line))
    assert len(fgsm) >= 4
    assert fgsm[0.0] == acc
    eps = sorted(fgsm)
    assert all(fgsm[a] >= fgsm[b] for a, b in zip(eps, eps[1:])), fgsm
    assert fgsm[0.1] < acc - 0.1 and fgsm[0.3] < 0.2
    assert run.number(r"FGSM accuracy drop at eps=0.1: ([\d.]+)") == pytest.approx(
        acc - fgsm[0.1], abs=1e-4)
    assert run.number(r"blank image\): (\d+)/10 images classified") >= 9
    for name in ("maps", "fgsm", "classes"):
        saved(out_dir, f"cnn_digits_{name}_smoke.png")


# ---------------------------------------------------------- pairwise distances

def test_pairwise_distances(runs):
    run = runs["pairwise_distances"]
    out = run.check()
    assert run.number(r"forward: max \|D_loop - D_broadcast\| = ([\d.e+-]+)") < 1e-12
    assert run.number(r"gradient: max \|loop - broadcast\| over dL/da and dL/db = ([\d.e+-]+)") \
        < 1e-10
    assert run.number(r"closed form 2 sum_j w_ij \(a_i - b_j\)\| = ([\d.e+-]+)") < 1e-10
    loop = run.number(r"time, gradient: loop ([\d.]+) ms")
    assert loop > 0
    assert "def loss_broadcast_grad(a, b, w):" in out


def test_smoke_runs_are_quick(runs):
    slowest = max(runs.values(), key=lambda r: r.seconds)
    assert slowest.seconds < 120, f"{slowest.name} took {slowest.seconds:.0f} s in smoke mode"
