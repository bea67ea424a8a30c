"""GPU benchmark: diffsrc on CuPy (fused and unfused) vs PyTorch CUDA eager and JAX jit.

    python benchmarks/gpu.py [--out benchmarks/results/gpu.md] [--budget 1.0]

One process, one run: the training steps of W4 (MLP), W5 (CNN), W6 (LSTM) and W7 (DDPM)
from benchmarks/workloads, at their full sizes, each implementation timed in turn
(warm-up, then the best of 5 timed batches of steps, each ending in a device sync).
diffsrc's value and gradients at the initial parameters are checked against the
hand-written NumPy gradient first (max |g - g_ref| / max |g_ref|). A last row times
the gradient of an elementwise-heavy function, fused against unfused.
"""
import argparse
import os
import platform
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")   # share the GPU

import cupy as cp  # noqa: E402

import diffsrc as ds  # noqa: E402
from diffsrc.backends import Backend  # noqa: E402
from diffsrc.tree import to_device  # noqa: E402
from harness import rel_err  # noqa: E402
from workloads import w4, w5, w6, w7  # noqa: E402

UNFUSED = Backend("cupy", fuse=False)


def timed(step, sync, budget):
    """ms per step: best of 5 batches, the batch size calibrated to budget / 5."""
    for _ in range(3):
        step()
    sync()
    t0 = time.perf_counter()
    step()
    sync()
    one = max(time.perf_counter() - t0, 1e-6)
    n = max(3, int(budget / 5 / one))
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        sync()
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e3


def cupy_sync():
    cp.cuda.Device().synchronize()


def diffsrc_step(wl, data, backend):
    """A training step on the GPU, and the gradient check at the initial parameters."""
    dev = to_device(data, "gpu")
    state = to_device(wl.init_state(data), "gpu")
    vg = ds.value_and_grad(wl.loss, wrt=wl.wrt, backend=backend)
    value, grads = vg(*wl.args(dev["params"], dev))
    ref_value, ref_grads = wl.hand(*wl.args(data["params"], data))
    got, ref = wl.names(grads), wl.names(ref_grads)
    err = max([abs(float(value) - ref_value) / max(abs(ref_value), 1e-30)] + [
        rel_err(cp.asnumpy(got[k]), ref[k]) for k in ref])

    def step():
        value, grads = vg(*wl.args(state["params"], dev))
        wl.update(state, wl.names(grads))
        return value
    return step, err, vg


def torch_step(wl, data):
    import torch
    torch.set_default_device("cuda")
    from_numpy = torch.from_numpy
    torch.from_numpy = lambda a: from_numpy(a).cuda()   # the workloads' peers, on CUDA
    try:
        impl = wl.peers["torch"](data)
    finally:
        torch.from_numpy = from_numpy
    return impl.step, torch.cuda.synchronize


def jax_step(wl, data):
    import jax
    assert jax.default_backend() == "gpu", jax.default_backend()
    impl = wl.peers["jax"](data)
    last = {}

    def step():
        last["out"] = impl.step()

    return step, lambda: last["out"].block_until_ready()


def elementwise_loss(x, a):
    """Long elementwise chains (GELU-like, swish, squares) over 4M values."""
    u = 0.5 * x * (1.0 + np.tanh(0.79788456 * (x + 0.044715 * x * x * x)))
    s = a * x / (1.0 + np.exp(-a * x))
    return np.mean(u * s + (x - a) ** 2 * np.sin(x) + np.maximum(u - s, 0.0))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join(HERE, "results", "gpu.md"))
    p.add_argument("--budget", type=float, default=1.0, help="seconds per timing")
    p.add_argument("--only", default="W4,W5,W6,W7")
    args = p.parse_args(argv)
    rows = []
    for module in (w4, w5, w6, w7):
        wl = module.WORKLOADS[0]
        if wl.id not in args.only.split(","):
            continue
        data = module.make_data()
        times, note = {}, []
        for name, make in (("diffsrc", lambda: diffsrc_step(wl, data, None)),
                           ("unfused", lambda: diffsrc_step(wl, data, UNFUSED)),
                           ("torch", lambda: torch_step(wl, data)),
                           ("jax", lambda: jax_step(wl, data))):
            try:
                made = make()
                if name in ("diffsrc", "unfused"):
                    step, err, vg = made
                    sync = cupy_sync
                    note.append(f"{name} grad err {err:.1e}")
                    if name == "diffsrc":
                        sizes = [len(g.ops) for g in vg.last.fusion.groups]
                        note.append(f"{len(sizes)} fused groups of {sum(sizes)} ops "
                                    f"(largest {max(sizes, default=0)})")
                else:
                    step, sync = made
                times[name] = timed(step, sync, args.budget)
            except Exception as exc:          # noqa: BLE001 - reported in the table
                note.append(f"{name}: {type(exc).__name__}: {str(exc)[:120]}")
            print(wl.id, name, times.get(name), flush=True)
        rows.append((wl.id, wl.title, times, "; ".join(note)))

    rng = np.random.default_rng(0)
    x = cp.asarray(rng.standard_normal(1 << 22))
    fused = ds.grad(elementwise_loss, wrt=(0, 1))
    unfused = ds.grad(elementwise_loss, wrt=(0, 1), backend=UNFUSED)
    gf, gu = fused(x, 1.5), unfused(x, 1.5)
    ew_err = float(cp.max(cp.abs(gf[0] - gu[0])) / cp.max(cp.abs(gu[0])))
    ew = {"diffsrc": timed(lambda: fused(x, 1.5), cupy_sync, args.budget),
          "unfused": timed(lambda: unfused(x, 1.5), cupy_sync, args.budget)}
    kernels = sum(len(f.kernels) for f in fused.last.fusion.made.values())
    print("elementwise", ew, flush=True)

    import jax
    import torch
    lines = [
        "# GPU benchmark (benchmarks/gpu.py)", "",
        f"Device: {cp.cuda.runtime.getDeviceProperties(0)['name'].decode()}; "
        f"CuPy {cp.__version__}, PyTorch {torch.__version__}, JAX {jax.__version__}, "
        f"NumPy {np.__version__}, Python {platform.python_version()}. One run; ms per "
        "training step (forward + backward + optimizer update), best of 5 batches after "
        "warm-up. Ratios are diffsrc (fused CuPy) time over the peer's: below 1 is faster.",
        "", "| workload | diffsrc fused | diffsrc unfused | torch CUDA eager | JAX jit | "
        "fused/torch | fused/JAX | unfused/fused | notes |",
        "|---|---|---|---|---|---|---|---|---|"]

    def fmt(v):
        return f"{v:.3f}" if v is not None else "-"

    def ratio(a, b):
        return f"{a / b:.2f}" if a is not None and b is not None else "-"

    for wid, title, t, note in rows:
        d, u, to, jx = (t.get(k) for k in ("diffsrc", "unfused", "torch", "jax"))
        lines.append(f"| {wid} {title} | {fmt(d)} | {fmt(u)} | {fmt(to)} | {fmt(jx)} | "
                     f"{ratio(d, to)} | {ratio(d, jx)} | {ratio(u, d)} | {note} |")
    lines += ["", "Elementwise-heavy gradient (`elementwise_loss` in benchmarks/gpu.py, "
              f"4M float64 values, {kernels} kernel signatures compiled): fused "
              f"{ew['diffsrc']:.3f} ms, unfused {ew['unfused']:.3f} ms, speedup "
              f"{ew['unfused'] / ew['diffsrc']:.2f}x (fused vs unfused max rel. difference "
              f"{ew_err:.1e}).", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
