"""Loss functions and accuracy.

`reduction` is 'mean' or 'sum', as in PyTorch: softmax_cross_entropy averages
over the N samples, the others over all elements. float16 losses are computed in
float32, where a float16 sum or count past 65504 would be inf, and returned in float16
(in_float32_at_least): a float16 loss of reduction 'sum' past 65504 is still inf.
"""

__all__ = ['accuracy', 'binary_cross_entropy', 'binary_cross_entropy_with_logits', 'mean_squared_error',
           'softmax_cross_entropy']
from zero import backend
from zero.core import Function, Variable, as_variable
from zero.functions.activation import sigmoid, softmax
from zero.functions.math import clip, log
from zero.functions.reduction import HALF, in_float32_at_least

BCE_EPS = 1e-7  # binary_cross_entropy clips p to [eps, 1 - eps]: each term is at most -log(1e-7) = 16.1
# float16 probabilities: the loss itself is computed in float32, but the gradient comes back in
# float16, where 1 / (eps (1 - eps)) at eps = 1e-7 would be inf; float16 clips to its gap below 1,
# 2^-11, at which that gradient, ~2048, fits
HALF_BCE_EPS = 2.0 ** -11


def _check_reduction(name, reduction):
    if reduction not in ("mean", "sum"):
        raise ValueError(f"{name}: reduction must be 'mean' or 'sum', got {reduction!r}")


def _check_ranges(targets, probs=None):
    """Refuse binary cross-entropy targets outside [0, 1] (0-255 pixels, say: the loss would be a number
    without meaning, unbounded below) and, when given, probs outside [0, 1] (logits passed by mistake
    would be clipped into a wrong loss, silently). Both ranges are read by the host in one copy (a GPU
    waits once)."""
    arrays = (targets,) if probs is None else (targets, probs)
    extremes = backend.host_min_max(*arrays) if targets.size else [0, 0] * len(arrays)
    lowest, highest = extremes[:2]
    if lowest < 0 or highest > 1:
        raise ValueError(f"targets must lie in [0, 1], got values from {lowest:.4g} to {highest:.4g} "
                         f"(images of 0-255 pixels: divide by 255)")
    if probs is not None and (extremes[2] < 0 or extremes[3] > 1):
        raise ValueError(f"probs must be probabilities in [0, 1], got values from {extremes[2]:.4g} to "
                         f"{extremes[3]:.4g} (for logits use binary_cross_entropy_with_logits)")


def _reduced(loss, count, reduction):
    """A summed loss as `reduction` asks: as it is for 'sum', divided by the number of terms for
    'mean', where no terms (an empty batch) are refused: 0 / 0 would be a NaN loss, with only a warning."""
    if reduction == "sum":
        return loss
    if count == 0:
        raise ValueError("reduction 'mean' over no elements (an empty batch): the mean of nothing is undefined (NaN)")
    return loss / count


def _check_same_shape(x0, x1):
    if x0.shape != x1.shape:
        raise ValueError(f"shapes differ: {x0.shape} vs {x1.shape}")


def _target_as(target, prediction, owner):
    """A constant target (an array or a list, not a Variable) on the prediction's device, as the
    labels of softmax_cross_entropy (from the host only: zero.backend.to_device_beside), and in its
    float dtype: integer 0/1 labels or float64 targets would otherwise make the loss and every
    gradient float64."""
    if isinstance(target, Variable) or isinstance(target, (int, float)):
        return target
    data = prediction.data if isinstance(prediction, Variable) else prediction
    if type(target) is type(data) and target.dtype == data.dtype:   # the usual case, on every step: as it is
        return target
    target = backend.to_device_beside(target, backend.device_of(prediction), f"{owner}: the targets")
    dtype = prediction.dtype
    return target.astype(dtype) if dtype.kind == "f" and target.dtype != dtype else target


