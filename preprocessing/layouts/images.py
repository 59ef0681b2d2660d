"""Face photos (for refiner pretraining), VGGFace2-style.

VGGFace2 (Cao et al., "VGGFace2: A dataset for recognising faces across pose and age",
FG 2018) stores ``<identity>/<image>.jpg`` and publishes boxes as CSV lines
``NAME_ID, X, Y, W, H`` (``loose_bb_train.csv``), ``NAME_ID`` being the image path without
suffix (``n000002/0001_01``). Give such a file with ``--boxes``: its box is used as the face
box (score empty in the manifest); images it does not cover go through the face detector.

Images are grouped by folder: one group is the unit of work and of resumption, its crops
land in ``crops/images/original/unknown/<folder>/<image>.png`` (``_top`` for images directly
in the root). Every image is a real face (label 0, method ``original``), split ``train``,
frame 0; its id in the manifest is its path without suffix. Crops follow the same rule as
video frames, so both domains match.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from forensics.errors import ForensicsError
from preprocessing.layouts import IMAGE_SUFFIXES, MediaItem, register_layout, scan_files, warn_missing

log = logging.getLogger(__name__)

DATASET = "images"
TOP = "_top"


def read_boxes(path: Path) -> dict[str, tuple[float, float, float, float]]:
    """``NAME_ID -> (x0, y0, x1, y1)`` from a VGGFace2-style ``NAME_ID, X, Y, W, H`` CSV."""
    if not path.is_file():
        raise ForensicsError(f"box file not found: {path}")
    boxes = {}
    with path.open(newline="") as f:
        for n, row in enumerate(csv.reader(f), 1):
            row = [v.strip() for v in row]
            if not row or not any(row) or (n == 1 and row[0].upper() == "NAME_ID"):
                continue
            try:
                x, y, w, h = (float(v) for v in row[1:5])
            except ValueError:
                raise ForensicsError(f"{path}: line {n}: expected 'NAME_ID, X, Y, W, H', got {','.join(row)!r}") from None
            if len(row) < 5 or w <= 0 or h <= 0:
                raise ForensicsError(f"{path}: line {n}: expected 'NAME_ID, X, Y, W, H' with W, H > 0")
            boxes[row[0]] = (x, y, x + w, y + h)
    return boxes


@register_layout("images")
def list_items(root: Path, splits_dir: Path | None = None, boxes: Path | None = None) -> list[MediaItem]:
    """List the images under ``root`` grouped by folder, with boxes from ``boxes`` if given."""
    files = scan_files(root, IMAGE_SUFFIXES)
    if not files:
        raise ForensicsError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) in it")
    known = read_boxes(Path(boxes)) if boxes is not None else {}
    groups: dict[str, list[tuple[str, Path, tuple[float, float, float, float] | None]]] = {}
    for file in files:
        rel = file.relative_to(root)
        image_id = rel.with_suffix("").as_posix()
        group = rel.parent.as_posix() if rel.parent != Path(".") else TOP
        groups.setdefault(group, []).append((image_id, file, known.get(image_id)))
    if known:
        present = {image_id for members in groups.values() for image_id, _, _ in members}
        warn_missing(DATASET, [name for name in known if name not in present], "images")
    return [MediaItem(root / group if group != TOP else root, DATASET, group, 0, "original", "unknown",
                      "train", images=tuple(members)) for group, members in sorted(groups.items())]
