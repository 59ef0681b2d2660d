"""A labelled keypoint set made from the project's synthetic faces (tests can't download Kaggle's).

Each face is one of the synthetic identities of :mod:`forensics.synth.faces` (the astronaut
and colourised LFW crops, bundled with scikit-image), rendered to ``size x size`` grayscale
(96x96, as Kaggle's) over a blurred background of :mod:`forensics.synth.render`, with a random
rotation, scale and shift, lighting and sensor noise. The labels are MTCNN's five landmarks
(Zhang et al., IEEE SPL 2016; :meth:`forensics.media.faces.FaceDetector.detect` with
``landmarks=True``): detected once per identity on its full-resolution patch, then carried
through the very affine map that renders each face, so they are exact for the image drawn
and no detector runs per sample. They are written under Kaggle's names
(:data:`~keypoints.table.FIVE_KEYPOINTS`, the subject's left and right): MTCNN's
image-left eye is the subject's right eye.

The CSV is Kaggle's format plus two columns: ``identity`` and ``split``. Splits are by
identity (about 70/15/15 %), so validation and test faces are people never seen in training.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from forensics.errors import ForensicsError
from keypoints.table import FIVE_KEYPOINTS

if TYPE_CHECKING:
    from forensics.media.faces import FaceDetector
    from forensics.synth.faces import Identity

log = logging.getLogger(__name__)

#: MTCNN landmark index of each of :data:`FIVE_KEYPOINTS` (MTCNN: image-left eye, image-right
#: eye, nose, image-left mouth corner, image-right mouth corner; Kaggle: the subject's sides).
_FROM_MTCNN = [1, 0, 2, 4, 3]
FILE_NAME = "keypoints.csv"


def identity_landmarks(identities: Sequence[Identity], detector: FaceDetector | None = None
                       ) -> list[np.ndarray | None]:
    """The five landmarks (``5 x 2``, :data:`FIVE_KEYPOINTS` order) of each identity's patch, or ``None`` where MTCNN finds no face."""
    from forensics.media.faces import FaceDetector, box_iou
    from forensics.synth.faces import FACE_BOX

    detector = detector or FaceDetector()
    out: list[np.ndarray | None] = []
    for identity in identities:
        grey = np.float32(128.0)
        a = identity.alpha[..., None]
        image = np.clip(identity.rgb * a + grey * (1 - a), 0, 255).astype(np.uint8)
        found = detector.detect([image], landmarks=True)[0]
        best = max(found, key=lambda d: box_iou(d[:4], FACE_BOX), default=None)
        if best is None or box_iou(best[:4], FACE_BOX) < 0.5:
            log.warning("identity %s: MTCNN finds no face on its patch; left out", identity.name)
            out.append(None)
            continue
        out.append(best[5:].reshape(5, 2)[_FROM_MTCNN])
    return out


def identity_splits(n: int) -> list[str]:
    """``train``/``val``/``test`` per identity: the last ~15 % test, the ~15 % before val (at least one each)."""
    n_val = n_test = max(1, round(0.15 * n))
    if n - n_val - n_test < 1:
        raise ForensicsError(f"{n} identities are too few for three splits (need at least 3)")
    return ["train"] * (n - n_val - n_test) + ["val"] * n_val + ["test"] * n_test


def render_face(identity: Identity, landmarks: np.ndarray, size: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One ``size x size`` uint8 grayscale face and its ``5 x 2`` keypoints.

    The face box (brows to chin) is 60-85 % of the side, rotated by up to 15 degrees and
    shifted by up to 8 % of the side: the spread of faces in Kaggle's crops.
    """
    import cv2

    from forensics.synth.faces import FACE_BOX, FACE_H
    from forensics.synth.render import make_background

    scale = size * rng.uniform(0.6, 0.85) / FACE_H * identity.size ** 0.5
    angle = np.deg2rad(rng.uniform(-15, 15))
    cx = size / 2 + rng.uniform(-0.08, 0.08) * size
    cy = size / 2 + rng.uniform(-0.08, 0.08) * size
    px, py = (FACE_BOX[0] + FACE_BOX[2]) / 2, (FACE_BOX[1] + FACE_BOX[3]) / 2
    cos, sin = scale * np.cos(angle), scale * np.sin(angle)
    m = np.array([[cos, -sin, cx - (cos * px - sin * py)], [sin, cos, cy - (sin * px + cos * py)]], np.float32)
    flags = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    face = cv2.warpAffine(identity.rgb, m, (size, size), flags=flags)
    alpha = cv2.warpAffine(identity.alpha, m, (size, size), flags=flags)[..., None]
    background = make_background(size, size, rng).astype(np.float32)
    rgb = face * alpha + background * (1 - alpha)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    grey = grey * rng.uniform(0.75, 1.2) + rng.uniform(-20, 20)  # exposure
    grey += rng.normal(0, rng.uniform(1, 4), grey.shape)  # sensor noise
    image = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
    # warpAffine samples pixel centres: a patch pixel index maps to an output pixel index by m.
    points = landmarks @ m[:, :2].T + m[:, 2]
    return image, points.astype(np.float32)


def render_keypoint_faces(count: int, identities: int = 24, size: int = 96, seed: int = 0,
                          detector: FaceDetector | None = None) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """``count`` faces of ``identities`` people, round robin.

    Returns:
        ``images`` (``count x size x size`` uint8), ``points`` (``count x 5 x 2`` pixels) and
        ``meta`` (``identity``, ``split`` per face).
    """
    from forensics.synth.faces import bundled_identities

    if count < 1 or identities < 3 or size < 16:
        raise ForensicsError(f"need count >= 1, identities >= 3 and size >= 16, got {count}, {identities}, {size}")
    people = bundled_identities(identities, seed)
    marks = identity_landmarks(people, detector)
    usable = [i for i, m in enumerate(marks) if m is not None]
    splits = identity_splits(len(usable))
    images = np.empty((count, size, size), np.uint8)
    points = np.empty((count, 5, 2), np.float32)
    names, split_of = [], []
    for j in range(count):
        k = j % len(usable)
        person = people[usable[k]]
        images[j], points[j] = render_face(person, marks[usable[k]], size, np.random.default_rng([seed, 0x4B9, j]))
        names.append(person.name)
        split_of.append(splits[k])
    return images, points, pd.DataFrame({"identity": names, "split": split_of})


def make_keypoint_dataset(out: str | os.PathLike, count: int = 600, identities: int = 24, size: int = 96,
                          seed: int = 0) -> Path:
    """Write ``out/keypoints.csv`` (Kaggle format, 5 keypoints, ``identity`` and ``split`` columns).

    Returns:
        The CSV's path.
    """
    from keypoints.kaggle import write_kaggle_csv

    images, points, meta = render_keypoint_faces(count, identities, size, seed)
    path = write_kaggle_csv(Path(out) / FILE_NAME, images, points, FIVE_KEYPOINTS, extra=meta)
    outside = int(((points < 0) | (points >= size)).any(axis=2).sum())
    log.info("%s: %d faces %dx%d of %d identities (%s)%s", path, count, size, size, meta["identity"].nunique(),
             ", ".join(f"{k} {v}" for k, v in meta["split"].value_counts().items()),
             f"; {outside} keypoints outside the image" if outside else "")
    return path
