"""Convolution, pooling and resizing for images in NCHW layout.

Shapes follow PyTorch: x (N, C, H, W); conv2d weight (OC, C, KH, KW);
conv_transpose2d weight (C_in, C_out, KH, KW); bias (channels_out,).

How a convolution becomes one matrix product (im2col). With stride s and
zero padding p, output pixel (h, w) sees the patch of the padded input that
starts at (s*h, s*w):

    y[n, o, h, w] = b[o] + sum_{c,i,j} W[o, c, i, j] * x_pad[n, c, s*h + i, s*w + j]

`_unfold` copies every patch into a column, so that the sum over (c, i, j)
is a matrix product:  y_mat = W_mat @ col,  with W_mat (OC, KH*KW*C) and col
(KH*KW*C, N*OH*OW). It loops over the KH*KW kernel offsets (9 for a 3x3
kernel), copying a strided slice each time, never over pixels. `_fold` is its
adjoint (col2im): it adds each column back where it came from.

col is KH*KW times larger than x, so the batch is processed in chunks: the
buffers stay bounded (CHUNK_ELEMENTS), and each chunk is still one large matmul.
That is how strided convolutions work. Pooling unfolds the whole batch at once
(with the usual 2x2 windows and stride 2, its patches are only the size of x). A same convolution (stride 1,
the output the size of the input: the U-Net's every convolution) needs no padded
copy: `_shifted_rows` ("shifted rows", below) lays each channel's images end to end
and shifts that row per kernel offset, zeroing what crosses an image's edge; its
forward may also add some offsets after the matmul, as `_split_for` chooses from
the channel counts, and its backward shares one set of rows between both gradients.

On the CPU every convolution first cuts its batch into one range of images per core, and
each range's chunks run on a thread of their own (`_each_chunk`; zero/threads.py says why).

The gradients are convolutions again, which keeps backward differentiable:

    dL/dx = conv_transpose2d(gy, W)       (the adjoint of conv2d in x)
    dL/dW = conv2d_grad_weight(x, gy)     (patches of x times gy, summed)
    dL/db = gy summed over (N, OH, OW)
"""

__all__ = ['avg_pool2d', 'conv2d', 'conv2d_grad_weight', 'conv_transpose2d', 'max_pool2d', 'upsample']
import math
import numbers
import threading

import numpy as np

from zero import threads
from zero.backend import get_array_module
from zero.core import Function

CHUNK_ELEMENTS = 2 ** 21  # im2col buffer per batch chunk on the CPU: 2M elements (8 MB in float32), one per thread
# On a GPU, caches do not bound the chunks, kernel launches do: each chunk is about ten of them
# (a U-Net layer of the book's size took 11 chunks at the CPU's budget); 32M elements (128 MB in
# float32) fit a batch of 128 of the book's U-Net in one chunk for most layers.
DEVICE_CHUNK_ELEMENTS = 2 ** 25


# =============================================================================
# Geometry and the two array helpers: unfold (im2col) and fold (col2im)
# =============================================================================
def size_pair(op, name, value, at_least=0):
    """A kernel size, stride or padding: 3 -> (3, 3); (3, 2) stays. Each must be a whole number
    >= at_least (ValueError naming op and name). The conv layers (zero.layers) check theirs with it too."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= at_least
                                 for v in pair):
        raise ValueError(f"{op}: {name} must be a whole number >= {at_least} or a pair of them, got {value!r}")
    return tuple(int(v) for v in pair)


def _conv_out_size(size, kernel_size, stride, padding):
    """(OH, OW) of a convolution or pooling window sliding over size (H, W)."""
    return tuple((n + 2 * p - k) // s + 1 for n, k, s, p in zip(size, kernel_size, stride, padding))


def _transpose_out_size(size, kernel_size, stride, padding, output_padding):
    """(OH, OW) of conv_transpose2d: the input size of the conv2d it reverses."""
    return tuple((n - 1) * s - 2 * p + k + op
                 for n, k, s, p, op in zip(size, kernel_size, stride, padding, output_padding))


def _batch_chunks(x, elements_per_item, images=slice(None)):
    """Slices of x's batch (axis 0), within `images`, such that each chunk's im2col buffer holds about
    CHUNK_ELEMENTS elements on the CPU, DEVICE_CHUNK_ELEMENTS on a GPU (at least one item per chunk)."""
    start, stop, _ = images.indices(len(x))
    budget = CHUNK_ELEMENTS if get_array_module(x) is np else DEVICE_CHUNK_ELEMENTS
    step = max(1, budget // max(1, elements_per_item))
    return [slice(first, min(first + step, stop)) for first in range(start, stop, step)]


def _each_chunk(x, elements_per_item, work):
    """[work(batch) for each batch chunk of x] (_batch_chunks), in batch order. On the CPU, with
    enough work, the batch is first cut into one range of images per thread, and each thread works
    through its range's chunks with BLAS on one thread (zero.threads says why)."""
    parts = threads.split_count() if get_array_module(x) is np else 1
    if parts == 1 or len(x) < 2 or len(x) * elements_per_item < threads.MIN_SPLIT_ELEMENTS:
        return [work(batch) for batch in _batch_chunks(x, elements_per_item)]
    threads.hold_blas()

    def work_through(images):
        return [work(batch) for batch in _batch_chunks(x, elements_per_item, images)]
    return [result for results in threads.run_each(work_through, threads.ranges(len(x), parts))
            for result in results]


