"""Keypoint data for ``forensics train``: the config section, the split tables and the dataset.

``data.manifest`` names the data file, in either of two formats, told apart by their columns:

* a **Kaggle CSV** (an ``Image`` column, :mod:`keypoints.kaggle`): faces in memory;
* a **crop manifest** (a ``path`` column, :mod:`forensics.data.manifest`) with keypoint columns
  ``NAME_x``, ``NAME_y`` in pixels of the crop files, so crops written by
  ``forensics preprocess`` can be trained on with keypoints labelled elsewhere. The
  ``data.datasets``/``methods``/``compressions`` filters apply.

Splits: a ``split`` column, when the file has one, assigns rows to ``data.train_split``,
``data.val_split`` and ``data.test_split``; otherwise (Kaggle's ``training.csv``) a seeded
random ``keypoints.val_fraction`` and ``keypoints.test_fraction`` of the rows are held out,
drawn from ``keypoints.split_seed`` (not the training seed: changing the seed of a run must
not change what it is tested on).

Missing keypoints are **masked** by default (``keypoints.missing: mask``): the row is kept
and the loss and metric skip the missing coordinates. In Kaggle's data 70% of the rows
(4,909 of 7,049) miss some of the 15 keypoints, mostly the 11 that were labelled only for
part of the set; dropping them (``missing: drop``) leaves 2,140 faces and throws away every
eye centre, nose tip and mouth corner those rows do have. Keypoints outside the image are
counted and reported, and kept (``keypoints.outside: keep``, the default: a face cut by the
border still has a valid label) or their rows dropped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from forensics.errors import ForensicsError
from keypoints.config import KeypointConfig
from keypoints.table import KeypointTable, clean_table, names_from_columns, parse_coordinates
from keypoints.transforms import KeypointAugmentConfig

if TYPE_CHECKING:
    import torch.nn as nn

log = logging.getLogger(__name__)


def read_keypoint_file(path: str | os.PathLike, names: Sequence[str] | None = None, *,
                       datasets: Sequence[str] | None = None, methods: Sequence[str] | None = None,
                       compressions: Sequence[str] | None = None, check_files: bool = True) -> KeypointTable:
    """A Kaggle CSV or a crop manifest with keypoint columns, as one :class:`KeypointTable`."""
    from keypoints.kaggle import IMAGE_COLUMN, read_kaggle_csv

    path = Path(path)
    if not path.is_file():
        raise ForensicsError(f"{path}: keypoint data file not found")
    try:
        columns = list(pd.read_csv(path, nrows=0).columns)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ForensicsError(f"{path}: unreadable CSV: {str(error).splitlines()[0]}") from None
    if IMAGE_COLUMN in columns:
        return read_kaggle_csv(path, names)
    if "path" in columns:
        return read_crop_manifest(path, names, datasets=datasets, methods=methods, compressions=compressions,
                                  check_files=check_files)
    raise ForensicsError(f"{path}: neither a Kaggle keypoint CSV (no '{IMAGE_COLUMN}' column) nor a crop "
                         "manifest (no 'path' column)")


def read_crop_manifest(path: str | os.PathLike, names: Sequence[str] | None = None, *,
                       datasets: Sequence[str] | None = None, methods: Sequence[str] | None = None,
                       compressions: Sequence[str] | None = None, check_files: bool = True) -> KeypointTable:
    """Face crops of a manifest with keypoint columns (pixels of the crop files)."""
    import cv2

    from forensics.data.manifest import COLUMNS, absolute_paths, filter_manifest, read_manifest

    source = str(path)
    df = read_manifest(path)
    df.insert(0, "row", np.arange(len(df)) + 2)
    names = list(names) if names else names_from_columns([c for c in df.columns if c not in COLUMNS], source)
    df = filter_manifest(df, datasets=datasets, methods=methods, compressions=compressions).reset_index(drop=True)
    if df.empty:
        raise ForensicsError(f"{source}: no crops left after the data.datasets/methods/compressions filters")
    points = parse_coordinates(df, names, source)
    files = absolute_paths(df)
    if check_files:
        for row, file in zip(df["row"], files):
            if not os.path.isfile(file):
                raise ForensicsError(f"{source}: row {row}: crop file not found: {file}")
    first = cv2.imread(files[0], cv2.IMREAD_UNCHANGED)
    if first is None:
        raise ForensicsError(f"{source}: row {df['row'].iat[0]}: unreadable crop file {files[0]}")
    keypoint_cols = {f"{n}_{a}" for n in names for a in "xy"}
    meta = df[[c for c in df.columns if c not in keypoint_cols]]
    log.info("%s: %d crops %dx%d, %d keypoints", source, len(df), first.shape[1], first.shape[0], len(names))
    return KeypointTable(names, points, meta, files=files, image_size=(int(first.shape[0]), int(first.shape[1])))


def random_splits(n: int, val_fraction: float, test_fraction: float, seed: int) -> np.ndarray:
    """``train``/``val``/``test`` for ``n`` rows: seeded random fractions (rounded, at least 1 when > 0)."""
    order = np.random.default_rng([seed, 0x5B1]).permutation(n)
    n_val = max(1, round(val_fraction * n)) if val_fraction > 0 else 0
    n_test = max(1, round(test_fraction * n)) if test_fraction > 0 else 0
    if n_val + n_test >= n:
        raise ForensicsError(f"{n} rows are too few for val_fraction {val_fraction} and test_fraction {test_fraction}")
    splits = np.full(n, "train", dtype=object)
    splits[order[:n_val]] = "val"
    splits[order[n_val:n_val + n_test]] = "test"
    return splits


@dataclass
class KeypointData:
    """The cleaned tables of the configured splits (``train``, ``val``, ``test``) and what cleaning found."""

    names: list[str]
    tables: dict[str, KeypointTable]
    stats: dict[str, dict[str, Any]]

    def dataset(self, split: str, data_cfg: dict[str, Any], augment: KeypointAugmentConfig | None = None,
                seed: int = 0) -> KeypointDataset:
        """The dataset of ``split`` at the model's input (``augment``: training augmentations)."""
        from keypoints.transforms import KeypointTransform

        return KeypointDataset(self.tables[split], KeypointTransform(data_cfg, self.names, augment), seed)

    def datasets(self, data_cfg: dict[str, Any], augment: KeypointAugmentConfig,
                 seed: int) -> tuple[KeypointDataset, dict[str, KeypointDataset]]:
        """``(train set with augmentation, {"val": ..., "test": ...})`` for ``forensics train``."""
        evals = {name: self.dataset(name, data_cfg) for name in ("val", "test") if name in self.tables}
        return self.dataset("train", data_cfg, augment, seed), evals

    def fit_floor(self, model: nn.Module) -> None:
        """Fit a model that is fitted, not trained (the ``dummy``): ``model.fit`` gets the first
        training sample's keypoints in the task's normalised output units
        (:func:`keypoints.coords.to_unit`)."""
        import torch

        from keypoints.coords import to_unit

        table = self.tables["train"]
        h, w = table.image_size
        target = torch.as_tensor(table.points[:1].reshape(1, -1))
        half = torch.tensor([w / 2, h / 2]).repeat(len(self.names))
        model.fit(to_unit(target, half))


