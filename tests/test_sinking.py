"""A value is made just before its first reader (passes/sinking.py)."""
import tracemalloc
from unittest import mock

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from diffsrc.api import transform
from diffsrc.passes import sinking
from gradcheck import module_from_source, numeric_grad
from test_passes import large_array_paths

SETTINGS = settings(max_examples=40, deadline=None)

TERMS = ["{p} @ {q}", "{p}.T @ {q}", "np.tanh({p})", "{p} * {q}", "np.maximum({p}, 0.0)",
         "np.reshape({p} @ {q}, (2, 8)).reshape(4, 4)", "{p}[:, :2] @ {q}[:2, :]",
         "np.sin({p}) + {q}"]


@st.composite
def programs(draw):
    """F(a, b, c) of (4, 4) arrays: a chain of products and elementwise terms, the loss
    reading early values late (their adjoints are made long before they are read)."""
    values, lines = ["a", "b", "c"], []
    for i in range(draw(st.integers(2, 6))):
        p, q = draw(st.sampled_from(values)), draw(st.sampled_from(values))
        lines.append(f"t{i} = " + draw(st.sampled_from(TERMS)).format(p=p, q=q))
        values.append(f"t{i}")
    late = draw(st.sampled_from(values[:-1]))
    body = "".join(f"    {line}\n" for line in lines)
    return f"def F(a, b, c):\n{body}    return np.sum(np.tanh({values[-1]}) * {late})\n"


def _module(source):
    return module_from_source(source, "sinking")


def _compiled(fn, args, wrt, sink=True):
    with large_array_paths(), mock.patch.object(
            sinking, "_sink", sinking._sink if sink else lambda *_: None):
        return transform(fn, args, wrt, "grad", specialize=True)


@SETTINGS
@given(programs(), st.integers(0, 1000), st.sampled_from([(0,), (1, 2), (0, 1, 2)]))
def test_gradients_agree_with_unsunk_and_unoptimised_code(source, seed, wrt):
    """Bit for bit the same code without the pass (the same calls in another order), close
    to unoptimised code and to finite differences; every pass's output verifies."""
    fn = _module(source).F
    rng = np.random.default_rng(seed)
    args = tuple(rng.normal(size=(4, 4)) * 0.5 for _ in range(3))
    sunk, unsunk = _compiled(fn, args, wrt), _compiled(fn, args, wrt, sink=False)
    (value, grads), (same_value, same_grads) = sunk.function(*args), unsunk.function(*args)
    assert value == same_value and all(np.array_equal(g, h) for g, h in zip(grads, same_grads))
    plain_value, plain = transform(fn, args, wrt, "grad", optimize=False).function(*args)
    np.testing.assert_allclose(value, plain_value, rtol=1e-12)
    if len(wrt) == 1:                              # one array, not a tuple of them
        grads, plain = (grads,), (plain,)
    for g, expected, numeric in zip(grads, plain, numeric_grad(fn, args, wrt)):
        np.testing.assert_allclose(g, expected, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(g, numeric, rtol=1e-5, atol=1e-6)


def conv(K, x):
    """A 3x3 convolution as an im2col product: the pullback makes the patches' adjoint
    (large, read by the col2im after the loop) and the kernel's (small) together."""
    n, h, w, c = x.shape
    cols = []
    for i in range(3):
        for j in range(3):
            cols.append(x[:, i:i + h - 2, j:j + w - 2, :])
    patches = np.reshape(np.stack(cols, axis=3), (n * (h - 2) * (w - 2), 9 * c))
    return np.sum(np.tanh(patches @ np.reshape(K, (9 * c, -1))))


def _peak(call):
    call()
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_product_is_made_just_before_it_is_read_and_the_peak_does_not_grow():
    rng = np.random.default_rng(0)
    args = (rng.normal(size=(36, 8)), rng.normal(size=(8, 12, 12, 4)))
    sunk, unsunk = _compiled(conv, args, (0, 1)), _compiled(conv, args, (0, 1), sink=False)
    lines = [line.strip() for line in sunk.source.splitlines() if not line.strip().startswith(
        "del ")]
    product = next(k for k, line in enumerate(lines) if "@" in line and ".T" in line and
                   "patches.T" not in line)                # the patches' adjoint
    name = lines[product].split(" = ")[0]
    assert f"{name}." in lines[product + 1] or f"({name}" in lines[product + 1], sunk.source
    (_, grads), (_, same) = sunk.function(*args), unsunk.function(*args)
    assert all(np.array_equal(g, h) for g, h in zip(grads, same))
    assert _peak(lambda: sunk.function(*args)) <= _peak(lambda: unsunk.function(*args))
