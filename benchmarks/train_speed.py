#!/usr/bin/env python3
"""Training speed of the MLP and CNN examples: diffsrc gradients vs hand-written NumPy.

    python benchmarks/train_speed.py [--budget S] [--rounds R] [--threads N] [--no-save]

For examples/mlp_digits.py (MLP 64-128-64-10, Adam lr 1e-3, the example's "Adam" run)
and examples/cnn_digits.py (conv3x3(16) conv3x3(32) maxpool dense(64) dense(10), Adam
with cosine decay), one training epoch on the 8x8 digits (1347 training images, batch
32, 43 steps) is timed with the gradients of

  diffsrc  ds.value_and_grad(loss) on the example's own loss (imported, not copied)
  hand     forward and backward written by hand below, for the same model

Everything else is shared: the example's data, initial parameters and seed, the same
minibatch order (optim.iterate_minibatches), the same optimizer (diffsrc.optim.adam),
the same per-step loss bookkeeping.  Every timed epoch starts again from the initial
parameters, so both columns do identical work.  Before timing, the hand gradients are
compared with diffsrc's at the initial parameters on the first batch (max|g - g_ds| /
max|g_ds| per array, value included; must be <= 1e-5), and the parameters after one
whole epoch of each are compared too.

Timing reuses benchmarks/harness.py (`bench`: one epoch per sample, samples in windows
where other processes used too many cores are dropped) and the runner's environment
(run.py's `cell_env`: tuned malloc thresholds, 1 BLAS thread by default, in a
re-executed process). The 43 gradient calls of an epoch alone (at the initial
parameters, no optimizer) are timed too, to separate the gradients from what both
columns pay (batching, Adam). The four units are timed in rounds (MLP 8, CNN 4), in
rotating order, so that a slow phase of the machine hits all of them; the table gives
the median of the rounds' medians, diffsrc / hand as the median over rounds of the
ratio within each round (measurements a second or so apart: steadier on a loaded
machine than a ratio of medians), and the ratio of the fastest epochs. Writes
benchmarks/results/train_speed.md.
"""
import argparse
import datetime
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
_MARK = 'DIFFSRC_TRAIN_SPEED_ENV'


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--budget', type=float,
                   help='seconds of timing per column and round, at least 3 epochs (default: '
                   'MLP 0.12, CNN 0.3)')
    p.add_argument('--rounds', type=int, help='rounds per model (default: MLP 8, CNN 4)')
    p.add_argument('--threads', type=int, default=1,
                   help='BLAS threads (default 1: the matrices are small, and 2-thread OpenBLAS '
                   'collapses when other processes keep the cores busy)')
    p.add_argument('--default-malloc', action='store_true',
                   help="glibc's default allocator settings instead of run.py's tuned ones")
    p.add_argument('--out', default=os.path.join(HERE, 'results', 'train_speed.md'))
    p.add_argument('--no-save', action='store_true')
    return p.parse_args(argv)


ARGS = _parse(sys.argv[1:]) if __name__ == '__main__' else None

sys.path.insert(0, HERE)
import run as bench_run  # noqa: E402  (benchmarks/run.py: cell_env, wait_quiet, versions)

if __name__ == '__main__' and os.environ.get(_MARK) != '1':
    # same process environment as a run.py cell; BLAS reads it at import, so re-exec
    env = bench_run.cell_env(not ARGS.default_malloc, ARGS.threads)
    env[_MARK] = '1'
    os.execve(sys.executable, [sys.executable, os.path.abspath(__file__)] + sys.argv[1:], env)

import numpy as np  # noqa: E402

import harness  # noqa: E402  (bench, rel_err, _cpu_snapshot)

sys.path.insert(0, os.path.join(ROOT, 'examples'))
import cnn_digits  # noqa: E402
import mlp_digits  # noqa: E402

import diffsrc as ds  # noqa: E402
from diffsrc import optim  # noqa: E402

TOL = 1e-5
BATCH = 32
SEED = 0


# ----------------------------------------------------------------------------- hand: MLP

def _relu_grad(dh, z):
    """dh * relu'(z) in place, with diffsrc's convention relu'(0) = 1/2 (np.maximum's ties
    split the adjoint), which matters where a unit is exactly 0: (1 + sign z) / 2."""
    s = np.sign(z)
    s += 1.0
    s *= 0.5
    dh *= s
    return dh


