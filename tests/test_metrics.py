"""zero.metrics: the Frechet distance against known values, the classifier and the scores."""
import numpy as np
import pytest
from scipy import linalg

from conftest import on
from zero.metrics import (MnistClassifier, classifier_for_scoring, classify, feature_statistics, frechet_distance,
                          referee_epochs, score_samples, share_interval, train_classifier)
from zero.optimizers import Adam


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
    with pytest.raises(ValueError, match="3 labels for 4 images"):
        score_samples(model, images[:4], labels=labels[:3])


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
