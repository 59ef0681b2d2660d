"""The FaceForensics++ crop rule: a face box in, a square face crop out.

Rössler et al., "FaceForensics++: Learning to Detect Manipulated Facial Images" (ICCV 2019)
crop a square of side ``1.3 x max(w, h)`` centred on the detected face box and resize it to
the network input. Their script (``detect_from_video.py``, ``get_boundingbox``) clamps the
square to the frame, which *shifts* the face off-centre (or shrinks the square) whenever the
face is near a border. We pad instead: the face stays centred and keeps its scale, and the part
of the square outside the frame is black. Preprocessing, ``forensics predict`` and the face
image layout all crop through :func:`crop_face`, so training and inference see the same
geometry.

Crops are written as lossless PNG (:func:`write_png`): JPEG would add its own compression
traces, and compression traces are what forgery detectors learn.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import numpy as np

#: Side of the crop square relative to the larger side of the face box (FaceForensics++).
CROP_SCALE = 1.3
#: Output side in pixels (the input size of the usual ImageNet backbones).
CROP_SIZE = 224


def crop_square(box: Sequence[float], scale: float = CROP_SCALE) -> tuple[int, int, int]:
    """The integer square ``(x0, y0, side)`` the crop rule takes around ``box``.

    Args:
        box: face box ``(x0, y0, x1, y1)`` in frame pixels.
        scale: side of the square relative to ``max(w, h)`` of the box.

    The square is centred on the box centre (to the nearest pixel) and may extend past the
    frame; :func:`crop_face` pads what lies outside.
    """
    x0, y0, x1, y1 = (float(v) for v in box[:4])
    side = max(1, int(round(max(x1 - x0, y1 - y0) * scale)))
    left = int(round((x0 + x1) / 2 - side / 2))
    top = int(round((y0 + y1) / 2 - side / 2))
    return left, top, side


def crop_face(image: np.ndarray, box: Sequence[float], size: int = CROP_SIZE,
              scale: float = CROP_SCALE, interpolation: int | None = None) -> np.ndarray:
    """Crop the square around ``box`` from ``image``, padding outside the frame, resized to ``size``.

    Args:
        image: ``HxWx3`` or ``HxW`` uint8 frame (a mask crops the same way).
        box: face box ``(x0, y0, x1, y1)`` in ``image`` pixels.
        size: output side.
        scale: crop square side relative to ``max(w, h)`` of the box.
        interpolation: OpenCV flag; default area averaging when shrinking (no aliasing) and
            bilinear when enlarging.

    Returns:
        ``size x size`` (x channels) array of ``image``'s dtype.
    """
    left, top, side = crop_square(box, scale)
    h, w = image.shape[:2]
    # Only the part of the square inside the frame is copied; the rest becomes a border.
    # Slicing plus one resize is as fast as a single warpAffine, and unlike warpAffine it
    # can average pixels when shrinking (INTER_AREA): a bilinear 3x shrink aliases, and
    # resampling artefacts are a signal detectors would learn.
    ix0, iy0 = max(left, 0), max(top, 0)
    ix1, iy1 = min(left + side, w), min(top + side, h)
    if ix1 <= ix0 or iy1 <= iy0:
        patch = np.zeros((side, side) + image.shape[2:], image.dtype)
    else:
        patch = image[iy0:iy1, ix0:ix1]
        pads = (iy0 - top, top + side - iy1, ix0 - left, left + side - ix1)
        if any(pads):
            patch = cv2.copyMakeBorder(patch, *pads, cv2.BORDER_CONSTANT, value=0)
    if interpolation is None:
        interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    if side == size:
        return np.ascontiguousarray(patch)
    return cv2.resize(patch, (size, size), interpolation=interpolation)


def points_to_crop(points: np.ndarray, box: Sequence[float], size: int = CROP_SIZE,
                   scale: float = CROP_SCALE) -> np.ndarray:
    """Frame-pixel points ``(..., 2)`` to the pixels of the crop :func:`crop_face` makes of ``box``.

    Pixel centres map onto pixel centres, as ``cv2.resize`` maps them; points may fall outside
    ``[0, size)`` (a landmark outside the crop square) and NaN stays NaN.
    """
    left, top, side = crop_square(box, scale)
    points = np.asarray(points, dtype=np.float64)
    factor = size / side
    return (points - np.array([left, top], np.float64) + 0.5) * factor - 0.5


def write_png(path: str | os.PathLike, image: np.ndarray, compression: int = 1) -> None:
    """Write an RGB (or grey) uint8 image as lossless PNG.

    ``compression`` is zlib's level (0-9); every level is lossless. zlib runs Huffman coding
    only (no LZ77 string matching: on camera images matching finds little) after PNG's "up"
    filter on every row (instead of a per-row adaptive choice, mostly Paeth). Decoding is
    what a training loader pays for every crop of every epoch: on 224x224 synthetic c23 crops
    this writes files of ~70 KB (the adaptive filter: ~58 KB) that decode 1.7x faster
    (0.6 ms vs 1.05 ms a crop) and encode 2x faster. The write is not atomic by itself:
    preprocessing writes a video's crops into a folder made by
    :func:`forensics.atomic.atomic_dir`, which is.
    """
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    params = [cv2.IMWRITE_PNG_COMPRESSION, int(compression),
              cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]
    if hasattr(cv2, "IMWRITE_PNG_FILTER"):  # newer OpenCV builds; older ones choose per row
        params += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]
    if not cv2.imwrite(str(path), bgr, params):
        raise OSError(f"cannot write {path}")


def read_image(path: str | os.PathLike) -> np.ndarray | None:
    """Read an image file as RGB uint8, or ``None`` if it is not a readable image."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
