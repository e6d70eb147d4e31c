"""Generative adversarial networks (appendix): a generator and a discriminator in a game.

The generator G maps noise z ~ N(0, I) to an image; the discriminator D maps an image to
the probability that it is real, D(x) = sigmoid(logit(x)). They play (Goodfellow et al. 2014)

    min_G max_D  E_x[log D(x)] + E_z[log(1 - D(G(z)))].

D's side is a binary classification: minimise the cross-entropy
    L_D = -mean log D(x) - mean log(1 - D(G(z))).
For a fixed G whose images have density p_g, the best D is D*(x) = p_data(x) / (p_data(x) + p_g(x)),
and against it the game's value is -log 4 + 2 JS(p_data || p_g) (Jensen-Shannon divergence): smallest
exactly when p_g = p_data, where D* = 1/2 everywhere. So G learns p(x) without ever writing it down.
G's side, as written, minimises mean log(1 - D(G(z))) (the *minimax* loss). Early in
training D wins easily, D(G(z)) ~ 0, and this loss is flat there: its gradient with
respect to the logit l is -sigmoid(l) = -D(G(z)), close to zero. The *non-saturating* loss
    L_G = -mean log D(G(z))
has the same fixed point but gradient -(1 - D(G(z))) ~ -1 there, so G learns at once.

Everything is written on logits with log D = -softplus(-l) and log(1 - D) = -softplus(l),
which are exact and never take the log of 0.

Images are flat (N, 784) in [0, 1] for both model families, so one training loop serves
the MLP GAN and the DCGAN (Radford et al. 2016: transposed convolutions and batch norm in
G, strided convolutions and leaky ReLU in D).

    generator, discriminator = DCGenerator(latent_size=64), DCDiscriminator()
    history = train_gan(generator, discriminator, Adam(generator.params(), 2e-4, betas=(0.5, 0.999)), ...)
"""
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import zero.functions as F
from zero.backend import get_backend, seed, standard_normal, to_numpy
from zero.cli import plural
from zero.core import Variable, no_grad, test_mode
from zero.data import Dataset, epoch_loader
from zero.errors import CheckpointRefused
from zero.layers import BatchNorm, Conv2d, ConvTranspose2d, Linear
from zero.metrics import score_samples
from zero.models import Model
from zero.plot import plot_moving_average
from zero.training import (checkpoint_arrays, finite_loss, loss_history, restore_random_state, resumed_after,
                           resuming, run_settings, stage_checkpoint)
from zero.utils import check_count, save_npz_files_atomically
from zero.vae import latent_walk

GENERATOR_LOSSES = ("non_saturating", "minimax")
HISTORY_KEYS = ("d_loss", "g_loss", "d_real", "d_fake")


# =============================================================================
# The losses, on the discriminator's logits (N,)
# =============================================================================
def discriminator_loss(real_logits, fake_logits):
    """L_D = -mean log D(x) - mean log(1 - D(G(z))) = mean softplus(-l_real) + mean softplus(l_fake)."""
    return F.mean(F.softplus(-real_logits)) + F.mean(F.softplus(fake_logits))


def generator_loss(fake_logits, kind="non_saturating"):
    """G's loss on the logits of its images:
    'non_saturating': -mean log D(G(z)) = mean softplus(-l);
    'minimax':         mean log(1 - D(G(z))) = -mean softplus(l)."""
    if kind == "non_saturating":
        return F.mean(F.softplus(-fake_logits))
    if kind == "minimax":
        return -F.mean(F.softplus(fake_logits))
    raise ValueError(f"generator loss must be one of {GENERATOR_LOSSES}, got {kind!r}")


def logit_gradient(d_fake, kind):
    """d(loss)/d(logit) of G's loss for one image that D judges real with probability d_fake,
    computed by backward through generator_loss (host float). Analytic: minimax -d_fake,
    non-saturating -(1 - d_fake)."""
    logit = Variable(np.array([np.log(d_fake) - np.log1p(-d_fake)]))   # l = log(D / (1 - D))
    generator_loss(logit, kind).backward()
    return float(logit.grad.data[0])


# =============================================================================
# Models: images (N, 784) in [0, 1], codes (N, latent_size)
# =============================================================================
def leaky_relu(x):
    """Leaky ReLU with slope 0.2, DCGAN's choice for the discriminator."""
    return F.leaky_relu(x, 0.2)


