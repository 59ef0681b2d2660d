"""Heat maps on images: a 0..1 map coloured and blended into a crop, or into the frame it came from.

Used for Grad-CAM explanations (:mod:`forensics.training.gradcam`): the colours go where the
map is high and nowhere else, so the face stays recognisable under them.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def heat_colours(cam: np.ndarray) -> np.ndarray:
    """A 0..1 map as RGB uint8 colours (OpenCV's JET: blue cold, red hot)."""
    return cv2.cvtColor(cv2.applyColorMap(np.uint8(np.clip(cam, 0, 1) * 255), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """``image`` (RGB uint8) with the heat map blended in where the map is high.

    The blend weight is ``alpha x map``: regions the detector ignores stay as they are, so the
    face is still recognisable under the colours.
    """
    if cam.shape[:2] != image.shape[:2]:
        cam = cv2.resize(cam, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    weight = (alpha * np.clip(cam, 0, 1))[..., None]
    return np.uint8(np.round((1 - weight) * image + weight * heat_colours(cam)))


def blend_into_frame(frame: np.ndarray, cam: np.ndarray, box: Sequence[float], scale: float,
                     alpha: float = 0.6) -> np.ndarray:
    """``frame`` with a crop's heat map blended back where the crop came from.

    The crop was the square of :func:`forensics.media.crops.crop_square` around ``box``
    (``scale`` x its larger side); the map is resized to that square and the part inside
    the frame is blended in (in place; ``frame`` is returned).
    """
    from forensics.media.crops import crop_square

    left, top, side = crop_square(box, scale)
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(left + side, w), min(top + side, h)
    if x1 <= x0 or y1 <= y0:
        return frame
    square = cv2.resize(cam, (side, side), interpolation=cv2.INTER_LINEAR)
    part = square[y0 - top:y1 - top, x0 - left:x1 - left]
    frame[y0:y1, x0:x1] = overlay(frame[y0:y1, x0:x1], part, alpha)
    return frame
