"""Scoring generated digits with an MNIST classifier trained with zero (no external models).

    classifier = MnistClassifier().to(device)                  # trained by steps/step10_.../1_classifier.py
    load_checkpoint(path, classifier)
    scores = score_samples(classifier, images, labels=asked, reference=heldout_images)
    # scores['label_accuracy']: share of images classified as the label they were generated for
    # scores['class_histogram']: how many images fall in each class (a model that forgets digits shows gaps)
    # scores['frechet_distance']: distance between the classifier features of generated and real images
    low, high = share_interval(68, 80)                          # 95% interval of a share: 85% of 80 is 76-91%

The Frechet distance (the idea behind FID, Heusel et al. 2017) fits a Gaussian to each set of
features (the classifier's penultimate layer) and measures the squared 2-Wasserstein distance between them:

    FD = ||mu_1 - mu_2||^2 + tr(S_1 + S_2 - 2 (S_1^{1/2} S_2 S_1^{1/2})^{1/2})

0 for identical statistics; lower is better. Numbers are comparable only between runs that use
the same classifier and the same number of images (the estimate is biased upwards for few images).
"""
import math
import shlex
from pathlib import Path

import numpy as np
from tqdm import tqdm

import zero.functions as F
from zero.backend import seed as seed_generators, to_device_beside, to_numpy
from zero.cli import plural
from zero.core import Variable, no_grad, test_mode
from zero.data import Dataset, epoch_loader
from zero.errors import CheckpointRefused
from zero.layers import Conv2d, Linear
from zero.models import Model
from zero.optimizers import Adam
from zero.training import (RUN_SETTINGS, finite_loss, loss_history, may_have_seen_heldout, read_checkpoint,
                           save_checkpoint, stage_checkpoint)
from zero.utils import check_count, check_not_empty

NUM_CLASSES = 10


class MnistClassifier(Model):
    """A small CNN: conv3x3(32)-ReLU-maxpool, conv3x3(64)-ReLU-maxpool, Linear(128)-ReLU, Linear(10).

    images (N, 1, 28, 28) in [0, 1] -> logits (N, 10); `features` gives the 128 numbers before
    the last layer, the representation the Frechet distance compares.
    """

    feature_size = 128

    def __init__(self):
        super().__init__()
        self.conv1 = Conv2d(32, 3, padding=1, in_channels=1)
        self.conv2 = Conv2d(64, 3, padding=1, in_channels=32)
        self.fc1 = Linear(self.feature_size, in_size=64 * 7 * 7)
        self.fc2 = Linear(NUM_CLASSES, in_size=self.feature_size)

    def features(self, x):
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)      # (N, 32, 14, 14)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)      # (N, 64, 7, 7)
        return F.relu(self.fc1(F.flatten(h)))           # (N, 128)

    def forward(self, x):
        return self.fc2(self.features(x))


def referee_epochs(num_images):
    """Training epochs for the scoring classifier: enough to see about 80,000 images, 2 to 20.
    On the 8,000 offline training images that is 10 epochs (33-68 s on 2 cores; held-out accuracy
    98.05-98.80%, where 3 epochs gave 96.9-97.6% in four runs, two of them with a decaying learning
    rate); on the 60,000 MNIST training images, 2. A referee that misreads 3% of real digits
    would misread about as many good samples."""
    return min(20, max(2, round(80_000 / num_images)))


def train_classifier(model, optimizer, images, labels, epochs, batch_size=128, device=None, seed=0,
                     start_epoch=0, history=None, checkpoint=None, settings=None):
    """Mini-batch training on softmax cross-entropy, epochs start_epoch+1 .. epochs, with a progress bar.

    images: host (N, 1, 28, 28) in [0, 1]; labels: host (N,) ints. Appends each epoch's mean
    training loss to history['train_loss'] and returns history. The batches go to `device`, by
    default the model's. A loss of NaN or inf stops the run (finite_loss: TrainingDiverged).
    With a `checkpoint` path, model and optimizer are saved there after every epoch (with
    `settings`, and `epochs` as the planned epochs: a file saved before the last epoch is
    half-trained, and classifier_for_scoring refuses it as a referee).
    """
    device = model.device if device is None else device
    check_not_empty("train_classifier", images, "training images")
    check_count("train_classifier", "epochs", epochs, at_least=0)
    check_count("train_classifier", "start_epoch", start_epoch, at_least=0)
    history = loss_history(history, ["train_loss"])
    model.train()
    for epoch in range(start_epoch + 1, epochs + 1):
        loader = epoch_loader(Dataset(images, labels), batch_size, seed, epoch, device, model.dtype)
        total = 0.0
        batches = tqdm(loader, desc=f"classifier epoch {epoch}/{epochs}", leave=False)
        for batch, (x, t) in enumerate(batches, start=1):
            loss = F.softmax_cross_entropy(model(x), t)
            # explicit host copy of one number, checked before backward: NaN stops the run
            total += finite_loss(loss, f"classifier training epoch {epoch}, batch {batch} of {len(loader)}")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        history["train_loss"].append(total / len(loader))
        print(f"classifier epoch {epoch}/{epochs}: training loss {history['train_loss'][-1]:.4f}")
        if checkpoint is not None:   # Ctrl-C loses at most the epoch under way
            save_checkpoint(checkpoint, model, optimizer, epoch, history, settings, planned_epochs=epochs)
    return history


