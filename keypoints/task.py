"""The ``keypoints`` task: regress K ``(x, y)`` keypoints, MSE loss, scored as Kaggle's contest did.

The head has ``2 K`` outputs, ``x, y`` of each keypoint in the order of ``classes`` (the
keypoint names, as in the CSV columns). The model predicts *normalised* coordinates, the
pixel position divided by half the image side and centred (0: the image centre, -1 and 1
its edges): a head initialised near zero then starts at the centre of the face instead of
50 pixels from every keypoint, and the loss is of order 1 at any input size. Predictions
and metrics are converted back to pixels of the model's input image (96x96 for Kaggle).

Loss: the mean squared error over the coordinates present in the batch; a missing keypoint
(NaN target) is masked out, so a partially labelled face still teaches the keypoints it has.

Metric (per split), as the issue and the Kaggle data's usual evaluation define it, on pixel
coordinates: ``mse = mean over samples of MSE(keypoints, prediction)`` (each sample's MSE
over its labelled coordinates), ``score = 1 / (2 mse)``, with ``rmse = sqrt(mse)`` in pixels
for reading and the MSE of each keypoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from forensics.training.tasks import TaskSpec, register_task
from keypoints.config import KeypointConfig
from keypoints.coords import half_sides, to_pixels, to_unit


def keypoint_metrics(pred: np.ndarray, target: np.ndarray, names: list[str]) -> dict[str, Any]:
    """``mse``, ``score = 1 / (2 mse)``, ``rmse``, per-keypoint MSE; pixels, NaN targets skipped.

    Args:
        pred, target: ``N x 2K`` pixel coordinates (``x, y`` per keypoint); NaN in ``target``
            marks a missing keypoint.
        names: the K keypoint names.

    Returns:
        ``n`` (samples with at least one labelled keypoint), ``mse`` (mean of per-sample MSEs),
        ``score`` (``None`` when ``mse`` is 0: perfect), ``rmse``, ``coordinates`` (labelled
        coordinates scored) and ``per_keypoint`` (MSE of each keypoint over its labels).
    """
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    present = ~np.isnan(target)
    sq = np.where(present, (pred - np.where(present, target, 0.0)) ** 2, 0.0)
    counts = present.sum(axis=1)
    scored = counts > 0
    if not scored.any():
        return {"n": 0, "mse": None, "score": None, "rmse": None, "coordinates": 0, "per_keypoint": {}}
    per_sample = sq[scored].sum(axis=1) / counts[scored]
    mse = float(per_sample.mean())
    per_point = sq.reshape(len(sq), -1, 2).sum(axis=(0, 2)) / np.maximum(
        present.reshape(len(sq), -1, 2).sum(axis=(0, 2)), 1)
    labelled = present.reshape(len(sq), -1, 2).any(axis=(0, 2))
    return {"n": int(scored.sum()), "mse": mse, "score": 1.0 / (2.0 * mse) if mse > 0 else None,
            "rmse": math.sqrt(mse), "coordinates": int(present.sum()),
            "per_keypoint": {name: float(v) if ok else None for name, v, ok in zip(names, per_point, labelled)}}


@dataclass
class KeypointTask:
    """``2 K`` outputs, masked MSE on normalised coordinates; metrics in pixels."""

    classes: list[str]  # the keypoint names
    kind: str = "keypoints"

    @property
    def num_outputs(self) -> int:
        return 2 * len(self.classes)

    def loss(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        outputs = outputs.float()
        target = to_unit(batch["target"].float(), half_sides(batch, outputs))
        present = ~torch.isnan(target)
        diff = torch.where(present, outputs - torch.nan_to_num(target), torch.zeros_like(outputs))
        return diff.pow(2).sum() / present.sum().clamp(min=1)

    def predictions(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        outputs = outputs.float()
        return {"keypoints": to_pixels(outputs, half_sides(batch, outputs)), "target": batch["target"].float()}

    def metrics(self, gathered: dict[str, np.ndarray], meta: Any = None) -> dict[str, Any]:
        return keypoint_metrics(gathered["keypoints"], gathered["target"], self.classes)


def _load_data(cfg: Any) -> Any:
    from keypoints.training import KeypointRunData

    return KeypointRunData(cfg)


def _check(cfg: Any) -> None:
    from keypoints.training import check_config

    check_config(cfg)


def _evaluate(args: Any, state: dict[str, Any]) -> int:
    from keypoints.evaluate import run_keypoints

    return run_keypoints(args, state)


# ``forensics train`` / ``evaluate`` find the task here (entry point ``forensics.tasks``).
register_task("keypoints", TaskSpec(build=lambda classes, strategy: KeypointTask(list(classes)), load_data=_load_data,
                                    section=("keypoints", KeypointConfig), check=_check, evaluate=_evaluate,
                                    detector=False))
