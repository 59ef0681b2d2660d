"""One video in, its face crops, box tracks and manifest rows out.

:func:`process_item` is the unit of work a worker process runs: decode the sampled frames,
find the subject's face (or reuse the boxes of the original video a fake was made from),
crop frames and masks with the FaceForensics++ rule, and commit. Outputs of item ``key``
(``dataset/method/compression/video``):

* ``OUT/crops/<key>/<frame:04d>.png`` (+ ``<frame:04d>_mask.png``; with ``all_faces`` the
  other people as ``<frame:04d>_face<k>.png``), written into a temporary folder that is
  renamed into place (:func:`forensics.atomic.atomic_dir`);
* ``OUT/tracks/<key>.json``, the *record*: the sampled frames, every face track's boxes
  (subject first), the manifest rows and the counts. It is written last, atomically, so it is
  the commit: a video is complete exactly when its record exists. A crash at any moment
  leaves either a complete video or one that the next run redoes from scratch.

Fakes reuse their original's boxes: a FaceForensics++ fake is its target video with the
face replaced, frame for frame, so the original's boxes are valid on it, and cropping both
with the same boxes gives pixel-aligned real/fake pairs (what mask-guided methods and the
refiner need). The fake is then sampled at the original's frames.

Every row also carries the subject's five facial landmarks (MTCNN O-Net's, see
:mod:`forensics.media.faces`) in the crop's own pixels (``lm0_x ... lm4_y``, NaN where
unknown), what landmark-based augmentations such as self-blended images need. A fake that
reuses its original's boxes also gets its original's landmarks, not points detected on its
own frame: the pair is pixel-aligned outside the manipulated region, and inside it the
original's points are the ground truth of where the face is, whereas points found on the
fake would follow the forgery (and a fake would need the detector it otherwise never runs).
The record keeps them in frame pixels (``landmarks``, one ``frame -> 10 values`` map per track).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from forensics.atomic import atomic_dir, atomic_write_text
from forensics.data.manifest import LANDMARK_COLUMNS
from forensics.media.crops import CROP_SCALE, CROP_SIZE, crop_face, points_to_crop, read_image, write_png
from forensics.errors import ForensicsError
from forensics.media.faces import MIN_SCORE, THRESHOLDS, box_area, track_faces
from forensics.media.shots import frame_signature, shot_starts
from preprocessing.layouts import MediaItem
from forensics.media.sampling import MODES, sample_indices

log = logging.getLogger(__name__)

SETTINGS_FILE = "settings.json"
CROPS = "crops"
TRACKS = "tracks"
#: Frames decoded, detected and cropped together (bounds a worker's memory on long videos).
CHUNK = 32


@dataclass(frozen=True)
class Settings:
    """Everything that changes the crops: an output folder holds crops of one setting only."""

    crop_size: int = CROP_SIZE
    crop_scale: float = CROP_SCALE
    sampling: str = "even"
    frames: int = 32
    stride: int = 1
    min_face_size: float | None = None
    thresholds: tuple[float, float, float] = THRESHOLDS
    min_score: float = MIN_SCORE
    all_faces: bool = False
    reuse_boxes: bool = True

    def __post_init__(self) -> None:
        if self.sampling not in MODES:
            raise ForensicsError(f"sampling must be one of {', '.join(MODES)}, got {self.sampling!r}")
        if self.crop_size < 8 or self.crop_scale <= 0 or self.frames < 1 or self.stride < 1:
            raise ForensicsError("crop size must be >= 8, crop scale > 0, frames and stride >= 1")
        if len(self.thresholds) != 3 or not all(0 <= t <= 1 for t in self.thresholds):
            raise ForensicsError(f"thresholds must be three numbers in [0, 1], got {self.thresholds}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["thresholds"] = list(self.thresholds)
        return d

    @property
    def asked(self) -> int | None:
        """Frames asked per video (``even``); ``None`` when it depends on the video's length."""
        return self.frames if self.sampling == "even" else None


def check_settings(out: Path, settings: Settings) -> None:
    """Record ``settings`` in ``out``, or refuse if ``out`` was made with other settings.

    Raises:
        ForensicsError: naming every setting that differs, with both values.
    """
    path = out / SETTINGS_FILE
    wanted = settings.to_dict()
    if path.is_file():
        try:
            before = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ForensicsError(f"{path}: unreadable settings file; remove it only if {out} holds no crops") from None
        diff = [f"{k} is {before.get(k)!r} there, {v!r} here" for k, v in wanted.items() if before.get(k) != v]
        if diff:
            raise ForensicsError(f"{out} holds crops made with other settings ({'; '.join(diff)}): "
                                 f"use another --out, or the same settings")
        return
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(wanted, indent=2) + "\n")


