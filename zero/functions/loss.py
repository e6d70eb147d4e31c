"""Loss functions. `reduction` is 'mean' (over all elements, as PyTorch) or 'sum'."""

__all__ = ['mean_squared_error']
from zero.core import Function


def _check_reduction(name, reduction):
    if reduction not in ("mean", "sum"):
        raise ValueError(f"{name}: reduction must be 'mean' or 'sum', got {reduction!r}")


class MeanSquaredError(Function):
    def __init__(self, reduction="mean"):
        _check_reduction("mean_squared_error", reduction)
        self.reduction = reduction

    def forward(self, x0, x1):
        if x0.shape != x1.shape:
            raise ValueError(f"shapes differ: {x0.shape} vs {x1.shape}")
        diff = x0 - x1
        y = (diff * diff).sum()
        return y / diff.size if self.reduction == "mean" else y

    def backward(self, gy):
        x0, x1 = self.inputs
        diff = x0 - x1
        # d/dx0 sum (x0 - x1)^2 = 2 (x0 - x1); the mean divides by the count
        scale = 2.0 / diff.size if self.reduction == "mean" else 2.0
        gx0 = gy * diff * scale
        return gx0, -gx0


def mean_squared_error(x0, x1, reduction="mean"):
    return MeanSquaredError(reduction)(x0, x1)
