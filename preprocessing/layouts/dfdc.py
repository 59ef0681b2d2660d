"""DFDC, the Deepfake Detection Challenge dataset (Dolhansky et al., "The DeepFake Detection
Challenge (DFDC) Dataset", arXiv:2006.07397, 2020), and its preview (``dfdcp``: Dolhansky et
al., "The Deepfake Detection Challenge (DFDC) Preview Dataset", arXiv:1910.08854, 2019).

Layout ``dfdc``::

    dfdc_train_part_0/metadata.json    {"abc.mp4": {"label": "FAKE", "split": "train", "original": "xyz.mp4"}}
    dfdc_train_part_0/abc.mp4          ... 50 parts, 119,154 videos
    test/labels.csv                    filename,label  (1 fake, 0 real); the public test set, 5,000 videos
    test/aaqaifqrwn.mp4                (any folder of the root holding labels.csv, or --splits DIR)

Layout ``dfdcp`` (the preview)::

    dataset.json                       {"method_A/1255229/1255229_A/1599754.mp4": {"label": "fake", "set": "test", ...}}
    original_videos/1255229/1599754.mp4, method_A/..., method_B/...

**Splits.** The official test set (``labels.csv``) is split ``test``. The train parts are
split ``train``/``val`` here, deterministically, by hashing the name of each fake's
*original* (a real's own name): a fake is always in its original's split, so no pair
straddles train and val. ``val_fraction`` (``--val-fraction``, default 0.1) is the share of
originals in val. We hash originals rather than holding out whole parts (as some challenge
winners did) because it works on any subset of the parts a user downloaded, gives any
fraction, and keeps a video's split the same whatever else is downloaded; neither way
separates *people* (an actor appears in many originals, and DFDC publishes no identities),
so val measures unseen videos, not unseen faces. A metadata entry naming split ``val`` or
``test`` for a real is kept, and its fakes follow it. The preview's ``set`` gives test;
its train set is split the same way, grouping videos by the identity folder
(``method_A/<id>/...``, ``original_videos/<id>/...``), which there *does* keep people apart.

DFDC does not name its manipulation methods: fakes get method ``DFDC`` (the preview's
``method_A``/``method_B``). Videos are H.264 of unstated quality: compression ``unknown``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from forensics.errors import ForensicsError
from preprocessing.layouts import (VIDEO_SUFFIXES, MediaItem, register_layout, report_counts, scan_files,
                                   warn_missing)

log = logging.getLogger(__name__)

DATASET = "dfdc"
METHOD = "DFDC"
LABELS = {"REAL": 0, "FAKE": 1}
TEST_LABELS = "labels.csv"
#: Default share of train-part originals put in val.
VAL_FRACTION = 0.1
#: Published sizes: 50 train parts, 5,000 public test videos.
OFFICIAL = {"train_parts": 50, "test": 5000}
#: The preview's videos (Li et al., Celeb-DF, CVPR 2020, Table 1: "DFDC" 1,131 real, 4,113 fake).
OFFICIAL_PREVIEW = {"original": 1131, "fake": 4113}


def in_val(group: str, val_fraction: float) -> bool:
    """Whether the group (an original's name) falls in val: a hash, so the same on every machine."""
    digest = hashlib.sha256(group.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < val_fraction


def _metadata_files(root: Path) -> list[Path]:
    files = sorted(root.glob("dfdc_train_part_*/metadata.json"))
    if (root / "metadata.json").is_file():
        files.insert(0, root / "metadata.json")
    return files


def _read_json(path: Path) -> dict[str, Any]:
    try:
        entries = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ForensicsError(f"{path}: not valid JSON: {error}") from None
    if not isinstance(entries, dict):
        raise ForensicsError(f"{path}: expected a mapping of video file name to its entry")
    return entries


def _train_entries(meta: Path) -> list[tuple[str, int, str, str]]:
    """``(file name, label, metadata split, original stem)`` of one part's metadata.json."""
    out = []
    for name, entry in sorted(_read_json(meta).items()):
        label = LABELS.get(str(entry.get("label", "")).upper()) if isinstance(entry, dict) else None
        if label is None:
            raise ForensicsError(f"{meta}: {name}: label must be REAL or FAKE, got "
                                 f"{entry.get('label') if isinstance(entry, dict) else entry!r}")
        split = str(entry.get("split", "train"))
        if split not in ("train", "val", "test"):
            raise ForensicsError(f"{meta}: {name}: split must be train, val or test, got {split!r}")
        original = Path(str(entry.get("original") or "")).stem if label else ""
        out.append((name, label, split, original))
    return out


def _train_items(files: list[Path], val_fraction: float) -> tuple[list[MediaItem], list[str]]:
    entries = [(meta, *entry) for meta in files for entry in _train_entries(meta)]
    # A real named val/test by its metadata keeps that split, and its fakes follow it.
    fixed = {Path(name).stem: split for _, name, label, split, _ in entries if label == 0 and split != "train"}
    items, missing = [], []
    for meta, name, label, split, original in entries:
        video = meta.parent / name
        if not video.is_file():
            missing.append(name)
            continue
        group = original or Path(name).stem
        if split == "train":
            split = fixed.get(group) or ("val" if in_val(group, val_fraction) else "train")
        items.append(MediaItem(video, DATASET, Path(name).stem, label, METHOD if label else "original",
                               "unknown", split, original))
    return items, missing


def read_test_labels(path: Path) -> dict[str, int]:
    """``file name -> label`` (1 fake, 0 real) of DFDC's test ``labels.csv``.

    Raises:
        ForensicsError: not a ``filename,label`` CSV, a label other than 0/1, a name that is not a
            video file name, a repeated name; the message names the file and line.
    """
    labels: dict[str, int] = {}
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"filename", "label"} <= set(reader.fieldnames):
            raise ForensicsError(f"{path}: expected the columns filename,label, got {reader.fieldnames}")
        for line, row in enumerate(reader, 2):
            name, label = (row.get("filename") or "").strip(), (row.get("label") or "").strip()
            if not name.lower().endswith(VIDEO_SUFFIXES) or "/" in name:
                raise ForensicsError(f"{path}: line {line}: filename {name!r} is not a video file name")
            try:
                value = float(label)
            except ValueError:
                value = -1.0
            if value not in (0.0, 1.0):
                raise ForensicsError(f"{path}: line {line}: label must be 1 (fake) or 0 (real), got {label!r}")
            if name in labels:
                raise ForensicsError(f"{path}: line {line}: {name} is listed twice")
            labels[name] = int(value)
    return labels


def find_test_labels(root: Path, splits_dir: Path | None) -> Path | None:
    """The test set's ``labels.csv``: in ``splits_dir`` if given, else in the root or a folder of it."""
    if splits_dir is not None:
        if not (splits_dir / TEST_LABELS).is_file():
            raise ForensicsError(f"{splits_dir / TEST_LABELS}: not found (--splits names the DFDC test folder "
                                 f"holding {TEST_LABELS} and its videos)")
        return splits_dir / TEST_LABELS
    found = sorted(root.glob(f"*/{TEST_LABELS}")) + ([root / TEST_LABELS] if (root / TEST_LABELS).is_file() else [])
    if len(found) > 1:
        raise ForensicsError(f"{root}: several {TEST_LABELS} ({', '.join(map(str, found))}); name the test "
                             f"folder with --splits")
    return found[0] if found else None


def _test_items(labels_csv: Path) -> list[MediaItem]:
    labels = read_test_labels(labels_csv)
    folder = labels_csv.parent
    files = {p.name: p for p in scan_files(folder, VIDEO_SUFFIXES)}
    present = [name for name in labels if name in files]
    if labels and not present:
        raise ForensicsError(f"{labels_csv}: none of its {len(labels)} files is under {folder} "
                             f"(e.g. {next(iter(labels))})")
    unlabelled = sorted(set(files) - set(labels))
    if unlabelled:
        log.warning("dfdc: %d videos under %s are not in %s and are skipped: %s", len(unlabelled), folder,
                    TEST_LABELS, ", ".join(unlabelled[:5]))
    warn_missing(DATASET, [name for name in labels if name not in files])
    return [MediaItem(files[name], DATASET, Path(name).stem, labels[name], METHOD if labels[name] else "original",
                      "unknown", "test") for name in sorted(present)]


@register_layout("dfdc")
def list_items(root: Path, splits_dir: Path | None = None, val_fraction: float = VAL_FRACTION) -> list[MediaItem]:
    """List a DFDC root: the train parts (split train/val) and the public test set (split test)."""
    if not 0 <= val_fraction < 1:
        raise ForensicsError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    files = _metadata_files(root)
    labels_csv = find_test_labels(root, splits_dir)
    if not files and labels_csv is None:
        raise ForensicsError(f"{root} is not a DFDC root: expected dfdc_train_part_*/metadata.json or a test "
                             f"folder with {TEST_LABELS} in it")
    items, missing = _train_items(files, val_fraction)
    warn_missing(DATASET, missing)
    test = _test_items(labels_csv) if labels_csv is not None else []
    if not items + test:
        raise ForensicsError(f"{root}: none of the videos listed in metadata.json exists")
    parts = len({meta.parent for meta in files if meta.parent != root})
    report_counts(DATASET, {"train_parts": parts, "test": len(test)}, OFFICIAL)
    return items + test


@register_layout("dfdcp")
def list_preview(root: Path, splits_dir: Path | None = None, val_fraction: float = VAL_FRACTION) -> list[MediaItem]:
    """List the DFDC preview from its ``dataset.json``; train/val grouped by identity folder."""
    index = root / "dataset.json"
    if not index.is_file():
        raise ForensicsError(f"{root} is not a DFDC preview root: expected dataset.json in it")
    if not 0 <= val_fraction < 1:
        raise ForensicsError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    items, missing = [], []
    for rel, entry in sorted(_read_json(index).items()):
        label = {"real": 0, "fake": 1}.get(str(entry.get("label", "")).lower()) if isinstance(entry, dict) else None
        split = str(entry.get("set", "")) if isinstance(entry, dict) else ""
        if label is None or split not in ("train", "test"):
            raise ForensicsError(f"{index}: {rel}: expected label real/fake and set train/test, got {entry!r}")
        parts = Path(rel).parts
        if len(parts) < 3:
            raise ForensicsError(f"{index}: {rel}: expected <method or original_videos>/<id>/.../<file>")
        if not (root / rel).is_file():
            missing.append(rel)
            continue
        if split == "train" and in_val(parts[1], val_fraction):
            split = "val"
        items.append(MediaItem(root / rel, "dfdcp", Path(rel).with_suffix("").as_posix(), label,
                               parts[0] if label else "original", "unknown", split))
    warn_missing("dfdcp", missing)
    if not items:
        raise ForensicsError(f"{index}: none of the videos it lists exists under {root}")
    fakes = sum(item.label for item in items)
    report_counts("dfdcp", {"original": len(items) - fakes, "fake": fakes}, OFFICIAL_PREVIEW)
    return items
