"""Appendix B.1 - A generative adversarial network (GAN), and why its loss is not the minimax.

Every model so far that generates was trained to make the data probable: maximum likelihood
(steps 2-5), a bound on it (the VAE, steps 7-8), or denoising (steps 9-10); appendix A's
autoencoders, which only reconstruct, could not generate. A GAN never writes down
p(x). A generator G turns noise z ~ N(0, I) into an image, a discriminator D tells real
images from generated ones, D(x) = P(real), and the two play

    min_G max_D  E_x[log D(x)] + E_z[log(1 - D(G(z)))]                                    (B.1)

D minimises the cross-entropy L_D = -mean log D(x) - mean log(1 - D(G(z))). G could
minimise mean log(1 - D(G(z))) (the minimax loss), but at the start D wins easily and
D(G(z)) ~ 0, where that loss is flat: with D = sigmoid(l),

    d/dl log(1 - D) = -D           -> 0 as D -> 0   (the minimax loss saturates)          (B.2)
    d/dl [-log D]   = -(1 - D)     -> -1            (the non-saturating loss, used here)  (B.3)

We print (B.2) and (B.3) from backward(), measure G's whole gradient both ways after a
head start for D, then train G and D as two MLPs with the non-saturating loss and, for
comparison, a run with the minimax loss from the same start. G has batch norm and D dropout
(zero.gan.MLPGenerator, MLPDiscriminator): without them D won within a few epochs in our
runs and G collapsed onto one digit, with either loss. With them D never gets far ahead,
so the minimax run does not stall either: the saturation bites when D wins, as in the
head-start measurement, and the non-saturating loss is the insurance against it. (In our
30-epoch runs the minimax GAN's samples even scored better: Frechet distance 498.7 against 662.7
with step 10.1's classifier in README's course run (AVX-512), where 1,000 real digits score 51.6
(472.2 against 630.6, real digits 45.8, with the classifier of the run before it), and 523.5 against
696.7 (real digits 48.1) on a machine whose BLAS kernel sums in another order (AVX2, 2026-12-05).
One seed each, and GAN scores move a lot from run to run.)

What it can do: sharp samples from one pass of a network, no bound and no noise schedule.
What it cannot: say how probable an image is (there is no p(x) to evaluate), or promise
that training converges: the two players can oscillate, and G may cover only some digits
(mode collapse). We watch both players' curves, and score the samples with step 10's MNIST
classifier (zero.metrics): the class histogram shows missing digits, and the Frechet
distance of classifier features compares generated with real images (lower is better).

    python steps/step12_appendix_gan/1_gan.py
"""
# needs: mnist

import numpy as np

import zero
import zero.functions as F
from zero.cli import (at_least, check, checkpoint_path, non_negative_int, out_dir, parse_options, path_arg, plural,
                      positive_int, step_checkpoint, step_parser)
from zero.gan import (MLPDiscriminator, MLPGenerator, check_batch_size, discriminator_loss, discriminator_path,
                      generator_gradient_norm, logit_gradient, plot_game, score_generator, train_gan, train_gan_or_resume)
from zero.metrics import check_classifier, classifier_for_scoring, classify, feature_statistics, real_image_distances
from zero.optimizers import Adam
from zero.plot import figures, plot_moving_average, save, save_image_grid, show, show_images
from zero.training import add_data_options, mnist_splits_from

parser = step_parser(__doc__, training=True, epochs=30, batch_size=64, lr=2e-4, latent_size=64, g_hidden_size=512,
                     d_hidden_size=256, minimax_epochs=30, score_images=1000)
add_data_options(parser)
parser.add_argument("--head-start-steps", type=non_negative_int, default=100,
                    help="steps D trains alone before G's gradient is measured (0: none)")
parser.add_argument("--classifier-epochs", type=positive_int, default=None,
                    help="epochs if the classifier is trained here (default: zero.metrics.referee_epochs)")
parser.add_argument("--classifier", type=path_arg, default=None, help="step 10.1's classifier (default: where 1_classifier.py writes it; trained here if missing)")
args = parse_options(parser, quick=dict(epochs=1, minimax_epochs=1, head_start_steps=5, train_limit=512,
                                       heldout_limit=256, score_images=200, classifier_epochs=1))