def _sum_in_order(partial_sums, shape, like):
    """partial_sums[0] + partial_sums[1] + ..., added left to right (the same rounding whatever the
    threads: a weight gradient does not depend on which thread finished first); zeros of `shape`
    for none (an empty batch), of like's array type and dtype."""
    if not partial_sums:
        return get_array_module(like).zeros(shape, like.dtype)
    total = partial_sums[0]
    for partial in partial_sums[1:]:
        total += partial
    return total


class _PatchBuffers(threading.local):
    """The im2col buffers of one thread (each thread sees its own attributes)."""

    def __init__(self):
        self.by_key = {}  # (array type, device, dtype) -> flat buffer


_patch_buffers = _PatchBuffers()


def _patch_buffer(x, shape):
    """An uninitialised array of `shape` for the patches of x, reusing one buffer per thread,
    device and dtype: every caller of _unfold uses its patches up (a matmul, a max, a sum)
    before it unfolds again, so one buffer serves all chunks and all layers. A fresh 8 MB
    array per chunk made a U-Net training step 7-9% slower (2026-12-02; new pages are zeroed by the
    kernel and start cold in the caches). The result is overwritten by the next call; the
    buffer stays allocated, as large as the largest patches so far (the chunk budget for convolutions; pooling's, the size
    of its whole input, may be larger)."""
    key = (type(x), str(getattr(x, "device", "")), x.dtype.str)
    buffers = _patch_buffers.by_key
    size = math.prod(shape)
    if key not in buffers or buffers[key].size < size:
        buffers[key] = get_array_module(x).empty(size, dtype=x.dtype)
    return buffers[key][:size].reshape(shape)


def _unfold(x, kernel_size, stride, padding, fill=0.0):
    """Sliding-window patches (im2col) of x (..., H, W), padded with `fill`.

    Returns patches (KH, KW, ..., OH, OW) with
    patches[i, j, ..., h, w] = x_pad[..., s*h + i, s*w + j],
    in the thread's reused patch buffer, which the next call of _unfold or
    _shifted_rows overwrites (_patch_buffer).
    """
    xp = get_array_module(x)
    (KH, KW), (sh, sw), (ph, pw) = kernel_size, stride, padding
    *lead, H, W = x.shape
    OH, OW = _conv_out_size((H, W), kernel_size, stride, padding)
    if ph or pw:
        x_pad = xp.full((*lead, H + 2 * ph, W + 2 * pw), fill, dtype=x.dtype)
        x_pad[..., ph:ph + H, pw:pw + W] = x
    else:
        x_pad = x
    patches = _patch_buffer(x, (KH, KW, *lead, OH, OW))
    for i in range(KH):
        for j in range(KW):
            patches[i, j] = x_pad[..., i:i + sh * OH:sh, j:j + sw * OW:sw]
    return patches


def _fold(patches, size, stride, padding):
    """The adjoint of _unfold (col2im): add patches (KH, KW, ..., OH, OW) into
    zeros (..., H, W) at the positions _unfold copied them from; overlapping
    patches sum. size = (H, W), the unpadded size."""
    xp = get_array_module(patches)
    KH, KW, *lead, OH, OW = patches.shape
    (H, W), (sh, sw), (ph, pw) = size, stride, padding
    x_pad = xp.zeros((*lead, H + 2 * ph, W + 2 * pw), dtype=patches.dtype)
    for i in range(KH):
        for j in range(KW):
            x_pad[..., i:i + sh * OH:sh, j:j + sw * OW:sw] += patches[i, j]
    return x_pad[..., ph:ph + H, pw:pw + W]


def _check_images(op, x, weight=None, bias=None, channel_axis=1):
    """Clear errors for bad shapes and dtypes (the op name and all input
    shapes are added by Function.__call__)."""
    if x.ndim != 4:
        raise ValueError(f"{op} expects x of shape (N, C, H, W), got shape {x.shape}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op} needs floating-point x, got dtype {x.dtype}")
    if weight is None:
        return
    if weight.ndim != 4:
        raise ValueError(f"{op} expects a 4-D weight, got shape {weight.shape}")
    if weight.shape[channel_axis] != x.shape[1]:
        raise ValueError(f"{op}: x has {x.shape[1]} channels but weight {weight.shape} "
                         f"expects {weight.shape[channel_axis]} (axis {channel_axis})")
    out_channels = weight.shape[1 - channel_axis]
    if bias is not None and bias.shape != (out_channels,):
        raise ValueError(f"{op}: bias must have shape ({out_channels},), got {bias.shape}")
    dtypes = {a.dtype for a in (x, weight, bias) if a is not None}
    if len(dtypes) > 1:
        raise TypeError(f"{op}: x, weight and bias must share one dtype, got "
                        f"{', '.join(str(d) for d in sorted(dtypes, key=str))}")


def _check_output_size(op, out_size, x_shape, kernel_size):
    if min(out_size) < 1:
        raise ValueError(f"{op}: kernel {kernel_size} does not fit input {x_shape} "
                         f"(output size {out_size})")


