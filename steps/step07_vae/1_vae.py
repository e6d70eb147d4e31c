"""Step 7 - The variational autoencoder (VAE) on MNIST.

The mixture of step 4 explained each point by a discrete latent z (which bump it
came from). Digits vary in too many ways for a handful of bumps: the VAE keeps the
latent-variable idea but makes z continuous (20 numbers) and lets neural networks
(step 6) map between z and the 784 pixels:

    p(z) = N(0, I),   p(x | z) = N(x | x_hat(z), I),   x_hat = decoder(z)   (generative model)
    q(z | x) = N(mu(x), diag sigma^2(x)),   (mu, log sigma^2) = encoder(x)   (approximate posterior)

log p(x) = log integral p(x | z) p(z) dz has no closed form, so EM's E-step (step 5)
is impossible. As in EM we maximise a lower bound instead, the ELBO:

    log p(x) >= ELBO = E_q[log p(x | z)] - KL(q(z | x) || p(z))                      (7.1)

The expectation is estimated with one sample z = mu + sigma * eps, eps ~ N(0, I)
(the reparameterisation trick: the randomness sits in eps, gradients reach mu and
sigma), and the KL between two Gaussians is exact:

    KL = 1/2 sum_j (sigma_j^2 + mu_j^2 - 1 - log sigma_j^2)                               (7.2)

The book trains on  L = sum_d (x_d - x_hat_d)^2 - sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2),
averaged over the batch: that is 2 (-ELBO) minus the constant 784 log(2 pi), so it has the same
optimum, but it is not a number in nats. We train on it (numbers match the book) and report the
bound itself on held-out images: -ELBO in nats per image, and the tighter importance-weighted
estimate of -log p(x) (IWAE, K samples). `--likelihood bernoulli` trains on -ELBO with a
Bernoulli p(x | z) (binary cross-entropy) instead, as papers do on binarized MNIST (our pixels
keep their grey levels, so those nats are not comparable with papers' numbers).

    python steps/step07_vae/1_vae.py                      # 30 epochs, as the book
    python steps/step07_vae/1_vae.py --latent-size 2      # a 2-D latent: draw the whole manifold
    python steps/step07_vae/1_vae.py --resume --epochs 40 # continue from the checkpoint

A run with another size or likelihood writes a checkpoint and figures of its own
(step07_vae_1_vae_latent2.npz and figures/step07_vae/1_vae_latent2/, say), so that it never replaces
the book's VAE or its pictures; steps 8 and A.1 read the checkpoint of their own size.

What the VAE leaves fixed: its prior p(z) = N(0, I), and one layer of latents explains every image.
Step 8 stacks latents, z1 with a prior of its own given by z2, so that the prior is learned too.
"""
# needs: mnist
import time

import numpy as np
from tqdm import tqdm

import zero
from zero.cli import checkpoint_path, out_dir, parse_options, plural, step_parser
from zero.data import DataLoader, Dataset
from zero.distributions import normal_quantile
from zero.optimizers import Adam
from zero.plot import figures, save, save_image_grid, save_loss_curves, show, show_images
from zero.training import (add_data_options, finite_loss, mean_loss, mnist_splits_from, resume, run_settings,
                           save_checkpoint)
from zero.vae import LIKELIHOODS, VAE, checkpoint_variant, evaluate_bounds, latent_walk, walk_ends

parser = step_parser(__doc__, training=True, epochs=30, batch_size=32, lr=3e-4, hidden_size=200,
                     latent_size=20, iwae_samples=100)
parser.add_argument("--likelihood", choices=LIKELIHOODS, default="gaussian", help="p(x | z): the book's Gaussian, or Bernoulli")
add_data_options(parser)
args = parse_options(parser, quick=dict(epochs=1, train_limit=512, heldout_limit=256, iwae_samples=10))
# a VAE other than the book's gets a checkpoint and figures of its own ('_latent2'): steps 8 and A.1 read the
# checkpoint of their size
variant = checkpoint_variant(args.hidden_size, args.latent_size, args.likelihood)
folder = out_dir(args, __file__, variant)
checkpoint = checkpoint_path(args, __file__, variant=variant)
plt = figures(args.show)
zero.seed(args.seed, args.device)  # the weights (NumPy) and the noise eps (drawn on the device)

# ---- data: flattened images (N, 784) in [0, 1] ------------------------------------------------
data = mnist_splits_from(args)
print(data.description)

# ---- model and optimizer: encoder 784-200-(20, 20), decoder 20-200-784 -------------------------
model = VAE(784, args.hidden_size, args.latent_size, likelihood=args.likelihood).to(args.device)
optimizer = Adam(model.params(), lr=args.lr)
settings = run_settings(args)   # what the checkpoint records, and what --resume must find again
history, start_epoch = resume(checkpoint, model, optimizer, args, history={"train_loss": [], "heldout_loss": []},
                              settings=settings)

