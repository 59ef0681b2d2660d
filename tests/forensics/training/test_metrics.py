"""Metrics: frame and video level, per method, the DFDC confident strategy, one-class splits."""

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from forensics.training.metrics import (ONE_CLASS_NOTE, binary_metrics, confident_strategy, detection_report,
                                        equal_error_rate, flatten, improved, multiclass_metrics,
                                        multilabel_metrics, video_scores)


def frames_table():
    # Two real videos, two fakes of two methods; 4 frames each.
    rows = []
    scores = {"r1": [0.1, 0.2, 0.1, 0.9], "r2": [0.3, 0.2, 0.4, 0.1],
              "f1": [0.8, 0.9, 0.7, 0.2], "f2": [0.6, 0.4, 0.7, 0.9]}
    meta = {"r1": (0, "original", "c23"), "r2": (0, "original", "c40"),
            "f1": (1, "FaceSwap", "c23"), "f2": (1, "SelfBlend", "c40")}
    for video, values in scores.items():
        label, method, compression = meta[video]
        for s in values:
            rows.append(dict(video_key=video, label=label, method=method, compression=compression, score=s))
    return pd.DataFrame(rows)


def test_binary_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = np.clip(labels * 0.3 + rng.random(200) * 0.7, 0, 1)
    m = binary_metrics(labels, scores)
    assert m["auc"] == pytest.approx(roc_auc_score(labels, scores))
    assert m["acc"] == pytest.approx(((scores >= 0.5) == labels).mean())
    assert 0 <= m["eer"] <= 1 and m["n"] == 200


def test_eer_of_perfect_and_inverted_scores():
    labels = np.array([0, 0, 1, 1])
    assert equal_error_rate(labels, np.array([0.1, 0.2, 0.8, 0.9])) == 0.0
    assert equal_error_rate(labels, np.array([0.9, 0.8, 0.2, 0.1])) == 1.0


def dense_eer(labels: np.ndarray, scores: np.ndarray) -> float:
    """Reference EER without scikit-learn: false positive and false negative rates counted at
    every distinct score as threshold, and the crossing of the straight segment between the
    two thresholds around ``fpr = fnr``."""
    real, fake = scores[labels == 0], scores[labels == 1]
    thresholds = np.r_[np.inf, np.unique(scores)[::-1]]  # from calling nothing fake to everything
    fpr = np.array([(real >= t).mean() for t in thresholds])
    fnr = np.array([(fake < t).mean() for t in thresholds])
    for i in range(1, len(thresholds)):
        a, b = fnr[i - 1] - fpr[i - 1], fnr[i] - fpr[i]
        if b <= 0:
            return float(fpr[i - 1] + (a / (a - b)) * (fpr[i] - fpr[i - 1])) if a != b else float(fpr[i])
    raise AssertionError("no crossing")


@pytest.mark.parametrize("seed", range(5))
def test_eer_matches_a_dense_roc_reference(seed):
    # FaceForensics++ test sizes: 140 real and 560 fake videos; scores tied in places.
    rng = np.random.default_rng(seed)
    labels = np.r_[np.zeros(140, int), np.ones(560, int)]
    scores = np.round(np.clip(rng.normal(0.35 + 0.3 * labels, 0.2), 0, 1), 3)
    assert equal_error_rate(labels, scores) == pytest.approx(dense_eer(labels, scores), abs=1e-12)


def test_eer_on_a_crossing_between_operating_points():
    # One real scores above three of four fakes: the ROC goes (0, 0), (0, .25), (1, .25), ...
    # and fnr = fpr = 0.75 on the segment between (0, .25) and (1, .25); the nearest operating
    # point, (1, .25), alone says (1 + .75) / 2 = 0.875.
    labels = np.array([0, 1, 1, 1, 1])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.95])
    assert equal_error_rate(labels, scores) == pytest.approx(0.75)


def test_balanced_accuracy_beside_accuracy():
    labels = np.r_[np.zeros(20, int), np.ones(80, int)]
    everything_fake = binary_metrics(labels, np.full(100, 0.9))
    assert everything_fake["acc"] == pytest.approx(0.8) and everything_fake["bal_acc"] == pytest.approx(0.5)
    assert list(everything_fake)[3:5] == ["acc", "bal_acc"]
    assert binary_metrics([0, 0, 1], [0.1, 0.7, 0.9])["bal_acc"] == pytest.approx(0.75)
    assert binary_metrics([0, 0], [0.1, 0.7])["bal_acc"] == pytest.approx(0.5)  # the one defined class
    assert binary_metrics([], [])["bal_acc"] is None


