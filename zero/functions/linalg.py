"""Matrix products: matmul (batched, broadcasting) and the fused linear layer."""

__all__ = ['linear', 'matmul']
from zero.core import Function
from zero.functions.shape import reshape, sum_to, swapaxes


class MatMul(Function):
    """x @ W for arrays with ndim >= 2 (leading axes broadcast, as in NumPy)."""

    def forward(self, x, W):
        return x @ W

    def backward(self, gy):
        x, W = self.inputs
        # y = x W  =>  dL/dx = gy W^T,  dL/dW = x^T gy  (summed over broadcast axes)
        gx = matmul(gy, swapaxes(W, -1, -2))
        gW = matmul(swapaxes(x, -1, -2), gy)
        return sum_to(gx, x.shape), sum_to(gW, W.shape)


def matmul(x, W):
    """x @ W. 1-D operands are treated as a row (x) or a column (W), as in NumPy."""
    if x.ndim == 1 and W.ndim == 1:
        return reshape(MatMul()(reshape(x, (1, -1)), reshape(W, (-1, 1))), ())
    if x.ndim == 1:
        y = MatMul()(reshape(x, (1, -1)), W)
        return reshape(y, y.shape[:-2] + y.shape[-1:])
    if W.ndim == 1:
        y = MatMul()(x, reshape(W, (-1, 1)))
        return reshape(y, y.shape[:-1])
    return MatMul()(x, W)


class Linear(Function):
    """y = x W + b in one op. x: (..., in), W: (in, out), b: (out,) or absent."""

    def forward(self, x, W, b=None):
        y = x @ W
        if b is not None:
            y += b
        return y

    def backward(self, gy):
        x, W = self.inputs[:2]
        gx = matmul(gy, W.T)
        gW = matmul(reshape(x, (-1, x.shape[-1])).T, reshape(gy, (-1, gy.shape[-1])))
        if len(self.inputs) == 2:
            return gx, gW
        return gx, gW, sum_to(gy, self.inputs[2].shape)


def linear(x, W, b=None):
    if b is None:
        return Linear()(x, W)
    return Linear()(x, W, b)