def classify(model, images, batch_size=500):
    """Logits and features of images (N, 1, 28, 28) in [0, 1] (a host array, or one on the model's
    device; on another device they are refused, TypeError): host arrays (N, 10) and (N, 128), float64."""
    check_not_empty("classify", images, "images to classify")
    logits, features = [], []
    with no_grad(), test_mode():
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size].astype(model.dtype, copy=False)  # float64 images too
            x = Variable(to_device_beside(batch, model.device, "classify: the images", "the model"),
                         requires_grad=False)
            h = model.features(x)
            logits.append(to_numpy(model.fc2(h).data))    # explicit host copies of the results
            features.append(to_numpy(h.data))
    return np.concatenate(logits).astype(np.float64), np.concatenate(features).astype(np.float64)


def feature_statistics(features):
    """Mean (D,) and covariance (D, D) of features (N, D), a host array (as classify returns), in float64."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:  # np.cov of one row is NaN (with a warning only)
        raise ValueError(f"feature_statistics: a mean and covariance need features (N, D) with N >= 2, "
                         f"got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _sqrt_psd(matrix):
    """Square root of a symmetric positive semi-definite matrix via eigh (tiny negative eigenvalues,
    rounding errors, are clipped to 0)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mean1, cov1, mean2, cov2):
    """FD between N(mean1, cov1) and N(mean2, cov2) (host arrays), in float64:

        ||mean1 - mean2||^2 + tr(cov1) + tr(cov2) - 2 tr((cov1^{1/2} cov2 cov1^{1/2})^{1/2})

    The last trace equals tr((cov1 cov2)^{1/2}); the symmetric form lets eigh take both roots.
    A distance is never negative: rounding (about -1e-10 for two identical sets) is clipped to 0.
    Statistics with NaN or infinite entries (features of diverged samples) are refused: clipping
    would have turned their NaN distance into a perfect 0.
    """
    mean1, mean2 = np.atleast_1d(np.asarray(mean1, np.float64)), np.atleast_1d(np.asarray(mean2, np.float64))
    cov1, cov2 = np.atleast_2d(np.asarray(cov1, np.float64)), np.atleast_2d(np.asarray(cov2, np.float64))
    size = mean1.size
    for name, value, shape in [("mean1", mean1, (size,)), ("cov1", cov1, (size, size)),
                               ("mean2", mean2, (size,)), ("cov2", cov2, (size, size))]:
        if value.shape != shape:   # a mismatch failed inside matmul, or broadcast silently
            raise ValueError(f"frechet_distance: {name} has shape {value.shape}, expected {shape} "
                             f"(mean1 has {size} features)")
    for name, value in [("mean1", mean1), ("cov1", cov1), ("mean2", mean2), ("cov2", cov2)]:
        if not np.all(np.isfinite(value)):
            raise ValueError(f"frechet_distance: {name} has NaN or infinite entries")
    root1 = _sqrt_psd(cov1)
    middle = root1 @ cov2 @ root1
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = np.sqrt(np.clip(eigenvalues, 0, None)).sum()
    return max(0.0, float(np.sum((mean1 - mean2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2 * trace_sqrt))


def score_samples(model, images, labels=None, reference=None, reference_statistics=None):
    """Scores of generated images (N, 1, 28, 28) in [0, 1] by classifier `model`:

    'predicted' (N,) classes; 'class_histogram' (10,) counts; if labels (N,) are given, 'label_matches'
    (how many predicted == labels: an int, as share_interval takes it) and 'label_accuracy' (their
    share); 'frechet_distance' to the reference images (M, 1, 28, 28) if given, or to
    reference_statistics (the features' mean and covariance, from feature_statistics: compute them
    once when several sets are compared with the same images).
    """
    if reference is not None and reference_statistics is not None:
        raise ValueError("score_samples: give reference images or reference_statistics, not both")
    check_not_empty("score_samples", images, "images to score")
    if labels is not None and np.shape(labels) != (len(images),):  # (N, 1) labels would compare N x N pairs
        raise ValueError(f"score_samples: labels must be one per image, shape ({len(images)},), got shape "
                         f"{np.shape(labels)}")
    logits, features = classify(model, images)
    predicted = logits.argmax(axis=1)
    scores = {"predicted": predicted, "class_histogram": np.bincount(predicted, minlength=NUM_CLASSES)}
    if labels is not None:
        scores["label_matches"] = int(np.sum(predicted == to_numpy(labels)))
        scores["label_accuracy"] = scores["label_matches"] / len(predicted)
    if reference is not None:
        _, reference_features = classify(model, reference)
        reference_statistics = feature_statistics(reference_features)
    if reference_statistics is not None:
        scores["frechet_distance"] = frechet_distance(*feature_statistics(features), *reference_statistics)
    return scores


def real_image_distances(model, images, size, reference_statistics, draws=10, seed=0):
    """What a perfect generator would score: the FD of `size` real images (drawn at random, without
    replacement, from images (N, 1, 28, 28)) to reference_statistics, for `draws` such sets. Returns
    the draws' distances, a float64 array (draws,): their spread is how much an FD of `size` images
    varies by chance alone.

    Random sets, not the first `size` images: a data set's order need not be random (the MNIST test
    split, say, holds one group of writers after another), and one set is one draw of a noisy number."""
    check_count("real_image_distances", "size", size)
    check_count("real_image_distances", "draws", draws)
    if size < 2 or size > len(images):
        raise ValueError(f"real_image_distances: size must lie in 2..{len(images)} (the number of images), got {size}")
    rng = np.random.default_rng(seed)
    distances = []
    for _ in range(draws):
        _, features = classify(model, images[np.sort(rng.choice(len(images), size, replace=False))])
        distances.append(frechet_distance(*feature_statistics(features), *reference_statistics))
    return np.array(distances)


def share_interval(successes, trials, z=1.96):
    """Wilson score interval (low, high) for a share successes / trials (z = 1.96: 95%).

    A share measured on few samples is uncertain: 68 of 80 is 85%, but any true rate from
    about 75.6% to 91.2% would often give 68 of 80. With p = successes / trials:

        centre = (p + z^2 / 2n) / (1 + z^2 / n),
        half-width = z sqrt(p (1 - p) / n + z^2 / 4n^2) / (1 + z^2 / n)
    """
    if successes != int(successes) or trials != int(trials):   # a share (0.85) read as 0.85 successes
        raise ValueError(f"share_interval takes whole counts (successes of trials), got {successes} of {trials}")
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError(f"share_interval needs 0 <= successes <= trials and trials > 0, "
                         f"got {successes} of {trials}")
    p, n = successes / trials, trials
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half_width = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half_width), min(1.0, centre + half_width)


def refuse_if_seen_heldout(path, source, what="classifier"):
    """Raise CheckpointRefused, naming the file and what to do, when the model saved at `path` may
    have trained on the images a run on MNIST split `source` holds out and scores
    (zero.training.may_have_seen_heldout: --source test trains on the test split's first images,
    all of which a run on the training split holds out). source None: not checked."""
    if source is not None and may_have_seen_heldout(path, source):
        raise CheckpointRefused(
            f"{what} {path} was trained on the test split's first images (--source test), which this run on the "
            f"{source} split holds out and scores: train one on this run's data (for the referee, "
            f"steps/step10_conditional_diffusion/1_classifier.py --source {source}), or name another file")


def check_classifier(path, source=None):
    """Refuse, before any training, a classifier file at `path` that classifier_for_scoring would refuse
    after it: one that is damaged or holds another model, one saved before its run's last epoch, or one
    that may have trained on this run's held-out images (refuse_if_seen_heldout). Raises
    CheckpointRefused; a missing file passes (the referee is then trained). Changes nothing, not
    NumPy's random generator either."""
    if not Path(path).exists():
        return
    random_state = np.random.get_state()   # MnistClassifier() draws initial weights: not from this run's numbers
    try:
        _staged_referee(path, MnistClassifier(), source)   # read and checked, loaded into nothing
    finally:
        np.random.set_state(random_state)


def _staged_referee(path, model, source):
    """The checks that check_classifier and classifier_for_scoring share, in one place: the referee
    at `path` read into `model` with stage_checkpoint, changing nothing, and refused (CheckpointRefused)
    if it may have seen this run's held-out images, is damaged or another model's, or is half-trained.
    Returns stage_checkpoint's apply()."""
    refuse_if_seen_heldout(path, source)
    try:
        apply, state = stage_checkpoint(path, model)
    except ValueError as error:   # damaged, or another model's: the script shows the reason alone
        raise CheckpointRefused(_unusable_classifier(error)) from None
    _refuse_if_half_trained(path, state)
    return apply


def _unusable_classifier(error):
    """The message for a classifier file that does not load (error: load_checkpoint's, naming the file)."""
    return (f"classifier: {error}. Give another --classifier, or move this file away: a missing classifier "
            f"is trained here")


def _refuse_if_half_trained(path, state):
    """Raise CheckpointRefused for a classifier saved during training, before its last epoch (state:
    stage_checkpoint's): an interrupted run's referee would score samples with weights it never finished.
    The message gives the step 10.1 command that finishes it: its run's options, read from the file."""
    if state["planned_epochs"] is None or state["epoch"] >= state["planned_epochs"]:
        return
    stored = read_checkpoint(path, [], optional=[f"settings/{name}" for name in RUN_SETTINGS])
    options = [f"--{key.split('/', 1)[1].replace('_', '-')} {stored[key]}" for key in sorted(stored)
               if str(stored[key]) != "None"]
    command = " ".join(["python steps/step10_conditional_diffusion/1_classifier.py --resume",
                        f"--checkpoint {shlex.quote(str(path))} --epochs {state['planned_epochs']}", *options])
    raise CheckpointRefused(
        f"classifier {path} is half-trained: saved after epoch {state['epoch']} of {state['planned_epochs']} "
        f"by a run that stopped. Finish it ({command}), or move the file away: a missing classifier is "
        f"trained here")


def classifier_for_scoring(path, images=None, labels=None, device="cpu", epochs=None, seed=0, save=True,
                           heldout=None, source=None):
    """The referee of the sample-quality numbers: the classifier saved at `path` (by
    steps/step10_conditional_diffusion/1_classifier.py). If the file is missing and training images
    (N, 1, 28, 28) and labels are given, one is trained on them here (NumPy's and the device's generators
    seeded with `seed` first; Adam, lr 1e-3, batch 64, `epochs`, by default referee_epochs(N): as step
    10.1 does, so the same seed and images give the same referee) and, if save, saved at `path`
    after every epoch (a --quick run passes save=False, so its toy classifier is never written, not
    even where an explicit --classifier points). A file saved before its run's last epoch, by a run
    that stopped, is refused (CheckpointRefused, saying how to finish it). Prints where the classifier
    came from, and its accuracy on heldout = (images, labels) when given. source: the MNIST split
    the images come from ('train' or 'test', mnist_splits' .source), saved with the settings so
    that step 10.1 does not resume the classifier on other data; a saved classifier that may have
    trained on this run's held-out images is refused (refuse_if_seen_heldout). Returns the model in
    eval mode."""
    check_count("classifier_for_scoring", "epochs", epochs, optional=True)   # -1 would save an untrained referee
    if not Path(path).exists() and images is not None:
        seed_generators(seed, device)   # the initial weights from `seed`, as step 10.1 draws them
    model = MnistClassifier().to(device)
    if Path(path).exists():
        _staged_referee(path, model, source)()
        print(f"classifier: loaded {path}")
    elif images is None:
        raise FileNotFoundError(f"no classifier checkpoint at {path}: run "
                                f"steps/step10_conditional_diffusion/1_classifier.py first")
    else:
        check_not_empty("classifier_for_scoring", images, "images to train a classifier on")
        epochs = epochs or referee_epochs(len(images))
        print(f"classifier: none at {path}; training one here ({plural(epochs, 'epoch')} on {len(images):,} images)")
        lr, batch_size = 1e-3, 64   # step 10.1's defaults
        optimizer = Adam(model.params(), lr=lr)
        # saved after every epoch, with its settings, as step 10.1 saves them, which a --resume there checks
        settings = {"seed": seed, "batch_size": batch_size, "lr": lr, "train_limit": len(images)}
        if source is not None:
            settings["source"] = source
        train_classifier(model, optimizer, images, labels, epochs, batch_size, device, seed,
                         checkpoint=path if save else None, settings=settings)
        if save:
            print(f"classifier saved: {path}")
    model.eval()
    if heldout is not None:
        logits, _ = classify(model, heldout[0])
        print(f"classifier: held-out accuracy {np.mean(logits.argmax(axis=1) == to_numpy(heldout[1])):.2%}")
    return model
