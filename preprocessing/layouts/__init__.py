"""Dataset layouts: adapters that list a dataset's videos (or images) with their labels.

Each module here knows one dataset's folder structure and split files and turns it into
:class:`MediaItem` records: where the file is, its label, manipulation method, compression,
split and (for a fake) the original video it was made from. Everything after listing (frame
sampling, detection, cropping) is the same for every dataset.

A layout registers a function ``list_items(root, splits_dir, **options) -> list[MediaItem]``
under its ``--layout`` name with :func:`register_layout`. It raises
:class:`~forensics.errors.ForensicsError` before any work starts when the root does not look
like that dataset or a split file is missing, and logs one warning with a count for split
entries naming videos that are not there. Layouts of published datasets also compare what they
found with the official counts (:func:`report_counts`) and log one line naming the partial
parts; a partial dataset still runs. ``docs/datasets.md`` describes every dataset.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from forensics.errors import ForensicsError

log = logging.getLogger(__name__)

#: File suffixes treated as videos by the layouts that scan folders.
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
#: File suffixes treated as images.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class MediaItem:
    """One video (or, for the ``images`` layout, one folder of images) to preprocess.

    Attributes:
        path: the video file (a folder for image groups).
        dataset: dataset name written to the manifest (``ffpp``, ``celebdf``...).
        video: id unique within ``(dataset, method, compression)``; may contain ``/``.
        label: 0 real, 1 fake.
        method: ``original`` for reals, else the manipulation.
        compression: ``c0``/``raw``/``c23``/``c40`` or ``unknown``.
        split: ``train``, ``val`` or ``test``.
        original: for a fake, the id of the real video it manipulates (``""`` if unknown).
        mask: the manipulation mask video, if the dataset has one.
        images: for an image group, ``(id, file, box or None)`` per image; empty for videos.
    """

    path: Path
    dataset: str
    video: str
    label: int
    method: str
    compression: str
    split: str
    original: str = ""
    mask: Path | None = None
    images: tuple[tuple[str, Path, tuple[float, float, float, float] | None], ...] = field(default=())

    @property
    def key(self) -> str:
        """``dataset/method/compression/video``: where its outputs go, unique in a run."""
        return f"{self.dataset}/{self.method}/{self.compression}/{self.video}"

    @property
    def is_video(self) -> bool:
        return not self.images


Lister = Callable[..., list[MediaItem]]
_LAYOUTS: dict[str, str] = {
    "ffpp": "preprocessing.layouts.ffpp",
    "dfd": "preprocessing.layouts.dfd",
    "celebdf": "preprocessing.layouts.celebdf",
    "dfdc": "preprocessing.layouts.dfdc",
    "dfdcp": "preprocessing.layouts.dfdc",
    "folder": "preprocessing.layouts.folder",
    "images": "preprocessing.layouts.images",
}
_REGISTRY: dict[str, Lister] = {}


def register_layout(name: str) -> Callable[[Lister], Lister]:
    """Decorator recording ``list_items`` of a layout under ``name``."""

    def wrap(fn: Lister) -> Lister:
        _REGISTRY[name] = fn
        return fn

    return wrap


def layout_names() -> list[str]:
    """The ``--layout`` choices."""
    return list(_LAYOUTS)


def list_items(layout: str, root: str | os.PathLike, splits_dir: str | os.PathLike | None = None,
               **options: object) -> list[MediaItem]:
    """List the items of dataset ``root`` in ``layout``, sorted by key.

    Raises:
        ForensicsError: unknown layout, missing root, root not in that layout, missing split file.
    """
    if layout not in _LAYOUTS:
        raise ForensicsError(f"unknown layout {layout!r} (expected one of {', '.join(_LAYOUTS)})")
    root = Path(root)
    if not root.is_dir():
        raise ForensicsError(f"dataset root {root} is not a folder")
    if layout not in _REGISTRY:
        importlib.import_module(_LAYOUTS[layout])
    items = _REGISTRY[layout](root, None if splits_dir is None else Path(splits_dir), **options)
    keys = [item.key for item in items]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ForensicsError(f"{root}: two files map to the same video id {dup}")
    return sorted(items, key=lambda item: item.key)


def select_items(items: Iterable[MediaItem], methods: Sequence[str] | None = None,
                 compressions: Sequence[str] | None = None,
                 splits: Sequence[str] | None = None) -> list[MediaItem]:
    """Keep the items of the given methods, compressions and splits (``None`` keeps all).

    Raises:
        ForensicsError: a requested value matches no item (a typo would otherwise select nothing).
    """
    items = list(items)
    for name, wanted in (("method", methods), ("compression", compressions), ("split", splits)):
        if wanted is None:
            continue
        present = {getattr(item, name) for item in items}
        unknown = [w for w in wanted if w not in present]
        if unknown:
            raise ForensicsError(f"no {name} {', '.join(map(repr, unknown))} in this dataset "
                                 f"(it has: {', '.join(sorted(present)) or 'nothing'})")
        items = [item for item in items if getattr(item, name) in wanted]
    return items


def warn_missing(dataset: str, missing: Sequence[str], what: str = "videos") -> None:
    """One warning for split entries whose files are absent: the count and a few names."""
    if missing:
        shown = ", ".join(sorted(missing)[:5]) + (", ..." if len(missing) > 5 else "")
        log.warning("%s: %d %s named by the split files are missing: %s", dataset, len(missing), what, shown)


def scan_files(folder: Path, suffixes: Sequence[str]) -> list[Path]:
    """Files under ``folder`` (any depth) with one of ``suffixes``, sorted; hidden files skipped."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath) / f for f in filenames
                     if not f.startswith(".") and f.lower().endswith(tuple(suffixes)))
    return sorted(found)


def report_counts(dataset: str, found: Mapping[str, int], official: Mapping[str, int]) -> list[str]:
    """Compare the videos found per part with the official counts; log one line; return the partial parts.

    Args:
        dataset: the name the line starts with.
        found: part (``original/c23``) -> videos found.
        official: part -> the published count. Parts of ``found`` without an official count
            (a synthetic method) are not checked.

    A part with fewer videos than published is *partial*, one with none is *missing*; both are
    named in one warning. A complete dataset gets one info line.
    """
    partial = [f"{part} {found.get(part, 0):,} of {count:,}" for part, count in official.items()
               if found.get(part, 0) < count]
    if partial:
        log.warning("%s: partial download (found of official): %s; running on what is there", dataset,
                    "; ".join(partial))
    else:
        log.info("%s: complete: %s", dataset, ", ".join(f"{part} {n:,}" for part, n in sorted(found.items())))
    return [line.split(" ")[0] for line in partial]


def count_parts(items: Iterable[MediaItem]) -> dict[str, int]:
    """Videos per ``method/compression`` (the parts :func:`report_counts` checks)."""
    found: dict[str, int] = {}
    for item in items:
        part = f"{item.method}/{item.compression}"
        found[part] = found.get(part, 0) + 1
    return found


def per_compression(official: Mapping[str, int], items: Iterable[MediaItem]) -> dict[str, int]:
    """``official`` (per method) for every compression present in ``items``: ``{"original/c23": 1000, ...}``."""
    compressions = sorted({item.compression for item in items})
    return {f"{part}/{comp}": n for comp in compressions for part, n in official.items()}
