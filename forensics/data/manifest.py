"""The crop manifest: the contract between preprocessing and everything downstream.

One row per face crop; the schema is documented in ``docs/manifest.md``. It is a CSV file
(not Parquet) because researchers open it with ``head``, ``grep`` and a spreadsheet, diff it
in git and merge shards with ``cat``-like tools; pandas reads a million rows of it in about a
second, which is far below the cost of reading the crops themselves.

Paths in the ``path`` column are relative to the manifest's folder, so a dataset folder can
be moved or mounted elsewhere as a whole.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from forensics.atomic import atomic_path
from forensics.errors import ManifestError

#: Required columns and their dtype. Extra columns (``mask``, landmarks...) are kept as they are.
COLUMNS: dict[str, str] = {
    "path": "str",         # crop image, relative to the manifest's folder
    "dataset": "str",      # ffpp, celebdf, dfdc, folder, ...
    "video": "str",        # video id, unique within (dataset, method, compression)
    "frame": "int",        # frame index in the source video
    "label": "int",        # 0 real, 1 fake
    "method": "str",       # "original" for reals, else the manipulation name
    "compression": "str",  # c0, c23, c40, raw, or "unknown"
    "split": "str",        # train, val, test
    "original": "str",     # for a fake: id of the original video it manipulates ("" if unknown)
    "x0": "float",         # face box in source-frame pixels
    "y0": "float",
    "x1": "float",
    "y1": "float",
    "score": "float",      # face detector confidence (NaN when the box came from elsewhere)
}
#: Optional columns: the subject's five facial landmarks (MTCNN O-Net's: image-left eye,
#: image-right eye, nose, image-left and image-right mouth corner) in the *crop's* pixels;
#: empty (NaN) where unknown. Manifests written before they existed simply lack them.
LANDMARK_COLUMNS = [f"lm{i}_{axis}" for i in range(5) for axis in "xy"]
LABELS = (0, 1)
SPLITS = ("train", "val", "test")
REAL_METHOD = "original"


def _row(index: int) -> str:
    """Human row number: line of the CSV file (header is line 1)."""
    return f"row {index + 2}"


def validate_manifest(df: pd.DataFrame, source: str = "manifest", root: str | os.PathLike | None = None,
                      check_files: bool = False) -> None:
    """Check columns and values; raise :class:`ManifestError` naming the first bad row.

    Args:
        df: the manifest.
        source: the file name used in messages.
        root: folder that ``path`` is relative to (needed when ``check_files``).
        check_files: also check that every crop file exists.
    """
    missing = [name for name in COLUMNS if name not in df.columns]
    if missing:
        raise ManifestError(f"{source}: missing column(s): {', '.join(missing)}")
    positions = np.arange(len(df))
    checks = [
        (~df["label"].isin(LABELS), "label must be 0 (real) or 1 (fake), got {label!r}"),
        (~df["split"].isin(SPLITS), "split must be one of train/val/test, got {split!r}"),
        (df["path"].astype(str).str.len() == 0, "empty path"),
        (df["video"].astype(str).str.len() == 0, "empty video id"),
        ((df["label"] == 0) != (df["method"] == REAL_METHOD),
         "label {label!r} disagrees with method {method!r} (reals have method 'original')"),
        (df["frame"] < 0, "negative frame index {frame!r}"),
    ]
    for bad, message in checks:
        bad = np.asarray(bad, dtype=bool)
        if bad.any():
            i = int(positions[bad][0])
            row = df.iloc[i]
            raise ManifestError(f"{source}: {_row(i)}: " + message.format(**row.to_dict())
                                + (f" ({int(bad.sum())} rows in all)" if bad.sum() > 1 else ""))
    if check_files:
        base = Path(root if root is not None else ".")
        for i, rel in enumerate(df["path"]):
            if not (base / rel).is_file():
                raise ManifestError(f"{source}: {_row(i)}: crop file not found: {base / rel}")


def read_csv_text(path: Path, what: str, error: type[Exception]) -> pd.DataFrame:
    """A CSV file with every cell as text (empty cells stay ``""``), or ``error`` in one line
    naming the file when it is missing or not readable as CSV."""
    if not path.is_file():
        raise error(f"{path}: {what} not found")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise error(f"{path}: unreadable CSV: {str(exc).splitlines()[0]}") from None


def read_manifest(path: str | os.PathLike, check_files: bool = False) -> pd.DataFrame:
    """Read and validate a manifest; ``df.attrs['root']`` is its folder.

    Raises:
        ManifestError: the file is missing or unreadable, or a row is invalid.
    """
    path = Path(path)
    df = read_csv_text(path, "manifest", ManifestError)
    for name, kind in COLUMNS.items():
        if name in df.columns and kind in ("int", "float"):
            df[name] = _numeric_column(df[name], name, kind, path)
    for name in LANDMARK_COLUMNS:
        if name in df.columns:
            df[name] = _numeric_column(df[name], name, "float", path)
    validate_manifest(df, str(path), root=path.parent, check_files=check_files)
    df.attrs["root"] = str(path.parent.resolve())
    return df


def _numeric_column(column: pd.Series, name: str, kind: str, path: Path) -> pd.Series:
    values = pd.to_numeric(column, errors="coerce")
    text = column.astype(str).str.strip().str.lower()
    # Only the detector score (a box given by the dataset has none) and landmarks may be empty.
    may_be_empty = name == "score" or name in LANDMARK_COLUMNS
    allowed_empty = text.isin(["", "nan"]) if may_be_empty else pd.Series(False, index=column.index)
    bad = values.isna() & ~allowed_empty
    if kind == "int":
        bad = bad | (values.fillna(0) % 1 != 0)
    bad = bad.to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ManifestError(f"{path}: {_row(i)}: column '{name}' must be {'an integer' if kind == 'int' else 'a number'}, "
                            f"got {column.iloc[i]!r}")
    return values.astype("int64") if kind == "int" else values.astype("float64")


def write_manifest(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Validate and write a manifest atomically (required columns first, extras after)."""
    path = Path(path)
    validate_manifest(df, str(path))
    ordered = list(COLUMNS) + [c for c in df.columns if c not in COLUMNS]
    with atomic_path(path) as tmp:
        df[ordered].to_csv(tmp, index=False)


