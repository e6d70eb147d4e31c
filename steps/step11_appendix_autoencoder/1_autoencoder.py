"""Appendix A.1 - The plain autoencoder, and why its latent space is hard to sample.

Take step 7's VAE and remove the probabilities: the encoder gives one code z = encoder(x)
instead of a distribution q(z | x), the decoder gives x_hat = sigmoid(decoder(z)), and the
loss keeps only the reconstruction term,

    L = sum_d (x_d - x_hat_d)^2   per image                                              (A.1)

(the first term of the book's VAE loss; the KL term is gone). Same layer sizes (784-200-20
and 20-200-784) as the VAE, whose encoder only adds a second 200 -> 20 head for log sigma^2.
Trained here, the VAE also gets this script's training settings, and then the objective is
the only difference; step 7's VAE, which this script uses when it is there (below), was
trained with the book's settings (lr 3e-4, batch 32, 30 epochs against lr 1e-3, batch 64,
20 epochs here), so its reconstructions differ by those settings too.

What it can do: compress a digit into 20 numbers and rebuild it, usually more sharply than
the VAE, because nothing else competes with the reconstruction. What it cannot: generate.
Nothing in (A.1) says where the codes should lie, so they spread over a region of their
own choosing (here a few units wide in every dimension), and a code drawn from N(0, I)
lands where no digit was encoded: its decoding is a blur. The VAE's KL term is exactly the
missing piece: it pulls q(z | x) towards the prior N(0, I) that we sample from, so that the
codes z ~ q(z | x) of all images together fill N(0, I). We decode the same N(0, I) draws
with both models, and with a Gaussian fitted to the autoencoder's own codes: a patch that
gives strokes, but many malformed digits, because the codes do not fill a Gaussian.

The VAE is step 7's checkpoint if it is there with at least as many epochs (run step 7
first), otherwise a VAE trained here with the same epochs.

    python steps/step11_appendix_autoencoder/1_autoencoder.py
"""
# needs: mnist

import numpy as np

import zero
from zero.autoencoder import Autoencoder, checkpoint_variant as autoencoder_variant
from zero.cli import at_least, checkpoint_path, out_dir, parse_options, path_arg, step_checkpoint, step_parser
from zero.optimizers import Adam
from zero.plot import figures, save, save_image_grid, save_loss_curves, show, show_images
from zero.training import add_data_options, fit_or_resume, mean_loss, mnist_splits_from, restore_or_fit
from zero.vae import VAE, checkpoint_variant, reparameterize

parser = step_parser(__doc__, training=True, epochs=20, batch_size=64, lr=1e-3, hidden_size=200,
                     latent_size=20)
add_data_options(parser)
parser.add_argument("--vae-checkpoint", type=path_arg, default=None,
                    help="step 7's VAE (default: where step 7 writes the one of this --hidden-size and "
                         "--latent-size); trained here if missing")
args = parse_options(parser, quick=dict(epochs=1, train_limit=512, heldout_limit=256))
at_least(parser, args, 2, ("heldout_limit",), "a Gaussian is fitted to the held-out images' codes")
at_least(parser, args, 2, ("latent_size",), "the codes are drawn in their first two dimensions")
args.vae_checkpoint = args.vae_checkpoint or step_checkpoint(   # step 7's VAE of this size
    "step07_vae/1_vae" + checkpoint_variant(args.hidden_size, args.latent_size), args)
# an autoencoder of another size gets a checkpoint and figures of its own ('_latent2'): A.2 reads the
# checkpoint of its size
variant = autoencoder_variant(args.hidden_size, args.latent_size)
folder = out_dir(args, __file__, variant)
checkpoint = checkpoint_path(args, __file__, variant=variant)
plt = figures(args.show)
zero.seed(args.seed, args.device)  # NumPy's generator and the device's

data = mnist_splits_from(args)
print(data.description)

# ---- the autoencoder, trained on (A.1) ---------------------------------------------------------------
model = Autoencoder(784, args.hidden_size, args.latent_size).to(args.device)
optimizer = Adam(model.params(), lr=args.lr)
history = fit_or_resume(model, optimizer, data.x_train, args, checkpoint, x_heldout=data.x_heldout,
                        description="autoencoder")

# ---- the VAE: step 7's, or one trained here ---------------------------------------------------------------
vae = VAE(784, args.hidden_size, args.latent_size).to(args.device)
restore_or_fit(vae, args.vae_checkpoint, args, data.x_train, "VAE")

