"""zero.unet: shapes, gradient flow on every device, the time encoding, errors, PyTorch parity."""
import math

import numpy as np
import pytest

from conftest import host, on
import zero.functions as F
from zero.errors import CheckpointRefused
from zero.training import checkpoint_arrays, save_checkpoint
from zero.unet import UNet, sinusoidal_encoding, unet_from_checkpoint
from zero.utils import save_npz_atomically


def test_sinusoidal_encoding_values():
    v = sinusoidal_encoding(np.array([0, 1, 7]), 6, np)
    assert v.shape == (3, 6) and v.dtype == np.float32
    for row, t in enumerate([0, 1, 7]):
        for i in range(3):
            frequency = 10000 ** (-2 * i / 6)
            assert v[row, 2 * i] == pytest.approx(math.sin(t * frequency), abs=1e-6)
            assert v[row, 2 * i + 1] == pytest.approx(math.cos(t * frequency), abs=1e-6)
    assert sinusoidal_encoding(np.array([3]), 5, np).shape == (1, 5)  # odd sizes work too


@pytest.mark.parametrize("num_classes", [None, 10])
def test_output_shape_and_every_parameter_gets_a_gradient(device, num_classes):
    np.random.seed(0)
    model = UNet(channels=(4, 8, 16), time_embed_dim=8, num_classes=num_classes).to(device)
    x = on(device, np.random.standard_normal((8, 1, 28, 28)).astype(np.float32))
    # t spread over 1..T: down1's time MLP has a single hidden ReLU unit (in_channels = 1),
    # which is off for some t; with a handful of t it could be off for all of them
    t = on(device, np.linspace(1, 1000, 8).astype(np.int64))
    labels = None if num_classes is None else on(device, np.array([3, 10, 7, 0, 1, 2, 10, 9]))
    y = model(x, t, labels)
    assert y.shape == (8, 1, 28, 28) and y.dtype == np.float32
    assert y.device == device
    loss = F.mean_squared_error(y, on(device, np.zeros((8, 1, 28, 28), np.float32)))
    loss.backward()
    names = [name for name, _ in model.named_params()]
    assert any(name.startswith("up1.") for name in names) and any(name.startswith("bottleneck.") for name in names)
    for name, param in model.named_params():
        assert param.grad is not None, f"{name} got no gradient"
        assert np.abs(host(param.grad.data)).max() > 0, f"{name} got a zero gradient"


def test_other_image_sizes_and_channels():
    model = UNet(in_channels=3, channels=(4, 8, 8), time_embed_dim=6)
    y = model(np.zeros((2, 3, 16, 12), np.float32), np.array([1, 2]))
    assert y.shape == (2, 3, 16, 12)


def test_images_with_another_number_of_channels_than_the_model_takes_are_refused():
    """One-channel images into a three-channel model broadcast up to three channels (the time shift
    is added per channel), so the model answered (N, 3, H, W): a sampling step then changed shape."""
    model = UNet(in_channels=3, channels=(4, 8, 8), time_embed_dim=6)
    with pytest.raises(ValueError, match=r"^UNet: this model takes images of 3 channel\(s\), got 1 "
                                         r"\(images of shape \(2, 1, 8, 8\)\)$"):
        model(np.zeros((2, 1, 8, 8), np.float32), np.array([1, 2]))
    with pytest.raises(ValueError, match=r"takes images of 1 channel\(s\), got 3"):
        UNet(channels=(4, 8, 8), time_embed_dim=6)(np.zeros((2, 3, 8, 8), np.float32), np.array([1, 2]))


