"""Matrix products: matmul (batched, broadcasting) and the fused linear layer."""

__all__ = ['linear', 'matmul']
from zero import backend
from zero.core import Function, Variable
from zero.functions.shape import broadcast_to, reshape, sum_to, swapaxes


class MatMul(Function):
    """x @ W for arrays with ndim >= 2 (leading axes broadcast, as in NumPy)."""

    def forward(self, x, W):
        return x @ W

    def backward(self, gy):
        x, W = self.inputs
        # y = x W  =>  dL/dx = gy W^T,  dL/dW = x^T gy  (summed over broadcast axes; none for a constant)
        gx = sum_to(matmul(gy, swapaxes(W, -1, -2)), x.shape) if x.requires_grad else None
        gW = sum_to(matmul(swapaxes(x, -1, -2), gy), W.shape) if W.requires_grad else None
        return gx, gW


def matmul(x, W):
    """x @ W. 1-D operands are treated as a row (x) or a column (W), as in NumPy."""
    if (x.ndim == 1 or W.ndim == 1) and x.ndim >= 1 and W.ndim >= 1:   # checked before the reshapes
        rows = W.shape[0] if W.ndim == 1 else W.shape[-2]
        if x.shape[-1] != rows:
            raise ValueError(f"MatMul: x's last axis ({x.shape[-1]}) must match W's "
                             f"{'length' if W.ndim == 1 else 'second-to-last axis'} ({rows}): "
                             f"shapes {tuple(x.shape)} and {tuple(W.shape)}")
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
    """y = x W + b in one op. x: (..., in), W: (in, out), b: (out,), absent, or any shape that
    broadcasts to y's (one bias per row, say), whose gradient is then gy summed to b's shape."""

    def forward(self, x, W, b=None):
        if W.ndim != 2:   # a 1-D W would give a result whose backward fails far from here
            raise ValueError(f"W must be a matrix (in, out), got shape {W.shape}")
        if x.dtype.kind != "f":  # integer x as float32 (int64 @ float32 would be float64)
            x = backend.floating(x)
        y = _matrix_product(self.xp, x, W)
        if b is not None:
            y += b
        return y

    def backward(self, gy):
        x, W = self.inputs[:2]
        b = self.inputs[2] if len(self.inputs) == 3 else None
        out_bias = b is not None and b.shape == W.shape[-1:]  # (out,): LinearGrad sums gy over the rows
        grads = LinearGrad(out_bias, x.requires_grad)(x, W, gy)
        if not isinstance(grads, tuple):
            grads = (grads,)
        if b is not None and not out_bias:  # any other bias shape: gy summed to it
            grads += (sum_to(gy, b.shape),)
        return grads if x.requires_grad else (None,) + grads   # LinearGrad left gx out: None in its place


class LinearGrad(Function):
    """The backward of linear as one op (the hot path of every MLP):
    gx = gy W^T,  gW = x^T gy,  gb = 1^T gy (the sum of gy over the batch).
    Returns (gx, gW[, gb]); without gx when x needs no gradient (a batch of
    data: that product would be thrown away)."""

    def __init__(self, has_bias, needs_gx):
        self.has_bias = has_bias
        self.needs_gx = needs_gx

    def forward(self, x, W, gy):
        xp = self.xp
        grads = (_matrix_product(xp, gy, W.T),) if self.needs_gx else ()
        gy_rows = _rows(gy)
        if x.dtype.kind != "f":
            x = backend.floating(x)
        # @ for x^T gy: dot copies a transposed first operand (30-40% slower at 32 x 784 x 200 in
        # the VAE's profile, 2026-12-01; 10-15% on a Zen 4, 2026-12-06)
        grads += (_rows(x).T @ gy_rows,)
        if self.has_bias:
            # as a product with a row of ones, which BLAS does 1.5-3x faster
            # than NumPy's sum(axis=0) at batch sizes 32-128 (2026-12-01; 2.5-3.4x on a Zen 4, 2026-12-06)
            grads += (xp.dot(backend.ones(xp, len(gy_rows), gy.dtype), gy_rows),)
        return grads

    def backward(self, *output_grads):
        # differentiate gx, gW, gb again (double backprop); absent grads are None
        x, W, gy = self.inputs
        if x.dtype.kind != "f":  # integer x as float32, as in forward (int64 @ float32 would be float64)
            x = Variable(backend.floating(x.data), requires_grad=False)
        output_grads = list(output_grads)
        ggx = output_grads.pop(0) if self.needs_gx else None
        ggW = output_grads.pop(0)
        ggb = output_grads.pop(0) if self.has_bias else None
        g_x = g_W = g_gy = None
        if ggW is not None:                              # from gW = x^T gy
            g_x = matmul(gy, ggW.T)
            g_gy = matmul(x, ggW)
        if ggx is not None:                              # from gx = gy W^T
            g_W = matmul(reshape(ggx, (-1, ggx.shape[-1])).T, reshape(gy, (-1, gy.shape[-1])))
            g_gy = matmul(ggx, W) if g_gy is None else g_gy + matmul(ggx, W)
        if ggb is not None:                              # from gb = sum of gy
            g_gy = broadcast_to(ggb, gy.shape) if g_gy is None else g_gy + ggb
        return g_x, g_W, g_gy


def _matrix_product(xp, a, b):
    """a @ b for a 2-D b, as one 2-D product over all rows of a, by dot: dot skips
    matmul's slow path for tiny arrays (an outer product (100, 1) @ (1, 10): 1.0 us
    instead of 2.2), but reaches BLAS only with 2-D operands (with a 3-D a, 36x slower: 12.2 ms
    instead of 0.34 at (4, 32, 784) x (784, 200)). Measured on 2 cores of a Zen 4, 2026-12-06
    (60x on 2026-12-01)."""
    if a.ndim == 2:
        return xp.dot(a, b)
    return xp.dot(_rows(a), b).reshape(*a.shape[:-1], b.shape[1])


def _rows(a):
    """(..., n) -> (rows, n): the batch axes flattened into one."""
    return a if a.ndim == 2 else a.reshape(-1, a.shape[-1])


def linear(x, W, b=None):
    """x W + b as one op (see Linear): x (..., in), W (in, out), b (out,), None, or any shape
    that broadcasts to the result."""
    if b is None:
        return Linear()(x, W)
    return Linear()(x, W, b)
