"""``forensics refiner video``: refine the face in every frame of a video and re-encode it.

For users who need refined *videos* rather than crops. Each frame's face is found the way
preprocessing finds it (MTCNN, then the subject's track over the whole video, so a stray
detection is not refined), cropped by the crop rule (:func:`forensics.media.crops.crop_face`),
refined like ``forensics refiner apply`` refines a crop, and pasted back: only the refiner's
*correction* (refined minus crop) goes back into the frame, resized to the crop square and
faded out towards the square's border, so the frame keeps its own pixels wherever the refiner
changes nothing and no seam marks the square. Frames without a face are written unchanged.

Two passes over the video (detect, then refine and encode) keep memory to a batch of frames
whatever the video's length. Each output appears atomically (:class:`forensics.media.video.VideoWriter`);
an existing output is kept unless ``overwrite``, so an interrupted batch of videos resumes.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from forensics.errors import ForensicsError

log = logging.getLogger(__name__)

#: Fraction of the crop square's side over which the pasted correction fades to zero.
FADE = 0.15


@functools.lru_cache(maxsize=64)
def fade_window(side: int, fade: float = FADE) -> np.ndarray:
    """``side x side`` float32 weights (read-only, cached: the face's square changes size little
    from frame to frame): 1 inside, a raised-cosine ramp to 0 at the border."""
    ramp = max(1, int(round(side * fade)))
    edge = np.minimum(np.arange(side), np.arange(side)[::-1]).astype(np.float32)
    profile = np.where(edge >= ramp, 1.0, 0.5 - 0.5 * np.cos(np.pi * (edge + 0.5) / ramp)).astype(np.float32)
    window = np.outer(profile, profile)
    window.setflags(write=False)
    return window


def paste_correction(frame: np.ndarray, box: Sequence[float], correction: np.ndarray,
                     scale: float) -> np.ndarray:
    """Add ``correction`` (a crop-sized float ``S x S x 3`` difference) back into ``frame``.

    The correction is resized to the crop square of ``box`` (the inverse of the crop rule),
    weighted by :func:`fade_window`, and added where the square lies inside the frame.
    """
    import cv2

    from forensics.media.crops import crop_square

    left, top, side = crop_square(box, scale)
    delta = cv2.resize(correction, (side, side), interpolation=cv2.INTER_LINEAR) * fade_window(side)[..., None]
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(left + side, w), min(top + side, h)
    out = frame.copy()
    if x1 > x0 and y1 > y0:
        region = out[y0:y1, x0:x1].astype(np.float32) + delta[y0 - top:y1 - top, x0 - left:x1 - left]
        out[y0:y1, x0:x1] = np.clip(np.round(region), 0, 255).astype(np.uint8)
    return out


def refine_video(refiner, detector, path: str | os.PathLike, out: str | os.PathLike, *, crop_size: int,
                 crop_scale: float, crf: int, batch_size: int = 32) -> dict[str, int]:
    """Write ``out``: ``path`` with the subject's face refined in every frame where it is found.

    Args:
        refiner: a :class:`refiner.apply.LoadedRefiner`.
        detector: a :class:`forensics.media.faces.FaceDetector`.
        crop_size, crop_scale: the crop rule the refiner's training crops were made with.
        crf: libx264 constant rate factor of the output.

    Returns:
        ``frames`` (written) and ``refined`` (frames whose face was refined).
    """
    import torch

    from forensics.media.crops import crop_face
    from forensics.media.faces import subject_boxes
    from forensics.media.video import VideoWriter, batches, read_frames, video_info

    path, out = Path(path), Path(out)
    detections: dict[int, np.ndarray] = {}
    for batch in batches(read_frames(path), batch_size):
        detections.update(zip((i for i, _ in batch), detector.detect([f for _, f in batch])))
    boxes = subject_boxes(detections)
    fps = video_info(path)[1]
    frames = refined = 0
    with VideoWriter(out, fps=max(1, round(fps)), crf=crf) as writer:
        for batch in batches(read_frames(path), batch_size):
            found = [(i, f) for i, f in batch if i in boxes]
            crops = [torch.from_numpy(crop_face(f, boxes[i][:4], crop_size, crop_scale)).permute(2, 0, 1)
                     for i, f in found]
            pasted = {}
            for (i, frame), crop, image in zip(found, crops, refiner.refine(crops) if crops else []):
                correction = (image.int() - crop.int()).permute(1, 2, 0).numpy().astype(np.float32)
                pasted[i] = paste_correction(frame, boxes[i][:4], correction, crop_scale)
            for i, frame in batch:
                writer.write(pasted.get(i, frame))
            frames += len(batch)
            refined += len(pasted)
    return {"frames": frames, "refined": refined}


def refine_videos(checkpoint: str | os.PathLike, videos: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
                  crop_size: int | None = None, crop_scale: float | None = None, crf: int = 23,
                  batch_size: int = 32, device: str = "auto", overwrite: bool = False) -> list[Path]:
    """Refine each video into ``out_dir/<name>.mp4`` (see the module docstring); returns the outputs.

    Raises:
        ForensicsError: not a refiner checkpoint, a missing video, or an output folder that is a file.
    """
    from forensics.media.crops import CROP_SCALE, CROP_SIZE
    from forensics.media.faces import FaceDetector
    from refiner.apply import LoadedRefiner

    missing = [str(v) for v in videos if not Path(v).is_file()]
    if missing:
        raise ForensicsError(f"no such video: {', '.join(missing)}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ForensicsError(f"--out {out_dir} exists and is not a folder")
    refiner = LoadedRefiner(checkpoint, device)
    detector = FaceDetector(device=str(refiner.device))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for video in map(Path, videos):
        out = out_dir / f"{video.stem}.mp4"
        if out.exists() and not overwrite:
            log.info("%s: already there, kept (--overwrite to redo)", out)
        else:
            counts = refine_video(refiner, detector, video, out, crop_size=crop_size or CROP_SIZE,
                                  crop_scale=crop_scale or CROP_SCALE, crf=crf, batch_size=batch_size)
            log.info("%s -> %s: face refined in %d of %d frames", video, out, counts["refined"], counts["frames"])
        written.append(out)
    return written
