"""Convolution, pooling and resizing (zero/functions/conv.py).

Every op is checked four ways: values against a plain-loop NumPy reference
(one output pixel at a time), backward against central-difference numerical
gradients in float64 with hypothesis-drawn shapes, strides and paddings, the
same computation on the strict device (no silent host copies), and, when
PyTorch is installed, values and gradients against torch.nn.functional.
"""
import re

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import zero.functions as F
import zero.functions.conv as conv_module
from zero import Variable
from zero.utils import gradient_check

from conftest import assert_double_backprop_on_strict_matches_cpu, host, on, second_order_check

SETTINGS = settings(max_examples=20, deadline=None)
seeds = st.integers(0, 2**31 - 1)


# =============================================================================
# Plain-loop references (float64, one output pixel at a time)
# =============================================================================
def pad_hw(x, padding, value=0.0):
    ph, pw = padding
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def ref_conv2d(x, w, b, stride, padding):
    (sh, sw), (KH, KW) = stride, w.shape[2:]
    x_pad = pad_hw(x, padding)
    OH = (x_pad.shape[2] - KH) // sh + 1
    OW = (x_pad.shape[3] - KW) // sw + 1
    y = np.zeros((x.shape[0], w.shape[0], OH, OW))
    for h in range(OH):
        for v in range(OW):
            patch = x_pad[:, :, h * sh:h * sh + KH, v * sw:v * sw + KW]  # (N, C, KH, KW)
            y[:, :, h, v] = np.einsum("ncij,ocij->no", patch, w)
    return y if b is None else y + b[None, :, None, None]


def ref_conv_transpose2d(x, w, b, stride, padding, output_padding):
    (sh, sw), (ph, pw), (KH, KW) = stride, padding, w.shape[2:]
    N, _, H, W = x.shape
    OH = (H - 1) * sh - 2 * ph + KH + output_padding[0]
    OW = (W - 1) * sw - 2 * pw + KW + output_padding[1]
    y_pad = np.zeros((N, w.shape[1], OH + 2 * ph, OW + 2 * pw))
    for h in range(H):
        for v in range(W):
            # each input pixel paints a weighted copy of the kernel
            y_pad[:, :, h * sh:h * sh + KH, v * sw:v * sw + KW] += np.einsum("nc,cdij->ndij", x[:, :, h, v], w)
    y = y_pad[:, :, ph:ph + OH, pw:pw + OW]
    return y if b is None else y + b[None, :, None, None]


def ref_pool(x, kernel, stride, padding, reduce, fill):
    (KH, KW), (sh, sw) = kernel, stride
    x_pad = pad_hw(x, padding, fill)
    OH = (x_pad.shape[2] - KH) // sh + 1
    OW = (x_pad.shape[3] - KW) // sw + 1
    y = np.zeros(x.shape[:2] + (OH, OW))
    for h in range(OH):
        for v in range(OW):
            y[:, :, h, v] = reduce(x_pad[:, :, h * sh:h * sh + KH, v * sw:v * sw + KW], axis=(2, 3))
    return y


def ref_upsample(x, scale, mode):
    N, C, H, W = x.shape
    y = np.zeros((N, C, H * scale, W * scale))
    for h in range(H * scale):
        for v in range(W * scale):
            if mode == "nearest":
                y[:, :, h, v] = x[:, :, h // scale, v // scale]
                continue
            src_h = max((h + 0.5) / scale - 0.5, 0.0)
            src_w = max((v + 0.5) / scale - 0.5, 0.0)
            h0, w0 = int(src_h), int(src_w)
            h1, w1 = min(h0 + 1, H - 1), min(w0 + 1, W - 1)
            a, c = src_h - h0, src_w - w0
            y[:, :, h, v] = ((1 - a) * ((1 - c) * x[:, :, h0, w0] + c * x[:, :, h0, w1])
                             + a * ((1 - c) * x[:, :, h1, w0] + c * x[:, :, h1, w1]))
    return y


# =============================================================================
# Hypothesis geometry
# =============================================================================
@st.composite
def conv_cases(draw, max_padding=2):
    """(x shape, weight shape, stride, padding): output at least 1x1."""
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, max_padding)), draw(st.integers(0, max_padding)))
    size = tuple(draw(st.integers(max(1, k - 2 * p), k + 3)) for k, p in zip(kernel, padding))
    # oc up to 4: with c = 1, stride-1 backward takes the path for outputs much wider than inputs
    n, c, oc = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    return (n, c, *size), (oc, c, *kernel), stride, padding


@st.composite
def same_cases(draw):
    """(x shape, weight shape, stride, padding) of a same convolution (stride 1, odd kernel,
    padding half of it: the output keeps the image size), images as small as one pixel."""
    kernel = (draw(st.sampled_from([1, 3, 5, 7])), draw(st.sampled_from([1, 3, 5, 7])))
    size = (draw(st.integers(1, 7)), draw(st.integers(1, 7)))
    n, c, oc = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    return (n, c, *size), (oc, c, *kernel), (1, 1), (kernel[0] // 2, kernel[1] // 2)


@st.composite
def pool_cases(draw):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    size = tuple(draw(st.integers(max(1, k - 2 * p), k + 4)) for k, p in zip(kernel, padding))
    return (draw(st.integers(1, 2)), draw(st.integers(1, 2)), *size), kernel, stride, padding


def distinct(rng, shape):
    """Values at least 0.05 apart: max pooling has no ties to blur a numerical gradient."""
    size = int(np.prod(shape))
    return (rng.permutation(size) * 0.1 + rng.uniform(0, 0.05, size)).reshape(shape) - size * 0.05


def run(f, arrays, device="cpu", output_grad_seed=0):
    """f(*Variables) on device with a random output gradient; returns (y, grads) on the host."""
    variables = [Variable(on(device, a)) for a in arrays]
    y = f(*variables)
    gy = np.random.default_rng(output_grad_seed).standard_normal(y.shape)
    y.backward()
    variables = [Variable(on(device, a)) for a in arrays]
    y = f(*variables)
    (y * Variable(on(device, gy))).sum().backward()
    assert y.device == device
    assert all(v.grad.device == device for v in variables)
    return host(y.data), [host(v.grad.data) for v in variables], gy


def assert_strict_device_matches_cpu(f, arrays, output_grad_seed=0):
    """f's output and input gradients on the strict test device equal those on the CPU
    (run() with the same output gradient on both); returns the CPU output."""
    y_cpu, grads_cpu, _ = run(f, arrays, "cpu", output_grad_seed)
    y_dev, grads_dev, _ = run(f, arrays, "strict", output_grad_seed)
    np.testing.assert_allclose(y_dev, y_cpu, rtol=1e-12, atol=1e-12)
    for g_dev, g_cpu in zip(grads_dev, grads_cpu):
        np.testing.assert_allclose(g_dev, g_cpu, rtol=1e-12, atol=1e-12)
    return y_cpu


# =============================================================================
# conv2d
# =============================================================================
@SETTINGS
@given(case=conv_cases(), seed=seeds, with_bias=st.booleans())
def test_conv2d_values_match_loop_reference(case, seed, with_bias):
    x_shape, w_shape, stride, padding = case
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    y = F.conv2d(x, w, b if with_bias else None, stride, padding)
    np.testing.assert_allclose(y.data, ref_conv2d(x, w, b if with_bias else None, stride, padding),
                               rtol=1e-10, atol=1e-10)


@SETTINGS
@given(case=conv_cases(), seed=seeds)
def test_conv2d_gradients_match_numerical(case, seed):
    x_shape, w_shape, stride, padding = case
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    gy = Variable(rng.standard_normal(F.conv2d(x, w, b, stride, padding).shape))
    gradient_check(lambda x, w, b: (F.conv2d(x, w, b, stride, padding) * gy).sum(), x, w, b)


@settings(max_examples=20, deadline=None)
@given(case=conv_cases(), seed=seeds)
def test_conv2d_on_data_input_gives_the_same_weight_gradient(case, seed):
    """With x a constant (a batch of data: a network's first layer) backward skips dL/dx and
    computes dL/dW from the patches of x alone; W's and b's gradients must not change."""
    x_shape, w_shape, stride, padding = case
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    gy = rng.standard_normal(F.conv2d(x, w, b, stride, padding).shape)
    grads = {}
    for x_is_data in (True, False):
        x_in = x if x_is_data else Variable(x)
        weight, bias = Variable(w), Variable(b)
        (F.conv2d(x_in, weight, bias, stride, padding) * Variable(gy)).sum().backward()
        grads[x_is_data] = (weight.grad.data, bias.grad.data)
        assert x_is_data or x_in.grad is not None
    for data_grad, variable_grad in zip(grads[True], grads[False]):
        np.testing.assert_allclose(data_grad, variable_grad, rtol=1e-10, atol=1e-10)


@settings(max_examples=8, deadline=None)
@given(case=conv_cases(), seed=seeds)
def test_conv2d_on_strict_device_matches_cpu(case, seed):
    x_shape, w_shape, stride, padding = case
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])]
    f = lambda x, w, b: F.conv2d(x, w, b, stride, padding)  # noqa: E731
    assert_strict_device_matches_cpu(f, arrays, seed)