# =============================================================================
# Same convolutions (stride 1, the image keeps its size): shifted rows
# =============================================================================
# A convolution with stride 1, an odd kernel and padding half of it, (KH // 2, KW // 2), keeps
# the image size: every 3x3 (padding 1) and 1x1 convolution of the U-Net. Lay the images of a
# batch chunk end to end, one flat row per channel: flat[c, q] with q = (n*H + h)*W + w.
# Kernel offset (i, j) reads pixel (h + di, w + dj), di = i - KH // 2, dj = j - KW // 2, which
# is flat[c, q + di*W + dj]: the row shifted by di*W + dj. Where (h + di, w + dj) falls outside
# the image, padding would give a zero but the shifted row holds a pixel of a neighbouring row
# or image, so those few rows and columns of each image are zeroed. Then
#     y[o, q] = sum_{c,i,j} W[o, c, i, j] shift_(di,dj)(flat)[c, q]
# with no padded copy of x and no product with padding. The sum over the KH*KW offsets can be
# split between the two sides of the matmul:
#   'input'   im2col: copy the KH*KW shifted rows of x, one matmul with K = KH*KW*C;
#   'columns' copy the KW column shifts of x, a matmul with KH*OC rows (one block per row
#             offset di), then add those blocks shifted by di*W.
# Copies grow with the input channels C, additions with the output channels OC (_split_for).
def _is_same(kernel_size, stride, padding):
    """Whether conv2d with these settings is a same convolution (the shifted-rows path)."""
    return stride == (1, 1) and all(k % 2 == 1 and p == k // 2 for k, p in zip(kernel_size, padding))


def _split_for(in_channels, out_channels):
    """Where a same convolution sums its kernel offsets. Measured on 2 cores (2026-12-04), batch 32 at 28x28:
    'input' for a first layer of few channels (1 -> 32: 0.84 ms against 1.41 for 'columns'),
    'columns' otherwise (32 -> 32: 4.3 ms against 5.0 for 'input'; 96 -> 32: 11.0 against 23.5)."""
    return "input" if out_channels >= 4 * in_channels else "columns"


def _kernel_offsets(kernel_size, split):
    """(input offsets, output offsets): the (di, dj) that a split copies on the input side of the
    matmul and adds on its output side; each kernel offset is one of each, summed."""
    KH, KW = kernel_size
    rows, columns = range(-(KH // 2), KH // 2 + 1), range(-(KW // 2), KW // 2 + 1)
    if split == "input":
        return [(di, dj) for di in rows for dj in columns], [(0, 0)]
    return [(0, dj) for dj in columns], [(di, 0) for di in rows]


def _split_weight(weight, split):
    """W (OC, C, KH, KW) as the matrix w_mat[(output offset, o), (input offset, c)]."""
    OC, C, KH, KW = weight.shape
    if split == "input":
        return weight.transpose(0, 2, 3, 1).reshape(OC, KH * KW * C)
    return weight.transpose(2, 0, 3, 1).reshape(KH * OC, KW * C)


def _channels_first(x):
    """x (n, C, H, W) -> flat (C, n*H*W): each channel's images end to end."""
    return x.transpose(1, 0, 2, 3).reshape(x.shape[1], -1)


def _overlap(shift, length):
    """Slices (to, from) of rows of `length` with to[q] = from[q + shift] wherever both exist."""
    start, kept = max(0, -shift), max(0, length - abs(shift))
    return slice(start, start + kept), slice(start + shift, start + shift + kept)


def _zero_outside(images, di, dj):
    """Zero the pixels of images (C, n, H, W) whose neighbour at offset (di, dj) is outside the image."""
    H, W = images.shape[2:]
    if di < 0:
        images[:, :, :-di] = 0
    elif di > 0:
        images[:, :, max(0, H - di):] = 0
    if dj < 0:
        images[..., :-dj] = 0
    elif dj > 0:
        images[..., max(0, W - dj):] = 0


def _shifted_rows(images, offsets):
    """rows[(a, c), (n, h, w)] = images[n, c, h + di, w + dj] for the offsets[a] = (di, dj), zero
    where that pixel is outside the image: im2col without padding, for images (n, C, H, W), in the
    reused patch buffer. Each image's pixels are shifted as one row of H*W, copied straight from
    images (no transposed copy first). For the single offset (0, 0): images channels first."""
    if offsets == [(0, 0)]:
        return _channels_first(images)
    n, C, H, W = images.shape
    rows = _patch_buffer(images, (len(offsets), C, n, H * W))
    pixels = images.reshape(n, C, H * W).transpose(1, 0, 2)  # (C, n, H*W), a view
    for a, (di, dj) in enumerate(offsets):
        to, source = _overlap(di * W + dj, H * W)
        rows[a, :, :, to] = pixels[:, :, source]
        _zero_outside(rows[a].reshape(C, n, H, W), di, dj)  # also every place the copy left out
    return rows.reshape(len(offsets) * C, n * H * W)


def _add_row_shifts(z, offsets, size):
    """y[o, q] = sum_b z[b, o, q + di_b*W] over the output offsets (di_b, 0), leaving out the terms
    whose row h + di_b is outside q's image; computed in place in the block of di = 0."""
    (H, W), (_, OC, L) = size, z.shape
    y = z[offsets.index((0, 0))]
    for b, (di, _) in enumerate(offsets):
        if di:
            # z[b, o, r] is only ever added at q = r - di*W: zero the rows of r where q is outside
            _zero_outside(z[b].reshape(OC, -1, H, W), -di, 0)
            to, source = _overlap(di * W, L)
            y[:, to] += z[b, :, source]
    return y


def _conv2d_same_array(x, weight, bias):
    """y = conv2d(x, W) + b for a same convolution, by shifted rows (see above)."""
    xp = get_array_module(x)
    N, C, H, W = x.shape
    OC = weight.shape[0]
    split = _split_for(C, OC)
    in_offsets, out_offsets = _kernel_offsets(weight.shape[2:], split)
    w_mat = _split_weight(weight, split)
    y = xp.empty((N, OC, H, W), dtype=x.dtype)

    def convolve(batch):
        rows = _shifted_rows(x[batch], in_offsets)
        y_flat = _add_row_shifts((w_mat @ rows).reshape(len(out_offsets), OC, -1), out_offsets, (H, W))
        if bias is not None:
            y_flat += bias[:, None]
        y[batch] = y_flat.reshape(OC, -1, H, W).transpose(1, 0, 2, 3)
    _each_chunk(x, max(len(in_offsets) * C, len(out_offsets) * OC) * H * W, convolve)
    return y


# =============================================================================
# Convolution: array-level computations, then the Functions that use them
# =============================================================================
def _conv2d_array(x, weight, bias, stride, padding):
    """y = conv2d(x, W) + b on arrays: one matmul per batch chunk (a same convolution: shifted rows)."""
    if _is_same(weight.shape[2:], stride, padding):
        return _conv2d_same_array(x, weight, bias)
    xp = get_array_module(x)
    N, C, H, W = x.shape
    OC, _, KH, KW = weight.shape
    OH, OW = _conv_out_size((H, W), (KH, KW), stride, padding)
    # rows of W_mat follow the rows of col: (i, j, c)
    w_mat = weight.transpose(0, 2, 3, 1).reshape(OC, KH * KW * C)
    y = xp.empty((N, OC, OH, OW), dtype=x.dtype)

    def convolve(batch):
        # col[(i, j, c), (n, h, w)] = x_pad[n, c, s*h + i, s*w + j]
        col = _unfold(x[batch].transpose(1, 0, 2, 3), (KH, KW), stride, padding)
        y_mat = w_mat @ col.reshape(KH * KW * C, -1)  # (OC, n*OH*OW)
        if bias is not None:
            y_mat += bias[:, None]
        y[batch] = y_mat.reshape(OC, -1, OH, OW).transpose(1, 0, 2, 3)
    _each_chunk(x, KH * KW * C * OH * OW, convolve)
    return y


def _conv_transpose2d_array(x, weight, bias, stride, padding, output_padding):
    """y = conv_transpose2d(x, W) + b on arrays: a matmul, then col2im."""
    xp = get_array_module(x)
    N, C_in, H, W = x.shape
    _, C_out, KH, KW = weight.shape
    out_size = _transpose_out_size((H, W), (KH, KW), stride, padding, output_padding)
    # col[(i, j, d), (n, h, w)] = sum_c W[c, d, i, j] x[n, c, h, w]
    w_mat = weight.transpose(2, 3, 1, 0).reshape(KH * KW * C_out, C_in)
    y = xp.empty((N, C_out, *out_size), dtype=x.dtype)

    def convolve(batch):
        x_mat = x[batch].transpose(1, 0, 2, 3).reshape(C_in, -1)  # (C_in, n*H*W)
        col = (w_mat @ x_mat).reshape(KH, KW, C_out, -1, H, W)
        y_chunk = _fold(col, out_size, stride, padding)  # (C_out, n, OH, OW)
        if bias is not None:
            y_chunk += bias[:, None, None, None]
        y[batch] = y_chunk.transpose(1, 0, 2, 3)
    _each_chunk(x, KH * KW * C_out * H * W, convolve)
    return y


def _conv2d_grad_weight_array(x, gy, kernel_size, stride, padding):
    """gW[o, c, i, j] = sum_{n,h,w} gy[n, o, h, w] x_pad[n, c, s*h + i, s*w + j] on arrays:
    the patches of x (shifted rows for a same convolution, else im2col) times gy."""
    xp = get_array_module(x)
    N, C, H, W = x.shape
    OC = gy.shape[1]
    KH, KW = kernel_size
    OH, OW = gy.shape[2:]
    same = _is_same(kernel_size, stride, padding)
    offsets = _kernel_offsets(kernel_size, "input")[0] if same else None

    def chunk_sum(batch):
        if same:  # col[(i, j, c), (n, h, w)] = x[n, c, h + di, w + dj], zero outside the image
            col = _shifted_rows(x[batch], offsets)
        else:     # col[(i, j, c), (n, h, w)] = x_pad[n, c, s*h + i, s*w + j]
            col = _unfold(x[batch].transpose(1, 0, 2, 3), kernel_size, stride, padding).reshape(KH * KW * C, -1)
        return col @ _channels_first(gy[batch]).T
    gw_mat = _sum_in_order(_each_chunk(x, KH * KW * C * OH * OW, chunk_sum), (KH * KW * C, OC), x)
    return xp.ascontiguousarray(gw_mat.reshape(KH, KW, C, OC).transpose(3, 2, 0, 1))


def _conv2d_grads_same(x, weight, gy):
    """(gx, gW) of a same convolution from one set of shifted rows, those of gy (the hot path of
    backward). dL/dx is a same convolution of gy with the kernel mirrored, and dL/dW reads the
    same rows: with d = (di, dj) the offset of kernel entry (i, j) and q a pixel,
        gx[c, q] = sum_{o,i,j} W[o, c, i, j] gy[o, q - d]
        gW[o, c, i, j] = sum_q gy[o, q - d] x[c, q]
    (gy taken as zero outside the image).
    """
    xp = get_array_module(x)
    N, C, H, W = x.shape
    OC, _, KH, KW = weight.shape
    mirrored = [(-di, -dj) for di, dj in _kernel_offsets((KH, KW), "input")[0]]
    w_t = weight.transpose(1, 2, 3, 0).reshape(C, KH * KW * OC)  # w_t[c, (i, j, o)] = W[o, c, i, j]
    gx = xp.empty_like(x)

    def gradients(batch):  # gx of the chunk, and its part of gW's sum
        col = _shifted_rows(gy[batch], mirrored)  # col[(i, j, o), q] = gy[o, q - d]
        gx[batch] = (w_t @ col).reshape(C, -1, H, W).transpose(1, 0, 2, 3)
        return col @ _channels_first(x[batch]).T
    gw_mat = _sum_in_order(_each_chunk(x, KH * KW * OC * H * W, gradients), (KH * KW * OC, C), x)
    return gx, xp.ascontiguousarray(gw_mat.reshape(KH, KW, OC, C).transpose(2, 3, 0, 1))


class Conv2d(Function):
    """y = conv2d(x, W) + b. x (N, C, H, W), W (OC, C, KH, KW), b (OC,) -> y (N, OC, OH, OW)."""

    def __init__(self, stride, padding):
        self.stride, self.padding = stride, padding

    def forward(self, x, weight, bias=None):
        _check_images("conv2d", x, weight, bias, channel_axis=1)
        out_size = _conv_out_size(x.shape[2:], weight.shape[2:], self.stride, self.padding)
        _check_output_size("conv2d", out_size, x.shape, weight.shape[2:])
        return _conv2d_array(x, weight, bias, self.stride, self.padding)

    def backward(self, gy):
        x, weight = self.inputs[:2]
        if x.requires_grad:
            gx, gw = Conv2dGrad(self.stride, self.padding)(x, weight, gy)
        else:  # x is data (a network's first layer): its gradient would be thrown away
            gx, gw = None, conv2d_grad_weight(x, gy, weight.shape[2:], self.stride, self.padding)
        if len(self.inputs) == 2:
            return gx, gw
        return gx, gw, gy.sum(axis=(0, 2, 3))  # dL/db[o] = sum_{n,h,w} gy[n, o, h, w]


class Conv2dGrad(Function):
    """Both gradients of conv2d in one op: (x, W, gy) -> (gx, gW) with
        gx = conv_transpose2d(gy, W),   gW = conv2d_grad_weight(x, gy).
    A same convolution (stride 1, padding half the odd kernel: the common case) shares one set of
    shifted rows, those of gy, between the two, unless gy has at least 4 times as many channels as
    x: then the rows of x for gW and folding gx back (the general path) copy less (a first layer
    1 -> 32 or 64 channels)."""

    def __init__(self, stride, padding):
        self.stride, self.padding = stride, padding

    def forward(self, x, weight, gy):
        kernel_size = weight.shape[2:]
        if _is_same(kernel_size, self.stride, self.padding) and gy.shape[1] < 4 * x.shape[1]:
            return _conv2d_grads_same(x, weight, gy)
        output_padding = _output_padding(x.shape[2:], gy.shape[2:], kernel_size, self.stride, self.padding)
        gx = _conv_transpose2d_array(gy, weight, None, self.stride, self.padding, output_padding)
        gw = _conv2d_grad_weight_array(x, gy, kernel_size, self.stride, self.padding)
        return gx, gw

    def backward(self, ggx, ggw):
        # the gradients of this op's inputs (x, W, gy), given those of its outputs (ggx, ggw)
        x, weight, gy = self.inputs
        s, p = self.stride, self.padding
        g_x = g_weight = g_gy = None
        if ggx is not None:  # gx = conv_transpose2d(gy, W) is linear in gy and in W
            g_weight = conv2d_grad_weight(ggx, gy, weight.shape[2:], s, p)
            g_gy = conv2d(ggx, weight, None, s, p)
        if ggw is not None:  # gW = conv2d_grad_weight(x, gy) is linear in x and in gy
            output_padding = _output_padding(x.shape[2:], gy.shape[2:], weight.shape[2:], s, p)
            g_x = conv_transpose2d(gy, ggw, None, s, p, output_padding)
            g_gy_from_w = conv2d(x, ggw, None, s, p)
            g_gy = g_gy_from_w if g_gy is None else g_gy + g_gy_from_w
        return g_x, g_weight, g_gy


class Conv2dGradWeight(Function):
    """dL/dW of conv2d: gW[o, c, i, j] = sum_{n,h,w} gy[n, o, h, w] * x_pad[n, c, s*h + i, s*w + j].

    x (N, C, H, W), gy (N, OC, OH, OW) -> gW (OC, C, KH, KW).
    """

    def __init__(self, kernel_size, stride, padding):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x, gy):
        _check_images("conv2d_grad_weight", x)
        out_size = _conv_out_size(x.shape[2:], self.kernel_size, self.stride, self.padding)
        if gy.ndim != 4 or gy.shape[0] != x.shape[0] or gy.shape[2:] != out_size:
            raise ValueError(f"conv2d_grad_weight: gy must have shape ({x.shape[0]}, OC, {out_size[0]}, "
                             f"{out_size[1]}) for x {x.shape} and kernel {self.kernel_size}, got {gy.shape}")
        if gy.dtype != x.dtype:
            raise TypeError(f"conv2d_grad_weight: x and gy must share one dtype, got {x.dtype} and {gy.dtype}")
        return _conv2d_grad_weight_array(x, gy, self.kernel_size, self.stride, self.padding)

    def backward(self, ggw):
        x, gy = self.inputs
        # gW is bilinear in (x, gy): each partial derivative is the other convolution
        output_padding = _output_padding(x.shape[2:], gy.shape[2:], self.kernel_size, self.stride, self.padding)
        g_x = conv_transpose2d(gy, ggw, None, self.stride, self.padding, output_padding)
        g_gy = conv2d(x, ggw, None, self.stride, self.padding)
        return g_x, g_gy


class ConvTranspose2d(Function):
    """The adjoint of conv2d in x (also called fractionally strided convolution).

    x (N, C_in, H, W), W (C_in, C_out, KH, KW), b (C_out,) -> y (N, C_out, OH, OW),
    OH = (H - 1)*s - 2p + KH + output_padding:

        y_pad[n, d, s*h + i, s*w + j] += sum_c x[n, c, h, w] * W[c, d, i, j]
    """

    def __init__(self, stride, padding, output_padding):
        self.stride, self.padding, self.output_padding = stride, padding, output_padding

    def forward(self, x, weight, bias=None):
        _check_images("conv_transpose2d", x, weight, bias, channel_axis=0)
        out_size = _transpose_out_size(x.shape[2:], weight.shape[2:], self.stride, self.padding,
                                       self.output_padding)
        _check_output_size("conv_transpose2d", out_size, x.shape, weight.shape[2:])
        return _conv_transpose2d_array(x, weight, bias, self.stride, self.padding, self.output_padding)

    def backward(self, gy):
        x, weight = self.inputs[:2]
        gx = conv2d(gy, weight, None, self.stride, self.padding)
        # y is conv2d's input gradient; its weight gradient swaps the roles of x and gy
        gw = conv2d_grad_weight(gy, x, weight.shape[2:], self.stride, self.padding)
        if len(self.inputs) == 2:
            return gx, gw
        return gx, gw, gy.sum(axis=(0, 2, 3))


def _output_padding(x_size, y_size, kernel_size, stride, padding):
    """The output_padding that makes conv_transpose2d map y_size back to x_size
    (conv2d's floor division can drop up to stride - 1 rows and columns)."""
    no_extra = _transpose_out_size(y_size, kernel_size, stride, padding, (0, 0))
    return tuple(n - m for n, m in zip(x_size, no_extra))


def conv2d(x, weight, bias=None, stride=1, padding=0):
    """2-D convolution (cross-correlation, as in PyTorch).

    x (N, C, H, W), weight (OC, C, KH, KW), bias (OC,) or None
    -> (N, OC, OH, OW) with OH = (H + 2*padding - KH) // stride + 1.
    stride and padding: int or (height, width) pair; padding adds zeros.
    """
    conv = Conv2d(size_pair("conv2d", "stride", stride, at_least=1), size_pair("conv2d", "padding", padding))
    return conv(x, weight) if bias is None else conv(x, weight, bias)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0):
    """Transposed convolution, the gradient of conv2d with respect to its input.

    x (N, C_in, H, W), weight (C_in, C_out, KH, KW) as in PyTorch, bias (C_out,)
    -> (N, C_out, OH, OW), OH = (H - 1)*stride - 2*padding + KH + output_padding.
    With stride 2, a 4x4 kernel and padding 1 it doubles the image size (learned upsampling,
    as in the DCGAN generator): (H - 1) 2 - 2 + 4 = 2H.
    """
    stride = size_pair("conv_transpose2d", "stride", stride, at_least=1)
    padding = size_pair("conv_transpose2d", "padding", padding)
    output_padding = size_pair("conv_transpose2d", "output_padding", output_padding)
    if output_padding[0] >= stride[0] or output_padding[1] >= stride[1]:
        raise ValueError(f"conv_transpose2d: output_padding {output_padding} must be smaller "
                         f"than stride {stride}")
    conv = ConvTranspose2d(stride, padding, output_padding)
    return conv(x, weight) if bias is None else conv(x, weight, bias)


def conv2d_grad_weight(x, gy, kernel_size, stride=1, padding=0):
    """The weight gradient of conv2d(x, W, stride, padding) for output gradient gy.

    x (N, C, H, W), gy (N, OC, OH, OW) -> (OC, C, KH, KW).
    """
    op = "conv2d_grad_weight"
    return Conv2dGradWeight(size_pair(op, "kernel_size", kernel_size, at_least=1),
                            size_pair(op, "stride", stride, at_least=1), size_pair(op, "padding", padding))(x, gy)


# =============================================================================
# Pooling
# =============================================================================
class _Pool2d(Function):
    """Geometry shared by the pooling ops and their gradients."""

    def __init__(self, kernel_size, stride, padding, x_size):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.x_size = x_size  # (H, W) of the pooled input

    @property
    def geometry(self):
        """The constructor's arguments: what the gradient ops are built with."""
        return self.kernel_size, self.stride, self.padding, self.x_size


class _MaxPoolMask(_Pool2d):
    """Geometry plus the one-hot mask of the maxima MaxPool2d chose (its gradient ops)."""

    def __init__(self, chosen, *geometry):
        super().__init__(*geometry)
        self.chosen = chosen


class MaxPool2d(_Pool2d):
    """y[n, c, h, w] = max over the window at (s*h, s*w) of x padded with -inf.
    The gradient goes to the first maximum of each window (row-major order)."""

    def forward(self, x):
        _check_images("max_pool2d", x)
        patches = _unfold(x, self.kernel_size, self.stride, self.padding, fill=-self.xp.inf)
        patches = patches.reshape(len(patches) * patches.shape[1], *patches.shape[2:])  # (KH*KW, N, C, OH, OW)
        y = patches.max(axis=0)
        self.chosen = _first_maximum(patches, y)
        return y

    def backward(self, gy):
        return MaxPool2dGrad(self.chosen, *self.geometry)(gy)


def _first_maximum(patches, y):
    """One-hot mask (KH*KW, N, C, OH, OW) of the first window offset k with patches[k] == y:
    with ties (a window of zeros after a ReLU), the gradient goes to one element, as in PyTorch.
    (A window holding NaN has y = NaN, equal to nothing: it passes no gradient. A window whose
    values are all -inf ties with its -inf padding: where a padded cell comes first, its gradient
    is lost, while PyTorch gives it to the first real element.)"""
    chosen = patches == y[None]           # every maximum of its window
    seen = chosen[0].copy()               # some earlier offset was a maximum
    for k in range(1, len(chosen)):
        chosen[k] &= ~seen
        seen |= chosen[k]
    return chosen


class MaxPool2dGrad(_MaxPoolMask):
    """Scatter gy (N, C, OH, OW) to the chosen maximum of each window -> gx (N, C, H, W)."""

    def forward(self, gy):
        (KH, KW), (sh, sw) = self.kernel_size, self.stride
        if sh < KH or sw < KW:  # overlapping windows: an input can collect gradient from several
            patches = self.chosen * gy[None]  # gy at the chosen offset, 0 at the others
            return _fold(patches.reshape(KH, KW, *gy.shape), self.x_size, self.stride, self.padding)
        # windows that do not overlap (the usual 2x2, stride 2): each input gets the gradient of at
        # most one window, so each offset's share is written in place, once (2x faster than _fold, 2026-12-02)
        (H, W), (ph, pw), (OH, OW) = self.x_size, self.padding, gy.shape[2:]
        tiled = (sh, sw, ph, pw, H, W) == (KH, KW, 0, 0, OH * KH, OW * KW)  # every input in a window
        gx_pad = (self.xp.empty if tiled else self.xp.zeros)((*gy.shape[:2], H + 2 * ph, W + 2 * pw), gy.dtype)
        for i in range(KH):
            for j in range(KW):
                self.xp.multiply(self.chosen[i * KW + j], gy, out=gx_pad[..., i:i + sh * OH:sh, j:j + sw * OW:sw])
        return gx_pad[..., ph:ph + H, pw:pw + W]

    def backward(self, ggx):
        return MaxPool2dSelect(self.chosen, *self.geometry)(ggx)


class MaxPool2dSelect(_MaxPoolMask):
    """Pick from every window of a (N, C, H, W) the element max pooling chose
    (the adjoint of MaxPool2dGrad, used for double backprop)."""

    def forward(self, a):
        patches = _unfold(a, self.kernel_size, self.stride, self.padding)
        patches = patches.reshape(len(patches) * patches.shape[1], *patches.shape[2:])
        return (patches * self.chosen).sum(axis=0)

    def backward(self, gy):
        return MaxPool2dGrad(self.chosen, *self.geometry)(gy)


class AvgPool2d(_Pool2d):
    """y[n, c, h, w] = mean over the KH x KW window at (s*h, s*w) of x padded
    with zeros; padded zeros count (PyTorch's count_include_pad=True)."""

    def forward(self, x):
        _check_images("avg_pool2d", x)
        patches = _unfold(x, self.kernel_size, self.stride, self.padding)
        return patches.sum(axis=(0, 1)) / (self.kernel_size[0] * self.kernel_size[1])

    def backward(self, gy):
        return AvgPool2dGrad(*self.geometry)(gy)


class AvgPool2dGrad(_Pool2d):
    """Spread gy (N, C, OH, OW) evenly over each window: gx += gy / (KH*KW)."""

    def forward(self, gy):
        share = gy / (self.kernel_size[0] * self.kernel_size[1])
        patches = self.xp.broadcast_to(share, (*self.kernel_size, *gy.shape))
        return _fold(patches, self.x_size, self.stride, self.padding)

    def backward(self, ggx):
        return AvgPool2d(*self.geometry)(ggx)


def _pool_geometry(op, x, kernel_size, stride, padding):
    kernel_size = size_pair(op, "kernel_size", kernel_size, at_least=1)
    stride = kernel_size if stride is None else size_pair(op, "stride", stride, at_least=1)
    padding = size_pair(op, "padding", padding)
    if padding[0] > kernel_size[0] // 2 or padding[1] > kernel_size[1] // 2:
        raise ValueError(f"{op}: padding {padding} must be at most half the kernel size {kernel_size}")
    if x.ndim != 4:
        raise ValueError(f"{op} expects x of shape (N, C, H, W), got shape {x.shape}")
    _check_output_size(op, _conv_out_size(x.shape[2:], kernel_size, stride, padding), x.shape, kernel_size)
    return kernel_size, stride, padding, tuple(x.shape[2:])


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Max over kernel_size windows. x (N, C, H, W) -> (N, C, OH, OW),
    OH = (H + 2*padding - KH) // stride + 1; stride defaults to kernel_size. The gradient goes to
    the first maximum of each window (row by row), as in PyTorch; a window holding NaN gives NaN
    and passes no gradient (PyTorch sends it to the NaN)."""
    return MaxPool2d(*_pool_geometry("max_pool2d", x, kernel_size, stride, padding))(x)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Mean over kernel_size windows (zero padding counts). x (N, C, H, W) ->
    (N, C, OH, OW); stride defaults to kernel_size."""
    return AvgPool2d(*_pool_geometry("avg_pool2d", x, kernel_size, stride, padding))(x)


# =============================================================================
# Resizing
# =============================================================================
class Resize2d(Function):
    """y[n, c] = A_h @ x[n, c] @ A_w^T for fixed interpolation matrices
    A_h (OH, H) and A_w (OW, W). Linear in x, so dL/dx = A_h^T @ gy @ A_w."""

    def __init__(self, matrix_h, matrix_w):
        self.matrix_h, self.matrix_w = matrix_h, matrix_w

    def forward(self, x):
        N, C, H, W = x.shape
        # all rows of an image in one product, (C*H, W) @ (W, OW): N products instead of the
        # N*C small ones of a 4-D x @ A_w^T (1.3-2.3x slower here, 2026-12-02); the reshape is a view even when x
        # is a channel slice (as the gradients that concatenate hands back are)
        rows_resized = (x.reshape(N, C * H, W) @ self.matrix_w.T).reshape(N, C, H, len(self.matrix_w))  # (N, C, H, OW)
        return self.matrix_h @ rows_resized  # (N, C, OH, OW): A_h times each (H, OW) image

    def backward(self, gy):
        xp = self.xp  # the transposed matrices made contiguous (tiny): faster products
        return Resize2d(xp.ascontiguousarray(self.matrix_h.T), xp.ascontiguousarray(self.matrix_w.T))(gy)


def _interpolation_matrix(in_size, scale_factor, mode, xp, dtype):
    """A (in_size * scale_factor, in_size) such that A @ v resizes v as PyTorch's
    F.interpolate(mode, align_corners=False) does along one axis."""
    out_size = in_size * scale_factor
    dst = xp.arange(out_size)
    if mode == "nearest":
        # source index = floor(dst / scale)
        lower, upper, upper_weight = dst // scale_factor, dst // scale_factor, xp.zeros(out_size)
    else:
        # pixel centres line up: src = (dst + 0.5) / scale - 0.5, clamped at 0,
        # then linear interpolation between the neighbours floor(src) and floor(src) + 1
        src = xp.maximum((dst + 0.5) / scale_factor - 0.5, 0.0)
        lower = xp.floor(src).astype(dst.dtype)
        upper = xp.minimum(lower + 1, in_size - 1)
        upper_weight = src - lower
    columns = xp.arange(in_size)[None, :]
    matrix = ((1 - upper_weight)[:, None] * (columns == lower[:, None])
              + upper_weight[:, None] * (columns == upper[:, None]))
    return matrix.astype(dtype)


def upsample(x, scale_factor=2, mode="nearest"):
    """Enlarge images by an integer factor. x (N, C, H, W) -> (N, C, H*s, W*s).

    mode 'nearest' repeats pixels; 'bilinear' interpolates between the four
    nearest pixel centres. Values match PyTorch's F.interpolate(x,
    scale_factor=s, mode=mode) (align_corners=False).
    """
    if mode not in ("nearest", "bilinear"):
        raise ValueError(f"upsample: mode must be 'nearest' or 'bilinear', got {mode!r}")
    if not isinstance(scale_factor, numbers.Integral) or isinstance(scale_factor, bool) or scale_factor < 1:
        raise ValueError(f"upsample: scale_factor must be a positive int, got {scale_factor!r}")
    if x.ndim != 4:
        raise ValueError(f"upsample expects x of shape (N, C, H, W), got shape {x.shape}")
    if x.dtype.kind != "f":
        raise TypeError(f"upsample needs floating-point x, got dtype {x.dtype}")
    xp = get_array_module(x)
    H, W = x.shape[2:]
    matrix_h = _interpolation_matrix(H, scale_factor, mode, xp, x.dtype)
    matrix_w = _interpolation_matrix(W, scale_factor, mode, xp, x.dtype)
    return Resize2d(matrix_h, matrix_w)(x)
