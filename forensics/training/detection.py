"""The detector tasks' data: a crop manifest in, datasets, fitted features and evaluation logs out.

``binary``, ``multiclass`` and ``multilabel`` (:mod:`forensics.training.tasks`) all read the
crop manifest the same way: the train split's methods name the classes (unless the config
does), the model's data config gives the transforms, ``data.balance=loss_weight`` weighs the
loss by the training targets. :class:`CropData` is what ``forensics train`` asks for them
(the :class:`~forensics.training.tasks.TaskData` hooks); :func:`log_final` sends a final
evaluation to the run folder and W&B, also for ``forensics evaluate``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forensics.data.manifest import REAL_METHOD

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import torch

    from forensics.data.datasets import CropDataset
    from forensics.training.runlog import RunLogger

log = logging.getLogger(__name__)


def default_classes(kind: str, methods: Sequence[str]) -> list[str]:
    """Class names of a task from the methods seen in training data."""
    fakes = sorted(m for m in set(methods) if m != REAL_METHOD)
    if kind == "binary":
        return ["real", "fake"]
    if kind == "multiclass":
        return [REAL_METHOD, *fakes]
    return fakes


class CropData:
    """A detector task's data for one run: the manifest's train, val and test splits."""

    def __init__(self, cfg: Any, create_task: Callable[..., Any]) -> None:
        from forensics.data.datasets import crop_size_on_disk, load_frames
        from forensics.data.sbi import add_pseudo_fakes

        self.cfg = cfg
        d = cfg.data
        self.filters = dict(datasets=d.datasets, methods=d.methods, compressions=d.compressions,
                            check_files=d.check_files, on_corrupt=d.on_corrupt)
        self.train_frames = load_frames(d.manifest, d.train_split, **self.filters)
        self.train_frames = add_pseudo_fakes(self.train_frames, d.pseudo_fakes, d.manifest,
                                             crop_size_on_disk(self.train_frames))
        classes = cfg.classes or default_classes(cfg.task, self.train_frames["method"])
        self.task = create_task(cfg.task, classes, cfg.train.video_strategy)
        self.train_targets = self.task.encode(self.train_frames)
        self.train_rows = len(self.train_frames)
        self.eval_transform = None

    def datasets(self, data_cfg: dict[str, Any]) -> tuple[CropDataset, dict[str, CropDataset]]:
        """Train set (augmented, K random frames per video per epoch) and the val/test sets."""
        from forensics.data.batch_augment import batch_augment
        from forensics.data.datasets import CropDataset, crop_size_on_disk, load_frames
        from forensics.data.sbi import add_pseudo_fakes
        from forensics.data.transforms import build_transform

        cfg, d = self.cfg, self.cfg.data
        crop_size = crop_size_on_disk(self.train_frames)
        # data.augment.device=gpu: the workers only decode; the training preparer augments the batch.
        on_batch = batch_augment(data_cfg, d.augment) is not None
        train_set = CropDataset(self.train_frames, self.train_targets,
                                build_transform(data_cfg, None if on_batch else d.augment, crop_size),
                                d.frames_per_video, resample=True, seed=cfg.seed, emit_seed=on_batch)
        if d.balance == "loss_weight":
            self.task.fit_weights(train_set.targets[train_set.rows])
        self.eval_transform = build_transform(data_cfg, None, crop_size)
        eval_sets = {}
        for name, split in (("val", d.val_split), ("test", d.test_split)):
            if split:
                frames = load_frames(d.manifest, split, **self.filters)
                if name == "val":  # the paper validates on the val reals and their self-blends
                    frames = add_pseudo_fakes(frames, d.pseudo_fakes, d.manifest, crop_size)
                eval_sets[name] = CropDataset(frames, self.task.encode(frames), self.eval_transform,
                                              d.eval_frames_per_video)
        return train_set, eval_sets

    def fit(self, model: torch.nn.Module, prepare: Callable[[dict], dict], cache_dir: Path) -> None:
        fit_on_features(model, self.train_frames, self.train_targets, self.eval_transform, prepare, self.cfg,
                        cache_dir)

    def log_evaluation(self, logger: RunLogger, name: str, metrics: dict[str, Any],
                       gathered: dict[str, np.ndarray], dataset: CropDataset, step: int | None) -> None:
        log_final(logger, name, metrics, gathered, dataset.meta, self.cfg.wandb.samples, step=step)

    def report(self) -> dict[str, Any]:
        return {}


def samples_for_grid(meta: pd.DataFrame | None, gathered: dict[str, np.ndarray],
                     count: int) -> list[tuple[str, int, float]]:
    """Up to ``count`` crops for the W&B grid: the most confident and the worst of each class."""
    import numpy as np

    if count <= 0 or meta is None or len(gathered["index"]) == 0:
        return []
    rows = meta.iloc[gathered["index"]]
    labels, scores = rows["label"].to_numpy(), gathered["score"]
    chosen: list[int] = []
    for label in (0, 1):
        idx = np.flatnonzero(labels == label)
        order = idx[np.argsort(scores[idx] if label == 0 else -scores[idx])]
        half = count // 4
        chosen += list(order[:half]) + list(order[::-1][:half])
    chosen = list(dict.fromkeys(chosen))[:count]
    return [(rows["file"].iat[i], int(labels[i]), float(scores[i])) for i in chosen]


def log_final(logger: RunLogger, name: str, metrics: dict[str, Any], gathered: dict[str, np.ndarray],
              meta: pd.DataFrame, samples: int = 16, step: int | None = None) -> None:
    """A final evaluation to the run folder and W&B: metrics, ROC, per-method table, sample grid."""
    from forensics.training.metrics import flatten

    if not logger.enabled:
        return
    flat = flatten(metrics)
    logger.log({f"{name}/{k}": v for k, v in flat.items()}, step if step is not None else 0)
    logger.summary({f"{name}/{k}": v for k, v in flat.items() if k.count("/") == 1})
    labels = meta.iloc[gathered["index"]]["label"].to_numpy()
    logger.log_evaluation(name, metrics, labels, gathered["score"], samples_for_grid(meta, gathered, samples),
                          step=step)


def _features(model: torch.nn.Module, dataset: CropDataset, prepare: Callable[[dict], dict], batch_size: int,
              num_workers: int, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """``model.forward_features`` of every crop of ``dataset``, and their targets."""
    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    batches: Any = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc="features", dynamic_ncols=True, leave=False)
    chunks, label_chunks = [], []
    with torch.no_grad():
        for batch in batches:
            batch = prepare(batch)
            chunks.append(model.forward_features(batch["image"]).float().cpu().numpy())
            label_chunks.append(batch["target"].cpu().numpy())
    return np.concatenate(chunks), np.concatenate(label_chunks)


def fit_on_features(model: torch.nn.Module, frames: pd.DataFrame, targets: np.ndarray, transform: Callable,
                    prepare: Callable[[dict], dict], cfg: Any, cache_dir: Path) -> None:
    """Fit a model with a ``fit(features, targets)`` method (the steganalysis SVM) on the train split.

    Features of the train crops (K evenly spaced frames per video, no augmentation) are
    extracted once with ``model.forward_features`` and cached in ``cache_dir``, so that a
    re-run after a failed fit doesn't extract them again.
    """
    import numpy as np

    from forensics.atomic import atomic_path
    from forensics.data.datasets import CropDataset

    dataset = CropDataset(frames, targets, transform, cfg.data.frames_per_video)
    cache = cache_dir / f"{cfg.data.train_split}.npz"
    files = dataset.meta["file"].astype(str).tolist()
    cached = dict(np.load(cache)) if cache.is_file() else None
    if cached is not None and cached["files"].tolist() == files:
        features, labels = cached["features"], cached["targets"]
        log.info("%s: %d cached train features from %s", cfg.model.name, len(features), cache)
    else:
        features, labels = _features(model, dataset, prepare, cfg.data.eval_batch_size or 2 * cfg.data.batch_size,
                                     cfg.data.num_workers, cfg.train.progress and sys.stderr.isatty())
        with atomic_path(cache) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, features=features, targets=labels, files=np.array(files))
    log.info("%s: fitting on %d train crops (%d features)", cfg.model.name, len(features), features.shape[1])
    # Calibration folds by video (a video's frames are near-duplicates), and data.balance honoured.
    model.fit(features, labels.astype(np.int64), groups=dataset.meta["video_key"].to_numpy(),
              balance=cfg.data.balance)