@pytest.mark.parametrize("split", ["input", "columns"])
@settings(max_examples=25, deadline=None)
@given(case=same_cases(), seed=seeds)
@example(case=((3, 2, 2, 3), (3, 2, 7, 5), (1, 1), (3, 2)), seed=1)  # kernel taller and wider than the images
def test_same_conv2d_with_each_split_of_the_kernel_offsets(split, case, seed):
    """A same convolution sums its kernel offsets on the input side of the matmul (im2col of
    shifted rows) or columns on one side and rows on the other (_split_for picks by the channel
    counts): force each one and check values, both gradients and the strict device, on images
    down to one pixel, where every shifted row leaves the image."""
    assert conv_module._is_same(case[1][2:], case[2], case[3])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv_module, "_split_for", lambda in_channels, out_channels: split)
        check_stride1_conv2d(case, seed)


@settings(max_examples=20, deadline=None)
@given(case=same_cases(), seed=seeds)
def test_same_conv2d_weight_gradient_on_data_input(case, seed):
    """A same convolution of data (a first layer) takes dL/dW from the shifted rows of x alone."""
    x_shape, w_shape, stride, padding = case
    rng = np.random.default_rng(seed)
    x, w, gy = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(
        (x_shape[0], w_shape[0], *x_shape[2:]))
    weight = Variable(w)
    (F.conv2d(x, weight, None, stride, padding) * Variable(gy)).sum().backward()
    expected = np.einsum("nohw,ncijhw->ocij", gy, patches_of(x, w_shape[2:], padding))
    np.testing.assert_allclose(weight.grad.data, expected, rtol=1e-10, atol=1e-10)


def patches_of(x, kernel_size, padding):
    """p[n, c, i, j, h, w] = x_pad[n, c, h + i, w + j] for a stride-1 convolution's output pixels."""
    (KH, KW), x_pad = kernel_size, pad_hw(x, padding)
    OH, OW = x_pad.shape[2] - KH + 1, x_pad.shape[3] - KW + 1
    return np.stack([np.stack([x_pad[:, :, i:i + OH, j:j + OW] for j in range(KW)], 2) for i in range(KH)], 2)


def test_is_same_means_stride_1_and_padding_half_an_odd_kernel():
    assert conv_module._is_same((3, 3), (1, 1), (1, 1))
    assert conv_module._is_same((1, 1), (1, 1), (0, 0))
    assert conv_module._is_same((3, 5), (1, 1), (1, 2))
    assert not conv_module._is_same((3, 3), (1, 1), (0, 0))   # the output shrinks
    assert not conv_module._is_same((3, 3), (1, 1), (2, 2))   # the output grows
    assert not conv_module._is_same((3, 3), (2, 1), (1, 1))
    assert not conv_module._is_same((2, 2), (1, 1), (1, 1))   # no centre pixel


def test_split_for_follows_the_channel_counts():
    assert conv_module._split_for(1, 32) == "input"      # a first layer: copies of 1 channel are cheap
    assert conv_module._split_for(3, 32) == "input"
    assert conv_module._split_for(32, 32) == "columns"
    assert conv_module._split_for(32, 64) == "columns"
    assert conv_module._split_for(96, 32) == "columns"   # a decoder block after a skip concat


@pytest.mark.parametrize("split", ["input", "columns"])
def test_a_same_conv2d_takes_the_split_that_split_for_chooses_from_its_channel_counts(monkeypatch, split):
    """The forced-split tests patch _split_for: they test both splits only if a same convolution
    asks it, with (C, OC), and computes with its answer; other convolutions take im2col without asking."""
    asked, used = [], []
    split_weight = conv_module._split_weight
    monkeypatch.setattr(conv_module, "_split_for", lambda c, oc: asked.append((c, oc)) or split)
    monkeypatch.setattr(conv_module, "_split_weight", lambda w, chosen: used.append(chosen) or split_weight(w, chosen))
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 2, 4, 5)), rng.standard_normal((5, 2, 3, 1))
    np.testing.assert_allclose(F.conv2d(x, w, None, 1, (1, 0)).data, ref_conv2d(x, w, None, (1, 1), (1, 0)),
                               rtol=1e-10, atol=1e-10)
    assert asked == [(2, 5)] and used == [split]
    F.conv2d(x, w, None, (1, 2), (1, 0))   # strided
    F.conv2d(x, w, None, 1, (0, 0))        # stride 1, but the output shrinks
    assert asked == [(2, 5)] and used == [split]


def test_a_same_conv2d_backward_shares_the_shifted_rows_of_gy(monkeypatch):
    """Backward takes the shared shifted rows for a same convolution whose output has fewer than 4x
    its input's channels, and the general path (x's rows for dL/dW, col2im for dL/dx) otherwise."""
    calls = []
    shared = conv_module._conv2d_grads_same
    monkeypatch.setattr(conv_module, "_conv2d_grads_same", lambda x, w, gy: calls.append(w.shape) or shared(x, w, gy))
    rng = np.random.default_rng(5)
    for w_shape, padding in [((3, 2, 3, 3), 1), ((8, 2, 3, 3), 1), ((3, 2, 3, 3), 0), ((3, 2, 1, 1), 0)]:
        x, weight = Variable(rng.standard_normal((2, 2, 5, 4))), Variable(rng.standard_normal(w_shape))
        F.conv2d(x, weight, None, 1, padding).sum().backward()
        expected = np.einsum("ncijhw->cij", patches_of(x.data, w_shape[2:], (padding, padding)))  # dL/dW for L = sum y
        np.testing.assert_allclose(weight.grad.data, np.broadcast_to(expected, w_shape), rtol=1e-10, atol=1e-10)
    assert calls == [(3, 2, 3, 3), (3, 2, 1, 1)]


