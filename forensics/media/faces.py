"""Face detection and subject tracking on video frames.

Detection is MTCNN (Zhang et al., "Joint Face Detection and Alignment Using Multitask
Cascaded Convolutional Networks", IEEE SPL 2016) with facenet-pytorch's trained networks.
We run its three-stage cascade ourselves, for speed, while keeping its arithmetic, so that
boxes are those facenet-pytorch's ``MTCNN.detect`` returns for the same minimum face size:

* **Downscaled frames, scale from the resolution.** MTCNN slides its first network (P-Net)
  over an image pyramid whose top level is the frame scaled by ``12 / min_face_size``.
  Looking for 20-pixel faces (facenet's default) in a 1080p frame is wasted work for forgery
  datasets, which film one person close up; by default we look for faces of at least 1/8 of
  the frame's short side (:data:`MIN_FACE_FRACTION`: 60 px at 480p, 135 px at 1080p), so the
  pyramid starts at a frame downscaled 4-10x. The scale is snapped onto MTCNN's own pyramid
  (``0.6 * 0.709**k``), so the levels we run are a subset of those of a full-resolution
  ``MTCNN()``, computed the same way, and boxes come out in full-resolution pixels.
* **One integral image per frame.** facenet-pytorch resamples every pyramid level and every
  candidate crop from the full frame (area interpolation, i.e. means over pixel bins); we
  take the same bin means from one integral image per frame (OpenCV, exact integer sums).
* **Batches.** Frames of one video share a size: each pyramid level and each refinement
  stage is one network call for the whole batch.
* **Memory layout.** On CPU the networks run channels-last, where PyTorch's max-pooling and
  convolutions are 2-4x faster than in the default layout (same results up to float rounding).

We tried cheaper pyramids (levels resampled from a half-resolution frame, from one another,
or with OpenCV's area resize): faster, but MTCNN's boxes depend on exactly which pixels P-Net
sees, and one box in ten moved by more than IoU 0.9 from facenet-pytorch's, so they are not
used. On 640x480 frames this cascade is 3-4x faster than facenet-pytorch's ``MTCNN()`` per
frame on one CPU thread (``benchmarks/preprocess.py``).

MTCNN's last stage (O-Net) also places five facial landmarks: both eye centres, the nose tip
and both mouth corners, in facenet-pytorch's order (image-left eye, image-right eye, nose,
image-left mouth corner, image-right mouth corner). ``detect(frames, landmarks=True)`` returns
them beside each box, computed with facenet-pytorch's arithmetic; the boxes are the same
either way.

One face per video is the *subject* (:func:`track_faces`): detections are linked across the
sampled frames into tracks by box position and size, and the track with the largest total
``area x score`` wins. A person crossing the scene for a few frames therefore never replaces
the subject, and frames where only that other person is visible get no subject crop.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

log = logging.getLogger(__name__)

#: Default smallest face searched, as a fraction of the frame's short side.
MIN_FACE_FRACTION = 1 / 8
#: MTCNN's stage thresholds (P-Net, R-Net, O-Net), facenet-pytorch's defaults.
THRESHOLDS = (0.6, 0.7, 0.7)
#: Detections below this final score are dropped before tracking.
MIN_SCORE = 0.9
#: MTCNN's pyramid: first level ``12 / 20`` (20-pixel faces), each level ``FACTOR`` smaller.
TOP_SCALE, FACTOR = 0.6, 0.709
#: O-Net's five landmarks, in the order ``detect(..., landmarks=True)`` returns them.
LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")  # image left/right


def pyramid_scales(height: int, width: int, min_face_size: float | None = None,
                   factor: float = FACTOR) -> list[float]:
    """The pyramid scales (relative to the frame) searched for faces of ``min_face_size`` px and up.

    ``None`` chooses the size from the resolution: :data:`MIN_FACE_FRACTION` of the short
    side, at least 20 px. The first scale is the smallest level of facenet-pytorch's own
    pyramid (``0.6 * factor**k``) that still finds faces of that size.
    """
    short = min(height, width)
    if min_face_size is None:
        min_face_size = max(20.0, short * MIN_FACE_FRACTION)
    wanted = 12.0 / max(float(min_face_size), 12.0)
    # Largest k with 0.6 * factor**k >= wanted (tolerance: float rounding must not skip a level).
    k = max(0, math.floor(math.log(wanted / TOP_SCALE) / math.log(factor) + 1e-9))
    scales, scale = [], TOP_SCALE * factor ** k
    while short * scale >= 12:
        scales.append(scale)
        scale *= factor
    return scales


class FaceDetector:
    """Batched MTCNN on the pyramid levels that matter; boxes in full-resolution pixels.

    Example::

        detector = FaceDetector(device="cpu")
        per_frame = detector.detect([frame0, frame1])   # list of (n_i, 5) arrays
        x0, y0, x1, y1, score = per_frame[0][0]          # largest face first
        with_points = detector.detect([frame0], landmarks=True)[0]  # (n, 15): box, score, 5 x (x, y)
    """

    def __init__(self, device: str = "cpu", min_face_size: float | None = None,
                 thresholds: Sequence[float] = THRESHOLDS, min_score: float = MIN_SCORE,
                 factor: float = FACTOR, batch_size: int = 32) -> None:
        """Args:
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        min_face_size: smallest face searched, in frame pixels; ``None``: from the resolution
            (see :func:`pyramid_scales`).
        thresholds: MTCNN's three stage thresholds.
        min_score: detections scoring below this are dropped.
        factor: MTCNN's pyramid step.
        batch_size: frames per cascade run (bounds memory on large frames).
        """
        import torch
        from facenet_pytorch import MTCNN

        self.device = torch.device(device)
        self.min_face_size = min_face_size
        self.thresholds = tuple(float(t) for t in thresholds)
        self.min_score = float(min_score)
        self.factor = float(factor)
        self.batch_size = int(batch_size)
        mtcnn = MTCNN(device=self.device).eval()
        self._layout = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        self._pnet, self._rnet, self._onet = (net.to(memory_format=self._layout)
                                              for net in (mtcnn.pnet, mtcnn.rnet, mtcnn.onet))

    def detect(self, frames: Sequence[np.ndarray], landmarks: bool = False) -> list[np.ndarray]:
        """Detect faces in RGB uint8 frames (all of one size).

        Args:
            frames: RGB uint8 ``H x W x 3`` arrays of one size.
            landmarks: also return O-Net's five landmarks of each face.

        Returns:
            One ``(n, 5)`` float array per frame: ``x0, y0, x1, y1, score`` in the frame's own
            pixels, largest face first; ``(0, 5)`` when no face is found. With ``landmarks``,
            ``(n, 15)``: then ``x, y`` of the image-left eye, image-right eye, nose, image-left
            and image-right mouth corners (:data:`LANDMARKS`).
        """
        import torch

        columns = 15 if landmarks else 5
        if len(frames) == 0:
            return []
        h, w = frames[0].shape[:2]
        # The integral images of a batch are 12 bytes a pixel: keep them near 256 MB.
        step = max(1, min(self.batch_size, int(256e6 // ((h + 1) * (w + 1) * 12))))
        out: list[np.ndarray] = []
        with torch.inference_mode():
            for start in range(0, len(frames), step):
                for dets in self._cascade(frames[start:start + step]):
                    dets = dets[dets[:, 4] >= self.min_score]
                    out.append(dets[np.argsort(-box_area(dets), kind="stable"), :columns])
        return out

    def _cascade(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        """MTCNN's three stages on frames of one size.

        Follows ``facenet_pytorch.models.utils.detect_face`` step for step (same thresholds,
        regressions and non-maximum suppressions), landmarks included: each returned row is
        ``x0, y0, x1, y1, score`` and 5 landmark ``x, y`` pairs. What differs: which pyramid levels run,
        the networks' memory layout, and how images are resampled. facenet-pytorch resamples
        every pyramid level and every candidate crop with ``interpolate(mode="area")``, i.e.
        means over pixel bins, reading the full frame each time; we take the same bin means
        from one integral image per frame (exact integer sums, one float division): several
        times faster, and equal up to float rounding.
        """
        import torch
        from torchvision.ops.boxes import batched_nms
        from facenet_pytorch.models.utils.detect_face import (batched_nms_numpy, bbreg, generateBoundingBox,
                                                              rerec)

        integral = _integral_images(frames)
        n, h, w = len(frames), frames[0].shape[0], frames[0].shape[1]
        t1, t2, t3 = self.thresholds

        boxes, image_inds = [], []
        for scale in pyramid_scales(h, w, self.min_face_size, self.factor):
            level = _level(integral, int(h * scale + 1), int(w * scale + 1))
            reg, probs = self._pnet(self._to_net(level))
            found, inds = generateBoundingBox(reg, probs[:, 1], scale, t1)
            pick = batched_nms(found[:, :4], found[:, 4], inds, 0.5)
            boxes.append(found[pick])
            image_inds.append(inds[pick])
        if not boxes:
            return [np.zeros((0, 15)) for _ in range(n)]
        boxes, image_inds = torch.cat(boxes), torch.cat(image_inds)
        pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
        boxes, image_inds = boxes[pick], image_inds[pick]
        regw, regh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        boxes = torch.stack([boxes[:, 0] + boxes[:, 5] * regw, boxes[:, 1] + boxes[:, 6] * regh,
                             boxes[:, 2] + boxes[:, 7] * regw, boxes[:, 3] + boxes[:, 8] * regh,
                             boxes[:, 4]], dim=1)
        boxes = rerec(boxes)

        boxes, image_inds = _inside(boxes, image_inds, h, w)
        if len(boxes):  # R-Net
            reg, probs = self._rnet(self._crops(integral, boxes, image_inds, 24))
            keep = probs[:, 1] > t2
            boxes = torch.cat([boxes[keep, :4], probs[keep, 1:2]], dim=1)
            image_inds, reg = image_inds[keep], reg[keep]
            pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
            boxes, image_inds = rerec(bbreg(boxes[pick], reg[pick])), image_inds[pick]
            boxes, image_inds = _inside(boxes, image_inds, h, w)
        points = torch.full((len(boxes), 10), float("nan"), device=boxes.device)
        if len(boxes):  # O-Net
            reg, points, probs = self._onet(self._crops(integral, boxes, image_inds, 48))
            keep = probs[:, 1] > t3
            boxes, points = boxes[keep, :4], points[keep]
            # Landmarks are fractions of the box O-Net was given (before its regression),
            # 1-based like the boxes: facenet-pytorch's arithmetic.
            w_i, h_i = boxes[:, 2:3] - boxes[:, 0:1] + 1, boxes[:, 3:4] - boxes[:, 1:2] + 1
            xs = w_i * points[:, :5] + boxes[:, 0:1] - 1
            ys = h_i * points[:, 5:] + boxes[:, 1:2] - 1
            points = torch.stack([xs, ys], dim=2).reshape(-1, 10)
            boxes = bbreg(torch.cat([boxes, probs[keep, 1:2]], dim=1), reg[keep])
            image_inds = image_inds[keep]
            pick = batched_nms_numpy(boxes[:, :4], boxes[:, 4], image_inds, 0.7, "Min")
            boxes, image_inds, points = boxes[pick], image_inds[pick], points[pick]
        boxes = torch.cat([boxes[:, :5], points], dim=1)
        boxes, image_inds = boxes.cpu().numpy().astype(float), image_inds.cpu().numpy()
        return [boxes[image_inds == i] for i in range(n)]

    def _to_net(self, images: np.ndarray):
        """``K x h x w x 3`` float32 pixel means -> a normalised network input."""
        import torch

        x = torch.from_numpy(images).to(self.device).permute(0, 3, 1, 2)
        return ((x - 127.5) * 0.0078125).contiguous(memory_format=self._layout)

    def _crops(self, integral: np.ndarray, boxes, image_inds, size: int):
        """``size`` x ``size`` crops of ``boxes``, clipped and resampled as MTCNN does."""
        h, w = integral.shape[1] - 1, integral.shape[2] - 1
        b = boxes[:, :4].trunc().int().cpu().numpy()
        # facenet-pytorch's pad(): 1-based inclusive box, clipped to the frame.
        x0, y0 = np.maximum(b[:, 0], 1) - 1, np.maximum(b[:, 1], 1) - 1
        x1, y1 = np.minimum(b[:, 2], w), np.minimum(b[:, 3], h)
        rows = _bins(y0[:, None], y1[:, None], size)  # 2 x K x size
        cols = _bins(x0[:, None], x1[:, None], size)
        return self._to_net(_bin_means(integral, image_inds.cpu().numpy(), rows, cols))


def _integral_images(frames: Sequence[np.ndarray]) -> np.ndarray:
    """``N x (H+1) x (W+1) x 3`` integral images (exact: int32, or float64 past 8 Mpixel)."""
    h, w = frames[0].shape[:2]
    depth, dtype = (cv2.CV_32S, np.int32) if h * w * 255 < 2**31 else (cv2.CV_64F, np.float64)
    out = np.empty((len(frames), h + 1, w + 1, 3), dtype)
    for i, frame in enumerate(frames):
        out[i] = cv2.integral(np.ascontiguousarray(frame), sdepth=depth)
    return out


def _bins(start: int | np.ndarray, end: int | np.ndarray, size: int) -> np.ndarray:
    """``[starts, ends]`` (2 x size) of adaptive average pooling's bins over ``[start, end)``.

    Bin ``i`` of ``n`` pixels into ``size`` is ``[floor(i n / size), ceil((i + 1) n / size))``,
    the rule of PyTorch's ``adaptive_avg_pool2d`` (``interpolate(mode="area")``).
    """
    n = end - start
    i = np.arange(size)
    return np.stack([start + (i * n) // size, start - ((-(i + 1) * n) // size)])


def _level(integral: np.ndarray, height: int, width: int) -> np.ndarray:
    """One pyramid level (``N x height x width x 3`` float32) of every frame, from integral images."""
    h, w = integral.shape[1] - 1, integral.shape[2] - 1
    rows, cols = _bins(0, h, height), _bins(0, w, width)
    # Rows first (whole-row copies), then columns of the much smaller result.
    strips = np.take(integral, rows[1], axis=1) - np.take(integral, rows[0], axis=1)
    sums = np.take(strips, cols[1], axis=2) - np.take(strips, cols[0], axis=2)
    area = ((rows[1] - rows[0])[:, None] * (cols[1] - cols[0])[None, :]).astype(np.float32)
    return sums.astype(np.float32) / area[None, :, :, None]


def _bin_means(integral: np.ndarray, image_inds: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Means over row-bin x column-bin rectangles (one per crop), from integral images.

    Args:
        integral: ``N x (H+1) x (W+1) x C`` integral images.
        image_inds: image of each crop (``K``).
        rows, cols: ``2 x K x r`` and ``2 x K x c`` bin starts and ends.

    Returns:
        ``K x r x c x C`` float32 means.
    """
    n, h1, w1, c = integral.shape
    flat = integral.reshape(-1, c)  # one row of C values per pixel: gathers copy whole rows
    base = np.asarray(image_inds)[:, None, None] * (h1 * w1)
    r0, r1 = rows[0][:, :, None] * w1, rows[1][:, :, None] * w1
    c0, c1 = cols[0][:, None, :], cols[1][:, None, :]
    sums = (flat[base + r1 + c1] - flat[base + r0 + c1]) - (flat[base + r1 + c0] - flat[base + r0 + c0])
    area = ((rows[1] - rows[0])[:, :, None] * (cols[1] - cols[0])[:, None, :]).astype(np.float32)
    return sums.astype(np.float32) / area[..., None]


