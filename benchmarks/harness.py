"""Benchmark harness for diffsrc: timing, gradient checks, memory, one process per cell.

A *cell* is one (workload, implementation) pair.  The runner (run.py) starts one
fresh Python process per cell::

    python benchmarks/harness.py cell W4 diffsrc --ref REF.npz [--scale 0.2] [--json OUT]

and the cell prints exactly one JSON line on stdout.  Inside the cell, in order:

1. import the implementation's framework             -> import_s
2. build data and the implementation                 -> build_s   (diffsrc: ds.value_and_grad(...))
3. the first and second call                         -> first_call_s, second_call_s, and
                                                        transform_s = build_s + first - second
   (a gradient call for hand/diffsrc/autograd, a step for torch/jax): for diffsrc the
   source transformation, for jax tracing and XLA compilation
4. value and gradients at the initial parameters, compared with the hand-written
   reference (``max|g - g_ref| / max|g_ref|`` per array, value included); above
   TOL the cell is reported as ``grad_mismatch`` and not timed
5. timing (``bench``): warm-up, calibrated inner loop, samples over a time budget
6. memory: tracemalloc peak of one gradient call (NumPy-based implementations only),
   and the peak RSS of the whole cell process

Any exception is caught and reported as ``status: error`` with the phase it happened
in, so one failing cell never stops a run.  A peer library that is not installed gives
``status: skipped``.

Other entry points (for development)::

    python benchmarks/harness.py list
    python benchmarks/harness.py compare W5 [--impls hand,torch,jax,autograd]
    python benchmarks/harness.py ab W4 [--impls hand,diffsrc] [--budget 4]
"""
import argparse
import gc
import importlib
import inspect
import json
import math
import os
import resource
import statistics
import sys
import time
import traceback
import tracemalloc
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (HERE, ROOT):          # `workloads` package, and the working tree's `diffsrc`
    if _p not in sys.path:
        sys.path.insert(0, _p)

TOL = 1e-4
# diffsrc-noopt: the code diffsrc generates without its optimisation passes
IMPLS = ('hand', 'diffsrc', 'torch', 'jax', 'autograd', 'diffsrc-noopt')
PEERS = ('torch', 'jax', 'autograd')
NUMPY_BASED = ('hand', 'diffsrc', 'autograd', 'diffsrc-noopt')   # tracemalloc sees their arrays
WORKLOAD_MODULES = ('w1', 'w2', 'w3', 'w4', 'w5', 'w6', 'w7', 'w8')


class Skip(Exception):
    """The implementation cannot run here (library not installed): not an error."""


# ---------------------------------------------------------------------------
# Workload description
# ---------------------------------------------------------------------------

class Workload:
    """Everything the harness needs to know about one benchmark row.

    id, name      'W4', 'mlp'; title: one line with the shapes; unit: 'us' or 'ms'
    module        the workload module (its functions are what diffsrc differentiates)
    loss, wrt     the plain-NumPy function and the ``wrt=`` given to ds.value_and_grad
    hand          hand-written value-and-grad, same call signature and result structure
                  as ``ds.value_and_grad(loss, wrt=wrt)``
    args(params, data)  -> positional arguments of ``loss``
    names(grads)  -> {param name: gradient array}  (normalises the result structure)
    update(state, gdict) -> None: the optimizer, in place (None: the unit is one call)
    floats(out)   for a one-call unit: (value, grads) -> tuple of Python floats
    init_state(data)     -> {'params': copies, ...optimizer state}
    peers         {'torch': factory, 'jax': factory, ...}: factory(data) -> Impl
    impls         overrides for 'hand' / 'diffsrc' / 'autograd': factory(wl, data) -> Impl
    expected      analytic (value, {name: grad}) where known (W1)
    """

    def __init__(self, id, name, title, unit, timed, module, loss, wrt, hand, args, names,
                 update=None, floats=None, init_state=None, peers=None, impls=None, expected=None,
                 budget_s=0.8, min_samples=7, warmup=2, target_sample_s=0.002, seed=0):
        self.id, self.name, self.title, self.unit, self.timed = id, name, title, unit, timed
        self.module, self.loss, self.wrt, self.hand = module, loss, wrt, hand
        self.args, self.names, self.update, self.floats = args, names, update, floats
        self.init_state = init_state or default_state
        self.peers = peers or {}
        self.impls = impls or {}
        self.expected = expected
        self.budget_s, self.min_samples, self.warmup = budget_s, min_samples, warmup
        self.target_sample_s, self.seed = target_sample_s, seed

    def make_data(self, **kw):
        return aligned(self.module.make_data(self.seed, **kw))


