"""zero.metrics: the Frechet distance against known values, the classifier and the scores."""
import re

import numpy as np
import pytest
from scipy import linalg

import zero.metrics
from conftest import interrupted_at_call, on
from zero.data import DataLoader, Dataset
from zero.errors import CheckpointRefused
from zero.layers import Dropout, Linear
from zero.metrics import (MnistClassifier, check_classifier, classifier_for_scoring, classify, feature_statistics,
                          frechet_distance, real_image_distances, referee_epochs, score_samples, share_interval,
                          train_classifier)
from zero.models import Model
from zero.optimizers import Adam
from zero.training import load_checkpoint, restore_random_state, save_checkpoint


def test_frechet_distance_of_a_gaussian_with_itself_is_zero():
    rng = np.random.default_rng(0)
    features = rng.standard_normal((500, 6)) @ rng.standard_normal((6, 6))
    mean, cov = feature_statistics(features)
    assert frechet_distance(mean, cov, mean, cov) == pytest.approx(0.0, abs=1e-8)
    # rank-deficient (ReLU-like) features: rounding must not make a distance negative
    rng = np.random.default_rng(1)  # a case that came out -1e-12 before the clip
    relu = np.maximum(rng.standard_normal((300, 40)) @ rng.standard_normal((40, 64)), 0).astype(np.float32)
    mean, cov = feature_statistics(relu)
    assert frechet_distance(mean, cov, mean, cov) >= 0


def test_frechet_distance_clips_a_negative_rounding_to_zero_rather_than_reflecting_it():
    """Two identical N(0, 7) in one dimension: exactly 0, but 7 + 7 - 2 sqrt(sqrt(7) 7 sqrt(7)) rounds to
    -1.8e-15 in float64 (every operation correctly rounded, so on every machine): the distance is 0, not
    the size of the rounding error."""
    assert frechet_distance([0.0], [[7.0]], [0.0], [[7.0]]) == 0.0


def test_frechet_distance_known_values():
    # one dimension: (m1 - m2)^2 + (s1 - s2)^2
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4 + 1)
    # diagonal covariances: ||m1 - m2||^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    m1, m2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = 1 + 4 + (1 - 2) ** 2 + 0 + (3 - 1) ** 2
    assert frechet_distance(m1, np.diag(a), m2, np.diag(b)) == pytest.approx(expected)


def test_frechet_distance_matches_scipy_sqrtm():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 5, 5))
    cov1, cov2 = a @ a.T + 0.1 * np.eye(5), b @ b.T + 0.1 * np.eye(5)
    m1, m2 = rng.standard_normal((2, 5))
    expected = np.sum((m1 - m2) ** 2) + np.trace(cov1 + cov2 - 2 * linalg.sqrtm(cov1 @ cov2).real)
    assert frechet_distance(m1, cov1, m2, cov2) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(m1, cov1, m2, cov2) == pytest.approx(frechet_distance(m2, cov2, m1, cov1), rel=1e-8)


def test_feature_statistics_divide_by_n_minus_1_as_the_reference_fid_code_does():
    features = np.array([[0.0, 0.0], [2.0, 0.0], [1.0, 3.0]])
    mean, cov = feature_statistics(features)
    np.testing.assert_allclose(mean, [1.0, 1.0])
    # deviations (-1, -1), (1, -1), (0, 2): sums of products 2, 0, 6, divided by N - 1 = 2
    np.testing.assert_allclose(cov, [[1.0, 0.0], [0.0, 3.0]])


def test_frechet_distance_of_one_dimensional_features():
    # one feature: np.cov gives a 0-d variance, which must still count as a 1 x 1 covariance
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.0, 1.0, (50, 1)), rng.normal(1.0, 2.0, (60, 1))
    expected = (a.mean() - b.mean()) ** 2 + (a.std(ddof=1) - b.std(ddof=1)) ** 2
    assert frechet_distance(*feature_statistics(a), *feature_statistics(b)) == pytest.approx(expected, rel=1e-10)
    assert frechet_distance(1.0, 4.0, 3.0, 9.0) == pytest.approx(4 + 1)   # scalar means and variances