def _inside(boxes, image_inds, h: int, w: int):
    """Drop boxes entirely outside the frame (facenet-pytorch would misalign its crops on them)."""
    b = boxes[:, :4].trunc()
    keep = (b[:, 2] >= b[:, 0].clamp(min=1)) & (b[:, 3] >= b[:, 1].clamp(min=1)) & (b[:, 0] <= w) \
        & (b[:, 1] <= h) & (b[:, 2] >= 1) & (b[:, 3] >= 1)
    return boxes[keep], image_inds[keep]


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Areas of ``(n, >=4)`` boxes ``x0, y0, x1, y1``."""
    boxes = np.atleast_2d(np.asarray(boxes, dtype=float))
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes ``x0, y0, x1, y1``."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass
class FaceTrack:
    """One face followed across frames: ``boxes[frame] = (x0, y0, x1, y1, score)``."""

    boxes: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def weight(self) -> float:
        """Total ``area x score`` over the frames: how much this face is *the* face of the video."""
        return float(sum(box_area(d)[0] * d[4] for d in self.boxes.values()))

    def last(self) -> np.ndarray:
        return self.boxes[max(self.boxes)]


def box_distance(a: Sequence[float], b: Sequence[float]) -> float:
    """Distance between the centres of two boxes, in units of their mean size."""
    size = (max(a[2] - a[0], a[3] - a[1]) + max(b[2] - b[0], b[3] - b[1])) / 2
    dx = (a[0] + a[2] - b[0] - b[2]) / 2
    dy = (a[1] + a[3] - b[1] - b[3]) / 2
    return float(math.hypot(dx, dy) / size) if size > 0 else float("inf")


def _size_ratio(a: Sequence[float], b: Sequence[float]) -> float:
    sa, sb = max(a[2] - a[0], a[3] - a[1]), max(b[2] - b[0], b[3] - b[1])
    return max(sa, sb) / max(min(sa, sb), 1e-9)


def track_faces(detections: Mapping[int, np.ndarray], max_distance: float = 1.0,
                max_size_ratio: float = 1.5, cuts: Iterable[int] = ()) -> list[FaceTrack]:
    """Link per-frame detections into tracks; the subject (largest total area x score) first.

    Frames are visited in increasing index order. A detection continues the track whose most
    recent box is nearest (centre distance in box sizes, :func:`box_distance`) if that is at
    most ``max_distance`` and the sizes differ by at most ``max_size_ratio``; closest pairs
    are linked first, one detection per track and frame; anything else starts a new track.
    Sampled frames can be far apart (32 frames of a 10-minute video are 20 s apart), so
    overlap alone would cut one person into many tracks: a centre distance tolerates motion
    while a second person, a face or more away, still gets a track of their own. A track
    keeps its last box across frames where its face was missed.

    Args:
        detections: frame index -> ``(n, 5)`` array from :meth:`FaceDetector.detect` (extra
            columns after the score are carried along unchanged).
        max_distance: largest centre movement, in face sizes, between a track's boxes.
        max_size_ratio: largest size change between a track's boxes.
        cuts: frames that start a new shot (:func:`forensics.media.shots.shot_starts`): no
            track continues across one, since the face where the subject was may be
            another person's after a cut.
    """
    tracks: list[FaceTrack] = []
    open_from = 0  # tracks before this index ended at a cut
    cuts = sorted(cuts)
    previous = None
    for frame in sorted(detections):
        if previous is not None and any(previous < c <= frame for c in cuts):
            open_from = len(tracks)
        previous = frame
        dets = np.asarray(detections[frame], dtype=float)
        dets = dets.reshape(-1, dets.shape[-1] if dets.ndim == 2 else 5)
        pairs = sorted((box_distance(t.last(), d), ti, di) for ti, t in enumerate(tracks) if ti >= open_from
                       for di, d in enumerate(dets) if _size_ratio(t.last(), d) <= max_size_ratio)
        used_t: set[int] = set()
        used_d: set[int] = set()
        for distance, ti, di in pairs:
            if distance > max_distance:
                break
            if ti in used_t or di in used_d:
                continue
            tracks[ti].boxes[frame] = dets[di]
            used_t.add(ti)
            used_d.add(di)
        for di, d in enumerate(dets):
            if di not in used_d:
                tracks.append(FaceTrack({frame: d}))
    return sorted(tracks, key=lambda t: t.weight, reverse=True)


def subject_boxes(detections: Mapping[int, np.ndarray], cuts: Iterable[int] = (),
                  **options: float) -> dict[int, np.ndarray]:
    """The subject's box in each frame where it was found (see :func:`track_faces`; ``cuts`` end tracks)."""
    tracks = track_faces(detections, cuts=cuts, **options)
    return dict(tracks[0].boxes) if tracks else {}
