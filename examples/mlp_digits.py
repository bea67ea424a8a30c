"""A multilayer perceptron on the 8x8 digits, with each optimizer of the course.

MODELS item 9 (seed 004): an MLP 64 -> 128 -> 64 -> 10 with ReLU and He
initialisation, softmax cross-entropy plus an L2 penalty, trained with SGD,
momentum, Nesterov, Adagrad, RMSProp and Adam (with bias correction) from
diffsrc.optim, and Adam again with dropout, with batch normalisation and with
an elastic-net penalty. The loss is plain NumPy over a parameter dict; every
gradient comes from ``ds.value_and_grad(loss)``.

Data: scikit-learn's ``load_digits`` (1797 images, shipped with the package),
a fixed stratified split of 1347 training and 450 test images.

Printed: the test accuracy of every run (the best must reach 97%). Saved:
examples/out/mlp_digits_loss.png with the training-loss curve of each run.

    python examples/mlp_digits.py [--smoke] [--epochs N]
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
SIZES = (64, 128, 64, 10)
L2 = 1e-4
DROPOUT = 0.2


# ----------------------------------------------------------------------- data

def load_data():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    X = digits.data / 16.0
    X_train, X_test, y_train, y_test = train_test_split(
        X, digits.target, test_size=0.25, random_state=0, stratify=digits.target)
    mean = X_train.mean(axis=0)
    std = X_train.std(axis=0) + 0.1          # some border pixels are always 0
    return (X_train - mean) / std, y_train, (X_test - mean) / std, y_test


# ---------------------------------------------------------------------- model

def init_mlp(rng, batch_norm=False):
    """He-normal weights (for ReLU), zero biases; gamma/beta for each hidden layer."""
    params = {}
    for i, (n_in, n_out) in enumerate(zip(SIZES[:-1], SIZES[1:]), start=1):
        params[f"l{i}"] = nn.init_dense(rng, n_in, n_out, w_init=nn.he_normal, dtype=np.float64)
        if batch_norm and i < len(SIZES) - 1:
            params[f"bn{i}"] = nn.init_batch_norm(n_out, dtype=np.float64)[0]
    return params


def weights(params):
    """The weight matrices only: penalties leave biases and batch-norm scales alone."""
    return {"l1": params["l1"]["W"], "l2": params["l2"]["W"], "l3": params["l3"]["W"]}


def mlp(params, X):
    h = nn.relu(nn.dense(X, params["l1"]))
    h = nn.relu(nn.dense(h, params["l2"]))
    return nn.dense(h, params["l3"])


def loss(params, X, y):
    return nn.softmax_cross_entropy(mlp(params, X), y) + nn.l2_penalty(weights(params), L2)


def elastic_loss(params, X, y):
    return (nn.softmax_cross_entropy(mlp(params, X), y)
            + nn.elastic_net_penalty(weights(params), 1e-5, L2))


def dropout_loss(params, X, y, mask1, mask2):
    """Inverted dropout on both hidden layers; the keep-masks are drawn per batch."""
    h = nn.dropout(nn.relu(nn.dense(X, params["l1"])), DROPOUT, mask1)
    h = nn.dropout(nn.relu(nn.dense(h, params["l2"])), DROPOUT, mask2)
    return nn.softmax_cross_entropy(nn.dense(h, params["l3"]), y) \
        + nn.l2_penalty(weights(params), L2)


def batch_norm_train(x, params, eps=1e-5):
    """Batch normalisation with the statistics of this batch (training mode).

    The same formula as nn.batch_norm(x, params, state, True)[0]; the loss
    cannot call that yet because diffsrc does not fold its `if x.ndim == 2`
    branch (the two branches build tuples of different lengths).
    """
    mean = np.mean(x, axis=0)
    var = np.var(x, axis=0)
    return params["gamma"] * (x - mean) / np.sqrt(var + eps) + params["beta"]


def bn_loss(params, X, y):
    h = nn.relu(batch_norm_train(nn.dense(X, params["l1"]), params["bn1"]))
    h = nn.relu(batch_norm_train(nn.dense(h, params["l2"]), params["bn2"]))
    return nn.softmax_cross_entropy(nn.dense(h, params["l3"]), y) \
        + nn.l2_penalty(weights(params), L2)


def bn_update_state(params, state, X):
    """Running means/variances (not differentiated): nn.batch_norm in training mode."""
    new = {}
    h = nn.dense(X, params["l1"])
    h1, new["bn1"] = nn.batch_norm(h, params["bn1"], state["bn1"], True)
    h = nn.dense(nn.relu(h1), params["l2"])
    _, new["bn2"] = nn.batch_norm(h, params["bn2"], state["bn2"], True)
    return new


def bn_predict(params, state, X):
    """Evaluation mode: nn.batch_norm with the running statistics."""
    h, _ = nn.batch_norm(nn.dense(X, params["l1"]), params["bn1"], state["bn1"], False)
    h, _ = nn.batch_norm(nn.dense(nn.relu(h), params["l2"]), params["bn2"], state["bn2"], False)
    return nn.dense(nn.relu(h), params["l3"])


# ------------------------------------------------------------------- training

RUNS = [
    # name, optimizer, variant
    ("SGD", lambda: optim.sgd(lr=0.1), "plain"),
    ("momentum", lambda: optim.momentum(lr=0.03, beta=0.9), "plain"),
    ("Nesterov", lambda: optim.nesterov(lr=0.03, beta=0.9), "plain"),
    ("Adagrad", lambda: optim.adagrad(lr=0.05), "plain"),
    ("RMSProp", lambda: optim.rmsprop(lr=1e-3, beta=0.9), "plain"),
    ("Adam", lambda: optim.adam(lr=1e-3), "plain"),
    ("Adam+dropout", lambda: optim.adam(lr=1e-3), "dropout"),
    ("Adam+batchnorm", lambda: optim.adam(lr=1e-3), "batchnorm"),
    ("Adam+elastic", lambda: optim.adam(lr=1e-3), "elastic"),
]


def train(name, make_opt, variant, data, epochs, seed, batch_size=32, progress=False,
          device="cpu"):
    """One run; on `device` ("gpu": parameters, state and batches as CuPy arrays). The
    test accuracy is computed on the device too; the curve holds host floats."""
    X_train, y_train, X_test, y_test = to_device(data, device)
    rng = np.random.default_rng(seed)
    params = init_mlp(rng, batch_norm=variant == "batchnorm")
    bn_state = {"bn1": nn.init_batch_norm(SIZES[1], dtype=np.float64)[1],
                "bn2": nn.init_batch_norm(SIZES[2], dtype=np.float64)[1]}
    params, bn_state = to_device((params, bn_state), device)
    opt = make_opt()
    state = opt.init(params)
    objective = {"plain": loss, "dropout": dropout_loss, "batchnorm": bn_loss,
                 "elastic": elastic_loss}[variant]
    loss_and_grad = ds.value_and_grad(objective)
    curve = []
    bar = optim.Progress(total=epochs, desc=f"{name:>15}") if progress else None
    for _ in range(epochs):
        total = 0.0
        for idx in optim.iterate_minibatches(rng, len(X_train), batch_size):
            idx = to_device(idx, device)
            Xb, yb = X_train[idx], y_train[idx]
            if variant == "dropout":
                masks = to_device((nn.dropout_mask(rng, (len(idx), SIZES[1]), DROPOUT),
                                   nn.dropout_mask(rng, (len(idx), SIZES[2]), DROPOUT)), device)
                value, grads = loss_and_grad(params, Xb, yb, *masks)
            else:
                value, grads = loss_and_grad(params, Xb, yb)
            if variant == "batchnorm":
                bn_state = bn_update_state(params, bn_state, Xb)
            params, state = opt.update(params, grads, state)
            total += float(value) * len(idx)
        curve.append(total / len(X_train))
        if bar is not None:
            bar.update(loss=curve[-1])
    if bar is not None:
        bar.close()
    if variant == "batchnorm":
        logits = bn_predict(params, bn_state, X_test)
    else:
        logits = mlp(params, X_test)
    return curve, optim.accuracy(logits, y_test)


def plot(curves, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, curve in curves.items():
        ax.plot(np.arange(1, len(curve) + 1), curve, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (cross-entropy + penalty)")
    ax.set_title("MLP on 8x8 digits: one curve per optimizer")
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a few epochs, for the tests")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=OUT, help="folder for the plots (default examples/out)")
    add_device_option(parser, "where the networks train: the CPU (NumPy arrays) "
                      "or the GPU (CuPy arrays)")
    args = parser.parse_args(argv)
    device_module(parser, args)
    epochs = args.epochs or (10 if args.smoke else 60)

    data = load_data()
    print(f"8x8 digits: {len(data[0])} training, {len(data[2])} test images; "
          f"MLP {' -> '.join(map(str, SIZES))}, He init, L2 {L2}, {epochs} epochs, batch 32, "
          f"on the {args.device}")
    curves = {}
    results = {}
    for name, make_opt, variant in RUNS:
        t0 = time.perf_counter()
        curve, acc = train(name, make_opt, variant, data, epochs, args.seed,
                           progress=not args.smoke, device=args.device)
        curves[name] = curve
        results[name] = acc
        print(f"{name:>15}: test accuracy {acc:.4f}  final training loss {curve[-1]:.4f}  "
              f"({time.perf_counter() - t0:.1f} s)", flush=True)
    best = max(results, key=results.get)
    print(f"best: {best} with test accuracy {results[best]:.4f}")
    name = "mlp_digits_loss_smoke.png" if args.smoke else "mlp_digits_loss.png"
    path = os.path.join(args.out, name)
    plot(curves, path)
    print(f"saved {os.path.relpath(path)}")
    return results


if __name__ == "__main__":
    main()