def test_frechet_distance_of_rank_deficient_features_of_two_different_sets():
    # 8 features spanning only 3 dimensions (as dead or tied units give): the eigenvalues that should be 0
    # come out as -1e-15, and their square roots must not turn the distance into NaN (or 0)
    rng = np.random.default_rng(1)
    basis = rng.standard_normal((3, 8))
    m1, c1 = feature_statistics(rng.standard_normal((200, 3)) @ basis)
    m2, c2 = feature_statistics(rng.standard_normal((200, 3)) @ basis + 0.3)
    # tr((C1 C2)^1/2) = sum of the square roots of the eigenvalues of C1 C2 (real, >= 0 up to rounding)
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvals(c1 @ c2).real, 0, None)).sum()
    expected = np.sum((m1 - m2) ** 2) + np.trace(c1) + np.trace(c2) - 2 * trace_sqrt
    assert expected > 0.5
    assert frechet_distance(m1, c1, m2, c2) == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_of_samples_converges_to_the_true_value():
    rng = np.random.default_rng(2)
    x = rng.normal(0.0, 1.0, (200000, 2))
    y = rng.normal([1.0, 0.0], [2.0, 1.0], (200000, 2))
    # (1)^2 + (2 - 1)^2 in the first coordinate, 0 in the second
    assert frechet_distance(*feature_statistics(x), *feature_statistics(y)) == pytest.approx(2.0, abs=0.03)


def _toy_digits(n):
    """Images of two easy classes: a horizontal bar (0) or a vertical bar (1), in [0, 1]."""
    rng = np.random.default_rng(0)
    images = 0.1 * rng.random((n, 1, 28, 28)).astype(np.float32)
    labels = np.arange(n) % 2
    for i in range(n):
        offset = rng.integers(6, 18)
        if labels[i] == 0:
            images[i, 0, offset:offset + 4, 4:24] = 1
        else:
            images[i, 0, 4:24, offset:offset + 4] = 1
    return images, labels


def test_classifier_learns_and_scores(device):
    np.random.seed(0)
    images, labels = _toy_digits(256)
    model = MnistClassifier().to(device)
    history = train_classifier(model, Adam(model.params(), lr=1e-3), images, labels, epochs=2,
                               batch_size=32, device=device)
    assert history["train_loss"][-1] < history["train_loss"][0]
    logits, features = classify(model, on(device, images[:40]))
    assert logits.shape == (40, 10) and features.shape == (40, MnistClassifier.feature_size)
    scores = score_samples(model, images[:100], labels=labels[:100], reference=images[100:200])
    assert scores["label_accuracy"] > 0.95
    assert scores["label_matches"] == int(np.sum(scores["predicted"] == labels[:100]))
    assert scores["label_accuracy"] == scores["label_matches"] / 100
    assert scores["class_histogram"].sum() == 100 and scores["class_histogram"][2:].sum() <= 5
    assert scores["class_histogram"].shape == (10,)   # one count per class, empty classes included
    np.testing.assert_array_equal(scores["class_histogram"],
                                  [np.sum(scores["predicted"] == k) for k in range(10)])
    assert scores["frechet_distance"] >= 0
    logits64, _ = classify(model, images[:40].astype(np.float64))   # float64 images: cast to the model's dtype
    np.testing.assert_array_equal(logits64, logits)
    _, reference_features = classify(model, images[100:200])
    from_statistics = score_samples(model, images[:100], reference_statistics=feature_statistics(reference_features))
    assert from_statistics["frechet_distance"] == pytest.approx(scores["frechet_distance"])
    with pytest.raises(ValueError, match="not both"):
        score_samples(model, images[:100], reference=images[100:200],
                      reference_statistics=feature_statistics(reference_features))
    swapped = score_samples(model, images[:100], labels=1 - labels[:100])
    assert swapped["label_accuracy"] < 0.05
    with pytest.raises(ValueError, match="no images"):
        score_samples(model, images[:0], labels=labels[:0])
    with pytest.raises(ValueError, match=r"labels must be one per image, shape \(4,\), got shape \(3,\)"):
        score_samples(model, images[:4], labels=labels[:3])