@pytest.mark.parametrize("channels", [(1, 4), (2, 9), (1, 3), (3, 5)])
@pytest.mark.parametrize("padding", [(1, 1), (0, 2)])
def test_conv2d_stride1_backward_for_wide_and_narrow_outputs(channels, padding):
    """A same convolution's backward shares gy's shifted rows between dL/dx and dL/dW unless gy
    has at least 4x x's channels (then it takes the rows of x and folds dL/dx), and a stride-1
    convolution that changes the size takes the general path: all three, checked numerically."""
    c, oc = channels
    check_stride1_conv2d(((2, c, 5, 6), (oc, c, 3, 3), (1, 1), padding), seed=c * 10 + oc)


def check_stride1_conv2d(case, seed):
    x_shape, w_shape, _, padding = case
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    y = F.conv2d(x, w, b, 1, padding)
    np.testing.assert_allclose(y.data, ref_conv2d(x, w, b, (1, 1), padding), rtol=1e-10, atol=1e-10)
    gy = rng.standard_normal(y.shape)
    gradient_check(lambda x, w, b: (F.conv2d(x, w, b, 1, padding) * Variable(gy)).sum(), x, w, b)
    f = lambda x, w, b: F.conv2d(x, w, b, 1, padding)  # noqa: E731
    assert_strict_device_matches_cpu(f, [x, w, b], seed)


@pytest.mark.parametrize("chunk_elements", [1, 50])
def test_conv2d_batch_chunks_give_the_same_result(monkeypatch, device, chunk_elements):
    """Several chunks (one image each, or uneven ones) agree with one big chunk."""
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((5, 2, 6, 5)), rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)
    gy = rng.standard_normal((5, 3, 6, 5))
    expected = ref_conv2d(x, w, b, (1, 1), (1, 1))
    monkeypatch.setattr(conv_module, "CHUNK_ELEMENTS", chunk_elements)
    monkeypatch.setattr(conv_module, "DEVICE_CHUNK_ELEMENTS", chunk_elements)
    for stride in [(1, 1), (2, 1)]:  # the shared-im2col backward and the general one
        xv, wv, bv = (Variable(on(device, a)) for a in (x, w, b))
        y = F.conv2d(xv, wv, bv, stride, 1)
        (y * Variable(on(device, gy[:, :, ::stride[0]]))).sum().backward()
        monkeypatch.setattr(conv_module, "CHUNK_ELEMENTS", 2 ** 30)
        xr, wr, br = (Variable(a.copy()) for a in (x, w, b))
        yr = F.conv2d(xr, wr, br, stride, 1)
        (yr * Variable(gy[:, :, ::stride[0]])).sum().backward()
        monkeypatch.setattr(conv_module, "CHUNK_ELEMENTS", chunk_elements)
        np.testing.assert_allclose(host(y.data), expected[:, :, ::stride[0]], rtol=1e-10, atol=1e-10)
        for v, r in [(xv, xr), (wv, wr), (bv, br)]:
            np.testing.assert_allclose(host(v.grad.data), r.grad.data, rtol=1e-10, atol=1e-10)


@settings(max_examples=25, deadline=None)
@given(case=st.one_of(conv_cases(), same_cases()), seed=seeds, x_is_data=st.booleans())
def test_conv2d_in_chunks_of_one_image_on_every_path(case, seed, x_is_data):
    """Each image in a chunk of its own, as the CPU's budget cuts a large batch, on every forward and
    backward path (strided, same, outputs at least 4 times wider than inputs, x a batch of data):
    values against the loop reference and gradients against numerical ones."""
    x_shape, w_shape, stride, padding = case
    x_shape = (x_shape[0] + 1, *x_shape[1:])   # at least two images: at least two chunks
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv_module, "CHUNK_ELEMENTS", 1)
        y = F.conv2d(x, w, b, stride, padding)
        np.testing.assert_allclose(y.data, ref_conv2d(x, w, b, stride, padding), rtol=1e-10, atol=1e-10)
        gy = Variable(rng.standard_normal(y.shape))
        if x_is_data:
            gradient_check(lambda w, b: (F.conv2d(x, w, b, stride, padding) * gy).sum(), w, b)
        else:
            gradient_check(lambda x, w, b: (F.conv2d(x, w, b, stride, padding) * gy).sum(), x, w, b)


def test_conv2d_keeps_float32(device):
    rng = np.random.default_rng(0)
    x = Variable(on(device, rng.standard_normal((2, 3, 5, 5)).astype(np.float32)))
    w = Variable(on(device, rng.standard_normal((4, 3, 3, 3)).astype(np.float32)))
    b = Variable(on(device, np.zeros(4, np.float32)))
    y = F.conv2d(x, w, b, padding=1)
    y.backward()
    assert y.dtype == np.float32
    assert {x.grad.dtype, w.grad.dtype, b.grad.dtype} == {np.dtype(np.float32)}


# =============================================================================
# conv_transpose2d and the weight gradient op
# =============================================================================
@st.composite
def transpose_cases(draw):
    x_shape, w_shape, stride, padding = draw(conv_cases(max_padding=1))
    output_padding = tuple(draw(st.integers(0, s - 1)) for s in stride)
    (oc, c, kh, kw), (n, _, h, w) = w_shape, x_shape
    # weight (C_in, C_out, KH, KW); x with C_in channels; output at least 1x1
    h = max(h, 1 + (2 * padding[0] - kh - output_padding[0] + stride[0]) // stride[0])
    w = max(w, 1 + (2 * padding[1] - kw - output_padding[1] + stride[1]) // stride[1])
    return (n, oc, h, w), (oc, c, kh, kw), stride, padding, output_padding


@SETTINGS
@given(case=transpose_cases(), seed=seeds, with_bias=st.booleans())
def test_conv_transpose2d_values_match_loop_reference(case, seed, with_bias):
    x_shape, w_shape, stride, padding, output_padding = case
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[1])
    bias = b if with_bias else None
    y = F.conv_transpose2d(x, w, bias, stride, padding, output_padding)
    np.testing.assert_allclose(y.data, ref_conv_transpose2d(x, w, bias, stride, padding, output_padding),
                               rtol=1e-10, atol=1e-10)


@SETTINGS
@given(case=transpose_cases(), seed=seeds)
def test_conv_transpose2d_gradients_match_numerical(case, seed):
    x_shape, w_shape, stride, padding, output_padding = case
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[1])
    f = lambda x, w, b: F.conv_transpose2d(x, w, b, stride, padding, output_padding)  # noqa: E731
    gy = Variable(rng.standard_normal(f(x, w, b).shape))
    gradient_check(lambda x, w, b: (f(x, w, b) * gy).sum(), x, w, b)


