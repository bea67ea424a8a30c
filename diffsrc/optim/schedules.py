"""Learning-rate schedules: functions of the step count (0 for the first update).

Pass one as ``lr`` to any optimizer in ``diffsrc.optim``.
"""
import math

__all__ = ["step_decay", "exponential_decay", "cosine_decay", "linear_warmup"]


def _positive(name, value):
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")


def step_decay(lr, step_size, factor=0.1):
    """lr * factor ** (step // step_size): drop by `factor` every step_size steps."""
    _positive("step_size", step_size)

    def schedule(step):
        return lr * factor ** (step // step_size)
    return schedule


def exponential_decay(lr, rate, decay_steps=1):
    """lr * rate ** (step / decay_steps): smooth decay by `rate` per decay_steps."""
    _positive("decay_steps", decay_steps)

    def schedule(step):
        return lr * rate ** (step / decay_steps)
    return schedule


def cosine_decay(lr, total_steps, final_lr=0.0):
    """Half a cosine from lr at step 0 to final_lr at total_steps, constant after."""
    _positive("total_steps", total_steps)

    def schedule(step):
        frac = min(step, total_steps) / total_steps
        return final_lr + 0.5 * (lr - final_lr) * (1.0 + math.cos(math.pi * frac))
    return schedule


def linear_warmup(lr, warmup_steps):
    """Ramp linearly up to lr over warmup_steps, then follow lr.

    lr is a float or a schedule; during the warm-up the rate is
    base(0) * (step + 1) / warmup_steps (never 0, so the first update moves),
    afterwards base(step - warmup_steps), so the wrapped schedule starts its
    own count when the warm-up ends.
    """
    _positive("warmup_steps", warmup_steps)

    def base(step):
        return lr(step) if callable(lr) else lr

    def schedule(step):
        if step < warmup_steps:
            return base(0) * (step + 1) / warmup_steps
        return base(step - warmup_steps)
    return schedule