def test_an_undefined_validation_value_never_improves():
    assert improved(None, 0.6, "max") and improved(0.6, 0.7, "max") and not improved(0.7, 0.6, "max")
    assert improved(0.3, 0.2, "min") and not improved(0.2, 0.2, "min")
    for undefined in (math.nan, None):
        assert not improved(None, undefined, "max")
        assert not improved(0.7, undefined, "max") and not improved(0.7, undefined, "min")
    assert improved(math.nan, 0.1, "max")  # a best that was never defined is beaten by any value


def test_one_class_split_reports_auc_as_undefined():
    m = binary_metrics([0, 0, 0], [0.1, 0.7, 0.2])
    assert m["auc"] is None and m["ap"] is None and m["eer"] is None
    assert m["note"] == ONE_CLASS_NOTE
    assert m["acc"] == pytest.approx(2 / 3)
    assert math.isnan(flatten({"frame": m})["frame/auc"])


def test_no_samples_is_not_a_crash():
    assert binary_metrics([], [])["acc"] is None


def test_clip_score_is_the_mean_of_frames():
    videos = video_scores(frames_table()).set_index("video_key")
    assert videos.loc["r1", "score"] == pytest.approx(np.mean([0.1, 0.2, 0.1, 0.9]))
    assert videos.loc["f2", "frames"] == 4
    median = video_scores(frames_table(), "median").set_index("video_key")
    assert median.loc["r1", "score"] == pytest.approx(0.15)


def test_confident_strategy():
    # Many confident fakes: their mean, not the overall mean.
    scores = np.array([0.95] * 12 + [0.1] * 8)
    assert confident_strategy(scores) == pytest.approx(0.95)
    # Nearly all confidently real: their mean.
    scores = np.array([0.05] * 19 + [0.9])
    assert confident_strategy(scores) == pytest.approx(0.05)
    # Otherwise the plain mean.
    assert confident_strategy(np.array([0.4, 0.6])) == pytest.approx(0.5)


def test_detection_report_per_method_and_compression():
    report = detection_report(frames_table())
    assert report["frame"]["n"] == 16 and report["video"]["n"] == 4
    assert report["video"]["auc"] == pytest.approx(1.0)  # video means: reals 0.325, 0.25; fakes 0.65, 0.65
    original, faceswap = report["per_method"]["original"], report["per_method"]["FaceSwap"]
    assert original["video"]["real_acc"] == 1.0 and original["video"]["auc"] is None  # reals alone
    # A method's fakes against all the reals: its share caught and its own AUC.
    assert faceswap["frame"]["fake_acc"] == pytest.approx(0.75)
    assert faceswap["frame"]["n_real"] == report["per_method"]["original"]["frame"]["n"]
    assert faceswap["video"]["auc"] == pytest.approx(1.0)
    assert set(report["per_compression"]) == {"c23", "c40"}
    assert report["per_compression"]["c40"]["video"]["n"] == 2


def test_multiclass_and_multilabel_metrics():
    probs = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.6, 0.3, 0.1]])
    m = multiclass_metrics(np.array([0, 1, 2, 1]), probs, ["original", "A", "B"])
    assert m["acc"] == 0.75 and m["confusion_matrix"][1] == [1, 1, 0]
    assert m["per_class_acc"]["A"] == 0.5 and m["auc"] is not None
    missing = multiclass_metrics(np.array([0, 1]), probs[:2], ["original", "A", "B"])
    assert missing["auc"] is None and "note" in missing
    targets = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    ml = multilabel_metrics(targets, np.array([[0.9, 0.1], [0.2, 0.7], [0.8, 0.9], [0.1, 0.2]]), ["A", "B"])
    assert ml["per_label_auc"]["A"] == 1.0 and ml["exact_match"] == 1.0


def test_flatten_keeps_numbers_only():
    flat = flatten({"video": {"auc": 0.9, "note": "x"}, "m": [[1, 2]], "n": 3})
    assert flat == {"video/auc": 0.9, "n": 3.0}
