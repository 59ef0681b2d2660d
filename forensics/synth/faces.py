"""Identities for the synthetic dataset: face patches with their masks.

Every identity is a fixed-size RGBA *patch* of a head and torso, in one canonical geometry
(:data:`PATCH_W` x :data:`PATCH_H`, :data:`FACE_BOX`): the face box, roughly what MTCNN (Zhang
et al., "Joint Face Detection and Alignment Using Multitask Cascaded Convolutional Networks",
IEEE SPL 2016) reports, sits at the same place in every patch. Rendering and the manipulations therefore
never need a detector: a face swap is a warp between two known boxes.

The bundled identities come with scikit-image, so nothing is downloaded:

* identity 0 is the face of ``skimage.data.astronaut()`` (Eileen Collins, public domain);
* the others are face crops of ``skimage.data.lfw_subset()`` (Labeled Faces in the Wild,
  Huang et al. 2007), 25x25 greyscale, upscaled, colourised with a per-identity skin tone,
  maybe mirrored, and given a synthetic head (hair, neck, shirt) so that each identity looks
  different. 95 of its 100 crops are used; beyond 96 identities crops repeat, with other
  random tones, hair and clothes.

:func:`identities_from_folder` builds identities from the user's own photos instead, cropping
the largest face MTCNN finds in each.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from forensics.errors import ForensicsError

log = logging.getLogger(__name__)

#: Size of every identity patch, in pixels: a head and a torso long enough to reach the bottom
#: of the frame wherever the face is.
PATCH_W, PATCH_H = 288, 448
#: Face box ``(x0, y0, x1, y1)`` in patch coordinates, shared by every identity.
FACE_BOX = (100.0, 62.0, 188.0, 170.0)
#: Face box height in the patch: rendering scales patches by ``wanted face height / FACE_H``.
FACE_H = FACE_BOX[3] - FACE_BOX[1]

def _in_box(fx: float, fy: float) -> tuple[float, float]:
    return FACE_BOX[0] + fx * (FACE_BOX[2] - FACE_BOX[0]), FACE_BOX[1] + fy * FACE_H


#: Where the bundled identities' eye centres, nose tip and mouth corners lie in the patch, in
#: MTCNN's landmark order (image-left eye, image-right eye, nose, image-left and image-right
#: mouth corner). Every identity is placed at one canonical geometry, and LFW's crops are
#: aligned faces, so the features of all identities sit near these points: the median of
#: MTCNN's own landmarks on 24 identities x 6 rendered frames, mapped back into the patch
#: (spread between identities: ~0.08 face heights across, ~0.03 down). Symmetric about the
#: patch's centre line, so a mirrored identity has the same points. A face's points in a
#: frame are :meth:`forensics.synth.render.Scene.face_points` of these.
FACE_LANDMARKS = np.array([_in_box(0.28, 0.376), _in_box(0.72, 0.376), _in_box(0.5, 0.595),
                           _in_box(0.31, 0.778), _in_box(0.69, 0.778)], dtype=np.float64)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

# Skin tones, as the RGB of a face's median skin pixel, from light to dark.
_SKIN_TONES = np.array(
    [
        (226, 186, 160), (214, 168, 136), (200, 152, 118), (186, 136, 102),
        (168, 120, 86), (150, 104, 74), (134, 92, 64), (120, 82, 58),
    ],
    dtype=np.float32,
)
_HAIR_COLOURS = np.array(
    [(25, 20, 18), (55, 38, 26), (96, 64, 38), (150, 108, 62), (196, 164, 104),
     (120, 50, 28), (150, 148, 142), (72, 60, 56)],
    dtype=np.float32,
)


@dataclass(frozen=True)
class Identity:
    """One synthetic person.

    Attributes:
        name: where it comes from (``astronaut``, ``lfw-17``, a file name), for logs.
        rgb: ``PATCH_H x PATCH_W x 3`` float32 in [0, 255].
        alpha: ``PATCH_H x PATCH_W`` float32 in [0, 1]: the whole head and torso, soft edged.
        inner: ``PATCH_H x PATCH_W`` float32 in [0, 1]: the inner face (eyes, nose, mouth), the
            region the manipulations replace.
        size: relative face size of this person, around 1.
    """

    name: str
    rgb: np.ndarray
    alpha: np.ndarray
    inner: np.ndarray
    size: float = 1.0


def _ellipse(shape: tuple[int, int], centre: tuple[float, float], axes: tuple[float, float],
             angle: float = 0.0) -> np.ndarray:
    """Binary float32 ellipse, drawn with sub-pixel precision."""
    out = np.zeros(shape, np.uint8)
    shift = 4  # cv2 draws on an integer grid; 4 fractional bits keep small ellipses round
    c = (int(round(centre[0] * 16)), int(round(centre[1] * 16)))
    a = (max(1, int(round(axes[0] * 16))), max(1, int(round(axes[1] * 16))))
    cv2.ellipse(out, c, a, angle, 0, 360, 1, -1, cv2.LINE_AA, shift)
    return out.astype(np.float32)


def _soften(mask: np.ndarray, sigma: float) -> np.ndarray:
    return np.clip(cv2.GaussianBlur(mask, (0, 0), sigma), 0.0, 1.0)


def inner_face_mask(box: tuple[float, float, float, float] = FACE_BOX,
                    shape: tuple[int, int] = (PATCH_H, PATCH_W),
                    scale: tuple[float, float] = (1.0, 1.0),
                    offset: tuple[float, float] = (0.0, 0.0), angle: float = 0.0,
                    softness: float = 0.04) -> np.ndarray:
    """Soft ellipse over eyes, nose and mouth of the face box ``box``.

    Args:
        scale: factors on the ellipse's horizontal and vertical radii.
        offset: shift of its centre, in face-box heights.
        angle: rotation in degrees.
        softness: Gaussian feathering sigma, in face-box heights.
    """
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    # MTCNN boxes run from the eyebrows to the chin; eyes sit at ~0.35 h, mouth at ~0.8 h.
    centre = ((x0 + x1) / 2 + offset[0] * h, y0 + 0.56 * h + offset[1] * h)
    mask = _ellipse(shape, centre, (0.36 * w * scale[0], 0.39 * h * scale[1]), angle)
    return _soften(mask, softness * h)


def _bust_alpha(head_centre: tuple[float, float], head_axes: tuple[float, float],
                face_w: float, shoulders_w: float) -> np.ndarray:
    """Soft alpha of a head (skull and jaw), neck and torso, faded out at the bottom."""
    shape = (PATCH_H, PATCH_W)
    cx, cy = head_centre
    fcx, fcy = (FACE_BOX[0] + FACE_BOX[2]) / 2, (FACE_BOX[1] + FACE_BOX[3]) / 2
    alpha = _ellipse(shape, head_centre, head_axes)
    alpha = np.maximum(alpha, _ellipse(shape, (fcx, fcy + 0.1 * FACE_H), (0.5 * face_w, 0.46 * FACE_H)))
    neck_w = 0.6 * face_w
    cv2.rectangle(alpha, (int(fcx - neck_w / 2), int(fcy)), (int(fcx + neck_w / 2), PATCH_H), 1.0, -1)
    alpha = np.maximum(alpha, _torso(shoulders_w))
    alpha = _soften(alpha, 1.5)
    # The body continues below the patch; fade it out rather than cutting it straight.
    fade = np.clip((PATCH_H - 1 - np.arange(PATCH_H, dtype=np.float32)) / 24.0, 0.0, 1.0)
    return alpha * fade[:, None]


_SHOULDER_Y = FACE_BOX[3] + 96  # where the shoulders' curve meets the torso's sides


def _torso(width: float, grow: float = 0.0) -> np.ndarray:
    """Shoulders (half an ellipse) on a rectangular torso, ``grow`` pixels larger all round."""
    width = min(width, PATCH_W - 24)  # keep the soft edge inside the patch
    mask = _ellipse((PATCH_H, PATCH_W), (PATCH_W / 2, _SHOULDER_Y), (width / 2 + grow, 58 + grow))
    x0, x1 = int(round(PATCH_W / 2 - width / 2 - grow)), int(round(PATCH_W / 2 + width / 2 + grow))
    cv2.rectangle(mask, (x0, int(_SHOULDER_Y)), (x1, PATCH_H), 1.0, -1)
    return mask


def identity_from_photo(image: np.ndarray, box: tuple[float, float, float, float],
                        name: str, size: float = 1.0) -> Identity:
    """Build an identity from an RGB photo and the face box MTCNN found in it.

    The photo is scaled so that the box lands on :data:`FACE_BOX`; its surroundings become
    the hair, neck and shoulders.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    scale = FACE_H / max(y1 - y0, 1.0)
    fx0, fy0, fx1, fy1 = FACE_BOX
    # Centre-to-centre similarity; the box aspect of the photo is kept (faces vary in width).
    m = np.array([[scale, 0, (fx0 + fx1) / 2 - scale * (x0 + x1) / 2],
                  [0, scale, (fy0 + fy1) / 2 - scale * (y0 + y1) / 2]], np.float32)
    rgb = cv2.warpAffine(image.astype(np.float32), m, (PATCH_W, PATCH_H), flags=cv2.INTER_AREA
                         if scale < 1 else cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    rgb = np.clip(rgb, 0, 255)
    w = scale * (x1 - x0)
    cx, cy = (fx0 + fx1) / 2, (fy0 + fy1) / 2
    alpha = _bust_alpha((cx, cy - 0.24 * FACE_H), (0.8 * w, 0.64 * FACE_H), w, 2.4 * w)
    return Identity(name, rgb, alpha, inner_face_mask(), size)


# Where MTCNN finds the astronaut's face (facenet-pytorch 2.5.3, prob 0.9999).
_ASTRONAUT_BOX = (181.0, 62.0, 268.0, 172.0)


def astronaut_identity() -> Identity:
    """The face of ``skimage.data.astronaut()``."""
    from skimage import data

    return identity_from_photo(data.astronaut(), _ASTRONAUT_BOX, "astronaut")


def _lfw_identity(gray: np.ndarray, rng: np.random.Generator, name: str) -> Identity:
    """Colourise one 25x25 LFW face crop and give it a synthetic head."""
    fx0, fy0, fx1, fy1 = FACE_BOX
    side = int(round(FACE_H * 1.06))  # LFW crops run a little wider than MTCNN boxes
    face = cv2.resize(gray.astype(np.float32), (side, side), interpolation=cv2.INTER_CUBIC)
    # Even out exposure across crops, measured on the centre: the corners are background.
    c = side // 5
    lo, hi = np.percentile(face[c:-c, c:-c], [2, 99])
    face = np.clip((face - lo) / max(hi - lo, 1e-3), 0, 1)
    face = face ** rng.uniform(0.8, 1.2)
    # Sharpen a little: a 25-pixel crop upscaled ~5x is soft (more would bring out its blocks).
    face = np.clip(face + 0.3 * (face - cv2.GaussianBlur(face, (0, 0), 2.0)), 0, 1)

    tone = _SKIN_TONES[rng.integers(len(_SKIN_TONES))] * rng.uniform(0.92, 1.05, 3)
    hair = _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] * rng.uniform(0.85, 1.15)
    shirt_hsv = np.uint8([[[rng.integers(180), rng.integers(40, 220), rng.integers(60, 240)]]])
    shirt = cv2.cvtColor(shirt_hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)
    cx, cy = (fx0 + fx1) / 2, (fy0 + fy1) / 2
    width = rng.uniform(0.9, 1.08)  # face width variant

    shape = (PATCH_H, PATCH_W)
    head_axes = (0.64 * FACE_H * width, 0.66 * FACE_H * rng.uniform(0.95, 1.1))
    head_centre = (cx, cy - 0.14 * FACE_H)
    shoulders_w = rng.uniform(2.1, 2.7) * FACE_H
    # Colour regions are drawn a little larger than the alpha regions, so that the soft edge
    # of the alpha blends each region's own colour, not a neighbour's (no halo).
    rgb = np.empty((PATCH_H, PATCH_W, 3), np.float32)
    rgb[:] = hair
    neck_w = 0.54 * FACE_H * width + 6
    cv2.rectangle(rgb, (int(cx - neck_w / 2), int(cy)), (int(cx + neck_w / 2), PATCH_H),
                  (tone * 0.78).tolist(), -1)
    shirt_mask = _torso(shoulders_w, grow=5.0)[..., None]
    rgb = rgb * (1 - shirt_mask) + shirt * shirt_mask

    # Skin: the tone at the face's median luminance, darker in the shadows (eyes, brows,
    # mouth) and brighter in the highlights, as a lit face is.
    median = max(float(np.median(face[c:-c, c:-c])), 0.2)
    ratio = np.maximum(face / median, 0.05)
    ratio = np.where(ratio > 1, 1 + 0.4 * np.tanh((ratio - 1) / 0.4), ratio)  # soft highlights
    skin = ratio[..., None] * tone
    # Place the crop in the patch, replicating its border so the skin has no hard edge.
    shift = np.float32([[1, 0, cx - side / 2], [0, 1, cy - side / 2 + 0.02 * FACE_H]])
    canvas = cv2.warpAffine(skin, shift, (PATCH_W, PATCH_H), borderMode=cv2.BORDER_REPLICATE)
    face_mask = _soften(_ellipse(shape, (cx, cy + 0.04 * FACE_H),
                                 (0.45 * side * width, 0.55 * side)), 0.04 * FACE_H)[..., None]
    rgb = rgb * (1 - face_mask) + canvas * face_mask
    rgb += rng.normal(0, 1.5, rgb.shape).astype(np.float32)  # skin/fabric texture
    alpha = _bust_alpha(head_centre, head_axes, 0.9 * FACE_H * width, shoulders_w)
    if rng.random() < 0.5:
        rgb, alpha = rgb[:, ::-1].copy(), alpha[:, ::-1].copy()  # the box is centred: still valid
    return Identity(name, np.clip(rgb, 0, 255).astype(np.float32), alpha, inner_face_mask(),
                    float(rng.uniform(0.88, 1.12)))


