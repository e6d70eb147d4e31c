"""Step 10.1 - A referee for generated digits: an MNIST classifier trained with zero.

Step 9's samples were judged by eye. Step 10 asks the model for a *particular* digit, and
whether it obeys is a question a classifier can answer for thousands of images. We train a
small CNN (zero.metrics.MnistClassifier: two conv + max-pool stages, a 128-unit layer, 10
outputs) on the training images, check it on held-out ones, and keep it as a checkpoint.
zero.metrics then uses it three ways:

  - label accuracy: the share of images generated for label y that it classifies as y,
  - class histogram: which digits an unconditional model produces, and how often,
  - Frechet distance between its 128 penultimate features of generated and of real images
    (a Gaussian fitted to each set; 0 means the same mean and covariance).

A referee must be better at reading digits than the models it judges. By default it trains on
about 80,000 images (zero.metrics.referee_epochs): 10 epochs of the 8,000 images available
offline, which reached 98.05-98.80% on the 2,000 held-out ones (98.05% in README's course run;
3 epochs: 96.9-97.6%); never fewer than 2 epochs, so 2 epochs of the 60,000 MNIST training
images (120,000 seen).

    python steps/step10_conditional_diffusion/1_classifier.py   # 10 epochs of 8,000 images: 33-68 s on 2 cores
"""
# needs: mnist
import time

import numpy as np

from zero.backend import seed
from zero.cli import checkpoint_path, out_dir, parse_options, plural, step_parser
from zero.metrics import MnistClassifier, classify, referee_epochs, train_classifier
from zero.optimizers import Adam
from zero.plot import figures, save, show, show_images
from zero.training import add_data_options, mnist_splits_from, resume, run_settings

parser = step_parser(__doc__, training=True, epochs=None, batch_size=64, lr=1e-3)
add_data_options(parser)
args = parse_options(parser, quick=dict(epochs=1, train_limit=512, heldout_limit=256))
folder = out_dir(args, __file__)
checkpoint = checkpoint_path(args, __file__)
plt = figures(args.show)
seed(args.seed, args.device)

data = mnist_splits_from(args)
print(data.description)
x_train = data.x_train.reshape(-1, 1, 28, 28)      # images (N, 1, 28, 28) in [0, 1]
x_heldout = data.x_heldout.reshape(-1, 1, 28, 28)
args.epochs = args.epochs or referee_epochs(len(x_train))   # about 80,000 images seen

model = MnistClassifier().to(args.device)
optimizer = Adam(model.params(), lr=args.lr)
settings = run_settings(args, exclude=("heldout_limit",))   # the held-out images only score the result
history, start_epoch = resume(checkpoint, model, optimizer, args, settings=settings)
start = time.perf_counter()
# saved after every epoch, marked half-trained until the last: a referee must be finished to score
history = train_classifier(model, optimizer, x_train, data.t_train, args.epochs, args.batch_size,
                           args.device, args.seed, start_epoch, history, checkpoint, settings)
if args.epochs > start_epoch:
    print(f"trained {plural(args.epochs - start_epoch, 'epoch')} in {time.perf_counter() - start:.1f} s")
    print(f"checkpoint saved: {checkpoint} (after every epoch; continue with --resume --epochs N)")

logits, _ = classify(model, x_heldout)
predicted = logits.argmax(axis=1)
accuracy = np.mean(predicted == data.t_heldout)
print(f"held-out accuracy: {accuracy:.2%} on {plural(len(x_heldout), 'image', ',')}")
confusion = np.zeros((10, 10), dtype=np.int64)
np.add.at(confusion, (data.t_heldout, predicted), 1)

fig, (ax_confusion, ax_errors) = plt.subplots(1, 2, figsize=(11, 5), layout="constrained")
shade = np.log1p(confusion)   # on a log scale, so that single mistakes show beside the ~200 right ones
ax_confusion.imshow(shade, cmap="Blues")
for (row, column), count in np.ndenumerate(confusion):
    if count:   # white on the dark cells, black on the light ones
        ax_confusion.text(column, row, str(count), ha="center", va="center", fontsize=8,
                          color="white" if shade[row, column] > shade.max() / 2 else "black")
ax_confusion.set(title=f"held-out confusion matrix (accuracy {accuracy:.1%})", xlabel="predicted", ylabel="true",
                 xticks=range(10), yticks=range(10))
wrong = np.flatnonzero(predicted != data.t_heldout)[:24]
if len(wrong):
    pairs = [f"{data.t_heldout[i]}->{predicted[i]}" for i in wrong]
    rows = "\n".join("   ".join(pairs[start:start + 8]) for start in range(0, len(pairs), 8))   # one line per row
    show_images(ax_errors, x_heldout[wrong], 8, f"misclassified held-out digits\n(true -> predicted, row by row)\n{rows}",
                fontsize=10)
else:
    ax_errors.axis("off")                                     # nothing misclassified: an empty panel
save(fig, folder, "classifier")
show()