at_least(parser, args, 2, ("score_images", "heldout_limit", "train_limit"), "a Frechet distance needs two images for a covariance")
args.classifier = args.classifier or step_checkpoint("step10_conditional_diffusion/1_classifier", args)
folder = out_dir(args, __file__)
checkpoint = checkpoint_path(args, __file__, companions=[discriminator_path])   # G and D, kept together
plt = figures(args.show)

data = mnist_splits_from(args)
print(data.description)
try:
    check_batch_size("--batch-size", args.batch_size, len(data.x_train))   # refused now, not after the first demos
except ValueError as error:
    parser.error(str(error))
# the referee is checked now, not after training: damaged, half-trained, or it saw the held-out images
check_classifier(args.classifier, data.source)


def players(seed):
    """A fresh generator and discriminator (weights from `seed`) with their Adam optimizers (DCGAN's betas)."""
    zero.seed(seed, args.device)
    generator = MLPGenerator(args.latent_size, args.g_hidden_size).to(args.device)
    discriminator = MLPDiscriminator(args.d_hidden_size).to(args.device)
    return (generator, discriminator, Adam(generator.params(), lr=args.lr, betas=(0.5, 0.999)),
            Adam(discriminator.params(), lr=args.lr, betas=(0.5, 0.999)))


# ---- (B.2) and (B.3) in numbers: the gradient of each loss with respect to D's logit ------------------------
print("\ngradient of G's loss with respect to the discriminator's logit l, from backward():")
print(f"  {'D(G(z))':>8}  {'minimax log(1 - D)':>20}  {'non-saturating -log D':>22}")
for d_fake in [0.5, 0.1, 0.01, 0.001, 0.0001]:
    minimax, non_saturating = logit_gradient(d_fake, "minimax"), logit_gradient(d_fake, "non_saturating")
    print(f"  {d_fake:>8g}  {minimax:>20.6f}  {non_saturating:>22.6f}")
    check(np.isclose(minimax, -d_fake, rtol=1e-9, atol=0)
          and np.isclose(non_saturating, -(1 - d_fake), rtol=1e-9, atol=0),
          f"D(G(z)) = {d_fake:g}: backward gives {minimax!r} and {non_saturating!r}, (B.2) and (B.3) -D and -(1 - D)")

# ---- the same effect on G's whole gradient: give D a head start, then measure both losses ---------------------
generator, discriminator, _, d_optimizer = players(args.seed)
rng = np.random.default_rng(args.seed)
for step in range(args.head_start_steps):   # D alone learns to reject G's first, poor images
    x = zero.to_device(data.x_train[rng.integers(0, len(data.x_train), args.batch_size)], args.device)
    with zero.no_grad():                              # G's images as in the game (batch norm on the batch), no graph:
        fake = generator(generator.latent(args.batch_size))   # G is not trained here
    d_loss = discriminator_loss(discriminator(x), discriminator(fake))
    d_optimizer.zero_grad()
    d_loss.backward()
    d_optimizer.step()
with zero.no_grad():
    d_fake = F.sigmoid(discriminator(generator(generator.latent(500)))).data.mean().item()
norms = {kind: generator_gradient_norm(generator, discriminator, 500, kind) for kind in ("minimax", "non_saturating")}
print(f"\nafter {plural(args.head_start_steps, 'step')} of D alone (measured as in training, dropout on): "
      f"mean D(G(z)) = {d_fake:.4f}; norm of G's gradient "
      f"||dL_G/dtheta||: minimax {norms['minimax']:.3g}, non-saturating {norms['non_saturating']:.3g} "
      f"({norms['non_saturating'] / norms['minimax']:,.1f} times the minimax one)")

# ---- the GAN: non-saturating loss, checkpointed ---------------------------------------------------------------
generator, discriminator, g_optimizer, d_optimizer = players(args.seed)
history = train_gan_or_resume(generator, discriminator, g_optimizer, d_optimizer, data.x_train, args, checkpoint,
                              description="GAN")
print(f"generator {generator.num_params():,} parameters, discriminator {discriminator.num_params():,}")

