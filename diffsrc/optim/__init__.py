"""Optimizers, learning-rate schedules and training-loop helpers.

Not differentiated: these run between gradient evaluations and work on whole
parameter trees (see diffsrc.tree).
"""
from . import schedules
from .optimizers import (Optimizer, adagrad, adam, adamw, clip_by_global_norm, momentum,
                         nesterov, rmsprop, sgd)
from .schedules import cosine_decay, exponential_decay, linear_warmup, step_decay
from .train import Progress, accuracy, evaluate, iterate_minibatches

__all__ = ["Optimizer", "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam",
           "adamw", "clip_by_global_norm", "schedules", "step_decay", "exponential_decay",
           "cosine_decay", "linear_warmup", "iterate_minibatches", "Progress", "accuracy",
           "evaluate"]