def test_clear_errors():
    model = UNet(channels=(4, 8, 8), time_embed_dim=6)
    with pytest.raises(ValueError, match="divisible by 4"):
        model(np.zeros((1, 1, 27, 28), np.float32), np.array([1]))
    with pytest.raises(ValueError, match="one time step per image"):
        model(np.zeros((2, 1, 8, 8), np.float32), np.array([1]))
    with pytest.raises(ValueError, match="unconditional"):
        model(np.zeros((1, 1, 8, 8), np.float32), np.array([1]), np.array([0]))
    conditional = UNet(channels=(4, 8, 8), time_embed_dim=6, num_classes=10)
    with pytest.raises(ValueError, match="pass labels"):
        conditional(np.zeros((1, 1, 8, 8), np.float32), np.array([1]))
    assert conditional.no_label == 10


def _reference_unet(params, x, t, labels, time_embed_dim, eps=1e-5):
    """The U-Net of zero.unet's docstring written out in plain NumPy, float64, from its weights
    {name: array}: what the network must compute, independent of zero's ops and layers (and of torch)."""
    p = {name: np.asarray(array, np.float64) for name, array in params.items()}
    relu = lambda a: np.maximum(a, 0)   # noqa: E731

    def linear(v, name):
        return v @ p[f"{name}.W"] + p[f"{name}.b"]

    def conv3x3(h, weight):   # padding 1, no bias: a sum over the nine offsets of the kernel
        height, width = h.shape[2:]
        padded = np.pad(h, ((0, 0), (0, 0), (1, 1), (1, 1)))
        return sum(np.einsum("nchw,oc->nohw", padded[:, :, i:i + height, j:j + width], weight[:, :, i, j])
                   for i in range(3) for j in range(3))

    def batch_norm(h, gamma, beta):   # training mode: each channel's mean and (biased) variance in the batch
        mean, variance = h.mean(axis=(0, 2, 3), keepdims=True), h.var(axis=(0, 2, 3), keepdims=True)
        return gamma[:, None, None] * (h - mean) / np.sqrt(variance + eps) + beta[:, None, None]

    def block(name, h, v):
        h = h + linear(relu(linear(v, f"{name}.time1")), f"{name}.time2")[:, :, None, None]
        for i in (1, 2):
            h = relu(batch_norm(conv3x3(h, p[f"{name}.conv{i}.W"]), p[f"{name}.norm{i}.gamma"], p[f"{name}.norm{i}.beta"]))
        return h

    def max_pool(h):   # 2x2 windows
        n, c, height, width = h.shape
        return h.reshape(n, c, height // 2, 2, width // 2, 2).max(axis=(3, 5))

    def upsample(h):   # bilinear, align_corners=False: output pixel i reads the input at (i + 1/2) / 2 - 1/2
        for axis in (2, 3):
            size = h.shape[axis]
            source = np.maximum((np.arange(2 * size) + 0.5) / 2 - 0.5, 0)
            low = np.floor(source).astype(int)
            weight = (source - low).reshape([-1 if a == axis else 1 for a in range(4)])
            h = np.take(h, low, axis) * (1 - weight) + np.take(h, np.minimum(low + 1, size - 1), axis) * weight
        return h

    v = sinusoidal_encoding(t, time_embed_dim, np) + p["label_embedding.W"][labels]
    x1 = block("down1", x, v)
    x2 = block("down2", max_pool(x1), v)
    h = block("bottleneck", max_pool(x2), v)
    h = block("up2", np.concatenate([upsample(h), x2], axis=1), v)
    h = block("up1", np.concatenate([upsample(h), x1], axis=1), v)
    return np.einsum("nchw,oc->nohw", h, p["out.W"][:, :, 0, 0]) + p["out.b"][:, None, None]


def test_matches_a_plain_numpy_unet_with_the_same_weights():
    """The architecture itself, without torch: skip connections in their order, bilinear upsampling,
    ReLUs, the time and label embeddings where the docstring puts them."""
    np.random.seed(0)
    model = UNet(channels=(3, 4, 5), time_embed_dim=6, num_classes=3)
    x = np.random.standard_normal((4, 1, 8, 12)).astype(np.float32)
    t, labels = np.array([1, 20, 300, 1000]), np.array([0, 1, 2, 3])
    expected = _reference_unet({name: p.data for name, p in model.named_params()}, x, t, labels, 6)
    np.testing.assert_allclose(model(x, t, labels).data, expected, rtol=1e-4, atol=1e-4)


def test_the_gradient_of_the_whole_network_matches_its_finite_differences():
    """One directional derivative of a loss through every layer, in float64: (L(w + e d) - L(w - e d)) / 2e
    against sum(grad * d), d random over all parameters (each op's backward is checked on its own elsewhere;
    this checks how the network joins them)."""
    rng = np.random.default_rng(1)
    model = UNet(channels=(2, 3, 4), time_embed_dim=4, num_classes=2).astype(np.float64)
    x = rng.standard_normal((3, 1, 4, 8))
    t, labels = np.array([5, 50, 500]), np.array([0, 1, 2])
    weights = rng.standard_normal((3, 1, 4, 8))

    def loss():
        return F.sum(model(x, t, labels) * weights)
    model.cleargrads()
    loss().backward()
    params = model.params()
    directions = [rng.standard_normal(p.shape) for p in params]
    analytic = sum(float((p.grad.data * d).sum()) for p, d in zip(params, directions))
    originals, step, values = [p.data.copy() for p in params], 1e-6, []
    for sign in (1, -1):
        for p, original, d in zip(params, originals, directions):
            p.data = original + sign * step * d
        values.append(float(loss().data))
    numeric = (values[0] - values[1]) / (2 * step)
    assert analytic == pytest.approx(numeric, rel=1e-5)


def test_matches_pytorch_with_copied_weights():
    """The same network in PyTorch, same weights: same outputs and same gradients."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as TF

    np.random.seed(0)
    model = UNet(channels=(4, 8, 16), time_embed_dim=10, num_classes=3)
    x = np.random.standard_normal((4, 1, 8, 8)).astype(np.float32)
    t, labels = np.array([1, 20, 300, 1000]), np.array([0, 1, 2, 3])
    y = model(x, t, labels)
    y.backward()
    params = {name: torch.tensor(p.data, requires_grad=True) for name, p in model.named_params()}

    def block(name, h, v):
        p = lambda key: params[f"{name}.{key}"]  # noqa: E731
        v = TF.linear(TF.relu(TF.linear(v, p("time1.W").T, p("time1.b"))), p("time2.W").T, p("time2.b"))
        h = h + v[:, :, None, None]
        for i in (1, 2):
            h = TF.conv2d(h, p(f"conv{i}.W"), None, padding=1)
            h = TF.relu(TF.batch_norm(h, None, None, p(f"norm{i}.gamma"), p(f"norm{i}.beta"), training=True))
        return h

    v = torch.tensor(sinusoidal_encoding(t, 10, np)) + params["label_embedding.W"][torch.tensor(labels)]
    x1 = block("down1", torch.tensor(x), v)
    x2 = block("down2", TF.max_pool2d(x1, 2), v)
    h = block("bottleneck", TF.max_pool2d(x2, 2), v)
    h = block("up2", torch.cat([TF.interpolate(h, scale_factor=2, mode="bilinear"), x2], 1), v)
    h = block("up1", torch.cat([TF.interpolate(h, scale_factor=2, mode="bilinear"), x1], 1), v)
    expected = TF.conv2d(h, params["out.W"], params["out.b"])
    assert np.allclose(y.data, expected.detach().numpy(), atol=1e-4)
    expected.sum().backward()
    for name, param in model.named_params():
        assert np.allclose(param.grad.data, params[name].grad.numpy(), atol=1e-3, rtol=1e-3), name


def test_batch_norm_cancels_a_bias_before_it():
    """Why ConvBlock's convolutions have no bias: in training mode batch norm removes any
    per-channel constant added to its input, so such a bias could never change the output."""
    from zero.layers import BatchNorm
    x = np.random.default_rng(0).standard_normal((8, 3, 5, 5), dtype=np.float32)
    shift = np.array([0.5, -2.0, 7.0], np.float32).reshape(1, 3, 1, 1)
    norm = BatchNorm(3)
    assert np.allclose(norm(x).data, norm(x + shift).data, atol=1e-6)


def test_width_not_divisible_by_4_is_rejected_too():
    model = UNet(channels=(4, 8, 8), time_embed_dim=6)
    with pytest.raises(ValueError, match="divisible by 4"):
        model(np.zeros((1, 1, 8, 6), np.float32), np.array([1]))


@pytest.mark.parametrize("shape", [(1, 1, 6, 8), (1, 1, 8, 10), (1, 1, 30, 28)])
def test_an_even_size_not_divisible_by_4_is_rejected_before_the_second_pooling(shape):
    """Two poolings halve the image twice: an even size that is not a multiple of 4 (6, 10, 30)
    passes the first and fails later, inside a concatenation, unless the size itself is checked."""
    model = UNet(channels=(4, 8, 8), time_embed_dim=6)
    with pytest.raises(ValueError, match="divisible by 4"):
        model(np.zeros(shape, np.float32), np.array([1]))


@pytest.mark.parametrize("in_channels, num_classes", [(2, 3), (1, None)])
def test_unet_from_checkpoint_rebuilds_the_saved_network(tmp_path, in_channels, num_classes):
    """The architecture is read back from the weights: input channels, the three widths, the size of
    the time encoding and the number of classes (the embedding has one more row, "no label")."""
    np.random.seed(0)
    model = UNet(in_channels=in_channels, channels=(4, 6, 10), time_embed_dim=8, num_classes=num_classes)
    x = np.random.standard_normal((2, in_channels, 8, 8)).astype(np.float32)
    t = np.array([3, 700])
    labels = None if num_classes is None else np.array([1, num_classes])
    model(x, t, labels)                               # a training-mode call moves batch norm's running statistics
    path = save_checkpoint(tmp_path / "unet.npz", model)
    loaded, _ = unet_from_checkpoint(path)
    assert loaded.channels == (4, 6, 10) and loaded.time_embed_dim == 8 and loaded.num_classes == num_classes
    model.eval(), loaded.eval()
    expected = model(x, t, labels).data
    assert expected.shape == (2, in_channels, 8, 8)
    np.testing.assert_array_equal(loaded(x, t, labels).data, expected)


@pytest.mark.parametrize("channels", [(), (8, 16), (8, 16, 32, 64)])
def test_a_unet_needs_exactly_three_widths(channels):
    with pytest.raises(ValueError, match=r"UNet: channels must be three widths \(down1, down2, bottleneck\)"):
        UNet(channels=channels, time_embed_dim=8)


def test_a_unet_takes_an_empty_batch():
    """max_pool2d and the bilinear upsampling reshaped with -1, which NumPy cannot resolve for size 0."""
    model = UNet(channels=(4, 8, 8), time_embed_dim=8)
    model.eval()  # in training, batch norm needs values to take statistics of
    y = model(np.zeros((0, 1, 28, 28), np.float32), np.zeros(0, np.int64))
    assert y.shape == (0, 1, 28, 28)
    empty = np.zeros((0, 2, 4, 4), np.float32)
    assert F.max_pool2d(empty, 2).shape == (0, 2, 2, 2) and F.upsample(empty, 2, "bilinear").shape == (0, 2, 8, 8)


def test_time_steps_of_the_wrong_shape_are_refused():
    model = UNet(channels=(4, 8, 8), time_embed_dim=6)
    with pytest.raises(ValueError, match=r"UNet: expected one time step per image, t of shape \(2,\), got \(2, 1\)"):
        model(np.zeros((2, 1, 8, 8), np.float32), np.array([[1], [2]]))


def test_images_without_a_channel_axis_are_refused():
    model = UNet(channels=(4, 8, 8), time_embed_dim=6)
    with pytest.raises(ValueError, match=r"UNet: expected images \(N, C, H, W\).*got \(1, 8, 8\)"):
        model(np.zeros((1, 8, 8), np.float32), np.array([1]))


def test_host_time_steps_go_to_the_images_device_and_device_ones_are_not_copied_to_the_host():
    np.random.seed(0)
    model = UNet(channels=(4, 8, 8), time_embed_dim=6)
    images = np.zeros((2, 1, 8, 8), np.float32)
    with pytest.raises(TypeError, match="UNet: the time steps on strict and the images on cpu"):
        model(images, on("strict", np.array([1, 5])))
    y = model.to("strict")(on("strict", images), np.array([1, 5]))
    assert y.device == "strict" and y.shape == (2, 1, 8, 8)


def test_unet_from_checkpoint_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found: .*absent.npz"):
        unet_from_checkpoint(tmp_path / "absent.npz")


def test_unet_from_checkpoint_names_a_corrupt_file(tmp_path):
    """A text file gave NumPy's advice to load pickled data unsafely."""
    (tmp_path / "bad.npz").write_text("not a checkpoint")
    with pytest.raises(CheckpointRefused, match="cannot read checkpoint .*bad.npz: corrupt or not a checkpoint"):
        unet_from_checkpoint(tmp_path / "bad.npz")   # a SetupError too: a step script shows the message alone


def test_unet_from_checkpoint_refuses_another_network(tmp_path):
    from zero.models import MLP
    model = MLP((3, 4, 2))
    model(np.zeros((1, 3), np.float32))
    path = save_checkpoint(tmp_path / "mlp.npz", model)
    with pytest.raises(CheckpointRefused, match=r"mlp.npz holds no U-Net \(no weight 'down1.conv1.W'\)"):
        unet_from_checkpoint(path)


def test_unet_from_checkpoint_refuses_weights_with_too_few_axes_by_name(tmp_path):
    """A file whose first convolution's weight is a vector raised a bare IndexError."""
    model = UNet(channels=(2, 3, 5), time_embed_dim=6)
    arrays = checkpoint_arrays(model)
    arrays["model/down1.conv1.W"] = np.zeros(3, np.float32)
    path = tmp_path / "flat.npz"
    save_npz_atomically(path, arrays)
    with pytest.raises(CheckpointRefused, match=r"flat.npz holds no U-Net \(a weight has the wrong number of axes: "
                                                r"down1.conv1.W \(3,\), down1.time1.W \(6, 1\)\)"):
        unet_from_checkpoint(path)


def test_describe_names_the_architecture():
    assert UNet(channels=(4, 8, 8), time_embed_dim=6, num_classes=3).describe() == \
        "channels=(4, 8, 8), time_embed_dim=6, num_classes=3"


def test_sinusoidal_encoding_keeps_large_time_steps_exact():
    v = sinusoidal_encoding(np.array([4097, 40001]), 2, np)
    assert v[:, 0] == pytest.approx([math.sin(4097), math.sin(40001)], abs=1e-3)


def test_a_float64_unet_encodes_its_time_steps_in_float64():
    """The time MLP's linear layers refuse the float32 sinusoidal encoding of a float64 model
    (model.astype(np.float64) for a gradient check raised TypeError in the unconditional U-Net)."""
    model = UNet(1, (2, 2, 2), 4).astype(np.float64)
    y = model(np.random.default_rng(0).standard_normal((2, 1, 4, 4)), np.array([1, 2]))
    assert y.dtype == np.float64


@pytest.mark.parametrize("labels", [np.array([3]), np.array(3), np.array([[1], [2], [3], [0]])])
def test_a_conditional_unet_wants_one_label_per_image(labels):
    """One label was spread over the whole batch (in training too); (N, 1) failed in a reshape."""
    model = UNet(channels=(2, 2, 2), time_embed_dim=4, num_classes=5)
    x = np.zeros((4, 1, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"UNet: expected one label per image, labels of shape \(4,\)"):
        model(x, np.full(4, 3), labels)
