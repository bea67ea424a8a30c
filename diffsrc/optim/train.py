"""Small helpers for hand-written training loops.

There is deliberately no ``fit``: the loop, and the call that computes the
gradient, stay visible in the user's code.
"""
import sys

import numpy as np

from ..backends import is_device_array

try:
    from tqdm.auto import tqdm as _tqdm
except ImportError:  # tqdm is an optional extra
    _tqdm = None

__all__ = ["iterate_minibatches", "Progress", "accuracy", "evaluate"]


def iterate_minibatches(rng, n, batch_size, shuffle=True, drop_last=False):
    """Yield index arrays that cover range(n) in batches of batch_size.

    With shuffle the order is a fresh permutation drawn from the Generator
    rng (rng may be None without shuffle). The last batch is shorter unless
    drop_last.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    order = rng.permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]


class Progress:
    """Progress display for a training loop that also records the metrics.

    ``update(n=1, **metrics)`` advances by n steps and shows the latest
    metric values; every value is appended to ``history[name]`` (for plots).
    A tqdm bar is used when tqdm is installed (``use_tqdm=None``), otherwise
    a plain line is printed every print_every steps (default: a tenth of
    total) and at the last step.
    """

    def __init__(self, total=None, desc="", use_tqdm=None, print_every=None, file=None):
        if use_tqdm is None:
            use_tqdm = _tqdm is not None
        if use_tqdm and _tqdm is None:
            raise ImportError("tqdm is not installed; pip install tqdm or use_tqdm=False")
        self.total = total
        self.desc = desc
        self.count = 0
        self.history = {}
        self.file = file
        self._bar = _tqdm(total=total, desc=desc, file=file) if use_tqdm else None
        if print_every is None:
            print_every = max(1, total // 10) if total else 1
        self.print_every = print_every

    def update(self, n=1, **metrics):
        self.count += n
        for name, value in metrics.items():
            self.history.setdefault(name, []).append(float(value))
        shown = {name: f"{float(value):.4g}" for name, value in metrics.items()}
        if self._bar is not None:
            self._bar.set_postfix(shown, refresh=False)
            self._bar.update(n)
        elif self.count % self.print_every == 0 or self.count == self.total:
            where = f"{self.count}/{self.total}" if self.total else str(self.count)
            parts = [self.desc, where] + [f"{k}={v}" for k, v in shown.items()]
            print(" ".join(p for p in parts if p), file=self.file or sys.stdout, flush=True)

    def close(self):
        if self._bar is not None:
            self._bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def accuracy(logits, labels):
    """Fraction of rows whose argmax matches the label (ids or one-hot rows)."""
    xp = np
    if is_device_array(logits) or is_device_array(labels):    # CuPy: count on the device
        import cupy as xp
    logits = xp.asarray(logits)
    labels = xp.asarray(labels)
    if labels.ndim == logits.ndim:
        labels = xp.argmax(labels, axis=-1)
    return float(xp.mean(xp.argmax(logits, axis=-1) == labels))


def evaluate(predict_fn, params, X, y, batch_size=256):
    """Accuracy of predict_fn(params, X_batch) -> logits over all of (X, y),
    in batches so large sets fit in memory."""
    n = len(X)
    if n == 0:
        raise ValueError("evaluate needs at least one example")
    correct = 0.0
    for start in range(0, n, batch_size):
        yb = y[start:start + batch_size]
        correct += accuracy(predict_fn(params, X[start:start + batch_size]), yb) * len(yb)
    return correct / n