@dataclass
class Outcome:
    """What happened to one item; ``rows`` are its manifest rows."""

    key: str
    status: str  # done, skipped, failed
    reason: str = ""
    sampled: int = 0
    decoded: int = 0
    faces: int = 0
    asked: int = 0
    seconds: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)
    #: seconds spent decoding (frames and masks) and detecting; the rest is cropping and writing
    stages: dict[str, float] = field(default_factory=dict)
    #: sampled frames that start a new shot (see :mod:`forensics.media.shots`)
    cuts: list[int] = field(default_factory=list)


class Detector(Protocol):
    """What :func:`process_item` needs of a face detector (:class:`forensics.media.faces.FaceDetector`)."""

    def detect(self, frames: Sequence[np.ndarray], landmarks: bool = False) -> list[np.ndarray]: ...


def crops_dir(out: Path, item: MediaItem) -> Path:
    return out / CROPS / item.key


def record_path(out: Path, key: str) -> Path:
    return out / TRACKS / f"{key}.json"


def read_record(out: Path, key: str) -> dict[str, Any] | None:
    """The committed record of ``key``, or ``None`` if the item is not complete."""
    path = record_path(out, key)
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not (out / CROPS / key).is_dir():
        return None  # crops removed by hand: redo
    return record


def clean_stale(out: Path, item: MediaItem) -> None:
    """Remove temporary folders/files a killed run left for ``item`` (never a committed output)."""
    target = crops_dir(out, item)
    if target.parent.is_dir():
        for tmp in target.parent.glob(f".{target.name}.*.tmp"):
            shutil.rmtree(tmp, ignore_errors=True)
    record = record_path(out, item.key)
    if record.parent.is_dir():
        for tmp in record.parent.glob(f".{record.name}.tmp.*"):
            tmp.unlink(missing_ok=True)


def process_item(item: MediaItem, settings: Settings, out: Path, detector: Detector,
                 original: dict[str, Any] | None = None) -> Outcome:
    """Crop one item and commit it; never raises for a bad input file (the outcome says why).

    Args:
        item: the video (or image group).
        settings: crop, sampling and detection settings.
        out: the output folder.
        detector: face detector (used unless ``original`` gives the boxes).
        original: the committed record of the original video of a fake, whose boxes are reused.
    """
    start = time.perf_counter()
    try:
        if item.is_video:
            outcome = _process_video(item, settings, out, detector, original)
        else:
            outcome = _process_images(item, settings, out, detector)
    except ForensicsError as error:
        outcome = Outcome(item.key, "failed", str(error))
    outcome.seconds = time.perf_counter() - start
    return outcome


def _row(item: MediaItem, video: str, frame: int, path: str, box: np.ndarray, mask: str, face: int,
         points: np.ndarray | None = None, crop: dict[str, Any] | None = None) -> dict[str, Any]:
    """A manifest row; ``points`` are 10 landmark values ``x, y, ...`` in frame pixels (or ``None``)."""
    score = float(box[4]) if len(box) > 4 and not math.isnan(box[4]) else float("nan")
    row = {"path": path, "dataset": item.dataset, "video": video, "frame": int(frame), "label": item.label,
           "method": item.method, "compression": item.compression, "split": item.split,
           "original": item.original, "x0": float(box[0]), "y0": float(box[1]), "x1": float(box[2]),
           "y1": float(box[3]), "score": score, "mask": mask, "face": face}
    in_crop = np.full(10, np.nan)
    if points is not None and crop is not None:
        pts = np.array([np.nan if v is None else v for v in points], np.float64).reshape(5, 2)
        in_crop = points_to_crop(pts, box, crop["size"], crop["scale"]).reshape(10)
    row.update({name: float(v) for name, v in zip(LANDMARK_COLUMNS, in_crop)})
    return row


def _frame_points(dets: np.ndarray) -> np.ndarray:
    """Landmarks (10 values per row) of ``(n, >=15)`` detections; NaN for detectors without them."""
    if dets.shape[1] >= 15:
        return dets[:, 5:15]
    return np.full((len(dets), 10), np.nan)


class _MaskReader:
    """The mask frames at the sampled indices, read in step with the video (grey uint8)."""

    def __init__(self, path: Path | None, indices: Sequence[int], key: str) -> None:
        from forensics.media.video import read_frames

        self._frames = read_frames(path, indices) if path is not None else None
        self._key = key
        self._pending: dict[int, np.ndarray] = {}
        self.seconds = 0.0

    def get(self, index: int) -> np.ndarray | None:
        start = time.perf_counter()
        try:
            return self._get(index)
        finally:
            self.seconds += time.perf_counter() - start

    def _get(self, index: int) -> np.ndarray | None:
        while self._frames is not None and index not in self._pending:
            try:
                i, frame = next(self._frames)
            except StopIteration:
                self._frames = None
                break
            except ForensicsError as error:  # a broken mask must not cost the video
                log.warning("%s: mask unreadable, cropping without it: %s", self._key, error)
                self._frames = None
                break
            self._pending[i] = frame[..., 0] if frame.ndim == 3 else frame
        return self._pending.pop(index, None)


