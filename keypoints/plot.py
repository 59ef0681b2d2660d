"""Faces with their true and predicted keypoints: one PNG in the run folder, the same in W&B.

True keypoints are green dots, predictions red crosses, joined by a thin line so the error
of each keypoint is visible. The faces shown span the split from the best predicted to the
worst (evenly spaced in the order of per-face MSE), each titled with its MSE in pixels².
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from forensics.atomic import atomic_path

if TYPE_CHECKING:
    from keypoints.data import KeypointDataset
    from forensics.training.runlog import RunLogger

log = logging.getLogger(__name__)

TRUE_COLOUR, PRED_COLOUR = "#22c55e", "#ef4444"


def per_sample_mse(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """MSE of each face over its labelled coordinates (NaN for a face without any)."""
    present = ~np.isnan(target)
    sq = np.where(present, (pred - np.nan_to_num(target)) ** 2, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sq.sum(axis=1) / present.sum(axis=1)


def choose_samples(errors: np.ndarray, count: int) -> list[int]:
    """Up to ``count`` positions, evenly spaced from the lowest error to the highest."""
    order = np.argsort(np.where(np.isnan(errors), np.inf, errors), kind="stable")
    order = order[~np.isnan(errors[order])]
    if count <= 0 or len(order) == 0:
        return []
    picks = np.round(np.linspace(0, len(order) - 1, min(count, len(order)))).astype(int)
    return [int(order[i]) for i in dict.fromkeys(picks)]


def save_keypoint_grid(images: Sequence[np.ndarray], true: Sequence[np.ndarray], pred: Sequence[np.ndarray],
                       path: str | os.PathLike, titles: Sequence[str] | None = None, columns: int = 8) -> Path:
    """A grid of faces (``H x W`` or ``C x H x W``) with true (green) and predicted (red) ``K x 2`` keypoints."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = max(1, min(columns, len(images)))
    rows = max(1, -(-len(images) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.5, rows * 1.65), dpi=100, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, image, t, p) in enumerate(zip(axes.flat, images, true, pred)):
        image = np.asarray(image)
        if image.ndim == 3:
            image = image[0] if image.shape[0] == 1 else np.moveaxis(image, 0, -1)
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        for (tx, ty), (px, py) in zip(t, p):
            if not np.isnan(tx):
                ax.plot([tx, px], [ty, py], color="yellow", linewidth=0.5, alpha=0.7)
        ax.scatter(t[:, 0], t[:, 1], s=7, c=TRUE_COLOUR, linewidths=0)
        ax.scatter(p[:, 0], p[:, 1], s=12, c=PRED_COLOUR, marker="x", linewidths=0.8)
        if titles is not None:
            ax.set_title(titles[i], fontsize=7)
    fig.suptitle("keypoints: true (green), predicted (red)", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def log_keypoint_evaluation(logger: RunLogger, name: str, metrics: dict[str, Any], gathered: dict[str, np.ndarray],
                            dataset: KeypointDataset, samples: int = 16, step: int | None = None) -> dict[str, str]:
    """A final evaluation of the keypoints task: metrics to ``metrics.jsonl``/W&B, the face grid as PNG and image.

    Args:
        logger: the run's :class:`forensics.training.runlog.RunLogger`.
        name: the split (``val``, ``test``): key prefix and file name ``keypoints_<name>.png``.
        metrics: from :meth:`keypoints.task.KeypointTask.metrics`.
        gathered: predictions (``keypoints``, ``target``, ``index``) from ``forensics.training.engine.evaluate``.
        dataset: the evaluated :class:`keypoints.data.KeypointDataset` (un-augmented).
        samples: faces in the grid.

    Returns:
        The files written (``{"keypoints": path}``), empty on ranks other than 0.
    """
    from forensics.training.metrics import flatten

    if not logger.enabled:
        return {}
    flat = flatten(metrics)
    logger.log({f"{name}/{k}": v for k, v in flat.items()}, step if step is not None else 0)
    logger.summary({f"{name}/{k}": v for k, v in flat.items() if "/" not in k})
    errors = per_sample_mse(gathered["keypoints"], gathered["target"])
    chosen = choose_samples(errors, samples)
    if not chosen:
        return {}
    images = [dataset[int(gathered["index"][i])]["image"].numpy() for i in chosen]
    true = [gathered["target"][i].reshape(-1, 2) for i in chosen]
    pred = [gathered["keypoints"][i].reshape(-1, 2) for i in chosen]
    path = save_keypoint_grid(images, true, pred, logger.run_dir / f"keypoints_{name}.png",
                              titles=[f"MSE {errors[i]:.1f}" for i in chosen])
    if logger.run is not None:
        import wandb

        logger.run.log({f"{name}/keypoints": wandb.Image(str(path), caption="true: green, predicted: red")},
                       step=step)
    return {"keypoints": str(path)}
