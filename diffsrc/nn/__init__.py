"""Neural-network building blocks as plain NumPy functions over parameter dicts.

Forward functions (layers, activations, losses) are written for diffsrc to
differentiate; initialisers and init_* functions build the parameter dicts.
"""
from . import init
from .activations import (gelu, leaky_relu, log_softmax, relu, sigmoid, silu, softmax,
                          softplus, tanh)
from .init import he_normal, he_uniform, orthogonal, xavier_normal, xavier_uniform, zeros
from .layers import (avg_pool2d, batch_norm, conv2d, dense, dropout, dropout_mask,
                     embedding, init_batch_norm, init_conv2d, init_dense, init_embedding,
                     init_layer_norm, layer_norm, max_pool2d)
from .losses import (binary_cross_entropy_with_logits, distillation_loss,
                     elastic_net_penalty, focal_loss, l1_penalty, l2_penalty, mse,
                     multiclass_hinge, softmax_cross_entropy)

__all__ = [
    "init",
    "relu", "leaky_relu", "sigmoid", "tanh", "softplus", "gelu", "silu", "softmax",
    "log_softmax",
    "xavier_uniform", "xavier_normal", "he_uniform", "he_normal", "zeros", "orthogonal",
    "dense", "init_dense", "conv2d", "init_conv2d", "max_pool2d", "avg_pool2d",
    "batch_norm", "init_batch_norm", "layer_norm", "init_layer_norm", "dropout",
    "dropout_mask", "embedding", "init_embedding",
    "mse", "softmax_cross_entropy", "binary_cross_entropy_with_logits",
    "multiclass_hinge", "focal_loss", "l1_penalty", "l2_penalty", "elastic_net_penalty",
    "distillation_loss",
]