def _process_video(item: MediaItem, settings: Settings, out: Path, detector: Detector,
                   original: dict[str, Any] | None) -> Outcome:
    from forensics.media.video import batches, read_frames, video_info

    num_frames, fps, width, height = video_info(item.path)
    if num_frames <= 0:
        raise ForensicsError(f"{item.path}: video has zero frames")
    reuse = original is not None and bool(original.get("tracks"))
    points: list[dict[int, Any]] = []
    if reuse:
        indices = [i for i in original["sampled"] if i < num_frames]
        tracks = [{int(f): np.array(b, dtype=float) for f, b in t.items()} for t in original["tracks"]]
        # The original's landmarks (see the module docstring); records made before they were kept have none.
        points = [{int(f): p for f, p in t.items()} for t in original.get("landmarks", [])]
    else:
        indices = sample_indices(num_frames, settings.sampling, settings.frames, settings.stride)
    asked = settings.asked if settings.asked is not None else len(indices)
    masks = _MaskReader(item.mask, indices, item.key)
    crop = dict(size=settings.crop_size, scale=settings.crop_scale)
    decoded = 0
    detections: dict[int, np.ndarray] = {}
    signatures: dict[int, np.ndarray] = {}
    rows: list[dict[str, Any]] = []
    rel = f"{CROPS}/{item.key}"
    stages = {"decode": 0.0, "detect": 0.0}
    chunks = batches(read_frames(item.path, indices), CHUNK)
    with atomic_dir(crops_dir(out, item)) as tmp:
        while True:
            tick = time.perf_counter()
            chunk = next(chunks, None)
            stages["decode"] += time.perf_counter() - tick
            if chunk is None:
                break
            decoded += len(chunk)
            if reuse:
                for index, frame in chunk:
                    mask = masks.get(index)
                    for k, track in enumerate(tracks if settings.all_faces else tracks[:1]):
                        if index in track:
                            lm = points[k].get(index) if k < len(points) else None
                            rows.append(_write_crop(tmp, rel, item, index, frame, mask, track[index], k, crop,
                                                    points=lm))
                continue
            tick = time.perf_counter()
            found = detector.detect([frame for _, frame in chunk], landmarks=True)
            stages["detect"] += time.perf_counter() - tick
            for (index, frame), dets in zip(chunk, found):
                mask = masks.get(index)
                signatures[index] = frame_signature(frame)
                # Every detection is cropped now, under a provisional name: the subject is only
                # known once the whole video is tracked, and keeping crops (not frames) in
                # flight bounds memory for the "all frames" sampling of long videos.
                for j, det in enumerate(dets):
                    _write_crop(tmp, rel, item, index, frame, mask, det, None, crop, provisional=j)
                # Columns: box and score, 10 landmark values, provisional crop number.
                detections[index] = np.concatenate([dets[:, :5], _frame_points(dets),
                                                    np.arange(len(dets))[:, None]], axis=1)
        if decoded == 0:
            raise ForensicsError(f"{item.path}: no frame could be decoded")
        cuts = list(original.get("cuts", [])) if reuse else shot_starts(signatures)
        if not reuse:
            tracks, points, rows = _commit_tracks(tmp, rel, item, detections, settings, crop, cuts)
        record = {
            "key": item.key, "video": str(item.path), "mask": str(item.mask) if item.mask else "",
            "num_frames": num_frames, "fps": fps, "width": width, "height": height,
            "sampled": indices, "decoded": decoded,
            "boxes_from": f"original:{original['key']}" if reuse else "detector",
            "cuts": cuts,  # sampled frames that start a new shot: no track crosses one
            "tracks": [{str(f): [None if math.isnan(v) else float(v) for v in box[:5]]
                        for f, box in sorted(t.items())} for t in tracks],
            "landmarks": [{str(f): [None if v is None or math.isnan(v) else float(v) for v in p]
                           for f, p in sorted(t.items())} for t in points],
            "rows": rows,
        }
    faces = len({r["frame"] for r in rows if r["face"] == 0})
    _commit_record(out, item.key, record, len(indices), decoded, faces, asked)
    if decoded < len(indices):
        log.warning("%s: only %d of %d sampled frames could be decoded", item.key, decoded, len(indices))
    stages["decode"] += masks.seconds
    return Outcome(item.key, "done", "", len(indices), decoded, faces, asked, rows=rows, stages=stages, cuts=cuts)


