"""DFDC, the Deepfake Detection Challenge dataset (Dolhansky et al., "The DeepFake Detection
Challenge (DFDC) Dataset", arXiv:2006.07397, 2020).

::

    dfdc_train_part_0/metadata.json    {"abc.mp4": {"label": "FAKE", "split": "train", "original": "xyz.mp4"}}
    dfdc_train_part_0/abc.mp4

Every ``dfdc_train_part_*`` folder (or a ``metadata.json`` directly in the root) is read.
Labels, split and original come from the metadata; an entry without ``split`` is ``train``.
DFDC does not name its manipulation methods: fakes get method ``DFDC``. The videos are
H.264 of unstated quality: compression ``unknown``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from forensics.errors import ForensicsError
from preprocessing.layouts import MediaItem, register_layout, warn_missing

log = logging.getLogger(__name__)

DATASET = "dfdc"
METHOD = "DFDC"
LABELS = {"REAL": 0, "FAKE": 1}


def _metadata_files(root: Path) -> list[Path]:
    files = sorted(root.glob("dfdc_train_part_*/metadata.json"))
    if (root / "metadata.json").is_file():
        files.insert(0, root / "metadata.json")
    return files


@register_layout("dfdc")
def list_items(root: Path, splits_dir: Path | None = None) -> list[MediaItem]:
    """List a DFDC root. ``splits_dir`` is not used: the split is in the metadata."""
    files = _metadata_files(root)
    if not files:
        raise ForensicsError(f"{root} is not a DFDC root: expected dfdc_train_part_*/metadata.json in it")
    if splits_dir is not None:
        log.warning("dfdc: --splits is ignored, the split comes from metadata.json")
    items: list[MediaItem] = []
    missing: list[str] = []
    for meta in files:
        try:
            entries = json.loads(meta.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ForensicsError(f"{meta}: not valid JSON: {error}") from None
        if not isinstance(entries, dict):
            raise ForensicsError(f"{meta}: expected a mapping of video file name to its entry")
        for name, entry in sorted(entries.items()):
            label = LABELS.get(str(entry.get("label", "")).upper()) if isinstance(entry, dict) else None
            if label is None:
                raise ForensicsError(f"{meta}: {name}: label must be REAL or FAKE, got "
                                     f"{entry.get('label') if isinstance(entry, dict) else entry!r}")
            split = str(entry.get("split", "train"))
            if split not in ("train", "val", "test"):
                raise ForensicsError(f"{meta}: {name}: split must be train, val or test, got {split!r}")
            video = meta.parent / name
            if not video.is_file():
                missing.append(name)
                continue
            original = Path(str(entry.get("original") or "")).stem if label else ""
            items.append(MediaItem(video, DATASET, Path(name).stem, label, METHOD if label else "original",
                                   "unknown", split, original))
    warn_missing(DATASET, missing)
    if not items:
        raise ForensicsError(f"{root}: none of the videos listed in metadata.json exists")
    return items