class _Generator(Model):
    """Common part: latent size, and sampling z ~ N(0, I) on the model's device."""

    def __init__(self, latent_size):
        super().__init__()
        self.latent_size = latent_size

    def latent(self, n):
        """z ~ N(0, I): (n, latent_size) array on the model's device."""
        xp = get_backend(self.device).xp
        return standard_normal(xp, (n, self.latent_size), self.dtype)  # the parameters' dtype

    def sample(self, n):
        """n generated images (n, 784) as an array on the model's device (no graph). G runs in test
        mode, as after eval(): batch norm normalises with its running statistics and leaves them as
        they are, so an image does not depend on the others drawn with it."""
        check_count(f"{type(self).__name__}.sample", "n", n)
        with no_grad(), test_mode():
            return self(self.latent(n)).data

    def latent_walks(self, rows=4, steps=10):
        """`rows` straight walks of `steps` images each, between pairs of fresh codes z_a, z_b ~ N(0, I)
        (zero.vae.latent_walk, here in G's latent space): a (rows * steps, 784) host array, one walk
        per row of a grid of `steps` columns. In test mode, as `sample`."""
        check_count("latent_walks", "rows", rows)   # steps: checked by latent_walk
        codes = self.latent(2 * rows)
        with test_mode():
            return np.concatenate([to_numpy(latent_walk(self, codes[2 * row], codes[2 * row + 1], steps))
                                   for row in range(rows)])


class MLPGenerator(_Generator):
    """z (N, latent) -> [Linear -> batch norm -> ReLU] x 2 -> Linear -> sigmoid -> x (N, 784).

    Batch norm keeps G's hidden units spread out; without it this small G collapsed onto a
    single digit in our runs while D won the game."""

    def __init__(self, latent_size=64, hidden_size=512, image_size=784):
        super().__init__(latent_size)
        self.hidden1 = Linear(hidden_size, in_size=latent_size)
        self.norm1 = BatchNorm(hidden_size)
        self.hidden2 = Linear(hidden_size, in_size=hidden_size)
        self.norm2 = BatchNorm(hidden_size)
        self.out = Linear(image_size, in_size=hidden_size)

    def forward(self, z):
        h = F.relu(self.norm1(self.hidden1(z)))
        h = F.relu(self.norm2(self.hidden2(h)))
        return F.sigmoid(self.out(h))


class MLPDiscriminator(Model):
    """x (N, 784) -> [Linear -> leaky ReLU -> dropout] x 2 -> Linear -> logit (N,).

    Dropout (p = 0.3 in training) keeps D from memorising the training images and winning too early."""

    def __init__(self, hidden_size=256, image_size=784, dropout=0.3):
        super().__init__()
        self.dropout = dropout
        self.hidden1 = Linear(hidden_size, in_size=image_size)
        self.hidden2 = Linear(hidden_size, in_size=hidden_size)
        self.out = Linear(1, in_size=hidden_size)

    def forward(self, x):
        h = F.dropout(leaky_relu(self.hidden1(x)), self.dropout)
        h = F.dropout(leaky_relu(self.hidden2(h)), self.dropout)
        return F.reshape(self.out(h), (-1,))


class DCGenerator(_Generator):
    """z (N, latent) -> Linear -> (N, 2w, 7, 7) -> ConvT 4x4/2 -> (N, w, 14, 14) -> ConvT 4x4/2
    -> (N, 1, 28, 28) -> sigmoid, flattened to (N, 784). Batch norm and ReLU after the first two."""

    def __init__(self, latent_size=64, width=32):
        super().__init__(latent_size)
        self.width = width
        self.project = Linear(2 * width * 7 * 7, in_size=latent_size)
        self.norm0 = BatchNorm(2 * width * 7 * 7)
        self.up1 = ConvTranspose2d(width, 4, stride=2, padding=1, in_channels=2 * width)
        self.norm1 = BatchNorm(width)
        self.up2 = ConvTranspose2d(1, 4, stride=2, padding=1, in_channels=width)

    def forward(self, z):
        h = F.relu(self.norm0(self.project(z)))
        h = F.reshape(h, (-1, 2 * self.width, 7, 7))
        h = F.relu(self.norm1(self.up1(h)))                   # (N, w, 14, 14)
        return F.reshape(F.sigmoid(self.up2(h)), (-1, 784))   # (N, 1, 28, 28) -> (N, 784)


