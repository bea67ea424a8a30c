"""Plug-and-play steering of a small generative model, in plain NumPy + diffsrc.

Reproduces "Real-Time Feedback from Tensorflow Generative Model" (seed 000):

1. A sine wave (2 Hz, amplitude 1, 100 samples/s, 10 s = 1000 samples) is cut
   into windows of 10 values that predict the 11th. The model is
   Dense 10->64 ReLU -> Dense 64->1 tanh, trained 200 epochs with Adam on the
   MSE, fixed seeds, batches of 256 (the TensorFlow time-series tutorial the
   article took its windowing code from). Gradients: ``ds.value_and_grad`` of
   a plain-NumPy loss over a parameter dict.
2. Free-running generation: start from the first 10 true values and feed the
   predictions back, 1000 samples in all.
3. Real-time steering: the same loop, but after every prediction the gradient
   of (true - predicted)^2 with respect to the last layer's weights W2 only
   (the bias untouched) is taken with ``ds.grad(step_loss, wrt="W2")`` and
   applied as W2 <- W2 - 0.05 * g / ||g||.

Printed: training loss, the cumulative squared error of both generations and
their ratio, the generated pullback source w.r.t. W2, the largest difference
between diffsrc's gradient and the article's hand-derived
g = 2 (y - z2) (-z1 sech^2(a2)), and the cost of a steering step relative to
a forward step. Plots go to examples/out/.

    python examples/sine_steering.py            # the article's settings
    python examples/sine_steering.py --smoke    # a few seconds, for the tests
"""
import argparse
import os
import time

import numpy as np

import diffsrc as ds
from diffsrc.backends import add_device_option, device_module
from diffsrc.tree import to_device
from diffsrc import nn, optim

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")

WINDOW = 10
ALPHA = 0.05


# ------------------------------------------------------------------- the model

def init_params(rng):
    """Keras defaults: Glorot-uniform weights, zero biases, float32."""
    return {"l1": nn.init_dense(rng, WINDOW, 64), "l2": nn.init_dense(rng, 64, 1)}


def model(params, x):
    """x (..., 10) -> prediction (..., 1): relu(x W1 + b1) W2 + b2, then tanh."""
    z1 = nn.relu(nn.dense(x, params["l1"]))
    return nn.tanh(nn.dense(z1, params["l2"]))


def loss(params, X, y):
    """Mean squared error of the next-value predictions of a batch of windows."""
    return nn.mse(model(params, X)[:, 0], y)


def step_loss(W2, params, window, y):
    """(y - y_hat)^2 for one window, as a function of W2 (the article's L).

    The whole forward pass is here; diffsrc's activity analysis keeps only
    what the adjoint of W2 needs (no adjoint of W1, b1, b2 or the input).
    """
    a1 = window @ params["l1"]["W"] + params["l1"]["b"]
    z1 = np.maximum(a1, 0.0)
    a2 = z1 @ W2 + params["l2"]["b"]
    z2 = np.tanh(a2)
    return (y - z2[0]) ** 2


def hand_gradient(W2, params, window, y):
    """The article's closed form: g = 2 (y - z2) (-z1 / cosh^2(a2)), shaped like W2."""
    z1 = np.maximum(window @ params["l1"]["W"] + params["l1"]["b"], 0.0)
    a2 = z1 @ W2 + params["l2"]["b"]
    z2 = np.tanh(a2)
    return 2.0 * (y - z2) * (-z1[:, None] / np.cosh(a2) ** 2)


# ---------------------------------------------------------------- data, training

def sine_wave(freq=2.0, rate=100, seconds=10):
    t = np.arange(rate * seconds) / rate
    return t, np.sin(2 * np.pi * freq * t).astype(np.float32)


def windows(x):
    """Sliding windows of WINDOW values (inputs) and the value after each (targets)."""
    X = np.lib.stride_tricks.sliding_window_view(x[:-1], WINDOW).copy()
    return X, x[WINDOW:].copy()


