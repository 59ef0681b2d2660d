"""Tasks: what a model's outputs mean. The one training loop (:mod:`forensics.training.engine`) asks a
task three things and nothing else:

* ``loss(outputs, batch)``: the scalar to minimise;
* ``predictions(outputs, batch)``: per-sample tensors (first dimension = batch) that
  evaluation gathers from every rank;
* ``metrics(gathered, meta)``: metrics computed once, on everything gathered.

Batches are dicts (``image``, ``target``, ``index``, ...). The detector tasks below also
turn manifest rows into targets (``encode``) and outputs into a fake probability
(``fake_score``), so that evaluation and ``forensics predict`` report the same number. The
tasks of plug-in packages implement the same three methods.

* ``binary``: one logit, real (0) vs fake (1), BCE.
* ``multiclass``: manipulation attribution, ``original`` is class 0, then one class per
  method; cross-entropy. The fake probability is ``1 - p(original)``.
* ``multilabel``: one sigmoid per manipulation method (several may be present in one face;
  a ``methods`` column with ``|``-separated names says which, else ``method``); a real has
  none. The fake probability is the largest of them.

A task joins :data:`REGISTRY` as a :class:`TaskSpec`: how to build it, and the hooks
``forensics train`` and ``forensics evaluate`` call (its data, its config section and
checks, its evaluation). The three detector tasks are registered here; a plug-in package
registers its own through the ``forensics.tasks`` entry-point group, so the core never
names it. :data:`TASKS` is the tuple of every registered name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from forensics.errors import ForensicsError
from forensics.data.manifest import REAL_METHOD
from forensics.registry import Registry
from forensics.training.detection import default_classes  # noqa: F401  (re-exported: a task helper)
from forensics.training.metrics import detection_report, multiclass_metrics, multilabel_metrics

if TYPE_CHECKING:  # annotations only
    from forensics.training.runlog import RunLogger


class Task(Protocol):
    """What :func:`forensics.training.engine.train_one_epoch` and :func:`~forensics.training.engine.evaluate` need."""

    kind: str
    classes: list[str]

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


class TaskData(Protocol):
    """A task's data for one ``forensics train`` run, loaded before the model (the task sizes its head)."""

    task: Task
    train_rows: int  # rows of the training split (for the log)

    def datasets(self, data_cfg: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """The training set and the evaluation sets (``val``, ``test``) for the model's ``data_cfg``."""

    def fit(self, model: torch.nn.Module, prepare: Callable[[dict], dict], cache_dir: Any) -> None:
        """Fit a model that learns without gradients (it has a ``fit`` method) on the training split."""

    def log_evaluation(self, logger: RunLogger, name: str, metrics: dict[str, Any], gathered: dict[str, np.ndarray],
                       dataset: Any, step: int | None) -> None:
        """Send a final evaluation of split ``name`` to the run folder and W&B."""

    def report(self) -> dict[str, Any]:
        """Entries the task adds to ``report.json`` (e.g. what its data checks dropped)."""


@dataclass(frozen=True)
class TaskSpec:
    """A registered task: how to build it and the hooks the trainer and the evaluator call.

    Attributes:
        build: ``build(classes, video_strategy) -> Task``.
        load_data: ``load_data(cfg) -> TaskData`` from a ``forensics train`` config.
        section: ``(key, dataclass)`` of a config section the task adds to the training
            schema (e.g. its data options); read back as ``cfg.<key>``.
        check: ``check(cfg)`` raises :class:`~forensics.errors.ConfigError` for settings the
            task can't use (its section, the best metric, class balancing).
        evaluate: ``evaluate(args, checkpoint_state) -> status`` for ``forensics evaluate``
            (default: the detectors' evaluation).
        detector: the task's outputs give a fake score (``forensics predict`` can use it).
    """

    build: Callable[[Sequence[str], str], Task]
    load_data: Callable[[Any], TaskData]
    section: tuple[str, type] | None = None
    check: Callable[[Any], None] | None = None
    evaluate: Callable[[Any, dict[str, Any]], int] | None = None
    detector: bool = True


#: Tasks by name: the detector tasks below, then those of the ``forensics.tasks`` plug-ins.
REGISTRY: Registry[TaskSpec] = Registry("task", "forensics.tasks")


def register_task(name: str, spec: TaskSpec) -> TaskSpec:
    """Make task ``name`` known to ``forensics train``/``evaluate`` (plug-ins call this at import)."""
    return REGISTRY.register(name, spec)


def __getattr__(name: str) -> Any:
    if name == "TASKS":  # computed on use: plug-ins register when first asked for
        return tuple(REGISTRY.names())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def task_spec(kind: str) -> TaskSpec:
    """The :class:`TaskSpec` of task ``kind`` (:class:`ForensicsError` naming the choices if unknown)."""
    return REGISTRY.get(kind)


def create_task(kind: str, classes: Sequence[str] | None = None, video_strategy: str = "mean") -> Task:
    """Build task ``kind`` (``classes``: its class names, or whatever its outputs are named)."""
    spec = task_spec(kind)
    if kind != "binary" and not classes:
        raise ForensicsError(f"task '{kind}' needs its class names")
    return spec.build(list(classes or ()), video_strategy)


def _multiclass(classes: Sequence[str], video_strategy: str) -> MulticlassTask:
    if classes[0] != REAL_METHOD:
        raise ForensicsError(f"multiclass: the first class must be '{REAL_METHOD}', got {list(classes)}")
    return MulticlassTask(list(classes), video_strategy=video_strategy)


def _crop_data(cfg: Any) -> TaskData:
    from forensics.training.detection import CropData

    return CropData(cfg, create_task)


register_task("binary", TaskSpec(lambda classes, strategy: BinaryTask(video_strategy=strategy), _crop_data))
register_task("multiclass", TaskSpec(_multiclass, _crop_data))
register_task("multilabel", TaskSpec(lambda classes, strategy: MultilabelTask(list(classes), video_strategy=strategy),
                                     _crop_data))