def test_conv_transpose2d_is_the_adjoint_of_conv2d(device):
    """<conv2d(x, W), y> = <x, conv_transpose2d(y, W)> for every x, y."""
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, 3, 7, 7)), rng.standard_normal((4, 3, 3, 2))
    y = rng.standard_normal((2, 4, 4, 4))
    conv = host(F.conv2d(Variable(on(device, x)), Variable(on(device, w)), stride=2, padding=1).data)
    back = host(F.conv_transpose2d(Variable(on(device, y)), Variable(on(device, w)), stride=2, padding=1,
                                   output_padding=(0, 1)).data)
    assert back.shape == x.shape
    np.testing.assert_allclose((conv * y).sum(), (x * back).sum(), rtol=1e-10)


def test_conv_transpose2d_on_strict_device_matches_cpu():
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal((2, 3, 4, 3)), rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(2)]
    f = lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1)  # noqa: E731
    assert assert_strict_device_matches_cpu(f, arrays).shape == (2, 2, 8, 6)


@settings(max_examples=10, deadline=None)
@given(case=conv_cases(), seed=seeds)
def test_conv2d_grad_weight_gradients_match_numerical(case, seed):
    x_shape, w_shape, stride, padding = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape)
    gy = rng.standard_normal(F.conv2d(x, rng.standard_normal(w_shape), None, stride, padding).shape)
    v = Variable(rng.standard_normal(w_shape))
    gradient_check(lambda x, gy: (F.conv2d_grad_weight(x, gy, w_shape[2:], stride, padding) * v).sum(), x, gy)


# =============================================================================
# Double backprop: the backward pass is itself differentiable
# =============================================================================
@pytest.mark.parametrize("stride, padding", [(1, 1), (2, 1), (1, 0)])
def test_conv2d_double_backward(stride, padding):
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal((1, 2, 4, 4)), rng.standard_normal((2, 2, 3, 3))]
    second_order_check(lambda x, w: F.conv2d(x, w, None, stride, padding), arrays)


@pytest.mark.parametrize("penalized", [0, 1], ids=["x_gradient_only", "weight_gradient_only"])
@pytest.mark.parametrize("stride, padding", [(1, 1), (2, 1)])
def test_conv2d_double_backward_through_one_of_its_gradients(stride, padding, penalized):
    """A penalty on dL/dx alone (or dL/dW alone) reaches Conv2dGrad's backward with one of its two
    output gradients None."""
    rng = np.random.default_rng(8)
    arrays = [rng.standard_normal((2, 2, 4, 4)), rng.standard_normal((3, 2, 3, 3))]
    second_order_check(lambda x, w: F.conv2d(x, w, None, stride, padding), arrays, penalized=[penalized])


@pytest.mark.parametrize("kernel, stride, padding", [((2, 3), (1, 2), (1, 0)), ((3, 1), (2, 1), (0, 1))])
def test_conv2d_double_backward_with_non_square_kernels_and_per_axis_strides(kernel, stride, padding):
    rng = np.random.default_rng(6)
    arrays = [rng.standard_normal((2, 2, 5, 4)), rng.standard_normal((3, 2) + kernel)]
    second_order_check(lambda x, w: F.conv2d(x, w, None, stride, padding), arrays)