# ---- training: minimise the loss by mini-batch Adam --------------------------------------------------
LOSS_NAME = model.likelihood.loss_name   # the Gaussian's is the book's loss, not nats (see the docstring)
start = time.perf_counter()
for epoch in range(start_epoch + 1, args.epochs + 1):
    loader = DataLoader(Dataset(data.x_train), args.batch_size, seed=(args.seed, epoch), device=args.device)
    zero.reseed_device(args.device)   # on a GPU: its noise follows NumPy's generator, which the checkpoint keeps
    total = 0.0
    for batch, x in enumerate(tqdm(loader, desc=f"epoch {epoch}/{args.epochs}", leave=False), start=1):
        loss = model.loss(x)   # the book's loss (or -ELBO), one sample z per image: see the docstring
        total += finite_loss(loss, f"epoch {epoch}, batch {batch} of {len(loader)}")   # loss.item(); NaN stops
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    history["train_loss"].append(total / len(loader))
    history["heldout_loss"].append(mean_loss(model, data.x_heldout, device=args.device))
    print(f"epoch {epoch:2d}: {LOSS_NAME}: training {history['train_loss'][-1]:.2f}, "
          f"held out {history['heldout_loss'][-1]:.2f}")
    save_checkpoint(checkpoint, model, optimizer, epoch, history, settings)   # every epoch: Ctrl-C, then --resume
if args.epochs > start_epoch:
    print(f"trained {plural(args.epochs - start_epoch, 'epoch')} in {time.perf_counter() - start:.1f} s")
    print(f"checkpoint saved: {checkpoint} (continue with --resume --epochs N)")

# ---- the bound in nats on held-out images ----------------------------------------------------------
bounds = evaluate_bounds(model, data.x_heldout, samples=args.iwae_samples, device=args.device)
# IWAE's bound is the tighter one, but these estimates of the two come from independent draws:
# with few images or samples, IWAE's can come out above the -ELBO's
gap = bounds['negative_elbo'] - bounds['iwae_nll']
tighter = (f"tighter by {max(gap, 0.0):.2f})" if gap > -0.005 else   # (a gap of -0.003 shows as 0.00)
           f"tighter on average, but {-gap:.2f} above the -ELBO here)")
print(f"held-out ({plural(bounds['images'], 'image')}, {model.likelihood.describe()}):\n"
      f"  -ELBO                 {bounds['negative_elbo']:.2f} nats per image\n"
      f"  -log p(x), IWAE K={args.iwae_samples:<4d} {bounds['iwae_nll']:.2f} nats per image (an upper bound too, "
      + (tighter if args.iwae_samples > 1 else
         "with K = 1 the -ELBO itself, estimated from one draw)"))
if args.likelihood == "gaussian":
    print("  (with std 1, 784/2 log(2 pi) = 720.4 nats of each number are the Gaussian's constant)")
if bounds["images"] > 1:   # sd / sqrt(N) over the images: how much other held-out images would move each mean
    print(f"  standard errors over the images: {bounds['negative_elbo_se']:.2f} (-ELBO), "
          f"{bounds['iwae_nll_se']:.2f} (IWAE)")

# ---- figures ------------------------------------------------------------------------------------------
save_loss_curves(history, f"VAE: {LOSS_NAME} per image", folder,
                 labels=("training (mean over the epoch's batches)", "held out (after the epoch)"))

model.eval()
with zero.no_grad():
    generated = zero.to_numpy(model.sample(64))                                   # z ~ N(0, I) -> x_hat
    originals = data.x_heldout[:10]
    reconstructed = zero.to_numpy(model.reconstruct(zero.Variable(zero.to_device(originals, args.device))).data)
    # a walk in latent space: straight line between the codes mu(x) of two held-out digits (a 3 and an 8)
    first, second, walked = walk_ends(data.t_heldout)
    ends = zero.to_device(data.x_heldout[[first, second]], args.device)
    mu, _ = model.encoder(zero.Variable(ends))
    walk = zero.to_numpy(latent_walk(model.decode, mu.data[0], mu.data[1], 10))   # x_hat((1 - s) z_a + s z_b)

save_image_grid(generated, 8, "samples: x_hat(z), z ~ N(0, I)", folder, "samples")
save_image_grid(np.concatenate([originals, reconstructed]), 10,
                "held-out digits (top) and their reconstructions x_hat(mu(x)) (bottom)", folder, "reconstructions")
save_image_grid(walk, 10, f"a straight walk in latent space {walked}", folder, "latent_walk")

if args.latent_size == 2:
    # the decoded manifold: a grid of z through the prior's quantiles, and where the held-out digits sit
    grid = normal_quantile(np.linspace(0.05, 0.95, 15)).astype(np.float32)
    z = np.array([[a, b] for b in grid[::-1] for a in grid], dtype=np.float32)
    with zero.no_grad():
        manifold = zero.to_numpy(model.decode(zero.Variable(zero.to_device(z, args.device))).data)
        codes = zero.to_numpy(model.encoder(zero.Variable(zero.to_device(data.x_heldout, args.device)))[0].data)
    fig, (ax_grid, ax_codes) = plt.subplots(1, 2, figsize=(12, 6))
    show_images(ax_grid, manifold, 15, "decoded z on a grid of prior quantiles (5% to 95%)")
    points = ax_codes.scatter(codes[:, 0], codes[:, 1], c=data.t_heldout, cmap="tab10", s=4)
    fig.colorbar(points, ax=ax_codes, label="digit")
    ax_codes.set(title="held-out digits at their codes mu(x)", xlabel="z_1", ylabel="z_2")
    save(fig, folder, "manifold")
show()