def load_keypoint_data(path: str | os.PathLike, cfg: KeypointConfig, splits: dict[str, str | None], *,
                       datasets: Sequence[str] | None = None, methods: Sequence[str] | None = None,
                       compressions: Sequence[str] | None = None, check_files: bool = True) -> KeypointData:
    """Read ``path``, assign splits, apply the missing/outside policies.

    Args:
        cfg: the ``keypoints`` config section.
        splits: ``{"train": "train", "val": "val", "test": None}``: the ``split`` value of each
            role (``None``: no such split); ``"all"`` as a value takes every row.

    Raises:
        ForensicsError: a bad file (see the readers), or a configured split without rows.
    """
    table = read_keypoint_file(path, cfg.names, datasets=datasets, methods=methods, compressions=compressions,
                               check_files=check_files)
    if "split" not in table.meta.columns:
        table.meta["split"] = random_splits(len(table), cfg.val_fraction, cfg.test_fraction, cfg.split_seed)
        log.info("%s: no split column: rows split at random (seed %d): %s", path, cfg.split_seed,
                 ", ".join(f"{k} {v}" for k, v in table.meta["split"].value_counts().items()))
    tables, stats = {}, {}
    for role, value in splits.items():
        if not value:
            continue
        rows = np.ones(len(table), bool) if value == "all" else (table.meta["split"] == value).to_numpy()
        if not rows.any():
            raise ForensicsError(f"{path}: no rows in split '{value}' (the {role} split; found "
                                 f"{', '.join(sorted(map(str, table.meta['split'].unique())))})")
        tables[role], stats[role] = clean_table(table.subset(rows), cfg.missing, cfg.outside, f"{path} [{value}]")
        if not len(tables[role]):
            raise ForensicsError(f"{path}: no rows left in split '{value}' after keypoints.missing="
                                 f"{cfg.missing}, keypoints.outside={cfg.outside}")
    return KeypointData(list(table.names), tables, stats)


def _seed(*values: int) -> int:
    return int(np.random.SeedSequence([int(v) for v in values]).generate_state(1, np.uint64)[0] >> 1)


class KeypointDataset:
    """``{"image": uint8 C x S x S, "target": 2K float32 pixels (NaN: missing), "index": i}`` per face.

    Augmentations draw from a generator seeded by ``(seed, epoch, index)``, as
    :class:`forensics.data.datasets.CropDataset` does: the same face gets the same augmentation
    whichever worker or rank loads it, and a resumed run repeats an uninterrupted one.
    """

    def __init__(self, table: KeypointTable, transform: Callable, seed: int = 0) -> None:
        self.table = table
        self.transform = transform
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def meta(self) -> pd.DataFrame:
        """Per-face metadata (``row`` of the source file, ``split``, ...), in index order."""
        return self.table.meta

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, index: int) -> dict[str, Any]:
        import torch

        image, points = self.table.image(index), torch.from_numpy(self.table.points[index])
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(_seed(self.seed, self.epoch, index))
            image, points = self.transform(image, points)
        return {"image": image, "target": points.reshape(-1).float(), "index": index}
