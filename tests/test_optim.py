"""Optimizers against hand-computed steps; schedules; clipping; loop helpers."""
import math

import numpy as np
import pytest

from diffsrc import optim
from diffsrc.tree import global_norm, tree_allclose, tree_map

P0 = 1.5
GRADS = [2.0, 1.0, -0.5]


def run(opt, steps, p0=P0):
    """Scalar parameter, stored as a 1-element array, through len(steps) updates."""
    params = {"w": np.array([p0])}
    state = opt.init(params)
    out = []
    for g in steps:
        params, state = opt.update(params, {"w": np.array([g])}, state)
        out.append(float(params["w"][0]))
    return out, state


def test_sgd_steps():
    out, state = run(optim.sgd(lr=0.1), GRADS)
    assert out == pytest.approx([1.3, 1.2, 1.25])
    assert state["step"] == 3


def test_momentum_steps():
    # v1 = 2, p1 = 1.5 - 0.2; v2 = 0.9*2 + 1 = 2.8, p2 = 1.3 - 0.28;
    # v3 = 0.9*2.8 - 0.5 = 2.02, p3 = 1.02 - 0.202
    out, state = run(optim.momentum(lr=0.1, beta=0.9), GRADS)
    assert out == pytest.approx([1.3, 1.02, 0.818])
    np.testing.assert_allclose(state["velocity"]["w"], [2.02])


def test_nesterov_steps():
    # v1 = 2, p1 = 1.5 - 0.1*(2 + 1.8) = 1.12; v2 = 2.8, p2 = 1.12 - 0.1*(1 + 2.52) = 0.768
    out, _ = run(optim.nesterov(lr=0.1, beta=0.9), GRADS[:2])
    assert out == pytest.approx([1.12, 0.768])


def test_adagrad_steps():
    # G1 = 4: p1 = 1.5 - 0.1*2/2 = 1.4; G2 = 5: p2 = 1.4 - 0.1/sqrt(5)
    out, state = run(optim.adagrad(lr=0.1, eps=0.0), GRADS[:2])
    assert out == pytest.approx([1.4, 1.4 - 0.1 / math.sqrt(5)])
    np.testing.assert_allclose(state["sum_sq"]["w"], [5.0])


def test_rmsprop_steps():
    # G1 = 0.1*4 = 0.4; G2 = 0.9*0.4 + 0.1*1 = 0.46
    out, _ = run(optim.rmsprop(lr=0.01, beta=0.9, eps=0.0), GRADS[:2])
    p1 = 1.5 - 0.01 * 2 / math.sqrt(0.4)
    assert out == pytest.approx([p1, p1 - 0.01 * 1 / math.sqrt(0.46)])


def test_adam_steps_with_bias_correction():
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    out, state = run(optim.adam(lr=lr, beta1=b1, beta2=b2, eps=eps), GRADS[:2])
    # Step 1: m_hat = g and v_hat = g^2, so the step is lr * sign(g).
    assert out[0] == pytest.approx(1.5 - lr)
    m2 = 0.9 * 0.2 + 0.1 * 1.0            # 0.28
    v2 = 0.999 * 0.004 + 0.001 * 1.0      # 0.004996
    m_hat, v_hat = m2 / (1 - 0.9 ** 2), v2 / (1 - 0.999 ** 2)
    assert out[1] == pytest.approx(out[0] - lr * m_hat / (math.sqrt(v_hat) + eps), rel=1e-12)
    assert state["step"] == 2
    np.testing.assert_allclose(state["m"]["w"], [m2])
    np.testing.assert_allclose(state["v"]["w"], [v2])


def test_adamw_decays_weights_decoupled_from_adam_step():
    lr, wd = 0.1, 0.5
    out, _ = run(optim.adamw(lr=lr, weight_decay=wd, eps=0.0), GRADS[:1])
    assert out[0] == pytest.approx(1.5 - lr * (1.0 + wd * 1.5))
    # With zero gradients only the decay acts: p <- p * (1 - lr*wd).
    params = {"w": np.array([2.0])}
    opt = optim.adamw(lr=lr, weight_decay=wd)
    state = opt.init(params)
    new, _ = opt.update(params, {"w": np.array([0.0])}, state)
    np.testing.assert_allclose(new["w"], [2.0 * (1 - lr * wd)])


