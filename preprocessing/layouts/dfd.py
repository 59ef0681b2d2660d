"""DeepFakeDetection (Google and Jigsaw, "Contributing Data to Deepfake Detection Research",
2019), distributed inside the FaceForensics++ download, as dataset ``dfd``.

::

    original_sequences/actors/<raw|c23|c40>/videos/01__walking_down_street.mp4         363 reals
    manipulated_sequences/DeepFakeDetection/<comp>/videos/01_02__walking_down_street__YVGY8LOK.mp4   3,068 fakes
    manipulated_sequences/DeepFakeDetection/masks/videos/<same name>.mp4              (where published)

Paid actors filmed in 28 scenes; the fakes swap one actor's face onto another's scene. They
are not FaceForensics++'s YouTube videos and the FaceForensics++ split files do not name them,
so this is a dataset of its own, used whole as a cross-dataset **test** set (DeepfakeBench,
the literature): every video is split ``test``.

The fake ``01_02__walking_down_street__YVGY8LOK`` is actor 01's scene with actor 02's face,
made from actor 01's real video ``01__walking_down_street``; that is its ``original`` when
the file is there (a fake of a scene whose real video is not in the download gets none).
"""

from __future__ import annotations

import logging
from pathlib import Path

from forensics.errors import ForensicsError
from preprocessing.layouts import MediaItem, count_parts, per_compression, register_layout, report_counts
from preprocessing.layouts.ffpp import DFD, compression_dirs, videos_in

log = logging.getLogger(__name__)

DATASET = "dfd"
METHOD = DFD
ACTORS = Path("original_sequences", "actors")
FAKES = Path("manipulated_sequences", DFD)
#: Videos per compression in the FaceForensics++ download.
OFFICIAL = {"original": 363, METHOD: 3068}


def dfd_original(stem: str) -> str:
    """``01_02__walking_down_street__ABCD1234`` -> ``01__walking_down_street`` (``""`` if not of that form)."""
    parts = stem.split("__")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        return ""
    return f"{parts[0].split('_')[0]}__{parts[1]}"


@register_layout("dfd")
def list_items(root: Path, splits_dir: Path | None = None) -> list[MediaItem]:
    """List the DeepFakeDetection videos of a FaceForensics++ download; every one is ``test``.

    Raises:
        ForensicsError: the root lacks ``original_sequences/actors`` or the DeepFakeDetection fakes.
    """
    for part in (ACTORS, FAKES):
        if not compression_dirs(root / part):
            raise ForensicsError(f"{root / part}: not found or has no <comp>/videos/ folder; --layout dfd needs "
                                 f"{ACTORS}/<comp>/videos and {FAKES}/<comp>/videos (FaceForensics++'s download "
                                 f"script, dataset DeepFakeDetection)")
    if splits_dir is not None:
        log.warning("dfd: --splits is ignored: DeepFakeDetection has no split files, every video is test")
    items = [MediaItem(video, DATASET, video.stem, 0, "original", comp_dir.name, "test")
             for comp_dir in compression_dirs(root / ACTORS) for video in videos_in(comp_dir / "videos")]
    reals = {item.video for item in items}
    mask_dir = root / FAKES / "masks" / "videos"
    unpaired = 0
    for comp_dir in compression_dirs(root / FAKES):
        for video in videos_in(comp_dir / "videos"):
            original = dfd_original(video.stem)
            if original not in reals:
                unpaired += 1
                original = ""
            mask = mask_dir / video.name
            items.append(MediaItem(video, DATASET, video.stem, 1, METHOD, comp_dir.name, "test", original,
                                   mask if mask.is_file() else None))
    if unpaired:
        log.info("dfd: %d fakes have no real video of their scene in the download (original left empty)", unpaired)
    report_counts(DATASET, count_parts(items), per_compression(OFFICIAL, items))
    return items