def _xent_grad(z, y):
    """Mean softmax cross-entropy of logits z (N, K) and its gradient w.r.t. z."""
    n = z.shape[0]
    rows = np.arange(n)
    e = z - z.max(axis=1, keepdims=True)
    picked = e[rows, y]
    np.exp(e, out=e)
    s = e.sum(axis=1, keepdims=True)
    value = float(np.mean(np.log(s[:, 0]) - picked))
    e /= s
    e[rows, y] -= 1.0
    e *= 1.0 / n
    return value, e


def mlp_hand_value_and_grad(params, X, y):
    """value and {layer: {'W', 'b'}} of mlp_digits.loss: cross-entropy + L2 * sum W^2."""
    lam = mlp_digits.L2
    W1, b1 = params['l1']['W'], params['l1']['b']
    W2, b2 = params['l2']['W'], params['l2']['b']
    W3, b3 = params['l3']['W'], params['l3']['b']
    z1 = X @ W1
    z1 += b1
    h1 = np.maximum(z1, 0.0)
    z2 = h1 @ W2
    z2 += b2
    h2 = np.maximum(z2, 0.0)
    z3 = h2 @ W3
    z3 += b3
    value, dz3 = _xent_grad(z3, y)
    value += lam * (np.vdot(W1, W1) + np.vdot(W2, W2) + np.vdot(W3, W3))
    gW3 = h2.T @ dz3
    gW3 += (2.0 * lam) * W3
    dz2 = _relu_grad(dz3 @ W3.T, z2)
    gW2 = h1.T @ dz2
    gW2 += (2.0 * lam) * W2
    dz1 = _relu_grad(dz2 @ W2.T, z1)
    gW1 = X.T @ dz1
    gW1 += (2.0 * lam) * W1
    return value, {'l1': {'W': gW1, 'b': dz1.sum(axis=0)},
                   'l2': {'W': gW2, 'b': dz2.sum(axis=0)},
                   'l3': {'W': gW3, 'b': dz3.sum(axis=0)}}


# ----------------------------------------------------------------------------- hand: CNN

def _conv_forward(x, W, b):
    """cnn_digits.conv2d's computation (one matmul per kernel offset), keeping the
    windows for the backward pass."""
    n, c, h, w = x.shape
    o, _, kh, kw = W.shape
    ho, wo = h - kh + 1, w - kw + 1
    out = np.zeros((n, o, ho * wo))
    windows = []
    for i in range(kh):
        for j in range(kw):
            win = np.reshape(x[:, :, i:i + ho, j:j + wo], (n, c, ho * wo))
            windows.append(win)
            out += W[:, :, i, j] @ win
    out = out.reshape(n, o, ho, wo)
    out += b.reshape(1, o, 1, 1)
    return out, windows


def _conv_backward(dz, W, windows, x_shape, need_dx):
    """Gradients of the valid cross-correlation: dW, db and (if asked) dx."""
    n, o, ho, wo = dz.shape
    _, c, kh, kw = W.shape
    d = dz.reshape(n, o, ho * wo)
    cols = np.stack(windows)                                   # (kh*kw, N, C, HW)
    gW = np.tensordot(d, cols, axes=([0, 2], [1, 3]))          # (O, kh*kw, C)
    gW = gW.reshape(o, kh, kw, c).transpose(0, 3, 1, 2)
    gb = d.sum(axis=(0, 2))
    if not need_dx:
        return gW, gb, None
    Wk = W.transpose(2, 3, 1, 0).reshape(kh * kw, 1, c, o)     # W[:, :, i, j].T per offset
    dcols = np.matmul(Wk, d)                                   # (kh*kw, N, C, HW)
    dx = np.zeros(x_shape)
    k = 0
    for i in range(kh):
        for j in range(kw):
            dx[:, :, i:i + ho, j:j + wo] += dcols[k].reshape(n, c, ho, wo)
            k += 1
    return gW, gb, dx


