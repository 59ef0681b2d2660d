"""Users' own videos: a ``real/`` and a ``fake/`` folder.

::

    real/<any depth>/clip.mp4                 label 0, method original
    fake/clip.mp4                             label 1, method "fake"
    fake/<Method>/<any depth>/clip.mp4        label 1, method <Method>

Optionally the two folders sit inside ``train/``, ``val/`` and ``test/`` folders, which then
give the split; otherwise every video is ``test`` (own data is most often used to evaluate a
trained detector). The video id is the path below ``real/``, ``fake/`` or ``fake/<Method>/``
without its suffix. Compression is ``unknown`` and fakes have no known original.
"""

from __future__ import annotations

from pathlib import Path

from forensics.errors import ForensicsError
from preprocessing.layouts import VIDEO_SUFFIXES, MediaItem, register_layout, scan_files

DATASET = "folder"
SPLITS = ("train", "val", "test")


def _list_split(base: Path, split: str) -> list[MediaItem]:
    items = []
    for video in scan_files(base / "real", VIDEO_SUFFIXES) if (base / "real").is_dir() else []:
        vid = video.relative_to(base / "real").with_suffix("").as_posix()
        items.append(MediaItem(video, DATASET, vid, 0, "original", "unknown", split))
    for video in scan_files(base / "fake", VIDEO_SUFFIXES) if (base / "fake").is_dir() else []:
        rel = video.relative_to(base / "fake")
        method, rel = (rel.parts[0], rel.relative_to(rel.parts[0])) if len(rel.parts) > 1 else ("fake", rel)
        items.append(MediaItem(video, DATASET, rel.with_suffix("").as_posix(), 1, method, "unknown", split))
    return items


@register_layout("folder")
def list_items(root: Path, splits_dir: Path | None = None) -> list[MediaItem]:
    """List ``root/{real,fake}`` or ``root/{train,val,test}/{real,fake}``."""
    split_roots = [s for s in SPLITS if (root / s / "real").is_dir() or (root / s / "fake").is_dir()]
    if split_roots:
        items = [item for s in split_roots for item in _list_split(root / s, s)]
    elif (root / "real").is_dir() or (root / "fake").is_dir():
        items = _list_split(root, "test")
    else:
        raise ForensicsError(f"{root} is not a folder dataset: expected real/ and fake/ folders in it "
                             f"(or in train/, val/, test/)")
    if not items:
        raise ForensicsError(f"{root}: no videos ({', '.join(VIDEO_SUFFIXES)}) under real/ or fake/")
    return items
