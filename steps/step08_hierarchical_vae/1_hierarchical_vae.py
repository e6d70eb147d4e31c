"""Step 8 - The hierarchical VAE: latent variables stacked in a chain.

Step 7's VAE explains an image by one layer of latent variables with a plain
N(0, I) prior. A hierarchical VAE stacks them, x <- z1 <- z2, each depending
only on its neighbour (a Markov chain), so the prior over z1 is itself learned:

    p(z2) = N(0, I),  p(z1 | z2) = N(z1 | zhat(z2), I),  p(x | z1) = N(x | x_hat(z1), I)      (generation)
    q(z1 | x) = N(mu1(x), sigma1^2(x)),  q(z2 | z1) = N(mu2(z1), sigma2^2(z1))              (inference)

Every arrow is an MLP: two encoders, two decoders. With q = q(z1 | x) q(z2 | z1) the ELBO
splits into three terms:

    ELBO = E_q[log p(x | z1)] - E_q[KL(q(z2 | z1) || p(z2))] - E_q[log q(z1 | x) - log p(z1 | z2)]   (8.1)

The last term is not a KL of two fixed Gaussians: z2 is drawn from q(z2 | z1), so zhat(z2) depends
on z1. The book writes it as E_q[KL(q(z1 | x) || p(z1 | zhat))], the analytic KL at the drawn
zhat, a close surrogate (off by tr Cov(z1, zhat): 0.37 nats per image on a Bernoulli model in a
check, and nearly 0 where zhat hardly depends on z1, as below), and
trains on that form without the 1/2s and constants (as in step 7), twice the negative bound:

    L1 = sum (x - x_hat)^2
    L2 = -sum(1 + log sigma2^2 - mu2^2 - sigma2^2)
    L3 = -sum(1 + log sigma1^2 - (mu1 - zhat)^2 - sigma1^2)

The bounds printed at the end use (8.1) exactly: log q - log p on the drawn z1, z2.

Samples are drawn top-down: z2 ~ N(0, I), z1 ~ N(zhat(z2), I), x_hat(z1). The number
of levels is an option (--levels 3 adds z3).

Does the learned prior pay for itself? At the end the held-out bound of this model is set beside
two VAEs on the same held-out images. Step 7's VAE is the book's reference (its checkpoint is read
if it holds at least as many epochs, so run step 7 first, else it is trained here with the same
data and epochs), but it differs from this model in more than the prior: its hidden layers are
twice as wide (200) and its learning rate is the book's 3e-4 for step 7, a third of this script's
(the book's 1e-3 for step 8). Each of these moves the bound by more than the prior does: trained
at lr 1e-3 (as this script did before), the 784-200-20 VAE scored 741.14 nats (step 7 with --lr
1e-3, seed 0, on the Zen 4 machine, 2026-12-06), 1.0 below step 7's 742.15 and 0.2 below the
741.34 of the 784-100-20 VAE. So the second VAE is trained here with this
model's width (100) and learning rate: what differs is the prior of z1, learned through z2 or
fixed at N(0, I).

Each model is trained once, and its bound moves when another seed draws other initial weights,
batches and noise. Over seeds 0, 1 and 2 (--seed; on an AMD EPYC of the Zen 4 family, 2026-12-05)
the hierarchical VAE's -ELBO was 741.30, 741.28 and 741.20 nats, the VAE's 741.34, 741.35 and
741.26: the hierarchical VAE lower by 0.04, 0.07 and 0.06, each time by less than either model
moved from seed to seed (0.10 and 0.09 nats). A reviewer's separate runs gave differences of
+0.05 and -0.02 (seeds 0 and 1), and the hierarchical VAE's bound 741.22-741.38 over seeds 0-2.
The held-out images are not what makes these differences uncertain: the script prints each with
its paired standard error over the images (zero.vae.bound_difference), 0.01-0.02 nats for seed 0
(2026-12-06), so another 2,000 images would move it little; training with another seed moves it as
far as it is from 0. A few hundredths of a nat, beside the 21 nats above the Gaussian's constant
that the models shape, name no winner: here the learned prior does not pay for its second level of
networks. Each level's term of the bound (HierarchicalVAE.level_kls) says why: in those runs z2
carried 0.002-0.006 nats per held-out image, z1 5.8-6.1. q(z2 | z1) has collapsed onto its prior
(posterior collapse: the weak std-1 Gaussian likelihood asks little of the latents, and z1 alone
holds what it needs), so the prior of z1 it was to learn is in effect one fixed Gaussian. Stacking
levels is no use if training leaves the upper ones empty. Step 9 keeps the chain of latents but
fixes every encoder to adding noise, so that no level can be left unused, and learns only the
decoder.

    python steps/step08_hierarchical_vae/1_hierarchical_vae.py            # 30 epochs, as the book
"""
# needs: mnist

