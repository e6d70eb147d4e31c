"""The U-Net that predicts the noise in a diffusion model (steps 9 and 10).

    model = UNet(channels=(64, 128, 256))                  # the book's network
    eps_hat = model(x_t, t)                                # x_t (N, 1, 28, 28), t (N,) ints 1..T
    model = UNet(channels=(64, 128, 256), num_classes=10)  # step 10: eps_hat = model(x_t, t, labels)

The shape of a U: two down blocks halve the image twice (28 -> 14 -> 7), a
bottleneck works at the coarsest scale, two up blocks double it back, and
skip connections hand each up block the features of the down block at the
same scale, so fine detail does not have to squeeze through the bottleneck:

    x ─ down1 ──────────────────────────── cat ─ up1 ─ 1x1 conv ─ eps_hat
          └ maxpool ─ down2 ──────── cat ─ up2 ┘ upsample
                        └ maxpool ─ bottleneck ┘ upsample

Every block is conv3x3 - batch norm - ReLU, twice. The time step t enters
every block: a sinusoidal encoding of t (as in the Transformer) goes through
a small MLP per block and is added to the block's input, one number per channel.
For class-conditional models an embedding of the label is added to the time
encoding first; label `num_classes` is the extra "no label" class that
classifier-free guidance trains and samples with.
"""
import math

import zero.functions as F
from zero.backend import get_array_module, to_device_beside
from zero.core import Variable
from zero.errors import CheckpointRefused
from zero.layers import BatchNorm, Conv2d, Embedding, Layer, Linear
from zero.models import Model
from zero.training import load_checkpoint, read_checkpoint

BOOK_CHANNELS = (64, 128, 256)
BOOK_TIME_EMBED_DIM = 100


def sinusoidal_encoding(t, dim, xp):
    """Positions t (N,) integers -> (N, dim) float32 array on xp's device:

        v[2i] = sin(t / 10000^(2i/dim)),   v[2i+1] = cos(t / 10000^(2i/dim))

    Nearby t get similar vectors; the many frequencies let the network tell every t apart. Each
    sine and cosine pair shares one frequency, as in the Transformer (Vaswani et al. 2017); the
    book's code takes the cosine's from the odd index, cos(t / 10000^((2i+1)/dim)), a slightly
    different but equally usable encoding (a checkpoint trained with one needs the same one).
    """
    t = xp.asarray(t).astype(xp.float32)
    frequencies = xp.exp(-math.log(10000.0) * xp.arange(0, dim, 2, dtype=xp.float32) / dim)  # (ceil(dim/2),)
    angles = t[:, None] * frequencies[None, :]                                                 # (N, ceil(dim/2))
    encoding = xp.empty((len(t), dim), dtype=xp.float32)
    encoding[:, 0::2] = xp.sin(angles)
    encoding[:, 1::2] = xp.cos(angles[:, :dim // 2])
    return encoding


class ConvBlock(Layer):
    """(conv3x3 - batch norm - ReLU) x 2, after adding the time embedding per channel.

    x (N, in_channels, H, W), v (N, time_embed_dim) -> (N, out_channels, H, W).
    The convolutions have no bias: batch norm subtracts each channel's mean right
    after them, which removes any constant added per channel (its gradient would
    be zero), and its beta is the bias of the block. (The book's PyTorch code keeps
    the default bias=True; the network computes the same functions without it.)
    """

    def __init__(self, in_channels, out_channels, time_embed_dim):
        super().__init__()
        self.conv1 = Conv2d(out_channels, 3, padding=1, in_channels=in_channels, bias=False)
        self.norm1 = BatchNorm(out_channels)
        self.conv2 = Conv2d(out_channels, 3, padding=1, in_channels=out_channels, bias=False)
        self.norm2 = BatchNorm(out_channels)
        self.time1 = Linear(in_channels, in_size=time_embed_dim)   # the per-block MLP for t
        self.time2 = Linear(in_channels, in_size=in_channels)
        self.in_channels = in_channels

    def forward(self, x, v):
        v = self.time2(F.relu(self.time1(v)))                       # (N, in_channels)
        x = x + F.reshape(v, (len(v), self.in_channels, 1, 1))      # one shift per channel
        x = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(x)))