def test_classify_in_batches_that_do_not_divide_the_images():
    np.random.seed(0)
    model = MnistClassifier()
    images, _ = _toy_digits(7)
    logits, features = classify(model, images, batch_size=3)          # batches of 3, 3 and 1
    assert logits.dtype == features.dtype == np.float64
    assert logits.shape == (7, 10) and features.shape == (7, MnistClassifier.feature_size)
    one_batch_logits, one_batch_features = classify(model, images)
    np.testing.assert_allclose(logits, one_batch_logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(features, one_batch_features, rtol=1e-5, atol=1e-6)


def test_classify_refuses_images_on_another_device_than_the_models():
    """They were copied through the host without being asked (zero.backend.to_device)."""
    images = on("strict", np.zeros((2, 1, 28, 28), np.float32))
    with pytest.raises(TypeError, match="classify: the images on strict and the model on cpu"):
        classify(MnistClassifier(), images)


def _cross_entropy(logits, labels):
    """Mean softmax cross-entropy, computed with NumPy from the logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(len(labels)), labels].mean()


def test_train_classifier_logs_the_mean_batch_loss_and_resumes_after_start_epoch(capsys):
    np.random.seed(0)
    model = MnistClassifier()
    images, labels = _toy_digits(32)
    frozen = Adam(model.params(), lr=0.0)                  # the weights stay: every batch sees the same model
    history = train_classifier(model, frozen, images, labels, epochs=1, batch_size=8)
    # four equal batches: the mean of their mean losses is the loss over all 32 images
    assert history["train_loss"] == [pytest.approx(_cross_entropy(classify(model, images)[0], labels), rel=1e-5)]
    earlier = {"train_loss": [9.0]}
    resumed = train_classifier(model, frozen, images, labels, epochs=3, batch_size=8, start_epoch=1, history=earlier)
    assert resumed is earlier and len(earlier["train_loss"]) == 3 and earlier["train_loss"][0] == 9.0
    printed = capsys.readouterr().out
    assert "classifier epoch 2/3" in printed and "classifier epoch 3/3" in printed and "epoch 1/3" not in printed


def test_train_classifier_trains_a_model_left_in_eval_mode_in_training_mode():
    """As fit and fit_diffusion do: a model loaded and evaluated (eval mode, as classifier_for_scoring
    leaves its referee) and then trained further would otherwise train with dropout or batch norm in
    test mode (MnistClassifier has neither, but train_classifier takes any model)."""
    np.random.seed(0)
    model = MnistClassifier()
    model.eval()
    modes = []
    forward = model.forward
    model.forward = lambda x: (modes.append(model.training), forward(x))[1]   # the mode each batch sees
    images, labels = _toy_digits(8)
    train_classifier(model, Adam(model.params(), lr=0.0), images, labels, epochs=2, batch_size=4)
    assert modes == [True] * 4


def test_score_samples_takes_labels_on_the_device(device):
    np.random.seed(0)
    model = MnistClassifier().to(device)
    weights = dict(model.named_params())
    weights["fc2.W"].data = on(device, np.zeros(weights["fc2.W"].shape, np.float32))
    weights["fc2.b"].data = on(device, np.eye(10, dtype=np.float32)[3])     # every image: class 3
    images = np.random.rand(5, 1, 28, 28).astype(np.float32)
    scores = score_samples(model, images, labels=on(device, np.array([3, 3, 1, 3, 0])))
    assert scores["label_matches"] == 3 and scores["label_accuracy"] == pytest.approx(0.6)


def test_classifier_for_scoring_trains_for_the_epochs_asked_and_returns_it_in_eval_mode(tmp_path, capsys):
    rng = np.random.default_rng(0)
    images = rng.random((16, 1, 28, 28), dtype=np.float32)
    model = classifier_for_scoring(tmp_path / "c.npz", images, rng.integers(0, 10, 16), epochs=1, save=False)
    printed = capsys.readouterr().out
    assert "classifier epoch 1/1" in printed and "1 epoch on 16 images" in printed
    assert not model.training


def test_classifier_for_scoring_trains_when_missing_saves_only_if_asked_and_then_loads(tmp_path, capsys):
    rng = np.random.default_rng(0)
    images = rng.random((64, 1, 28, 28), dtype=np.float32)
    labels = rng.integers(0, 10, 64)
    path = tmp_path / "classifier.npz"
    with pytest.raises(FileNotFoundError, match="1_classifier.py"):
        classifier_for_scoring(path)                                  # nothing to load, nothing to train on
    classifier_for_scoring(path, images, labels, epochs=1, save=False)  # a --quick run: not kept
    assert not path.exists()
    trained = classifier_for_scoring(path, images, labels, epochs=1, heldout=(images[:10], labels[:10]))
    assert path.exists() and "held-out accuracy" in capsys.readouterr().out
    loaded = classifier_for_scoring(path)                             # now read back, not trained again
    assert "loaded" in capsys.readouterr().out
    np.testing.assert_array_equal(classify(loaded, images[:5])[0], classify(trained, images[:5])[0])


def test_a_referee_that_may_have_seen_the_held_out_images_is_refused(tmp_path, capsys):
    """A referee trained with --source test (the test split's first images) was loaded by a run on the
    training split, which holds out the whole test split: its held-out accuracy and the Frechet
    reference then counted digits it had learned from."""
    rng = np.random.default_rng(0)
    images, labels = rng.random((32, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 32)
    path = tmp_path / "referee.npz"
    classifier_for_scoring(path, images, labels, epochs=1, source="test")
    with pytest.raises(CheckpointRefused, match=r"classifier .*referee.npz was trained on the test split's first "
                                                r"images \(--source test\).*1_classifier.py --source train"):
        classifier_for_scoring(path, images, labels, source="train")
    assert "loaded" not in capsys.readouterr().out
    classifier_for_scoring(path, source="test")     # the same split, or none given: loaded
    classifier_for_scoring(path)
    other = tmp_path / "train_split_referee.npz"    # trained on the training split: never saw a test image
    classifier_for_scoring(other, images, labels, epochs=1, source="train")
    classifier_for_scoring(other, source="test")
    assert capsys.readouterr().out.count("classifier: loaded") == 3


@pytest.mark.parametrize("write, message", [
    (lambda path: path.write_text("not a checkpoint"), "cannot read checkpoint"),
    (lambda path: save_checkpoint(path, Linear(3, in_size=2)), "holds model type Linear, not MnistClassifier"),
], ids=["damaged", "another model"])
def test_a_classifier_file_that_does_not_load_is_refused_by_name_before_and_at_scoring(tmp_path, write, message):
    """A damaged referee raised a plain ValueError (a traceback in a step script, not its message), and step
    10.2 read it only after training: check_classifier refuses it first, drawing no random number."""
    path = tmp_path / "referee.npz"
    write(path)
    images, labels = np.random.rand(8, 1, 28, 28).astype(np.float32), np.arange(8) % 10
    random_keys = np.random.get_state()[1].copy()
    with pytest.raises(CheckpointRefused, match=rf"classifier: .*{message}.*Give another --classifier") as refused:
        check_classifier(path, source="test")
    assert "referee.npz" in str(refused.value)
    np.testing.assert_array_equal(np.random.get_state()[1], random_keys)   # the run's numbers are untouched
    with pytest.raises(CheckpointRefused, match=message):
        classifier_for_scoring(path, images, labels, epochs=1, source="test")
    check_classifier(tmp_path / "missing.npz", source="train")   # none yet: trained when it is needed


def test_a_referee_is_saved_each_epoch_refused_while_half_trained_and_resumed_to_the_uninterrupted_one(
        tmp_path, monkeypatch, capsys):
    """Ctrl-C while the referee trains keeps its last finished epoch (it lost the whole run: the
    file was written at the end). That file is half-trained: check_classifier and classifier_for_scoring
    refuse it, saying how to finish it, and finishing it (step 10.1's --resume) gives the referee of an
    uninterrupted run, which then loads."""
    rng = np.random.default_rng(0)
    images, labels = rng.random((64, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 64)
    straight = classifier_for_scoring(tmp_path / "straight.npz", images, labels, epochs=3, seed=2)
    path = tmp_path / "referee.npz"
    monkeypatch.setattr(zero.metrics, "finite_loss", zero.metrics.finite_loss)   # restored after the test
    interrupted_at_call(zero.metrics, "finite_loss", call=3)   # one batch of 64 an epoch: epoch 3's first
    with pytest.raises(KeyboardInterrupt):
        classifier_for_scoring(path, images, labels, epochs=3, seed=2)
    half_trained = (r"referee.npz is half-trained: saved after epoch 2 of 3 by a run that stopped. Finish it \(python "
                    r"steps/step10_conditional_diffusion/1_classifier.py --resume --checkpoint \S*referee.npz "
                    r"--epochs 3 --batch-size 64 --lr 0.001 --seed 2 --train-limit 64\)")
    with pytest.raises(CheckpointRefused, match=half_trained):
        check_classifier(path)
    with pytest.raises(CheckpointRefused, match=half_trained):
        classifier_for_scoring(path, images, labels, epochs=3, seed=2)
    assert "classifier: loaded" not in capsys.readouterr().out
    monkeypatch.undo()
    model = MnistClassifier()                                # step 10.1's --resume
    optimizer = Adam(model.params(), lr=1e-3)
    state = load_checkpoint(path, model, optimizer)
    restore_random_state(state)
    train_classifier(model, optimizer, images, labels, 3, 64, seed=2, start_epoch=state["epoch"],
                     history=state["history"], checkpoint=path)
    check_classifier(path)
    finished = classifier_for_scoring(path)
    for (name, param), (_, expected) in zip(finished.named_params(), straight.named_params()):
        np.testing.assert_array_equal(param.data, expected.data, err_msg=name)


def test_check_classifier_refuses_a_referee_that_may_have_seen_the_held_out_images(tmp_path):
    path = tmp_path / "referee.npz"
    save_checkpoint(path, MnistClassifier(), epoch=1, settings={"source": "test"})
    with pytest.raises(CheckpointRefused, match="was trained on the test split's first images"):
        check_classifier(path, source="train")
    check_classifier(path, source="test")


def test_referee_epochs_see_about_80000_images_within_bounds():
    assert referee_epochs(8_000) == 10 and referee_epochs(60_000) == 2
    assert referee_epochs(64) == 20 and referee_epochs(10 ** 6) == 2
    counts = [referee_epochs(n) for n in range(1_000, 100_000, 1_000)]
    assert counts == sorted(counts, reverse=True)   # more images, never more epochs


def test_share_interval_matches_published_wilson_intervals():
    # Wilson score intervals at 95% (z = 1.96), as tabulated e.g. by Newcombe (1998)
    assert share_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert share_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert share_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    low, high = share_interval(68, 80)
    assert low < 68 / 80 < high and high - low < share_interval(17, 20)[1] - share_interval(17, 20)[0]
    with pytest.raises(ValueError, match="successes"):
        share_interval(5, 4)
    for successes, trials in [(0, 0), (-1, 10)]:
        with pytest.raises(ValueError, match="successes"):
            share_interval(successes, trials)


def test_share_interval_stays_within_0_and_1():
    for trials in range(1, 200):                          # rounding alone would step outside for some counts
        assert share_interval(0, trials)[0] >= 0.0 and share_interval(trials, trials)[1] <= 1.0


def test_class_histogram_has_all_ten_classes_when_few_are_predicted():
    """A model that only ever predicts some digits still gets a (10,) histogram: the missing
    classes are zero counts, not cut off (a model that forgets digits shows gaps)."""
    np.random.seed(0)
    model = MnistClassifier()
    fc2 = dict(model.named_params())
    fc2["fc2.W"].data = np.zeros_like(fc2["fc2.W"].data)
    bias = np.zeros(10, np.float32)
    bias[3] = 1.0                                     # every image: class 3
    fc2["fc2.b"].data = bias
    images = np.random.rand(7, 1, 28, 28).astype(np.float32)
    scores = score_samples(model, images, labels=np.full(7, 3))
    np.testing.assert_array_equal(scores["predicted"], np.full(7, 3))
    assert scores["class_histogram"].shape == (10,)
    np.testing.assert_array_equal(scores["class_histogram"], [0, 0, 0, 7, 0, 0, 0, 0, 0, 0])
    assert scores["label_matches"] == 7 and scores["label_accuracy"] == 1.0
    bias[:] = 0
    bias[0] = 1.0                                     # every image: class 0, the histogram still (10,)
    fc2["fc2.b"].data = bias.copy()
    np.testing.assert_array_equal(score_samples(model, images)["class_histogram"], [7] + [0] * 9)


def test_frechet_distance_refuses_statistics_with_nan_instead_of_scoring_them_0():
    with pytest.raises(ValueError, match="mean1 has NaN"):
        frechet_distance([np.nan, 0.0], np.eye(2), [0.0, 0.0], np.eye(2))
    with pytest.raises(ValueError, match="cov2 has NaN or infinite"):
        frechet_distance([0.0, 0.0], np.eye(2), [0.0, 0.0], np.array([[1.0, np.inf], [np.inf, 1.0]]))


@pytest.mark.parametrize("shape", [(1, 4), (0, 4), (5,)])
def test_feature_statistics_refuses_too_few_rows_for_a_covariance(shape):
    """One row gave a NaN covariance with a warning only."""
    with pytest.raises(ValueError, match=r"feature_statistics: .* N >= 2, got shape " + re.escape(str(shape))):
        feature_statistics(np.ones(shape))


def test_classify_and_score_samples_refuse_an_empty_batch_by_name():
    with pytest.raises(ValueError, match=r"classify: no images to classify \(an empty array of shape \(0, 1, 28, 28\)\)"):
        classify(MnistClassifier(), np.zeros((0, 1, 28, 28), np.float32))
    with pytest.raises(ValueError, match=r"score_samples: no images to score \(an empty array"):
        score_samples(MnistClassifier(), np.zeros((0, 1, 28, 28), np.float32), labels=np.zeros(0, np.int64))


# --- from a mutation audit of the argument checks --------------------------------------------------------------------
def test_classify_takes_a_single_image():
    logits, features = classify(MnistClassifier(), np.zeros((1, 1, 28, 28), np.float32))
    assert logits.shape == (1, 10) and features.shape == (1, 128)


def test_feature_statistics_of_two_rows_are_float64_even_from_float32_features():
    mean, cov = feature_statistics(np.array([[0.0, 1.0], [2.0, 5.0]], np.float32))
    assert mean.dtype == cov.dtype == np.float64
    np.testing.assert_allclose(mean, [1.0, 3.0])
    np.testing.assert_allclose(cov, [[2.0, 4.0], [4.0, 8.0]])   # divided by N - 1 = 1


def test_score_samples_refuses_reference_images_and_statistics_together():
    images = np.zeros((2, 1, 28, 28), np.float32)
    statistics = (np.zeros(128), np.eye(128))
    with pytest.raises(ValueError, match="score_samples: give reference images or reference_statistics, not both"):
        score_samples(MnistClassifier(), images, reference=images, reference_statistics=statistics)


def test_real_image_distances_score_random_sets_not_the_first_images():
    # a data set in an order that is not random: 20 copies of one image, then 20 varied ones
    rng = np.random.default_rng(0)
    images = np.concatenate([np.repeat(rng.random((1, 1, 28, 28)), 20, axis=0), rng.random((20, 1, 28, 28))])
    np.random.seed(0)
    model = MnistClassifier()
    reference = feature_statistics(classify(model, rng.random((30, 1, 28, 28)))[1])
    distances = real_image_distances(model, images.astype(np.float32), 10, reference, draws=5, seed=3)
    assert distances.shape == (5,) and distances.dtype == np.float64
    assert len(set(distances.tolist())) == 5                     # five different sets
    first_ten = frechet_distance(*feature_statistics(classify(model, images[:10].astype(np.float32))[1]), *reference)
    assert distances.max() < first_ten                           # the first ten are all one image: far off
    picks = np.random.default_rng(3).choice(len(images), 10, replace=False)
    assert distances[0] == pytest.approx(frechet_distance(
        *feature_statistics(classify(model, images[np.sort(picks)].astype(np.float32))[1]), *reference))
    again = real_image_distances(model, images.astype(np.float32), 10, reference, draws=5, seed=3)
    np.testing.assert_array_equal(distances, again)              # seeded
    whole = real_image_distances(model, images.astype(np.float32), 40, reference, draws=2)
    assert whole[0] == pytest.approx(whole[1])                   # every image: the same set twice


@pytest.mark.parametrize("size, draws, message", [(1, 3, r"size must lie in 2\.\.4"), (5, 3, r"size must lie in 2\.\.4"),
                                                  (2, 0, "draws must be a whole number >= 1")])
def test_real_image_distances_refuse_impossible_sets(size, draws, message):
    statistics = (np.zeros(128), np.eye(128))
    with pytest.raises(ValueError, match="real_image_distances: " + message):
        real_image_distances(MnistClassifier(), np.zeros((4, 1, 28, 28), np.float32), size, statistics, draws=draws)


def test_score_samples_refuses_labels_that_do_not_pair_with_the_images():
    images = np.zeros((5, 1, 28, 28), np.float32)
    with pytest.raises(ValueError, match=r"score_samples: labels must be one per image, shape \(5,\), got shape \(3,\)"):
        score_samples(MnistClassifier(), images, labels=np.array([1, 2, 3]))
    with pytest.raises(ValueError, match=r"got shape \(5, 1\)"):  # counted 5 x 5 pairs: more matches than images
        score_samples(MnistClassifier(), images, labels=np.zeros((5, 1), np.int64))


@pytest.mark.parametrize("negative", ["cov1", "cov2"])
def test_a_slightly_negative_eigenvalue_counts_as_zero(negative):
    """Rounding can leave a covariance eigenvalue just below 0: its square root is 0, not sqrt(|value|)."""
    slightly_negative, plain = np.diag([1.0, -1e-6]), np.eye(2)
    covs = (slightly_negative, plain) if negative == "cov1" else (plain, slightly_negative)
    distance = frechet_distance(np.zeros(2), covs[0], np.zeros(2), covs[1])
    assert distance == pytest.approx(1 - 1e-6, abs=1e-12)


class _DropoutClassifier(MnistClassifier):
    def __init__(self):
        super().__init__()
        self.drop = Dropout(0.5)

    def features(self, x):
        return self.drop(super().features(x))


def test_classify_runs_the_classifier_in_test_mode():
    np.random.seed(0)
    model = _DropoutClassifier()
    images, _ = _toy_digits(4)
    first, second = classify(model, images), classify(model, images)
    np.testing.assert_array_equal(first[1], second[1])
    model.eval()
    np.testing.assert_array_equal(classify(model, images)[1], first[1])


class _BatchRecorder(Model):
    """A linear classifier of the flattened images that records the first pixel of each batch's images."""

    def __init__(self):
        super().__init__()
        self.fc = Linear(10, in_size=784)
        self.batches = []

    def forward(self, x):
        self.batches.append(x[:, 0, 0, 0].tolist())
        return self.fc(x.reshape(len(x), -1))


def test_train_classifier_draws_each_epochs_batch_order_from_seed_and_epoch():
    np.random.seed(0)
    model = _BatchRecorder()
    images, labels = _toy_digits(6)
    images[:, 0, 0, 0] = np.arange(6)
    train_classifier(model, Adam(model.params(), lr=0.0), images, labels, epochs=2, batch_size=3, seed=3)
    expected = [x[:, 0, 0, 0].tolist() for epoch in (1, 2)
                for x, _ in DataLoader(Dataset(images, labels), 3, seed=(3, epoch))]
    assert model.batches == expected and model.batches[:2] != model.batches[2:]


def test_the_features_are_the_relu_outputs_of_the_hidden_layer():
    np.random.seed(0)
    _, features = classify(MnistClassifier(), np.random.rand(4, 1, 28, 28).astype(np.float32))
    assert features.min() == 0.0 and features.max() > 0


def test_score_samples_compares_the_samples_features_with_the_reference_statistics():
    np.random.seed(0)
    model = MnistClassifier()
    images, reference = np.random.rand(2, 6, 1, 28, 28).astype(np.float32)
    statistics = feature_statistics(classify(model, reference)[1])
    scores = score_samples(model, images, reference_statistics=statistics)
    expected = frechet_distance(*feature_statistics(classify(model, images)[1]), *statistics)
    assert scores["frechet_distance"] == pytest.approx(expected, rel=1e-12) and expected > 0


def test_classifier_for_scoring_trains_with_step_10_1s_settings(tmp_path, monkeypatch):
    """Adam with lr 1e-3, batches of 64, the given epochs, device and seed."""
    calls = []

    def record(model, optimizer, images, labels, epochs, batch_size, device, seed, checkpoint, settings):
        calls.append((type(optimizer), optimizer.lr, len(images), epochs, batch_size, device, seed, checkpoint,
                      settings))
        return {"train_loss": [0.0] * epochs}

    monkeypatch.setattr(zero.metrics, "train_classifier", record)
    images, labels = _toy_digits(3)
    classifier_for_scoring(tmp_path / "c.npz", images, labels, epochs=2, seed=3, save=False)
    classifier_for_scoring(tmp_path / "kept.npz", images, labels, epochs=2, seed=3, source="test")
    settings = {"seed": 3, "batch_size": 64, "lr": 1e-3, "train_limit": 3}
    assert calls == [(Adam, 1e-3, 3, 2, 64, "cpu", 3, None, settings),      # a --quick run's: not saved
                     (Adam, 1e-3, 3, 2, 64, "cpu", 3, tmp_path / "kept.npz", {**settings, "source": "test"})]


def test_training_a_classifier_on_no_images_is_refused_by_name(tmp_path):
    empty_images, empty_labels = np.zeros((0, 1, 28, 28), np.float32), np.zeros(0, np.int64)
    with pytest.raises(ValueError, match=r"classifier_for_scoring: no images to train a classifier on \(an empty"):
        classifier_for_scoring(tmp_path / "none.npz", empty_images, empty_labels, save=False)
    with pytest.raises(ValueError, match=r"train_classifier: no training images \(an empty array of shape \(0, 1"):
        model = MnistClassifier()
        train_classifier(model, Adam(model.params()), empty_images, empty_labels, epochs=1)


@pytest.mark.parametrize("epochs", [0, -1])
def test_a_referee_of_no_epochs_is_refused_before_anything_is_saved(tmp_path, epochs):
    """--classifier-epochs -1 saved an untrained referee where step 10.1's classifier belongs."""
    images, labels = np.zeros((8, 1, 28, 28), np.float32), np.arange(8) % 10
    with pytest.raises(ValueError, match=f"classifier_for_scoring: epochs must be a whole number >= 1, got {epochs}"):
        classifier_for_scoring(tmp_path / "referee.npz", images, labels, epochs=epochs)
    assert not (tmp_path / "referee.npz").exists()


@pytest.mark.parametrize("shapes, named", [
    (((3,), (3, 3), (4,), (4, 4)), r"mean2 has shape \(4,\), expected \(3,\)"),   # failed inside matmul
    (((5,), (3, 3), (5,), (3, 3)), r"cov1 has shape \(3, 3\), expected \(5, 5\)"),   # gave a number
])
def test_frechet_distance_refuses_statistics_of_other_sizes_naming_the_argument(shapes, named):
    mean1, cov1, mean2, cov2 = (np.zeros(s) if len(s) == 1 else np.eye(s[0]) for s in shapes)
    with pytest.raises(ValueError, match=f"frechet_distance: {named}"):
        frechet_distance(mean1, cov1, mean2, cov2)


@pytest.mark.parametrize("successes, trials", [(0.85, 80), (68.5, 80), (3, 7.5)])
def test_share_interval_refuses_a_share_or_other_non_whole_counts(successes, trials):
    """share_interval(0.85, 80), the share passed for the count, gave (0.0017, 0.064)."""
    with pytest.raises(ValueError, match="share_interval takes whole counts"):
        share_interval(successes, trials)


def test_a_referee_trained_here_starts_from_its_seed_whatever_ran_before(tmp_path):
    """The GAN steps train the referee after their own training: its initial weights came from wherever
    NumPy's global generator then stood, while the file said seed 0."""
    rng = np.random.default_rng(0)
    images, labels = rng.random((16, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 16)
    weights = []
    for earlier_seed in (1, 2):
        np.random.seed(earlier_seed)
        model = classifier_for_scoring(tmp_path / f"c{earlier_seed}.npz", images, labels, epochs=1, seed=0, save=False)
        weights.append([p.data.copy() for p in model.params()])
    for first, second in zip(*weights):
        np.testing.assert_array_equal(first, second)


def test_train_classifier_stops_at_a_nan_loss_naming_the_epoch_and_batch():
    from zero.errors import TrainingDiverged
    np.random.seed(0)
    model = MnistClassifier()
    images, labels = _toy_digits(8)
    images[:, 0, 0, 0] = np.nan
    with pytest.raises(TrainingDiverged, match=r"^classifier training epoch 1, batch 1 of 2: the loss is nan"):
        train_classifier(model, Adam(model.params(), lr=1e-3), images, labels, epochs=2, batch_size=4)
