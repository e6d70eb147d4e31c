"""Appendix A.2 - The denoising autoencoder: learning to undo noise.

A.1's autoencoder only ever saw clean digits: a noisy one lands on a wrong code and comes
back smooth but distorted, often as another digit. A denoising autoencoder
(Vincent et al. 2008) is shown a corrupted digit and asked for the clean one:

    x_tilde = clip(x + sigma * eps, 0, 1),  eps ~ N(0, I)                                (A.2)
    L = sum_d (x_d - x_hat(x_tilde)_d)^2                                                  (A.3)

To win, it has to know what digits look like: the noise carries no information about
the clean image, so it must be removed, not copied. Same networks as A.1; only the input
changes. The same idea, run for many noise levels and many steps, is step 9's diffusion
model, whose U-Net predicts the noise that was added; that is why diffusion models can
generate and this autoencoder cannot: it only knows one noise level, and has no way to
start from nothing.

We compare it with a plain autoencoder (A.1's checkpoint if it is there, otherwise
trained here) on the same noisy held-out digits.

    python steps/step11_appendix_autoencoder/2_denoising.py --noise-std 0.5
"""
# needs: mnist

import numpy as np

import zero
from zero.autoencoder import Autoencoder, add_noise, checkpoint_variant, reconstruction_errors
from zero.cli import checkpoint_path, out_dir, parse_options, path_arg, step_checkpoint, step_parser
from zero.optimizers import Adam
from zero.plot import figures, save_image_grid, save_loss_curves, show
from zero.training import add_data_options, fit_or_resume, mnist_splits_from, restore_or_fit

parser = step_parser(__doc__, training=True, epochs=20, batch_size=64, lr=1e-3, hidden_size=200,
                     latent_size=20, noise_std=0.5)
add_data_options(parser)
parser.add_argument("--plain-checkpoint", type=path_arg, default=None,
                    help="A.1's plain autoencoder (default: where 1_autoencoder.py writes the one of this "
                         "--hidden-size and --latent-size); trained here if missing")
args = parse_options(parser, quick=dict(epochs=1, train_limit=512, heldout_limit=256))
args.plain_checkpoint = args.plain_checkpoint or step_checkpoint(   # A.1's autoencoder of this size
    "step11_appendix_autoencoder/1_autoencoder" + checkpoint_variant(args.hidden_size, args.latent_size), args)
folder = out_dir(args, __file__)
checkpoint = checkpoint_path(args, __file__)
figures(args.show)  # headless (Agg) unless --show and a display
zero.seed(args.seed, args.device)  # the weights (NumPy) and the noise (drawn on the device)

data = mnist_splits_from(args)
print(data.description)

# ---- the denoising autoencoder: a fresh corruption (A.2) of every batch, loss (A.3) ----------------------
model = Autoencoder(784, args.hidden_size, args.latent_size, noise_std=args.noise_std).to(args.device)
optimizer = Adam(model.params(), lr=args.lr)
history = fit_or_resume(model, optimizer, data.x_train, args, checkpoint, x_heldout=data.x_heldout,
                        description="denoising autoencoder")

# ---- the plain autoencoder of A.1 -------------------------------------------------------------------------
plain = Autoencoder(784, args.hidden_size, args.latent_size).to(args.device)
restore_or_fit(plain, args.plain_checkpoint, args, data.x_train, "plain autoencoder")

# ---- held-out errors against the clean digits, sum_d (x_d - output_d)^2 per image ---------------------------
model.eval()
plain.eval()
zero.seed(args.seed + 1, args.device)   # the same noisy held-out digits for every model
noisy = zero.to_numpy(add_noise(zero.to_device(data.x_heldout, args.device), args.noise_std))
noise_error = ((noisy - data.x_heldout) ** 2).sum(axis=1).mean()
errors = {}
for name, autoencoder in [("plain", plain), ("denoising", model)]:
    clean_error = reconstruction_errors(autoencoder, data.x_heldout, device=args.device).mean()
    with zero.no_grad():
        output = zero.to_numpy(autoencoder(zero.to_device(noisy, args.device)).data)
    errors[name] = (clean_error, ((output - data.x_heldout) ** 2).sum(axis=1).mean(), output)
print(f"held-out error per image against the clean digit (noise std {args.noise_std}):")
print(f"  the noisy input itself                        {noise_error:8.2f}")
for name, (clean_error, noisy_error, _) in errors.items():
    print(f"  {name:>9} autoencoder: from noisy input {noisy_error:8.2f}   from the clean input {clean_error:8.2f}")
clean_error, noisy_error, _ = errors["denoising"]
plain_clean_error, plain_noisy_error, _ = errors["plain"]
# the reason below holds when the plain autoencoder, trained on clean digits, does better on them (an
# undertrained one, as in --quick, can do worse on clean digits too: then it explains nothing)
if clean_error > noisy_error and plain_clean_error < plain_noisy_error:
    print("  (the denoising autoencoder does worse on a clean digit than on a noisy one: it was only ever "
          "shown noisy inputs,\n   and a clean image lies outside what it learned to expect)")

# ---- figures --------------------------------------------------------------------------------------------
shown = slice(0, 10)
rows = [data.x_heldout[shown], noisy[shown], errors["plain"][2][shown], errors["denoising"][2][shown]]
save_image_grid(np.concatenate(rows), 10,
                f"rows: clean held-out digits; with noise (std {args.noise_std}); "
                f"plain autoencoder; denoising autoencoder", folder, "denoising")

save_loss_curves(history, "denoising autoencoder: sum (x - x_hat(x_tilde))^2 per image", folder,
                 labels=("training (fresh noise each batch)", "held out (noisy input)"))
show()