class UNet(Model):
    """Noise predictor eps_theta(x_t, t[, label]) for (N, in_channels, H, W) images, H and W divisible by 4.

    channels: widths of (down1, down2, bottleneck); the book uses (64, 128, 256).
    time_embed_dim: size of the sinusoidal encoding of t. num_classes: None for an
    unconditional model; otherwise labels 0..num_classes-1 are classes and label
    num_classes means "no label" (classifier-free guidance).
    """

    def __init__(self, in_channels=1, channels=BOOK_CHANNELS, time_embed_dim=BOOK_TIME_EMBED_DIM,
                 num_classes=None):
        super().__init__()
        if len(channels) != 3:
            raise ValueError(f"UNet: channels must be three widths (down1, down2, bottleneck), got {channels!r}")
        c1, c2, c3 = channels
        self.channels = tuple(channels)
        self.time_embed_dim = time_embed_dim
        self.num_classes = num_classes
        self.down1 = ConvBlock(in_channels, c1, time_embed_dim)
        self.down2 = ConvBlock(c1, c2, time_embed_dim)
        self.bottleneck = ConvBlock(c2, c3, time_embed_dim)
        self.up2 = ConvBlock(c3 + c2, c2, time_embed_dim)     # input: upsampled bottleneck + skip from down2
        self.up1 = ConvBlock(c2 + c1, c1, time_embed_dim)     # input: upsampled up2 + skip from down1
        self.out = Conv2d(in_channels, 1, in_channels=c1)      # 1x1 conv back to image channels
        if num_classes is not None:
            self.label_embedding = Embedding(num_classes + 1, time_embed_dim)  # last row: "no label"

    @property
    def no_label(self):
        """The label that means "unconditional" (classifier-free guidance)."""
        return self.num_classes

    def forward(self, x, t, labels=None):
        """x (N, C, H, W) Variable or array, t (N,) integer array, labels (N,) integer array
        (conditional models only) -> predicted noise (N, C, H, W)."""
        x = x if isinstance(x, Variable) else Variable(x, requires_grad=False)
        if x.ndim != 4 or x.shape[2] % 4 or x.shape[3] % 4:
            raise ValueError(f"UNet: expected images (N, C, H, W) with H and W divisible by 4, got {x.shape}")
        if x.shape[1] != self.down1.in_channels:   # one channel would broadcast up to three silently
            raise ValueError(f"UNet: this model takes images of {self.down1.in_channels} channel(s), got {x.shape[1]} "
                             f"(images of shape {x.shape})")
        xp = get_array_module(x.data)
        t = to_device_beside(t, x.device, "UNet: the time steps", "the images")
        if t.shape != (len(x),):
            raise ValueError(f"UNet: expected one time step per image, t of shape ({len(x)},), got {t.shape}")
        encoding = sinusoidal_encoding(t, self.time_embed_dim, xp).astype(self.dtype, copy=False)  # a float64 model
        v = Variable(encoding, requires_grad=False)
        if self.num_classes is not None:
            if labels is None:
                raise ValueError("UNet: this model is class-conditional: pass labels "
                                 f"(use {self.no_label} for 'no label')")
            labels = to_device_beside(labels, x.device, "UNet: the labels", "the images")
            if labels.shape != (len(x),):  # one label would be broadcast over the batch, silently
                raise ValueError(f"UNet: expected one label per image, labels of shape ({len(x)},), got {labels.shape}")
            v = v + self.label_embedding(labels)
        elif labels is not None:
            raise ValueError("UNet: this model is unconditional (num_classes=None) but labels were given")

        x1 = self.down1(x, v)                                   # (N, c1, H, W)
        x2 = self.down2(F.max_pool2d(x1, 2), v)                 # (N, c2, H/2, W/2)
        h = self.bottleneck(F.max_pool2d(x2, 2), v)             # (N, c3, H/4, W/4)
        h = F.upsample(h, 2, mode="bilinear")                   # (N, c3, H/2, W/2)
        h = self.up2(F.concatenate([h, x2], axis=1), v)         # (N, c2, H/2, W/2)
        h = F.upsample(h, 2, mode="bilinear")                   # (N, c2, H, W)
        h = self.up1(F.concatenate([h, x1], axis=1), v)         # (N, c1, H, W)
        return self.out(h)                                      # (N, C, H, W)

    def describe(self):
        return f"channels={self.channels}, time_embed_dim={self.time_embed_dim}, num_classes={self.num_classes}"


def unet_from_checkpoint(path):
    """(model, state): the UNet stored in a zero.training checkpoint, its architecture read from the
    weight shapes (channels, time_embed_dim, in_channels, num_classes), weights loaded on the CPU, and
    what load_checkpoint returns of the rest (epoch, history, random_state). A file that
    holds no readable U-Net raises CheckpointRefused (a ValueError that a step script shows as its
    message alone); a missing one FileNotFoundError."""
    try:
        return _unet_from_checkpoint(path)
    except ValueError as error:
        raise CheckpointRefused(str(error)) from None


def _unet_from_checkpoint(path):
    stored = read_checkpoint(path)  # a missing or corrupt file: an error that names it
    shapes = {key[len("model/"):]: array.shape for key, array in stored.items() if key.startswith("model/")}
    try:
        in_channels = shapes["down1.conv1.W"][1]
        channels = tuple(shapes[f"{block}.conv1.W"][0] for block in ("down1", "down2", "bottleneck"))
        time_embed_dim = shapes["down1.time1.W"][0]
    except KeyError as error:
        raise ValueError(f"checkpoint {path} holds no U-Net (no weight {error})") from None
    except IndexError:   # a weight with fewer axes than a convolution's or a linear layer's
        found = ", ".join(f"{name} {shapes.get(name)}" for name in ("down1.conv1.W", "down1.time1.W"))
        raise ValueError(f"checkpoint {path} holds no U-Net (a weight has the wrong number of axes: {found})") from None
    labels = shapes.get("label_embedding.W")
    model = UNet(in_channels, channels, time_embed_dim, num_classes=None if labels is None else labels[0] - 1)
    state = load_checkpoint(path, model)
    return model, state