class DCDiscriminator(Model):
    """x (N, 784) -> (N, 1, 28, 28) -> Conv 4x4/2 (w) -> leaky ReLU -> Conv 4x4/2 (2w) -> batch norm
    -> leaky ReLU -> Linear -> logit (N,)."""

    def __init__(self, width=32):
        super().__init__()
        self.down1 = Conv2d(width, 4, stride=2, padding=1, in_channels=1)
        self.down2 = Conv2d(2 * width, 4, stride=2, padding=1, in_channels=width)
        self.norm2 = BatchNorm(2 * width)
        self.out = Linear(1, in_size=2 * width * 7 * 7)

    def forward(self, x):
        h = leaky_relu(self.down1(F.reshape(x, (-1, 1, 28, 28))))   # (N, w, 14, 14)
        h = leaky_relu(self.norm2(self.down2(h)))                   # (N, 2w, 7, 7)
        return F.reshape(self.out(F.flatten(h)), (-1,))


# =============================================================================
# Training: alternate one step of D and one step of G per batch
# =============================================================================
def check_batch_size(name, batch_size, num_images):
    """Refuse a batch size train_gan cannot train with on num_images images (ValueError, starting with
    `name`): every batch is full (drop_last), and batch norm needs two examples, so 2..num_images.
    Step scripts call it on their --batch-size as soon as the data are read."""
    if not 2 <= batch_size <= num_images:
        raise ValueError(f"{name} must lie in 2..{num_images} ({num_images:,} training images: every batch is "
                         f"full, and batch norm needs two examples per batch), got {batch_size}")


def train_gan(generator, discriminator, g_optimizer, d_optimizer, images, epochs, batch_size=64, device=None,
              seed=0, loss="non_saturating", history=None, start_epoch=0, description="GAN", checkpoint=None,
              settings=None):
    """Train on host images (N, 784) in [0, 1], epochs start_epoch+1 .. epochs, with a progress bar.

    Each batch: a D step on L_D with real x and detached G(z), then a G step on generator_loss
    (kind `loss`) through the updated D. Appends per-step numbers to history lists 'd_loss',
    'g_loss', 'd_real' (mean D(x)) and 'd_fake' (mean D(G(z)) before the D step); returns history.
    With a `checkpoint` path, both players and their optimizers are saved there after every epoch
    (save_gan, with `settings`), so an interrupted run can resume from its last epoch.
    The batches go to `device`, by default the players' (both on one device). A loss of NaN or inf
    stops the run (finite_loss: TrainingDiverged).
    """
    if generator.device != discriminator.device:   # G(z) goes into D: it would fail at the first batch
        raise ValueError(f"train_gan: the generator is on {generator.device}, the discriminator on "
                         f"{discriminator.device}: move both to one device (.to(device))")
    device = discriminator.device if device is None else device
    if loss not in GENERATOR_LOSSES:
        raise ValueError(f"generator loss must be one of {GENERATOR_LOSSES}, got {loss!r}")
    check_batch_size("train_gan: batch_size", batch_size, len(images))
    history = loss_history(history, HISTORY_KEYS)
    generator.train()
    discriminator.train()
    for epoch in range(start_epoch + 1, epochs + 1):
        loader = epoch_loader(Dataset(images), batch_size, seed, epoch, device, discriminator.dtype, drop_last=True)
        with tqdm(loader, desc=f"{description} epoch {epoch}/{epochs}", leave=False) as bar:
            for batch, x in enumerate(bar, start=1):
                # explicit host copies of four numbers per step, for the curves; each loss is checked
                # before its backward pass (finite_loss: NaN stops the run)
                where = f"{description} training epoch {epoch}, batch {batch} of {len(loader)}"
                fake = generator(generator.latent(len(x)))
                # D step: fake.data is a constant, so no gradient flows into G here
                real_logits, fake_logits = discriminator(x), discriminator(fake.data)
                d_loss = discriminator_loss(real_logits, fake_logits)
                history["d_loss"].append(finite_loss(d_loss, f"{where}, D's step"))
                d_optimizer.zero_grad()
                d_loss.backward()
                d_optimizer.step()
                # G step: through the updated D into G (D's gradients are cleared before its next step)
                g_loss = generator_loss(discriminator(fake), loss)
                history["g_loss"].append(finite_loss(g_loss, f"{where}, G's step"))
                g_optimizer.zero_grad()
                g_loss.backward()
                g_optimizer.step()
                with no_grad():
                    history["d_real"].append(F.sigmoid(real_logits).data.mean().item())
                    history["d_fake"].append(F.sigmoid(fake_logits).data.mean().item())
                bar.set_postfix(d_loss=f"{history['d_loss'][-1]:.3f}", g_loss=f"{history['g_loss'][-1]:.3f}",
                                refresh=False)
        steps = len(loader)
        means = {key: float(np.mean(history[key][-steps:])) for key in HISTORY_KEYS}
        print(f"{description} epoch {epoch}/{epochs}: L_D {means['d_loss']:.3f}, L_G {means['g_loss']:.3f}, "
              f"D(x) {means['d_real']:.2f}, D(G(z)) {means['d_fake']:.2f}")
        if checkpoint is not None:   # every epoch: Ctrl-C loses at most the one it was in
            save_gan(checkpoint, generator, discriminator, g_optimizer, d_optimizer, epoch, history, settings)
    return history


