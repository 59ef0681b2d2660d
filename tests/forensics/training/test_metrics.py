"""Metrics: frame and video level, per method, the DFDC confident strategy, one-class splits."""

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from forensics.training.metrics import (ONE_CLASS_NOTE, binary_metrics, confident_strategy, detection_report,
                               equal_error_rate, flatten, multiclass_metrics, multilabel_metrics, video_scores)


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