def train(params, X, y, epochs, rng, batch_size=256, device="cpu"):
    """Adam on minibatches, on `device` ("gpu": parameters and data as CuPy arrays);
    the trained parameters come back to the host."""
    params, X, y = to_device((params, X, y), device)
    opt = optim.adam(lr=1e-3)
    state = opt.init(params)
    loss_and_grad = ds.value_and_grad(loss)
    history = []
    for _ in range(epochs):
        total = 0.0
        for idx in optim.iterate_minibatches(rng, len(X), batch_size):
            idx = to_device(idx, device)
            value, grads = loss_and_grad(params, X[idx], y[idx])
            params, state = opt.update(params, grads, state)
            total += float(value) * len(idx)
        history.append(total / len(X))
    return to_device(params, "cpu"), history


# ------------------------------------------------------------------ generation

def generate_free(params, x_true, n):
    x_gen = np.zeros(n, dtype=np.float32)
    x_gen[:WINDOW] = x_true[:WINDOW]
    for i in range(WINDOW, n):
        x_gen[i] = model(params, x_gen[i - WINDOW:i])[0]
    return x_gen


def generate_steered(params, x_true, n, alpha=ALPHA):
    """Generation with the article's steering action on W2 after every prediction."""
    grad_w2 = ds.grad(step_loss, wrt="W2")
    params = {"l1": params["l1"], "l2": dict(params["l2"])}   # W2 changes, the rest is shared
    W2 = params["l2"]["W"]
    x_gen = np.zeros(n, dtype=np.float32)
    x_gen[:WINDOW] = x_true[:WINDOW]
    for i in range(WINDOW, n):
        window = x_gen[i - WINDOW:i]
        params["l2"]["W"] = W2
        x_gen[i] = model(params, window)[0]
        g = grad_w2(W2, params, window, x_true[i])
        W2 = W2 - alpha * g / np.linalg.norm(g)
    return x_gen, grad_w2


def check_against_article(grad_w2, params, x_true, rng, trials=20):
    """Largest |diffsrc - hand-derived| over random windows (float64 for a tight check)."""
    p64 = {k: {kk: vv.astype(np.float64) for kk, vv in v.items()} for k, v in params.items()}
    W2 = p64["l2"]["W"]
    worst = 0.0
    scale = 0.0
    for _ in range(trials):
        start = rng.integers(0, len(x_true) - WINDOW - 1)
        window = x_true[start:start + WINDOW].astype(np.float64) + 0.1 * rng.standard_normal(WINDOW)
        y = float(x_true[start + WINDOW])
        g = grad_w2(W2, p64, window, y)
        h = hand_gradient(W2, p64, window, y)
        worst = max(worst, float(np.max(np.abs(g - h))))
        scale = max(scale, float(np.max(np.abs(h))))
    return worst, scale


def full_step_loss(params, window, y):
    """The same loss as a function of every parameter (for the cost comparison)."""
    return (y - model(params, window)[0]) ** 2


def time_steps(params, window, y, repeats):
    """Best-of-5 time per call: forward pass, W2-only gradient, all-parameter gradient."""
    grad_w2 = ds.grad(step_loss, wrt="W2")
    grad_all = ds.grad(full_step_loss)
    W2 = params["l2"]["W"]
    calls = {"forward": lambda: model(params, window),
             "grad_w2": lambda: grad_w2(W2, params, window, y),
             "grad_all": lambda: grad_all(params, window, y)}
    best = {}
    for name, call in calls.items():
        call()                                           # transformation happens here
        best[name] = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(repeats):
                call()
            best[name] = min(best[name], (time.perf_counter() - t0) / repeats)
    return best


# ----------------------------------------------------------------------- plots

