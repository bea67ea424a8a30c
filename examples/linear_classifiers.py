"""Linear classifiers: the course's CAT / CAR / FROG example (seed 004, MODELS 8).

One image, ground truth CAT, model scores CAT 3.2, CAR 5.1, FROG -1.7:

* multiclass SVM (hinge) loss  sum_{j != y} max(0, s_j - s_y + 1) = 2.9
* softmax probabilities        exp(s) / sum(exp(s)) = (0.13, 0.87, 0.00)
* cross-entropy                -log P(CAT) = -log(0.13)

Both losses are written twice, as the course writes them (plain NumPy on one
score vector) and with diffsrc.nn, and differentiated by diffsrc with respect
to the scores and, through a linear model s = W x + b, with respect to W, b
and x; every gradient is printed next to its closed form. A last part trains
both classifiers on the 8x8 digits to show the gradients at work.

    python examples/linear_classifiers.py [--smoke]
"""
import argparse

import numpy as np

import diffsrc as ds
from diffsrc.backends import add_device_option, device_module
from diffsrc.tree import to_device
from diffsrc import nn, optim

CLASSES = ("CAT", "CAR", "FROG")
SCORES = np.array([3.2, 5.1, -1.7])
TRUTH = 0


# ------------------------------------------------------ the course's formulas

def svm_loss(s, y):
    """L_i = sum_{j != y} max(0, s_j - s_y + 1)."""
    margins = np.maximum(0.0, s - s[y] + 1.0)
    return np.sum(margins) - 1.0          # the j = y term is max(0, 1) = 1


def softmax(s):
    e = np.exp(s - np.max(s))
    return e / np.sum(e)


def cross_entropy(s, y):
    """L_i = -log P(Y = y | x) with P the softmax of the scores."""
    return -np.log(softmax(s)[y])


# ------------------------------------------------------------- diffsrc.nn forms

def nn_hinge(s, y):
    return nn.multiclass_hinge(s[None, :], np.array([y]))


def nn_cross_entropy(s, y):
    return nn.softmax_cross_entropy(s[None, :], np.array([y]))


# -------------------------------------------------------- through a linear model

def linear_svm(W, b, x, y, lam):
    """Hinge loss of s = W x + b plus the L2 penalty lam * ||W||^2."""
    return svm_loss(W @ x + b, y) + lam * np.sum(W * W)


def linear_softmax(W, b, x, y, lam):
    return cross_entropy(W @ x + b, y) + lam * np.sum(W * W)


def closed_form_hinge_grad(s, y):
    """d/ds: +1 for every class j != y with a positive margin, -(their count) at y."""
    active = (s - s[y] + 1.0 > 0).astype(float)
    active[y] = 0.0
    g = active.copy()
    g[y] = -active.sum()
    return g


def closed_form_xent_grad(s, y):
    """d/ds of -log softmax(s)[y] = softmax(s) - one_hot(y)."""
    return softmax(s) - np.eye(len(s))[y]


def show(label, got, want):
    got = np.asarray(got, dtype=float)
    want = np.asarray(want, dtype=float)
    diff = float(np.max(np.abs(got - want)))
    print(f"  {label:<10} diffsrc {np.array2string(got.ravel()[:6], precision=5)}")
    print(f"  {'':<10} closed  {np.array2string(want.ravel()[:6], precision=5)}   "
          f"max diff {diff:.1e}")
    return diff


# ----------------------------------------------------------- digits training

def linear_scores(params, X):
    return X @ params["W"] + params["b"]


def batch_svm(params, X, y, lam):
    return nn.multiclass_hinge(linear_scores(params, X), y) + nn.l2_penalty({"W": params["W"]}, lam)


def batch_softmax(params, X, y, lam):
    return (nn.softmax_cross_entropy(linear_scores(params, X), y)
            + nn.l2_penalty({"W": params["W"]}, lam))