def landmarks_of(df: pd.DataFrame) -> np.ndarray | None:
    """The ``(len(df), 5, 2)`` landmarks in crop pixels (NaN where unknown), or ``None`` when
    the manifest has no landmark columns (written before preprocessing stored them)."""
    if not all(name in df.columns for name in LANDMARK_COLUMNS):
        return None
    values = df[LANDMARK_COLUMNS].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    return values.reshape(len(df), 5, 2)


def absolute_paths(df: pd.DataFrame) -> list[str]:
    """The crop paths of ``df`` made absolute against its manifest folder."""
    root = Path(df.attrs.get("root", "."))
    return [str(root / p) for p in df["path"]]


def video_key(df: pd.DataFrame) -> pd.Series:
    """A key naming each row's video uniquely across datasets, methods and compressions."""
    return df["dataset"] + "/" + df["method"] + "/" + df["compression"] + "/" + df["video"]


def _select(df: pd.DataFrame, column: str, values: Iterable[str] | None) -> pd.DataFrame:
    if values is None:
        return df
    values = list(values)
    return df[df[column].isin(values)]


#: ``dataset -> methods`` that no default selection keeps: used only where a list of methods names them.
#: FaceForensics++'s "all" is its paper's four methods (Rössler et al., ICCV 2019); FaceShifter
#: joined the download later and is not in any published "all" row, so a default run (the
#: benchmark's ``all`` cell, ``data.methods: null``) must not train or test on it.
OPT_IN_METHODS: dict[str, frozenset[str]] = {"ffpp": frozenset({"FaceShifter"})}


def default_methods_mask(df: pd.DataFrame) -> pd.Series:
    """Rows a default selection (``methods=None``) keeps: all but :data:`OPT_IN_METHODS`."""
    keep = pd.Series(True, index=df.index)
    for dataset, methods in OPT_IN_METHODS.items():
        keep &= ~((df["dataset"] == dataset) & df["method"].isin(methods))
    return keep


def subject_mask(df: pd.DataFrame) -> pd.Series:
    """Rows of each video's subject (``face`` 0, or no ``face`` column).

    Other faces (``forensics preprocess --all-faces``) carry their video's label, but in a
    fake video they are real people's faces: a label "fake" on them would be wrong, so
    training and video scores leave them out unless asked (``load_frames(..., all_faces=True)``).
    """
    if "face" not in df.columns:
        return pd.Series(True, index=df.index)
    face = pd.to_numeric(df["face"].replace("", "0"), errors="coerce").fillna(0)
    return face == 0


def filter_manifest(df: pd.DataFrame, *, datasets: Iterable[str] | None = None,
                    methods: Iterable[str] | None = None, splits: Iterable[str] | None = None,
                    compressions: Iterable[str] | None = None,
                    frames_per_video: int | None = None) -> pd.DataFrame:
    """Select rows; ``None`` keeps everything for that column.

    ``methods`` lists the methods to keep, exactly: name ``original`` to keep the reals.
    ``frames_per_video`` keeps at most that many evenly spaced frames of each video.
    The defaults of training and evaluation (no opt-in method, subject faces only) are
    applied by :func:`forensics.data.datasets.load_frames`, not here.
    """
    out = _select(df, "dataset", datasets)
    out = _select(out, "method", methods)
    out = _select(out, "split", splits)
    out = _select(out, "compression", compressions)
    if frames_per_video is not None:
        out = out.sort_values(["dataset", "method", "compression", "video", "frame"], kind="stable")
        keys = video_key(out)
        rank = out.groupby(keys.to_numpy()).cumcount().to_numpy()
        count = keys.map(keys.value_counts()).to_numpy()
        k = frames_per_video
        # Evenly spaced positions: keep position p of n if it is one of round(linspace(0, n-1, k)).
        keep = np.zeros(len(out), dtype=bool)
        for n in np.unique(count):
            chosen = set(np.round(np.linspace(0, n - 1, min(k, n))).astype(int)) if n else set()
            sel = count == n
            keep[sel] = np.isin(rank[sel], list(chosen))
        out = out[keep]
    out = out.copy()
    out.attrs = dict(df.attrs)
    return out