def _write_crop(tmp: Path, rel: str, item: MediaItem, index: int, frame: np.ndarray, mask: np.ndarray | None,
                box: np.ndarray, face: int | None, crop: dict[str, Any], provisional: int | None = None,
                points: Any = None) -> dict[str, Any]:
    name = f"{index:04d}" + (f".{provisional}" if provisional is not None else "") + (f"_face{face}" if face else "")
    write_png(tmp / f"{name}.png", crop_face(frame, box, **crop))
    if mask is not None:
        write_png(tmp / f"{name}_mask.png", crop_face(mask, box, **crop))
    return _row(item, item.video, index, f"{rel}/{name}.png", box,
                f"{rel}/{name}_mask.png" if mask is not None else "", face or 0, points, crop)


def _commit_tracks(tmp: Path, rel: str, item: MediaItem, detections: dict[int, np.ndarray],
                   settings: Settings, crop: dict[str, Any], cuts: Sequence[int] = ()
                   ) -> tuple[list[dict[int, np.ndarray]], list[dict[int, np.ndarray]], list[dict[str, Any]]]:
    """Pick the subject, rename its provisional crops (others' too with ``all_faces``), drop the rest.

    Tracks end at shot cuts (``cuts``): after a cut the subject's track is another track,
    so the subject's crops come from one shot and never silently from two people. Returns the
    tracks' boxes and landmarks (frame pixels) and the kept crops' rows.
    """
    tracks = [t.boxes for t in track_faces(detections, cuts=cuts)]
    rows = []
    for k, track in enumerate(tracks if settings.all_faces else tracks[:1]):
        for index, det in sorted(track.items()):
            j = int(det[15])
            name = f"{index:04d}" + (f"_face{k}" if k else "")
            os.replace(tmp / f"{index:04d}.{j}.png", tmp / f"{name}.png")
            has_mask = (tmp / f"{index:04d}.{j}_mask.png").exists()
            if has_mask:
                os.replace(tmp / f"{index:04d}.{j}_mask.png", tmp / f"{name}_mask.png")
            rows.append(_row(item, item.video, index, f"{rel}/{name}.png", det,
                             f"{rel}/{name}_mask.png" if has_mask else "", k, det[5:15], crop))
    for leftover in tmp.glob("*.*.png"):  # provisional crops of faces that are not kept
        if leftover.name.count(".") == 2:
            leftover.unlink()
    rows.sort(key=lambda r: (r["frame"], r["face"]))
    return [{f: d[:5] for f, d in t.items()} for t in tracks], [{f: d[5:15] for f, d in t.items()} for t in tracks], rows


def _commit_record(out: Path, key: str, record: dict[str, Any], sampled: int, decoded: int, faces: int,
                   asked: int) -> None:
    record.update(sampled_count=sampled, decoded_count=decoded, faces=faces, asked=asked)
    path = record_path(out, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    # allow_nan: scores of boxes given by a dataset are NaN; JSON has no NaN, so they are null.
    atomic_write_text(path, json.dumps(_nan_to_none(record), indent=1) + "\n")


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value


def rows_from_record(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The manifest rows of a committed record (``None`` scores and landmarks back to NaN)."""
    nan_ok = {"score", *LANDMARK_COLUMNS}
    return [{k: (float("nan") if k in nan_ok and v is None else v) for k, v in row.items()}
            for row in record.get("rows", [])]


def _process_images(item: MediaItem, settings: Settings, out: Path, detector: Detector) -> Outcome:
    rows: list[dict[str, Any]] = []
    failed: list[str] = []
    boxes: dict[str, list[float | None]] = {}
    rel = f"{CROPS}/{item.key}"
    crop = dict(size=settings.crop_size, scale=settings.crop_scale)
    with atomic_dir(crops_dir(out, item)) as tmp:
        for image_id, file, given in item.images:
            image = read_image(file)
            if image is None:
                failed.append(f"{image_id}: not a readable image")
                continue
            points = None
            if given is not None:
                box = np.array([*given, np.nan])
            else:
                dets = detector.detect([image], landmarks=True)[0]
                if len(dets) == 0:
                    continue
                best = int(np.argmax(box_area(dets) * dets[:, 4]))
                box, points = dets[best, :5], _frame_points(dets)[best]
            name = Path(image_id).name
            write_png(tmp / f"{name}.png", crop_face(image, box, **crop))
            boxes[image_id] = [None if math.isnan(v) else float(v) for v in box]
            rows.append(_row(item, image_id, 0, f"{rel}/{name}.png", box, "", 0, points, crop))
        record = {"key": item.key, "images": len(item.images), "boxes": boxes, "failed": failed, "rows": rows}
    if failed:
        log.warning("%s: %d unreadable images, e.g. %s", item.key, len(failed), failed[0])
    _commit_record(out, item.key, record, len(item.images), len(item.images) - len(failed), len(rows), len(item.images))
    return Outcome(item.key, "done", "; ".join(failed[:3]), len(item.images), len(item.images) - len(failed),
                   len(rows), len(item.images), rows=rows)
