"""Detection metrics at frame and video level, per manipulation method and per compression.

Every metric function comes from scikit-learn; this module only decides *what* is scored:

* frame level: one score per crop;
* video level: one score per video, aggregated from its frames' fake probabilities by the
  ``mean`` (default), the ``median``, or the ``confident`` strategy of the DFDC winner
  (Seferbekov, 2020: if many frames are confidently fake, average only those; if nearly all
  are confidently real, average those; else the plain mean).

A split holding only one class (a test set of reals only, a per-method breakdown) has no ROC
curve: AUC, AP and EER are reported as ``None`` with a note, never as a crash or a made-up
0.5. Scores from several processes must be gathered *before* calling anything here: an AUC
averaged over ranks is not the AUC of the whole split.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

ONE_CLASS_NOTE = "only one class present: ROC AUC, AP and EER are undefined"


def nonfinite_note(scores: np.ndarray) -> str | None:
    """A note when some scores are NaN/inf (a diverged model): their metrics are undefined, not an error."""
    bad = int((~np.isfinite(scores)).sum())
    return f"{bad} of {scores.size} scores are not finite (NaN/inf): metrics undefined" if bad else None
EPS = 1e-7


def confident_strategy(scores: np.ndarray, threshold: float = 0.8, min_fakes: int = 11) -> float:
    """The DFDC winner's video score: trust confident frames over the plain mean.

    If more than ``len/2.5`` frames (and more than ``min_fakes``) score above ``threshold``,
    the video score is their mean; else if more than 90% score below ``1 - threshold`` (0.2),
    it is theirs; otherwise the mean of all frames.
    """
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    confident_fake = scores > threshold
    confident_real = scores < 1.0 - threshold
    if confident_fake.sum() > n // 2.5 and confident_fake.sum() > min_fakes:
        return float(scores[confident_fake].mean())
    if confident_real.sum() > 0.9 * n:
        return float(scores[confident_real].mean())
    return float(scores.mean())


VIDEO_STRATEGIES: dict[str, Callable[[np.ndarray], float]] = {
    "mean": lambda s: float(np.mean(s)),
    "median": lambda s: float(np.median(s)),
    "confident": confident_strategy,
}


def equal_error_rate(labels: np.ndarray, scores: np.ndarray) -> float:
    """The rate at which false positives equal false negatives, on the full ROC curve.

    The ROC is taken with every threshold (``drop_intermediate=False``) and the EER is where
    the straight segment between the two operating points around the crossing meets
    ``fpr = fnr``. Picking the nearest operating point of the thinned-out curve instead (as
    before) was off by up to 0.014 at FaceForensics++ test sizes.
    """
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    gap = (1.0 - tpr) - fpr  # fnr - fpr: starts at 1 (threshold above every score), ends at -1
    after = int(np.argmax(gap <= 0))  # the first operating point at or past the crossing
    if gap[after] == 0 or after == 0:
        return float(fpr[after])
    t = gap[after - 1] / (gap[after - 1] - gap[after])  # where the segment crosses gap = 0
    return float(fpr[after - 1] + t * (fpr[after] - fpr[after - 1]))


def balanced_accuracy(real_acc: float | None, fake_acc: float | None) -> float | None:
    """Mean of the real and the fake accuracy (the defined ones): on FaceForensics++, with 4
    fakes per real, a detector calling everything fake has 80% accuracy but 50% balanced."""
    defined = [a for a in (real_acc, fake_acc) if a is not None]
    return float(np.mean(defined)) if defined else None


def improved(best: float | None, value: float | None, mode: str) -> bool:
    """Whether a validation ``value`` beats the ``best`` so far (``mode``: ``max`` or ``min``).

    An undefined value (``None`` or NaN: a one-class validation split has no AUC) never
    counts as an improvement; any defined value beats no best at all.
    """
    if value is None or math.isnan(value):
        return False
    if best is None or math.isnan(best):
        return True
    return value > best if mode == "max" else value < best


def binary_metrics(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray,
                   threshold: float = 0.5) -> dict[str, Any]:
    """Accuracy at ``threshold``, ROC AUC, AP, EER and log loss of fake probabilities.

    Args:
        labels: 0 real, 1 fake.
        scores: fake probabilities in [0, 1].

    Returns:
        A dict with ``n``, ``n_real``, ``n_fake``, ``acc``, ``bal_acc`` (mean of ``real_acc``
        and ``fake_acc``), ``real_acc``, ``fake_acc``, ``auc``, ``ap``, ``eer``, ``log_loss``; the ranking metrics are ``None`` (with a
        ``note``) when only one class is present, and everything is ``None`` for no samples.
    """
    from sklearn.metrics import accuracy_score, average_precision_score, log_loss, roc_auc_score

    labels = np.asarray(labels, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    out: dict[str, Any] = {"n": int(len(labels)), "n_real": int((labels == 0).sum()),
                           "n_fake": int((labels == 1).sum())}
    if len(labels) == 0:
        return out | {k: None for k in ("acc", "bal_acc", "real_acc", "fake_acc", "auc", "ap", "eer", "log_loss")} | {
            "note": "no samples"}
    if (note := nonfinite_note(scores)) is not None:
        return out | {k: None for k in ("acc", "real_acc", "fake_acc", "auc", "ap", "eer", "log_loss")} | {
            "note": note}
    predicted = (scores >= threshold).astype(np.int64)
    real_acc = float((predicted[labels == 0] == 0).mean()) if out["n_real"] else None
    fake_acc = float((predicted[labels == 1] == 1).mean()) if out["n_fake"] else None
    out |= {"acc": float(accuracy_score(labels, predicted)), "bal_acc": balanced_accuracy(real_acc, fake_acc),
            "real_acc": real_acc, "fake_acc": fake_acc}
    out["log_loss"] = float(log_loss(labels, np.clip(scores, EPS, 1 - EPS), labels=[0, 1]))
    if out["n_real"] and out["n_fake"]:
        out["auc"] = float(roc_auc_score(labels, scores))
        out["ap"] = float(average_precision_score(labels, scores))
        out["eer"] = equal_error_rate(labels, scores)
    else:
        out.update(auc=None, ap=None, eer=None, note=ONE_CLASS_NOTE)
    return out


def video_scores(frames: pd.DataFrame, strategy: str = "mean") -> pd.DataFrame:
    """One row per video: its label, method, compression, frame count and aggregated score.

    Args:
        frames: one row per crop with columns ``video_key``, ``label``, ``method``,
            ``compression`` and ``score``.
        strategy: ``mean``, ``median`` or ``confident``.
    """
    if strategy not in VIDEO_STRATEGIES:
        raise ValueError(f"unknown video strategy '{strategy}' (choose from {', '.join(VIDEO_STRATEGIES)})")
    aggregate = VIDEO_STRATEGIES[strategy]
    grouped = frames.groupby("video_key", sort=True)
    videos = grouped[["label", "method", "compression"]].first()
    videos["frames"] = grouped.size()
    videos["score"] = grouped["score"].apply(lambda s: aggregate(s.to_numpy()))
    return videos.reset_index()


def _breakdown(frames: pd.DataFrame, videos: pd.DataFrame, column: str) -> dict[str, Any]:
    out = {}
    for value in sorted(frames[column].unique()):
        f_sel, v_sel = frames[column] == value, videos[column] == value
        if column == "method" and (frames.loc[f_sel, "label"] == 1).all():
            # A manipulation is scored against all the split's reals, as FaceForensics++
            # reports each method: its AUC is defined and its fake_acc is the share caught.
            f_sel, v_sel = f_sel | (frames["label"] == 0), v_sel | (videos["label"] == 0)
        out[str(value)] = {"frame": binary_metrics(frames.loc[f_sel, "label"], frames.loc[f_sel, "score"]),
                           "video": binary_metrics(videos.loc[v_sel, "label"], videos.loc[v_sel, "score"])}
    return out


def detection_report(frames: pd.DataFrame, strategy: str = "mean") -> dict[str, Any]:
    """Frame- and video-level metrics, overall, per method and per compression.

    Per method, the reals' entry (``original``) holds the reals alone (``real_acc``: how many
    pass as real; AUC undefined) and each manipulation's entry holds its fakes against all
    the split's reals (``fake_acc``: how many are caught; ``auc``: that method vs the reals).

    Args:
        frames: one row per crop with ``video_key``, ``label``, ``method``, ``compression``,
            ``score`` (fake probability).
        strategy: how a video's score is made from its frames (see :data:`VIDEO_STRATEGIES`).
    """
    videos = video_scores(frames, strategy)
    return {
        "frame": binary_metrics(frames["label"], frames["score"]),
        "video": binary_metrics(videos["label"], videos["score"]),
        "video_strategy": strategy,
        "per_method": _breakdown(frames, videos, "method"),
        "per_compression": _breakdown(frames, videos, "compression"),
    }


def multiclass_metrics(labels: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy, per-class accuracy, confusion matrix, one-vs-rest macro AUC and log loss."""
    from sklearn.metrics import accuracy_score, confusion_matrix, log_loss, roc_auc_score

    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    k = len(classes)
    if len(labels) == 0:
        return {"n": 0, "acc": None, "note": "no samples"}
    if (note := nonfinite_note(probs)) is not None:
        return {"n": int(len(labels)), "acc": None, "auc": None, "log_loss": None, "note": note}
    predicted = probs.argmax(axis=1)
    matrix = confusion_matrix(labels, predicted, labels=list(range(k)))
    per_class = {c: (float(matrix[i, i] / matrix[i].sum()) if matrix[i].sum() else None)
                 for i, c in enumerate(classes)}
    out: dict[str, Any] = {"n": int(len(labels)), "acc": float(accuracy_score(labels, predicted)),
                           "per_class_acc": per_class, "confusion_matrix": matrix.tolist(),
                           "log_loss": float(log_loss(labels, np.clip(probs, EPS, 1.0), labels=list(range(k))))}
    present = np.unique(labels)
    if len(present) == k:
        out["auc"] = float(roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
    else:
        out["auc"] = None
        out["note"] = f"only {len(present)} of {k} classes present: macro AUC is undefined"
    return out


def multilabel_metrics(targets: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Per-label AUC (``None`` where a label has one class), their mean, and exact-match accuracy."""
    from sklearn.metrics import roc_auc_score

    targets = np.asarray(targets, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if len(targets) == 0:
        return {"n": 0, "exact_match": None, "note": "no samples"}
    if (note := nonfinite_note(probs)) is not None:
        return {"n": int(len(targets)), "exact_match": None, "mean_auc": None, "note": note}
    per_label = {}
    for i, name in enumerate(classes):
        column = targets[:, i]
        per_label[name] = float(roc_auc_score(column, probs[:, i])) if 0 < column.sum() < len(column) else None
    defined = [v for v in per_label.values() if v is not None]
    return {"n": int(len(targets)),
            "exact_match": float(((probs >= 0.5) == (targets == 1)).all(axis=1).mean()),
            "per_label_auc": per_label,
            "mean_auc": float(np.mean(defined)) if defined else None}


def flatten(metrics: dict[str, Any], prefix: str = "", sep: str = "/") -> dict[str, float]:
    """``{"video": {"auc": 0.9}}`` -> ``{"video/auc": 0.9}``, numbers only (``None`` becomes NaN).

    Used for W&B and ``metrics.jsonl`` lines; lists (confusion matrices) and notes are left out.
    """
    out: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= flatten(value, name + sep, sep)
        elif value is None:
            out[name] = math.nan
        elif isinstance(value, (bool, int, float, np.integer, np.floating)):
            out[name] = float(value)
    return out