def train_digits(loss_fn, epochs, seed=0, device="cpu"):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float64)
    X_train, X_test, y_train, y_test = train_test_split(
        X, digits.target, test_size=0.25, random_state=0, stratify=digits.target)
    rng = np.random.default_rng(seed)
    params = {"W": 0.01 * rng.standard_normal((64, 10)), "b": np.zeros(10)}
    params, X_train, y_train, X_test, y_test = to_device(
        (params, X_train, y_train, X_test, y_test), device)    # "gpu": CuPy arrays
    opt = optim.sgd(lr=0.1)
    state = opt.init(params)
    step = ds.value_and_grad(loss_fn)
    for _ in range(epochs):
        for idx in optim.iterate_minibatches(rng, len(X_train), 32):
            idx = to_device(idx, device)
            _, grads = step(params, X_train[idx], y_train[idx], 1e-4)
            params, state = opt.update(params, grads, state)
    return optim.accuracy(linear_scores(params, X_test), y_test)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="fewer training epochs")
    add_device_option(parser, "where the digit classifiers train: the CPU (NumPy arrays) "
                      "or the GPU (CuPy arrays)")
    args = parser.parse_args(argv)
    device_module(parser, args)

    s, y = SCORES, TRUTH
    print("scores:", ", ".join(f"{c} {v}" for c, v in zip(CLASSES, s)), f"; truth {CLASSES[y]}")

    hinge = svm_loss(s, y)
    print(f"\nmulticlass hinge loss: {hinge:.4f} (diffsrc.nn: {nn_hinge(s, y):.4f})   "
          "[course: max(0, 2.9) + max(0, -3.9) = 2.9]")
    e = np.exp(s)
    p = softmax(s)
    print(f"exp(scores): {np.array2string(e, precision=2)}   [course: 24.5 164.0 0.18]")
    print(f"softmax:     {np.array2string(p, precision=2, suppress_small=True)}   "
          "[course: 0.13 0.87 0.00]")
    ce = cross_entropy(s, y)
    print(f"cross-entropy: {ce:.4f} = -log({p[y]:.4f}) "
          f"(diffsrc.nn: {nn_cross_entropy(s, y):.4f})   "
          f"[course: -log(0.13) = {-np.log(0.13):.4f}]")

    print("\ngradients with respect to the scores:")
    worst = 0.0
    worst = max(worst, show("hinge", ds.grad(svm_loss)(s, y), closed_form_hinge_grad(s, y)))
    worst = max(worst, show("hinge nn", ds.grad(nn_hinge)(s, y), closed_form_hinge_grad(s, y)))
    worst = max(worst, show("xent", ds.grad(cross_entropy)(s, y), closed_form_xent_grad(s, y)))
    worst = max(worst, show("xent nn", ds.grad(nn_cross_entropy)(s, y),
                            closed_form_xent_grad(s, y)))

    # A linear model that produces exactly these scores: s = W x + b.
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, 4)                  # a 4-pixel "image"
    W = rng.standard_normal((3, 4))
    b = s - W @ x
    lam = 0.1
    print("\nthrough s = W x + b (4-pixel image, L2 penalty 0.1 ||W||^2), "
          "closed forms dW = g x^T + 2 lam W, db = g, dx = W^T g:")
    for name, fn, gs in (("SVM", linear_svm, closed_form_hinge_grad(s, y)),
                         ("softmax", linear_softmax, closed_form_xent_grad(s, y))):
        dW, db, dx = ds.grad(fn, wrt=("W", "b", "x"))(W, b, x, y, lam)
        print(f" {name}:")
        worst = max(worst, show("dW", dW, np.outer(gs, x) + 2 * lam * W))
        worst = max(worst, show("db", db, gs))
        worst = max(worst, show("dx", dx, W.T @ gs))
    print(f"\nlargest gradient difference from the closed forms: {worst:.1e}")

    epochs = 2 if args.smoke else 30
    acc_svm = train_digits(batch_svm, epochs, device=args.device)
    acc_soft = train_digits(batch_softmax, epochs, device=args.device)
    print(f"\n8x8 digits, linear classifiers, {epochs} epochs of SGD on the {args.device}: "
          f"test accuracy SVM {acc_svm:.4f}, softmax {acc_soft:.4f}")
    return worst


if __name__ == "__main__":
    main()
