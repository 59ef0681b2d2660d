"""Tasks: what a model's outputs mean. The one training loop (:mod:`forensics.training.engine`) asks a
task three things and nothing else:

* ``loss(outputs, batch)``: the scalar to minimise;
* ``predictions(outputs, batch)``: per-sample tensors (first dimension = batch) that
  evaluation gathers from every rank;
* ``metrics(gathered, meta)``: metrics computed once, on everything gathered.

Batches are dicts (``image``, ``target``, ``index``, ...). The detector tasks below also
turn manifest rows into targets (``encode``) and outputs into a fake probability
(``fake_score``), so that evaluation and ``forensics predict`` report the same number. The
refiner and keypoint tasks plug in by implementing the same three methods.

* ``binary``: one logit, real (0) vs fake (1), BCE.
* ``multiclass``: manipulation attribution, ``original`` is class 0, then one class per
  method; cross-entropy. The fake probability is ``1 - p(original)``.
* ``multilabel``: one sigmoid per manipulation method (several may be present in one face;
  a ``methods`` column with ``|``-separated names says which, else ``method``); a real has
  none. The fake probability is the largest of them.
* ``keypoints``: regression of K facial keypoints (``classes`` are their names), masked MSE;
  see :mod:`keypoints.task`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from forensics.errors import ForensicsError
from forensics.data.manifest import REAL_METHOD
from forensics.training.metrics import detection_report, multiclass_metrics, multilabel_metrics

TASKS = ("binary", "multiclass", "multilabel", "keypoints")


class Task(Protocol):
    """What :func:`forensics.training.engine.train_one_epoch` and :func:`~forensics.training.engine.evaluate` need."""

    def loss(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor: ...

    def predictions(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]: ...

    def metrics(self, gathered: dict[str, np.ndarray], meta: pd.DataFrame | None) -> dict[str, Any]: ...


def _frames_table(gathered: dict[str, np.ndarray], meta: pd.DataFrame, score: np.ndarray) -> pd.DataFrame:
    rows = meta.iloc[gathered["index"]]
    return pd.DataFrame({"video_key": rows["video_key"].to_numpy(), "label": rows["label"].to_numpy(),
                         "method": rows["method"].to_numpy(), "compression": rows["compression"].to_numpy(),
                         "score": score})


@dataclass
class BinaryTask:
    """Real/fake with one logit. ``pos_weight`` < 1 down-weights fakes when they outnumber reals."""

    pos_weight: float | None = None
    video_strategy: str = "mean"
    kind: str = "binary"
    classes: list[str] = field(default_factory=lambda: ["real", "fake"])

    @property
    def num_outputs(self) -> int:
        return 1

    def encode(self, df: pd.DataFrame) -> np.ndarray:
        return df["label"].to_numpy(dtype=np.float32)

    def fit_weights(self, targets: np.ndarray) -> None:
        n_fake = float(targets.sum())
        n_real = float(len(targets) - n_fake)
        self.pos_weight = n_real / n_fake if n_fake and n_real else None

    def loss(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        weight = None if self.pos_weight is None else torch.tensor(self.pos_weight, device=outputs.device)
        return F.binary_cross_entropy_with_logits(outputs[:, 0].float(), batch["target"].float(), pos_weight=weight)

    def fake_score(self, outputs: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(outputs[:, 0].float())

    def predictions(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"score": self.fake_score(outputs)}

    def metrics(self, gathered: dict[str, np.ndarray], meta: pd.DataFrame | None) -> dict[str, Any]:
        frames = _frames_table(gathered, meta, gathered["score"])
        return detection_report(frames, self.video_strategy)


@dataclass
class MulticlassTask:
    """Which method made this face: ``classes[0]`` is ``original``, one logit per class."""

    classes: list[str]
    class_weights: list[float] | None = None
    video_strategy: str = "mean"
    kind: str = "multiclass"

    @property
    def num_outputs(self) -> int:
        return len(self.classes)

    def encode(self, df: pd.DataFrame) -> np.ndarray:
        lookup = {c: i for i, c in enumerate(self.classes)}
        unknown = sorted(set(df["method"]) - set(lookup))
        if unknown:
            raise ForensicsError(f"method(s) {', '.join(unknown)} not among the task's classes "
                                 f"({', '.join(self.classes)})")
        return df["method"].map(lookup).to_numpy(dtype=np.int64)

    def fit_weights(self, targets: np.ndarray) -> None:
        counts = np.bincount(targets, minlength=self.num_outputs).astype(np.float64)
        # sklearn's "balanced" weights; a class absent from training gets weight 0, not inf.
        self.class_weights = [float(len(targets) / (len(counts) * c)) if c else 0.0 for c in counts]

    def loss(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        weight = None if self.class_weights is None else torch.tensor(self.class_weights, device=outputs.device)
        return F.cross_entropy(outputs.float(), batch["target"].long(), weight=weight)

    def fake_score(self, outputs: torch.Tensor) -> torch.Tensor:
        return 1.0 - torch.softmax(outputs.float(), dim=1)[:, 0]

    def predictions(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        probs = torch.softmax(outputs.float(), dim=1)
        return {"probs": probs, "score": 1.0 - probs[:, 0]}

    def metrics(self, gathered: dict[str, np.ndarray], meta: pd.DataFrame | None) -> dict[str, Any]:
        rows = meta.iloc[gathered["index"]]
        report = detection_report(_frames_table(gathered, meta, gathered["score"]), self.video_strategy)
        report["attribution"] = multiclass_metrics(self.encode(rows), gathered["probs"], self.classes)
        return report


@dataclass
class MultilabelTask:
    """One sigmoid per manipulation method (``classes``); a real face has none."""

    classes: list[str]
    pos_weight: list[float] | None = None
    video_strategy: str = "mean"
    kind: str = "multilabel"

    @property
    def num_outputs(self) -> int:
        return len(self.classes)

    def encode(self, df: pd.DataFrame) -> np.ndarray:
        column = df["methods"] if "methods" in df.columns else df["method"]
        lookup = {c: i for i, c in enumerate(self.classes)}
        targets = np.zeros((len(df), len(self.classes)), dtype=np.float32)
        for row, names in enumerate(column.astype(str)):
            for name in names.split("|"):
                if name in ("", REAL_METHOD):
                    continue
                if name not in lookup:
                    raise ForensicsError(f"method '{name}' is not among the task's classes ({', '.join(self.classes)})")
                targets[row, lookup[name]] = 1.0
        return targets

    def fit_weights(self, targets: np.ndarray) -> None:
        pos = targets.sum(axis=0)
        self.pos_weight = [float((len(targets) - p) / p) if p else 1.0 for p in pos]

    def loss(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        weight = None if self.pos_weight is None else torch.tensor(self.pos_weight, device=outputs.device)
        return F.binary_cross_entropy_with_logits(outputs.float(), batch["target"].float(), pos_weight=weight)

    def fake_score(self, outputs: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(outputs.float()).amax(dim=1)

    def predictions(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        probs = torch.sigmoid(outputs.float())
        return {"probs": probs, "score": probs.amax(dim=1)}

    def metrics(self, gathered: dict[str, np.ndarray], meta: pd.DataFrame | None) -> dict[str, Any]:
        rows = meta.iloc[gathered["index"]]
        report = detection_report(_frames_table(gathered, meta, gathered["score"]), self.video_strategy)
        report["labels"] = multilabel_metrics(self.encode(rows), gathered["probs"], self.classes)
        return report


def default_classes(kind: str, methods: Sequence[str]) -> list[str]:
    """Class names of a task from the methods seen in training data."""
    fakes = sorted(m for m in set(methods) if m != REAL_METHOD)
    if kind == "binary":
        return ["real", "fake"]
    if kind == "multiclass":
        return [REAL_METHOD, *fakes]
    return fakes


def create_task(kind: str, classes: Sequence[str] | None = None, video_strategy: str = "mean"):
    """Build the ``binary``, ``multiclass`` or ``multilabel`` detector task, or ``keypoints``
    (``classes``: the keypoint names)."""
    if kind == "binary":
        return BinaryTask(video_strategy=video_strategy)
    if kind not in TASKS:
        raise ForensicsError(f"unknown task '{kind}' (choose from {', '.join(TASKS)})")
    if not classes:
        raise ForensicsError(f"task '{kind}' needs its class names")
    if kind == "keypoints":
        from keypoints.task import KeypointTask

        return KeypointTask(list(classes))
    if kind == "multiclass":
        if classes[0] != REAL_METHOD:
            raise ForensicsError(f"multiclass: the first class must be '{REAL_METHOD}', got {list(classes)}")
        return MulticlassTask(list(classes), video_strategy=video_strategy)
    return MultilabelTask(list(classes), video_strategy=video_strategy)
