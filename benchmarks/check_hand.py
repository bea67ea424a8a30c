#!/usr/bin/env python3
"""Check the benchmark workloads themselves, before any timing is trusted.

    python benchmarks/check_hand.py            # hand gradients vs finite differences (float64)
    python benchmarks/check_hand.py --peers    # also: hand vs torch / jax / autograd (float32)

1. Finite differences.  Each workload's tiny float64 variant (make_data(tiny=True)): the
   hand-written value must equal the plain-NumPy `loss`, and every element of every hand
   gradient must match a central difference of `loss` (step 1e-6), to 1e-6 relative
   (max|g - fd| / max|fd| per array).  W8's `loss` contains ds.grad, so it is evaluated
   with a finite-difference stand-in for ds.grad and compared with `loss_explicit`
   (per-sample Jacobians); the differences are taken of `loss_explicit`.  W3 checks the
   step gradient at several points of the loop, and that the hand loop equals the
   generic loop (plain predict + gradient).
2. Shapes.  The full-size data has exactly the shapes of the workload definitions.
3. --peers.  On the full-size float32 data, every installed peer's value and gradients
   agree with the hand ones to 1e-4, and three training steps give the same losses
   (so the optimizers are the same).
Exit status 0 when everything passes.
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from workloads import w3, w8  # noqa: E402

FD_STEP = 1e-6
FD_TOL = 1e-6

SHAPES = {
    'W2': {'X': (990, 10), 'Y': (990, 1), 'W1': (10, 64), 'b1': (64,), 'W2': (64, 1), 'b2': (1,)},
    'W3': {'x': (1000,), 'W1': (10, 64), 'b1': (64,), 'W2': (64, 1), 'b2': (1,)},
    'W4': {'X': (128, 784), 'Y': (128, 10), 'W1': (784, 512), 'b1': (512,), 'W2': (512, 512),
           'b2': (512,), 'W3': (512, 10), 'b3': (10,)},
    'W5': {'X': (64, 1, 28, 28), 'Y': (64, 10), 'K1': (16, 1, 3, 3), 'c1': (16,),
           'K2': (32, 16, 3, 3), 'c2': (32,), 'Wd': (800, 10), 'bd': (10,)},
    'W6': {'inputs': (32, 50), 'Y': (32, 50, 65), 'Emb': (65, 64), 'Wih': (64, 1024),
           'Whh': (256, 1024), 'b': (1024,), 'Wout': (256, 65), 'bout': (65,)},
    'W7': {'inp': (512, 18), 'eps': (512, 2), 'W1': (18, 128), 'b1': (128,), 'W2': (128, 128),
           'b2': (128,), 'W3': (128, 2), 'b3': (2,)},
    'W8': {'x': (512, 2), 'v': (512, 2), 'W1': (2, 128), 'b1': (128,), 'W2': (128, 128),
           'b2': (128,), 'W3': (128, 2), 'b3': (2,)},
}


def fd_grad(f, params, keys=None, step=FD_STEP):
    """Central differences of the scalar f(params) w.r.t. every element of params[k], k in keys."""
    out = {}
    for k in keys or list(params):
        p = params[k]
        if isinstance(p, float):
            out[k] = (f(dict(params, **{k: p + step})) - f(dict(params, **{k: p - step}))) / (2 * step)
            continue
        g = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            q = p.copy()
            q[idx] = p[idx] + step
            hi = f(dict(params, **{k: q}))
            q[idx] = p[idx] - step
            lo = f(dict(params, **{k: q}))
            g[idx] = (hi - lo) / (2 * step)
        out[k] = g
    return out


class FDShim:
    """Stands in for diffsrc inside W8's loss: ds.grad by central differences."""

    @staticmethod
    def grad(f, wrt=0):
        assert wrt == 0

        def df(x, *rest):
            g = np.zeros_like(x)
            for idx in np.ndindex(x.shape):
                q = x.copy()
                q[idx] = x[idx] + 1e-5
                hi = f(q, *rest)
                q[idx] = x[idx] - 1e-5
                g[idx] = (hi - f(q, *rest)) / 2e-5
            return g
        return df


def report(name, value_err, errs, tol):
    worst = max(errs, key=lambda k: errs[k])
    ok = value_err <= 1e-10 and errs[worst] <= tol
    print('  %-4s value err %.1e   worst gradient %-8s %.1e   %s' % (
        name, value_err, worst, errs[worst], 'ok' if ok else 'FAIL'))
    return ok


