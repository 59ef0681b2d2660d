"""Keypoint names and the in-memory table of labelled faces.

Names follow the Kaggle Facial Keypoints Detection data: a keypoint ``NAME`` is stored as the
columns ``NAME_x`` and ``NAME_y``, in pixels of the image, and "left"/"right" are the
subject's (Kaggle's ``left_eye_center`` is the eye on the image's right). A horizontal flip
therefore turns every ``left`` keypoint into its ``right`` partner: :func:`flip_permutation`
pairs them by the word ``left``/``right`` anywhere in the name (``left_eye_center`` with
``right_eye_center``, ``mouth_left_corner`` with ``mouth_right_corner``).

A :class:`KeypointTable` holds the faces of one data file: images in memory (a Kaggle CSV) or
crop files (a crop manifest), the keypoints as an ``N x K x 2`` array with NaN where a
keypoint is missing, and per-row metadata (``row``: the line of the source file).
:func:`clean_table` applies the data policies (missing keypoints masked or rows dropped,
keypoints outside the image kept or rows dropped) and reports what it found.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forensics.errors import ForensicsError

log = logging.getLogger(__name__)

#: What ``keypoints.missing`` may say about rows missing some keypoints (see :func:`clean_table`).
MISSING_POLICIES = ("mask", "drop")
#: What ``keypoints.outside`` may say about rows with keypoints outside the image.
OUTSIDE_POLICIES = ("keep", "drop")

#: The 15 keypoints of the Kaggle Facial Keypoints Detection data, in its column order.
KAGGLE_KEYPOINTS: tuple[str, ...] = (
    "left_eye_center", "right_eye_center", "left_eye_inner_corner", "left_eye_outer_corner",
    "right_eye_inner_corner", "right_eye_outer_corner", "left_eyebrow_inner_end", "left_eyebrow_outer_end",
    "right_eyebrow_inner_end", "right_eyebrow_outer_end", "nose_tip", "mouth_left_corner", "mouth_right_corner",
    "mouth_center_top_lip", "mouth_center_bottom_lip")
#: MTCNN's five landmarks under their Kaggle names (a subset of :data:`KAGGLE_KEYPOINTS`).
FIVE_KEYPOINTS: tuple[str, ...] = ("left_eye_center", "right_eye_center", "nose_tip", "mouth_left_corner",
                                   "mouth_right_corner")


def keypoint_columns(names: Sequence[str]) -> list[str]:
    """``[a_x, a_y, b_x, b_y, ...]``: the CSV columns (and the model's outputs) of ``names``, in order."""
    return [f"{name}_{axis}" for name in names for axis in ("x", "y")]


def names_from_columns(columns: Sequence[str], source: str) -> list[str]:
    """Keypoint names of a file's columns: every ``NAME_x`` with its ``NAME_y``, in file order.

    Raises:
        ForensicsError: a coordinate column without its partner (naming the missing one), or
            no keypoint columns at all.
    """
    present = set(columns)
    names: list[str] = []
    for column in columns:
        if column.endswith("_x") or column.endswith("_y"):
            name, axis = column[:-2], column[-1]
            other = f"{name}_{'y' if axis == 'x' else 'x'}"
            if other not in present:
                raise ForensicsError(f"{source}: column '{other}' is missing (its partner '{column}' is there)")
            if name not in names:
                names.append(name)
    if not names:
        raise ForensicsError(f"{source}: no keypoint columns (NAME_x, NAME_y pairs) among "
                             f"{', '.join(map(str, columns))}")
    return names


def check_columns(columns: Sequence[str], names: Sequence[str], source: str) -> None:
    """Raise naming the first keypoint column of ``names`` that ``columns`` lacks."""
    present = set(columns)
    missing = [c for c in keypoint_columns(names) if c not in present]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ForensicsError(f"{source}: keypoint column '{missing[0]}' is missing{more}")


def flip_permutation(names: Sequence[str]) -> np.ndarray:
    """Index of each keypoint's mirror image: ``flipped[i] = points[perm[i]]`` after a horizontal flip.

    ``left`` and ``right`` are swapped as whole words of the name; a name with neither is its
    own mirror (``nose_tip``).

    Raises:
        ForensicsError: a ``left``/``right`` keypoint without its partner (a flip would mislabel it).
    """
    index = {name: i for i, name in enumerate(names)}
    swap = {"left": "right", "right": "left"}
    perm = np.arange(len(names))
    for i, name in enumerate(names):
        words = name.split("_")
        mirrored = "_".join(swap.get(w, w) for w in words)
        if mirrored == name:
            continue
        if mirrored not in index:
            raise ForensicsError(f"keypoint '{name}' has no '{mirrored}' partner: a horizontal flip would "
                                 "mislabel it (set keypoints.augment.hflip_p=0 or add the partner)")
        perm[i] = index[mirrored]
    return perm


def parse_coordinates(df: pd.DataFrame, names: Sequence[str], source: str) -> np.ndarray:
    """The ``N x K x 2`` float32 keypoints of ``df``'s coordinate columns (NaN where empty).

    Raises:
        ForensicsError: a missing column, or a value that is not a number (naming row and column;
            rows are lines of the file, the header being line 1).
    """
    check_columns(df.columns, names, source)
    out = np.empty((len(df), len(names), 2), np.float32)
    for k, column in enumerate(keypoint_columns(names)):
        raw = df[column]
        values = pd.to_numeric(raw, errors="coerce")
        text = raw.astype(str).str.strip()
        bad = values.isna() & raw.notna() & (text != "") & (text.str.lower() != "nan")
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise ForensicsError(f"{source}: row {int(df['row'].iat[i]) if 'row' in df else i + 2}, column "
                                 f"'{column}': {raw.iat[i]!r} is not a number")
        out[:, k // 2, k % 2] = values.to_numpy(dtype=np.float32)
    return out


@dataclass
class KeypointTable:
    """Labelled faces: images (or their files), keypoints and per-row metadata.

    Attributes:
        names: the K keypoint names.
        points: ``N x K x 2`` float32 ``(x, y)`` in pixels of the image; NaN where missing.
        meta: one row per face: ``row`` (line of the source file), ``split`` when known, ...
        images: ``N x H x W`` (grayscale) or ``N x H x W x 3`` uint8, or ``None`` with ``files``.
        files: crop files (read when served), or ``None`` with ``images``.
        image_size: ``(height, width)`` of the images the keypoints refer to.
    """

    names: list[str]
    points: np.ndarray
    meta: pd.DataFrame
    images: np.ndarray | None = None
    files: list[str] | None = None
    image_size: tuple[int, int] = (96, 96)

    def __len__(self) -> int:
        return len(self.points)

    def subset(self, keep: np.ndarray) -> KeypointTable:
        """The rows where the boolean (or index) array ``keep`` selects."""
        rows = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep)
        return KeypointTable(list(self.names), self.points[rows], self.meta.iloc[rows].reset_index(drop=True),
                             None if self.images is None else self.images[rows],
                             None if self.files is None else [self.files[i] for i in rows], self.image_size)

    def image(self, i: int):
        """Face ``i`` as a uint8 ``C x H x W`` tensor (1 channel for grayscale, 3 for RGB)."""
        import torch

        if self.images is not None:
            image = torch.from_numpy(np.ascontiguousarray(self.images[i]))
            return image.unsqueeze(0) if image.ndim == 2 else image.permute(2, 0, 1)
        from forensics.data.datasets import read_crop

        return read_crop(self.files[i])


def clean_table(table: KeypointTable, missing: str = "mask", outside: str = "keep",
                what: str = "data") -> tuple[KeypointTable, dict[str, int]]:
    """Apply the data policies and count what they met.

    * Missing keypoints (NaN): ``mask`` keeps the row (the loss and metric skip the missing
      coordinates), ``drop`` removes the row. Rows without any keypoint are always removed.
    * Keypoints outside the image (``x`` or ``y`` not in ``[0, side)``): ``keep`` or ``drop``
      the row. Either way they are counted and logged with the first few rows.

    Returns:
        The cleaned table and ``rows``, ``missing_keypoints``, ``rows_with_missing``,
        ``outside_keypoints``, ``rows_with_outside``, ``dropped`` and ``kept``.
    """
    if missing not in MISSING_POLICIES:
        raise ForensicsError(f"keypoints.missing must be one of {', '.join(MISSING_POLICIES)}, got '{missing}'")
    if outside not in OUTSIDE_POLICIES:
        raise ForensicsError(f"keypoints.outside must be one of {', '.join(OUTSIDE_POLICIES)}, got '{outside}'")
    h, w = table.image_size
    absent = np.isnan(table.points).any(axis=2)  # N x K
    x, y = table.points[..., 0], table.points[..., 1]
    out = ~absent & ((x < 0) | (x >= w) | (y < 0) | (y >= h))
    stats = {"rows": len(table), "missing_keypoints": int(absent.sum()), "rows_with_missing": int(absent.any(1).sum()),
             "outside_keypoints": int(out.sum()), "rows_with_outside": int(out.any(1).sum())}
    keep = ~absent.all(axis=1)
    if missing == "drop":
        keep &= ~absent.any(axis=1)
    if outside == "drop":
        keep &= ~out.any(axis=1)
    if stats["rows_with_outside"]:
        rows = table.meta["row"].to_numpy()[out.any(1)][:5]
        log.warning("%s: %d keypoint(s) in %d row(s) lie outside the %dx%d image (rows %s%s): %s", what,
                    stats["outside_keypoints"], stats["rows_with_outside"], w, h, ", ".join(map(str, rows)),
                    ", ..." if stats["rows_with_outside"] > 5 else "", "dropped" if outside == "drop" else "kept")
    if stats["rows_with_missing"]:
        log.info("%s: %d row(s) miss some keypoints (%d keypoints in all): %s", what, stats["rows_with_missing"],
                 stats["missing_keypoints"], "dropped" if missing == "drop" else "masked out of the loss and metric")
    stats["dropped"] = int((~keep).sum())
    stats["kept"] = int(keep.sum())
    return (table if keep.all() else table.subset(keep)), stats