def generator_gradient_norm(generator, discriminator, n, kind):
    """||d L_G / d theta_G|| (L2 over all of G's parameters) for one batch of n fresh codes: a float.
    Leaves no gradients behind."""
    loss = generator_loss(discriminator(generator(generator.latent(n))), kind)
    generator.cleargrads()
    loss.backward()
    squares = sum(float((param.grad.data * param.grad.data).sum().item()) for param in generator.params())
    generator.cleargrads()
    discriminator.cleargrads()
    return squares ** 0.5


def plot_game(ax_loss, ax_prob, history, title):
    """The two panels every GAN run shows, from train_gan's history (moving averages): both players'
    losses on ax_loss (titled `title`), and what D believes of real and generated images on ax_prob
    (1/2 where it cannot tell them apart)."""
    plot_moving_average(ax_loss, history["d_loss"], label="L_D (discriminator)")
    plot_moving_average(ax_loss, history["g_loss"], label="L_G = -log D(G(z)) (generator)")
    ax_loss.set(title=title, xlabel="step", ylabel="loss")
    ax_loss.legend()
    plot_moving_average(ax_prob, history["d_real"], label="D(x), real images")
    plot_moving_average(ax_prob, history["d_fake"], label="D(G(z)), generated")
    ax_prob.axhline(0.5, color="k", ls="--", lw=0.8, label="1/2: D cannot tell")
    ax_prob.set(title="what D believes", xlabel="step", ylabel="probability 'real'", ylim=(0, 1))
    ax_prob.legend()


# =============================================================================
# Checkpoints of both players, and scoring with the course's MNIST classifier
# =============================================================================
def discriminator_path(path):
    """The discriminator's checkpoint file next to the generator's: x.npz -> x_discriminator.npz."""
    path = Path(path)
    return path.with_name(path.stem + "_discriminator.npz")


def save_gan(path, generator, discriminator, g_optimizer, d_optimizer, epoch, history, settings=None):
    """Two checkpoints saved as one: G, its optimizer and the history at path; D and its optimizer
    beside it. Both are written before either replaces its old file, and once one has, the other
    follows even on an error or Ctrl-C (zero.utils.save_npz_files_atomically): an interrupted save
    leaves the previous pair or the new one, as load_gan accepts only a pair from one epoch.
    settings: the run's options (zero.training.run_settings), kept in both."""
    save_npz_files_atomically({
        path: checkpoint_arrays(generator, g_optimizer, epoch, history, settings),
        discriminator_path(path): checkpoint_arrays(discriminator, d_optimizer, epoch, settings=settings)})