def check_fd(wl):
    data = wl.make_data(tiny=True)
    params = data['params']
    if wl.id == 'W3':
        return check_w3(wl, data)
    if wl.id == 'W8':
        def f(p):
            return float(w8.loss_explicit(p, data['x'], data['v']))
        saved = w8.ds
        w8.ds = FDShim
        try:
            plain = float(w8.loss(params, data['x'], data['v']))
        finally:
            w8.ds = saved
        if abs(plain - f(params)) > 1e-8 * max(1.0, abs(plain)):
            print('  W8   `loss` with finite-difference ds.grad = %r, loss_explicit = %r  FAIL'
                  % (plain, f(params)))
            return False
    else:
        def f(p):
            return float(wl.loss(*wl.args(p, data)))
    value, grads = wl.hand(*wl.args(params, data))
    grads = wl.names(grads)
    fd = fd_grad(f, params, list(grads))
    errs = {k: harness.rel_err(grads[k], fd[k]) for k in fd}
    ok = report(wl.id, abs(float(value) - f(params)), errs, FD_TOL)
    if wl.expected is not None:
        ev, eg = wl.expected
        aerr = max([abs(float(value) - ev)] + [abs(float(grads[k]) - g) for k, g in eg.items()])
        print('  %-4s analytic value and gradient: max abs err %.1e  %s' % (
            wl.id, aerr, 'ok' if aerr < 1e-12 else 'FAIL'))
        ok &= aerr < 1e-12
    return ok


def check_w3(wl, data):
    x, p = data['x'], data['params']
    W1, b1, b2 = p['W1'], p['b1'], p['b2']

    def hand_pg(W2, window, target):
        return w3.hand_predict_and_grad(W2, W1, b1, b2, window, target)

    def plain_pg(W2, window, target):
        return (w3.predict(W2, W1, b1, b2, window),
                w3.hand_grad(W2, W1, b1, b2, window, target))

    # gradient at t = 10, and at states the loop reaches at t = 50 and t = 300
    ok = True
    for T in (10, 50, 300):
        W2, gen = w3.steer(x, p['W2'], hand_pg, T)
        win, target = gen[T - 10:T].reshape(1, 10), x[T]

        def f(q):
            return float(w3.step_loss(q['W2'], W1, b1, b2, win, target))
        g = w3.hand_grad(W2, W1, b1, b2, win, target)
        err = harness.rel_err(g, fd_grad(f, {'W2': W2})['W2'])
        y, g2 = w3.hand_predict_and_grad(W2, W1, b1, b2, win, target)
        verr = abs(float(np.sum((target - y) ** 2)) - f({'W2': W2}))
        ok &= report('W3', verr, {'W2@t=%d' % T: err}, FD_TOL)
    a = w3.steer(x, p['W2'], hand_pg)
    b = w3.steer(x, p['W2'], plain_pg)
    same = np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    print('  W3   hand loop == plain predict + gradient loop (990 steps): %s' % ('ok' if same else 'FAIL'))
    return ok and same


def check_shapes(wl):
    want = SHAPES.get(wl.id)
    if not want:
        return True
    data = wl.make_data()
    have = dict(data['params'])
    have.update({k: v for k, v in data.items() if k != 'params'})
    bad = ['%s %s != %s' % (k, getattr(have.get(k), 'shape', None), s)
           for k, s in want.items() if getattr(have.get(k), 'shape', None) != s]
    dt = {np.asarray(v).dtype for v in data['params'].values()}
    if dt != {np.dtype(np.float32)}:
        bad.append('parameter dtypes %s, want float32' % sorted(map(str, dt)))
    if bad:
        print('  %-4s shapes: %s  FAIL' % (wl.id, '; '.join(bad)))
    return not bad


def check_peers(wl):
    ok = harness.run_compare(wl.id, ['torch', 'jax', 'autograd'])
    if wl.update is None or wl.id == 'W3':
        return ok
    losses = {}
    for impl in ('hand', 'torch', 'jax', 'autograd'):
        try:
            harness.preimport(impl, wl)
            obj = harness.build_impl(wl, impl, wl.make_data())
        except harness.Skip:
            continue
        losses[impl] = [float(np.asarray(_item(obj.step()))) for _ in range(3)]
    ref = losses['hand']
    for impl, ls in losses.items():
        err = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(ls, ref))
        good = err <= harness.TOL
        ok &= good
        print('  %-9s losses over 3 training steps %s  rel err %.1e  %s' % (
            impl, ' '.join('%.6f' % v for v in ls), err, 'ok' if good else 'FAIL'))
    return ok


def _item(out):
    return out.item() if hasattr(out, 'item') and not isinstance(out, np.ndarray) else out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--peers', action='store_true', help='also compare with torch, jax, autograd')
    p.add_argument('--only', help='comma-separated workload ids')
    a = p.parse_args()
    wls = harness.all_workloads()
    if a.only:
        want = {w.upper() for w in a.only.split(',')}
        wls = [w for w in wls if w.id.upper() in want or w.id.upper().rstrip('AB') in want]
    ok = True
    print('hand gradients vs central differences (float64 tiny variants, step %g, tolerance %g)'
          % (FD_STEP, FD_TOL))
    for wl in wls:
        ok &= check_fd(wl)
    print('full-size shapes and dtypes')
    good = all([check_shapes(wl) for wl in wls])
    print('  %s' % ('ok' if good else 'FAIL'))
    ok &= good
    if a.peers:
        print('peers on the full-size float32 data')
        for wl in wls:
            ok &= check_peers(wl)
    print('ALL OK' if ok else 'SOME CHECKS FAILED')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
