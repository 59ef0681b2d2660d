"""Shot boundaries from colour histograms: where a video cuts to another shot.

In-the-wild footage (interviews, news: Celeb-DF's and DFDC's sources) cuts between shots,
and another person can appear where the subject was, at the same position and size; a
tracker linking faces by position alone (:func:`forensics.media.faces.track_faces`) would
then carry the subject's track onto them. A cut changes the colours of the whole frame at
once, so the classic test of shot boundary detection, a distance between the colour
histograms of two frames (Zhang, Kankanhalli and Smoliar, "Automatic partitioning of
full-motion video", Multimedia Systems 1993; PySceneDetect's ``HistogramDetector``), is
enough: a cut is where consecutive *sampled* frames differ by more than :data:`CUT_DISTANCE`.

The frames compared are the sampled ones, so with sparse sampling (32 frames of a long
video) a slow change of scene between two samples reads as a cut too; that only ends a
track early, never joins two people. A cut between two shots of the same colours (two
people in one studio) is missed: then tracking behaves as without this test.
"""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np

#: Bhattacharyya distance between HSV histograms above which two frames are in different shots.
#: Consecutive frames of one shot of the synthetic videos differ by < 0.12, different videos by > 0.8.
CUT_DISTANCE = 0.5
#: Frames are shrunk to this size first: histograms need no detail, and it bounds the cost.
THUMBNAIL = (64, 48)
#: Hue, saturation, value bins.
BINS = (8, 4, 4)


def frame_signature(frame: np.ndarray) -> np.ndarray:
    """The normalised HSV colour histogram of an RGB uint8 frame (float32 vector)."""
    small = cv2.resize(frame, THUMBNAIL, interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, list(BINS), [0, 180, 0, 256, 0, 256])
    return cv2.normalize(hist, hist).flatten()


def shot_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Bhattacharyya distance of two signatures: 0 same colours, 1 disjoint."""
    return float(cv2.compareHist(a, b, cv2.HISTCMP_BHATTACHARYYA))


def shot_starts(signatures: Mapping[int, np.ndarray], threshold: float = CUT_DISTANCE) -> list[int]:
    """Frames (in increasing order) that start a new shot; the first frame is not counted.

    Args:
        signatures: frame index -> :func:`frame_signature` of the sampled frames.
        threshold: the distance above which consecutive sampled frames are in different shots.
    """
    frames = sorted(signatures)
    return [b for a, b in zip(frames, frames[1:]) if shot_distance(signatures[a], signatures[b]) > threshold]