# LFW crops that MTCNN misses in over 10% of rendered frames, left out so that every identity
# is a detectable face. Measured twice with facenet-pytorch 2.5.3 on 12 frames (6 random
# videos, 320x240, JPEG-compressed) per crop, with slightly different colourisations: in the
# latest run the other crops were found in 11 or 12 of the 12 frames (94 of them in all).
_LFW_HARD = np.array([4, 13, 28, 32, 86])


def bundled_identities(n: int, seed: int) -> list[Identity]:
    """``n`` distinct identities from scikit-image's bundled faces.

    Identity 0 is the astronaut; the rest are LFW crops in an order and with looks drawn
    from ``seed``. Identity ``i`` does not depend on ``n``.
    """
    from skimage import data

    faces = data.lfw_subset()[:100]  # the last 100 images of the subset are non-faces
    usable = np.setdiff1d(np.arange(len(faces)), _LFW_HARD)
    order = usable[np.random.default_rng([seed, 0xFACE]).permutation(len(usable))]
    out = [astronaut_identity()] if n > 0 else []
    for i in range(1, n):
        k = order[(i - 1) % len(order)]
        rng = np.random.default_rng([seed, 0xFACE, i])
        out.append(_lfw_identity(faces[k], rng, f"lfw-{k}"))
    return out


