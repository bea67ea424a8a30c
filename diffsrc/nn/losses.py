"""Loss functions and weight penalties, written as plain NumPy for diffsrc.

Classification losses take logits (unnormalised scores) of shape (..., K) and
labels that are integer class ids of shape (...) (or, where stated, one-hot /
probability rows of shape (..., K)); they average over all leading positions
(the batch). Every log-probability is computed from logits by a max-shifted
log-sum-exp, never as log(softmax), so large logits cannot give inf or nan.
"""
import numpy as np

from .activations import log_softmax

__all__ = ["mse", "softmax_cross_entropy", "binary_cross_entropy_with_logits",
           "multiclass_hinge", "focal_loss", "l1_penalty", "l2_penalty",
           "elastic_net_penalty", "distillation_loss"]


def mse(pred, target):
    """Mean of the squared differences."""
    return np.mean((pred - target) ** 2)


def _class_mask(labels, num_classes):
    """Boolean (..., K) mask that is True at each label's class."""
    return np.expand_dims(labels, -1) == np.arange(num_classes)


def softmax_cross_entropy(logits, labels):
    """Mean of -log softmax(logits)[label].

    labels are integer ids (one fewer dimension than logits) or one-hot /
    probability rows (same shape as logits).
    """
    logp = log_softmax(logits, axis=-1)
    if np.ndim(labels) == logits.ndim:
        return -np.mean(np.sum(labels * logp, axis=-1))
    mask = _class_mask(labels, logits.shape[-1])
    return -np.mean(np.sum(mask * logp, axis=-1))


def binary_cross_entropy_with_logits(logits, targets):
    """Mean of -t*log(sigmoid(z)) - (1-t)*log(1-sigmoid(z)) for targets t in [0, 1],
    as max(z,0) - z*t + log1p(exp(-|z|)), which is finite for every z."""
    return np.mean(np.maximum(logits, 0.0) - logits * targets
                   + np.log1p(np.exp(-np.abs(logits))))


def multiclass_hinge(scores, labels, margin=1.0):
    """Multiclass SVM loss: mean over samples of
    sum_{j != y} max(0, s_j - s_y + margin)."""
    mask = _class_mask(labels, scores.shape[-1])
    correct = np.sum(mask * scores, axis=-1, keepdims=True)
    margins = np.maximum(scores - correct + margin, 0.0)
    return np.mean(np.sum(np.where(mask, 0.0, margins), axis=-1))


def focal_loss(logits, labels, gamma=2.0, alpha=None):
    """Focal loss -alpha_t * (1 - p_t)^gamma * log(p_t), averaged (Lin et al.).

    Multiclass when labels are integer ids (logits have one more dimension):
    p_t is the softmax probability of the true class, alpha (if given) a scalar
    weight. Binary when labels are 0/1 targets of the logits' shape: p_t is
    sigmoid(z) for positives and 1 - sigmoid(z) for negatives, and alpha (the
    paper uses 0.25) weights positives, 1 - alpha negatives. gamma = 0 and
    alpha = None give plain cross-entropy; larger gamma down-weights easy
    examples.
    """
    if np.ndim(labels) == logits.ndim:
        log_pt = -(np.maximum(logits, 0.0) - logits * labels
                   + np.log1p(np.exp(-np.abs(logits))))
        weight = 1.0
        if alpha is not None:
            weight = alpha * labels + (1.0 - alpha) * (1.0 - labels)
    else:
        mask = _class_mask(labels, logits.shape[-1])
        log_pt = np.sum(mask * log_softmax(logits, axis=-1), axis=-1)
        weight = 1.0
        if alpha is not None:
            weight = alpha
    return -np.mean(weight * (1.0 - np.exp(log_pt)) ** gamma * log_pt)


def l1_penalty(params, lam):
    """lam * sum |w| over a dict of arrays or a dict of dicts of arrays.

    Every array is penalised; pass a dict holding only the weights to leave
    biases out.
    """
    total = 0.0
    for name in params:
        p = params[name]
        if isinstance(p, dict):
            for key in p:
                total = total + np.sum(np.abs(p[key]))
        else:
            total = total + np.sum(np.abs(p))
    return lam * total


def l2_penalty(params, lam):
    """lam * sum w^2 (the course's R(W), no factor 1/2) over a dict of arrays or
    a dict of dicts of arrays; gradient 2*lam*w."""
    total = 0.0
    for name in params:
        p = params[name]
        if isinstance(p, dict):
            for key in p:
                total = total + np.sum(p[key] ** 2)
        else:
            total = total + np.sum(p ** 2)
    return lam * total


def elastic_net_penalty(params, l1, l2):
    """l1 * sum |w| + l2 * sum w^2: sparsity from L1, stability from L2."""
    return l1_penalty(params, l1) + l2_penalty(params, l2)


def distillation_loss(student_logits, teacher_logits, temperature=2.0):
    """T^2 * KL(softmax(teacher/T) || softmax(student/T)), averaged over samples.

    Softening with T > 1 exposes the teacher's relative confidence in wrong
    classes; the T^2 factor keeps gradient magnitudes comparable across T
    (Hinton et al.). Zero when the logits agree up to a per-sample shift.
    """
    log_p_teacher = log_softmax(teacher_logits / temperature, axis=-1)
    log_p_student = log_softmax(student_logits / temperature, axis=-1)
    p_teacher = np.exp(log_p_teacher)
    kl = np.sum(p_teacher * (log_p_teacher - log_p_student), axis=-1)
    return temperature ** 2 * np.mean(kl)