ALL = [optim.sgd(0.1), optim.momentum(0.1), optim.nesterov(0.1), optim.adagrad(),
       optim.rmsprop(), optim.adam(), optim.adamw()]


@pytest.mark.parametrize("opt", ALL)
def test_update_never_mutates_and_keeps_structure_and_dtype(opt):
    params = {"dense": {"W": np.ones((2, 3), np.float32), "b": np.zeros(3, np.float32)},
              "scale": 2.0}
    grads = {"dense": {"W": np.full((2, 3), 0.5, np.float32), "b": np.ones(3, np.float32)},
             "scale": -1.0}
    state = opt.init(params)
    snapshots = [tree_map(np.copy, t) for t in (params, grads, state)]
    new_params, new_state = opt.update(params, grads, state)
    new_params, new_state = opt.update(new_params, grads, new_state)
    for original, snap in zip((params, grads, state), snapshots):
        assert tree_allclose(original, snap, rtol=0, atol=0)
    assert new_params["dense"]["W"].dtype == np.float32
    assert type(new_params["scale"]) is float and new_params["scale"] > 2.0
    assert np.all(new_params["dense"]["W"] < 1.0)
    assert new_state["step"] == 2


@pytest.mark.parametrize("opt", ALL)
def test_grads_must_match_params(opt):
    params = {"W": np.ones(2), "b": np.zeros(2)}
    with pytest.raises(ValueError, match="dict keys differ"):
        opt.update(params, {"W": np.ones(2)}, opt.init(params))


def test_optimizers_minimise_a_quadratic():
    target = np.array([3.0, -1.0])
    for opt in [optim.sgd(0.1), optim.momentum(0.05), optim.nesterov(0.05),
                optim.adagrad(0.5), optim.rmsprop(0.05), optim.adam(0.1),
                optim.adamw(0.1, weight_decay=0.0)]:
        params = {"x": np.zeros(2)}
        state = opt.init(params)
        for _ in range(300):
            params, state = opt.update(params, {"x": 2 * (params["x"] - target)}, state)
        np.testing.assert_allclose(params["x"], target, atol=0.05)


# -------------------------------------------------------------------- schedules

def test_step_and_exponential_decay():
    s = optim.step_decay(1.0, step_size=10, factor=0.5)
    assert [s(0), s(9), s(10), s(25)] == [1.0, 1.0, 0.5, 0.25]
    e = optim.exponential_decay(2.0, rate=0.5, decay_steps=2)
    assert [e(0), e(2), e(3)] == pytest.approx([2.0, 1.0, 2.0 * 0.5 ** 1.5])


def test_cosine_decay():
    c = optim.cosine_decay(1.0, total_steps=100, final_lr=0.1)
    assert c(0) == pytest.approx(1.0)
    assert c(50) == pytest.approx(0.55)
    assert c(100) == pytest.approx(0.1) and c(500) == pytest.approx(0.1)
    assert c(25) > c(50) > c(75)


def test_linear_warmup_then_schedule():
    w = optim.linear_warmup(optim.step_decay(1.0, 10, 0.1), warmup_steps=4)
    assert [w(0), w(1), w(3)] == pytest.approx([0.25, 0.5, 1.0])
    assert w(4) == pytest.approx(1.0) and w(14) == pytest.approx(0.1)
    assert optim.linear_warmup(0.2, 2)(0) == pytest.approx(0.1)


@pytest.mark.parametrize("make", [lambda: optim.step_decay(1.0, 0),
                                  lambda: optim.cosine_decay(1.0, -1),
                                  lambda: optim.linear_warmup(1.0, 0),
                                  lambda: optim.exponential_decay(1.0, 0.9, decay_steps=0)])
