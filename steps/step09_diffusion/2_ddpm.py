"""Step 9.2 - DDPM: learn to run the noise process backwards, then generate digits from noise.

Step 9.1 destroyed a digit in T = 1000 small noise steps. If we could undo one step,
p(x_{t-1} | x_t), we could start from pure noise x_T ~ N(0, I) and walk back to a digit.
For small steps the reverse is Gaussian too, and given x_0 it is known exactly:

    q(x_{t-1} | x_t, x_0) = N(mu~_t, sigma_t^2 I),   sigma_t^2 = beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t)
    mu~_t = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x_0 + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t

As in the hierarchical VAE of step 8, the ELBO of this chain is a sum of one KL per level, plus a
reconstruction term (log p(x_0 | x_1)) and a prior term KL(q(x_T | x_0) || p(x_T)) that has nothing
to learn (x_T is pure noise by construction). Writing
x_0 through the noise that made x_t (x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps), each KL
becomes, up to a weight, a regression of that noise; Ho et al. (2020) drop the weights:

    L = E_{t, x_0, eps} || eps - eps_theta(x_t, t) ||^2,   t ~ U{1..T}                              (9.3)

(zero.diffusion computes it as a mean over the 784 pixels, ||.||^2 / 784: the same minimiser, and a
number that does not depend on the image size; every loss this script prints is per pixel.)

eps_theta is a U-Net (zero.unet.UNet). Sampling (ancestral, Ho et al. Algorithm 2) puts the
predicted noise into the posterior mean, from t = T down to 1:

    x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_theta(x_t, t)) / sqrt(alpha_t) + sigma_t z,   z ~ N(0, I)   (9.4)

with no noise at the last step (t = 1, where sigma_1 = 0 anyway). Pixels are scaled to [-1, 1].
Every image costs T = 1000 calls of the U-Net, the price of small steps: step 9.3 samples the same
trained model in 10 to 100.

Budgets: `--config cpu` (default) is a smaller U-Net (channels 32/64/128) on 8,000 training images,
10 epochs: 411.5 s of training in README's course run on 2 nearly idle cores of an AMD EPYC of
the Zen 4 family, with the convolutions on two threads of zero's own (443-579 s in five runs before,
on one thread and OpenBLAS's two), 520.6 s on one of the Zen 3 family (2026-12-05), about twice
that with other work beside it (1151.9 s in one run). Held-out loss 0.0358 per pixel, standard
error 0.0012, against a training loss of 0.0334 in the last epoch (Zen 4, 2026-12-06; 0.0354 in the
run before, whose convolutions grouped their sums otherwise); earlier course runs drew other
t and noise for the held-out images and printed 0.0322-0.0326, within 2 standard errors of the
difference of two such draws (0.0017). The last digits depend on the BLAS kernel and on zero's
code (MEASUREMENTS.md gives the history);
`--config book` is the book's network (64/128/256, batch 128, 10 epochs on all training images) for a CUDA GPU
(`--device cuda`).

    python steps/step09_diffusion/2_ddpm.py                          # CPU default
    python steps/step09_diffusion/2_ddpm.py --config book --device cuda
    python steps/step09_diffusion/2_ddpm.py --resume --epochs 15     # continue from the checkpoint
"""
# needs: mnist
import time

import numpy as np
from tqdm import tqdm

import zero
from zero.backend import get_backend, reseed_device, standard_normal, to_numpy
from zero.cli import (check, checkpoint_path, comma_list, config_defaults, fill_from_config, out_dir, parse_options,
                      plural, positive_float, positive_int, step_parser)
from zero.data import DataLoader, Dataset
from zero.diffusion import Diffusion, to_images, to_model_range
from zero.optimizers import Adam
from zero.plot import figures, save, save_image_grid, save_step_loss, show
from zero.training import add_data_options, finite_loss, mnist_splits_from, resume, run_settings, save_checkpoint
from zero.unet import UNet

CONFIGS = {
    # channels of (down1, down2, bottleneck), time_embed_dim, epochs, batch size, learning rate, training images
    "cpu": dict(channels="32,64,128", time_embed_dim=100, epochs=10, batch_size=32, lr=1e-3, train_limit=8000),
    "book": dict(channels="64,128,256", time_embed_dim=100, epochs=10, batch_size=128, lr=1e-3, train_limit=None),
}
QUICK = dict(channels="4,8,8", time_embed_dim=8, epochs=1, batch_size=32, lr=1e-3, train_limit=256)
T = 1000  # time steps, linear betas 1e-4 .. 0.02, as the book

parser = step_parser(__doc__, training=True, samples=36)
add_data_options(parser)
parser.add_argument("--config", default=None, choices=sorted(CONFIGS), help="hyper-parameter set (default: cpu)")
parser.add_argument("--channels", default=None, help="U-Net widths, e.g. 16,32,64")
parser.add_argument("--time-embed-dim", type=positive_int, default=None)
parser.add_argument("--lr", type=positive_float, default=None)
config_defaults(parser, CONFIGS)   # the options a --config sets: None unless given
args = parse_options(parser, quick=dict(samples=8, heldout_limit=256))
fill_from_config(parser, args, CONFIGS, QUICK)    # the options not given take the config's values
channels = tuple(comma_list(parser, args.channels, int, "--channels", minimum=1, length=3))   # the U-Net's 3 widths
folder = out_dir(args, __file__)
checkpoint = checkpoint_path(args, __file__)
plt = figures(args.show)
zero.seed(args.seed, args.device)              # weights (NumPy) and the time steps and noise, drawn on the device
xp = get_backend(args.device).xp

data = mnist_splits_from(args)
print(data.description)
x_train = data.x_train.reshape(-1, 1, 28, 28)   # (N, 1, 28, 28) in [0, 1]