class MeanSquaredError(Function):
    def __init__(self, reduction="mean"):
        _check_reduction("mean_squared_error", reduction)
        self.reduction = reduction

    def forward(self, x0, x1):
        _check_same_shape(x0, x1)
        diff = x0 - x1
        y = self.xp.vdot(diff, diff)  # sum of squares (vdot flattens)
        return _reduced(y, diff.size, self.reduction)

    def backward(self, gy):
        x0, x1 = self.inputs
        needs = (x0.requires_grad, x1.requires_grad)
        grads = MeanSquaredErrorGrad(self.reduction, needs)(x0, x1, gy)
        if needs == (True, True):
            return grads
        return (grads, None) if needs[0] else (None, grads)


class MeanSquaredErrorGrad(Function):
    """The backward of mean_squared_error as one op (the hot path of the
    book's regression and diffusion losses):

        gx0 = c gy (x0 - x1),  gx1 = -gx0   (c = 2/n, n = element count, for 'mean'; 2 for 'sum')

    needs: which of (x0, x1) need a gradient. Only those are computed and
    returned, in that order: a target needs none (it would be thrown away)."""

    def __init__(self, reduction, needs):
        self.reduction = reduction
        self.needs = needs

    def forward(self, x0, x1, gy):
        self.scale = 2.0 / x0.size if self.reduction == "mean" else 2.0  # c
        c_gy = gy * gy.dtype.type(self.scale)  # gy: a 0-d array of the loss's dtype
        needs_gx0, needs_gx1 = self.needs
        if not needs_gx0:
            gx1 = x1 - x0
            gx1 *= c_gy
            return gx1
        gx0 = x0 - x1
        gx0 *= c_gy
        return (gx0, -gx0) if needs_gx1 else gx0

    def backward(self, *ggs):
        # differentiate gx0 = c gy (x0 - x1) and gx1 = -gx0 again (double backprop)
        x0, x1, gy = self.inputs
        needs_gx0, needs_gx1 = self.needs
        ggx0 = ggs[0] if needs_gx0 else None
        ggx1 = ggs[-1] if needs_gx1 else None
        if ggx1 is None:                                 # gx1 = -gx0: its gradient counts with a minus
            gg = ggx0
        elif ggx0 is None:
            gg = -ggx1
        else:
            gg = ggx0 - ggx1
        g_x0 = gg * gy * self.scale
        g_gy = (gg * (x0 - x1)).sum() * self.scale
        return g_x0, -g_x0, g_gy


class SoftmaxCrossEntropy(Function):
    """L = sum_n -log softmax(logits_n)[labels_n]  (divided by N for 'mean').

    logits: (N, C) floats. labels: (N,) integers in [0, C) on the logits' device.
    """

    def __init__(self, labels, reduction):
        self.labels = labels
        self.reduction = reduction

    def forward(self, logits):
        xp, labels = self.xp, self.labels
        if logits.ndim != 2 or labels.shape != logits.shape[:1]:
            raise ValueError(f"expected logits (N, C) and labels (N,), got logits {logits.shape} "
                             f"and labels {labels.shape}")
        if labels.dtype.kind not in "iu":
            raise TypeError(f"labels must be integers (class indices), got dtype {labels.dtype}")
        n, num_classes = logits.shape
        if backend.any_outside(labels, 0, num_classes):
            raise ValueError(f"labels must lie in [0, {num_classes}), got values from "
                             f"{int(labels.min())} to {int(labels.max())}")
        logits = backend.floating(logits)  # integer logits as float32, as softmax takes them (NumPy would use float64)
        # -log softmax(x)[t] = log sum_c e^(x_c - m) - (x_t - m),  m = max_c x_c
        shifted = logits - logits.max(axis=1, keepdims=True)
        # kept for backward, which rebuilds softmax(x) = exp_shifted / sum_exp from them
        self.exp_shifted = xp.exp(shifted)
        self.sum_exp = self.exp_shifted.sum(axis=1, keepdims=True)
        loss = (xp.log(self.sum_exp[:, 0]) - shifted[xp.arange(n), labels]).sum()
        return _reduced(loss, n, self.reduction)

    def backward(self, gy):
        logits, = self.inputs
        softmax_of_logits = self.exp_shifted / self.sum_exp        # a new array: the op fills it in place
        return SoftmaxCrossEntropyGrad(self.labels, self.reduction, softmax_of_logits)(logits, gy)


