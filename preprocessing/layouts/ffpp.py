"""FaceForensics++ (Rössler et al., "FaceForensics++: Learning to Detect Manipulated Facial
Images", ICCV 2019), official download layout; ``forensics synth`` writes the same one.

::

    original_sequences/youtube/<c0|raw|c23|c40>/videos/000.mp4
    original_sequences/actors/<comp>/videos/01__walking.mp4            (DeepFakeDetection reals)
    manipulated_sequences/<Method>/<comp>/videos/000_003.mp4           (target 000, source 003)
    manipulated_sequences/DeepFakeDetection/<comp>/videos/01_02__walking__ABCD1234.mp4
    manipulated_sequences/<Method>/masks/videos/000_003.mp4            (where published)
    splits/{train,val,test}.json                                       (lists of id pairs)

A split pair ``[a, b]`` puts originals ``a`` and ``b`` and fakes ``a_b`` and ``b_a`` of every
method into that split; any other fake ``a_x`` (a self-reenactment ``a_a``) follows its
target ``a``. The fake ``a_b`` is target ``a``'s video with ``b``'s face, so its
original is ``a``. The DeepFakeDetection videos (``actors`` and the method of that name) are
not in the official splits; they are listed as ``test``, the way they are used in the
literature (a cross-dataset test set).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from forensics.errors import ForensicsError
from preprocessing.layouts import MediaItem, register_layout, warn_missing

log = logging.getLogger(__name__)

DATASET = "ffpp"
SPLIT_NAMES = ("train", "val", "test")
DFD = "DeepFakeDetection"


def read_splits(splits_dir: Path) -> dict[str, str]:
    """Map every original id (``000``) and fake id (``000_003``) named by the split files to its split.

    Raises:
        ForensicsError: a split file is missing or is not a list of id pairs.
    """
    ids: dict[str, str] = {}
    for split in SPLIT_NAMES:
        path = splits_dir / f"{split}.json"
        if not path.is_file():
            raise ForensicsError(f"split file not found: {path} (give the folder holding "
                                 f"train.json, val.json and test.json with --splits)")
        try:
            pairs = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ForensicsError(f"{path}: not valid JSON: {error}") from None
        if not isinstance(pairs, list) or not all(
                isinstance(p, list) and len(p) == 2 and all(isinstance(v, str) for v in p) for p in pairs):
            raise ForensicsError(f"{path}: expected a list of [id, id] pairs like [[\"000\", \"003\"], ...]")
        for a, b in pairs:
            for name in (a, b, f"{a}_{b}", f"{b}_{a}"):
                ids[name] = split
    return ids


def _videos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.mp4") if not p.name.startswith(".")) if folder.is_dir() else []


def _compression_dirs(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and d.name != "masks"
                  and (d / "videos").is_dir()) if folder.is_dir() else []


def _dfd_original(stem: str) -> str:
    # 01_02__walking_down_street__ABCD1234 -> actor 01's real video 01__walking_down_street
    parts = stem.split("__")
    return f"{parts[0].split('_')[0]}__{parts[1]}" if len(parts) >= 2 else ""


@register_layout("ffpp")
def list_items(root: Path, splits_dir: Path | None = None) -> list[MediaItem]:
    """List a FaceForensics++-style root (split files default to ``root/splits``)."""
    originals = root / "original_sequences"
    manipulated = root / "manipulated_sequences"
    if not originals.is_dir() and not manipulated.is_dir():
        raise ForensicsError(f"{root} is not a FaceForensics++ root: expected original_sequences/ "
                             f"and manipulated_sequences/ in it")
    splits = read_splits(splits_dir if splits_dir is not None else root / "splits")

    items: list[MediaItem] = []
    unsplit: list[str] = []
    seen: set[str] = set()
    fakes_seen: dict[str, set[str]] = {}
    for source in ("youtube", "actors"):
        for comp_dir in _compression_dirs(originals / source):
            for video in _videos(comp_dir / "videos"):
                vid = video.stem
                split = "test" if source == "actors" else splits.get(vid)
                if split is None:
                    unsplit.append(vid)
                    continue
                seen.add(vid)
                items.append(MediaItem(video, DATASET, vid, 0, "original", comp_dir.name, split))
    method_dirs = sorted(d for d in manipulated.iterdir() if d.is_dir()) if manipulated.is_dir() else []
    for method_dir in method_dirs:
        method = method_dir.name
        mask_dir = method_dir / "masks" / "videos"
        for comp_dir in _compression_dirs(method_dir):
            for video in _videos(comp_dir / "videos"):
                vid = video.stem
                if method == DFD:
                    split, original = "test", _dfd_original(vid)
                else:
                    # A fake is in its target's split; this also covers fakes that no pair
                    # names, like self-reenactments "a_a".
                    original = vid.split("_")[0]
                    split = splits.get(vid, splits.get(original))
                if split is None:
                    unsplit.append(f"{method}/{vid}")
                    continue
                fakes_seen.setdefault(method, set()).add(vid)
                mask = mask_dir / video.name
                items.append(MediaItem(video, DATASET, vid, 1, method, comp_dir.name, split, original,
                                       mask if mask.is_file() else None))
    if not items:
        raise ForensicsError(f"{root}: no video of the split files found under original_sequences/*/<comp>/videos "
                             f"or manipulated_sequences/<method>/<comp>/videos")
    if unsplit:
        log.warning("ffpp: %d videos are in no split file and are skipped: %s", len(unsplit),
                    ", ".join(unsplit[:5]) + (", ..." if len(unsplit) > 5 else ""))
    # Split entries without a video: originals absent from every compression, and fakes
    # absent from a method folder that exists.
    missing = sorted(name for name in splits if "_" not in name and name not in seen)
    fake_ids = [name for name in splits if "_" in name]
    for method, found in sorted(fakes_seen.items()):
        if method != DFD and found & set(fake_ids):  # a method following the pair convention
            missing += [f"{method}/{name}" for name in fake_ids if name not in found]
    warn_missing(DATASET, missing)
    return items