def test_schedule_arguments_validated(make):
    with pytest.raises(ValueError, match="must be positive"):
        make()


def test_optimizer_follows_schedule_by_step_count():
    seen = []

    def schedule(step):
        seen.append(step)
        return 0.1 * (step + 1)

    out, _ = run(optim.sgd(schedule), [1.0, 1.0, 1.0])
    assert seen == [0, 1, 2]
    assert out == pytest.approx([1.4, 1.2, 0.9])


# --------------------------------------------------------------------- clipping

def test_clip_by_global_norm_scales_to_max_norm():
    grads = {"a": np.array([3.0, 0.0]), "b": [np.array([[4.0]])]}
    clipped = optim.clip_by_global_norm(grads, 1.0)
    assert global_norm(clipped) == pytest.approx(1.0)
    np.testing.assert_allclose(clipped["a"], [0.6, 0.0])
    np.testing.assert_allclose(clipped["b"][0], [[0.8]])
    np.testing.assert_allclose(grads["a"], [3.0, 0.0])


def test_clip_by_global_norm_leaves_small_grads_but_copies():
    grads = {"a": np.array([0.3, 0.4], np.float32)}
    clipped = optim.clip_by_global_norm(grads, 1.0)
    np.testing.assert_array_equal(clipped["a"], grads["a"])
    assert clipped["a"] is not grads["a"] and clipped["a"].dtype == np.float32
    zero = optim.clip_by_global_norm({"a": np.zeros(2)}, 1.0)
    np.testing.assert_array_equal(zero["a"], [0.0, 0.0])


# ------------------------------------------------------------------ loop helpers

def test_iterate_minibatches_covers_every_index_once():
    batches = list(optim.iterate_minibatches(np.random.default_rng(0), 10, 4))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(np.concatenate(batches).tolist()) == list(range(10))
    again = list(optim.iterate_minibatches(np.random.default_rng(0), 10, 4))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))
    assert not np.array_equal(np.concatenate(batches), np.arange(10))


def test_iterate_minibatches_in_order_and_drop_last():
    batches = list(optim.iterate_minibatches(None, 7, 3, shuffle=False, drop_last=True))
    assert [b.tolist() for b in batches] == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(ValueError):
        list(optim.iterate_minibatches(None, 7, 0, shuffle=False))


def test_accuracy_with_ids_and_one_hot():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0], [0.1, 0.2]])
    assert optim.accuracy(logits, np.array([0, 1, 1, 0])) == 0.5
    assert optim.accuracy(logits, np.eye(2)[[0, 1, 0, 1]]) == 1.0


def test_evaluate_batches_give_full_set_accuracy():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((23, 3))
    W = rng.standard_normal((3, 4))
    y = rng.integers(0, 4, size=23)

    def predict(params, xb):
        return xb @ params["W"]

    full = optim.accuracy(X @ W, y)
    assert optim.evaluate(predict, {"W": W}, X, y, batch_size=5) == pytest.approx(full)
    assert optim.evaluate(predict, {"W": W}, X, np.argmax(X @ W, axis=1), batch_size=7) == 1.0


def test_progress_plain_prints_and_records(capsys):
    with optim.Progress(total=4, desc="epoch", use_tqdm=False, print_every=2) as bar:
        for i in range(4):
            bar.update(loss=1.0 / (i + 1), acc=0.25 * i)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == ["epoch 2/4 loss=0.5 acc=0.25", "epoch 4/4 loss=0.25 acc=0.75"]
    assert bar.history["loss"] == pytest.approx([1.0, 0.5, 1 / 3, 0.25])
    assert bar.count == 4


def test_progress_tqdm_request():
    try:
        import tqdm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="tqdm"):
            optim.Progress(total=3, use_tqdm=True)
    else:
        bar = optim.Progress(total=3, use_tqdm=True)
        bar.update(loss=0.5)
        bar.close()
        assert bar.history == {"loss": [0.5]}
