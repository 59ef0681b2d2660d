"""FaceForensics++ (Rössler et al., "FaceForensics++: Learning to Detect Manipulated Facial
Images", ICCV 2019), official download layout; ``forensics synth`` writes the same one.

::

    original_sequences/youtube/<raw|c23|c40>/videos/000.mp4              the 1,000 YouTube originals
    manipulated_sequences/<Method>/<comp>/videos/000_003.mp4             (target 000, source 003)
    manipulated_sequences/<Method>/masks/videos/000_003.mp4              (where published)
    splits/{train,val,test}.json                                         (lists of id pairs)
    original_sequences/actors/<comp>/videos/01__walking.mp4              DeepFakeDetection: --layout dfd
    manipulated_sequences/DeepFakeDetection/<comp>/videos/...            DeepFakeDetection: --layout dfd

Dataset ``ffpp`` is the YouTube originals and every method folder except DeepFakeDetection:
the paper's four (Deepfakes, Face2Face, FaceSwap, NeuralTextures), FaceShifter (added to the
download later) and any other (the synthetic dataset's). FaceShifter is listed and cropped,
but no default selection trains or tests on it
(:data:`forensics.data.manifest.OPT_IN_METHODS`): it is used only where named. The actor
videos and the DeepFakeDetection fakes are another dataset, with other people, cameras and
no split files; :mod:`preprocessing.layouts.dfd` lists them from the same root.

A split pair ``[a, b]`` puts originals ``a`` and ``b`` and fakes ``a_b`` and ``b_a`` of every
method into that split; any other fake ``a_x`` (a self-reenactment ``a_a``) follows its
target ``a``. The fake ``a_b`` is target ``a``'s video with ``b``'s face, so its
original is ``a``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from forensics.errors import ForensicsError
from preprocessing.layouts import (MediaItem, count_parts, per_compression, register_layout, report_counts,
                                   warn_missing)

log = logging.getLogger(__name__)

DATASET = "ffpp"
SPLIT_NAMES = ("train", "val", "test")
DFD = "DeepFakeDetection"
#: The paper's four methods, and FaceShifter (Li et al., "FaceShifter: Towards High Fidelity
#: and Occlusion Aware Face Swapping", 2019), added to the download after the paper.
PAPER_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")
FACESHIFTER = "FaceShifter"
#: Videos per compression in the official download: 1,000 originals and 1,000 per method.
OFFICIAL = {"original": 1000, **{m: 1000 for m in (*PAPER_METHODS, FACESHIFTER)}}


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


def videos_in(folder: Path) -> list[Path]:
    """The ``.mp4`` files of a ``videos`` folder, sorted (none if it does not exist)."""
    return sorted(p for p in folder.glob("*.mp4") if not p.name.startswith(".")) if folder.is_dir() else []


def compression_dirs(folder: Path) -> list[Path]:
    """``folder/<comp>`` for every compression folder holding ``videos/`` (``masks`` is not one)."""
    return sorted(d for d in folder.iterdir() if d.is_dir() and d.name != "masks"
                  and (d / "videos").is_dir()) if folder.is_dir() else []


def is_synthetic(root: Path) -> bool:
    """Whether ``root`` was written by ``forensics synth`` (no official counts apply)."""
    from forensics.synth import read_marker

    return read_marker(root) is not None


def _originals(root: Path, splits: dict[str, str], unsplit: list[str]) -> list[MediaItem]:
    items = []
    for comp_dir in compression_dirs(root / "original_sequences" / "youtube"):
        for video in videos_in(comp_dir / "videos"):
            split = splits.get(video.stem)
            if split is None:
                unsplit.append(video.stem)
                continue
            items.append(MediaItem(video, DATASET, video.stem, 0, "original", comp_dir.name, split))
    return items


def _fakes(method_dir: Path, splits: dict[str, str], unsplit: list[str]) -> list[MediaItem]:
    items = []
    mask_dir = method_dir / "masks" / "videos"
    for comp_dir in compression_dirs(method_dir):
        for video in videos_in(comp_dir / "videos"):
            vid = video.stem
            # A fake is in its target's split; this also covers fakes that no pair names,
            # like self-reenactments "a_a".
            original = vid.split("_")[0]
            split = splits.get(vid, splits.get(original))
            if split is None:
                unsplit.append(f"{method_dir.name}/{vid}")
                continue
            mask = mask_dir / video.name
            items.append(MediaItem(video, DATASET, vid, 1, method_dir.name, comp_dir.name, split, original,
                                   mask if mask.is_file() else None))
    return items


@register_layout("ffpp")
def list_items(root: Path, splits_dir: Path | None = None) -> list[MediaItem]:
    """List a FaceForensics++-style root (split files default to ``root/splits``)."""
    originals = root / "original_sequences"
    manipulated = root / "manipulated_sequences"
    if not originals.is_dir() and not manipulated.is_dir():
        raise ForensicsError(f"{root} is not a FaceForensics++ root: expected original_sequences/ "
                             f"and manipulated_sequences/ in it")
    splits = read_splits(splits_dir if splits_dir is not None else root / "splits")
    unsplit: list[str] = []
    items = _originals(root, splits, unsplit)
    method_dirs = sorted(d for d in manipulated.iterdir() if d.is_dir() and d.name != DFD) \
        if manipulated.is_dir() else []
    for method_dir in method_dirs:
        items += _fakes(method_dir, splits, unsplit)
    has_dfd = (originals / "actors").is_dir() or (manipulated / DFD).is_dir()
    if not items:
        raise ForensicsError(f"{root}: no video of the split files found under original_sequences/youtube/<comp>/"
                             f"videos or manipulated_sequences/<method>/<comp>/videos"
                             + ("; its DeepFakeDetection videos are --layout dfd" if has_dfd else ""))
    if unsplit:
        log.warning("ffpp: %d videos are in no split file and are skipped: %s", len(unsplit),
                    ", ".join(unsplit[:5]) + (", ..." if len(unsplit) > 5 else ""))
    if has_dfd:
        log.info("ffpp: the DeepFakeDetection videos (original_sequences/actors, manipulated_sequences/%s) "
                 "are another dataset: list them with --layout dfd", DFD)
    _warn_split_entries_missing(items, splits)
    if not is_synthetic(root):
        report_counts(DATASET, count_parts(items), per_compression(OFFICIAL, items))
    return items


def _warn_split_entries_missing(items: list[MediaItem], splits: dict[str, str]) -> None:
    """One warning for split entries without a video: originals absent from every compression,
    and fakes absent from a method folder that follows the pair convention."""
    seen = {i.video for i in items if i.label == 0}
    missing = sorted(name for name in splits if "_" not in name and name not in seen)
    fake_ids = {name for name in splits if "_" in name}
    by_method: dict[str, set[str]] = {}
    for item in items:
        if item.label == 1:
            by_method.setdefault(item.method, set()).add(item.video)
    for method, found in sorted(by_method.items()):
        if found & fake_ids:
            missing += [f"{method}/{name}" for name in sorted(fake_ids) if name not in found]
    warn_missing(DATASET, missing)
