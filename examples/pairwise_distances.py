"""Pairwise squared distances: the course's loop version against its broadcast version.

MODELS item 11 (seed 004, "from experiment to production"): the course times
two ways to compute the (p, q) matrix of squared distances between the rows of
a (p, 2) and b (q, 2), a double Python loop (438 ms in PyTorch) and one
broadcast expression (322 us). Here both are plain NumPy, both are
differentiated by diffsrc, and:

* the two gradients (w.r.t. a and b, of sum(w * D) for random weights w) agree
  with each other and with the closed form dL/da_i = 2 sum_j w_ij (a_i - b_j);
* the forward passes and the gradients of both versions are timed.

    python examples/pairwise_distances.py [--smoke]
"""
import argparse
import time

import numpy as np

import diffsrc as ds
from diffsrc.backends import add_device_option, device_module, synchronize
from diffsrc.tree import to_device


def pairwise_dist_loop(a, b):
    p = a.shape[0]
    q = b.shape[0]
    squares = np.zeros_like(a, shape=(p, q))     # on a's device (NumPy or CuPy)
    for i in range(p):
        for j in range(q):
            diff = a[i, :] - b[j, :]
            diff_squared = diff ** 2
            squares[i, j] = np.sum(diff_squared)
    return squares


def pairwise_dist(a, b):
    diff = a[:, None, :] - b[None, :, :]     # broadcasting
    diff_squared = diff ** 2
    return np.sum(diff_squared, axis=2)


def loss_loop(a, b, w):
    return np.sum(pairwise_dist_loop(a, b) * w)


def loss_broadcast(a, b, w):
    return np.sum(pairwise_dist(a, b) * w)


def best_time(fn, *args, repeats=3, number=1):
    best = float("inf")
    for _ in range(repeats):
        synchronize(args)
        t0 = time.perf_counter()
        for _ in range(number):
            fn(*args)
        synchronize(args)                    # on the GPU: until the queued kernels ran
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def fmt(seconds):
    return f"{seconds * 1e3:.1f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.0f} us"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small matrices, for the tests")
    add_device_option(parser, "where both versions and their gradients run: the CPU (NumPy) "
                      "or the GPU (CuPy arrays)")
    args = parser.parse_args(argv)
    device_module(parser, args)
    p, q = (20, 30) if args.smoke else (100, 200)     # the course: a (100, 2), b (200, 2)

    rng = np.random.default_rng(0)
    a = rng.standard_normal((p, 2))
    b = rng.standard_normal((q, 2))
    w = rng.standard_normal((p, q))
    print(f"a: ({p}, 2), b: ({q}, 2); L = sum(w * D) with D[i, j] = ||a_i - b_j||^2, "
          f"on the {args.device}")
    host = a, b, w
    a, b, w = to_device(host, args.device)       # "gpu": CuPy arrays; results come back

    d_loop, d_bcast = to_device((pairwise_dist_loop(a, b), pairwise_dist(a, b)), "cpu")
    print(f"forward: max |D_loop - D_broadcast| = {np.max(np.abs(d_loop - d_bcast)):.2e}")

    grad_loop = ds.grad(loss_loop, wrt=(0, 1))
    grad_bcast = ds.grad(loss_broadcast, wrt=(0, 1))
    ga_loop, gb_loop = to_device(grad_loop(a, b, w), "cpu")
    ga_bcast, gb_bcast = to_device(grad_bcast(a, b, w), "cpu")
    dev, (a, b, w) = (a, b, w), host
    diff = max(np.max(np.abs(ga_loop - ga_bcast)), np.max(np.abs(gb_loop - gb_bcast)))
    print(f"gradient: max |loop - broadcast| over dL/da and dL/db = {diff:.2e}")
    ga_exact = 2 * (w.sum(axis=1)[:, None] * a - w @ b)
    gb_exact = 2 * (w.sum(axis=0)[:, None] * b - w.T @ a)
    exact = max(np.max(np.abs(ga_bcast - ga_exact)), np.max(np.abs(gb_bcast - gb_exact)),
                np.max(np.abs(ga_loop - ga_exact)), np.max(np.abs(gb_loop - gb_exact)))
    print(f"gradient: max |diffsrc - closed form 2 sum_j w_ij (a_i - b_j)| = {exact:.2e}")

    t_fl = best_time(pairwise_dist_loop, *dev[:2])
    t_fb = best_time(pairwise_dist, *dev[:2], number=200)
    t_gl = best_time(grad_loop, *dev)
    t_gb = best_time(grad_bcast, *dev, number=200)
    print(f"time, forward:  loop {fmt(t_fl)}, broadcast {fmt(t_fb)} ({t_fl / t_fb:.0f}x)")
    print(f"time, gradient: loop {fmt(t_gl)}, broadcast {fmt(t_gb)} ({t_gl / t_gb:.0f}x)")
    print(f"gradient / forward: loop {t_gl / t_fl:.1f}x, broadcast {t_gb / t_fb:.1f}x")
    print("(the course, in PyTorch: loop 438 ms, broadcast 322 us, forward only)")
    print("\ngenerated gradient of the broadcast version:")
    print(ds.source(grad_bcast))
    return diff


if __name__ == "__main__":
    main()