# ---- the comparison run: the minimax loss from the same start ----------------------------------------------------
minimax_generator, minimax_discriminator, minimax_g_optimizer, minimax_d_optimizer = players(args.seed)
zero.seed(args.seed, args.device)
minimax_history = train_gan(minimax_generator, minimax_discriminator, minimax_g_optimizer, minimax_d_optimizer,
                            data.x_train, args.minimax_epochs, args.batch_size, args.device, args.seed, "minimax",
                            description="minimax GAN")

# ---- sample quality, scored by the MNIST classifier -----------------------------------------------------------------
classifier = classifier_for_scoring(args.classifier, data.x_train.reshape(-1, 1, 28, 28), data.t_train, args.device,
                                    args.classifier_epochs, args.seed, save=not args.quick,
                                    heldout=(data.x_heldout.reshape(-1, 1, 28, 28), data.t_heldout), source=data.source)
reference = data.x_heldout
_, reference_features = classify(classifier, reference.reshape(-1, 1, 28, 28))
# what a perfect generator would score: random sets of as many real training digits (median and range)
real_size = min(args.score_images, len(data.x_train))   # fewer than the samples only with a small --train-limit
real_distances = real_image_distances(classifier, data.x_train.reshape(-1, 1, 28, 28), real_size,
                                      feature_statistics(reference_features), seed=args.seed)
zero.seed(args.seed + 1, args.device)
generators = {f"non-saturating, {plural(args.epochs, 'epoch')}": generator,
              f"minimax, {plural(args.minimax_epochs, 'epoch')}": minimax_generator}
scores = {name: score_generator(net, classifier, reference, args.score_images) for name, net in generators.items()}
print(f"\nsample quality ({args.score_images} images each, Frechet distance to {len(reference)} held-out digits):")
print(f"  {'real training digits':<34} FD {np.median(real_distances):8.2f}   (median of {len(real_distances)} random sets "
      f"of {real_size}, {real_distances.min():.2f}-{real_distances.max():.2f})")
for name, score in scores.items():
    print(f"  {'GAN, ' + name:<34} FD {score['frechet_distance']:8.2f}   classes {score['class_histogram'].tolist()}")

# ---- figures --------------------------------------------------------------------------------------------------------
fig, (ax_loss, ax_prob, ax_compare) = plt.subplots(1, 3, figsize=(17, 4.5))
plot_game(ax_loss, ax_prob, history, "both players' losses (moving average)")
compared_epochs = min(args.minimax_epochs, args.epochs)   # the epochs both runs trained
compared = len(minimax_history["d_fake"]) * compared_epochs // args.minimax_epochs   # their steps
plot_moving_average(ax_compare, history["d_fake"][:compared], label="G trained on -log D (non-saturating)")
plot_moving_average(ax_compare, minimax_history["d_fake"][:compared], label="G trained on log(1 - D) (minimax)")
ax_compare.set(title=f"D(G(z)) over the first {plural(compared_epochs, 'epoch')}, same start", xlabel="step",
               ylabel="D(G(z))", ylim=(0, 1))
ax_compare.legend()
save(fig, folder, "training_curves")

fig, axes = plt.subplots(1, 2, figsize=(12, 6))
for ax, (name, score) in zip(axes, scores.items()):
    show_images(ax, score["images"][:64], 8, f"G(z), z ~ N(0, I): {name}\nFD {score['frechet_distance']:.1f}")
save(fig, folder, "samples")

zero.seed(args.seed + 2, args.device)
walks = generator.latent_walks(rows=4, steps=10)   # step 7's latent walk, in G's latent space
save_image_grid(walks, 10, "straight lines between two codes: G((1 - s) z_a + s z_b), s = 0 .. 1", folder,
                "interpolation")

fig, ax = plt.subplots(figsize=(6, 4))
for offset, (name, score) in zip((-0.2, 0.2), scores.items()):
    ax.bar(np.arange(10) + offset, score["class_histogram"] / args.score_images, width=0.4, label=name)
ax.axhline(0.1, color="k", ls="--", lw=0.8, label="1/10 each")
ax.set(title="classes of generated digits (by the classifier)", xlabel="digit", ylabel="share", xticks=range(10))
ax.legend()
save(fig, folder, "class_histogram")
show()