def test_conv2d_of_data_double_backward_through_the_weight_gradient():
    """x as data (no gradient): conv2d's backward computes only the weight gradient (conv2d_grad_weight
    directly); its second derivative in W and in the upstream gradient must be right too."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 2, 5, 5))
    second_order_check(lambda w: F.conv2d(x, w, None, 2, 1), [rng.standard_normal((3, 2, 3, 3))])


def test_conv_transpose2d_double_backward():
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal((1, 2, 3, 3)), rng.standard_normal((2, 2, 3, 3))]
    second_order_check(lambda x, w: F.conv_transpose2d(x, w, None, 2, 1, 1), arrays)


@pytest.mark.parametrize("op", ["max", "avg", "nearest", "bilinear"])
def test_pooling_and_upsampling_double_backward(op):
    rng = np.random.default_rng(5)
    x = distinct(rng, (1, 2, 4, 4))
    ops = {"max": lambda x: F.max_pool2d(x, 2) * F.max_pool2d(x, 2),
           "avg": lambda x: F.avg_pool2d(x, 3, 1, 1) * F.avg_pool2d(x, 3, 1, 1),
           "nearest": lambda x: F.upsample(x, 2, "nearest") ** 2,
           "bilinear": lambda x: F.upsample(x, 2, "bilinear") ** 2}
    second_order_check(ops[op], [x])


@pytest.mark.parametrize("kernel, stride, padding", [(3, 1, 1), (3, 2, 1), (2, 1, 0), ((2, 3), (1, 2), (1, 0))])
@pytest.mark.parametrize("op", ["max", "avg"])
def test_pooling_double_backward_with_overlapping_windows_padding_and_uneven_sizes(op, kernel, stride, padding):
    rng = np.random.default_rng(8)
    x = distinct(rng, (1, 2, 5, 4))
    pool = F.max_pool2d if op == "max" else F.avg_pool2d
    second_order_check(lambda x: pool(x, kernel, stride, padding) ** 2, [x])



def max_pool2d_first_gradient(x):
    """d/dx sum(max_pool2d(x)^3) / 3, built with create_graph: its own double backprop is a third
    derivative, which runs the backward of MaxPool2dSelect (the op the second derivative builds)."""
    (F.max_pool2d(x, 3, 1, 1) ** 3).sum().backward(create_graph=True)
    first, x.grad = x.grad, None
    return first


_rng = np.random.default_rng(9)
STRICT_DOUBLE_BACKPROP_CASES = {   # name: f(device, *variables), arrays, penalized, methods that must run
    "conv2d": (lambda d, x, w: F.conv2d(x, w, None, 2, 1), [_rng.standard_normal((2, 2, 4, 4)),
               _rng.standard_normal((3, 2, 3, 3))], None, [conv_module.Conv2dGrad.backward]),
    "conv2d_same_x_gradient_only": (lambda d, x, w: F.conv2d(x, w, None, 1, 1), [_rng.standard_normal((1, 2, 4, 4)),
                                    _rng.standard_normal((3, 2, 3, 3))], [0], [conv_module.Conv2dGrad.backward]),
    "conv2d_weight_gradient_only": (lambda d, x, w: F.conv2d(x, w, None, 2, 1), [_rng.standard_normal((2, 2, 4, 4)),
                                    _rng.standard_normal((3, 2, 3, 3))], [1], [conv_module.Conv2dGrad.backward]),
    "conv2d_of_data": (lambda d, w, x=_rng.standard_normal((2, 2, 5, 5)): F.conv2d(on(d, x), w, None, 2, 1),
                       [_rng.standard_normal((3, 2, 3, 3))], None, [conv_module.Conv2dGradWeight.backward]),
    "max_pool2d": (lambda d, x: F.max_pool2d(x, 3, 1, 1) ** 2, [distinct(_rng, (1, 2, 5, 4))], None,
                   [conv_module.MaxPool2dGrad.backward]),
    "max_pool2d_third_derivative": (lambda d, x: max_pool2d_first_gradient(x), [distinct(_rng, (1, 2, 5, 4))],
                                    None, [conv_module.MaxPool2dSelect.backward]),
    "avg_pool2d": (lambda d, x: F.avg_pool2d(x, 3, 2, 1) ** 2, [_rng.standard_normal((1, 2, 5, 4))], None,
                   [conv_module.AvgPool2dGrad.backward]),
}


@pytest.mark.parametrize("case", sorted(STRICT_DOUBLE_BACKPROP_CASES))
def test_double_backward_on_strict_device_matches_cpu(case):
    """Double backprop never ran on the strict device: a host copy in a backward built with
    create_graph (Conv2dGrad's, the pooling gradients') passed every test."""
    f, arrays, penalized, reaches = STRICT_DOUBLE_BACKPROP_CASES[case]
    assert_double_backprop_on_strict_matches_cpu(f, arrays, penalized, reaches)

# =============================================================================
# Pooling
# =============================================================================
@SETTINGS
@given(case=pool_cases(), seed=seeds)
# each of the backward's paths on every run: overlapping windows, tiling ones (the U-Net's 2x2 stride 2),
# and non-overlapping ones that leave inputs out (a ragged edge) or reach into the padding
@example(case=((1, 2, 5, 4), (3, 3), (1, 2), (1, 1)), seed=0)
@example(case=((2, 1, 4, 6), (2, 2), (2, 2), (0, 0)), seed=0)
@example(case=((1, 1, 5, 5), (2, 2), (2, 2), (0, 0)), seed=0)
@example(case=((1, 1, 4, 4), (3, 3), (3, 3), (1, 1)), seed=0)
def test_max_pool2d_values_and_gradients(case, seed):
    x_shape, kernel, stride, padding = case
    x = distinct(np.random.default_rng(seed), x_shape)
    y = F.max_pool2d(x, kernel, stride, padding)
    np.testing.assert_array_equal(y.data, ref_pool(x, kernel, stride, padding, np.max, -np.inf))
    gy = Variable(np.random.default_rng(seed + 1).standard_normal(y.shape))
    gradient_check(lambda x: (F.max_pool2d(x, kernel, stride, padding) * gy).sum(), x)


@SETTINGS
@given(case=pool_cases(), seed=seeds)
def test_avg_pool2d_values_and_gradients(case, seed):
    x_shape, kernel, stride, padding = case
    x = np.random.default_rng(seed).standard_normal(x_shape)
    y = F.avg_pool2d(x, kernel, stride, padding)
    np.testing.assert_allclose(y.data, ref_pool(x, kernel, stride, padding, np.mean, 0.0), rtol=1e-12, atol=1e-12)
    gy = Variable(np.random.default_rng(seed + 1).standard_normal(y.shape))
    gradient_check(lambda x: (F.avg_pool2d(x, kernel, stride, padding) * gy).sum(), x)


def test_max_pool2d_ties_send_the_gradient_to_the_first_maximum(device):
    x = np.ones((1, 1, 4, 4))
    x[0, 0, 2:, 2:] = [[5.0, 5.0], [5.0, 1.0]]
    xv = Variable(on(device, x))
    F.max_pool2d(xv, 2).sum().backward()
    expected = np.zeros((4, 4))
    expected[0, 0] = expected[0, 2] = expected[2, 0] = expected[2, 2] = 1.0
    np.testing.assert_array_equal(host(xv.grad.data)[0, 0], expected)


@pytest.mark.parametrize("kernel, stride, padding", [(3, 1, 1), (3, 2, 1), (2, 2, 0), (2, 1, 0)])
def test_max_pool2d_gradient_with_many_ties_matches_first_argmax_loop(kernel, stride, padding, device):
    # values in {0, 1, 2}: most windows hold several maxima; overlapping windows share them
    x = np.random.default_rng(kernel + stride).integers(0, 3, (2, 3, 7, 6)).astype(np.float64)
    xv = Variable(on(device, x))
    y = F.max_pool2d(xv, kernel, stride, padding)
    gy = np.random.default_rng(9).standard_normal(y.shape)
    (y * Variable(on(device, gy))).sum().backward()
    x_pad = pad_hw(x, (padding, padding), -np.inf)
    expected = np.zeros_like(x_pad)
    for n, c, h, w in np.ndindex(*y.shape):
        window = x_pad[n, c, h * stride:h * stride + kernel, w * stride:w * stride + kernel]
        i, j = np.unravel_index(np.argmax(window), window.shape)  # np.argmax: the first maximum
        expected[n, c, h * stride + i, w * stride + j] += gy[n, c, h, w]
    np.testing.assert_allclose(host(xv.grad.data), expected[:, :, padding:padding + 7, padding:padding + 6],
                               rtol=1e-12, atol=1e-12)


def test_max_pool2d_gradient_is_zero_where_windows_padded_in_the_width_only_leave_a_column_out():
    """Windows that do not overlap, padding (0, 1) and kernel (1, 3), stride (1, 3) on 6 columns: the
    two windows span padded columns 0-5, so the last column of x is in no window and gets gradient 0.
    Only padding on neither side lets the backward skip zeroing its gradient array; with padding on
    one side it must zero it (here freed arrays of its size filled with NaN come first, which an
    array left unset would return)."""
    x = distinct(np.random.default_rng(13), (1, 1, 2, 6))
    xv = Variable(x)
    y = F.max_pool2d(xv, (1, 3), (1, 3), (0, 1))
    gy = np.random.default_rng(14).standard_normal(y.shape)
    poison = [np.full((1, 1, 2, 8), np.nan) for _ in range(8)]   # the padded gradient's size
    del poison
    (y * Variable(gy)).sum().backward()
    x_pad = pad_hw(x, (0, 1), -np.inf)
    expected = np.zeros_like(x_pad)
    for n, c, h, w in np.ndindex(*y.shape):
        window = x_pad[n, c, h, 3 * w:3 * w + 3]
        expected[n, c, h, 3 * w + np.argmax(window)] += gy[n, c, h, w]
    np.testing.assert_array_equal(xv.grad.data, expected[..., 1:7])
    assert np.all(xv.grad.data[..., 5] == 0)


@pytest.mark.parametrize("op", [F.max_pool2d, F.avg_pool2d])
def test_pooling_on_strict_device_matches_cpu(op):
    x = distinct(np.random.default_rng(6), (2, 3, 7, 6))
    f = lambda x: op(x, 3, 2, 1)  # noqa: E731
    assert assert_strict_device_matches_cpu(f, [x]).shape == (2, 3, 4, 3)


def test_pooling_keeps_float32(device):
    x = Variable(on(device, np.random.default_rng(0).standard_normal((2, 2, 4, 4)).astype(np.float32)))
    for op in (F.max_pool2d, F.avg_pool2d):
        x.cleargrad()
        y = op(x, 2)
        y.backward()
        assert y.dtype == np.float32 and x.grad.dtype == np.float32


# =============================================================================
# Upsampling
# =============================================================================
def test_upsample_matches_hand_computed_values(device):
    x = Variable(on(device, np.array([[[[1.0, 2.0], [3.0, 4.0]]]])))
    nearest = [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]
    # align_corners=False, scale 2: output pixel d samples src = max((d + 0.5)/2 - 0.5, 0),
    # i.e. 0, 0.25, 0.75, 1.25 (clamped to the last pixel): weights (1,0), (.75,.25), (.25,.75), (0,1)
    bilinear = [[1.0, 1.25, 1.75, 2.0],
                [1.5, 1.75, 2.25, 2.5],
                [2.5, 2.75, 3.25, 3.5],
                [3.0, 3.25, 3.75, 4.0]]
    np.testing.assert_array_equal(host(F.upsample(x, 2, "nearest").data)[0, 0], nearest)
    np.testing.assert_array_equal(host(F.upsample(x).data)[0, 0], nearest)   # the defaults: 2, nearest
    np.testing.assert_allclose(host(F.upsample(x, 2, "bilinear").data)[0, 0], bilinear, rtol=1e-15)


@SETTINGS
@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 4), st.integers(1, 4)),
       scale=st.integers(1, 3), mode=st.sampled_from(["nearest", "bilinear"]), seed=seeds)
def test_upsample_values_and_gradients(shape, scale, mode, seed):
    x = np.random.default_rng(seed).standard_normal(shape)
    y = F.upsample(x, scale, mode)
    np.testing.assert_allclose(y.data, ref_upsample(x, scale, mode), rtol=1e-12, atol=1e-12)
    gy = Variable(np.random.default_rng(seed + 1).standard_normal(y.shape))
    gradient_check(lambda x: (F.upsample(x, scale, mode) * gy).sum(), x)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_upsample_on_strict_device_matches_cpu(mode):
    x = np.random.default_rng(7).standard_normal((2, 3, 3, 5))
    assert_strict_device_matches_cpu(lambda x: F.upsample(x, 2, mode), [x])


def test_upsample_keeps_float32(device):
    x = Variable(on(device, np.ones((1, 2, 3, 3), np.float32)))
    for mode in ("nearest", "bilinear"):
        x.cleargrad()
        y = F.upsample(x, 2, mode)
        y.backward()
        assert y.dtype == np.float32 and x.grad.dtype == np.float32
        np.testing.assert_allclose(host(x.grad.data), 4.0)  # every input pixel feeds 4 outputs in total


# =============================================================================
# Channel concatenation of feature maps (U-Net skip connections)
# =============================================================================
def test_concatenate_feature_maps_along_channels(device):
    rng = np.random.default_rng(8)
    a, b = rng.standard_normal((2, 3, 4, 4)), rng.standard_normal((2, 5, 4, 4))
    av, bv = Variable(on(device, a)), Variable(on(device, b))
    y = F.concatenate([av, bv], axis=1)
    assert y.shape == (2, 8, 4, 4)
    np.testing.assert_array_equal(host(y.data), np.concatenate([a, b], axis=1))
    weights = rng.standard_normal((2, 8, 4, 4))
    (y * Variable(on(device, weights))).sum().backward()
    np.testing.assert_array_equal(host(av.grad.data), weights[:, :3])
    np.testing.assert_array_equal(host(bv.grad.data), weights[:, 3:])


# =============================================================================
# Errors name the op, the shapes and the dtypes
# =============================================================================
def test_bad_inputs_give_clear_errors():
    x = np.zeros((2, 3, 5, 5), np.float32)
    with pytest.raises(ValueError, match=r"Conv2d.*3 channels.*\(4, 2, 3, 3\)"):
        F.conv2d(x, np.zeros((4, 2, 3, 3), np.float32))
    with pytest.raises(TypeError, match=r"Conv2d.*float32.*float64"):
        F.conv2d(x, np.zeros((4, 3, 3, 3)))
    with pytest.raises(ValueError, match=r"Conv2d.*bias must have shape \(4,\)"):
        F.conv2d(x, np.zeros((4, 3, 3, 3), np.float32), np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"Conv2d.*kernel \(7, 7\) does not fit"):
        F.conv2d(x, np.zeros((4, 3, 7, 7), np.float32))
    with pytest.raises(ValueError, match=r"Conv2d.*\(N, C, H, W\).*\(3, 5, 5\)"):
        F.conv2d(x[0], np.zeros((4, 3, 3, 3), np.float32))
    with pytest.raises(ValueError, match="output_padding"):
        F.conv_transpose2d(x, np.zeros((3, 2, 3, 3), np.float32), stride=2, output_padding=2)
    with pytest.raises(ValueError, match="stride"):
        F.conv2d(x, np.zeros((4, 3, 3, 3), np.float32), stride=0)
    with pytest.raises(ValueError, match="max_pool2d: padding"):
        F.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="upsample: scale_factor"):
        F.upsample(x, 1.5)
    with pytest.raises(ValueError, match="upsample: mode"):
        F.upsample(x, 2, "bicubic")


# =============================================================================
# PyTorch cross-checks (float32, moderately sized: the fast paths as used)
# =============================================================================
def torch_compare(zero_f, torch_f, arrays, rtol=1e-4, atol=1e-4):
    torch = pytest.importorskip("torch")
    variables = [Variable(a.copy()) for a in arrays]
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    y, ty = zero_f(*variables), torch_f(*tensors)
    gy = np.random.default_rng(0).standard_normal(y.shape).astype(arrays[0].dtype)
    (y * Variable(gy)).sum().backward()
    ty.backward(torch.from_numpy(gy))
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=rtol, atol=atol)
    for v, t in zip(variables, tensors):
        np.testing.assert_allclose(v.grad.data, t.grad.numpy(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("stride, padding", [(1, 1), (2, 1), (1, 0), (2, 0)])
def test_conv2d_matches_torch(stride, padding):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in [(4, 8, 13, 12), (16, 8, 3, 3), (16,)]]
    torch_compare(lambda x, w, b: F.conv2d(x, w, b, stride, padding),
                  lambda x, w, b: torch.nn.functional.conv2d(x, w, b, stride, padding), arrays)


def test_conv_transpose2d_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(10)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in [(3, 8, 7, 7), (8, 4, 4, 4), (4,)]]
    torch_compare(lambda x, w, b: F.conv_transpose2d(x, w, b, 2, 1, 1),
                  lambda x, w, b: torch.nn.functional.conv_transpose2d(x, w, b, 2, 1, 1), arrays)


@pytest.mark.parametrize("kernel, stride, padding", [(2, None, 0), (3, 2, 1), (3, 1, 1)])
def test_pooling_matches_torch(kernel, stride, padding):
    torch = pytest.importorskip("torch")
    x = distinct(np.random.default_rng(11), (2, 3, 9, 8))
    torch_compare(lambda x: F.max_pool2d(x, kernel, stride, padding),
                  lambda x: torch.nn.functional.max_pool2d(x, kernel, stride, padding), [x])
    torch_compare(lambda x: F.avg_pool2d(x, kernel, stride, padding),
                  lambda x: torch.nn.functional.avg_pool2d(x, kernel, stride, padding), [x])


@pytest.mark.parametrize("scale", [2, 3])
@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_upsample_matches_torch(mode, scale):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(12).standard_normal((2, 3, 7, 5)).astype(np.float32)
    torch_compare(lambda x: F.upsample(x, scale, mode),
                  lambda x: torch.nn.functional.interpolate(x, scale_factor=scale, mode=mode), [x],
                  rtol=1e-5, atol=1e-5)


def test_reused_patch_buffer_never_leaks_into_results():
    """im2col patches live in one reused buffer per thread (conv_module._patch_buffer): results
    of earlier calls must stay intact, and threads must not overwrite each other's patches."""
    import threading
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((4, 3, 9, 9)).astype(np.float32) for _ in range(4)]
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    expected = [F.conv2d(x, w, padding=1).data.copy() for x in xs]
    pooled = F.max_pool2d(xs[0], 2).data.copy()
    first = F.conv2d(xs[0], w, padding=1)
    F.conv2d(xs[1], w, stride=2)                   # unfolds into the same buffer
    F.max_pool2d(xs[2], 3)
    assert np.array_equal(first.data, expected[0])
    assert np.array_equal(F.max_pool2d(xs[0], 2).data, pooled)

    failures = []

    def worker(index):   # close, not equal: BLAS may split a call run beside others differently (other sums'
        for _ in range(30):  # order); a patch from another thread's images would be wrong by O(1)
            if not np.allclose(F.conv2d(xs[index], w, padding=1).data, expected[index], rtol=1e-5, atol=1e-5):
                failures.append(index)
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures


