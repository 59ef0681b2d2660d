"""The Kaggle Facial Keypoints Detection CSV format: read and write.

The format of ``training.csv`` in https://www.kaggle.com/c/facial-keypoints-detection: one
row per face, a ``NAME_x``, ``NAME_y`` column pair per keypoint (pixels of the image, empty
where the keypoint is not labelled; 15 keypoints, 30 columns in Kaggle's data) and an
``Image`` column of 9,216 space-separated grayscale values 0..255 (96x96, row by row). Other
columns are kept as metadata; ``forensics keypoints-synth`` adds a ``split`` column.

Every error names the file, the row (its line in the file, the header being line 1) and the
column, so a bad value is found with ``sed -n 'Np'``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from forensics.atomic import atomic_path
from forensics.errors import ForensicsError
from keypoints.table import KeypointTable, keypoint_columns, names_from_columns, parse_coordinates
from forensics.data.manifest import read_csv_text

log = logging.getLogger(__name__)

IMAGE_COLUMN = "Image"


def read_kaggle_csv(path: str | os.PathLike, names: Sequence[str] | None = None,
                    image_size: int | None = None) -> KeypointTable:
    """Read a Kaggle-format CSV into a :class:`KeypointTable` (grayscale images in memory).

    Args:
        path: the CSV file.
        names: the keypoints to read (their columns must be there); ``None``: every
            ``NAME_x``/``NAME_y`` pair of the file, in file order.
        image_size: side of the square images; ``None``: from the first row's pixel count.

    Raises:
        ForensicsError: unreadable file, no ``Image`` column, a keypoint column missing, a
            row with the wrong number of pixels, or a value that is not a number (naming
            the row and column).
    """
    path = Path(path)
    source = str(path)
    df = read_csv_text(path, "keypoint CSV", ForensicsError)
    if IMAGE_COLUMN not in df.columns:
        raise ForensicsError(f"{source}: column '{IMAGE_COLUMN}' is missing (the 96x96 pixels of each face)")
    coordinate_columns = [c for c in df.columns if c != IMAGE_COLUMN]
    names = list(names) if names else names_from_columns(coordinate_columns, source)
    if df.empty:
        raise ForensicsError(f"{source}: no rows")
    df.insert(0, "row", np.arange(len(df)) + 2)
    points = parse_coordinates(df, names, source)
    images = _parse_images(df, source, image_size)
    meta = df.drop(columns=[IMAGE_COLUMN, *keypoint_columns(names)])
    side = images.shape[1]
    log.info("%s: %d faces %dx%d, %d keypoints", source, len(df), side, side, len(names))
    return KeypointTable(names, points, meta.reset_index(drop=True), images=images, image_size=(side, side))


def _parse_images(df: pd.DataFrame, source: str, image_size: int | None) -> np.ndarray:
    """``N x side x side`` uint8 from the ``Image`` column, checking every row."""
    expected = None if image_size is None else image_size * image_size
    images: np.ndarray | None = None
    for i, text in enumerate(df[IMAGE_COLUMN]):
        row = int(df["row"].iat[i])
        tokens = text.split()
        if expected is None:
            side = math.isqrt(len(tokens))
            if side == 0 or side * side != len(tokens):
                raise ForensicsError(f"{source}: row {row}, column '{IMAGE_COLUMN}': {len(tokens)} pixel values "
                                     "do not make a square image (Kaggle's are 96x96 = 9216)")
            expected = len(tokens)
        if len(tokens) != expected:
            side = math.isqrt(expected)
            raise ForensicsError(f"{source}: row {row}, column '{IMAGE_COLUMN}': {len(tokens)} pixel values, "
                                 f"expected {expected} ({side}x{side})")
        try:
            values = np.asarray(tokens, dtype=np.float64)
        except ValueError:
            bad = next(t for t in tokens if not _is_number(t))
            raise ForensicsError(f"{source}: row {row}, column '{IMAGE_COLUMN}': pixel value {bad!r} "
                                 "is not a number") from None
        if not np.all((values >= 0) & (values <= 255)):  # also catches NaN
            bad = values[~((values >= 0) & (values <= 255))][0]
            raise ForensicsError(f"{source}: row {row}, column '{IMAGE_COLUMN}': pixel value {bad:g} "
                                 "is not in 0..255")
        if images is None:
            side = math.isqrt(expected)
            images = np.empty((len(df), side, side), np.uint8)
        images[i] = np.rint(values).reshape(images.shape[1:]).astype(np.uint8)
    assert images is not None
    return images


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def write_kaggle_csv(path: str | os.PathLike, images: np.ndarray, points: np.ndarray, names: Sequence[str],
                     extra: pd.DataFrame | None = None) -> Path:
    """Write faces in the Kaggle format, atomically.

    Args:
        images: ``N x side x side`` uint8 grayscale.
        points: ``N x K x 2`` ``(x, y)`` in pixels; NaN is written as an empty cell.
        names: the K keypoint names (columns ``NAME_x``, ``NAME_y``).
        extra: more columns (e.g. ``split``), written between the keypoints and ``Image``.

    Returns:
        ``path`` as a :class:`Path`.
    """
    images, points = np.asarray(images), np.asarray(points, dtype=np.float64)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ForensicsError(f"{path}: images must be N x side x side uint8, got {images.dtype} {images.shape}")
    if points.shape != (len(images), len(names), 2):
        raise ForensicsError(f"{path}: keypoints must be {len(images)} x {len(names)} x 2, got {points.shape}")
    df = pd.DataFrame(points.reshape(len(images), -1), columns=keypoint_columns(names))
    if extra is not None:
        for column in extra.columns:
            df[column] = extra[column].to_numpy()
    df[IMAGE_COLUMN] = [" ".join(map(str, image.ravel().tolist())) for image in images]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)  # shortest exact repr: a written file reads back bit for bit
    return path