class SoftmaxCrossEntropyGrad(Function):
    """The backward of softmax_cross_entropy as one op (the hot path of every classifier):

        gx = c gy (softmax(x) - onehot(t))   (c = 1/N for 'mean', 1 for 'sum')

    computed in place on one array: as Variable ops (softmax, subtract a one-hot matrix,
    multiply) it took 3-4 times as long at MNIST's batch sizes (2026-12-02). softmax_of_logits: the
    forward pass's softmax(x), a fresh array that this op overwrites."""

    def __init__(self, labels, reduction, softmax_of_logits):
        self.labels = labels
        self.reduction = reduction
        self.softmax_of_logits = softmax_of_logits

    def scale(self, n):
        return 1.0 / n if self.reduction == "mean" else 1.0  # c (the forward refused a mean over n = 0)

    def forward(self, logits, gy):
        xp, n = self.xp, len(logits)
        gx, self.softmax_of_logits = self.softmax_of_logits, None  # softmax(x), used up here
        gx[xp.arange(n), self.labels] -= 1                       # - onehot(t)
        gx *= gy * gy.dtype.type(self.scale(n))                  # gy: a 0-d array of the loss's dtype
        return gx

    def backward(self, ggx):
        # differentiate gx = c gy (p - onehot) again, p = softmax(x):
        # d/dx <ggx, gx> = c gy p (ggx - sum_j ggx_j p_j)  (softmax's Jacobian diag(p) - p p^T),
        # d/dgy <ggx, gx> = c sum ggx (p - onehot)
        logits, gy = self.inputs
        n, num_classes = logits.shape
        xp = self.xp
        c = self.scale(n)
        p = softmax(logits, axis=1)
        g_logits = p * (ggx - (ggx * p).sum(axis=1, keepdims=True)) * (gy * c)
        one_hot = as_variable((xp.arange(num_classes) == self.labels[:, None]).astype(logits.dtype))
        g_gy = (ggx * (p - one_hot)).sum() * c
        return g_logits, g_gy


class BinaryCrossEntropy(Function):
    """L = -sum [t log p + (1 - t) log(1 - p)], with p clipped to [eps, 1 - eps] (BCE_EPS, HALF_BCE_EPS)."""

    def __init__(self, reduction, eps=BCE_EPS):
        self.reduction = reduction
        self.eps = eps

    def forward(self, probs, targets):
        _check_same_shape(probs, targets)
        _check_ranges(targets, probs)
        xp = self.xp
        p = xp.clip(probs, self.eps, 1 - self.eps)
        log_p, log_1mp = xp.log(p), xp.log1p(-p)
        # -(t log p + (1 - t) log(1 - p)) = -(log(1 - p) + t (log p - log(1 - p)))
        log_p -= log_1mp
        log_p *= targets
        log_p += log_1mp
        loss = -log_p.sum()
        return _reduced(loss, probs.size, self.reduction)

    def backward(self, gy):
        probs, targets = self.inputs
        scale = gy / probs.size if self.reduction == "mean" else gy
        # The formula's gradient evaluated at the clipped p (exact for eps <= p <= 1 - eps; finite
        # where p is 0 or 1). Deliberately not the derivative of the clipped forward, which is 0
        # outside [eps, 1 - eps] and would stop a saturated prediction from learning:
        # dL/dp = (p - t) / (p (1 - p)),  dL/dt = log(1 - p) - log p
        p = clip(probs, self.eps, 1 - self.eps)
        g_probs = scale * (p - targets) / (p * (1 - p))
        g_targets = scale * (log(1 - p) - log(p)) if targets.requires_grad else None  # usually data
        return g_probs, g_targets