@pytest.mark.parametrize("pool", [F.max_pool2d, F.avg_pool2d])
def test_pool_padding_is_checked_on_each_axis(pool):
    """padding <= kernel // 2 on both axes: the limit itself is accepted, one more on either axis is not."""
    x = np.arange(2 * 6 * 7, dtype=np.float32).reshape(1, 2, 6, 7)
    assert pool(x, (3, 5), stride=1, padding=(1, 2)).shape == (1, 2, 6, 7)
    for padding in [(2, 0), (0, 3), (1, 3)]:
        with pytest.raises(ValueError, match=r"padding .* must be at most half the kernel size \(3, 5\)"):
            pool(x, (3, 5), stride=1, padding=padding)


def test_conv_transpose2d_output_padding_is_checked_on_each_axis():
    """output_padding < stride on both axes; the largest allowed value gives the documented size."""
    x = np.ones((1, 3, 4, 5), np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)
    y = F.conv_transpose2d(x, w, stride=(3, 2), output_padding=(2, 1))
    assert y.shape == (1, 2, (4 - 1) * 3 + 3 + 2, (5 - 1) * 2 + 3 + 1)
    for stride, output_padding in [((2, 1), (0, 1)), ((1, 2), (1, 0)), ((2, 2), (1, 2))]:
        with pytest.raises(ValueError, match=r"output_padding .* must be smaller than stride"):
            F.conv_transpose2d(x, w, stride=stride, output_padding=output_padding)


