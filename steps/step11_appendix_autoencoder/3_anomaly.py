"""Appendix A.3 - Reconstruction error as an anomaly score.

A.1 and A.2 asked how well an autoencoder rebuilds a digit; here the error itself is the
answer to another question: have we seen digits like this one? An autoencoder rebuilds well
what it was trained on. Train it on every digit but one (the "anomaly", 2 by default) and
the error sum_d (x_d - x_hat_d)^2 of a held-out image becomes a score: images of the
missing digit should score higher. We show the two
histograms of held-out scores, the ROC curve (the share of anomalies caught against the
share of normal digits flagged, for every threshold) and its area, the AUC: the chance
that a random anomaly scores above a random normal digit (1 is perfect, 0.5 is chance).

What it adds: a score from a model that has no density at all, one pass through a plain
autoencoder (step 7's VAE scores an image too, by its bound -ELBO, which is a likelihood's).
What it cannot: the error is not a likelihood. A digit with few ink pixels is
easy to rebuild whether or not it was seen: with 20 epochs on the 8,000 training images
(of the MNIST test split, which --source auto uses when only that split is present, as here),
holding out 1 gives an AUC of 0.383 (the unseen ones score *lower*), 7 gives 0.712, while
4, 5, 8, 0 and 2 give 0.871, 0.888, 0.908, 0.934 and 0.945 (measured once each, seed 0, on
2 cores of an AMD EPYC of the Zen 4 family, 2026-12-05 and 06).

    python steps/step11_appendix_autoencoder/3_anomaly.py --anomaly-digit 8
"""
# needs: mnist

import numpy as np

from zero.autoencoder import Autoencoder, reconstruction_errors, roc_auc, roc_curve
from zero.backend import seed
from zero.cli import checkpoint_path, out_dir, parse_options, plural, step_parser
from zero.optimizers import Adam
from zero.plot import figures, save, show
from zero.training import add_data_options, fit_or_resume, mnist_splits_from

parser = step_parser(__doc__, training=True, epochs=20, batch_size=64, lr=1e-3, hidden_size=200,
                     latent_size=20)
parser.add_argument("--anomaly-digit", type=int, choices=range(10), default=2,
                    help="the digit left out of training, to be found as the anomaly")
add_data_options(parser)
args = parse_options(parser, quick=dict(epochs=1, train_limit=512, heldout_limit=256))
# one model per unseen digit, and its figures beside those of the default one
default_digit = args.anomaly_digit == parser.get_default("anomaly_digit")
folder = out_dir(args, __file__, variant="" if default_digit else f"_without_{args.anomaly_digit}")
checkpoint = checkpoint_path(args, __file__, variant=f"_without_{args.anomaly_digit}")
plt = figures(args.show)
seed(args.seed, args.device)

data = mnist_splits_from(args)
normal_train = data.x_train[data.t_train != args.anomaly_digit]
unseen_heldout = (data.t_heldout == args.anomaly_digit).sum()
if len(normal_train) == 0 or not 0 < unseen_heldout < len(data.t_heldout):  # checked before training
    parser.error(f"with these limits the training images hold {len(normal_train)} digits other than "
                 f"{args.anomaly_digit} and the held-out ones {unseen_heldout} {args.anomaly_digit}s of "
                 f"{len(data.t_heldout)}: the score needs both kinds (raise --train-limit / --heldout-limit)")
print(f"{data.description}\ntraining on the {plural(len(normal_train), 'training image', ',')} that "
      f"{'is' if len(normal_train) == 1 else 'are'} not a {args.anomaly_digit}")

model = Autoencoder(784, args.hidden_size, args.latent_size).to(args.device)
optimizer = Adam(model.params(), lr=args.lr)
history = fit_or_resume(model, optimizer, normal_train, args, checkpoint,
                        description=f"autoencoder without {args.anomaly_digit}s")

# ---- the score: reconstruction error of every held-out image ----------------------------------------------------
model.eval()
scores = reconstruction_errors(model, data.x_heldout, device=args.device)   # sum_d (x_d - x_hat_d)^2, (N,)
is_anomaly = data.t_heldout == args.anomaly_digit
normal_scores, anomaly_scores = scores[~is_anomaly], scores[is_anomaly]
auc = roc_auc(normal_scores, anomaly_scores)
print(f"held-out reconstruction error: {len(normal_scores):,} normal digits {normal_scores.mean():.2f} on average, "
      f"{len(anomaly_scores)} unseen {args.anomaly_digit}s {anomaly_scores.mean():.2f}")
print(f"ROC AUC of the error as an anomaly score: {auc:.3f} (0.5 = chance, 1 = perfect)")
per_digit = [scores[data.t_heldout == digit].mean() for digit in range(10)]

# ---- figures ---------------------------------------------------------------------------------------------------
fig, (ax_hist, ax_roc, ax_digits) = plt.subplots(1, 3, figsize=(16, 4.5))
top = np.percentile(scores, 99.5)       # the x axis ends there; the few larger errors join the last bin
bins = np.linspace(0, top, 50)
ax_hist.hist(np.minimum(normal_scores, top), bins=bins, density=True, alpha=0.6, label="digits seen in training")
ax_hist.hist(np.minimum(anomaly_scores, top), bins=bins, density=True, alpha=0.6,
             label=f"unseen digit {args.anomaly_digit}")
ax_hist.set(title="held-out reconstruction errors", ylabel="density",
            xlabel=f"sum (x - x_hat)^2 (the last bin holds the {np.sum(scores > top)} above {top:.0f} too)")
ax_hist.set_ylim(0, 1.3 * ax_hist.get_ylim()[1])   # room above the bars for the legend
ax_hist.legend(loc="upper right")
false_positive_rate, true_positive_rate = roc_curve(normal_scores, anomaly_scores)
ax_roc.plot(false_positive_rate, true_positive_rate, label=f"AUC {auc:.3f}")
ax_roc.plot([0, 1], [0, 1], "k--", lw=0.8, label="chance")
ax_roc.set(title="ROC curve", xlabel="normal digits flagged", ylabel=f"{args.anomaly_digit}s caught", aspect="equal")
ax_roc.legend(loc="lower right")
ax_digits.bar(range(10), per_digit, color=["C1" if d == args.anomaly_digit else "C0" for d in range(10)])
ax_digits.set(title="mean held-out error per digit (orange: unseen)", xlabel="digit", ylabel="sum (x - x_hat)^2",
              xticks=range(10))
save(fig, folder, "anomaly_scores")
show()