class BinaryCrossEntropyWithLogits(Function):
    """L = sum [max(x, 0) - x t + log(1 + e^-|x|)] = BCE(sigmoid(x), t), stable for any x."""

    def __init__(self, reduction):
        self.reduction = reduction

    def forward(self, logits, targets):
        _check_same_shape(logits, targets)
        _check_ranges(targets)
        xp = self.xp
        # max(x, 0) - x t first: it is exactly 0 for a confident right answer (x > 0, t = 1 or
        # x < 0, t = 0), so the small log term that follows keeps its digits (20 + 2e-9 - 20 would be 0)
        terms = xp.maximum(logits, 0)
        terms -= logits * targets
        terms += xp.log1p(xp.exp(-xp.abs(logits)))
        loss = terms.sum()
        return _reduced(loss, logits.size, self.reduction)

    def backward(self, gy):
        logits, targets = self.inputs
        scale = gy / logits.size if self.reduction == "mean" else gy
        # dL/dx = sigma(x) - t,  dL/dt = -x
        g_targets = scale * -logits if targets.requires_grad else None  # usually data
        return scale * (sigmoid(logits) - targets), g_targets


def mean_squared_error(x0, x1, reduction="mean"):
    """sum (x0 - x1)^2, divided by the element count for reduction 'mean'. Either input may be
    a constant target (an array), in either order; it takes the other's device and float dtype."""
    if not (isinstance(x0, Variable) and isinstance(x1, Variable)):
        x0, x1 = ((_target_as(x0, x1, "mean_squared_error"), x1) if isinstance(x1, Variable)
                  else (x0, _target_as(x1, x0, "mean_squared_error")))
    return in_float32_at_least(MeanSquaredError(reduction), x0, x1)


def softmax_cross_entropy(logits, labels, reduction="mean"):
    """Cross entropy of softmax(logits) against integer class labels, as one op.

    logits: (N, C). labels: (N,) integers (array, list or Variable; moved to
    the logits' device). Returns a scalar Variable.
    """
    _check_reduction("softmax_cross_entropy", reduction)
    device = backend.device_of(logits)
    labels = backend.to_device_beside(labels, device, "softmax_cross_entropy: the labels")
    return in_float32_at_least(SoftmaxCrossEntropy(labels, reduction), logits)


def binary_cross_entropy(probs, targets, reduction="mean"):
    """Cross entropy of probabilities `probs` in [0, 1] against targets in [0, 1],
    both of the same shape. p is clipped to [eps, 1 - eps] inside the logs, eps = BCE_EPS
    (float16: 2^-11, the gap below 1). Prefer binary_cross_entropy_with_logits when you have the logits."""
    _check_reduction("binary_cross_entropy", reduction)
    targets = _target_as(targets, probs, "binary_cross_entropy")
    eps = HALF_BCE_EPS if getattr(probs, "dtype", None) == HALF else BCE_EPS
    return in_float32_at_least(BinaryCrossEntropy(reduction, eps), probs, targets)


def binary_cross_entropy_with_logits(logits, targets, reduction="mean"):
    """binary_cross_entropy(sigmoid(logits), targets) computed stably, without clipping."""
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    targets = _target_as(targets, logits, "binary_cross_entropy_with_logits")
    return in_float32_at_least(BinaryCrossEntropyWithLogits(reduction), logits, targets)


def accuracy(logits, labels):
    """Fraction of rows whose argmax equals the label, as a Python float (not differentiable).

    logits: (N, C) array or Variable. labels: (N,) integers.
    """
    if isinstance(logits, Variable):
        logits = logits.data
    labels = backend.to_device_beside(labels, backend.device_of(logits), "accuracy: the labels")
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"accuracy: expected logits (N, C) and labels (N,), got logits {logits.shape} "
                         f"and labels {labels.shape}")
    return (logits.argmax(axis=1) == labels).mean().item()  # .item(): explicit host copy of one number