# ---- reconstructions: the same error measure for both -----------------------------------------------------
model.eval()
vae.eval()
heldout = zero.to_device(data.x_heldout, args.device)
with zero.no_grad():
    ae_codes = zero.to_numpy(model.encode(heldout).data)               # z = encoder(x), (N, 20)
    vae_codes = zero.to_numpy(reparameterize(*vae.encoder(heldout)).data)  # z ~ q(z | x), one per image
    ae_error = mean_loss(model, data.x_heldout, device=args.device)
    vae_diff = vae.reconstruct(heldout).data - heldout
    vae_error = float((vae_diff * vae_diff).sum().item()) / len(heldout)
print(f"held-out reconstruction error sum_d (x_d - x_hat_d)^2 per image: autoencoder {ae_error:.2f}, "
      f"VAE (decoding mu(x)) {vae_error:.2f}")

# ---- where do the codes lie, compared with the N(0, I) we would sample from? -------------------------------
# a VAE's codes z ~ q(z | x), pooled over all images, should look like N(0, I): the KL term pulls them there
for name, codes in [("autoencoder", ae_codes), ("VAE", vae_codes)]:
    means, stds = codes.mean(axis=0), codes.std(axis=0)
    print(f"{name:>12} codes: per-dimension means {means.min():+.2f} .. {means.max():+.2f}, "
          f"stds {stds.min():.2f} .. {stds.max():.2f} (N(0, I): 0 and 1)")


# ---- decoding random codes ------------------------------------------------------------------------------------
rng = np.random.default_rng(args.seed)
prior_draws = rng.standard_normal((64, args.latent_size)).astype(np.float32)
code_mean, code_covariance = ae_codes.mean(axis=0), np.cov(ae_codes, rowvar=False)
fitted_draws = rng.multivariate_normal(code_mean, code_covariance, 64).astype(np.float32)


def decode(decoder, z):
    """Host images decoded from host codes z (n, d) by decoder (a model's decode method)."""
    return zero.to_numpy(decoder(zero.to_device(z, args.device)).data)


with zero.no_grad():
    ae_prior_samples = decode(model.decode, prior_draws)
    ae_fitted_samples = decode(model.decode, fitted_draws)
    vae_samples = decode(vae.decode, prior_draws)
    ae_reconstructions = zero.to_numpy(model(heldout[:10]).data)
    vae_reconstructions = zero.to_numpy(vae.reconstruct(heldout[:10]).data)

fig, axes = plt.subplots(1, 3, figsize=(15, 5.4))
for ax, images, title in [(axes[0], ae_prior_samples, "autoencoder: z ~ N(0, I)"),
                          (axes[1], ae_fitted_samples, "autoencoder: z ~ Gaussian fitted to its codes"),
                          (axes[2], vae_samples, "VAE: z ~ N(0, I) (the same draws as left)")]:
    show_images(ax, images, 8, title)
save(fig, folder, "samples_autoencoder_vs_vae")

save_image_grid(np.concatenate([data.x_heldout[:10], ae_reconstructions, vae_reconstructions]), 10,
                f"rows: held-out digits / the autoencoder's reconstructions (error {ae_error:.1f}) /\n"
                f"the VAE's, decoded from mu(x) (error {vae_error:.1f})", folder, "reconstructions")

fig, axes = plt.subplots(1, 3, figsize=(18, 5.4), layout="constrained")
circle = np.linspace(0, 2 * np.pi, 100)
for ax, codes, name in [(axes[0], ae_codes, "autoencoder z"), (axes[1], vae_codes, "VAE z ~ q(z | x)")]:
    points = ax.scatter(codes[:, 0], codes[:, 1], c=data.t_heldout, cmap="tab10", s=4)
    ax.plot(2 * np.cos(circle), 2 * np.sin(circle), "k--", lw=1, label="N(0, I): 2 std")
    ax.set(title=f"held-out codes: {name}\n(dimensions 1 and 2)", xlabel="z_1", ylabel="z_2", aspect="equal")
    ax.legend(loc="upper right")
fig.colorbar(points, ax=axes[1], label="digit")
for codes, name, marker in [(ae_codes, "autoencoder", "o"), (vae_codes, "VAE z ~ q(z | x)", "s")]:
    axes[2].errorbar(np.arange(1, args.latent_size + 1), codes.mean(axis=0), yerr=codes.std(axis=0), fmt=marker,
                     capsize=2, label=name)
axes[2].axhspan(-1, 1, color="gray", alpha=0.2, label="N(0, 1): mean 0 +- 1 std")
axes[2].set(title="every code dimension: mean +- std over held-out digits", xlabel="dimension j of z_j",
            ylabel="value")
axes[2].xaxis.get_major_locator().set_params(integer=True)   # dimensions are whole numbers, counted from 1 as z_1
axes[2].legend()
save(fig, folder, "latent_codes")

save_loss_curves(history, "autoencoder: sum (x - x_hat)^2 per image", folder)
show()