def plot(t, x_true, x_free, x_steer, cum_free, cum_steer, suffix, out_dir=OUT):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    n = len(x_true)
    for lo, hi in ((0, 200), (400, 600)):
        if hi > n:
            continue
        fig, ax = plt.subplots(figsize=(8, 3.5))
        ax.plot(t[lo:hi], x_true[lo:hi], "r", label="real")
        ax.plot(t[lo:hi], x_free[lo:hi], "b", label="free-running")
        ax.plot(t[lo:hi], x_steer[lo:hi], "g", label="steered")
        ax.set_xlabel("time (s)")
        ax.set_title(f"generated sine, t = {lo}..{hi - 1}")
        ax.legend(loc="upper right")
        fig.tight_layout()
        path = os.path.join(out_dir, f"sine_steering_t{lo}-{hi - 1}{suffix}.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(cum_free, "b", label="without control")
    ax.plot(cum_steer, "g", label="with control (steered)")
    ax.set_xlabel("time step")
    ax.set_ylabel("cumulative squared error")
    ax.legend()
    fig.tight_layout()
    path = os.path.join(out_dir, f"sine_steering_cumulative{suffix}.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    paths.append(path)
    return paths


# ------------------------------------------------------------------------ main

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run for the tests")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--out", default=OUT, help="folder for the plots (default examples/out)")
    add_device_option(parser, "where the network trains (generation and steering run on the "
                      "host): the CPU (NumPy arrays) or the GPU (CuPy arrays)")
    args = parser.parse_args(argv)
    device_module(parser, args)
    # Training takes well under a second, so the smoke run keeps the article's
    # settings and only shortens the timing loops.
    epochs = args.epochs or 200
    n_gen = 1000

    np.random.seed(args.seed)                          # the article seeds numpy too
    rng = np.random.default_rng(args.seed)
    t, x = sine_wave()
    X, y = windows(x)
    print(f"data: {len(x)} samples of a 2 Hz sine at 100 samples/s; "
          f"{len(X)} windows of {WINDOW} -> next value")

    params = init_params(rng)
    t0 = time.perf_counter()
    params, history = train(params, X, y, epochs, rng, args.batch_size, args.device)
    print(f"training: {epochs} epochs of Adam (batch {args.batch_size}), "
          f"final MSE {history[-1]:.3e} "
          f"({time.perf_counter() - t0:.1f} s on the {args.device})")

    x_true = x[:n_gen]
    x_free = generate_free(params, x_true, n_gen)
    x_steer, grad_w2 = generate_steered(params, x_true, n_gen)
    cum_free = np.cumsum((x_true - x_free) ** 2)
    cum_steer = np.cumsum((x_true - x_steer) ** 2)
    ratio = cum_steer[-1] / cum_free[-1]
    print(f"generated {n_gen} samples from the first {WINDOW} true values")
    print(f"cumulative squared error, free-running: {cum_free[-1]:.4f}")
    print(f"cumulative squared error, steered:      {cum_steer[-1]:.4f}")
    print(f"steered / free ratio: {ratio:.4f}")

    print("\ngenerated pullback of step_loss with respect to W2 only:")
    print(ds.source(grad_w2))

    worst, scale = check_against_article(grad_w2, params, x, np.random.default_rng(1))
    print(f"diffsrc vs hand-derived g = 2(y - z2)(-z1 sech^2(a2)): "
          f"max abs difference {worst:.3e} (largest |g| entry {scale:.3e})")

    cost = time_steps(params, X[0], float(y[0]), 200 if args.smoke else 2000)
    print(f"cost per step: forward {cost['forward'] * 1e6:.1f} us, "
          f"W2-only gradient {cost['grad_w2'] * 1e6:.1f} us "
          f"({cost['grad_w2'] / cost['forward']:.1f}x forward), "
          f"all-parameter gradient {cost['grad_all'] * 1e6:.1f} us")

    if not args.no_plots:
        for path in plot(t[:n_gen], x_true, x_free, x_steer, cum_free, cum_steer,
                         "_smoke" if args.smoke else "", args.out):
            print(f"saved {os.path.relpath(path)}")
    return ratio


if __name__ == "__main__":
    main()