# ---- the U-Net eps_theta(x_t, t) and the fixed noise schedule ---------------------------------------------
model = UNet(channels=channels, time_embed_dim=args.time_embed_dim).to(args.device)
diffusion = Diffusion(T, beta_start=1e-4, beta_end=0.02, device=args.device)
with zero.no_grad():
    x = zero.to_device(x_train[:2], args.device)            # two images (one if --train-limit 1)
    out = model(x, diffusion.timesteps_like(len(x), T))
check(out.shape == x.shape, f"the U-Net's output {out.shape} does not have its input's shape {x.shape}")  # eps's shape
print(f"U-Net channels {channels}, {model.num_params():,} parameters; input {x.shape} -> output {out.shape}")
optimizer = Adam(model.params(), lr=args.lr)
settings = run_settings(args, exclude=("heldout_limit",))   # the held-out images only score the result
history, start_epoch = resume(checkpoint, model, optimizer, args, {"train_loss": [], "step_loss": []}, settings)

# ---- training: (9.3), one random t per image ------------------------------------------------------------------
# (this loop, written out here, is zero.diffusion.fit_diffusion, which step 10.2 trains with)
start = time.perf_counter()
for epoch in range(start_epoch + 1, args.epochs + 1):
    loader = DataLoader(Dataset(x_train), args.batch_size, seed=(args.seed, epoch), device=args.device)
    reseed_device(args.device)   # on a GPU: its noise follows NumPy's generator, which the checkpoint keeps
    total = 0.0
    with tqdm(loader, desc=f"epoch {epoch}/{args.epochs}", leave=False) as bar:
        for batch, images in enumerate(bar, start=1):
            x0 = to_model_range(images)                                        # [0, 1] -> [-1, 1]
            t = xp.random.randint(1, T + 1, size=len(x0))                      # t ~ U{1..T}
            noise = standard_normal(xp, x0.shape, np.float32)                  # eps ~ N(0, I)
            x_t = diffusion.q_sample(x0, t, noise)                             # (9.2): jump straight to x_t
            loss = zero.functions.mean_squared_error(model(x_t, t), noise)     # (9.3): Diffusion.loss, written out
            history["step_loss"].append(finite_loss(loss, f"epoch {epoch}, batch {batch} of {len(loader)}"))  # NaN stops
            total += history["step_loss"][-1]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            bar.set_postfix(loss=f"{history['step_loss'][-1]:.4f}", refresh=False)  # shown at the next refresh
    history["train_loss"].append(total / len(loader))
    save_checkpoint(checkpoint, model, optimizer, epoch, history, settings)   # every epoch: an interrupted run can --resume
    print(f"epoch {epoch}/{args.epochs}: mean loss {history['train_loss'][-1]:.4f} "
          f"({time.perf_counter() - start:.0f} s so far), checkpoint {checkpoint}")
if args.epochs > start_epoch:
    print(f"trained {plural(args.epochs - start_epoch, 'epoch')} in {time.perf_counter() - start:.1f} s")

# the same loss on held-out images, one draw of t and noise each: close to the training loss = no overfitting.
# An image's loss depends much on its t (a small t leaves little noise to find), so their mean comes with
# a standard error: sd / sqrt(N) over the images
model.eval()
xp.random.seed(args.seed + 1)
image_losses = []
for begin in range(0, len(data.x_heldout), 100):   # 100 images at a time (500 took 0.6 GB more memory)
    x0 = to_model_range(zero.to_device(data.x_heldout[begin:begin + 100].reshape(-1, 1, 28, 28), args.device))
    image_losses.append(diffusion.image_losses(model, x0))
image_losses = xp.concatenate(image_losses)
heldout = f"{image_losses.mean().item():.4f}"
if len(image_losses) > 1:
    heldout += f" (standard error {(image_losses.std(ddof=1) / np.sqrt(len(image_losses))).item():.4f})"
print(f"loss (9.3) per pixel on {plural(len(image_losses), 'held-out image', ',')}: {heldout}; "
      f"training loss of the last epoch: {history['train_loss'][-1]:.4f}")

# ---- sampling: (9.4) from x_T ~ N(0, I) down to x_0 ------------------------------------------------------------
xp.random.seed(args.seed)
start = time.perf_counter()
samples, snapshots = diffusion.sample(model, (args.samples, 1, 28, 28), snapshot_every=100)
print(f"DDPM: {plural(args.samples, 'sample')} in {T} steps took {time.perf_counter() - start:.1f} s")
samples = to_numpy(to_images(samples))

# ---- figures ------------------------------------------------------------------------------------------------------
save_step_loss(history["step_loss"], "DDPM training loss (9.3), per pixel: (eps - eps_theta(x_t, t))^2", folder)

columns = int(np.ceil(np.sqrt(args.samples)))
save_image_grid(samples, columns,
                f"DDPM samples ({T} steps, U-Net {'/'.join(map(str, channels))}, {plural(args.epochs, 'epoch')})",
                folder, "samples")

steps = sorted(snapshots, reverse=True)      # t = 1000, 900, ..., 100, 0
rows = min(2, args.samples)
fig, axes = plt.subplots(rows, len(steps), figsize=(1.3 * len(steps), 1.5 * rows), squeeze=False)
for column, t in enumerate(steps):
    for row in range(rows):
        axes[row, column].imshow(to_images(snapshots[t][row, 0]), cmap="gray", vmin=0, vmax=1)
        axes[row, column].axis("off")
    axes[0, column].set_title(f"t = {t}", fontsize=9)
fig.suptitle(f"{'two samples on their' if rows == 2 else 'a sample on its'} way from noise (t = {steps[0]}) "
             f"to a digit (t = 0)")
save(fig, folder, "trajectory")
show()