def _largest_face(detector, image: np.ndarray) -> tuple[float, float, float, float] | None:
    from PIL import Image

    boxes, probs = detector.detect(Image.fromarray(image))
    if boxes is None:
        return None
    # facenet-pytorch 2.5.3 returns object arrays under numpy 2
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    probs = np.asarray(probs, dtype=float).reshape(-1)
    keep = probs >= 0.9
    if not keep.any():
        return None
    boxes = boxes[keep]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return tuple(boxes[int(np.argmax(areas))])


def _read_rgb(path: Path) -> np.ndarray | None:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        return None
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def identities_from_folder(folder: str | os.PathLike, n: int, seed: int) -> list[Identity]:
    """``n`` identities from the face photos in ``folder`` (the largest face of each).

    Photos are taken in file-name order. Photos without a detectable face are skipped with a warning. With fewer photos than
    ``n``, photos are reused, mirrored and re-tinted, so repeated identities still differ.

    Raises:
        ForensicsError: ``folder`` is missing or holds no image with a face.
    """
    import torch
    from facenet_pytorch import MTCNN

    folder = Path(folder)
    if not folder.is_dir():
        raise ForensicsError(f"--faces: {folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    detector = MTCNN(keep_all=True, device=torch.device("cpu"))
    found: list[Identity] = []
    for path in files:
        image = _read_rgb(path)
        if image is None:
            log.warning("skipping %s: not a readable image", path)
            continue
        box = _largest_face(detector, image)
        if box is None:
            log.warning("skipping %s: no face found", path)
            continue
        found.append(identity_from_photo(image, box, path.name))
    if not found:
        raise ForensicsError(f"--faces: no image with a detectable face in {folder}")
    log.info("%d face photos in %s", len(found), folder)
    if len(found) < n:
        log.warning("%d identities wanted but only %d face photos: reusing them with variants",
                    n, len(found))
    out = []
    for i in range(n):
        base = found[i % len(found)]
        if i < len(found):
            out.append(base)
            continue
        rng = np.random.default_rng([seed, 0xFACE, i])
        rgb = base.rgb * rng.uniform(0.85, 1.12, 3).astype(np.float32)
        rgb, alpha = rgb[:, ::-1], base.alpha[:, ::-1]  # the face box is centred: still valid
        out.append(Identity(f"{base.name}#{i // len(found)}", np.clip(rgb, 0, 255).copy(),
                            alpha.copy(), base.inner, float(rng.uniform(0.88, 1.12))))
    return out
