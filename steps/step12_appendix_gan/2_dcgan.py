"""Appendix B.2 - DCGAN: the same game with convolutional players.

B.1's players were MLPs: they see an image as 784 unrelated numbers. The DCGAN recipe
(Radford et al. 2016) gives both players the structure of images, which made GANs train
reliably on pictures:

  - G grows an image: a linear layer to 64 maps of 7x7, then transposed convolutions with
    stride 2 (learned upsampling) to 14x14 and 28x28, batch norm and ReLU in between;
  - D shrinks it: strided convolutions 28x28 -> 14x14 -> 7x7 (no pooling), leaky ReLU
    (slope 0.2, so gradients also flow for negative inputs), batch norm, one logit;
  - Adam with lr 2e-4 and beta1 = 0.5, the non-saturating generator loss (B.3).

What it can do over B.1: cleaner strokes with fewer parameters, because a convolution reuses
one small filter everywhere. What it cannot, still: a likelihood, or a guarantee against
oscillation and mode collapse; compare the curves and the class histogram with B.1's, and
the Frechet distance (same classifier, same number of images) with B.1 and with step 10.3's
score of step 9's diffusion model (distances compare only at equal counts: run 10.3 with
`--samples 1000 --samplers ddim,ddim:1`, as 1000 samples of its 1000-step DDPM take hours on a CPU).

    python steps/step12_appendix_gan/2_dcgan.py       # 15 epochs: 97-156 s on 2 idle cores, up to 8 min on busy ones
"""
# needs: mnist

import zero
from zero.cli import (at_least, checkpoint_path, out_dir, parse_options, path_arg, positive_int, step_checkpoint,
                      step_parser)
from zero.gan import (DCDiscriminator, DCGenerator, check_batch_size, discriminator_path, plot_game, score_generator,
                      train_gan_or_resume)
from zero.metrics import check_classifier, classifier_for_scoring
from zero.optimizers import Adam
from zero.plot import figures, save, save_image_grid, show, show_images
from zero.training import add_data_options, mnist_splits_from

parser = step_parser(__doc__, training=True, epochs=15, batch_size=64, lr=2e-4, latent_size=64, width=32,
                     score_images=1000)
add_data_options(parser)
parser.add_argument("--classifier-epochs", type=positive_int, default=None,
                    help="epochs if the classifier is trained here (default: zero.metrics.referee_epochs)")
parser.add_argument("--classifier", type=path_arg, default=None, help="step 10.1's classifier (default: where 1_classifier.py writes it; trained here if missing)")
args = parse_options(parser, quick=dict(epochs=1, train_limit=256, heldout_limit=256,
                                       score_images=200, classifier_epochs=1))
at_least(parser, args, 2, ("score_images", "heldout_limit", "train_limit"), "a Frechet distance needs two images for a covariance")
args.classifier = args.classifier or step_checkpoint("step10_conditional_diffusion/1_classifier", args)
folder = out_dir(args, __file__)
checkpoint = checkpoint_path(args, __file__, companions=[discriminator_path])   # G and D, kept together
plt = figures(args.show)
zero.seed(args.seed, args.device)

data = mnist_splits_from(args)
print(data.description)
try:
    check_batch_size("--batch-size", args.batch_size, len(data.x_train))   # refused now, not after the first demos
except ValueError as error:
    parser.error(str(error))
# the referee is checked now, not after training: damaged, half-trained, or it saw the held-out images
check_classifier(args.classifier, data.source)

generator = DCGenerator(args.latent_size, args.width).to(args.device)
discriminator = DCDiscriminator(args.width).to(args.device)
g_optimizer = Adam(generator.params(), lr=args.lr, betas=(0.5, 0.999))
d_optimizer = Adam(discriminator.params(), lr=args.lr, betas=(0.5, 0.999))
print(f"generator {generator.num_params():,} parameters, discriminator {discriminator.num_params():,}")
history = train_gan_or_resume(generator, discriminator, g_optimizer, d_optimizer, data.x_train, args, checkpoint,
                              description="DCGAN")

# ---- sample quality, scored by the MNIST classifier (the same numbers as B.1) ------------------------------------
classifier = classifier_for_scoring(args.classifier, data.x_train.reshape(-1, 1, 28, 28), data.t_train, args.device,
                                    args.classifier_epochs, args.seed, save=not args.quick,
                                    heldout=(data.x_heldout.reshape(-1, 1, 28, 28), data.t_heldout), source=data.source)
zero.seed(args.seed + 1, args.device)
scores = score_generator(generator, classifier, data.x_heldout, args.score_images)   # G in eval mode from here
print(f"\nDCGAN sample quality ({args.score_images} images, Frechet distance to {len(data.x_heldout)} held-out "
      f"digits): "
      f"FD {scores['frechet_distance']:.2f}, classes {scores['class_histogram'].tolist()}")


# ---- figures ------------------------------------------------------------------------------------------------------
fig, (ax_loss, ax_prob) = plt.subplots(1, 2, figsize=(12, 4.5))
plot_game(ax_loss, ax_prob, history, "DCGAN: both players' losses (moving average)")
save(fig, folder, "training_curves")

fig, (ax_samples, ax_classes) = plt.subplots(1, 2, figsize=(13, 6))
show_images(ax_samples, scores["images"][:64], 8,
            f"DCGAN samples G(z), z ~ N(0, I): FD {scores['frechet_distance']:.1f}")
ax_classes.bar(range(10), scores["class_histogram"] / args.score_images)
ax_classes.axhline(0.1, color="k", ls="--", lw=0.8, label="1/10 each")
ax_classes.set(title="classes of generated digits (by the classifier)", xlabel="digit", ylabel="share",
               xticks=range(10))
ax_classes.legend()
save(fig, folder, "samples")

zero.seed(args.seed + 2, args.device)
walks = generator.latent_walks(rows=4, steps=10)   # step 7's latent walk, in G's latent space
save_image_grid(walks, 10, "DCGAN: straight lines between two codes, G((1 - s) z_a + s z_b)", folder, "interpolation")
show()