import numpy as np

import zero
from zero.cli import checkpoint_path, out_dir, parse_options, path_arg, plural, step_checkpoint, step_parser
from zero.optimizers import Adam
from zero.plot import figures, save, save_image_grid, save_loss_curves, show, show_images
from zero.training import add_data_options, fit, fit_or_resume, mnist_splits_from, read_checkpoint, restore_or_fit
from zero.vae import (LIKELIHOODS, VAE, HierarchicalVAE, bound_difference, checkpoint_variant, evaluate_bounds,
                      latent_walk, loss_terms, walk_ends)

parser = step_parser(__doc__, training=True, epochs=30, batch_size=32, lr=1e-3, hidden_size=100,
                     latent_size=20, levels=2, iwae_samples=100)
parser.add_argument("--likelihood", choices=LIKELIHOODS, default="gaussian", help="p(x | z): the book's Gaussian, or Bernoulli")
add_data_options(parser)
parser.add_argument("--vae-checkpoint", type=path_arg, default=None,
                    help="step 7's VAE to compare with (784-200-LATENT_SIZE; default: where step 7 "
                         "writes the one of this --latent-size and --likelihood); trained here if missing")
args = parse_options(parser, quick=dict(epochs=1, train_limit=512, heldout_limit=256, iwae_samples=10))
args.vae_checkpoint = args.vae_checkpoint or step_checkpoint(   # step 7's VAE of this size and likelihood
    "step07_vae/1_vae" + checkpoint_variant(200, args.latent_size, args.likelihood), args)
folder = out_dir(args, __file__)
checkpoint = checkpoint_path(args, __file__)
plt = figures(args.show)
zero.seed(args.seed, args.device)  # NumPy's generator and the device's

data = mnist_splits_from(args)
print(data.description)

# ---- the hierarchical VAE: encoders 784-100-20 and 20-100-20, decoders 20-100-20 and 20-100-784 ----
model = HierarchicalVAE(784, args.hidden_size, args.latent_size, levels=args.levels,
                        likelihood=args.likelihood).to(args.device)
optimizer = Adam(model.params(), lr=args.lr)
# zero.training.fit runs the loop written out in step 7: sample a batch, loss L1 + L2 + L3, backward, Adam step
history = fit_or_resume(model, optimizer, data.x_train, args, checkpoint, x_heldout=data.x_heldout,
                        description="HVAE")

# ---- step 7's VAE, the book's reference, on the same held-out images: its checkpoint, or trained here ----
# (read if step 7 trained it as many epochs or more, with this likelihood; else trained here with the book's lr 3e-4)
vae = VAE(784, 200, args.latent_size, likelihood=args.likelihood).to(args.device)
loaded = restore_or_fit(vae, args.vae_checkpoint, args, data.x_train, "VAE (step 7)", lr=3e-4)
vae_source = "step 7's checkpoint" if loaded else f"trained here, {plural(args.epochs, 'epoch')}"
vae_lr = "0.0003"                    # the lr it was trained with here; step 7 may have run with another --lr:
if loaded:                           # then the one its checkpoint recorded
    recorded = read_checkpoint(args.vae_checkpoint, [], optional=["settings/lr"])
    vae_lr = f"{float(recorded['settings/lr']):g}" if "settings/lr" in recorded else "not recorded"
# ---- a VAE as wide as this model's networks, trained at its lr: it differs only by the prior of z1 --------
zero.seed(args.seed, args.device)
matched_vae = VAE(784, args.hidden_size, args.latent_size, likelihood=args.likelihood).to(args.device)
fit(matched_vae, Adam(matched_vae.params(), lr=args.lr), data.x_train, args.epochs, args.batch_size, args.device,
    args.seed, description=f"VAE 784-{args.hidden_size}-{args.latent_size} at lr {args.lr:g}")

# ---- the bounds in nats per held-out image --------------------------------------------------------------
print(f"held-out bounds ({plural(len(data.x_heldout), 'image')}, {model.likelihood.describe()}), nats per image:")
rows = []
for name, net in [(f"VAE 784-200-{args.latent_size}, lr {vae_lr} (step 7's, the book's reference; {vae_source})", vae),
                  (f"VAE 784-{args.hidden_size}-{args.latent_size}, lr {args.lr:g} (trained here: the hierarchical "
                   f"VAE's width and lr)", matched_vae),
                  (f"hierarchical VAE, {plural(args.levels, 'level')}, hidden {args.hidden_size}, lr {args.lr:g}",
                   model)]:
    bounds = evaluate_bounds(net, data.x_heldout, samples=args.iwae_samples, device=args.device)
    rows.append((name, bounds))
    print(f"  {name}:\n    -ELBO {bounds['negative_elbo']:.2f}   IWAE (K={args.iwae_samples}) "
          f"{bounds['iwae_nll']:.2f}   parameters {net.num_params():,}")