def load_gan(path, generator, discriminator, g_optimizer, d_optimizer, settings=None):
    """Restore what save_gan wrote; returns {'epoch', 'history', 'random_state'} of the generator's
    file. Both files are checked before either player changes (settings: as load_checkpoint); a
    missing one raises FileNotFoundError naming it, a refused one ValueError."""
    apply_generator, state = stage_checkpoint(path, generator, g_optimizer, settings)
    if not discriminator_path(path).exists():   # a GAN resumes with both players or not at all
        raise FileNotFoundError(f"checkpoint {path} has no discriminator beside it: {discriminator_path(path)} is "
                                f"missing{_completing_hint(path, discriminator, d_optimizer, settings, state)}. "
                                f"Put that file back, or start a new run without --resume (or with another "
                                f"--checkpoint)")
    apply_discriminator, d_state = stage_checkpoint(discriminator_path(path), discriminator, d_optimizer, settings)
    if d_state["epoch"] != state["epoch"]:
        hint = _completing_hint(path, discriminator, d_optimizer, settings, state)
        raise ValueError(f"checkpoints {path} and {discriminator_path(path)} are from different epochs "
                         f"({state['epoch']} and {d_state['epoch']}){hint}")
    apply_discriminator()
    apply_generator()
    return state


def _completing_hint(path, discriminator, d_optimizer, settings, state):
    """'; rename ...' when save_gan left D's new checkpoint as a temporary file beside G's (of G's epoch), else ''."""
    completing = _discriminator_left_by_a_save(path, discriminator, d_optimizer, settings, state["epoch"])
    return (f"; a save stopped between its two renames: rename {completing} to {discriminator_path(path)} "
            f"to complete the newer pair" if completing else "")


def _discriminator_left_by_a_save(path, discriminator, d_optimizer, settings, epoch):
    """The temporary file of D's checkpoint that save_gan wrote and did not rename (it renames G's first,
    so a pair it left mixed is a new G beside an old D): one that fits this discriminator and holds
    `epoch`, G's. None if there is none (a save killed while writing leaves other, partial ones)."""
    target = discriminator_path(path)
    for temporary in sorted(target.parent.glob(f".{target.name}.*.tmp")):
        try:
            _, state = stage_checkpoint(temporary, discriminator, d_optimizer, settings)   # changes nothing
        except (ValueError, OSError):
            continue
        if state["epoch"] == epoch:
            return temporary
    return None


def train_gan_or_resume(generator, discriminator, g_optimizer, d_optimizer, images, args, checkpoint,
                        description="GAN"):
    """The training block of the GAN scripts: continue from `checkpoint` (save_gan's two files)
    when `--resume` is given and it exists, and train with the non-saturating loss up to
    `args.epochs`, saving after every epoch. args: the script's options (epochs, batch_size, device,
    seed, resume; epochs raised to the checkpoint's if it holds more). Returns the loss history."""
    history, start_epoch = None, 0
    settings = run_settings(args, exclude=("heldout_limit",))   # held-out images only score the result
    seed(args.seed, args.device)   # the codes z and dropout masks (NumPy's generator and the device's)
    if resuming(checkpoint, args):
        try:
            state = load_gan(checkpoint, generator, discriminator, g_optimizer, d_optimizer, settings)
        except (ValueError, FileNotFoundError) as error:   # no pair that fits this run: the reason alone
            raise CheckpointRefused(str(error)) from None
        restore_random_state(state)   # continue the stream where the saved run left it
        history, start_epoch = state["history"], state["epoch"]
        resumed_after(checkpoint, start_epoch, args)
    start = time.perf_counter()
    history = train_gan(generator, discriminator, g_optimizer, d_optimizer, images, args.epochs, args.batch_size,
                        args.device, args.seed, "non_saturating", history, start_epoch, description=description,
                        checkpoint=checkpoint, settings=settings)
    if args.epochs > start_epoch:
        print(f"trained {plural(args.epochs - start_epoch, 'epoch')} in {time.perf_counter() - start:.1f} s")
        print(f"checkpoints saved: {checkpoint} and its _discriminator file (continue with --resume --epochs N)")
    return history


def score_generator(generator, classifier, reference, n=1000, batch_size=500):
    """zero.metrics.score_samples for n generated images against host reference images (M, 784):
    {'class_histogram', 'frechet_distance', 'predicted', 'images' (n, 784) host array}."""
    generator.eval()
    images = np.concatenate([to_numpy(generator.sample(min(batch_size, n - start)))
                             for start in range(0, n, batch_size)])
    scores = score_samples(classifier, images.reshape(-1, 1, 28, 28), reference=reference.reshape(-1, 1, 28, 28))
    scores["images"] = images
    return scores