def test_batch_chunks_keep_each_buffer_within_the_budget(monkeypatch):
    """As many items per chunk as fit in CHUNK_ELEMENTS, but at least one, and the chunks tile the batch."""
    monkeypatch.setattr(conv_module, "CHUNK_ELEMENTS", 100)
    batch = np.zeros((7, 1))
    assert conv_module._batch_chunks(batch, 30) == [slice(0, 3), slice(3, 6), slice(6, 7)]
    assert conv_module._batch_chunks(batch[:3], 250) == [slice(0, 1), slice(1, 2), slice(2, 3)]  # one item over budget
    assert conv_module._batch_chunks(batch[:4], 0) == [slice(0, 4)]
    assert conv_module._batch_chunks(np.zeros((150, 1)), 1) == [slice(0, 100), slice(100, 150)]  # one element per item


def test_a_device_batch_takes_chunks_of_the_device_budget(monkeypatch):
    """On a GPU (here the strict device, which stands for one) kernel launches, not caches, bound the
    chunks: a book-sized U-Net layer, 64 -> 64 channels at 28x28 with a batch of 128, in one chunk."""
    per_item = 3 * 64 * 30 * 30  # the 'columns' split: 3 column shifts of 64 padded 30x30 planes
    x = np.zeros((128, 1), np.float32)
    assert len(conv_module._batch_chunks(x, per_item)) == 11
    assert conv_module._batch_chunks(on("strict", x), per_item) == [slice(0, 128)]
    monkeypatch.setattr(conv_module, "DEVICE_CHUNK_ELEMENTS", 100)
    assert len(conv_module._batch_chunks(on("strict", x), 30)) == 43


# =============================================================================
# Found by a mutation audit: argument checks at their boundaries, third-order max pooling
# =============================================================================
@pytest.mark.parametrize("name, value", [("stride", (1, 1, 1)), ("padding", (1,)), ("stride", 1.5),
                                         ("padding", 0.5), ("stride", -1)])
def test_conv2d_refuses_a_stride_or_padding_that_is_not_a_pair_of_whole_numbers(name, value):
    x, w = np.zeros((1, 2, 5, 5)), np.zeros((3, 2, 3, 3))
    least = 1 if name == "stride" else 0
    with pytest.raises(ValueError, match=rf"conv2d: {name} must be a whole number >= {least} or a pair of them, "
                                         rf"got {re.escape(repr(value))}"):
        F.conv2d(x, w, **{name: value})


@pytest.mark.parametrize("call, message", [
    (lambda x: F.conv2d(x, np.zeros((3, 2, 3, 3)), stride=-1), "conv2d: stride must be a whole number >= 1 or a pair of them, got -1"),
    (lambda x: F.conv2d(x, np.zeros((3, 2, 3, 3)), padding="same"),
     "conv2d: padding must be a whole number >= 0 or a pair of them, got 'same'"),
    (lambda x: F.conv_transpose2d(x, np.zeros((2, 3, 3, 3)), output_padding=-1),
     "conv_transpose2d: output_padding must be a whole number >= 0 or a pair of them, got -1"),
    (lambda x: F.conv_transpose2d(x, np.zeros((2, 3, 3, 3)), stride=-1),
     "conv_transpose2d: stride must be a whole number >= 1 or a pair of them, got -1"),
    (lambda x: F.conv2d_grad_weight(x, np.zeros((1, 3, 3, 3)), 3, stride=-1),
     "conv2d_grad_weight: stride must be a whole number >= 1 or a pair of them, got -1"),
    (lambda x: F.max_pool2d(x, 2, stride=-1), "max_pool2d: stride must be a whole number >= 1 or a pair of them, got -1"),
    (lambda x: F.avg_pool2d(x, 2, padding=(0, -1)), "avg_pool2d: padding must be a whole number >= 0 or a pair of them, got (0, -1)"),
], ids=["conv2d-stride", "conv2d-padding", "transpose-output_padding", "transpose-stride", "grad_weight", "max_pool2d",
        "avg_pool2d"])
def test_a_bad_stride_or_padding_is_refused_naming_the_op_and_the_least_allowed_value(call, message):
    """stride=-1 was told 'must be a whole number >= 0', then 0 was refused too, and the message named no op."""
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        call(np.zeros((1, 2, 5, 5)))


def test_upsample_takes_a_numpy_integer_scale_factor():
    x = np.arange(4.0).reshape(1, 1, 2, 2)
    np.testing.assert_array_equal(F.upsample(x, np.int64(2)).data, F.upsample(x, 2).data)


def test_conv2d_takes_numpy_integers_for_stride_and_padding():
    x, w = np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3))
    y = F.conv2d(x, w, stride=np.int64(2), padding=(np.int64(1), 1))
    np.testing.assert_array_equal(y.data, F.conv2d(x, w, stride=2, padding=1).data)


@pytest.mark.parametrize("name", ["stride", "padding"])
def test_conv2d_refuses_a_bool_for_a_size(name):
    with pytest.raises(ValueError, match=rf"conv2d: {name} must be a whole number >= [01] or a pair of them, got True"):
        F.conv2d(np.zeros((1, 2, 5, 5)), np.zeros((3, 2, 3, 3)), **{name: True})


