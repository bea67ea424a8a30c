"""A small CNN on the 8x8 digits, and what gradients w.r.t. the input show.

MODELS item 10 (seed 004): convolution (cross-correlation, as deep learning
uses the word) and max pooling, trained on scikit-learn's 8x8 digits to >= 98%
test accuracy; then, with every gradient taken by diffsrc:

* saliency map        |d score_c / d x|                     (ds.grad w.r.t. the image)
* guided backprop     the same with a guided ReLU, whose backward pass lets
                      only positive gradients through where the input was
                      positive: a custom rule registered with ``@ds.adjoint``
* Grad-CAM            ReLU(sum_k alpha_k A_k), alpha_k = spatial mean of
                      d score_c / d A_k, A the last convolution's feature maps
* FGSM                x + eps * sign(d loss / d x): test accuracy against eps
* class visualisation gradient ascent on the input from a blank image,
                      x <- clip(x + lr * d(score_c - lam ||x||^2)/dx, 0, 1)

The convolution is written as the course describes it: slide the kernel over
the image; for each of the kh*kw kernel offsets, the window of the image under
that offset is multiplied by that kernel tap (a matrix over channels) and
added up. Plain NumPy slicing and matmul.

    python examples/cnn_digits.py [--smoke] [--epochs N]
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


# ----------------------------------------------------------------------- data

def load_data():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    X = (digits.images / 16.0)[:, None, :, :]           # (N, 1, 8, 8), pixels in [0, 1]
    return train_test_split(X, digits.target, test_size=0.25, random_state=0,
                            stratify=digits.target)


# ---------------------------------------------------------------------- model

def conv2d(x, W, b):
    """Valid cross-correlation of x (N, C, H, W) with kernels W (O, C, kh, kw), plus b."""
    n, c, h, w = x.shape
    o, _, kh, kw = W.shape
    ho = h - kh + 1
    wo = w - kw + 1
    out = np.zeros_like(x, shape=(n, o, ho * wo))     # on x's device (NumPy or CuPy)
    for i in range(kh):
        for j in range(kw):
            window = np.reshape(x[:, :, i:i + ho, j:j + wo], (n, c, ho * wo))
            out = out + W[:, :, i, j] @ window
    return np.reshape(out, (n, o, ho, wo)) + np.reshape(b, (1, o, 1, 1))


def max_pool(x):
    """2x2 max pooling, stride 2."""
    n, c, h, w = x.shape
    return np.max(np.reshape(x, (n, c, h // 2, 2, w // 2, 2)), axis=(3, 5))


def relu(x):
    return np.maximum(x, 0.0)


def guided_relu(x):
    """ReLU forward; its registered backward rule is the guided one (below)."""
    return np.maximum(x, 0.0)


@ds.adjoint(guided_relu)
def _guided_relu_adjoint(y_bar, y, x):
    # backprop (x > 0) combined with the deconvnet rule (y_bar > 0): only
    # positive influences flow back (the course's guided-backprop table).
    return (y_bar * (x > 0) * (y_bar > 0),)


def features(params, x):
    """conv 3x3 (1->16), ReLU, conv 3x3 (16->32), ReLU: the last feature maps A (N, 32, 4, 4)."""
    h = relu(conv2d(x, params["c1"]["W"], params["c1"]["b"]))
    return relu(conv2d(h, params["c2"]["W"], params["c2"]["b"]))


def head(params, A):
    """max pool 2x2 -> (N, 32*2*2) -> dense 128->64 ReLU -> dense 64->10 (logits)."""
    h = np.reshape(max_pool(A), (A.shape[0], -1))
    h = relu(nn.dense(h, params["d1"]))
    return nn.dense(h, params["d2"])


def cnn(params, x):
    return head(params, features(params, x))


def cnn_with_nn_layers(params, x):
    """The same network built from diffsrc.nn.conv2d (strided sliding-window view +
    tensordot) and diffsrc.nn.max_pool2d, for a cross-check."""
    h = nn.relu(nn.conv2d(x, params["c1"]))
    A = nn.relu(nn.conv2d(h, params["c2"]))
    h = nn.relu(nn.dense(np.reshape(nn.max_pool2d(A), (A.shape[0], -1)), params["d1"]))
    return nn.dense(h, params["d2"])


def nn_layers_loss(params, x, y):
    return nn.softmax_cross_entropy(cnn_with_nn_layers(params, x), y)


def plain_loss(params, x, y):
    return nn.softmax_cross_entropy(cnn(params, x), y)


def loss(params, x, y):
    return nn.softmax_cross_entropy(cnn(params, x), y) + nn.l2_penalty(
        {"c1": params["c1"]["W"], "c2": params["c2"]["W"], "d1": params["d1"]["W"]}, 1e-4)


def init_cnn(rng):
    return {"c1": nn.init_conv2d(rng, 1, 16, 3, w_init=nn.he_normal, dtype=np.float64),
            "c2": nn.init_conv2d(rng, 16, 32, 3, w_init=nn.he_normal, dtype=np.float64),
            "d1": nn.init_dense(rng, 128, 64, w_init=nn.he_normal, dtype=np.float64),
            "d2": nn.init_dense(rng, 64, 10, dtype=np.float64)}


# ------------------------------------------------- functions of the input image

def class_score(x, params, c):
    """Score (logit, before the softmax) of class c for a batch holding one image."""
    return cnn(params, x)[0, c]


def guided_class_score(x, params, c):
    h = guided_relu(conv2d(x, params["c1"]["W"], params["c1"]["b"]))
    A = guided_relu(conv2d(h, params["c2"]["W"], params["c2"]["b"]))
    h = np.reshape(max_pool(A), (1, -1))
    h = guided_relu(nn.dense(h, params["d1"]))
    return nn.dense(h, params["d2"])[0, c]


def head_score(A, params, c):
    """Class score as a function of the last feature maps (for Grad-CAM)."""
    return head(params, A)[0, c]


def data_loss(x, params, y):
    """Mean cross-entropy of a batch, as a function of the images (for FGSM)."""
    return nn.softmax_cross_entropy(cnn(params, x), y)


def regularised_score(x, params, c, lam):
    return cnn(params, x)[0, c] - lam * np.sum(x * x)


# ------------------------------------------------------------------- analyses

def saliency(params, x, c):
    return np.abs(ds.grad(class_score)(x, params, c))[0, 0]


GUIDED_GRAD = ds.grad(guided_class_score)


def guided_backprop(params, x, c):
    return GUIDED_GRAD(x, params, c)[0, 0]


def grad_cam(params, x, c):
    A = features(params, x)
    dA = ds.grad(head_score)(A, params, c)                 # (1, 32, 4, 4)
    alpha = dA.mean(axis=(2, 3), keepdims=True)
    cam = np.maximum(np.sum(alpha * A, axis=1), 0.0)[0]   # (4, 4)
    # back onto the 8x8 image: each pixel gets the mean of the cells whose
    # 5x5 receptive field (two valid 3x3 convolutions) covers it
    total = np.zeros(x.shape[2:])
    count = np.zeros(x.shape[2:])
    field = x.shape[2] - cam.shape[0] + 1
    for p in range(cam.shape[0]):
        for q in range(cam.shape[1]):
            total[p:p + field, q:q + field] += cam[p, q]
            count[p:p + field, q:q + field] += 1
    return total / count


def fgsm_curve(params, X, y, epsilons):
    grad_x = ds.grad(data_loss)
    g = grad_x(X, params, y)
    out = []
    for eps in epsilons:
        X_adv = np.clip(X + eps * np.sign(g), 0.0, 1.0)
        out.append(optim.accuracy(cnn(params, X_adv), y))
    return out


def class_visualisation(params, c, steps, lr=0.05, lam=1.0):
    """Projected gradient ascent on the image: maximise score_c - lam ||x||^2,
    keeping the pixels in [0, 1] like the data."""
    grad_x = ds.grad(regularised_score)
    x = np.zeros((1, 1, 8, 8))
    for _ in range(steps):
        x = np.clip(x + lr * grad_x(x, params, c, lam), 0.0, 1.0)
    return x


# ----------------------------------------------------------------- training

def train(data, epochs, seed, progress, device="cpu"):
    """Adam on minibatches, on `device` ("gpu": parameters and data as CuPy arrays);
    the trained parameters come back to the host."""
    X_train, X_test, y_train, y_test = to_device(data, device)
    rng = np.random.default_rng(seed)
    params = to_device(init_cnn(rng), device)
    steps = epochs * -(-len(X_train) // 32)
    opt = optim.adam(lr=optim.cosine_decay(2e-3, steps))     # Adam, cosine learning-rate decay
    state = opt.init(params)
    loss_and_grad = ds.value_and_grad(loss)
    bar = optim.Progress(total=epochs, desc="CNN") if progress else None
    curve = []
    for _ in range(epochs):
        total = 0.0
        for idx in optim.iterate_minibatches(rng, len(X_train), 32):
            idx = to_device(idx, device)
            value, grads = loss_and_grad(params, X_train[idx], y_train[idx])
            params, state = opt.update(params, grads, state)
            total += float(value) * len(idx)
        curve.append(total / len(X_train))
        if bar is not None:
            bar.update(loss=curve[-1], test_acc=optim.accuracy(cnn(params, X_test), y_test))
    if bar is not None:
        bar.close()
    return to_device(params, "cpu"), curve


# ---------------------------------------------------------------------- plots

def plot_maps(images, labels, maps, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = ["image", "saliency", "guided backprop", "Grad-CAM"]
    fig, axes = plt.subplots(len(images), 4, figsize=(7, 1.8 * len(images)))
    for r, (img, lab, row) in enumerate(zip(images, labels, maps)):
        for k, panel in enumerate([img] + list(row)):
            ax = axes[r, k]
            ax.imshow(panel, cmap="gray" if k == 0 else "inferno")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(names[k], fontsize=9)
        axes[r, 0].set_ylabel(f"label {lab}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_fgsm(epsilons, accs, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(epsilons, accs, "o-")
    ax.set_xlabel("epsilon (pixels in [0, 1])")
    ax.set_ylabel("test accuracy")
    ax.set_title("FGSM adversarial examples")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_classes(images, preds, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 10, figsize=(12, 1.8))
    for c, (ax, img) in enumerate(zip(axes, images)):
        ax.imshow(img, cmap="gray", vmin=0.0, vmax=1.0)
        ax.set_title(f"{c} (pred {preds[c]})", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ------------------------------------------------------------------------ main

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a short run, for the tests")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=OUT, help="folder for the plots (default examples/out)")
    add_device_option(parser, "where the network trains and FGSM runs (maps and class images "
                      "are made on the host): the CPU (NumPy) or the GPU (CuPy)")
    args = parser.parse_args(argv)
    device_module(parser, args)
    epochs = args.epochs or 30          # about 6 s: the smoke run keeps the full training
    suffix = "_smoke" if args.smoke else ""

    data = load_data()
    X_train, X_test, y_train, y_test = data
    print(f"8x8 digits: {len(X_train)} training, {len(X_test)} test images; "
          f"conv3x3(16) ReLU conv3x3(32) ReLU maxpool2 dense(64) ReLU dense(10); "
          f"Adam with cosine decay, {epochs} epochs, on the {args.device}")
    t0 = time.perf_counter()
    params, curve = train(data, epochs, args.seed, progress=not args.smoke, device=args.device)
    acc = optim.accuracy(cnn(params, X_test), y_test)
    print(f"test accuracy: {acc:.4f}  (final training loss {curve[-1]:.4f}, "
          f"{time.perf_counter() - t0:.1f} s)")

    # the course-style convolution above against diffsrc.nn's layers: same logits,
    # same parameter gradients
    xb, yb = X_test[:64], y_test[:64]
    d_logits = np.max(np.abs(cnn(params, xb) - cnn_with_nn_layers(params, xb)))
    g_here = ds.grad(plain_loss)(params, xb, yb)
    g_nn = ds.grad(nn_layers_loss)(params, xb, yb)
    d_grad = max(float(np.max(np.abs(g_here[k][w] - g_nn[k][w])))
                 for k in g_here for w in g_here[k])
    print(f"this conv2d/max_pool vs diffsrc.nn.conv2d/max_pool2d: max |logit difference| "
          f"{d_logits:.1e}, max |gradient difference| {d_grad:.1e}")

    # -- saliency, guided backprop, Grad-CAM for the first test image of a few classes
    os.makedirs(args.out, exist_ok=True)
    picks = [int(np.flatnonzero(y_test == c)[0]) for c in (0, 3, 4, 7)]
    images, labels, maps = [], [], []
    for i in picks:
        x = X_test[i:i + 1]
        c = int(y_test[i])
        sal = saliency(params, x, c)
        gbp = guided_backprop(params, x, c)
        cam = grad_cam(params, x, c)
        images.append(x[0, 0])
        labels.append(c)
        maps.append((sal, np.maximum(gbp, 0.0), cam))
    # the custom rule is inlined into the generated derivative at each guided ReLU
    guided_lines = [line.strip() for line in ds.source(GUIDED_GRAD).splitlines()
                    if "> 0) * (" in line]
    print(f"saliency, guided backprop and Grad-CAM for test images of classes {labels}; "
          f"the guided backward rule appears {len(guided_lines)} times in the generated code:")
    for line in guided_lines:
        print(f"    {line}")
    path = os.path.join(args.out, f"cnn_digits_maps{suffix}.png")
    plot_maps(images, labels, maps, path)
    print(f"saved {os.path.relpath(path)}")

    # -- FGSM
    epsilons = [0.0, 0.05, 0.1, 0.2, 0.3] if args.smoke else [0.0, 0.02, 0.05, 0.1, 0.15, 0.2,
                                                              0.3, 0.4]
    accs = fgsm_curve(*to_device((params, X_test, y_test), args.device), epsilons)
    print("FGSM test accuracy vs epsilon: " + ", ".join(
        f"eps={e:g}: {a:.4f}" for e, a in zip(epsilons, accs)))
    print(f"FGSM accuracy drop at eps=0.1: {accs[0] - accs[epsilons.index(0.1)]:.4f}")
    path = os.path.join(args.out, f"cnn_digits_fgsm{suffix}.png")
    plot_fgsm(epsilons, accs, path)
    print(f"saved {os.path.relpath(path)}")

    # -- class visualisation by gradient ascent on the input
    steps = 100 if args.smoke else 300
    vis = [class_visualisation(params, c, steps) for c in range(10)]
    probs = [nn.softmax(cnn(params, v))[0] for v in vis]
    preds = [int(np.argmax(p)) for p in probs]
    hits = sum(int(p == c) for c, p in enumerate(preds))
    conf = np.mean([p[c] for c, p in enumerate(probs)])
    print(f"class visualisation ({steps} steps of gradient ascent from a blank image): "
          f"{hits}/10 images classified as their target class, mean confidence {conf:.3f}")
    path = os.path.join(args.out, f"cnn_digits_classes{suffix}.png")
    plot_classes([v[0, 0] for v in vis], preds, path)
    print(f"saved {os.path.relpath(path)}")
    return acc


if __name__ == "__main__":
    main()
