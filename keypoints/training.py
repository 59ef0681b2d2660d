"""What ``forensics train`` asks the keypoints task for (its :class:`forensics.training.tasks.TaskData`).

The trainer is the detectors' own; only the data set-up, the checks of the config and the
final figures are the task's: a Kaggle CSV or a manifest with keypoint columns instead of
face crops, the ``dummy`` floor fitted on the first training face, and a grid of faces with
true and predicted keypoints instead of a ROC curve.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from forensics.errors import ConfigError
from keypoints.config import KeypointConfig

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    import torch

    from forensics.training.runlog import RunLogger
    from keypoints.data import KeypointDataset

#: Top-level metrics of the keypoints task (``train.best_metric`` must be one of them).
KEYPOINT_METRICS = ("mse", "rmse", "score", "per_keypoint")


def section(cfg: Any) -> KeypointConfig:
    """The run's ``keypoints`` section (its defaults on a config built without it)."""
    return getattr(cfg, "keypoints", None) or KeypointConfig()


def check_config(cfg: Any) -> None:
    """Refuse what the keypoints task can't do: class balancing, a detector's best metric."""
    section(cfg).validate()
    if cfg.data.balance == "sampler":
        raise ConfigError("data.balance=sampler draws classes: the keypoints task has none")
    if cfg.train.best_metric.split("/")[0] not in KEYPOINT_METRICS:
        raise ConfigError(f"train.best_metric '{cfg.train.best_metric}' is not a keypoints metric: "
                          f"use one of {', '.join(KEYPOINT_METRICS[:3])} (e.g. train.best_metric=mse)")


class KeypointRunData:
    """The keypoints data of one ``forensics train`` run: train, val and test tables."""

    def __init__(self, cfg: Any) -> None:
        from forensics.training.tasks import create_task
        from keypoints.data import load_keypoint_data

        d = cfg.data
        self.cfg, self.options = cfg, section(cfg)
        self.data = load_keypoint_data(d.manifest, self.options,
                                       {"train": d.train_split, "val": d.val_split, "test": d.test_split},
                                       datasets=d.datasets, methods=d.methods, compressions=d.compressions,
                                       check_files=d.check_files)
        self.task = create_task("keypoints", self.data.names)
        self.train_rows = len(self.data.tables["train"])

    def datasets(self, data_cfg: dict[str, Any]) -> tuple[KeypointDataset, dict[str, KeypointDataset]]:
        return self.data.datasets(data_cfg, self.options.augment, self.cfg.seed)

    def fit(self, model: torch.nn.Module, prepare: Callable[[dict], dict], cache_dir: Any) -> None:
        self.data.fit_floor(model)  # the dummy floor keeps the first training face's keypoints

    def log_evaluation(self, logger: RunLogger, name: str, metrics: dict[str, Any], gathered: dict[str, np.ndarray],
                       dataset: KeypointDataset, step: int | None) -> None:
        from keypoints.plot import log_keypoint_evaluation

        log_keypoint_evaluation(logger, name, metrics, gathered, dataset, self.cfg.wandb.samples, step=step)

    def report(self) -> dict[str, Any]:
        return {"data": self.data.stats}  # per split: rows, missing, outside, dropped