@pytest.mark.parametrize("stride", [(1, 0), (0, 1)])
def test_convolutions_refuse_a_zero_stride_on_either_axis(stride):
    x = np.zeros((1, 2, 5, 5))
    with pytest.raises(ValueError, match=r"conv2d: stride must be a whole number >= 1 or a pair of them"):
        F.conv2d(x, np.zeros((3, 2, 3, 3)), stride=stride)
    with pytest.raises(ValueError, match=r"conv_transpose2d: stride must be a whole number >= 1 or a pair of them"):
        F.conv_transpose2d(x, np.zeros((2, 3, 3, 3)), stride=stride)


@pytest.mark.parametrize("op", [
    lambda x: F.conv2d(x, x[:1]),
    lambda x: F.max_pool2d(x, 2),
    lambda x: F.avg_pool2d(x, 2),
    lambda x: F.upsample(x, 2),
], ids=["conv2d", "max_pool2d", "avg_pool2d", "upsample"])
def test_integer_images_are_refused_by_name(op):
    x = np.arange(2 * 2 * 4 * 4).reshape(2, 2, 4, 4)
    with pytest.raises(TypeError, match=r"(conv2d|max_pool2d|avg_pool2d|upsample) needs floating-point x, got dtype int"):
        op(x)


@pytest.mark.parametrize("op", [
    lambda x: F.max_pool2d(x, 2),
    lambda x: F.avg_pool2d(x, 2),
    lambda x: F.upsample(x, 2),
], ids=["max_pool2d", "avg_pool2d", "upsample"])
@pytest.mark.parametrize("shape", [(4, 4), (2, 4, 4)])
def test_images_without_batch_or_channel_axis_are_refused_by_name(op, shape):
    with pytest.raises(ValueError, match=r"expects x of shape \(N, C, H, W\), got shape " + re.escape(str(shape))):
        op(np.zeros(shape))


def test_conv2d_refuses_a_weight_that_is_not_four_dimensional_and_a_bias_that_is_not_a_vector():
    x = np.zeros((1, 2, 5, 5))
    with pytest.raises(ValueError, match=r"conv2d expects a 4-D weight, got shape \(3, 2, 3\)"):
        F.conv2d(x, np.zeros((3, 2, 3)))
    with pytest.raises(ValueError, match=r"conv2d: bias must have shape \(3,\), got \(3, 1\)"):
        F.conv2d(x, np.zeros((3, 2, 3, 3)), np.zeros((3, 1)))


@pytest.mark.parametrize("kernel", [(6, 3), (3, 6), (7, 7)])
def test_conv2d_refuses_a_kernel_that_leaves_no_output_row_or_column(kernel):
    """A 6-wide kernel on 5 pixels gives output size (5 - 6) // 1 + 1 = 0: refused, not an empty result."""
    with pytest.raises(ValueError, match=r"conv2d: kernel .* does not fit input \(1, 2, 5, 5\)"):
        F.conv2d(np.zeros((1, 2, 5, 5)), np.zeros((3, 2, *kernel)))


@pytest.mark.parametrize("pool", [F.max_pool2d, F.avg_pool2d])
def test_pooling_refuses_a_window_larger_than_the_image_and_zero_sizes(pool):
    x = np.zeros((1, 2, 5, 5))
    name = pool.__name__
    with pytest.raises(ValueError, match=rf"{name}: kernel \(3, 6\) does not fit input \(1, 2, 5, 5\)"):
        pool(x, (3, 6), stride=1)
    with pytest.raises(ValueError, match=rf"{name}: kernel_size must be a whole number >= 1 or a pair of them, got 0"):
        pool(x, 0, stride=1)
    with pytest.raises(ValueError, match=rf"{name}: stride must be a whole number >= 1 or a pair of them, got \(1, 0\)"):
        pool(x, 2, stride=(1, 0))


def test_upsample_refuses_a_zero_scale_factor():
    with pytest.raises(ValueError, match=r"upsample: scale_factor must be a positive int, got 0"):
        F.upsample(np.zeros((1, 1, 2, 2)), 0)


def test_conv2d_grad_weight_refuses_a_gradient_that_does_not_fit_x():
    x = np.zeros((2, 3, 5, 5))
    for gy_shape in [(1, 4, 3, 3), (2, 4, 3, 2), (2, 4, 2, 3), (2, 4, 9)]:
        with pytest.raises(ValueError, match=r"conv2d_grad_weight: gy must have shape \(2, OC, 3, 3\) for x "
                                             r"\(2, 3, 5, 5\) and kernel \(3, 3\), got " + re.escape(str(gy_shape))):
            F.conv2d_grad_weight(x, np.zeros(gy_shape), 3)
    with pytest.raises(TypeError, match=r"conv2d_grad_weight: x and gy must share one dtype, got float64 and float32"):
        F.conv2d_grad_weight(x, np.zeros((2, 4, 3, 3), np.float32), 3)
    with pytest.raises(ValueError, match=r"conv2d_grad_weight expects x of shape \(N, C, H, W\)"):
        F.conv2d_grad_weight(x[0], np.zeros((2, 4, 3, 3)), 3)


@pytest.mark.parametrize("shape, geometry", [((1, 2, 4, 4), (2, 2, 0)), ((1, 2, 5, 4), (3, 1, 1)),
                                             ((1, 1, 5, 5), (3, 2, 1))])
def test_max_pool2d_third_derivative_matches_numerical(shape, geometry):
    """d/dx of the second derivative of sum(max_pool2d(x)^3) / 6 in directions v, u: the backward of
    the op that double backprop builds (MaxPool2dSelect) must itself be right, also where windows
    overlap (an input is the maximum of several) and reach into the padding."""
    rng = np.random.default_rng(13)
    x = distinct(rng, shape)
    v, u = rng.standard_normal(x.shape), rng.standard_normal(x.shape)

    def second_derivative(x):
        x = x if isinstance(x, Variable) else Variable(x)
        (F.max_pool2d(x, *geometry) ** 3).sum().backward(create_graph=True)
        first, x.grad = x.grad, None
        (first * Variable(v)).sum().backward(create_graph=True)
        second, x.grad = x.grad, None
        return (second * Variable(u)).sum() / 6

    gradient_check(second_derivative, x)


@pytest.mark.parametrize("stride", [(1, 2), (2, 1)])
def test_conv2d_gradients_with_a_different_stride_per_axis(stride):
    """A stride of 1 on one axis only must not take the stride-1 backward (hypothesis draws it only sometimes)."""
    rng = np.random.default_rng(14)
    x, w, b = rng.standard_normal((2, 2, 5, 6)), rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)
    gy = Variable(rng.standard_normal(F.conv2d(x, w, b, stride, 1).shape))
    gradient_check(lambda x, w, b: (F.conv2d(x, w, b, stride, 1) * gy).sum(), x, w, b)


def test_conv_transpose2d_refuses_padding_that_leaves_no_output():
    """(1 - 1) * 1 - 2 * 1 + 2 = 0 rows: refused, not an empty result."""
    with pytest.raises(ValueError, match=r"conv_transpose2d: kernel \(2, 2\) does not fit input \(1, 2, 1, 1\) "
                                         r"\(output size \(0, 0\)\)"):
        F.conv_transpose2d(np.zeros((1, 2, 1, 1)), np.zeros((2, 3, 2, 2)), padding=1)
