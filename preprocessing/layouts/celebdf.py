"""Celeb-DF v2 (Li et al., "Celeb-DF: A Large-scale Challenging Dataset for DeepFake
Forensics", CVPR 2020).

::

    Celeb-real/id0_0000.mp4          real (celebrity interviews)
    YouTube-real/00000.mp4           real (other YouTube videos)
    Celeb-synthesis/id0_id16_0000.mp4  fake: identity 16's face on id0_0000
    List_of_testing_videos.txt       lines "<label> <relative path>"

The test list decides the split: a listed video is ``test``, every other one ``train``
(Celeb-DF has no validation set). In that file **1 means real and 0 means fake**, the reverse
of this project's labels; labels here come from the folder, and a list entry whose label
disagrees with its folder is reported. The fake ``idA_idB_NNNN`` is made from ``idA_NNNN``,
which is its ``original``. Videos are MPEG-4 of unstated quality: compression ``unknown``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from forensics.errors import ForensicsError
from preprocessing.layouts import VIDEO_SUFFIXES, MediaItem, register_layout, scan_files, warn_missing

log = logging.getLogger(__name__)

DATASET = "celebdf"
METHOD = "Celeb-synthesis"
TEST_LIST = "List_of_testing_videos.txt"
FOLDERS = {"Celeb-real": 0, "YouTube-real": 0, "Celeb-synthesis": 1}


def read_test_list(path: Path) -> dict[str, int]:
    """``relative path -> label in this project's convention`` (0 real, 1 fake) from the test list."""
    if not path.is_file():
        raise ForensicsError(f"split file not found: {path} (Celeb-DF's {TEST_LIST}; give its folder with --splits)")
    entries: dict[str, int] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or parts[0] not in ("0", "1"):
            raise ForensicsError(f"{path}: line {n}: expected '<1 real|0 fake> <relative path>', got {line.strip()!r}")
        entries[parts[1]] = 1 - int(parts[0])
    return entries


def _original(stem: str) -> str:
    parts = stem.split("_")  # idA_idB_NNNN -> idA_NNNN
    return f"{parts[0]}_{parts[-1]}" if len(parts) == 3 else ""


@register_layout("celebdf")
def list_items(root: Path, splits_dir: Path | None = None) -> list[MediaItem]:
    """List a Celeb-DF v2 root (the test list defaults to ``root/List_of_testing_videos.txt``)."""
    if not any((root / folder).is_dir() for folder in FOLDERS):
        raise ForensicsError(f"{root} is not a Celeb-DF root: expected {', '.join(f + '/' for f in FOLDERS)} in it")
    test = read_test_list((splits_dir if splits_dir is not None else root) / TEST_LIST)
    items: list[MediaItem] = []
    for folder, label in FOLDERS.items():
        for video in scan_files(root / folder, VIDEO_SUFFIXES) if (root / folder).is_dir() else []:
            rel = video.relative_to(root).as_posix()
            listed = test.get(rel)
            if listed is not None and listed != label:
                log.warning("celebdf: %s is labelled %s in %s but is in %s/", rel,
                            "fake" if listed else "real", TEST_LIST, folder)
            stem = video.relative_to(root / folder).with_suffix("").as_posix()
            if label:
                items.append(MediaItem(video, DATASET, stem, 1, METHOD, "unknown",
                                       "test" if listed is not None else "train", _original(stem)))
            else:
                items.append(MediaItem(video, DATASET, stem, 0, "original", "unknown",
                                       "test" if listed is not None else "train"))
    if not items:
        raise ForensicsError(f"{root}: no videos in {', '.join(f + '/' for f in FOLDERS)}")
    present = {item.path.relative_to(root).as_posix() for item in items}
    warn_missing(DATASET, [rel for rel in test if rel not in present])
    return items
