"""Celeb-DF (Li et al., "Celeb-DF: A Large-scale Challenging Dataset for DeepFake Forensics",
CVPR 2020), v2 and v1.

::

    Celeb-real/id0_0000.mp4          real (celebrity interviews)
    YouTube-real/00000.mp4           real (other YouTube videos)
    Celeb-synthesis/id0_id16_0000.mp4  fake: identity 16's face on id0_0000
    List_of_testing_videos.txt       lines "<label> <relative path>"

Both versions have this layout (the authors' README, github.com/yuezunli/celeb-deepfakeforensics):
v2 has 590 Celeb-real, 300 YouTube-real and 5,639 fakes, and its test list names 518 videos;
v1 (the arXiv preprint's release) has 158 Celeb-real, 250 YouTube-real and 795 fakes. v2
re-uses v1's identities and file names, so the two are never mixed in one manifest; both are
dataset ``celebdf``. The version is told from the test list (518 entries: v2) or from counts
beyond v1's, and only decides which official counts the found ones are compared with.

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
from preprocessing.layouts import (VIDEO_SUFFIXES, MediaItem, register_layout, report_counts, scan_files,
                                   warn_missing)

log = logging.getLogger(__name__)

DATASET = "celebdf"
METHOD = "Celeb-synthesis"
TEST_LIST = "List_of_testing_videos.txt"
FOLDERS = {"Celeb-real": 0, "YouTube-real": 0, "Celeb-synthesis": 1}
#: Videos per folder, and test list entries, of each release.
OFFICIAL = {"v2": {"Celeb-real": 590, "YouTube-real": 300, "Celeb-synthesis": 5639, "test": 518},
            "v1": {"Celeb-real": 158, "YouTube-real": 250, "Celeb-synthesis": 795}}


def guess_version(found: dict[str, int], test_entries: int) -> str:
    """``v2`` if the test list has v2's 518 entries or a folder holds more than v1's count, else ``v1``."""
    if test_entries == OFFICIAL["v2"]["test"]:
        return "v2"
    return "v2" if any(found.get(folder, 0) > n for folder, n in OFFICIAL["v1"].items()) else "v1"


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
    found = {folder: sum(item.path.relative_to(root).parts[0] == folder for item in items) for folder in FOLDERS}
    found["test"] = sum(item.split == "test" for item in items)
    version = guess_version(found, len(test))
    report_counts(f"{DATASET} ({version})", found, OFFICIAL[version])
    return items