(_, vae_bounds), (_, matched_bounds), (_, hvae_bounds) = rows
for label, bounds in [(f"step 7's VAE (hidden 200, lr {vae_lr})", vae_bounds),
                      ("the VAE of the same width and lr", matched_bounds)]:
    # < 0: the HVAE's is lower; the error: sd / sqrt(N) of each image's difference (paired, bound_difference)
    (elbo_gap, elbo_se), (iwae_gap, iwae_se) = [bound_difference(hvae_bounds, bounds, key)
                                                for key in ("negative_elbo", "iwae_nll")]
    errors = "" if elbo_se is None else f" (standard errors over the images {elbo_se:.2f}, {iwae_se:.2f})"
    print(f"  hierarchical VAE minus {label}: {elbo_gap:+.2f} nats (-ELBO), {iwae_gap:+.2f} (IWAE) per image"
          f"{errors} (lower is better)")
print("  (the standard errors say how much other held-out images would move a difference. Each model is also "
      "trained once:\n  trained with another --seed, each bound moves too; the docstring gives how far at the "
      "default settings.\n  A difference smaller than either names no winner)")
if args.likelihood == "gaussian":   # the constant cancels in the differences; the rest is what the models shape
    constant = 392 * np.log(2 * np.pi)
    print(f"  (each bound includes the Gaussian's constant 784/2 log(2 pi) = {constant:.1f} nats, equal for every "
          f"model:\n  set the differences beside the {matched_bounds['negative_elbo'] - constant:.1f} nats above it)")

# ---- figures ------------------------------------------------------------------------------------------------
save_loss_curves(history, f"hierarchical VAE: {model.loss_name} {loss_terms(args.levels)} per image",
                 folder)

model.eval()
with zero.no_grad():
    generated = zero.to_numpy(model.sample(64))                   # top-down: z2 -> z1 -> x_hat
    originals = data.x_heldout[:10]
    reconstructed = zero.to_numpy(model.reconstruct(zero.Variable(zero.to_device(originals, args.device))).data)
    first, second, walked = walk_ends(data.t_heldout)                # a 3 and an 8, if held out
    mu, _ = model.encoders[0](zero.Variable(zero.to_device(data.x_heldout[[first, second]], args.device)))
    walk = zero.to_numpy(latent_walk(model.decode, mu.data[0], mu.data[1], 10))   # in z1, as step 7's in z
    vae_generated = zero.to_numpy(vae.sample(64))
    matched_generated = zero.to_numpy(matched_vae.sample(64))

# the fair comparison is the middle panel: the same width and lr, only the prior of z1 differs
fig, axes = plt.subplots(1, 3, figsize=(18, 6.6))
for ax, images, title, bounds in [
        (axes[0], vae_generated, f"step 7's VAE (hidden 200, lr {vae_lr})", vae_bounds),
        (axes[1], matched_generated, f"VAE of the same width and lr (hidden {args.hidden_size}, lr {args.lr:g})",
         matched_bounds),
        (axes[2], generated, "hierarchical VAE, sampled top-down", hvae_bounds)]:
    show_images(ax, images, 8, f"{title}\nheld-out IWAE {bounds['iwae_nll']:.2f} nats (lower is better)")
fig.suptitle("samples from the prior; a gap smaller than the seed-to-seed spread (about 0.1 nats at the defaults: "
             "see the docstring) names no winner")
save(fig, folder, "samples")

save_image_grid(np.concatenate([originals, reconstructed]), 10,
                "held-out digits (top) and reconstructions through z1 = mu1(x) (bottom)", folder, "reconstructions")
save_image_grid(walk, 10, f"a straight walk in z1 {walked}", folder, "latent_walk")

# ---- what each level carries about x: its term of the bound, nats per held-out image --------------------
COLLAPSED = 0.1   # nats per image: below it a level's q is (almost) its prior
with zero.no_grad():
    level_costs = [float(kl.data.mean().item())
                   for kl in model.level_kls(zero.Variable(zero.to_device(data.x_heldout, args.device)))]
print("  information each level of the hierarchical VAE carries about x (its term of the bound, nats per image): "
      + ", ".join(f"z{level + 1} {cost:.3f}" for level, cost in enumerate(level_costs)))
if args.levels > 1 and level_costs[-1] < COLLAPSED:
    print(f"  the top level z{args.levels} carries almost nothing (< {COLLAPSED} nats): q(z{args.levels} | "
          f"z{args.levels - 1}) has collapsed onto its prior N(0, I) (posterior collapse), so the prior of "
          f"z{args.levels - 1} it was to learn is (nearly) one fixed Gaussian,\n  and the differences above do not "
          f"come from a learned prior")
show()