def cnn_hand_value_and_grad(params, x, y):
    """value and gradients of cnn_digits.loss (cross-entropy + 1e-4 * sum W^2 over
    c1, c2, d1)."""
    lam = 1e-4
    W1, b1 = params['c1']['W'], params['c1']['b']
    W2, b2 = params['c2']['W'], params['c2']['b']
    D1, e1 = params['d1']['W'], params['d1']['b']
    D2, e2 = params['d2']['W'], params['d2']['b']
    n = x.shape[0]
    z1, win1 = _conv_forward(x, W1, b1)
    h1 = np.maximum(z1, 0.0)
    z2, win2 = _conv_forward(h1, W2, b2)
    A = np.maximum(z2, 0.0)
    _, c, h, w = A.shape
    A6 = A.reshape(n, c, h // 2, 2, w // 2, 2)
    P = A6.max(axis=(3, 5), keepdims=True)
    f = P.reshape(n, -1)
    z3 = f @ D1
    z3 += e1
    h3 = np.maximum(z3, 0.0)
    z4 = h3 @ D2
    z4 += e2
    value, dz4 = _xent_grad(z4, y)
    value += lam * (np.vdot(W1, W1) + np.vdot(W2, W2) + np.vdot(D1, D1))
    gD2 = h3.T @ dz4
    dz3 = _relu_grad(dz4 @ D2.T, z3)
    gD1 = f.T @ dz3
    gD1 += (2.0 * lam) * D1
    dP = (dz3 @ D1.T).reshape(P.shape)
    # max pooling: tied maxima share the adjoint equally (diffsrc's np.max rule); the
    # count of maxima per window as four slices (a sum over axes (3, 5) is 10x slower)
    chosen = A6 == P
    count = chosen[:, :, :, 0:1, :, 0:1].astype(np.float64)
    count += chosen[:, :, :, 0:1, :, 1:2]
    count += chosen[:, :, :, 1:2, :, 0:1]
    count += chosen[:, :, :, 1:2, :, 1:2]
    dP /= count
    dz2 = _relu_grad((chosen * dP).reshape(A.shape), z2)
    gW2, gb2, dh1 = _conv_backward(dz2, W2, win2, h1.shape, True)
    gW2 += (2.0 * lam) * W2
    gW1, gb1, _ = _conv_backward(_relu_grad(dh1, z1), W1, win1, x.shape, False)
    gW1 += (2.0 * lam) * W1
    return value, {'c1': {'W': gW1, 'b': gb1}, 'c2': {'W': gW2, 'b': gb2},
                   'd1': {'W': gD1, 'b': dz3.sum(axis=0)},
                   'd2': {'W': gD2, 'b': dz4.sum(axis=0)}}


# ----------------------------------------------------------------------------- the models

def mlp_setup():
    X_train, y_train, _, _ = mlp_digits.load_data()
    rng = np.random.default_rng(SEED)
    params = mlp_digits.init_mlp(rng)                          # as mlp_digits.train
    return dict(name='MLP (examples/mlp_digits.py, Adam)', short='MLP',
                X=X_train, y=y_train, rng=rng, params=params,
                make_opt=lambda: optim.adam(lr=1e-3), loss=mlp_digits.loss,
                hand=mlp_hand_value_and_grad, rounds=8, budget=0.12)


def cnn_setup():
    X_train, _, y_train, _ = cnn_digits.load_data()
    rng = np.random.default_rng(SEED)
    params = cnn_digits.init_cnn(rng)                          # as cnn_digits.train
    steps = 30 * -(-len(X_train) // BATCH)                     # the example's 30 epochs
    return dict(name='CNN (examples/cnn_digits.py, Adam + cosine decay)', short='CNN',
                X=X_train, y=y_train, rng=rng, params=params,
                make_opt=lambda: optim.adam(lr=optim.cosine_decay(2e-3, steps)),
                loss=cnn_digits.loss, hand=cnn_hand_value_and_grad, rounds=4, budget=0.3)


def make_epoch(m, value_and_grad):
    """One epoch as in the examples' train(): the same batches every call, from the
    same initial parameters (the optimizer never modifies its inputs)."""
    X, y, params0, batches = m['X'], m['y'], m['params'], m['batches']
    opt = m['make_opt']()

    def epoch():
        params = params0
        state = opt.init(params)
        total = 0.0
        for idx in batches:
            value, grads = value_and_grad(params, X[idx], y[idx])
            params, state = opt.update(params, grads, state)
            total += float(value) * len(idx)
        return total / len(X), params
    return epoch


def grad_calls(m, value_and_grad):
    """The gradient calls of one epoch alone, at the initial parameters."""
    X, y, params0, batches = m['X'], m['y'], m['params'], m['batches']

    def epoch():
        for idx in batches:
            out = value_and_grad(params0, X[idx], y[idx])
        return out
    return epoch


def flat(tree, prefix=''):
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(flat(v, prefix + k + '.'))
        else:
            out[prefix + k] = v
    return out


def check(m, ds_vg, epochs):
    """Hand vs diffsrc: gradients at the initial parameters, then a whole epoch."""
    idx = m['batches'][0]
    args = (m['params'], m['X'][idx], m['y'][idx])
    v_ds, g_ds = ds_vg(*args)
    v_h, g_h = m['hand'](*args)
    errs = {'value': harness.rel_err(v_h, v_ds)}
    gd, gh = flat(g_ds), flat(g_h)
    if set(gd) != set(gh):
        raise SystemExit('%s: gradient structure differs: %s vs %s' % (m['short'], sorted(gd),
                                                                       sorted(gh)))
    for k in gd:
        errs[k] = harness.rel_err(gh[k], gd[k])
    worst = max(errs, key=errs.get)
    ok = errs[worst] <= TOL
    print('%s: hand vs diffsrc gradients at the initial parameters, batch of %d '
          '(max|g - g_ds| / max|g_ds|): %s' % (m['short'], len(idx), ', '.join(
              '%s %.1e' % (k, e) for k, e in errs.items())))
    print('    worst %s %.2e <= %g: %s' % (worst, errs[worst], TOL, 'ok' if ok else 'FAIL'))
    (l_ds, p_ds), (l_h, p_h) = epochs['diffsrc'](), epochs['hand']()
    pd, ph = flat(p_ds), flat(p_h)
    perr = max(harness.rel_err(ph[k], pd[k]) for k in pd)
    print('    after one epoch (%d steps): mean loss %.6f (diffsrc) %.6f (hand), '
          'parameters max rel diff %.1e' % (len(m['batches']), l_ds, l_h, perr))
    if not ok:
        raise SystemExit('%s: hand-written gradients disagree with diffsrc (%s %.2e > %g)'
                         % (m['short'], worst, errs[worst], TOL))
    return errs[worst], perr


def time_model(m, args):
    t0 = time.perf_counter()
    ds_vg = ds.value_and_grad(m['loss'])
    idx = m['batches'][0]
    ds_vg(m['params'], m['X'][idx], m['y'][idx])
    first_s = time.perf_counter() - t0                          # transformation + first call
    epochs = {'diffsrc': make_epoch(m, ds_vg), 'hand': make_epoch(m, m['hand'])}
    grad_err, param_err = check(m, ds_vg, epochs)
    epochs['diffsrc grads'] = grad_calls(m, ds_vg)
    epochs['hand grads'] = grad_calls(m, m['hand'])
    res = {k: [] for k in epochs}
    rounds = args.rounds or m['rounds']
    budget = args.budget or m['budget']
    for r in range(rounds):
        order = ['diffsrc', 'hand', 'diffsrc grads', 'hand grads']
        order = order[r % 4:] + order[:r % 4]
        bench_run.wait_quiet(limit_s=0.3)
        for impl in order:
            # one epoch per sample (target_sample_s=0); the calibration epoch is the warm-up
            res[impl].append(harness.bench(epochs[impl], budget_s=budget, min_samples=3,
                                           warmup=0, target_sample_s=0.0))
    out = dict(name=m['name'], short=m['short'], steps=len(m['batches']), first_s=first_s,
               grad_err=grad_err, param_err=param_err, rounds=rounds)
    for impl, recs in res.items():
        out[impl] = dict(
            median_s=statistics.median(x['median_s'] for x in recs),
            min_s=min(x['min_s'] for x in recs),
            samples=sum(x['samples'] for x in recs),
            clean=all(x['clean'] for x in recs),
            rounds=[x['median_s'] for x in recs])
    for unit, d, h in (('epoch', 'diffsrc', 'hand'), ('grads', 'diffsrc grads', 'hand grads')):
        # ratios paired within a round (measured a second or so apart), median over rounds
        per_round = [a / b for a, b in zip(out[d]['rounds'], out[h]['rounds'])]
        out[unit] = dict(ratio=statistics.median(per_round), per_round=per_round,
                         min_ratio=out[d]['min_s'] / out[h]['min_s'])
    print('    epoch medians per round (ms): ' + ', '.join(
        '%s %s' % (k, ' '.join('%.1f' % (t * 1e3) for t in out[k]['rounds']))
        for k in epochs), flush=True)
    return out


def markdown(rows, meta):
    def ms(rec, key='median_s'):
        return '%.1f%s' % (rec[key] * 1e3, '' if rec['clean'] or key != 'median_s' else ' †')

    lines = ['# Training speed of the examples: diffsrc vs hand-written NumPy gradients', '',
             '%s · %s · %d CPUs · Python %s · NumPy %s · BLAS threads %d · malloc %s · '
             'commit %s%s' % (meta['date'], meta['cpu'], meta['ncpu'], meta['python'],
                              meta['numpy'], meta['threads'], meta['malloc'], meta['commit'],
                              ' + uncommitted changes under diffsrc/' if meta['dirty'] else ''),
             '', '`%s`' % meta['command'], '',
             '| model | timed unit | hand ms | diffsrc ms | **diffsrc / hand** | hand min | '
             'diffsrc min | min / min | epochs timed (hand, diffsrc) |',
             '|---|---|---|---|---|---|---|---|---|']
    units = (('epoch', 'diffsrc', 'hand', 'training epoch (%d steps)' % rows[0]['steps']),
             ('grads', 'diffsrc grads', 'hand grads', 'its gradient calls only'))
    for r in rows:
        for unit, d, h, label in units:
            lines.append('| %s | %s | %s | %s | **%.2f×** | %s | %s | %.2f× | %d, %d |' % (
                r['short'], label, ms(r[h]), ms(r[d]), r[unit]['ratio'], ms(r[h], 'min_s'),
                ms(r[d], 'min_s'), r[unit]['min_ratio'], r[h]['samples'], r[d]['samples']))
    lines += ['', '| model | hand vs diffsrc gradients at init, max rel err (≤ %g) | '
              'parameters after 1 epoch, max rel diff | diffsrc transformation + first call (s) |'
              % TOL, '|---|---|---|---|']
    for r in rows:
        lines.append('| %s | %.1e | %.1e | %.2f |' % (r['name'], r['grad_err'], r['param_err'],
                                                       r['first_s']))
    lines += [
        '', 'One epoch = %d steps of batch %d over the 1347 training digits with the '
        'example\'s optimizer, from the same initial parameters and minibatch order for both '
        'columns; "its gradient calls only" = the same %d value-and-gradient calls at the '
        'initial parameters, without the optimizer (the rest of an epoch, batch indexing, Adam '
        'and loss bookkeeping, is the same code in both columns). ms = median over the epochs '
        'of each round, then over the rounds (%s; the four units in rotating order within a '
        'round). **diffsrc / hand** = median over rounds of the ratio within each round, from '
        'this one run; "min / min" = ratio of the fastest epochs, the least disturbed by other '
        'processes. † = too few epochs clear of other processes\' load.' % (
            rows[0]['steps'], BATCH, rows[0]['steps'],
            ', '.join('%s %d rounds' % (r['short'], r['rounds']) for r in rows)),
        '', 'Per-round ratios diffsrc / hand (epoch | gradient calls): ' + '; '.join(
            '%s %s | %s' % (r['short'], ' '.join('%.2f' % x for x in r['epoch']['per_round']),
                            ' '.join('%.2f' % x for x in r['grads']['per_round']))
            for r in rows),
        '', 'hand = forward and backward written by hand in `benchmarks/train_speed.py` (the '
        'CNN forward computes the convolution as `cnn_digits.conv2d` does, one matmul per '
        'kernel offset); diffsrc = `ds.value_and_grad(loss)` on the example\'s own `loss`. '
        'MLP: %s; CNN: %s.' % (rows[0]['name'].split('(')[1].rstrip(')'),
                               rows[1]['name'].split('(')[1].rstrip(')')), '']
    return '\n'.join(lines)


def main(args):
    t_start = time.perf_counter()
    rows = []
    for setup in (mlp_setup, cnn_setup):
        m = setup()
        m['batches'] = list(optim.iterate_minibatches(m['rng'], len(m['X']), BATCH))
        rows.append(time_model(m, args))
    v = bench_run.versions()
    meta = dict(date=datetime.datetime.now().strftime('%Y-%m-%d %H:%M'),
                cpu=bench_run.cpu_model(), ncpu=os.cpu_count(), python=v['python'],
                numpy=np.__version__, threads=args.threads,
                malloc='glibc default' if args.default_malloc else 'tuned',
                commit=v['git_commit'] or '?', dirty=v.get('diffsrc_uncommitted_changes', False),
                command=' '.join(['python', 'benchmarks/train_speed.py'] + sys.argv[1:]))
    md = markdown(rows, meta)
    print()
    print(md)
    if not args.no_save:
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, 'w') as f:
            f.write(md)
        print('wrote %s' % os.path.relpath(args.out), file=sys.stderr)
    print('(%.1f s)' % (time.perf_counter() - t_start), file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main(ARGS))