ALIGNMENT = 64


def aligned(data):
    """`data` with every array copied to a 64-byte aligned address (PyTorch's CPU allocator's
    alignment), so that no implementation is timed on luckier addresses than another.
    Nested dicts, lists and tuples are copied with their arrays; other values are kept.

    malloc aligns to 16 bytes; a weight matrix at an address that is not a multiple of 64
    makes OpenBLAS's float32 products 2-3% slower (W4: 1.11 vs 1.14 ms for X @ W1), and
    each implementation builds its own copy of the data, so without this the ratio of
    two implementations moved by a few percent from one process to the next."""
    if isinstance(data, dict):
        return {k: aligned(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(aligned(v) for v in data)
    if type(data) is not np.ndarray or data.size == 0:
        return data
    raw = np.empty(data.nbytes + ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    copy = raw[start:start + data.nbytes].view(data.dtype).reshape(data.shape)
    copy[...] = data
    return copy


def all_workloads():
    out = []
    for name in WORKLOAD_MODULES:
        mod = importlib.import_module('workloads.' + name)
        out.extend(mod.WORKLOADS)
    return out


def get_workload(wid):
    for name in WORKLOAD_MODULES:
        mod = importlib.import_module('workloads.' + name)
        for wl in mod.WORKLOADS:
            if wl.id.lower() == wid.lower():
                return wl
    raise KeyError('no workload %r' % wid)


class Impl:
    """One runnable implementation of a workload.

    step()       the timed unit (a training step, a call, or the W3 loop)
    reference()  (value, {name: array}) at the *initial* parameters, no side effects
    grad_call()  one gradient evaluation at the current parameters (first-call and
                 memory probe)
    sync(out)    wait until `out` is computed (JAX); None when synchronous
    """

    def __init__(self, step, reference, grad_call=None, sync=None):
        self.step, self.reference, self.grad_call, self.sync = step, reference, grad_call, sync


# ---------------------------------------------------------------------------
# Shared optimizers (in place, no temporaries: the same code for every NumPy column)
# ---------------------------------------------------------------------------

def default_state(data):
    params = aligned(data['params'])                  # copies
    return {'params': params, 'buf': aligned({k: np.empty_like(v) for k, v in params.items()})}


def adam_state(data):
    st = default_state(data)
    st['t'] = 0
    st['m'] = aligned({k: np.zeros_like(v) for k, v in st['params'].items()})
    st['v'] = aligned({k: np.zeros_like(v) for k, v in st['params'].items()})
    return st


def sgd(lr):
    def update(state, grads):
        params, buf = state['params'], state['buf']
        for k, g in grads.items():
            b = buf[k]
            np.multiply(g, lr, out=b)
            params[k] -= b
    update.__doc__ = 'SGD, p -= %g * g' % lr
    return update


def adam(lr, b1=0.9, b2=0.999, eps=1e-8):
    """Adam with torch.optim.Adam's formula (bias corrections, eps outside the sqrt)."""
    def update(state, grads):
        state['t'] += 1
        t = state['t']
        step_size = lr / (1.0 - b1 ** t)
        inv_c2 = 1.0 / math.sqrt(1.0 - b2 ** t)
        params, buf = state['params'], state['buf']
        for k, g in grads.items():
            m, v, b = state['m'][k], state['v'][k], buf[k]
            m *= b1
            np.multiply(g, 1.0 - b1, out=b)
            m += b
            v *= b2
            np.multiply(g, g, out=b)
            b *= 1.0 - b2
            v += b
            np.sqrt(v, out=b)
            b *= inv_c2
            b += eps
            np.divide(m, b, out=b)
            b *= step_size
            params[k] -= b
    return update


def jax_adam(lr, b1=0.9, b2=0.999, eps=1e-8):
    """Functional Adam for JAX pytrees (same formula); returns (init, update)."""
    import jax
    import jax.numpy as jnp

    def init(params):
        z = jax.tree_util.tree_map(jnp.zeros_like, params)
        return (jnp.zeros((), jnp.int32), z, z)

    def update(params, grads, st):
        t, m, v = st
        t = t + 1
        tf = t.astype(jnp.float32)
        step_size = lr / (1.0 - b1 ** tf)
        c2 = jnp.sqrt(1.0 - b2 ** tf)
        m = jax.tree_util.tree_map(lambda m, g: b1 * m + (1.0 - b1) * g, m, grads)
        v = jax.tree_util.tree_map(lambda v, g: b2 * v + (1.0 - b2) * g * g, v, grads)
        params = jax.tree_util.tree_map(
            lambda p, m, v: p - step_size * m / (jnp.sqrt(v) / c2 + eps), params, m, v)
        return params, (t, m, v)
    return init, update


def torch_training(data, forward, lr, optimizer="sgd"):
    """A PyTorch peer: `forward(params)` is the loss over the dict data['params'];
    the step is backward + torch.optim (SGD or Adam), the reference torch.autograd.grad."""
    import torch
    make = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[optimizer]

    def fresh():
        return {k: torch.tensor(v, requires_grad=True) for k, v in data['params'].items()}

    params = fresh()
    opt = make(list(params.values()), lr=lr)

    def step():
        opt.zero_grad(set_to_none=True)
        out = forward(params)
        out.backward()
        opt.step()
        return out

    def reference():
        q = fresh()
        out = forward(q)
        grads = torch.autograd.grad(out, list(q.values()))
        return out.item(), {k: g.numpy() for k, g in zip(q, grads)}
    return Impl(step, reference)


def jax_training(data, forward, inputs, lr, optimizer="sgd"):
    """A JAX peer: `forward(params, *inputs)` is the loss; the whole step
    (value_and_grad + SGD or Adam) is one jit, the reference a jitted value_and_grad."""
    import jax
    import jax.numpy as jnp
    if optimizer == "adam":
        init, update = jax_adam(lr)
    else:
        def init(params):
            return ()

        def update(params, grads, st):
            return jax.tree_util.tree_map(lambda a, b: a - lr * b, params, grads), st

    @jax.jit
    def train(params, st, *args):
        out, grads = jax.value_and_grad(forward)(params, *args)
        params, st = update(params, grads, st)
        return params, st, out

    vg = jax.jit(jax.value_and_grad(forward))

    def fresh():
        return {k: jnp.asarray(v) for k, v in data['params'].items()}

    state = {'p': fresh()}
    state['st'] = init(state['p'])

    def step():
        state['p'], state['st'], out = train(state['p'], state['st'], *inputs)
        return out

    def reference():
        out, grads = vg(fresh(), *inputs)
        return float(out), {k: np.asarray(v) for k, v in grads.items()}
    return Impl(step, reference, sync=jax_sync)


# ---------------------------------------------------------------------------
# Building implementations
# ---------------------------------------------------------------------------

def wrt_positions(fn, wrt):
    """Map diffsrc's wrt (int, name, or tuple of them) onto argument positions."""
    params = list(inspect.signature(fn).parameters)

    def one(w):
        return w if isinstance(w, int) else params.index(w)
    return tuple(one(w) for w in wrt) if isinstance(wrt, (tuple, list)) else one(wrt)


def rebind(module, **overrides):
    """Copies of the module's own functions whose globals have `overrides` bound.

    Used to run the *same* plain-NumPy source under a tracing AD (np -> autograd.numpy):
    every function defined in the module is re-created over one new globals dict, so
    helper calls (relu, conv3x3, score, ...) resolve to the re-bound helpers too.
    """
    g = dict(vars(module))
    g.update(overrides)
    for name, obj in list(g.items()):
        if isinstance(obj, types.FunctionType) and obj.__module__ == module.__name__:
            new = types.FunctionType(obj.__code__, g, obj.__name__, obj.__defaults__,
                                     obj.__closure__)
            new.__kwdefaults__ = obj.__kwdefaults__
            g[name] = new
    return g


def vg_impl(wl, data, vg):
    """Impl around a value-and-grad callable with the diffsrc calling convention."""
    args0 = wl.args(data['params'], data)

    def reference():
        value, grads = vg(*args0)
        return float(value), {k: np.array(g, dtype=np.float64) for k, g in wl.names(grads).items()}

    if wl.update is None:           # the timed unit is one call (W1): floats in, floats out
        floats = wl.floats
        if len(args0) == 1:         # no *args splat in the timed call
            a0 = args0[0]

            def step():
                return floats(vg(a0))
        else:
            def step():
                return floats(vg(*args0))
        return Impl(step, reference, lambda: vg(*args0))

    state = wl.init_state(data)
    params, update, names, argf = state['params'], wl.update, wl.names, wl.args

    def step():
        value, grads = vg(*argf(params, data))
        update(state, names(grads))
        return value

    return Impl(step, reference, lambda: vg(*argf(params, data)))


def diffsrc_vg(wl):
    import diffsrc as ds
    # workloads whose loss itself calls ds.grad (W8) resolve `ds` in their module globals
    if hasattr(wl.module, 'ds'):
        wl.module.ds = ds
    return ds.value_and_grad(wl.loss, wrt=wl.wrt)


def unoptimised(df, args):
    """`df` (a ds.grad or ds.value_and_grad) made to answer its calls with the code diffsrc
    generates without the optimisation passes, through the same API dispatch as usual (so
    the two columns differ only in the generated code).  Raises if a call does not run it."""
    compiled = df.compiled_for(args, optimize=False)
    plain = type(df).compiled_for
    df.compiled_for = lambda a, optimize=True, specialize=False: plain(df, a, optimize=False)
    df(*args)
    if df.last is not compiled:
        raise RuntimeError('diffsrc-noopt: the call did not run the unoptimised code')
    return df


class AutogradDS:
    """The part of diffsrc's API that a loss may call inside itself, over autograd."""

    def __init__(self):
        import autograd
        self._ag = autograd

    def grad(self, f, wrt=0):
        return self._ag.grad(f, wrt_positions(f, wrt))


def autograd_fn(wl, fn):
    """`fn` from the workload module, re-bound to autograd.numpy (same source)."""
    import autograd.numpy as anp
    g = rebind(wl.module, np=anp, ds=AutogradDS())
    return g[fn.__name__]


def autograd_vg(wl):
    import autograd
    f = autograd_fn(wl, wl.loss)
    return autograd.value_and_grad(f, wrt_positions(wl.loss, wl.wrt))


def build_impl(wl, impl, data):
    if impl in wl.impls:
        return wl.impls[impl](wl, data)
    if impl == 'hand':
        return vg_impl(wl, data, wl.hand)
    if impl == 'diffsrc':
        return vg_impl(wl, data, diffsrc_vg(wl))
    if impl == 'diffsrc-noopt':
        return vg_impl(wl, data, unoptimised(diffsrc_vg(wl), wl.args(data['params'], data)))
    if impl == 'autograd' and 'autograd' not in wl.peers:
        return vg_impl(wl, data, autograd_vg(wl))
    if impl in wl.peers:
        return wl.peers[impl](data)
    raise Skip('%s has no %s implementation' % (wl.id, impl))


def preimport(impl, wl):
    """Import the framework first, so that build_s does not contain import time."""
    try:
        if impl == 'torch':
            import torch
            torch.set_num_threads(int(os.environ.get('BENCH_THREADS', '2')))
            if wl.update is not None:
                # The first optimizer built imports torch._dynamo lazily (about 1 s): do
                # it here so that build_s measures the workload, not the framework.
                torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        elif impl == 'jax':
            import jax
            if wl.unit == 'us':          # W1 is float64
                jax.config.update('jax_enable_x64', True)
        elif impl == 'autograd':
            import autograd  # noqa: F401
    except ImportError as e:
        raise Skip('%s is not installed (%s); install the dev extra: '
                   'pip install torch==2.13.0 jax jaxlib autograd' % (impl, e))
    if impl.startswith('diffsrc'):
        import diffsrc  # noqa: F401  (a failure here is an error, not a skip)


def jax_sync(out):
    import jax
    jax.block_until_ready(out)


# ---------------------------------------------------------------------------
# Gradient comparison
# ---------------------------------------------------------------------------

def rel_err(a, ref):
    """max|a - ref| / max|ref| for one array (absolute error when ref is all zero)."""
    a = np.asarray(a, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if a.shape != ref.shape:
        if a.size != ref.size:
            return math.inf
        a = a.reshape(ref.shape)
    if ref.size == 0:
        return 0.0
    diff = float(np.max(np.abs(a - ref)))
    scale = float(np.max(np.abs(ref)))
    return diff / scale if scale > 0 else diff


def compare(value, grads, ref_value, ref_grads):
    """Per-array relative errors {name: err}; the loss value is the entry 'value'."""
    errs = {'value': rel_err(value, ref_value)}
    for k in set(ref_grads) | set(grads):
        errs[k] = rel_err(grads[k], ref_grads[k]) if (k in grads and k in ref_grads) else math.inf
    return errs


def save_reference(path, value, grads):
    np.savez(path, value=np.float64(value), **{'g_' + k: np.asarray(g) for k, g in grads.items()})


def load_reference(path):
    z = np.load(path)
    return float(z['value']), {k[2:]: z[k] for k in z.files if k.startswith('g_')}


def compute_reference(wl, path=None):
    obj = build_impl(wl, 'hand', wl.make_data())
    value, grads = obj.reference()
    if path:
        save_reference(path, value, grads)
    return value, grads


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------

_TCK = os.sysconf('SC_CLK_TCK')


def _cpu_snapshot():
    """(CPU-seconds used by the whole machine, by this process, wall clock)."""
    try:
        with open('/proc/stat') as f:
            v = [int(x) for x in f.readline().split()[1:]]
        busy = (sum(v[:8]) - v[3] - v[4]) / _TCK        # everything but idle and iowait
    except (OSError, ValueError):
        busy = math.nan
    t = os.times()
    return busy, t.user + t.system, time.perf_counter()


def foreign_cores(s0, s1):
    """Cores used by other processes between two snapshots (includes steal time)."""
    wall = s1[2] - s0[2]
    if not wall > 0:
        return math.nan
    return max(0.0, ((s1[0] - s0[0]) - (s1[1] - s0[1])) / wall)


def bench(step, sync=None, budget_s=1.0, min_samples=7, warmup=2, target_sample_s=0.002,
          max_samples=200000, window_s=0.1, max_foreign=0.4):
    """Seconds per call of `step`: median, min, p90 over samples taken for `budget_s`.

    * `warmup` untimed calls, then an inner loop is calibrated (doubling) so that one
      sample lasts at least `target_sample_s`; a sample's time is divided by it.
    * Samples are taken with time.perf_counter until the budget is spent and at least
      `min_samples` are kept (at most 3x the budget).  `sync` is applied at the end of
      every sample.  GC stays on, as in real training.
    * Noisy neighbours: samples are grouped into ~`window_s` windows; a window in which
      other processes used more than `max_foreign` cores is dropped, unless that would
      leave fewer than `min_samples` samples (then everything is kept, clean=False).
    """
    sync = sync or (lambda out: None)
    pc = time.perf_counter
    out = None
    for _ in range(warmup):
        out = step()
    sync(out)
    inner = 1
    while True:
        t0 = pc()
        for _ in range(inner):
            out = step()
        sync(out)
        if pc() - t0 >= target_sample_s or inner >= 1 << 20:
            break
        inner *= 2
    kept, every, window = [], [], []
    dirty_windows = windows = 0
    snap = first = _cpu_snapshot()
    start = pc()
    while True:
        t0 = pc()
        for _ in range(inner):
            out = step()
        sync(out)
        t1 = pc()
        dt = (t1 - t0) / inner
        every.append(dt)
        window.append(dt)
        last = len(every) >= max_samples
        if t1 - snap[2] >= window_s or last:
            now = _cpu_snapshot()
            windows += 1
            if foreign_cores(snap, now) > max_foreign:
                dirty_windows += 1
            else:
                kept.extend(window)
            window, snap = [], now
        spent = t1 - start
        if last or (spent >= budget_s and len(kept) >= min_samples) or \
                (spent >= 3 * budget_s and len(every) >= min_samples):
            break
    if window:
        kept.extend(window)      # too short a window to judge; keep it
    clean = len(kept) >= min_samples
    s = sorted(kept if clean else every)
    return dict(median_s=statistics.median(s), min_s=s[0],
                p90_s=s[min(len(s) - 1, int(0.9 * len(s)))], samples=len(s),
                samples_total=len(every), inner=inner, clean=clean, windows=windows,
                dirty_windows=dirty_windows, foreign_cores=foreign_cores(first, _cpu_snapshot()),
                timed_s=pc() - start)


# ---------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------

def maxrss_mib():
    """Peak resident set size of this process, MiB.

    Read from VmHWM (the high-water mark of this process image): getrusage's ru_maxrss
    survives fork + exec, so a cell started by a large runner would report the runner's
    size.  ru_maxrss is the fallback where /proc is missing."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # KiB on Linux


def tracemalloc_peak_mib(call):
    """Peak of Python + NumPy allocations made during one call, above what was live before.

    NumPy reports its data buffers to tracemalloc, so this is the working memory of one
    gradient evaluation including its returned gradients.  torch and JAX allocate outside
    tracemalloc's view, so it is not measured for them.
    """
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        out = call()
        peak = tracemalloc.get_traced_memory()[1]
        del out
    finally:
        tracemalloc.stop()
    return (peak - base) / 2 ** 20


# ---------------------------------------------------------------------------
# One cell
# ---------------------------------------------------------------------------

def _describe(e):
    msg = str(e).strip().splitlines()
    return '%s: %s' % (type(e).__name__, msg[0][:300] if msg else '')


def run_cell(wid, impl, ref_path=None, scale=1.0, min_samples=None, warmup=None):
    wl = get_workload(wid)
    rec = dict(workload=wl.id, impl=impl, unit=wl.unit, status='ok')
    pc = time.perf_counter
    phase = 'import'
    try:
        t0 = pc()
        preimport(impl, wl)
        rec['import_s'] = pc() - t0
        phase = 'build'
        data = wl.make_data()
        t0 = pc()
        obj = build_impl(wl, impl, data)
        rec['build_s'] = pc() - t0
        phase = 'first call'
        # The first call pays any transformation / compilation; the second is steady.
        # NumPy-based columns are probed with one gradient call, the others with a step.
        first = obj.grad_call if impl in NUMPY_BASED and obj.grad_call else obj.step
        for key in ('first_call_s', 'second_call_s'):
            t0 = pc()
            out = first()
            if obj.sync:
                obj.sync(out)
            rec[key] = pc() - t0
        rec['transform_s'] = max(0.0, rec['build_s'] + rec['first_call_s'] - rec['second_call_s'])
        del out
        phase = 'gradient check'
        value, grads = obj.reference()
        rec['value'] = value
        errs = {}
        if ref_path:
            rv, rg = load_reference(ref_path)
            errs.update(compare(value, grads, rv, rg))
        if wl.expected is not None:
            ev, eg = wl.expected
            for k, e in compare(value, grads, ev, eg).items():
                errs[k] = max(errs.get(k, 0.0), e)
        if errs:
            worst = max(errs, key=lambda k: errs[k])
            rec['max_rel_err'], rec['worst_array'] = errs[worst], worst
            if not errs[worst] <= TOL:
                rec['status'] = 'grad_mismatch'
                rec['errors'] = errs
                return rec
        phase = 'timing'
        gc.collect()
        rec.update(bench(obj.step, obj.sync, budget_s=wl.budget_s * scale,
                         min_samples=min_samples or wl.min_samples,
                         warmup=wl.warmup if warmup is None else warmup,
                         target_sample_s=wl.target_sample_s))
        phase = 'memory'
        if impl in NUMPY_BASED and obj.grad_call is not None:
            rec['tracemalloc_peak_mib'] = tracemalloc_peak_mib(obj.grad_call)
    except Skip as e:
        rec['status'] = 'skipped'
        rec['note'] = str(e)
        print('note: %s %s skipped: %s' % (wl.id, impl, e), file=sys.stderr)
    except BaseException as e:  # noqa: BLE001 - a cell reports every failure
        if isinstance(e, KeyboardInterrupt):
            raise
        rec['status'] = 'error'
        rec['phase'] = phase
        rec['error'] = _describe(e)
        rec['traceback'] = traceback.format_exc(limit=-6).splitlines()[-24:]
    finally:
        rec['maxrss_mib'] = maxrss_mib()
        rec['ru_maxrss_mib'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return rec


def run_compare(wid, impls):
    """All implementations in this process; gradients against hand (and analytic)."""
    wl = get_workload(wid)
    ref_value, ref_grads = compute_reference(wl)
    print('%s: gradients vs hand (tolerance %g)' % (wl.id, TOL))
    ok = True
    for impl in impls:
        try:
            preimport(impl, wl)
            value, grads = build_impl(wl, impl, wl.make_data()).reference()
        except Skip as e:
            print('  %-13s skipped: %s' % (impl, e))
            continue
        except Exception as e:  # noqa: BLE001
            print('  %-13s error: %s' % (impl, _describe(e)))
            continue
        errs = compare(value, grads, ref_value, ref_grads)
        if wl.expected is not None:
            for k, e in compare(value, grads, *wl.expected).items():
                errs[k] = max(errs[k], e)
        worst = max(errs, key=lambda k: errs[k])
        good = errs[worst] <= TOL
        ok &= good
        print('  %-13s max rel err %.2e (%s)  %s' % (impl, errs[worst], worst, 'ok' if good else 'FAIL'))
    return ok


def run_ab(wid, impls=('hand', 'diffsrc'), budget_s=None, target_sample_s=0.005):
    """Interleaved timing of several implementations in one process.

    Samples alternate between the implementations (the order rotates every round), so a
    slow phase of the machine hits all of them alike; the median over rounds of each
    per-round ratio to the first implementation is much steadier than a ratio of
    medians taken minutes apart.  Not the per-cell method of run.py: a development aid
    for "is diffsrc within X of hand" questions on a busy machine.  Threads and malloc
    come from the caller's environment (OPENBLAS_NUM_THREADS, MALLOC_MMAP_THRESHOLD_...).
    """
    wl = get_workload(wid)
    budget_s = budget_s or 4 * wl.budget_s
    objs, inner = [], []
    for impl in impls:
        preimport(impl, wl)
        obj = build_impl(wl, impl, wl.make_data())
        for _ in range(max(1, wl.warmup)):
            out = obj.step()
        if obj.sync:
            obj.sync(out)
        n = 1
        while True:                   # calibrate as bench() does
            t0 = time.perf_counter()
            for _ in range(n):
                out = obj.step()
            if obj.sync:
                obj.sync(out)
            if time.perf_counter() - t0 >= target_sample_s or n >= 1 << 20:
                break
            n *= 2
        objs.append(obj)
        inner.append(n)
    times = [[] for _ in impls]
    start = time.perf_counter()
    r = 0
    while time.perf_counter() - start < budget_s or r < 5:
        order = list(range(len(impls)))
        order = order[r % len(order):] + order[:r % len(order)]
        for i in order:
            obj, n = objs[i], inner[i]
            t0 = time.perf_counter()
            for _ in range(n):
                out = obj.step()
            if obj.sync:
                obj.sync(out)
            times[i].append((time.perf_counter() - t0) / n)
        r += 1
    k = 1e6 if wl.unit == 'us' else 1e3
    env = ' '.join('%s=%s' % (k, os.environ[k]) for k in (
        'OPENBLAS_NUM_THREADS', 'MALLOC_MMAP_THRESHOLD_') if k in os.environ) or 'default env'
    print('%s interleaved, %d rounds (%s per unit; ratio = median of per-round ratios to %s; %s)'
          % (wl.id, r, wl.unit, impls[0], env))
    for i, impl in enumerate(impls):
        ratios = [a / b for a, b in zip(times[i], times[0])]
        print('  %-13s median %10.4g  min %10.4g   ratio %.3f' % (
            impl, statistics.median(times[i]) * k, min(times[i]) * k, statistics.median(ratios)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest='cmd', required=True)
    c = sub.add_parser('cell', help='run one cell, print one JSON line')
    c.add_argument('workload')
    c.add_argument('impl', choices=IMPLS)
    c.add_argument('--ref', help='.npz with the reference value and gradients')
    c.add_argument('--scale', type=float, default=1.0, help='multiply the time budget')
    c.add_argument('--min-samples', type=int)
    c.add_argument('--warmup', type=int)
    c.add_argument('--json', help='also write the JSON line to this file')
    k = sub.add_parser('compare', help='all implementations in one process, gradients only')
    k.add_argument('workload')
    k.add_argument('--impls', default=','.join(IMPLS))
    b = sub.add_parser('ab', help='interleaved timing of implementations in one process')
    b.add_argument('workload')
    b.add_argument('--impls', default='hand,diffsrc')
    b.add_argument('--budget', type=float, help='seconds (default 4x the row budget)')
    sub.add_parser('list')
    a = p.parse_args(argv)
    if a.cmd == 'list':
        for wl in all_workloads():
            print('%-4s %-3s %s' % (wl.id, wl.unit, wl.title))
        return 0
    if a.cmd == 'compare':
        return 0 if run_compare(a.workload, a.impls.split(',')) else 1
    if a.cmd == 'ab':
        run_ab(a.workload, a.impls.split(','), a.budget)
        return 0
    rec = run_cell(a.workload, a.impl, a.ref, a.scale, a.min_samples, a.warmup)
    line = json.dumps(rec)
    if a.json:
        with open(a.json, 'w') as f:
            f.write(line + '\n')
    print(line)
    sys.stdout.flush()
    return 0


if __name__ == '__main__':
    # Run main() from the importable module, so that the workload modules (which import
    # `harness`) and this entry point share one set of classes (Skip, Workload).
    import harness
    sys.exit(harness.main())
